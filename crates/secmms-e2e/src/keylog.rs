//! The E2E key log: the traffic keys of an association, per key generation, as one text line
//! each, so that a capture of the association can be checked and decrypted afterwards
//! (`secmms decode --e2e-keylog`). The analogue of the NSS key log of TLS.
//!
//! The engine never writes a file. When key export is switched on for an association
//! ([`E2eClient::export_keys`](crate::E2eClient::export_keys),
//! [`E2eEngine::export_keys`](crate::E2eEngine::export_keys)), it queues one [`KeyMaterial`]
//! after each key derivation (the handshake, then every rekey) together with an
//! `E2E_KEYLOG_ACTIVE` warning event; the owner polls it
//! ([`E2eClient::poll_key_material`](crate::E2eClient::poll_key_material)) and writes
//! [`KeyMaterial::line`] wherever it was told to. Only derived traffic keys leave the engine,
//! never a private key, a Diffie-Hellman secret or the HKDF salt chain.
//!
//! # Line format
//!
//! ```text
//! E2E_TRAFFIC_KEYS <handshake-id> <generation> <mode> <c2s-enc> <c2s-icv> <s2c-enc> <s2c-icv>
//! ```
//!
//! Fields are separated by one or more spaces or tabs:
//!
//! * `handshake-id` — 64 lower-case hex digits: SHA-256 of the `tbs` content octets of the
//!   association's HandshakeReq as sent (BER: without the `tbs` tag and length; XML: the
//!   characters between `<tbs>` and `</tbs>`), the octets its signature covers. A decoder
//!   computes the same value from the captured HandshakeReq ([`handshake_id`]).
//! * `generation` — decimal: 0 for the keys derived from the handshake (§13.3.1.3), `k` for the
//!   keys after the `k`-th rekey (§13.3.2). One line per association and per generation.
//! * `mode` — the agreed protection ([`mode_name`]): `aes128-gcm` or `aes256-gcm`
//!   (authenticated encryption), `hmac-sha256`, `gmac128` or `gmac256` (ICV only), or
//!   `aes128-cbc+<icv>` / `aes256-cbc+<icv>` (AES-CBC then ICV).
//! * the four keys — lower-case hex, `-` where the mode has none: the encryption key and the
//!   ICV key of the client → server direction, then those of the server → client direction
//!   (`K_c2s`, `I_c2s`, `K_s2c`, `I_s2c` of §13.3.1.3).
//!
//! Empty lines, lines starting with `#` and lines with another first word (an NSS TLS key log
//! in the same file) are ignored by [`E2eKeyLog::parse`].

use std::collections::HashMap;

use secmms_ber::hex;
use secmms_pki::crypto::{sha256, SHA256_LEN};
use zeroize::Zeroizing;

use crate::alg::{AeAlg, EncrAlg, IcvAlg};
use crate::keys::{KeySet, ProtectionMode};

/// The first word of a key-log line.
pub const LABEL: &str = "E2E_TRAFFIC_KEYS";

/// Longest key-log line accepted by the parser (a line is under 400 characters).
pub const MAX_LINE_LEN: usize = 1024;

/// Most lines [`E2eKeyLog::parse`] keeps (memory bound on a hostile file).
pub const MAX_ENTRIES: usize = 100_000;

/// The handshake identifier of a key-log line: SHA-256 of the HandshakeReq `tbs` content
/// octets (as signed).
pub fn handshake_id(req_tbs: &[u8]) -> [u8; SHA256_LEN] {
    sha256(req_tbs)
}

/// The keys of one direction.
#[derive(Clone, Default)]
pub struct DirSecrets {
    /// Encryption key (AES-GCM in AE mode, AES-CBC otherwise); empty when none.
    pub enc: Zeroizing<Vec<u8>>,
    /// ICV key (HMAC or GMAC); empty in AE mode.
    pub icv: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for DirSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirSecrets").finish_non_exhaustive()
    }
}

/// The traffic keys of one association and key generation: what one key-log line carries.
#[derive(Clone, Debug)]
pub struct KeyMaterial {
    /// [`handshake_id`] of the association.
    pub handshake_id: [u8; SHA256_LEN],
    /// 0 for the handshake keys, `k` after the `k`-th rekey.
    pub generation: u32,
    /// The agreed protection.
    pub mode: ProtectionMode,
    /// Client → server keys.
    pub c2s: DirSecrets,
    /// Server → client keys.
    pub s2c: DirSecrets,
}

impl KeyMaterial {
    pub(crate) fn of(
        handshake_id: [u8; SHA256_LEN],
        generation: u32,
        mode: ProtectionMode,
        keys: &KeySet,
    ) -> Self {
        KeyMaterial {
            handshake_id,
            generation,
            mode,
            c2s: DirSecrets {
                enc: keys.c2s.enc.clone(),
                icv: keys.c2s.icv.clone(),
            },
            s2c: DirSecrets {
                enc: keys.s2c.enc.clone(),
                icv: keys.s2c.icv.clone(),
            },
        }
    }

