//! The whole pipeline for one capture: frames → TCP segments → reassembled streams → PDUs.

use std::collections::HashMap;

use crate::capture::Frame;
use crate::defrag::{DefragError, Defragmenter};
use crate::link::{self, Parsed};
use crate::osi::{FrameInfo, Output, StreamDecoder};
use crate::record::{Item, Notice};
use crate::tcp::{Direction, EventKind, Reassembler, ReassemblyLimits};
use crate::tls::{looks_like_tls, KeyLog, TlsOutput, TlsStream};

/// How a stream is read, decided by its first octets.
#[derive(Debug)]
enum Mode {
    /// RFC 1006 in the clear.
    Plain,
    /// TLS, decrypted with the key log.
    Tls(Box<TlsStream>),
    /// TLS without a key log: passed over.
    Opaque,
}

/// What `--filter` selects. Every given criterion must hold; notices pass when their stream
/// matches (or they have none) and no service or object criterion is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this stream.
    pub stream: Option<u64>,
    /// Only PDUs of this MMS service (exact, case-insensitive; also matches the PDU name).
    pub service: Option<String>,
    /// Only PDUs naming an object that contains this text.
    pub object: Option<String>,
}

impl Filter {
    /// Parses `stream=N`, `service=NAME` or `object=TEXT` (comma-separated for several).
    pub fn parse(s: &str) -> Result<Filter, String> {
        let mut f = Filter::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("filter `{part}`: expected key=value"))?;
            match k.trim() {
                "stream" => {
                    f.stream = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| format!("filter `{part}`: stream is a number"))?,
                    )
                }
                "service" => f.service = Some(v.trim().to_string()),
                "object" => f.object = Some(v.trim().to_string()),
                other => {
                    return Err(format!(
                        "filter key `{other}`: use stream, service or object"
                    ))
                }
            }
        }
        Ok(f)
    }

    /// True when `item` passes.
    pub fn matches(&self, item: &Item) -> bool {
        match item {
            Item::Pdu(p) => {
                self.stream.map_or(true, |s| s == p.stream)
                    && self.service.as_ref().map_or(true, |want| {
                        p.service
                            .as_deref()
                            .is_some_and(|s| s.eq_ignore_ascii_case(want))
                            || p.pdu.eq_ignore_ascii_case(want)
                    })
                    && self
                        .object
                        .as_ref()
                        .map_or(true, |o| p.objects.iter().any(|x| x.contains(o.as_str())))
            }
            Item::Notice(n) => {
                self.service.is_none()
                    && self.object.is_none()
                    && self
                        .stream
                        .map_or(true, |s| n.stream.map_or(true, |ns| ns == s))
            }
        }
    }
}

/// Counters over a whole capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames read.
    pub frames: u64,
    /// TCP segments handed to the reassembler.
    pub segments: u64,
    /// Streams seen.
    pub streams: u64,
    /// PDUs decoded.
    pub pdus: u64,
    /// Octets received again (retransmissions, overlapping fronts).
    pub retransmitted: u64,
    /// Octets of overlapping out-of-order segments dropped.
    pub overlapped: u64,
    /// Octets never captured (gaps).
    pub gap_octets: u64,
    /// Items counted as problems.
    pub problems: u64,
}

/// The decoder of one capture.
#[derive(Debug)]
pub struct Decoder {
    reasm: Reassembler,
    defrag: Defragmenter,
    streams: HashMap<u64, StreamDecoder>,
    modes: HashMap<u64, Mode>,
    keylog: Option<KeyLog>,
    e2e_keylog: Option<std::sync::Arc<secmms_e2e::keylog::E2eKeyLog>>,
    plain: Option<PlainExport>,
    anchors: Option<crate::secure::TrustAnchors>,
    verbose: bool,
    stats: Stats,
}

/// The `--write-plain` export: every stream's RFC 1006 octets, TLS removed, re-sent as TCP on
/// port 102 between the stream's IPv4 addresses (10.0.0.1 / 10.0.0.2 for IPv6 streams).
#[derive(Debug, Default)]
struct PlainExport {
    out: crate::synth::PcapNgStream,
    flows: HashMap<u64, crate::synth::TcpFlow>,
    clients: HashMap<u64, crate::link::Endpoints>,
}

