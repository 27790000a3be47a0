//! The OSI upper layers of one TCP stream, both directions: RFC 1006 framing with
//! resynchronisation, TP0 TPDUs and DT reassembly, session, presentation (with the stream's
//! presentation contexts), ACSE with the A-profile authentication value, MMS and the E2E
//! SecPDUs of clause 15.
//!
//! The layer codecs are those of the live stack (`secmms-osi`, `secmms-e2e`, the A-profile
//! value codec of `secmms-profiles`); this module only strings them together for a passive
//! observer, who sees both directions and never answers.

use std::collections::BTreeMap;

use secmms_ber::Oid;
use secmms_e2e::pdu::TransferView;
use secmms_e2e::{SecPdu, SecPduKind};
use secmms_osi::acse::{Apdu, External, ExternalEncoding};
use secmms_osi::cotp::Tpdu;
use secmms_osi::limits::{OsiLimits, MAX_PSEL_LEN, MAX_SSEL_LEN, MAX_TSEL_LEN};
use secmms_osi::presentation::{oids, AbortPpdu, CpType, CpaPpdu, CprPpdu, PdvValues, UserData};
use secmms_osi::session::Spdu;
use secmms_profiles::native::wire::{self, EnvApdu, EnvValue};

use crate::limits::{MAX_RESYNC_SCAN, MAX_TPKT_BUFFER, MAX_TSDU};
use crate::record::{Notice, PduRecord};
use crate::secure::{kind_name, verify_aprofile, verify_e2e};
use crate::tcp::Direction;
use crate::tree;

/// The abstract syntax a presentation context carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syntax {
    /// ACSE (2.2.1.0.1).
    Acse,
    /// MMS (1.0.9506.2.1).
    Mms,
    /// IEC 62351-4 e2eSecurityAS (the secmms default 1.0.62351.4.1.1.1).
    E2e,
    /// Anything else (`None`: a context the CP-type did not define).
    Other(Option<Oid>),
}

fn syntax_of(o: &Oid) -> Syntax {
    if *o == oids::acse_as() {
        Syntax::Acse
    } else if *o == oids::mms_as() || *o == oids::mms_ac() {
        Syntax::Mms
    } else if o.arcs() == secmms_profiles::native::DEFAULT_E2E_SECURITY_AS {
        Syntax::E2e
    } else {
        Syntax::Other(Some(o.clone()))
    }
}

/// Context of the frame that completed a PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Frame number.
    pub number: u64,
    /// Capture time, ns since the epoch.
    pub time_ns: Option<i128>,
}

#[derive(Debug, Default)]
struct Half {
    /// In-order octets not yet framed.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// Aligned on a TPKT boundary.
    synced: bool,
    /// TSDU under reassembly and the stream offset of its first TPKT.
    tsdu: Vec<u8>,
    tsdu_offset: Option<u64>,
    /// The next TSDU may have lost its beginning (first after a resynchronisation).
    partial: bool,
    /// A resynchronisation failure was reported and not yet cleared.
    lost_reported: bool,
    /// Octets skipped while looking for a TPKT since framing was lost.
    skipped: u64,
    /// The direction never carried RFC 1006: its octets are ignored.
    given_up: bool,
    /// `--write-plain`: the TPKTs of the TSDU under reassembly, as received.
    tsdu_raw: Vec<u8>,
    /// `--write-plain`: octets to export, not yet taken.
    export: Vec<u8>,
    /// The TPKT being decoded: a buffer kept between TPKTs so that each does not allocate.
    scratch: Vec<u8>,
}

/// Largest buffer kept for reuse between PDUs; a larger one is freed (memory stays bounded by
/// the streams followed, not by the largest PDU seen).
const KEEP_BUFFER: usize = 64 * 1024;

/// Gives `v`'s capacity back to `slot` (emptied) when it is small enough to keep.
fn recycle(slot: &mut Vec<u8>, mut v: Vec<u8>) {
    if v.capacity() <= KEEP_BUFFER && slot.capacity() == 0 {
        v.clear();
        *slot = v;
    }
}