    /// The key-log line (without a line end). It holds secrets: it is zeroized when dropped
    /// and must only go to the file the operator named.
    pub fn line(&self) -> Zeroizing<String> {
        // Written straight into the zeroizing line: no other copy of a key's digits.
        let put = |s: &mut String, b: &[u8]| {
            if b.is_empty() {
                s.push('-');
            } else {
                hex::push(s, b, hex::Case::Lower);
            }
        };
        let mut s = Zeroizing::new(String::with_capacity(400));
        s.push_str(LABEL);
        s.push(' ');
        put(&mut s, &self.handshake_id);
        s.push(' ');
        s.push_str(&self.generation.to_string());
        s.push(' ');
        s.push_str(&mode_name(self.mode));
        for k in [&self.c2s.enc, &self.c2s.icv, &self.s2c.enc, &self.s2c.icv] {
            s.push(' ');
            put(&mut s, k);
        }
        s
    }
}

fn icv_name(i: IcvAlg) -> &'static str {
    match i {
        IcvAlg::HmacSha256 => "hmac-sha256",
        IcvAlg::Gmac128 => "gmac128",
        IcvAlg::Gmac256 => "gmac256",
    }
}

/// The key-log name of a protection mode (see the module docs).
pub fn mode_name(m: ProtectionMode) -> String {
    match m {
        ProtectionMode::Ae(AeAlg::Aes128Gcm) => "aes128-gcm".into(),
        ProtectionMode::Ae(AeAlg::Aes256Gcm) => "aes256-gcm".into(),
        ProtectionMode::NonAe { encr: None, icv } => icv_name(icv).into(),
        ProtectionMode::NonAe { encr: Some(e), icv } => {
            let e = match e {
                EncrAlg::Aes128Cbc => "aes128-cbc",
                EncrAlg::Aes256Cbc => "aes256-cbc",
            };
            format!("{e}+{}", icv_name(icv))
        }
    }
}

/// The protection mode a key-log name stands for.
pub fn parse_mode(s: &str) -> Option<ProtectionMode> {
    let icv = |s: &str| match s {
        "hmac-sha256" => Some(IcvAlg::HmacSha256),
        "gmac128" => Some(IcvAlg::Gmac128),
        "gmac256" => Some(IcvAlg::Gmac256),
        _ => None,
    };
    match s {
        "aes128-gcm" => return Some(ProtectionMode::Ae(AeAlg::Aes128Gcm)),
        "aes256-gcm" => return Some(ProtectionMode::Ae(AeAlg::Aes256Gcm)),
        _ => {}
    }
    if let Some((e, i)) = s.split_once('+') {
        let encr = match e {
            "aes128-cbc" => EncrAlg::Aes128Cbc,
            "aes256-cbc" => EncrAlg::Aes256Cbc,
            _ => return None,
        };
        return Some(ProtectionMode::NonAe {
            encr: Some(encr),
            icv: icv(i)?,
        });
    }
    Some(ProtectionMode::NonAe {
        encr: None,
        icv: icv(s)?,
    })
}

/// (encryption key length, ICV key length) of a mode.
fn key_lens(m: ProtectionMode) -> (usize, usize) {
    match m {
        ProtectionMode::Ae(a) => (a.key_len(), 0),
        ProtectionMode::NonAe { encr, icv } => (encr.map_or(0, |e| e.key_len()), icv.key_len()),
    }
}

/// Why a key log did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLogError {
    /// A line starting with [`LABEL`] is malformed.
    #[error("E2E key log line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the key octets).
        reason: &'static str,
    },
    /// More than [`MAX_ENTRIES`] lines.
    #[error("E2E key log has more than {MAX_ENTRIES} lines")]
    TooManyEntries,
}

/// A parsed E2E key log: the keys of each (handshake id, generation).
#[derive(Default, Clone)]
pub struct E2eKeyLog {
    entries: HashMap<([u8; SHA256_LEN], u32), KeyMaterial>,
    /// The last generation logged per association.
    last: HashMap<[u8; SHA256_LEN], u32>,
}

impl std::fmt::Debug for E2eKeyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eKeyLog")
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// A key or handshake id of the key log: at most 64 octets of hex, `-` for none. Decoded into
/// the zeroizing buffer itself.
fn keylog_octets(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut v = Zeroizing::new(Vec::new());
    if s == "-" {
        return Some(v);
    }
    if s.len() > 128 {
        return None;
    }
    hex::decode_into(s, &mut v)?;
    Some(v)
}

