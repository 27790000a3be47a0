//! TLS 1.3 decryption from an NSS key log (`--tls-keylog`), AES-GCM suites
//! (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384), across KeyUpdates.
//!
//! The key log gives the handshake and first application traffic secrets of each connection,
//! found by the ClientHello random. Record keys and IVs are derived with OpenSSL's HKDF
//! (RFC 8446 §7.1 HKDF-Expand-Label, §7.3), records opened with OpenSSL's AES-GCM; nothing
//! cryptographic is computed here. TLS 1.2 (`CLIENT_RANDOM` lines) is recognised and reported
//! as not decrypted yet.
//!
//! Key-log lines (NSS format): `LABEL <client random, 64 hex> <secret, hex>`; `#` comments.

use std::collections::HashMap;

use openssl::md::Md;
use openssl::pkey::Id;
use openssl::pkey_ctx::{HkdfMode, PkeyCtx};

/// Largest key log read. DECISION: 64 MiB (a line per secret, five per connection: about
/// 100 000 connections).
pub const MAX_KEYLOG_LEN: usize = 64 << 20;
/// Largest TLS record (RFC 8446 §5.2: 2^14 + 256 octets of ciphertext).
pub const MAX_RECORD_LEN: usize = (1 << 14) + 256;
/// Largest handshake message reassembled (certificates included). DECISION: 64 KiB.
pub const MAX_HANDSHAKE_LEN: usize = 1 << 16;

/// Key-log errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLogError {
    /// The file exceeds [`MAX_KEYLOG_LEN`].
    #[error("key log larger than {MAX_KEYLOG_LEN} octets")]
    TooLarge,
    /// A line that is not `LABEL hex hex`.
    #[error("key log line {0} malformed")]
    Line(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Secrets {
    client_hs: Option<Vec<u8>>,
    server_hs: Option<Vec<u8>>,
    client_app: Option<Vec<u8>>,
    server_app: Option<Vec<u8>>,
    tls12_master: Option<Vec<u8>>,
}

/// Secrets of a key log, by ClientHello random.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLog {
    by_random: HashMap<[u8; 32], Secrets>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl KeyLog {
    /// Parses a key log. Unknown labels are skipped (other protocols share the format).
    pub fn parse(text: &str) -> Result<KeyLog, KeyLogError> {
        if text.len() > MAX_KEYLOG_LEN {
            return Err(KeyLogError::TooLarge);
        }
        let mut k = KeyLog::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_ascii_whitespace();
            let (Some(label), Some(random), Some(secret), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(KeyLogError::Line(n + 1));
            };
            let random: [u8; 32] = unhex(random)
                .and_then(|r| r.try_into().ok())
                .ok_or(KeyLogError::Line(n + 1))?;
            let secret = unhex(secret).ok_or(KeyLogError::Line(n + 1))?;
            let e = k.by_random.entry(random).or_default();
            match label {
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => e.client_hs = Some(secret),
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => e.server_hs = Some(secret),
                "CLIENT_TRAFFIC_SECRET_0" => e.client_app = Some(secret),
                "SERVER_TRAFFIC_SECRET_0" => e.server_app = Some(secret),
                "CLIENT_RANDOM" => e.tls12_master = Some(secret),
                _ => {}
            }
        }
        Ok(k)
    }

    /// Connections with at least one secret.
    pub fn len(&self) -> usize {
        self.by_random.len()
    }

    /// True when no secret was read.
    pub fn is_empty(&self) -> bool {
        self.by_random.is_empty()
    }
}

/// A TLS 1.3 AEAD suite handled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    Aes128Sha256,
    Aes256Sha384,
}

impl Suite {
    fn from_code(c: u16) -> Option<Suite> {
        match c {
            0x1301 => Some(Suite::Aes128Sha256),
            0x1302 => Some(Suite::Aes256Sha384),
            _ => None,
        }
    }
    fn md(self) -> &'static openssl::md::MdRef {
        match self {
            Suite::Aes128Sha256 => Md::sha256(),
            Suite::Aes256Sha384 => Md::sha384(),
        }
    }
    fn key_len(self) -> usize {
        match self {
            Suite::Aes128Sha256 => 16,
            Suite::Aes256Sha384 => 32,
        }
    }
    fn hash_len(self) -> usize {
        match self {
            Suite::Aes128Sha256 => 32,
            Suite::Aes256Sha384 => 48,
        }
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with OpenSSL's HKDF in expand-only mode.
fn expand_label(suite: Suite, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0); // empty context
    let mut ctx = PkeyCtx::new_id(Id::HKDF).ok()?;
    ctx.derive_init().ok()?;
    ctx.set_hkdf_md(suite.md()).ok()?;
    ctx.set_hkdf_mode(HkdfMode::EXPAND_ONLY).ok()?;
    ctx.set_hkdf_key(secret).ok()?;
    ctx.add_hkdf_info(&info).ok()?;
    let mut out = vec![0u8; len];
    ctx.derive(Some(&mut out)).ok()?;
    Some(out)
}