/// Decoder state of one stream.
#[derive(Debug)]
pub struct StreamDecoder {
    stream: u64,
    endpoints: [(String, String); 2],
    halves: [Half; 2],
    contexts: BTreeMap<u32, Syntax>,
    negotiated: bool,
    assumed_noted: bool,
    limits: OsiLimits,
    tls: bool,
    /// A TPKT was framed in this stream: losing framing later is a problem.
    seen_tpkt: bool,
    anchors: Option<crate::secure::TrustAnchors>,
    /// Capture time (Unix seconds) of the TSDU being decoded.
    now: Option<i64>,
    /// The direction of the TSDU being decoded.
    dir: Direction,
    /// The E2E association's keys (`--e2e-keylog`).
    e2e: crate::e2e::E2eTracker,
    /// `--write-plain` is on: complete TPKTs are kept for [`StreamDecoder::take_export`].
    export: bool,
    /// The MMS PDU a verified E2E transfer carried: the TSDU is exported as plain MMS.
    replacement: Option<Vec<u8>>,
}

/// Output of the stream decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A PDU.
    Pdu(Box<PduRecord>),
    /// A notice.
    Notice(Notice),
}

fn idx(d: Direction) -> usize {
    match d {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

/// True when `b` starts like `03 00 LL LL` + a class-0 DT header (`02 F0 x`, TPDU-NR 0), or
/// any TPDU when `any_tpdu`.
fn looks_like_tpkt(b: &[u8], any_tpdu: bool) -> bool {
    if b.len() < 7 || b[0] != 3 || b[1] != 0 {
        return false;
    }
    let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if len < 7 {
        return false;
    }
    let dt = b[4] == 2 && b[5] == 0xF0 && b[6] & 0x7F == 0;
    let other = any_tpdu
        && usize::from(b[4]) + 5 <= len
        && matches!(b[5] & 0xF0, 0xE0 | 0xD0 | 0x80 | 0x70);
    dt || other
}

impl StreamDecoder {
    /// A decoder for stream `stream`; `to_server` names the client → server direction.
    pub fn new(stream: u64, client: &crate::link::Endpoints) -> Self {
        let side = |a: &std::net::IpAddr, p: u16| match a {
            std::net::IpAddr::V4(a) => format!("{a}:{p}"),
            std::net::IpAddr::V6(a) => format!("[{a}]:{p}"),
        };
        let c = side(&client.src, client.src_port);
        let s = side(&client.dst, client.dst_port);
        StreamDecoder {
            stream,
            endpoints: [(c.clone(), s.clone()), (s, c)],
            halves: Default::default(),
            contexts: BTreeMap::new(),
            negotiated: false,
            assumed_noted: false,
            limits: OsiLimits::default(),
            tls: false,
            seen_tpkt: false,
            anchors: None,
            now: None,
            dir: Direction::ToServer,
            e2e: Default::default(),
            export: false,
            replacement: None,
        }
    }

    /// Verifies and decrypts E2E transfers with the keys of this key log (`--e2e-keylog`).
    pub fn set_e2e_keylog(&mut self, log: std::sync::Arc<secmms_e2e::keylog::E2eKeyLog>) {
        self.e2e.set_log(log);
    }

    /// Keeps the stream's complete TPKTs for the plaintext export (`--write-plain`), E2E
    /// transfers that verified replaced by their MMS PDU on the MMS presentation context.
    pub fn set_export(&mut self) {
        self.export = true;
    }

    /// The octets of `dir` to export since the last call (see [`StreamDecoder::set_export`]).
    pub fn take_export(&mut self, dir: Direction) -> Vec<u8> {
        std::mem::take(&mut self.halves[idx(dir)].export)
    }

    fn notice(
        &self,
        dir: Direction,
        frame: u64,
        event: &'static str,
        detail: String,
        problem: bool,
    ) -> Output {
        Output::Notice(Notice {
            kind: "event",
            frame,
            stream: Some(self.stream),
            direction: Some(dir.arrow()),
            event,
            detail,
            problem,
        })
    }

    /// Certificates (A-profile, E2E pkCert) are also validated by these anchors (`--ca`).
    pub fn set_anchors(&mut self, anchors: crate::secure::TrustAnchors) {
        self.anchors = Some(anchors);
    }

    /// The stream's octets come out of TLS: records name `tls` as their outer layer.
    pub fn set_tls(&mut self) {
        self.tls = true;
    }

    /// Octets were lost in `dir`: framing must be found again.
    pub fn gap(&mut self, dir: Direction, len: u64) {
        let h = &mut self.halves[idx(dir)];
        h.offset += h.buf.len() as u64 + len;
        h.buf.clear();
        h.tsdu.clear();
        h.tsdu_raw.clear();
        h.tsdu_offset = None;
        h.synced = false;
    }

    /// In-order octets of `dir`, completed by `frame`.
    pub fn data(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        frame: FrameInfo,
        verbose: bool,
        out: &mut Vec<Output>,
    ) {
        let i = idx(dir);
        if self.halves[i].given_up {
            return;
        }
        self.dir = dir;
        self.halves[i].buf.extend_from_slice(bytes);
        loop {
            if !self.halves[i].synced && !self.resync(dir, frame.number, out) {
                return;
            }
            let h = &mut self.halves[i];
            if h.buf.len() < 4 {
                return;
            }
            let len = usize::from(u16::from_be_bytes([h.buf[2], h.buf[3]]));
            if h.buf[0] != 3 || len < 7 {
                let detail = format!(
                    "invalid TPKT header {:02x?} at offset {}",
                    &h.buf[..4],
                    h.offset
                );
                h.synced = false;
                out.push(self.notice(dir, frame.number, "malformed", detail, true));
                continue;
            }
            if h.buf.len() < len {
                if h.buf.len() > MAX_TPKT_BUFFER {
                    h.synced = false;
                }
                return;
            }
            let mut tpkt = std::mem::take(&mut h.scratch);
            tpkt.clear();
            tpkt.extend_from_slice(&h.buf[..len]);
            h.buf.drain(..len);
            self.seen_tpkt = true;
            let h = &mut self.halves[i];
            let off = h.offset;
            h.offset += len as u64;
            self.tpkt(dir, off, &tpkt, frame, verbose, out);
            recycle(&mut self.halves[i].scratch, tpkt);
        }
    }

    /// Looks for a TPKT start; true when found (the octets before it are dropped).
    fn resync(&mut self, dir: Direction, frame: u64, out: &mut Vec<Output>) -> bool {
        let seen_tpkt = self.seen_tpkt;
        let i = idx(dir);
        let h = &mut self.halves[i];
        let at_start = h.offset == 0;
        let found = (0..h.buf.len().saturating_sub(6))
            .find(|&k| looks_like_tpkt(&h.buf[k..], at_start && k == 0));
        match found {
            Some(k) => {
                h.buf.drain(..k);
                h.offset += k as u64;
                h.skipped += k as u64;
                h.synced = true;
                h.lost_reported = false;
                if h.skipped != 0 || h.offset != 0 {
                    h.partial = true;
                    let d = format!(
                        "TPKT + DT found at stream offset {}, {} octets skipped",
                        h.offset, h.skipped
                    );
                    h.skipped = 0;
                    out.push(self.notice(dir, frame, "resync", d, false));
                }
                true
            }
            None => {
                // No TPKT starts before the last 6 octets: drop them now (linear scanning).
                let drop = h.buf.len().saturating_sub(6);
                h.buf.drain(..drop);
                h.offset += drop as u64;
                h.skipped += drop as u64;
                if h.skipped > MAX_RESYNC_SCAN as u64 && !h.lost_reported {
                    h.lost_reported = true;
                    let skipped = h.skipped;
                    let n = if seen_tpkt {
                        let d = format!("no TPKT + DT header in {skipped} octets");
                        self.notice(dir, frame, "resync-failed", d, true)
                    } else {
                        // Never RFC 1006 in this stream: some other protocol, passed over.
                        h.given_up = true;
                        h.buf.clear();
                        let d = format!(
                            "no TPKT in the first {skipped} octets: not RFC 1006, not decoded"
                        );
                        self.notice(dir, frame, "not-rfc1006", d, false)
                    };
                    out.push(n);
                }
                false
            }
        }
    }

    fn base_record(&self, dir: Direction, offset: u64, frame: FrameInfo) -> PduRecord {
        let (src, dst) = self.endpoints[idx(dir)].clone();
        PduRecord {
            kind: "pdu",
            frame: frame.number,
            time: frame.time_ns.map(crate::record::format_time),
            stream: self.stream,
            direction: dir.arrow(),
            src,
            dst,
            offset,
            layers: if self.tls {
                vec!["tls", "tpkt", "cotp"]
            } else {
                vec!["tpkt", "cotp"]
            },
            ..Default::default()
        }
    }

    fn tpkt(
        &mut self,
        dir: Direction,
        off: u64,
        tpkt: &[u8],
        frame: FrameInfo,
        verbose: bool,
        out: &mut Vec<Output>,
    ) {
        let i = idx(dir);
        let is_dt = tpkt.len() > 5 && tpkt[5] & 0xF0 == 0xF0;
        if self.export {
            let h = &mut self.halves[i];
            if is_dt {
                h.tsdu_raw.extend_from_slice(tpkt);
            } else {
                h.export.extend_from_slice(tpkt);
            }
        }
        let tpdu = match Tpdu::decode(&tpkt[4..], MAX_TSEL_LEN.max(16)) {
            Ok(t) => t,
            Err(e) => {
                let h = &mut self.halves[i];
                let raw = std::mem::take(&mut h.tsdu_raw);
                h.export.extend_from_slice(&raw);
                let mut r = self.base_record(dir, off, frame);
                r.layers.retain(|l| *l != "cotp");
                r.pdu = "TPDU".into();
                r.problems.push(format!("COTP: {e}"));
                out.push(Output::Pdu(Box::new(r)));
                return;
            }
        };
        let (name, result) = match &tpdu {
            Tpdu::Cr(_) => ("CR", None),
            Tpdu::Cc(_) => ("CC", None),
            Tpdu::Dr(d) => ("DR", Some(format!("reason {}", d.reason))),
            Tpdu::Er(e) => ("ER", Some(format!("cause {}", e.cause))),
            Tpdu::Dt(dt) => {
                let h = &mut self.halves[i];
                if h.tsdu_offset.is_none() {
                    h.tsdu_offset = Some(off);
                }
                if h.tsdu.len() + dt.data.len() > MAX_TSDU {
                    h.tsdu.clear();
                    h.tsdu_raw.clear();
                    h.tsdu_offset = None;
                    let d = format!("TSDU over {MAX_TSDU} octets dropped");
                    out.push(self.notice(dir, frame.number, "malformed", d, true));
                    return;
                }
                h.tsdu.extend_from_slice(&dt.data);
                if !dt.eot {
                    return;
                }
                let tsdu = std::mem::take(&mut h.tsdu);
                let first = h.tsdu_offset.take().unwrap_or(off);
                let partial = std::mem::take(&mut h.partial);
                let mut r = self.base_record(dir, first, frame);
                // Tree offsets are stream offsets when the TSDU came in one TPKT (header 4 +
                // DT header 3), TSDU offsets otherwise.
                let one = first == off;
                let base = if one { first + 7 } else { 0 };
                if verbose {
                    r.tree.push(format!(
                        "TPKT at stream offset {first}, TSDU of {} octets{}",
                        tsdu.len(),
                        if one {
                            "; @ = stream offset"
                        } else {
                            " from several DTs; @ = TSDU offset"
                        }
                    ));
                }
                self.replacement = None;
                self.session(&tsdu, base, &mut r, frame, verbose);
                if self.export {
                    let raw = std::mem::take(&mut self.halves[i].tsdu_raw);
                    match self.replacement.take() {
                        Some(mms) => {
                            let pcid = self.mms_context();
                            export_mms(pcid, mms, &mut self.halves[i].export);
                        }
                        None => self.halves[i].export.extend_from_slice(&raw),
                    }
                }
                recycle(&mut self.halves[i].tsdu, tsdu);
                if partial && !r.problems.is_empty() {
                    // The TSDU may have begun before the resynchronisation point.
                    r.notes.push(format!(
                        "first TSDU after resynchronisation, undecodable: {}",
                        r.problems.join("; ")
                    ));
                    r.problems.clear();
                }
                out.push(Output::Pdu(Box::new(r)));
                return;
            }
        };
        let mut r = self.base_record(dir, off, frame);
        r.pdu = name.into();
        r.result = result;
        if verbose {
            r.tree.push(format!(
                "TPKT at stream offset {off}, length {}",
                tpkt.len()
            ));
            r.tree.push(format!("  COTP {name} {tpdu:?}"));
        }
        out.push(Output::Pdu(Box::new(r)));
    }

    fn session(
        &mut self,
        tsdu: &[u8],
        base: u64,
        r: &mut PduRecord,
        frame: FrameInfo,
        verbose: bool,
    ) {
        r.layers.push("ses");
        self.now = frame.time_ns.map(|t| t.div_euclid(1_000_000_000) as i64);
        let spdu = match Spdu::decode(tsdu, MAX_SSEL_LEN) {
            Ok(s) => s,
            Err(e) => {
                r.pdu = "SPDU".into();
                r.problems.push(format!("session: {e}"));
                return;
            }
        };
        let ber = self.limits.ber;
        let (name, ppdu_kind) = match &spdu {
            Spdu::Connect(c) => ("CN", c.user_data.as_deref().map(|u| ("CP", u))),
            Spdu::Accept(c) => ("AC", c.user_data.as_deref().map(|u| ("CPA", u))),
            Spdu::Refuse(rf) => {
                r.result = Some(format!("refused, reason {:?}", rf.reason));
                ("RF", rf.user_data.as_deref().map(|u| ("CPR", u)))
            }
            Spdu::Finish(x) => ("FN", x.user_data.as_deref().map(|u| ("UD", u))),
            Spdu::Disconnect(x) => ("DN", x.user_data.as_deref().map(|u| ("UD", u))),
            Spdu::NotFinished(x) => ("NF", x.user_data.as_deref().map(|u| ("UD", u))),
            Spdu::Abort(a) => {
                r.result = Some("aborted".into());
                ("AB", a.user_data.as_deref().map(|u| ("AB", u)))
            }
            Spdu::AbortAccept => ("AA", None),
            Spdu::Data(u) => ("DT", Some(("UD", u.as_slice()))),
        };
        r.pdu = name.into();
        if verbose {
            r.tree.push(format!("  SES {name}"));
        }
        let Some((kind, ud)) = ppdu_kind else {
            return;
        };
        r.layers.push("pres");
        if verbose {
            // The PPDU closes the SPDU (PGI 193/194 last, or the DT user information).
            let at = if tsdu.ends_with(ud) {
                (tsdu.len() - ud.len()) as u64
            } else {
                0
            };
            r.tree.push(format!("  PRES {kind} at @{}", base + at));
            tree::ber_tree(ud, base + at, 2, &mut r.tree);
        }
        let user_data = match kind {
            "CP" => match CpType::decode(ud, ber, MAX_PSEL_LEN) {
                Ok(cp) => {
                    r.pdu = "CP".into();
                    self.contexts.clear();
                    for d in &cp.context_definitions {
                        self.contexts.insert(d.id, syntax_of(&d.abstract_syntax));
                    }
                    self.negotiated = true;
                    cp.user_data
                }
                Err(e) => return r.problems.push(format!("presentation CP: {e}")),
            },
            "CPA" => match CpaPpdu::decode(ud, ber, MAX_PSEL_LEN) {
                Ok(cpa) => {
                    r.pdu = "CPA".into();
                    cpa.user_data
                }
                Err(e) => return r.problems.push(format!("presentation CPA: {e}")),
            },
            "CPR" => match CprPpdu::decode(ud, ber, MAX_PSEL_LEN) {
                Ok(cpr) => {
                    r.pdu = "CPR".into();
                    r.result = Some(format!(
                        "presentation refused, provider reason {:?}",
                        cpr.provider_reason
                    ));
                    cpr.user_data
                }
                Err(e) => return r.problems.push(format!("presentation CPR: {e}")),
            },
            "AB" => match AbortPpdu::decode(ud, ber) {
                Ok(AbortPpdu::Aru(a)) => {
                    r.pdu = "ARU".into();
                    a.user_data
                }
                Ok(AbortPpdu::Arp(a)) => {
                    r.pdu = "ARP".into();
                    r.result = Some(format!("provider abort, reason {:?}", a.provider_reason));
                    None
                }
                Err(e) => return r.problems.push(format!("presentation abort: {e}")),
            },
            _ => match UserData::decode(ud, ber) {
                Ok(u) => Some(u),
                Err(e) => return r.problems.push(format!("presentation user data: {e}")),
            },
        };
        match user_data {
            Some(UserData::Fully(pdvs)) => {
                for pdv in pdvs {
                    match &pdv.values {
                        PdvValues::SingleAsn1Type(v) => self.value(pdv.context_id, v, r, frame),
                        _ => r.notes.push(format!(
                            "context {} value not single-ASN1-type",
                            pdv.context_id
                        )),
                    }
                }
            }
            Some(UserData::Simple(_)) => r.notes.push("simply-encoded-data not decoded".into()),
            None => {}
        }
    }

    /// The syntax of `ctx`; without a captured CP, the IEC 61850 defaults are assumed and said.
    fn syntax(&mut self, ctx: u32, value: &[u8], r: &mut PduRecord) -> Syntax {
        if let Some(s) = self.contexts.get(&ctx) {
            return s.clone();
        }
        if self.negotiated {
            return Syntax::Other(None);
        }
        // No CP-type seen: IEC 61850-8-1 defaults (reference §5.2), by the value's first tag.
        let guess = if matches!(value.first(), Some(0x60..=0x64)) {
            Syntax::Acse
        } else {
            Syntax::Mms
        };
        self.contexts.insert(ctx, guess.clone());
        if !self.assumed_noted {
            self.assumed_noted = true;
        }
        let what = if guess == Syntax::Acse {
            "ACSE 2.2.1.0.1"
        } else {
            "MMS 1.0.9506.2.1"
        };
        r.notes.push(format!(
            "presentation context {ctx} assumed {what} (association not captured)"
        ));
        guess
    }

    fn value(&mut self, ctx: u32, v: &[u8], r: &mut PduRecord, frame: FrameInfo) {
        match self.syntax(ctx, v, r) {
            Syntax::Mms => mms_into(v, r),
            Syntax::Acse => self.acse(v, r, frame),
            Syntax::E2e => {
                let mut e = E2eCtx {
                    tracker: &mut self.e2e,
                    dir: self.dir,
                    replacement: &mut self.replacement,
                };
                e2e_transfer(v, r, self.limits.ber, self.now, &mut e)
            }
            Syntax::Other(Some(o)) => r.notes.push(format!("context {ctx} ({o}) not decoded")),
            Syntax::Other(None) => r
                .problems
                .push(format!("context {ctx} not defined in the CP-type")),
        }
    }

    fn acse(&mut self, v: &[u8], r: &mut PduRecord, frame: FrameInfo) {
        r.layers.push("acse");
        let apdu = match Apdu::decode(v, self.limits.ber) {
            Ok(a) => a,
            Err(e) => return r.problems.push(format!("ACSE: {e}")),
        };
        let now = frame.time_ns.map(|t| t.div_euclid(1_000_000_000) as i64);
        let (name, env, ui) = match &apdu {
            Apdu::Aarq(a) => {
                if a.calling_authentication_value.is_some() || a.mechanism_name.is_some() {
                    aprofile_into(
                        a.calling_authentication_value.as_ref(),
                        now,
                        self.anchors.as_ref().map(|a| &*a.0),
                        r,
                    );
                }
                ("AARQ", EnvApdu::Aarq, &a.user_information)
            }
            Apdu::Aare(a) => {
                r.result = Some(match a.result {
                    0 => "accepted".to_string(),
                    1 => format!("rejected-permanent ({:?})", a.result_source_diagnostic),
                    2 => format!("rejected-transient ({:?})", a.result_source_diagnostic),
                    n => format!("result {n}"),
                });
                if a.responding_authentication_value.is_some() || a.mechanism_name.is_some() {
                    aprofile_into(
                        a.responding_authentication_value.as_ref(),
                        now,
                        self.anchors.as_ref().map(|a| &*a.0),
                        r,
                    );
                }
                ("AARE", EnvApdu::Aare, &a.user_information)
            }
            Apdu::Rlrq(x) => ("RLRQ", EnvApdu::Rlrq, &x.user_information),
            Apdu::Rlre(x) => ("RLRE", EnvApdu::Rlre, &x.user_information),
            Apdu::Abrt(x) => {
                r.result = Some(format!("abort, source {}", x.source));
                ("ABRT", EnvApdu::Abrt, &x.user_information)
            }
        };
        r.pdu = name.into();
        for e in ui.clone() {
            self.external(&e, env, r);
        }
    }

    fn external(&mut self, e: &External, env: EnvApdu, r: &mut PduRecord) {
        let ExternalEncoding::SingleAsn1Type(v) = &e.encoding else {
            return r.notes.push("EXTERNAL not single-ASN1-type".into());
        };
        let ctx = e.indirect_reference.and_then(|c| u32::try_from(c).ok());
        let syn = match ctx {
            Some(c) => self.syntax(c, v, r),
            None => Syntax::Mms,
        };
        match syn {
            Syntax::E2e => match wire::decode(env, v, self.limits.ber) {
                Ok(EnvValue::SecPdu { kind, pdu }) => secpdu_into(
                    kind,
                    &pdu,
                    r,
                    self.limits.ber,
                    self.now,
                    self.anchors.as_ref().map(|a| &*a.0),
                    &mut E2eCtx {
                        tracker: &mut self.e2e,
                        dir: self.dir,
                        replacement: &mut self.replacement,
                    },
                ),
                Ok(EnvValue::OsiDiag(n)) => {
                    r.layers.push("e2e");
                    r.result = Some(format!("OsiDiagnostics {n}"));
                }
                Err(err) => {
                    r.layers.push("e2e");
                    r.problems.push(format!("E2E environment: {err}"));
                }
            },
            _ => mms_into(v, r),
        }
    }
}

impl StreamDecoder {
    /// The presentation context of MMS (the IEC 61850 default 3 when none was captured).
    fn mms_context(&self) -> u32 {
        self.contexts
            .iter()
            .find(|(_, s)| **s == Syntax::Mms)
            .map_or(3, |(id, _)| *id)
    }
}

/// Appends a TSDU carrying `mms` as P-DATA on context `pcid` (session DT with the Give-Tokens
/// prefix, presentation fully-encoded data), cut into class 0 DTs and TPKTs.
fn export_mms(pcid: u32, mms: Vec<u8>, out: &mut Vec<u8>) {
    let mut spdu = vec![0x01, 0x00, 0x01, 0x00];
    spdu.extend(UserData::single(pcid, mms).encode());
    // A TPKT holds at most 65 535 octets: 4 of TPKT header, 3 of DT header.
    let chunks: Vec<&[u8]> = spdu.chunks(65_535 - 7).collect();
    let n = chunks.len();
    for (k, c) in chunks.into_iter().enumerate() {
        let t = Tpdu::Dt(secmms_osi::cotp::DataTpdu {
            eot: k + 1 == n,
            data: c.to_vec(),
        });
        if let Some(b) = t
            .encode()
            .ok()
            .and_then(|b| secmms_osi::tpkt::encode(&b).ok())
        {
            out.extend_from_slice(&b);
        }
    }
}

/// What the E2E checks of one PDU need of the stream.
struct E2eCtx<'a> {
    tracker: &'a mut crate::e2e::E2eTracker,
    dir: Direction,
    replacement: &'a mut Option<Vec<u8>>,
}

/// Adds the MMS summary of `v` to `r`.
fn mms_into(v: &[u8], r: &mut PduRecord) {
    r.layers.push("mms");
    match crate::mms::summarize(v) {
        Ok(s) => {
            r.pdu = s.pdu.to_string();
            r.service = s.service;
            r.invoke_id = s.invoke_id;
            r.objects = s.objects;
            if s.more_objects > 0 {
                r.notes
                    .push(format!("{} more object names", s.more_objects));
            }
            if s.result.is_some() {
                r.result = s.result;
            }
        }
        Err(e) => r.problems.push(format!("MMS: {e}")),
    }
}

fn merge_verified(r: &mut PduRecord, ok: bool) {
    r.verified = Some(r.verified.unwrap_or(true) && ok);
}

fn chain_note(anchors: Option<&dyn secmms_pki::CertValidator>) -> &'static str {
    if anchors.is_some() {
        "chain and Annex G validated"
    } else {
        "chain not checked"
    }
}

