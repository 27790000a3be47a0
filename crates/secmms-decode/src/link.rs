//! From a captured frame to a TCP segment: link layer (Ethernet with 802.1Q, Linux cooked v1
//! and v2, BSD loopback, raw IP), IPv4 or IPv6, TCP.
//!
//! The two cooked headers and the loopback family are fixed layouts read here; Ethernet, VLAN
//! tags, IP and TCP are read with `etherparse` in its lax mode, which keeps what a snap length
//! left of a frame instead of refusing it. What the capture cut is reported
//! ([`Segment::cut`]), never filled in.
//!
//! An IP fragment of a TCP datagram is handed out whole by [`parse_frame`]
//! ([`Parsed::Fragment`]) for [`crate::defrag`] to reassemble; the decoder reads the rebuilt
//! datagram with [`parse_frame`] (link type [`linktype::IPV4`] or [`linktype::IPV6`]). For IPv6
//! the extension headers before the Fragment header (hop-by-hop, routing, destination options)
//! are walked here, at most [`MAX_IPV6_EXT_HEADERS`] of them.

use std::net::IpAddr;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::capture::linktype;
use crate::defrag::{FragKey, IpFragment, Ipv6FragmentHeader, FRAGMENT_HEADER};
use crate::limits::MAX_IPV6_EXT_HEADERS;

/// Why a frame gave no TCP segment although it should have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A link-layer header type this decoder does not read.
    #[error("link type {0} not supported")]
    UnsupportedLinkType(u32),
    /// The frame ends inside its link-layer header.
    #[error("frame shorter than its {0} header")]
    ShortLinkHeader(&'static str),
    /// The Ethernet or IP header is invalid.
    #[error("{layer}: {source}")]
    Header {
        /// The layer that failed.
        layer: &'static str,
        /// What etherparse reported.
        source: etherparse::err::packet::SliceError,
    },
    /// The IP header could not be read at all.
    #[error("IP: {0}")]
    Ip(#[from] etherparse::err::ip::LaxHeaderSliceError),
    /// A fragment [`parse`] cannot read alone (use [`parse_frame`] and [`crate::defrag`]), or
    /// an IPv6 fragment whose Fragment header follows a header this decoder does not skip
    /// (authentication, ESP).
    #[error("IP fragment (not reassembled)")]
    Fragment,
    /// An IPv6 packet with more than [`MAX_IPV6_EXT_HEADERS`] extension headers before its
    /// Fragment header or payload.
    #[error("IPv6: more than {MAX_IPV6_EXT_HEADERS} extension headers")]
    Ipv6ExtensionChain,
}

/// Source and destination of one direction of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoints {
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dst_port: u16,
}

impl Endpoints {
    /// The reverse direction.
    pub fn reversed(&self) -> Endpoints {
        Endpoints {
            src: self.dst,
            src_port: self.dst_port,
            dst: self.src,
            dst_port: self.src_port,
        }
    }
}

impl std::fmt::Display for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |f: &mut std::fmt::Formatter<'_>, a: &IpAddr, p: u16| match a {
            IpAddr::V4(a) => write!(f, "{a}:{p}"),
            IpAddr::V6(a) => write!(f, "[{a}]:{p}"),
        };
        side(f, &self.src, self.src_port)?;
        f.write_str(" > ")?;
        side(f, &self.dst, self.dst_port)
    }
}

/// One TCP segment taken from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Addresses and ports.
    pub endpoints: Endpoints,
    /// Sequence number of the first payload octet (of the SYN when `syn`).
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// Acknowledgment number, when the ACK flag is set.
    pub ack: Option<u32>,
    /// The payload octets the capture holds.
    pub payload: Vec<u8>,
    /// Payload octets the IP header announces but the capture does not hold (snap length).
    pub cut: usize,
}

/// What a frame holds, for [`parse_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A TCP segment.
    Segment(Segment),
    /// An IPv4 or IPv6 fragment of a TCP datagram, to reassemble.
    Fragment(IpFragment),
    /// Not TCP over IP (ARP, UDP, other EtherTypes): passed over.
    Other,
}

