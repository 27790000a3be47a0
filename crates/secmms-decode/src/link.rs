//! From a captured frame to a TCP segment: link layer (Ethernet with 802.1Q, Linux cooked v1
//! and v2, BSD loopback, raw IP), IPv4 or IPv6, TCP.
//!
//! The two cooked headers and the loopback family are fixed layouts read here; Ethernet, VLAN
//! tags, IP and TCP are read with `etherparse` in its lax mode, which keeps what a snap length
//! left of a frame instead of refusing it. What the capture cut is reported
//! ([`Segment::cut`]), never filled in.
//!
//! An IPv4 fragment carrying TCP is handed out whole by [`parse_frame`]
//! ([`Parsed::Ipv4Fragment`]) for [`crate::defrag`] to reassemble; the decoder reads the
//! rebuilt datagram with [`parse`] (link type [`linktype::IPV4`]). IPv6 fragments are not
//! reassembled ([`LinkError::Fragment`]).

use std::net::IpAddr;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::capture::linktype;
use crate::defrag::{FragKey, Ipv4Fragment};

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
    /// A fragment [`parse`] cannot read alone: an IPv6 fragment (never reassembled) or, from
    /// [`parse`] only, an IPv4 fragment (use [`parse_frame`] and [`crate::defrag`]).
    #[error("IP fragment (not reassembled)")]
    Fragment,
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
    /// An IPv4 fragment of a TCP datagram, to reassemble.
    Ipv4Fragment(Ipv4Fragment),
    /// Not TCP over IP (ARP, UDP, other EtherTypes): passed over.
    Other,
}

/// Reads a frame of `link_type`. `Ok(None)` for a frame that is not TCP over IP (ARP, UDP,
/// other EtherTypes), which a decoder of MMS passes over silently. An IPv4 fragment is
/// [`LinkError::Fragment`] here; [`parse_frame`] returns it for reassembly.
pub fn parse(link_type: u32, data: &[u8]) -> Result<Option<Segment>, LinkError> {
    match parse_frame(link_type, data)? {
        Parsed::Segment(s) => Ok(Some(s)),
        Parsed::Ipv4Fragment(_) => Err(LinkError::Fragment),
        Parsed::Other => Ok(None),
    }
}

/// Reads a frame of `link_type` like [`parse`], returning an IPv4 fragment of a TCP datagram
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
    segment_of(&sliced)
}

fn segment_of(p: &LaxSlicedPacket<'_>) -> Result<Parsed, LinkError> {
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
                Ok(Parsed::Ipv4Fragment(Ipv4Fragment {
                    key: FragKey {
                        src: h.source_addr(),
                        dst: h.destination_addr(),
                        protocol: h.protocol().0,
                        id: h.identification(),
                    },
                    offset: usize::from(h.fragments_offset().value()) * 8,
                    more: h.more_fragments(),
                    header: h.slice().to_vec(),
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