fn aprofile_into(
    av: Option<&secmms_osi::acse::AuthenticationValue>,
    now: Option<i64>,
    anchors: Option<&dyn secmms_pki::CertValidator>,
    r: &mut PduRecord,
) {
    r.layers.push("aprofile");
    match verify_aprofile(av, now, anchors) {
        Ok(v) => {
            merge_verified(r, true);
            r.notes.push(format!(
                "A-profile: certificate sha256 {}, time {}, signature verified ({})",
                v.fingerprint,
                v.time,
                chain_note(anchors)
            ));
        }
        Err(e) => {
            merge_verified(r, false);
            r.problems.push(format!("A-profile: {e}"));
        }
    }
}

fn secpdu_into(
    kind: SecPduKind,
    pdu: &[u8],
    r: &mut PduRecord,
    ber: secmms_ber::Limits,
    now: Option<i64>,
    anchors: Option<&dyn secmms_pki::CertValidator>,
    e2e: &mut E2eCtx<'_>,
) {
    r.layers.push("e2e");
    if matches!(kind, SecPduKind::ClearTransfer | SecPduKind::EncrTransfer) {
        // Decoded once, as a view borrowing the PDU: the MMS inside and the key check both
        // read it.
        let encrypted = kind == SecPduKind::EncrTransfer;
        let t = match TransferView::decode(encrypted, pdu, ber) {
            Ok(t) => t,
            Err(e) => {
                r.pdu = kind_name(kind).into();
                return r.problems.push(format!("{}: {e}", kind_name(kind)));
            }
        };
        transfer_into(kind, &t, r, e2e);
    } else {
        let decoded = match SecPdu::decode(kind, pdu, ber) {
            Ok(p) => p,
            Err(e) => {
                r.pdu = kind_name(kind).into();
                return r.problems.push(format!("{}: {e}", kind_name(kind)));
            }
        };
        // The PrPDU inside a handshake is plain MMS.
        if let SecPdu::HandshakeReq(h) | SecPdu::HandshakeAcc(h) = &decoded {
            if let Some(m) = &h.appl_data {
                mms_into(m, r);
            }
        }
        if let SecPdu::HandshakeReq(h) = &decoded {
            e2e.tracker.handshake_req(&h.tbs);
        }
        match verify_e2e(&decoded, now, anchors) {
            Some(Ok(())) => {
                merge_verified(r, true);
                r.notes.push(format!(
                    "{} signature verified ({})",
                    kind_name(kind),
                    chain_note(anchors)
                ));
            }
            Some(Err(e)) => {
                merge_verified(r, false);
                r.problems.push(format!("{}: {e}", kind_name(kind)));
            }
            None => {}
        }
    }
    if inner_is_none(&r.pdu) {
        r.pdu = kind_name(kind).into();
    } else {
        r.pdu = format!("{}/{}", kind_name(kind), r.pdu);
    }
}