/// Reads a frame of `link_type`. `Ok(None)` for a frame that is not TCP over IP (ARP, UDP,
/// other EtherTypes), which a decoder of MMS passes over silently. An IP fragment is
/// [`LinkError::Fragment`] here; [`parse_frame`] returns it for reassembly.
pub fn parse(link_type: u32, data: &[u8]) -> Result<Option<Segment>, LinkError> {
    match parse_frame(link_type, data)? {
        Parsed::Segment(s) => Ok(Some(s)),
        Parsed::Fragment(_) => Err(LinkError::Fragment),
        Parsed::Other => Ok(None),
    }
}

/// Reads a frame of `link_type` like [`parse`], returning an IP fragment of a TCP datagram
/// instead of refusing it.
pub fn parse_frame(link_type: u32, data: &[u8]) -> Result<Parsed, LinkError> {
    let sliced = match link_type {
        linktype::ETHERNET => LaxSlicedPacket::from_ethernet(data)
            .map_err(|_| LinkError::ShortLinkHeader("Ethernet"))?,
        linktype::LINUX_SLL => {
            // packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
            let h = data.get(..16).ok_or(LinkError::ShortLinkHeader("SLL"))?;
            let proto = u16::from_be_bytes([h[14], h[15]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[16..])
        }
        linktype::LINUX_SLL2 => {
            // protocol(2) reserved(2) interface index(4) ARPHRD(2) packet type(1)
            // address length(1) address(8)
            let h = data.get(..20).ok_or(LinkError::ShortLinkHeader("SLL2"))?;
            let proto = u16::from_be_bytes([h[0], h[1]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[20..])
        }
        linktype::NULL | linktype::LOOP => {
            let h = data
                .get(..4)
                .ok_or(LinkError::ShortLinkHeader("loopback"))?;
            let raw = [h[0], h[1], h[2], h[3]];
            // LOOP is big-endian; NULL is in the writer's byte order, and a family fits 16 bits.
            let family = if link_type == linktype::LOOP || u32::from_le_bytes(raw) > 0xffff {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            };
            match family {
                // AF_INET everywhere; AF_INET6 on the BSDs (24, 28, 30) and Linux (10).
                2 | 10 | 24 | 28 | 30 => LaxSlicedPacket::from_ip(&data[4..])?,
                _ => return Ok(Parsed::Other),
            }
        }
        linktype::RAW | linktype::RAW_BSD | linktype::IPV4 | linktype::IPV6 => {
            LaxSlicedPacket::from_ip(data)?
        }
        other => return Err(LinkError::UnsupportedLinkType(other)),
    };
    segment_of(&sliced, data)
}

/// Walks the extension headers of the IPv6 packet `ip` (hop-by-hop first only, routing,
/// destination options, each bounded by the packet) to its Fragment header. `Ok(None)` when
/// there is none, when it does not fragment (an atomic fragment, RFC 6946, is read whole) or
/// when the chain is cut or unusual: etherparse then reads the packet and reports what is
/// wrong.
fn ipv6_fragment(ip: &[u8]) -> Result<Option<Parsed>, LinkError> {
    let Some(base) = ip.get(..40) else {
        return Ok(None);
    };
    let payload_len = usize::from(u16::from_be_bytes([base[4], base[5]]));
    if payload_len == 0 {
        // A jumbogram (or nothing): never fragmented.
        return Ok(None);
    }
    let announced = 40 + payload_len;
    let end = announced.min(ip.len());
    let ip = &ip[..end];
    // Where the Next Header octet naming the current header is, and its value.
    let mut at = 6;
    let mut next = base[6];
    let mut pos = 40;
    let mut walked = 0;
    loop {
        match next {
            0 | 43 | 60 => {
                if next == 0 && pos != 40 {
                    return Ok(None);
                }
                if walked == MAX_IPV6_EXT_HEADERS {
                    return Err(LinkError::Ipv6ExtensionChain);
                }
                let Some(h) = ip.get(pos..pos + 2) else {
                    return Ok(None);
                };
                at = pos;
                next = h[0];
                pos += (usize::from(h[1]) + 1) * 8;
                walked += 1;
            }
            FRAGMENT_HEADER => break,
            _ => return Ok(None),
        }
    }
    let Some(h) = ip.get(pos..pos + 8) else {
        return Ok(None);
    };
    let offset = usize::from(u16::from_be_bytes([h[2], h[3]]) & 0xfff8);
    let more = h[3] & 1 == 1;
    if offset == 0 && !more {
        return Ok(None);
    }
    // Only TCP matters; destination options may come first in the fragmentable part.
    if h[0] != etherparse::IpNumber::TCP.0 && h[0] != 60 {
        return Ok(Some(Parsed::Other));
    }
    let addr = |r: std::ops::Range<usize>| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&base[r]);
        IpAddr::from(a)
    };
    Ok(Some(Parsed::Fragment(IpFragment {
        key: FragKey {
            src: addr(8..24),
            dst: addr(24..40),
            protocol: FRAGMENT_HEADER,
            id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        },
        offset,
        more,
        header: ip[..pos].to_vec(),
        ipv6: Some(Ipv6FragmentHeader {
            next_header_at: at,
            next_header: h[0],
        }),
        payload: ip[pos + 8..].to_vec(),
        cut: announced - end,
    })))
}

