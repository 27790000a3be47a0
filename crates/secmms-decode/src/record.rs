//! What the decoder reports: one [`PduRecord`] per PDU and a [`Notice`] for every other thing
//! worth saying (a gap, a truncated frame, a resynchronisation, an unreadable frame), and their
//! text and JSON forms.

use serde::Serialize;

/// One decoded PDU (one TPKT, or one TSDU reassembled from several DT TPDUs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PduRecord {
    /// Always `"pdu"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The frame whose octets completed the PDU.
    pub frame: u64,
    /// Capture time of that frame, `seconds.nanoseconds` since the Unix epoch.
    pub time: Option<String>,
    /// TCP stream number (from 0, as Wireshark's `tcp.stream`).
    pub stream: u64,
    /// `"c>s"` (from the side that opened the connection) or `"s>c"`.
    pub direction: &'static str,
    /// Source `address:port`.
    pub src: String,
    /// Destination `address:port`.
    pub dst: String,
    /// Stream offset of the first TPKT of the PDU in its direction.
    pub offset: u64,
    /// Layers decoded, outermost first: `tls`, `tpkt`, `cotp`, `ses`, `pres`, `acse`,
    /// `aprofile`, `mms`, `e2e`.
    pub layers: Vec<&'static str>,
    /// The innermost PDU decoded, e.g. `CR`, `AARQ`, `confirmed-RequestPDU`, `ClearTransfer`.
    pub pdu: String,
    /// The MMS service (`read`, `getNameList`, …), if any.
    pub service: Option<String>,
    /// The MMS invokeID, if the PDU has one.
    pub invoke_id: Option<u32>,
    /// MMS object names: `domain/item` or a VMD-specific `item`.
    pub objects: Vec<String>,
    /// The outcome: MMS response result, ACSE associate result, session refusal, abort.
    pub result: Option<String>,
    /// Signatures checked: `true` all verified, `false` one failed, `null` nothing to verify.
    pub verified: Option<bool>,
    /// Problems: malformed layers and failed verifications. Non-empty means exit status 1.
    pub problems: Vec<String>,
    /// Other remarks: assumed presentation contexts, what could not be checked.
    pub notes: Vec<String>,
    /// The `-V` tree; not part of the JSON form.
    #[serde(skip)]
    pub tree: Vec<String>,
}

/// Something the decoder reports that is not a PDU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// Always `"event"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Frame concerned (0 when at the end of the capture).
    pub frame: u64,
    /// Stream concerned, if any.
    pub stream: Option<u64>,
    /// Direction concerned, if any.
    pub direction: Option<&'static str>,
    /// What happened: `capture-error`, `link-error`, `truncated`, `gap`, `resync`,
    /// `resync-failed`, `not-rfc1006`, `malformed`, `stream-open`, `evicted`, `tls`, `fragment`
    /// (an IPv4 datagram whose fragments could not be reassembled).
    pub event: &'static str,
    /// Details in words.
    pub detail: String,
    /// True when this counts as a problem (exit status 1).
    pub problem: bool,
}

/// Either output item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A PDU.
    Pdu(Box<PduRecord>),
    /// A notice.
    Notice(Notice),
}

/// Formats nanoseconds since the epoch as `seconds.nanoseconds`.
pub fn format_time(ns: i128) -> String {
    let s = ns.div_euclid(1_000_000_000);
    let n = ns.rem_euclid(1_000_000_000);
    format!("{s}.{n:09}")
}

impl PduRecord {
    /// The one-line form: time, stream and direction, layers, PDU, service, invokeID, objects,
    /// result, verification, problems.
    pub fn line(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_line(&mut s);
        s
    }

    /// Appends the one-line form ([`PduRecord::line`]) to `s`, without a newline.
    pub fn write_line(&self, s: &mut impl std::fmt::Write) -> std::fmt::Result {
        write!(
            s,
            "{:>6} {} {}#{} ",
            self.frame,
            self.time.as_deref().unwrap_or("-"),
            self.stream,
            self.direction
        )?;
        for (k, l) in self.layers.iter().enumerate() {
            if k > 0 {
                s.write_char('/')?;
            }
            s.write_str(l)?;
        }
        s.write_char(' ')?;
        s.write_str(&self.pdu)?;
        if let Some(svc) = &self.service {
            s.write_char(' ')?;
            s.write_str(svc)?;
        }
        if let Some(id) = self.invoke_id {
            write!(s, " id={id}")?;
        }
        for (k, o) in self.objects.iter().enumerate() {
            s.write_char(if k == 0 { ' ' } else { ',' })?;
            s.write_str(o)?;
        }
        if let Some(r) = &self.result {
            write!(s, " [{r}]")?;
        }
        match self.verified {
            Some(true) => s.write_str(" verified")?,
            Some(false) => s.write_str(" VERIFICATION-FAILED")?,
            None => {}
        }
        for p in &self.problems {
            write!(s, " !{p}")?;
        }
        for n in &self.notes {
            write!(s, " ({n})")?;
        }
        Ok(())
    }

    /// True when the PDU counts against exit status 0.
    pub fn has_problem(&self) -> bool {
        !self.problems.is_empty() || self.verified == Some(false)
    }
}

impl Notice {
    /// The one-line form.
    pub fn line(&self) -> String {
        let mut s = format!("{:>6} ", self.frame);
        if let Some(st) = self.stream {
            s.push_str(&format!("{st}#{} ", self.direction.unwrap_or("")));
        }
        s.push_str(&format!(
            "{}{}: {}",
            if self.problem { "!" } else { "" },
            self.event,
            self.detail
        ));
        s
    }
}

impl Item {
    /// JSON (one object).
    pub fn json(&self) -> String {
        let mut v = Vec::new();
        self.write_json(&mut v);
        // serde_json writes UTF-8 only.
        String::from_utf8(v).unwrap_or_default()
    }

    /// Appends the JSON form ([`Item::json`]) to `out`, without a newline: a caller writing
    /// many items reuses one buffer.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let r = match self {
            Item::Pdu(p) => serde_json::to_writer(&mut *out, p),
            Item::Notice(n) => serde_json::to_writer(&mut *out, n),
        };
        // Serialising these plain structures cannot fail; keep a visible fallback anyway.
        if let Err(e) = r {
            out.truncate(start);
            out.extend_from_slice(format!("{{\"type\":\"error\",\"detail\":\"{e}\"}}").as_bytes());
        }
    }
    /// True when the item counts against exit status 0.
    pub fn has_problem(&self) -> bool {
        match self {
            Item::Pdu(p) => p.has_problem(),
            Item::Notice(n) => n.problem,
        }
    }
}
