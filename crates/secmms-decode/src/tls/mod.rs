//! TLS decryption from an NSS key log (`--tls-keylog`): TLS 1.3 with the AES-GCM suites
//! (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384) across KeyUpdates, and TLS 1.2 with the
//! AES-GCM and AES-CBC suites ([`tls12::Suite12`]) across renegotiations.
//!
//! The key log gives the secrets of each connection, found by the ClientHello random.
//!
//! * TLS 1.3: the handshake and first application traffic secrets. Record keys and IVs are
//!   derived with OpenSSL's HKDF (RFC 8446 §7.1 HKDF-Expand-Label, §7.3), records opened with
//!   OpenSSL's AES-GCM.
//! * TLS 1.2: the master secret (`CLIENT_RANDOM` lines). The key block is OpenSSL's TLS 1.2 PRF
//!   (RFC 5246 §6.3, "key expansion" over the ServerHello and ClientHello randoms), the suite and
//!   encrypt-then-MAC (RFC 7366) come from the ServerHello, and each direction switches to its new
//!   keys at its ChangeCipherSpec. AES-GCM records (RFC 5288: implicit salt + explicit nonce,
//!   AAD = sequence number, type, version, length) are opened with OpenSSL's AES-GCM; AES-CBC
//!   records have their padding and HMAC checked (OpenSSL's HMAC, constant-time comparison). A
//!   renegotiation (a new handshake inside the encrypted stream) gives new randoms and so new
//!   keys, from the key log's line for the new ClientHello random. Extended master secret
//!   (RFC 7627) changes nothing here: the key log holds the master secret itself. A resumed
//!   session is decrypted when the key log has a line for its ClientHello random.
//!
//! Nothing cryptographic is computed here; the private module `prf` holds the only OpenSSL calls
//! the `openssl` crate does not wrap (the TLS 1.2 PRF's setters). What cannot be decrypted (TLS 1.0/1.1, other suites, a connection
//! without key-log secrets, a record that does not authenticate) stops decryption of that
//! stream with a problem saying why.
//!
//! Key-log lines (NSS format): `LABEL <client random, 64 hex> <secret, hex>`; `#` comments.

use std::collections::HashMap;

use openssl::md::Md;
use openssl::pkey::Id;
use openssl::pkey_ctx::{HkdfMode, PkeyCtx};

/// OpenSSL's TLS 1.2 PRF: three OpenSSL 3 functions the `openssl` crate does not wrap. This is
/// the crate's only `unsafe` code; it is private, behind one safe function.
#[allow(unsafe_code)]
mod prf;
pub mod tls12;

use tls12::{DirectionKeys, Suite12};

/// Largest key log read. DECISION: 64 MiB (a line per secret, five per connection: about
/// 100 000 connections).
pub const MAX_KEYLOG_LEN: usize = 64 << 20;
/// Largest TLS record body accepted: TLS 1.2's bound on a protected record (RFC 5246 §6.2.3:
/// 2^14 + 2048 octets), which also covers TLS 1.3's (RFC 8446 §5.2: 2^14 + 256).
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
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

/// Most octets of a client random or secret in a key-log line.
const MAX_KEYLOG_VALUE: usize = 128;

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
            let random: [u8; 32] = secmms_ber::hex::decode_bounded(random, MAX_KEYLOG_VALUE)
                .and_then(|r| r.try_into().ok())
                .ok_or(KeyLogError::Line(n + 1))?;
            let secret = secmms_ber::hex::decode_bounded(secret, MAX_KEYLOG_VALUE)
                .ok_or(KeyLogError::Line(n + 1))?;
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

#[derive(Debug)]
struct TrafficKey {
    secret: Vec<u8>,
    /// The record key, keyed once for the records of this secret.
    key: secmms_pki::crypto::GcmOpener,
    iv: Vec<u8>,
    seq: u64,
}