#[derive(Debug, Clone)]
struct TrafficKey {
    secret: Vec<u8>,
    key: Vec<u8>,
    iv: Vec<u8>,
    seq: u64,
}

impl TrafficKey {
    fn new(suite: Suite, secret: &[u8]) -> Option<TrafficKey> {
        Some(TrafficKey {
            key: expand_label(suite, secret, "key", suite.key_len())?,
            iv: expand_label(suite, secret, "iv", 12)?,
            secret: secret.to_vec(),
            seq: 0,
        })
    }
    fn open(&mut self, header: &[u8], body: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = self.iv.clone();
        for (i, b) in self.seq.to_be_bytes().iter().enumerate() {
            nonce[4 + i] ^= b;
        }
        self.seq += 1;
        secmms_pki::crypto::gcm_open(&self.key, &nonce, header, body, 16)
            .ok()
            .map(|z| z.to_vec())
    }
}

#[derive(Debug, Default)]
struct Half {
    buf: Vec<u8>,
    handshake: Vec<u8>,
    key: Option<TrafficKey>,
    app_secret: Option<Vec<u8>>,
    updates: u32,
}

/// What the TLS layer hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsOutput {
    /// Decrypted application data of a direction (`true` = from the TLS client).
    Plain(bool, Vec<u8>),
    /// A remark (handshake progress, KeyUpdate, alerts).
    Note(String),
    /// Something that stops decryption of the stream.
    Problem(String),
}

/// The TLS state of one TCP stream.
#[derive(Debug, Default)]
pub struct TlsStream {
    halves: [Half; 2],
    /// Which TCP direction (index 0 or 1) is the TLS client, once the ClientHello was seen.
    client_dir: Option<usize>,
    random: Option<[u8; 32]>,
    suite: Option<Suite>,
    stopped: bool,
}

/// True when `b` starts like a TLS handshake record (content type 22, version 3.x).
pub fn looks_like_tls(b: &[u8]) -> bool {
    b.len() >= 3 && b[0] == 22 && b[1] == 3 && b[2] <= 4
}

impl TlsStream {
    /// A new stream.
    pub fn new() -> Self {
        TlsStream::default()
    }

    /// Octets of TCP direction `dir` (0 or 1).
    pub fn push(&mut self, dir: usize, bytes: &[u8], keys: &KeyLog, out: &mut Vec<TlsOutput>) {
        if self.stopped {
            return;
        }
        self.halves[dir].buf.extend_from_slice(bytes);
        loop {
            let h = &mut self.halves[dir];
            if h.buf.len() < 5 {
                return;
            }
            let len = usize::from(u16::from_be_bytes([h.buf[3], h.buf[4]]));
            if len > MAX_RECORD_LEN || h.buf[1] != 3 {
                return self.stop(out, "not a TLS record".into());
            }
            if h.buf.len() < 5 + len {
                return;
            }
            let rec: Vec<u8> = h.buf.drain(..5 + len).collect();
            self.record(dir, &rec, keys, out);
            if self.stopped {
                return;
            }
        }
    }

    fn stop(&mut self, out: &mut Vec<TlsOutput>, why: String) {
        self.stopped = true;
        out.push(TlsOutput::Problem(why));
    }

    fn record(&mut self, dir: usize, rec: &[u8], keys: &KeyLog, out: &mut Vec<TlsOutput>) {
        let (header, body) = rec.split_at(5);
        match header[0] {
            20 => {} // change_cipher_spec (compatibility)
            21 if self.halves[dir].key.is_none() => out.push(TlsOutput::Note(format!(
                "TLS alert {:?}",
                body.get(..2).unwrap_or(body)
            ))),
            22 if self.halves[dir].key.is_none() => self.handshake(dir, body, keys, out),
            _ => {
                let Some(key) = self.halves[dir].key.as_mut() else {
                    return self.stop(out, "encrypted TLS record without a key".into());
                };
                let Some(mut plain) = key.open(header, body) else {
                    return self.stop(
                        out,
                        "TLS record does not authenticate with the key log's secret".into(),
                    );
                };
                // TLSInnerPlaintext: content, content type, zero padding (RFC 8446 §5.2).
                while plain.last() == Some(&0) {
                    plain.pop();
                }
                match plain.pop() {
                    Some(23) => {
                        let from_client = self.client_dir == Some(dir);
                        out.push(TlsOutput::Plain(from_client, plain));
                    }
                    Some(22) => self.handshake(dir, &plain, keys, out),
                    Some(21) => out.push(TlsOutput::Note(format!(
                        "TLS alert {:?}",
                        plain.get(..2).unwrap_or(&plain)
                    ))),
                    _ => self.stop(out, "decrypted TLS record without content type".into()),
                }
            }
        }
    }

