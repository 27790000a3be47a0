//! Capture files: pcap (micro- and nanosecond, both byte orders) and pcapng (several sections
//! and interfaces, each interface with its own link type, snap length and timestamp resolution).
//!
//! The file formats are read with the `pcap-file` crate; this module adds what a decoder needs
//! on top: the format is recognised from the magic number (so a pipe works as well as a file),
//! pcapng timestamps are scaled by the `if_tsresol` and `if_tsoffset` of the packet's interface
//! (pcap-file 2.0 hands the raw 64-bit count over as if it were nanoseconds), and every frame
//! says whether the snap length cut it short.

use std::io::{Cursor, Read};

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{PcapError, TsResolution};

use crate::limits::{MAX_FRAME_LEN, MAX_INTERFACES};

/// Link-layer header types handled by [`crate::link`] (numbers of the tcpdump.org
/// LINKTYPE registry).
pub mod linktype {
    /// BSD loopback: a 4-octet address family in the byte order of the capturing host.
    pub const NULL: u32 = 0;
    /// Ethernet II (with IEEE 802.1Q / 802.1ad tags).
    pub const ETHERNET: u32 = 1;
    /// Raw IP as some BSDs number it.
    pub const RAW_BSD: u32 = 12;
    /// Raw IP (IPv4 or IPv6, told apart by the version nibble).
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: like [`NULL`] but the family is always big-endian.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1 (SLL, 16-octet header).
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2 (SLL2, 20-octet header; `tshark -i any` since 3.x).
    pub const LINUX_SLL2: u32 = 276;
}

/// Why a capture could not be read (further).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The input could not be read.
    #[error("cannot read the capture: {0}")]
    Io(#[from] std::io::Error),
    /// The first four octets are no pcap or pcapng magic number.
    #[error("not a pcap or pcapng file (magic {0:08x})")]
    UnknownFormat(u32),
    /// The file ended before its header was complete.
    #[error("the file ends inside its header")]
    ShortHeader,
    /// The pcap or pcapng structure is invalid.
    #[error("invalid capture structure: {0}")]
    Format(#[source] PcapError),
    /// A packet refers to an interface no Interface Description Block declared.
    #[error("packet on undeclared interface {0}")]
    UnknownInterface(u32),
    /// More interfaces than [`MAX_INTERFACES`].
    #[error("more than {MAX_INTERFACES} interfaces in one section")]
    TooManyInterfaces,
    /// A record larger than [`MAX_FRAME_LEN`].
    #[error("a record of {0} octets exceeds the frame limit")]
    FrameTooLarge(usize),
}

/// The container format of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap format.
    Pcap,
    /// pcapng.
    PcapNg,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 1-based frame number, counted as Wireshark counts (packet records only).
    pub number: u64,
    /// Interface index (0 in pcap files).
    pub interface: u32,
    /// Link-layer header type ([`linktype`]).
    pub link_type: u32,
    /// Capture time in nanoseconds since the Unix epoch; `None` for pcapng Simple Packet Blocks,
    /// which carry no time.
    pub time_ns: Option<i128>,
    /// Length of the frame on the wire.
    pub original_len: u32,
    /// The captured octets (at most the snap length).
    pub data: Vec<u8>,
}

impl Frame {
    /// True when the capture kept fewer octets than the frame had on the wire.
    pub fn truncated(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.original_len)
    }
}

/// What the reader tracks about one pcapng interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    /// Timestamp units per second.
    units_per_sec: u128,
    /// `if_tsoffset`, seconds added to every timestamp.
    offset_sec: i64,
}

/// Units per second for an `if_tsresol` octet: bit 7 clear = negative power of 10, set =
/// negative power of 2. `None` for a resolution finer than the arithmetic can hold.
fn units_per_sec(tsresol: u8) -> Option<u128> {
    let exp = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u128.checked_pow(exp)
    } else {
        2u128.checked_pow(exp)
    }
}