impl PlainExport {
    fn data(&mut self, stream: u64, dir: Direction, bytes: &[u8], time_ns: Option<i128>) {
        if bytes.is_empty() {
            return;
        }
        let t = time_ns.and_then(|t| u64::try_from(t).ok()).unwrap_or(0);
        let Some(c) = self.clients.get(&stream) else {
            return;
        };
        let v4 = |a: std::net::IpAddr, fallback: [u8; 4]| match a {
            std::net::IpAddr::V4(a) => a,
            std::net::IpAddr::V6(_) => fallback.into(),
        };
        let (client, server) = (
            (v4(c.src, [10, 0, 0, 1]), c.src_port),
            (v4(c.dst, [10, 0, 0, 2]), 102),
        );
        let out = &mut self.out;
        let flow = self.flows.entry(stream).or_insert_with(|| {
            let mut f = crate::synth::TcpFlow::new(client, server, t);
            // The SYNs cannot fail: no payload.
            let _ = f.handshake_ng(out, t);
            f
        });
        // A chunk is at most one reassembled delivery; it is cut into 16 KiB segments.
        let _ = flow.send_ng(out, dir == Direction::ToServer, bytes, t);
    }
}

impl Decoder {
    /// A decoder; `verbose` keeps the `-V` tree in every record.
    pub fn new(limits: ReassemblyLimits, verbose: bool) -> Self {
        Decoder {
            reasm: Reassembler::new(limits),
            defrag: Defragmenter::new(),
            streams: HashMap::new(),
            modes: HashMap::new(),
            keylog: None,
            e2e_keylog: None,
            plain: None,
            anchors: None,
            verbose,
            stats: Stats::default(),
        }
    }

    /// Exports every stream's plaintext RFC 1006 octets as a pcapng on port 102
    /// (`--write-plain`): TLS is removed, and an E2E transfer that verified with the E2E key
    /// log ([`Decoder::with_e2e_keylog`]) travels as its MMS PDU on the MMS presentation
    /// context (the association set-up keeps its handshake SecPDUs). Octets that do not frame
    /// as TPKTs are left out. Collect the file with [`Decoder::take_plain`].
    pub fn with_plain_export(mut self) -> Self {
        self.plain = Some(PlainExport::default());
        self
    }

    /// The export octets produced since the last call (empty without [`Decoder::with_plain_export`]).
    pub fn take_plain(&mut self) -> Vec<u8> {
        self.plain
            .as_mut()
            .map(|p| p.out.take())
            .unwrap_or_default()
    }

    /// Validates A-profile and E2E handshake certificates with `anchors` too (`--ca`): path,
    /// validity at the frame's time, Annex G.
    pub fn with_trust_anchors(mut self, anchors: crate::secure::TrustAnchors) -> Self {
        self.anchors = Some(anchors);
        self
    }

    /// Decrypts TLS streams with `keys` (`--tls-keylog`).
    pub fn with_tls_keylog(mut self, keys: KeyLog) -> Self {
        self.keylog = Some(keys);
        self
    }