    fn handshake(&mut self, dir: usize, data: &[u8], keys: &KeyLog, out: &mut Vec<TlsOutput>) {
        self.halves[dir].handshake.extend_from_slice(data);
        loop {
            let hs = &self.halves[dir].handshake;
            if hs.len() < 4 {
                return;
            }
            let len = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
            if len > MAX_HANDSHAKE_LEN {
                return self.stop(out, "TLS handshake message too long".into());
            }
            if hs.len() < 4 + len {
                return;
            }
            let msg: Vec<u8> = self.halves[dir].handshake.drain(..4 + len).collect();
            self.message(dir, msg[0], &msg[4..], keys, out);
            if self.stopped {
                return;
            }
        }
    }

    fn message(
        &mut self,
        dir: usize,
        kind: u8,
        body: &[u8],
        keys: &KeyLog,
        out: &mut Vec<TlsOutput>,
    ) {
        match kind {
            1 => {
                // ClientHello: legacy_version(2) random(32).
                self.client_dir = Some(dir);
                self.random = body.get(2..34).and_then(|r| r.try_into().ok());
            }
            2 => self.server_hello(dir, body, keys, out),
            20 => {
                // Finished: this direction switches to its application traffic secret.
                let (Some(suite), Some(secret)) = (self.suite, self.halves[dir].app_secret.clone())
                else {
                    return;
                };
                match TrafficKey::new(suite, &secret) {
                    Some(k) => self.halves[dir].key = Some(k),
                    None => self.stop(out, "application traffic keys not derivable".into()),
                }
            }
            24 => {
                // KeyUpdate: next secret = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length).
                let Some(suite) = self.suite else { return };
                let Some(old) = self.halves[dir].key.as_ref().map(|k| k.secret.clone()) else {
                    return;
                };
                match expand_label(suite, &old, "traffic upd", suite.hash_len())
                    .and_then(|s| TrafficKey::new(suite, &s))
                {
                    Some(k) => {
                        self.halves[dir].key = Some(k);
                        self.halves[dir].updates += 1;
                        out.push(TlsOutput::Note(format!(
                            "TLS KeyUpdate ({} in this direction)",
                            self.halves[dir].updates
                        )));
                    }
                    None => self.stop(out, "KeyUpdate keys not derivable".into()),
                }
            }
            _ => {}
        }
    }

    fn server_hello(&mut self, dir: usize, body: &[u8], keys: &KeyLog, out: &mut Vec<TlsOutput>) {
        let Some(client) = self.client_dir else {
            return self.stop(out, "ServerHello without a ClientHello".into());
        };
        // legacy_version(2) random(32) session_id<0..32> cipher_suite(2) compression(1) extensions<..>
        let parsed = (|| {
            let sid = usize::from(*body.get(34)?);
            let at = 35 + sid;
            let suite = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
            let ext_len = usize::from(u16::from_be_bytes([*body.get(at + 3)?, *body.get(at + 4)?]));
            let mut ext = body.get(at + 5..at + 5 + ext_len)?;
            let mut tls13 = false;
            while ext.len() >= 4 {
                let t = u16::from_be_bytes([ext[0], ext[1]]);
                let l = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
                let v = ext.get(4..4 + l)?;
                if t == 0x002b && v == [3, 4] {
                    tls13 = true;
                }
                ext = &ext[4 + l..];
            }
            Some((suite, tls13))
        })();
        let Some((code, tls13)) = parsed else {
            return self.stop(out, "ServerHello malformed".into());
        };
        let secrets = self.random.and_then(|r| keys.by_random.get(&r));
        if !tls13 {
            let why = if secrets.is_some_and(|s| s.tls12_master.is_some()) {
                "TLS 1.2: decryption not implemented yet (key log has the master secret)"
            } else {
                "TLS 1.2: not decrypted"
            };
            return self.stop(out, why.into());
        }
        let Some(suite) = Suite::from_code(code) else {
            return self.stop(
                out,
                format!("TLS 1.3 suite {code:#06x} not decrypted (AES-GCM only)"),
            );
        };
        let Some(s) = secrets else {
            return self.stop(
                out,
                "no key-log secrets for this connection's ClientHello random".into(),
            );
        };
        let (Some(chs), Some(shs)) = (&s.client_hs, &s.server_hs) else {
            return self.stop(out, "key log lacks the handshake traffic secrets".into());
        };
        self.suite = Some(suite);
        let (ck, sk) = (TrafficKey::new(suite, chs), TrafficKey::new(suite, shs));
        let (Some(ck), Some(sk)) = (ck, sk) else {
            return self.stop(out, "handshake keys not derivable".into());
        };
        self.halves[client].key = Some(ck);
        self.halves[client].app_secret = s.client_app.clone();
        self.halves[dir].key = Some(sk);
        self.halves[dir].app_secret = s.server_app.clone();
        out.push(TlsOutput::Note(format!(
            "TLS 1.3 {code:#06x}: keys from the key log"
        )));
    }
}
