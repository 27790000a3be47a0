//! Writing captures: a classic pcap file (nanosecond timestamps) of Ethernet / IPv4 / TCP
//! frames built from the octets each side sent. The tests build their captures with it, and
//! it is the base of a plaintext export.

use std::net::Ipv4Addr;

/// Errors of the writer.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// etherparse could not build the frame.
    #[error("cannot build the frame: {0}")]
    Build(String),
    /// A payload larger than one IPv4 packet.
    #[error("payload of {0} octets does not fit one IPv4 packet")]
    TooLarge(usize),
}

/// pcap link type written (Ethernet).
pub const LINKTYPE_ETHERNET: u32 = 1;

/// A classic pcap file in memory: little-endian, nanosecond resolution.
#[derive(Debug, Clone)]
pub struct PcapFile {
    bytes: Vec<u8>,
}

impl PcapFile {
    /// An empty file with `link_type` and `snaplen`.
    pub fn new(link_type: u32, snaplen: u32) -> Self {
        let mut bytes = Vec::with_capacity(4096);
        bytes.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&snaplen.to_le_bytes());
        bytes.extend_from_slice(&link_type.to_le_bytes());
        PcapFile { bytes }
    }

    /// Appends a record: `frame` was `original_len` octets long on the wire, captured at
    /// `time_ns` since the epoch.
    pub fn record(&mut self, time_ns: u64, frame: &[u8], original_len: u32) {
        let sec = (time_ns / 1_000_000_000) as u32;
        let nsec = (time_ns % 1_000_000_000) as u32;
        self.bytes.extend_from_slice(&sec.to_le_bytes());
        self.bytes.extend_from_slice(&nsec.to_le_bytes());
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&original_len.to_le_bytes());
        self.bytes.extend_from_slice(frame);
    }

    /// The file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A pcapng writer that hands its output out in pieces ([`PcapNgStream::take`]), so a long
/// export never sits in memory: one section, one Ethernet interface with nanosecond
/// timestamps, Enhanced Packet Blocks.
#[derive(Debug, Clone)]
pub struct PcapNgStream {
    out: Vec<u8>,
}

fn ng_block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&[0; 3][..pad]);
    out.extend_from_slice(&len.to_le_bytes());
}

impl Default for PcapNgStream {
    fn default() -> Self {
        Self::new()
    }
}

impl PcapNgStream {
    /// A stream that starts with the section header and the interface description.
    pub fn new() -> Self {
        let mut out = Vec::new();
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
        ng_block(&mut out, 0x0a0d_0d0a, &shb);
        let mut idb = (LINKTYPE_ETHERNET as u16).to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&0u32.to_le_bytes()); // no snap length
        idb.extend_from_slice(&9u16.to_le_bytes()); // if_tsresol
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 0, 0]); // 10^-9 s
        idb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        ng_block(&mut out, 1, &idb);
        PcapNgStream { out }
    }

    /// Appends one frame captured at `time_ns`.
    pub fn frame(&mut self, time_ns: u64, frame: &[u8]) {
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((time_ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(time_ns as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(frame);
        ng_block(&mut self.out, 6, &epb);
    }

    /// The octets written since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// One TCP connection written as Ethernet frames: both sides' sequence numbers are tracked, so
/// a receiver reassembles what [`TcpFlow::send`] was given.
#[derive(Debug, Clone)]
pub struct TcpFlow {
    client: (Ipv4Addr, u16),
    server: (Ipv4Addr, u16),
    seq: [u32; 2],
    time_ns: u64,
}

impl TcpFlow {
    /// A flow from `client` to `server`, with initial sequence numbers chosen so that they wrap
    /// soon (to exercise wrapping in readers), starting at `time_ns`.
    pub fn new(client: (Ipv4Addr, u16), server: (Ipv4Addr, u16), time_ns: u64) -> Self {
        TcpFlow {
            client,
            server,
            seq: [0xffff_ff00, 0x7fff_fff0],
            time_ns,
        }
    }

    /// Builds the Ethernet frame of one segment (`to_server` selects the direction) at sequence
    /// number `seq`, with `syn`; other segments acknowledge all the peer sent.
    pub fn frame(
        &self,
        to_server: bool,
        seq: u32,
        syn: bool,
        payload: &[u8],
    ) -> Result<Vec<u8>, SynthError> {
        if payload.len() > 65_000 {
            return Err(SynthError::TooLarge(payload.len()));
        }
        let (src, dst) = if to_server {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let peer = self.seq[usize::from(to_server)];
        let mut b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.0.octets(), dst.0.octets(), 64)
            .tcp(src.1, dst.1, seq, 65_535);
        if syn {
            b = b.syn();
        } else {
            // Acknowledge everything the peer has sent so far.
            b = b.ack(peer);
        }
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload)
            .map_err(|e| SynthError::Build(e.to_string()))?;
        Ok(out)
    }

    /// The SYN of each side, as two frames.
    pub fn handshake(&mut self, file: &mut PcapFile) -> Result<(), SynthError> {
        for to_server in [true, false] {
            let i = usize::from(!to_server);
            let f = self.frame(to_server, self.seq[i], true, &[])?;
            self.seq[i] = self.seq[i].wrapping_add(1);
            self.tick();
            file.record(self.time_ns, &f, f.len() as u32);
        }
        Ok(())
    }

    /// The next segment of `payload` in one direction, not yet written: (frame, its sequence
    /// number). The flow's sequence number advances.
    pub fn next(&mut self, to_server: bool, payload: &[u8]) -> Result<(Vec<u8>, u32), SynthError> {
        let i = usize::from(!to_server);
        let seq = self.seq[i];
        let f = self.frame(to_server, seq, false, payload)?;
        self.seq[i] = seq.wrapping_add(payload.len() as u32);
        Ok((f, seq))
    }

    /// Writes `payload` as one segment.
    pub fn send(
        &mut self,
        file: &mut PcapFile,
        to_server: bool,
        payload: &[u8],
    ) -> Result<(), SynthError> {
        let (f, _) = self.next(to_server, payload)?;
        self.tick();
        file.record(self.time_ns, &f, f.len() as u32);
        Ok(())
    }

    /// Writes `payload` as segments of at most 16 KiB at `time_ns` into a pcapng stream.
    pub fn send_ng(
        &mut self,
        out: &mut PcapNgStream,
        to_server: bool,
        payload: &[u8],
        time_ns: u64,
    ) -> Result<(), SynthError> {
        for chunk in payload.chunks(16 * 1024) {
            let (f, _) = self.next(to_server, chunk)?;
            out.frame(time_ns, &f);
        }
        Ok(())
    }

    /// The SYNs of both sides into a pcapng stream.
    pub fn handshake_ng(&mut self, out: &mut PcapNgStream, time_ns: u64) -> Result<(), SynthError> {
        for to_server in [true, false] {
            let i = usize::from(!to_server);
            let f = self.frame(to_server, self.seq[i], true, &[])?;
            self.seq[i] = self.seq[i].wrapping_add(1);
            out.frame(time_ns, &f);
        }
        Ok(())
    }

    /// The time of the last frame written.
    pub fn time_ns(&self) -> u64 {
        self.time_ns
    }

    fn tick(&mut self) {
        self.time_ns += 1_000;
    }
}