    /// Verifies E2E transfers and decrypts EncrTransfers with the traffic keys of an E2E key
    /// log (`--e2e-keylog`, [`secmms_e2e::keylog`]); see [`crate::e2e`].
    pub fn with_e2e_keylog(mut self, keys: secmms_e2e::keylog::E2eKeyLog) -> Self {
        self.e2e_keylog = Some(std::sync::Arc::new(keys));
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn push(&mut self, item: Item, out: &mut Vec<Item>) {
        if item.has_problem() {
            self.stats.problems += 1;
        }
        if matches!(item, Item::Pdu(_)) {
            self.stats.pdus += 1;
        }
        out.push(item);
    }

    /// Reports a capture-level problem (the reader failed after `frame`).
    pub fn capture_error(&mut self, frame: u64, detail: String, out: &mut Vec<Item>) {
        let n = notice(frame, None, "capture-error", detail, true);
        self.push(n, out);
    }

    /// Decodes one frame.
    pub fn frame(&mut self, f: &Frame, out: &mut Vec<Item>) {
        self.stats.frames += 1;
        let info = FrameInfo {
            number: f.number,
            time_ns: f.time_ns,
        };
        let mut dropped = Vec::new();
        self.defrag.tick(f.time_ns, &mut dropped);
        self.fragment_problems(f.number, dropped, out);
        let parsed = match link::parse_frame(f.link_type, &f.data) {
            Ok(Parsed::Fragment(frag)) => {
                let family = if frag.key.is_ipv6() {
                    crate::capture::linktype::IPV6
                } else {
                    crate::capture::linktype::IPV4
                };
                match self.defrag.push(frag, f.number, f.time_ns) {
                    // The rebuilt datagram is an unfragmented IP packet of the same family.
                    Ok(Some(packet)) => link::parse_frame(family, &packet),
                    Ok(None) => return,
                    Err(e) => return self.fragment_problems(f.number, vec![e], out),
                }
            }
            other => other,
        };
        let seg = match parsed {
            Ok(Parsed::Segment(s)) => s,
            Ok(Parsed::Other | Parsed::Fragment(_)) => return,
            Err(e) => {
                let (event, detail) = if f.truncated() {
                    (
                        "truncated",
                        format!(
                            "captured {} of {} octets; {e}",
                            f.data.len(),
                            f.original_len
                        ),
                    )
                } else {
                    ("link-error", e.to_string())
                };
                let n = notice(f.number, None, event, detail, true);
                return self.push(n, out);
            }
        };
        self.stats.segments += 1;
        let mut events = Vec::new();
        self.reasm.push(&seg, f.number, &mut events);
        if f.truncated() && seg.cut > 0 {
            let stream = events.first().map(|e| (e.stream, e.direction));
            let d = format!(
                "captured {} of {} octets: {} TCP payload octets of {} missing",
                f.data.len(),
                f.original_len,
                seg.cut,
                seg.endpoints
            );
            let n = notice(f.number, stream, "truncated", d, true);
            self.push(n, out);
        }
        self.events(events, info, out);
    }

    fn fragment_problems(&mut self, frame: u64, errors: Vec<DefragError>, out: &mut Vec<Item>) {
        for e in errors {
            let n = notice(frame, None, "fragment", e.to_string(), true);
            self.push(n, out);
        }
    }

    /// Ends the capture: incomplete IP datagrams (fragments) are reported, holes become gaps, waiting
    /// data is decoded.
    pub fn finish(&mut self, out: &mut Vec<Item>) {
        let mut dropped = Vec::new();
        self.defrag.finish(&mut dropped);
        self.fragment_problems(0, dropped, out);
        let mut events = Vec::new();
        self.reasm.finish(&mut events);
        self.events(
            events,
            FrameInfo {
                number: 0,
                time_ns: None,
            },
            out,
        );
    }

    fn events(
        &mut self,
        events: Vec<crate::tcp::StreamEvent>,
        info: FrameInfo,
        out: &mut Vec<Item>,
    ) {
        for ev in events {
            let mut outputs = Vec::new();
            match ev.kind {
                EventKind::Opened { client, handshake } => {
                    self.stats.streams += 1;
                    if let Some(p) = self.plain.as_mut() {
                        p.clients.insert(ev.stream, client);
                    }
                    let mut sd = StreamDecoder::new(ev.stream, &client);
                    if let Some(a) = &self.anchors {
                        sd.set_anchors(a.clone());
                    }
                    if let Some(k) = &self.e2e_keylog {
                        sd.set_e2e_keylog(k.clone());
                    }
                    if self.plain.is_some() {
                        sd.set_export();
                    }
                    self.streams.insert(ev.stream, sd);
                    let d = format!(
                        "{client}{}",
                        if handshake {
                            ""
                        } else {
                            " (handshake not captured; client is the higher port)"
                        }
                    );
                    let n = notice(
                        ev.frame,
                        Some((ev.stream, ev.direction)),
                        "stream-open",
                        d,
                        false,
                    );
                    self.push(n, out);
                }
                EventKind::Data(bytes) => {
                    let fi = FrameInfo {
                        number: ev.frame,
                        time_ns: if ev.frame == info.number {
                            info.time_ns
                        } else {
                            None
                        },
                    };
                    self.stream_data(ev.stream, ev.direction, &bytes, fi, &mut outputs);
                }
                EventKind::Gap(n) => {
                    self.stats.gap_octets += n;
                    if let Some(sd) = self.streams.get_mut(&ev.stream) {
                        sd.gap(ev.direction, n);
                    }
                    let d = format!("{n} octets not captured");
                    let it = notice(ev.frame, Some((ev.stream, ev.direction)), "gap", d, true);
                    self.push(it, out);
                }
                EventKind::Retransmission(n) => self.stats.retransmitted += n as u64,
                EventKind::Overlap(n) => self.stats.overlapped += n as u64,
                EventKind::Closed(_) => {}
                EventKind::Replaced => {
                    self.streams.remove(&ev.stream);
                    self.modes.remove(&ev.stream);
                    if let Some(p) = self.plain.as_mut() {
                        p.flows.remove(&ev.stream);
                        p.clients.remove(&ev.stream);
                    }
                }
                EventKind::Evicted => {
                    self.streams.remove(&ev.stream);
                    self.modes.remove(&ev.stream);
                    if let Some(p) = self.plain.as_mut() {
                        p.flows.remove(&ev.stream);
                        p.clients.remove(&ev.stream);
                    }
                    let d = "stream table full: stream closed to follow a new one".to_string();
                    let it = notice(
                        ev.frame,
                        Some((ev.stream, Direction::ToServer)),
                        "evicted",
                        d,
                        true,
                    );
                    self.push(it, out);
                }
            }
            for o in outputs {
                let item = match o {
                    Output::Pdu(p) => Item::Pdu(p),
                    Output::Notice(n) => Item::Notice(n),
                };
                self.push(item, out);
            }
        }
    }
}

impl Decoder {
    /// Routes in-order octets of a stream: TLS first when the stream starts with a TLS record.
    fn stream_data(
        &mut self,
        stream: u64,
        dir: Direction,
        bytes: &[u8],
        fi: FrameInfo,
        outputs: &mut Vec<Output>,
    ) {
        let Some(sd) = self.streams.get_mut(&stream) else {
            return;
        };
        let mode = self.modes.entry(stream).or_insert_with(|| {
            if looks_like_tls(bytes) {
                if self.keylog.is_some() {
                    sd.set_tls();
                    Mode::Tls(Box::default())
                } else {
                    outputs.push(Output::Notice(Notice {
                        kind: "event",
                        frame: fi.number,
                        stream: Some(stream),
                        direction: Some(dir.arrow()),
                        event: "tls",
                        detail: "TLS stream: not decrypted (no --tls-keylog)".into(),
                        problem: false,
                    }));
                    Mode::Opaque
                }
            } else {
                Mode::Plain
            }
        });
        let plain = &mut self.plain;
        match mode {
            Mode::Plain => {
                sd.data(dir, bytes, fi, self.verbose, outputs);
                if let Some(p) = plain {
                    p.data(stream, dir, &sd.take_export(dir), fi.time_ns);
                }
            }
            Mode::Opaque => {}
            Mode::Tls(t) => {
                let mut tls_out = Vec::new();
                let empty = KeyLog::default();
                let keys = self.keylog.as_ref().unwrap_or(&empty);
                t.push(
                    usize::from(dir == Direction::ToClient),
                    bytes,
                    keys,
                    &mut tls_out,
                );
                for o in tls_out {
                    match o {
                        TlsOutput::Plain(_, p) => {
                            sd.data(dir, &p, fi, self.verbose, outputs);
                            if let Some(x) = plain.as_mut() {
                                x.data(stream, dir, &sd.take_export(dir), fi.time_ns);
                            }
                        }
                        TlsOutput::Note(n) => outputs.push(tls_notice(stream, dir, fi, n, false)),
                        TlsOutput::Problem(n) => outputs.push(tls_notice(stream, dir, fi, n, true)),
                    }
                }
            }
        }
    }
}

fn tls_notice(stream: u64, dir: Direction, fi: FrameInfo, detail: String, problem: bool) -> Output {
    Output::Notice(Notice {
        kind: "event",
        frame: fi.number,
        stream: Some(stream),
        direction: Some(dir.arrow()),
        event: "tls",
        detail,
        problem,
    })
}

fn notice(
    frame: u64,
    at: Option<(u64, Direction)>,
    event: &'static str,
    detail: String,
    problem: bool,
) -> Item {
    Item::Notice(Notice {
        kind: "event",
        frame,
        stream: at.map(|a| a.0),
        direction: at.map(|a| a.1.arrow()),
        event,
        detail,
        problem,
    })
}