fn segment_of(p: &LaxSlicedPacket<'_>, frame: &[u8]) -> Result<Parsed, LinkError> {
    if let Some(LaxNetSlice::Ipv6(v6)) = &p.net {
        // The IPv6 packet within the frame (etherparse's slices point into it).
        let start = (v6.header().slice().as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
        if let Some(ip) = frame.get(start..) {
            if let Some(parsed) = ipv6_fragment(ip)? {
                return Ok(parsed);
            }
        }
    }
    let (src, dst, announced, fragmented) = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let pl = v4.payload();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                pl,
                pl.fragmented,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let pl = v6.payload();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                pl,
                pl.fragmented,
            )
        }
        _ => {
            if let Some((e, layer)) = &p.stop_err {
                if matches!(layer, etherparse::err::Layer::Ethernet2Header) {
                    return Err(LinkError::Header {
                        layer: "link",
                        source: e.clone(),
                    });
                }
            }
            return Ok(Parsed::Other);
        }
    };
    if announced.ip_number != etherparse::IpNumber::TCP {
        return Ok(Parsed::Other);
    }
    if fragmented {
        return match &p.net {
            Some(LaxNetSlice::Ipv4(v4)) => {
                let h = v4.header();
                let payload = v4.payload().payload;
                let announced_len =
                    usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4);
                Ok(Parsed::Fragment(IpFragment {
                    key: FragKey {
                        src: IpAddr::V4(h.source_addr()),
                        dst: IpAddr::V4(h.destination_addr()),
                        protocol: h.protocol().0,
                        id: u32::from(h.identification()),
                    },
                    offset: usize::from(h.fragments_offset().value()) * 8,
                    more: h.more_fragments(),
                    header: h.slice().to_vec(),
                    ipv6: None,
                    payload: payload.to_vec(),
                    cut: announced_len.saturating_sub(payload.len()),
                }))
            }
            _ => Err(LinkError::Fragment),
        };
    }
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        // The TCP header itself is cut or invalid.
        return match &p.stop_err {
            Some((e, _)) => Err(LinkError::Header {
                layer: "TCP",
                source: e.clone(),
            }),
            None => Ok(Parsed::Other),
        };
    };
    // With a snap length the IP payload is shorter than announced: etherparse then falls back
    // to the slice length (`LenSource::Slice`) — count what is missing from the IP header.
    let announced_len = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4)
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let ext = (v6.payload().payload.as_ptr() as usize)
                .saturating_sub(v6.header().slice().as_ptr() as usize);
            (usize::from(v6.header().payload_length()) + 40).saturating_sub(ext)
        }
        _ => 0,
    };
    let have = announced.payload.len();
    let cut = announced_len.saturating_sub(have);
    Ok(Parsed::Segment(Segment {
        endpoints: Endpoints {
            src,
            src_port: tcp.source_port(),
            dst,
            dst_port: tcp.destination_port(),
        },
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        ack: tcp.ack().then(|| tcp.acknowledgment_number()),
        payload: tcp.payload().to_vec(),
        cut,
    }))
}
