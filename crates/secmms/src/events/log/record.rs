//! One record of the log ([`LogRecord`]): its canonical octets, its hash or HMAC, and the head
//! of the chain ([`LogHead`]) the writer and the verifier agree on.

use super::*;

/// One line of the log, as written and as parsed back by the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// Sequence number, 0 for the first record.
    pub seq: u64,
    /// RFC 3339 UTC time the sink wrote the record.
    pub time: String,
    /// Event id `DOMAIN:group.number` (§14.5).
    pub id: String,
    /// Catalogue mnemonic.
    pub mnemonic: String,
    /// Severity name ([`Severity::as_str`]).
    pub severity: String,
    /// Event message.
    pub message: String,
    /// Association concerned, if any (for an aggregate, the source the events came from).
    pub association: Option<String>,
    /// An aggregate: how many identical events (same id and source) this record stands for,
    /// absent for a single event ([`super::aggregate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// An aggregate: RFC 3339 UTC time of the first of its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    /// An aggregate: RFC 3339 UTC time of the last of its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// Chain algorithm: [`ALG_SHA256`] or [`ALG_HMAC_SHA256`].
    pub alg: String,
    /// Hash of the previous record (hex), [`GENESIS`] for the first.
    pub prev: String,
    /// Hash of this record (hex) over [`LogRecord::canonical`].
    pub hash: String,
}

pub(super) fn put_field(out: &mut Vec<u8>, v: &[u8]) {
    // Every field is bounded by MAX_LINE_LEN, far below u32::MAX.
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(v);
}

impl LogRecord {
    /// The canonical encoding that is hashed: [`CANONICAL_PREFIX`], `seq` as 8 octets
    /// big-endian, then `time`, `id`, `mnemonic`, `severity`, `message` each as a 4-octet
    /// big-endian length and the UTF-8 octets, then `association` as one octet 0 (absent) or
    /// 1 followed by length and octets, then `alg` and `prev` as length and octets; an
    /// aggregate then adds [`AGGREGATE_MARK`], `count` as 8 octets big-endian, and `first` and
    /// `last` as length and octets (a record without them encodes as before aggregates existed).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.message.len());
        out.extend_from_slice(CANONICAL_PREFIX);
        out.extend_from_slice(&self.seq.to_be_bytes());
        for f in [
            &self.time,
            &self.id,
            &self.mnemonic,
            &self.severity,
            &self.message,
        ] {
            put_field(&mut out, f.as_bytes());
        }
        match &self.association {
            None => out.push(0),
            Some(a) => {
                out.push(1);
                put_field(&mut out, a.as_bytes());
            }
        }
        put_field(&mut out, self.alg.as_bytes());
        put_field(&mut out, self.prev.as_bytes());
        if self.count.is_some() || self.first.is_some() || self.last.is_some() {
            out.extend_from_slice(AGGREGATE_MARK);
            out.extend_from_slice(&self.count.unwrap_or(0).to_be_bytes());
            for f in [&self.first, &self.last] {
                match f {
                    None => out.push(0),
                    Some(t) => {
                        out.push(1);
                        put_field(&mut out, t.as_bytes());
                    }
                }
            }
        }
        out
    }

    /// The hash of this record (hex): SHA-256 of [`LogRecord::canonical`] without a key,
    /// HMAC-SHA-256 with one. Ignores `alg`; the caller checks it matches the key.
    pub fn compute_hash(&self, key: Option<&LogKey>) -> Result<String, LogError> {
        let data = self.canonical();
        let digest = match key {
            None => openssl::sha::sha256(&data).to_vec(),
            Some(k) => {
                let pkey = PKey::hmac(&k.0)?;
                let mut s = Signer::new(MessageDigest::sha256(), &pkey)?;
                s.update(&data)?;
                s.sign_to_vec()?
            }
        };
        Ok(secmms_ber::hex::encode(&digest))
    }
}

pub(super) fn alg_for(key: Option<&LogKey>) -> &'static str {
    if key.is_some() {
        ALG_HMAC_SHA256
    } else {
        ALG_SHA256
    }
}

pub(super) fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The end of the chain: the last record's sequence number and hash. Its text form (and the
/// form [`LogHead::from_str`](std::str::FromStr) parses, used as `secmms log verify --anchor`)
/// is `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogHead {
    /// `seq` of the last record.
    pub seq: u64,
    /// `hash` of the last record (hex).
    pub hash: String,
}

impl std::fmt::Display for LogHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for LogHead {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not SEQ:HASH"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("`{seq}` is not a sequence number"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{hash}` is not 64 hex digits"));
        }
        Ok(LogHead {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}