/// A decoded ClearTransfer or EncrTransfer: the MMS inside (in the clear, or once decrypted)
/// and the ICV / AEAD tag checked with the E2E key log.
fn transfer_into(kind: SecPduKind, t: &TransferView<'_>, r: &mut PduRecord, e2e: &mut E2eCtx<'_>) {
    use crate::e2e::Checked;
    let clear = kind == SecPduKind::ClearTransfer;
    // The PrPDU inside a ClearTransfer is plain MMS.
    if clear {
        mms_into(t.appl_data, r);
    }
    match e2e.tracker.check_view(e2e.dir, kind, t) {
        Checked::Unchecked(note) => r.notes.push(note),
        Checked::Verified { generation, plain } => {
            merge_verified(r, true);
            match plain {
                Some(p) => {
                    r.notes.push(format!(
                        "EncrTransfer verified and decrypted (E2E key generation {generation})"
                    ));
                    mms_into(&p, r);
                    *e2e.replacement = Some(p);
                }
                None => {
                    r.notes.push(format!(
                        "ClearTransfer ICV verified (E2E key generation {generation})"
                    ));
                    *e2e.replacement = clear.then(|| t.appl_data.to_vec());
                }
            }
        }
        Checked::Failed(p) => {
            merge_verified(r, false);
            r.problems.push(p);
        }
    }
}

fn inner_is_none(pdu: &str) -> bool {
    matches!(
        pdu,
        "" | "CN"
            | "AC"
            | "DT"
            | "FN"
            | "DN"
            | "AB"
            | "CP"
            | "CPA"
            | "AARQ"
            | "AARE"
            | "RLRQ"
            | "RLRE"
            | "ABRT"
            | "ARU"
    )
}

fn e2e_transfer(
    v: &[u8],
    r: &mut PduRecord,
    ber: secmms_ber::Limits,
    now: Option<i64>,
    e2e: &mut E2eCtx<'_>,
) {
    match wire::transfer_kind(v, ber) {
        // Transfers carry no certificate: no anchors needed.
        Some(kind) => secpdu_into(kind, v, r, ber, now, None, e2e),
        None => {
            r.layers.push("e2e");
            r.problems
                .push("E2E transfer: not a ClearTransfer or EncrTransfer".into());
        }
    }
}