impl TrafficKey {
    fn new(suite: Suite, secret: &[u8]) -> Option<TrafficKey> {
        Some(TrafficKey {
            key: secmms_pki::crypto::GcmOpener::new(&expand_label(
                suite,
                secret,
                "key",
                suite.key_len(),
            )?)
            .ok()?,
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
        self.key
            .open(&nonce, header, body, 16)
            .ok()
            .map(|mut p| std::mem::take(&mut *p))
    }
}

/// The keys that open the records of a direction.
#[derive(Debug)]
enum RecordKey {
    Tls13(TrafficKey),
    Tls12(DirectionKeys),
}

#[derive(Debug, Default)]
struct Half {
    buf: Vec<u8>,
    handshake: Vec<u8>,
    key: Option<RecordKey>,
    /// TLS 1.2: keys of the last ServerHello, taken at this direction's ChangeCipherSpec.
    pending: Option<DirectionKeys>,
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
    /// TLS 1.2 handshakes that gave keys (more than one: renegotiations).
    tls12_handshakes: u32,
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
        for h in &mut self.halves {
            h.buf = Vec::new();
            h.handshake = Vec::new();
        }
        out.push(TlsOutput::Problem(why));
    }

    /// Octets held for an incomplete record, the larger of the two directions (fuzzing checks
    /// that it stays below one record).
    pub(crate) fn buffered(&self) -> usize {
        self.halves[0].buf.len().max(self.halves[1].buf.len())
    }

    fn record(&mut self, dir: usize, rec: &[u8], keys: &KeyLog, out: &mut Vec<TlsOutput>) {
        let (header, body) = rec.split_at(5);
        let tls12_keyed = matches!(self.halves[dir].key, Some(RecordKey::Tls12(_)));
        match header[0] {
            // change_cipher_spec in clear: TLS 1.2's first one, or TLS 1.3's compatibility one.
            20 if !tls12_keyed => self.change_cipher_spec(dir, out),
            21 if self.halves[dir].key.is_none() => out.push(TlsOutput::Note(format!(
                "TLS alert {:?}",
                body.get(..2).unwrap_or(body)
            ))),
            22 if self.halves[dir].key.is_none() => self.handshake(dir, body, keys, out),
            _ => match self.halves[dir].key.as_mut() {
                None => self.stop(out, "encrypted TLS record without a key".into()),
                Some(RecordKey::Tls13(key)) => {
                    let Some(plain) = key.open(header, body) else {
                        return self.stop(
                            out,
                            "TLS record does not authenticate with the key log's secret".into(),
                        );
                    };
                    self.tls13_plaintext(dir, plain, keys, out);
                }
                Some(RecordKey::Tls12(key)) => {
                    let seq = key.seq();
                    match key.open(header, body) {
                        Ok(plain) => self.tls12_plaintext(dir, header[0], plain, keys, out),
                        Err(e) => self.stop(out, format!("TLS 1.2 record {seq} {e}")),
                    }
                }
            },
        }
    }

    fn tls13_plaintext(
        &mut self,
        dir: usize,
        mut plain: Vec<u8>,
        keys: &KeyLog,
        out: &mut Vec<TlsOutput>,
    ) {
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

    /// A TLS 1.2 record opened: its content type is the record header's.
    fn tls12_plaintext(
        &mut self,
        dir: usize,
        kind: u8,
        plain: Vec<u8>,
        keys: &KeyLog,
        out: &mut Vec<TlsOutput>,
    ) {
        match kind {
            23 => {
                let from_client = self.client_dir == Some(dir);
                out.push(TlsOutput::Plain(from_client, plain));
            }
            22 => self.handshake(dir, &plain, keys, out),
            21 => out.push(TlsOutput::Note(format!(
                "TLS alert {:?}",
                plain.get(..2).unwrap_or(&plain)
            ))),
            // The ChangeCipherSpec of a renegotiation, under the keys it replaces.
            20 => self.change_cipher_spec(dir, out),
            t => self.stop(out, format!("TLS 1.2 record of unknown content type {t}")),
        }
    }

    /// ChangeCipherSpec from `dir`: in TLS 1.2 this direction's records use the keys of the last
    /// ServerHello from here on; in TLS 1.3 it means nothing (RFC 8446 §D.4).
    fn change_cipher_spec(&mut self, dir: usize, out: &mut Vec<TlsOutput>) {
        let Some(k) = self.halves[dir].pending.take() else {
            return;
        };
        let renegotiated = matches!(self.halves[dir].key, Some(RecordKey::Tls12(_)));
        self.halves[dir].key = Some(RecordKey::Tls12(k));
        if renegotiated {
            let who = if self.client_dir == Some(dir) {
                "client"
            } else {
                "server"
            };
            out.push(TlsOutput::Note(format!(
                "TLS 1.2 renegotiation: the {who} switched to the new keys"
            )));
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
            0 if self.tls12_handshakes > 0 => out.push(TlsOutput::Note(
                "TLS 1.2 HelloRequest: the server asks for a renegotiation".into(),
            )),
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
                    Some(k) => self.halves[dir].key = Some(RecordKey::Tls13(k)),
                    None => self.stop(out, "application traffic keys not derivable".into()),
                }
            }
            24 => {
                // KeyUpdate: next secret = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length).
                let Some(suite) = self.suite else { return };
                let Some(RecordKey::Tls13(current)) = self.halves[dir].key.as_ref() else {
                    return;
                };
                let old = current.secret.clone();
                match expand_label(suite, &old, "traffic upd", suite.hash_len())
                    .and_then(|s| TrafficKey::new(suite, &s))
                {
                    Some(k) => {
                        self.halves[dir].key = Some(RecordKey::Tls13(k));
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
        // legacy_version(2) random(32) session_id<0..32> cipher_suite(2) compression(1)
        // extensions<..> (absent from a TLS 1.2 ServerHello without extensions).
        let parsed = (|| {
            let version = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
            let server_random: [u8; 32] = body.get(2..34)?.try_into().ok()?;
            let sid = usize::from(*body.get(34)?);
            let at = 35 + sid;
            let suite = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
            body.get(at + 2)?;
            let mut ext: &[u8] = if body.len() == at + 3 {
                &[]
            } else {
                let ext_len =
                    usize::from(u16::from_be_bytes([*body.get(at + 3)?, *body.get(at + 4)?]));
                body.get(at + 5..at + 5 + ext_len)?
            };
            let (mut tls13, mut etm) = (false, false);
            while ext.len() >= 4 {
                let t = u16::from_be_bytes([ext[0], ext[1]]);
                let l = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
                let v = ext.get(4..4 + l)?;
                match t {
                    0x002b if v == [3, 4] => tls13 = true,
                    0x0016 => etm = true,
                    _ => {}
                }
                ext = &ext[4 + l..];
            }
            Some(Hello {
                version,
                server_random,
                suite,
                tls13,
                etm,
            })
        })();
        let Some(hello) = parsed else {
            return self.stop(out, "ServerHello malformed".into());
        };
        let secrets = self.random.and_then(|r| keys.by_random.get(&r));
        if !hello.tls13 {
            return self.tls12_server_hello(client, dir, &hello, secrets, out);
        }
        let code = hello.suite;
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
        self.halves[client].key = Some(RecordKey::Tls13(ck));
        self.halves[client].app_secret = s.client_app.clone();
        self.halves[dir].key = Some(RecordKey::Tls13(sk));
        self.halves[dir].app_secret = s.server_app.clone();
        out.push(TlsOutput::Note(format!(
            "TLS 1.3 {code:#06x}: keys from the key log"
        )));
    }

    /// A TLS 1.2 ServerHello (first handshake or renegotiation): keys for both directions, taken
    /// into use at each direction's ChangeCipherSpec.
    fn tls12_server_hello(
        &mut self,
        client: usize,
        server: usize,
        hello: &Hello,
        secrets: Option<&Secrets>,
        out: &mut Vec<TlsOutput>,
    ) {
        if hello.version != 0x0303 {
            return self.stop(
                out,
                format!(
                    "TLS version {:#06x} not decrypted (TLS 1.2 and 1.3 only)",
                    hello.version
                ),
            );
        }
        let Some(suite) = Suite12::from_code(hello.suite) else {
            return self.stop(
                out,
                format!(
                    "TLS 1.2 suite {:#06x} not decrypted (AES-GCM and AES-CBC suites only)",
                    hello.suite
                ),
            );
        };
        let (Some(client_random), Some(master)) =
            (self.random, secrets.and_then(|s| s.tls12_master.as_ref()))
        else {
            return self.stop(
                out,
                "TLS 1.2: no master secret (CLIENT_RANDOM line) in the key log for this \
                 connection's ClientHello random"
                    .into(),
            );
        };
        match tls12::key_block(
            suite,
            master,
            &client_random,
            &hello.server_random,
            hello.etm,
        ) {
            Ok((client_keys, server_keys)) => {
                self.halves[client].pending = Some(client_keys);
                self.halves[server].pending = Some(server_keys);
                self.tls12_handshakes += 1;
                let what = suite.describe(hello.etm);
                out.push(TlsOutput::Note(if self.tls12_handshakes == 1 {
                    format!("TLS 1.2 {what}: keys from the key log")
                } else {
                    format!(
                        "TLS 1.2 renegotiation {}: {what}, new keys from the key log",
                        self.tls12_handshakes - 1
                    )
                }));
            }
            Err(e) => self.stop(out, format!("TLS 1.2: {e}")),
        }
    }
}

/// What the ServerHello says.
struct Hello {
    version: u16,
    server_random: [u8; 32],
    suite: u16,
    tls13: bool,
    etm: bool,
}

#[cfg(test)]
mod tests {
    use super::tls12::{key_block, seal_gcm, Suite12};
    use super::*;

    const MASTER: [u8; 48] = [0x22; 48];

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 3, 3];
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 0, (body.len() >> 8) as u8, body.len() as u8];
        v.extend_from_slice(body);
        v
    }

    fn client_hello(random: [u8; 32]) -> Vec<u8> {
        let mut ch = vec![3, 3];
        ch.extend_from_slice(&random);
        ch.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0, 0, 0]);
        handshake(1, &ch)
    }

    /// A ServerHello for `suite`, with no extensions at all when `ext` is empty.
    fn server_hello(random: [u8; 32], suite: u16, ext: &[u8]) -> Vec<u8> {
        let mut sh = vec![3, 3];
        sh.extend_from_slice(&random);
        sh.push(0);
        sh.extend_from_slice(&suite.to_be_bytes());
        sh.push(0);
        if !ext.is_empty() {
            sh.extend_from_slice(&(ext.len() as u16).to_be_bytes());
            sh.extend_from_slice(ext);
        }
        handshake(2, &sh)
    }

    fn keylog(lines: &[([u8; 32], [u8; 48])]) -> KeyLog {
        let text: String = lines
            .iter()
            .map(|(r, m)| {
                let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
                format!("CLIENT_RANDOM {} {}\n", hex(r), hex(m))
            })
            .collect();
        KeyLog::parse(&text).unwrap()
    }

    fn plain(out: &[TlsOutput]) -> Vec<(bool, Vec<u8>)> {
        out.iter()
            .filter_map(|o| match o {
                TlsOutput::Plain(c, p) => Some((*c, p.clone())),
                _ => None,
            })
            .collect()
    }

    /// A TLS 1.2 AES-GCM session with a renegotiation inside the encrypted stream: the first
    /// keys from the first ClientHello random, the second from the renegotiation's, each
    /// direction switching at its own ChangeCipherSpec (encrypted under the old keys).
    #[test]
    fn tls12_gcm_session_with_renegotiation() {
        let (cr1, sr1, cr2, sr2) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);
        let master2 = [0x44u8; 48];
        let keys = keylog(&[(cr1, MASTER), (cr2, master2)]);
        let suite = Suite12::from_code(0xC02F).unwrap();
        let (c1, s1) = key_block(suite, &MASTER, &cr1, &sr1, false).unwrap();
        let (c2, s2) = key_block(suite, &master2, &cr2, &sr2, false).unwrap();
        let mut t = TlsStream::new();
        let mut out = Vec::new();
        // Client = TCP direction 0. No extensions in this ServerHello.
        t.push(0, &record(22, &client_hello(cr1)), &keys, &mut out);
        t.push(
            1,
            &record(22, &server_hello(sr1, 0xC02F, &[])),
            &keys,
            &mut out,
        );
        t.push(0, &record(20, &[1]), &keys, &mut out);
        t.push(
            0,
            &seal_gcm(&c1, 0, 22, &handshake(20, &[0; 12]), [0; 8]),
            &keys,
            &mut out,
        );
        t.push(1, &record(20, &[1]), &keys, &mut out);
        t.push(
            1,
            &seal_gcm(&s1, 0, 22, &handshake(20, &[0; 12]), [0; 8]),
            &keys,
            &mut out,
        );
        t.push(
            0,
            &seal_gcm(&c1, 1, 23, b"request", [1; 8]),
            &keys,
            &mut out,
        );
        t.push(
            1,
            &seal_gcm(&s1, 1, 23, b"response", [1; 8]),
            &keys,
            &mut out,
        );
        // Renegotiation: HelloRequest, ClientHello, ServerHello, both CCS under the old keys.
        t.push(
            1,
            &seal_gcm(&s1, 2, 22, &handshake(0, &[]), [2; 8]),
            &keys,
            &mut out,
        );
        t.push(
            0,
            &seal_gcm(&c1, 2, 22, &client_hello(cr2), [2; 8]),
            &keys,
            &mut out,
        );
        let sh2 = server_hello(sr2, 0xC02F, &[0xff, 0x01, 0, 1, 0]);
        t.push(1, &seal_gcm(&s1, 3, 22, &sh2, [3; 8]), &keys, &mut out);
        // Application data of the client under the old keys until its CCS.
        t.push(
            0,
            &seal_gcm(&c1, 3, 23, b"old keys", [3; 8]),
            &keys,
            &mut out,
        );
        t.push(0, &seal_gcm(&c1, 4, 20, &[1], [4; 8]), &keys, &mut out);
        t.push(
            0,
            &seal_gcm(&c2, 0, 22, &handshake(20, &[0; 12]), [0; 8]),
            &keys,
            &mut out,
        );
        t.push(1, &seal_gcm(&s1, 4, 20, &[1], [4; 8]), &keys, &mut out);
        t.push(
            1,
            &seal_gcm(&s2, 0, 22, &handshake(20, &[0; 12]), [0; 8]),
            &keys,
            &mut out,
        );
        t.push(
            0,
            &seal_gcm(&c2, 1, 23, b"new keys", [5; 8]),
            &keys,
            &mut out,
        );
        t.push(
            1,
            &seal_gcm(&s2, 1, 23, b"new too", [5; 8]),
            &keys,
            &mut out,
        );
        assert!(
            !out.iter().any(|o| matches!(o, TlsOutput::Problem(_))),
            "{out:?}"
        );
        assert_eq!(
            plain(&out),
            vec![
                (true, b"request".to_vec()),
                (false, b"response".to_vec()),
                (true, b"old keys".to_vec()),
                (true, b"new keys".to_vec()),
                (false, b"new too".to_vec()),
            ]
        );
        let notes: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                TlsOutput::Note(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        assert!(notes.contains(&"TLS 1.2 0xc02f AES-128-GCM: keys from the key log"));
        assert!(notes
            .contains(&"TLS 1.2 renegotiation 1: 0xc02f AES-128-GCM, new keys from the key log"));
        assert!(notes.contains(&"TLS 1.2 renegotiation: the client switched to the new keys"));
        assert!(notes.contains(&"TLS 1.2 renegotiation: the server switched to the new keys"));

        // The same session whose renegotiation random is not in the key log: the new keys are
        // missing, said so as a problem, and nothing after it is decoded.
        let keys = keylog(&[(cr1, MASTER)]);
        let mut t = TlsStream::new();
        let mut out = Vec::new();
        t.push(0, &record(22, &client_hello(cr1)), &keys, &mut out);
        t.push(
            1,
            &record(22, &server_hello(sr1, 0xC02F, &[])),
            &keys,
            &mut out,
        );
        t.push(0, &record(20, &[1]), &keys, &mut out);
        t.push(
            0,
            &seal_gcm(&c1, 0, 22, &client_hello(cr2), [0; 8]),
            &keys,
            &mut out,
        );
        t.push(1, &record(20, &[1]), &keys, &mut out);
        t.push(1, &seal_gcm(&s1, 0, 22, &sh2, [0; 8]), &keys, &mut out);
        t.push(
            0,
            &seal_gcm(&c2, 1, 23, b"new keys", [5; 8]),
            &keys,
            &mut out,
        );
        assert!(plain(&out).is_empty());
        let problems: Vec<_> = out
            .iter()
            .filter(|o| matches!(o, TlsOutput::Problem(_)))
            .collect();
        assert_eq!(problems.len(), 1, "{out:?}");
        assert!(format!("{problems:?}").contains("no master secret"));
    }

    #[test]
    fn tls12_refusals_are_problems() {
        let cr = [1u8; 32];
        let keys = keylog(&[(cr, MASTER)]);
        let run = |sh: Vec<u8>| {
            let mut t = TlsStream::new();
            let mut out = Vec::new();
            t.push(0, &record(22, &client_hello(cr)), &keys, &mut out);
            t.push(1, &record(22, &sh), &keys, &mut out);
            out
        };
        let problem = |out: Vec<TlsOutput>| match out.last() {
            Some(TlsOutput::Problem(p)) => p.clone(),
            o => panic!("{o:?}"),
        };
        assert!(problem(run(server_hello([2; 32], 0x000A, &[]))).contains("suite 0x000a"));
        let mut tls11 = server_hello([2; 32], 0xC02F, &[]);
        tls11[5] = 2;
        assert!(problem(run(tls11)).contains("version 0x0302"));
        let mut cut = server_hello([2; 32], 0xC02F, &[0, 0x16, 0, 0]);
        cut.truncate(cut.len() - 2);
        cut[3] -= 2;
        assert!(problem(run(cut)).contains("malformed"));
        // An encrypted record in the other direction before its ChangeCipherSpec.
        let mut t = TlsStream::new();
        let mut out = Vec::new();
        t.push(0, &record(22, &client_hello(cr)), &keys, &mut out);
        t.push(
            1,
            &record(22, &server_hello([2; 32], 0xC02F, &[])),
            &keys,
            &mut out,
        );
        t.push(0, &record(23, &[0; 40]), &keys, &mut out);
        assert!(matches!(out.last(), Some(TlsOutput::Problem(p)) if p.contains("without a key")));
        // Oversize record header.
        let mut t = TlsStream::new();
        let mut out = Vec::new();
        t.push(0, &[22, 3, 3, 0x48, 0x01], &keys, &mut out);
        assert!(matches!(out.last(), Some(TlsOutput::Problem(_))));
        assert_eq!(t.buffered(), 0);
    }
}