impl E2eKeyLog {
    /// Parses a key log (see the module docs). A later line for the same association and
    /// generation replaces an earlier one.
    pub fn parse(text: &str) -> Result<Self, KeyLogError> {
        let mut log = E2eKeyLog::default();
        for (n, line) in text.lines().enumerate() {
            let err = |reason| KeyLogError::Line {
                line: n + 1,
                reason,
            };
            let mut f = line.split_ascii_whitespace();
            if f.next() != Some(LABEL) {
                continue;
            }
            if line.len() > MAX_LINE_LEN {
                return Err(err("line too long"));
            }
            let fields: Vec<&str> = f.collect();
            let [id, generation, mode, c2s_enc, c2s_icv, s2c_enc, s2c_icv] = fields[..] else {
                return Err(err("expected 7 fields after the label"));
            };
            let id = keylog_octets(id)
                .and_then(|v| <[u8; SHA256_LEN]>::try_from(&v[..]).ok())
                .ok_or_else(|| err("handshake id is not 64 hex digits"))?;
            let generation: u32 = generation
                .parse()
                .map_err(|_| err("generation is not a number"))?;
            let mode = parse_mode(mode).ok_or_else(|| err("unknown mode"))?;
            let key = |s: &str| keylog_octets(s).ok_or_else(|| err("key is not hex or '-'"));
            let c2s = DirSecrets {
                enc: key(c2s_enc)?,
                icv: key(c2s_icv)?,
            };
            let s2c = DirSecrets {
                enc: key(s2c_enc)?,
                icv: key(s2c_icv)?,
            };
            let (el, il) = key_lens(mode);
            for d in [&c2s, &s2c] {
                if d.enc.len() != el || d.icv.len() != il {
                    return Err(err("key length does not fit the mode"));
                }
            }
            if log.entries.len() >= MAX_ENTRIES && !log.entries.contains_key(&(id, generation)) {
                return Err(KeyLogError::TooManyEntries);
            }
            let last = log.last.entry(id).or_insert(generation);
            *last = (*last).max(generation);
            log.entries.insert(
                (id, generation),
                KeyMaterial {
                    handshake_id: id,
                    generation,
                    mode,
                    c2s,
                    s2c,
                },
            );
        }
        Ok(log)
    }

    /// The keys of an association's generation, if logged.
    pub fn get(&self, handshake_id: &[u8; SHA256_LEN], generation: u32) -> Option<&KeyMaterial> {
        self.entries.get(&(*handshake_id, generation))
    }

    /// The last key generation logged for the association; `None` when it has no line.
    pub fn last_generation(&self, handshake_id: &[u8; SHA256_LEN]) -> Option<u32> {
        self.last.get(handshake_id).copied()
    }

    /// Number of lines kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no line was kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(mode: ProtectionMode) -> KeyMaterial {
        let (el, il) = key_lens(mode);
        let k = |n: usize, b: u8| Zeroizing::new(vec![b; n]);
        KeyMaterial {
            handshake_id: [7; 32],
            generation: 3,
            mode,
            c2s: DirSecrets {
                enc: k(el, 1),
                icv: k(il, 2),
            },
            s2c: DirSecrets {
                enc: k(el, 3),
                icv: k(il, 4),
            },
        }
    }

    #[test]
    fn lines_round_trip_in_every_mode() {
        let modes = [
            ProtectionMode::Ae(AeAlg::Aes128Gcm),
            ProtectionMode::Ae(AeAlg::Aes256Gcm),
            ProtectionMode::NonAe {
                encr: None,
                icv: IcvAlg::HmacSha256,
            },
            ProtectionMode::NonAe {
                encr: None,
                icv: IcvAlg::Gmac128,
            },
            ProtectionMode::NonAe {
                encr: Some(EncrAlg::Aes256Cbc),
                icv: IcvAlg::Gmac256,
            },
            ProtectionMode::NonAe {
                encr: Some(EncrAlg::Aes128Cbc),
                icv: IcvAlg::HmacSha256,
            },
        ];
        for m in modes {
            assert_eq!(parse_mode(&mode_name(m)), Some(m));
            let line = material(m).line();
            let text = format!("# comment\nCLIENT_RANDOM aa bb\n\n{}\n", &*line);
            let log = E2eKeyLog::parse(&text).unwrap();
            let got = log.get(&[7; 32], 3).unwrap();
            assert_eq!(got.mode, m);
            assert_eq!(&*got.c2s.enc, &*material(m).c2s.enc);
            assert_eq!(&*got.s2c.icv, &*material(m).s2c.icv);
            assert_eq!(log.last_generation(&[7; 32]), Some(3));
            assert_eq!(log.last_generation(&[8; 32]), None);
        }
        let gcm = material(ProtectionMode::Ae(AeAlg::Aes128Gcm)).line();
        assert!(gcm.contains(" - "), "{}", &*gcm);
    }

    #[test]
    fn malformed_lines_are_refused() {
        let good = material(ProtectionMode::Ae(AeAlg::Aes128Gcm)).line();
        let bad = [
            "E2E_TRAFFIC_KEYS 00",
            &good.replace(" 3 ", " x "),
            &good.replace("aes128-gcm", "aes512-gcm"),
            &good.replace("0101", "01z1"),
            &good.replace("aes128-gcm", "aes256-gcm"),
            &good.replacen("0707", "07", 1),
        ];
        for b in bad {
            assert!(
                matches!(E2eKeyLog::parse(b), Err(KeyLogError::Line { line: 1, .. })),
                "{b}"
            );
        }
        assert!(E2eKeyLog::parse(&"E2E_TRAFFIC_KEYS ".repeat(200)).is_err());
    }
}