/// Converts a count of `units` per second to nanoseconds.
fn to_ns(count: u64, units: u128, offset_sec: i64) -> i128 {
    let whole = u128::from(count) / units;
    let frac = u128::from(count) % units;
    let ns = whole * 1_000_000_000 + frac * 1_000_000_000 / units;
    // `whole` ≤ 2^64, so `ns` < 2^94 and fits an i128.
    ns as i128 + i128::from(offset_sec) * 1_000_000_000
}

enum Inner {
    Pcap {
        reader: Box<PcapReader<Box<dyn Read>>>,
        link_type: u32,
        nanos: bool,
    },
    PcapNg {
        reader: Box<PcapNgReader<Box<dyn Read>>>,
        interfaces: Vec<Interface>,
    },
}

/// Reads frames from a pcap or pcapng stream.
pub struct CaptureReader {
    inner: Inner,
    format: Format,
    next_number: u64,
    done: bool,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format)
            .field("next_number", &self.next_number)
            .finish()
    }
}

fn format_error(e: PcapError) -> CaptureError {
    match e {
        PcapError::IoError(io) => CaptureError::Io(io),
        other => CaptureError::Format(other),
    }
}

impl CaptureReader {
    /// Opens a capture from any byte source (a file, standard input, a slice). Reads the magic
    /// number and the file header.
    pub fn new(mut source: impl Read + 'static) -> Result<CaptureReader, CaptureError> {
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = source.read(&mut magic[got..])?;
            if n == 0 {
                return Err(CaptureError::ShortHeader);
            }
            got += n;
        }
        let chained: Box<dyn Read> = Box::new(Cursor::new(magic).chain(source));
        let be = u32::from_be_bytes(magic);
        let (inner, format) = match be {
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                let reader = PcapReader::new(chained).map_err(header_error)?;
                let h = reader.header();
                (
                    Inner::Pcap {
                        link_type: u32::from(h.datalink),
                        nanos: h.ts_resolution == TsResolution::NanoSecond,
                        reader: Box::new(reader),
                    },
                    Format::Pcap,
                )
            }
            0x0a0d_0d0a => {
                let reader = PcapNgReader::new(chained).map_err(header_error)?;
                (
                    Inner::PcapNg {
                        reader: Box::new(reader),
                        interfaces: Vec::new(),
                    },
                    Format::PcapNg,
                )
            }
            other => return Err(CaptureError::UnknownFormat(other)),
        };
        Ok(CaptureReader {
            inner,
            format,
            next_number: 1,
            done: false,
        })
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The next frame, `None` at the end. After an error the reader is exhausted: a broken
    /// record leaves no reliable way to find the next one.
    pub fn next_frame(&mut self) -> Option<Result<Frame, CaptureError>> {
        if self.done {
            return None;
        }
        let r = self.read_one();
        match &r {
            None | Some(Err(_)) => self.done = true,
            Some(Ok(_)) => self.next_number += 1,
        }
        r
    }

    fn read_one(&mut self) -> Option<Result<Frame, CaptureError>> {
        let number = self.next_number;
        match &mut self.inner {
            Inner::Pcap {
                reader,
                link_type,
                nanos,
            } => {
                let p = match reader.next_raw_packet()? {
                    Ok(p) => p,
                    Err(e) => return Some(Err(format_error(e))),
                };
                if p.data.len() > MAX_FRAME_LEN {
                    return Some(Err(CaptureError::FrameTooLarge(p.data.len())));
                }
                let frac = if *nanos {
                    i128::from(p.ts_frac)
                } else {
                    i128::from(p.ts_frac) * 1000
                };
                Some(Ok(Frame {
                    number,
                    interface: 0,
                    link_type: *link_type,
                    time_ns: Some(i128::from(p.ts_sec) * 1_000_000_000 + frac),
                    // Some writers leave orig_len 0; never report fewer octets than captured.
                    original_len: p.orig_len.max(p.data.len() as u32),
                    data: p.data.into_owned(),
                }))
            }
            Inner::PcapNg { reader, interfaces } => loop {
                let block = match reader.next_block()? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(format_error(e))),
                };
                match block {
                    Block::SectionHeader(_) => interfaces.clear(),
                    Block::InterfaceDescription(idb) => {
                        if interfaces.len() >= MAX_INTERFACES {
                            return Some(Err(CaptureError::TooManyInterfaces));
                        }
                        let mut tsresol = 6u8;
                        let mut offset_sec = 0i64;
                        for o in &idb.options {
                            match o {
                                InterfaceDescriptionOption::IfTsResol(r) => tsresol = *r,
                                InterfaceDescriptionOption::IfTsOffset(s) => {
                                    offset_sec = i64::try_from(*s).unwrap_or(i64::MAX)
                                }
                                _ => {}
                            }
                        }
                        let Some(units) = units_per_sec(tsresol).filter(|u| *u > 0) else {
                            return Some(Err(CaptureError::Format(PcapError::InvalidField(
                                "if_tsresol out of range",
                            ))));
                        };
                        interfaces.push(Interface {
                            link_type: u32::from(idb.linktype),
                            snaplen: idb.snaplen,
                            units_per_sec: units,
                            offset_sec,
                        });
                    }
                    Block::EnhancedPacket(epb) => {
                        let Some(ifc) = interfaces.get(epb.interface_id as usize) else {
                            return Some(Err(CaptureError::UnknownInterface(epb.interface_id)));
                        };
                        if epb.data.len() > MAX_FRAME_LEN {
                            return Some(Err(CaptureError::FrameTooLarge(epb.data.len())));
                        }
                        // pcap-file stores the raw 64-bit count with Duration::from_nanos.
                        let raw = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                        return Some(Ok(Frame {
                            number,
                            interface: epb.interface_id,
                            link_type: ifc.link_type,
                            time_ns: Some(to_ns(raw, ifc.units_per_sec, ifc.offset_sec)),
                            original_len: epb.original_len.max(epb.data.len() as u32),
                            data: epb.data.into_owned(),
                        }));
                    }
                    Block::Packet(pb) => {
                        let id = u32::from(pb.interface_id);
                        let Some(ifc) = interfaces.get(id as usize) else {
                            return Some(Err(CaptureError::UnknownInterface(id)));
                        };
                        if pb.data.len() > MAX_FRAME_LEN {
                            return Some(Err(CaptureError::FrameTooLarge(pb.data.len())));
                        }
                        return Some(Ok(Frame {
                            number,
                            interface: id,
                            link_type: ifc.link_type,
                            time_ns: Some(to_ns(pb.timestamp, ifc.units_per_sec, ifc.offset_sec)),
                            original_len: pb.original_len.max(pb.data.len() as u32),
                            data: pb.data.into_owned(),
                        }));
                    }
                    Block::SimplePacket(spb) => {
                        let Some(ifc) = interfaces.first() else {
                            return Some(Err(CaptureError::UnknownInterface(0)));
                        };
                        // The block is padded to 32 bits: the captured part is the original
                        // length cut at the snap length (0 = no limit), never the padding.
                        let mut keep = spb.data.len().min(spb.original_len as usize);
                        if ifc.snaplen != 0 {
                            keep = keep.min(ifc.snaplen as usize);
                        }
                        if keep > MAX_FRAME_LEN {
                            return Some(Err(CaptureError::FrameTooLarge(keep)));
                        }
                        return Some(Ok(Frame {
                            number,
                            interface: 0,
                            link_type: ifc.link_type,
                            time_ns: None,
                            original_len: spb.original_len,
                            data: spb.data[..keep].to_vec(),
                        }));
                    }
                    _ => {}
                }
            },
        }
    }
}

fn header_error(e: PcapError) -> CaptureError {
    match e {
        PcapError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            CaptureError::ShortHeader
        }
        other => format_error(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions() {
        assert_eq!(units_per_sec(6), Some(1_000_000));
        assert_eq!(units_per_sec(9), Some(1_000_000_000));
        assert_eq!(units_per_sec(0x80 | 10), Some(1024));
        assert_eq!(to_ns(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(to_ns(1536, 1024, 2), 3_500_000_000);
        assert_eq!(to_ns(7, 1_000_000_000, 0), 7);
    }
}
