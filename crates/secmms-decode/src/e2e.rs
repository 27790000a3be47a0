//! E2E data transfer with the keys of an E2E key log (`--e2e-keylog`, the format of
//! [`secmms_e2e::keylog`]): every ClearTransfer's ICV verified and every EncrTransfer verified
//! and decrypted, across rekeys.
//!
//! The association is matched to its key-log lines by the handshake id — SHA-256 of the
//! captured HandshakeReq's `tbs` content octets — and the key generation is followed per
//! direction: a PDU is tried under the direction's current generation first, then under the
//! later ones the key log holds (at most [`MAX_TRIES`]); a direction moves to the generation
//! a PDU verified under. So a rekey needs no help from the decoder's reading of `rekey` and
//! `changedKey` (the server's first PDU under new keys carries `changedKey`; client PDUs that
//! crossed it on the wire still use the old keys, as the live server accepts), and one
//! undecodable PDU or one wrong line does not lose the association.
//!
//! What is checked is the cryptography of §14.4 step 5, with the engine's own function
//! ([`secmms_e2e::engine::open_transfer`], OpenSSL underneath); the time window and sequence
//! numbers are the live receiver's business and are not judged here.

use std::sync::Arc;

use secmms_ber::hex;
use secmms_e2e::engine::open_transfer;
use secmms_e2e::keylog::handshake_id;
pub use secmms_e2e::keylog::{E2eKeyLog, KeyLogError};
use secmms_e2e::keys::DirKeys;
use secmms_e2e::pdu::TransferView;
use secmms_e2e::SecPduKind;

use crate::tcp::Direction;

/// Most key generations a PDU is tried under (the current one and the later ones logged): a
/// bound on the work a capture can cause.
pub const MAX_TRIES: u32 = 8;

/// The E2E association of one stream, as far as its keys are concerned.
#[derive(Debug, Default)]
pub struct E2eTracker {
    /// The key log, when one was given.
    log: Option<Arc<E2eKeyLog>>,
    /// The handshake id of the association (a HandshakeReq was captured).
    id: Option<[u8; 32]>,
    /// Current key generation per direction (c>s, s>c).
    generation: [u32; 2],
    /// The keyed contexts of the current generation per direction.
    cache: [Option<(u32, Keyed)>; 2],
}

/// A direction's keys, keyed for checking.
#[derive(Debug)]
enum Keyed {
    /// AE mode (AES-GCM): the EncrTransfer is opened here, with a context keyed once
    /// ([`crate::gcm`]), exactly as the engine's `open_transfer` opens it.
    Gcm(secmms_pki::crypto::GcmOpener),
    /// The other modes, through the engine's `open_transfer`.
    Engine(DirKeys),
}

/// The outcome of checking one transfer.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// No key log, or no line for this association: nothing could be checked; the note says
    /// why.
    Unchecked(String),
    /// The ICV or AEAD tag verified under `generation`; `plain` is the decrypted PrPDU of an
    /// EncrTransfer (`None` for a ClearTransfer, whose PrPDU is in the clear).
    Verified {
        /// Key generation the PDU verified under.
        generation: u32,
        /// The decrypted PrPDU of an EncrTransfer.
        plain: Option<Vec<u8>>,
    },
    /// It did not verify (or not decode) with the logged keys.
    Failed(String),
}

fn idx(d: Direction) -> usize {
    match d {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

impl E2eTracker {
    /// Uses `log` for the association(s) of this stream.
    pub fn set_log(&mut self, log: Arc<E2eKeyLog>) {
        self.log = Some(log);
    }

    /// A HandshakeReq was captured: a new association starts, named by its `tbs`.
    pub fn handshake_req(&mut self, tbs: &[u8]) {
        let log = self.log.take();
        *self = E2eTracker {
            log,
            id: Some(handshake_id(tbs)),
            ..Default::default()
        };
    }

    /// The hex handshake id, once a HandshakeReq was seen.
    pub fn id_hex(&self) -> Option<String> {
        self.id.as_ref().map(|i| hex::encode(i))
    }

    /// Checks a ClearTransfer or EncrTransfer (`bytes`: the whole SecPDU) sent in `dir`.
    pub fn check(
        &mut self,
        dir: Direction,
        kind: SecPduKind,
        bytes: &[u8],
        limits: secmms_ber::Limits,
    ) -> Checked {
        let (log, id, logged) = match self.ready(kind) {
            Ok(x) => x,
            Err(c) => return c,
        };
        let encrypted = kind == SecPduKind::EncrTransfer;
        let t = match TransferView::decode(encrypted, bytes, limits) {
            Ok(t) => t,
            Err(e) => return Checked::Failed(format!("transfer does not decode: {e}")),
        };
        self.check_keys(dir, kind, &log, id, logged, &t)
    }

    /// Checks a transfer already decoded by the caller (`t`, of `kind`) sent in `dir`: the
    /// same as [`E2eTracker::check`] without decoding the PDU a second time.
    pub fn check_view(
        &mut self,
        dir: Direction,
        kind: SecPduKind,
        t: &TransferView<'_>,
    ) -> Checked {
        let (log, id, logged) = match self.ready(kind) {
            Ok(x) => x,
            Err(c) => return c,
        };
        self.check_keys(dir, kind, &log, id, logged, t)
    }

    /// The key log, the handshake id and the last logged generation, or why nothing can be
    /// checked.
    fn ready(&self, kind: SecPduKind) -> Result<(Arc<E2eKeyLog>, [u8; 32], u32), Checked> {
        let Some(log) = self.log.clone() else {
            return Err(Checked::Unchecked(match kind {
                SecPduKind::EncrTransfer => {
                    "EncrTransfer not decrypted (needs the E2E keys: --e2e-keylog)".into()
                }
                _ => "ClearTransfer ICV not checked (needs the E2E keys: --e2e-keylog)".into(),
            }));
        };
        let Some(id) = self.id else {
            return Err(Checked::Unchecked(
                "E2E keys not matched: the association's HandshakeReq was not captured".into(),
            ));
        };
        let Some(logged) = log.last_generation(&id) else {
            return Err(Checked::Unchecked(format!(
                "no E2E key-log line for handshake id {}",
                hex::encode(&id)
            )));
        };
        Ok((log, id, logged))
    }

    fn check_keys(
        &mut self,
        dir: Direction,
        kind: SecPduKind,
        log: &E2eKeyLog,
        id: [u8; 32],
        logged: u32,
        t: &TransferView<'_>,
    ) -> Checked {
        let encrypted = kind == SecPduKind::EncrTransfer;
        let d = idx(dir);
        let current = self.generation[d];
        let auth_alg = t
            .auth
            .as_ref()
            .map(|a| secmms_e2e::alg::IcvAlg::from_id(&a.algorithm));
        let last = logged
            .min(current.saturating_add(MAX_TRIES - 1))
            .max(current);
        let mut tried = Vec::new();
        for g in current..=last {
            let Some(m) = log.get(&id, g) else {
                tried.push(format!("{g} (not in the key log)"));
                continue;
            };
            // §14.4 steps 2–3 as the live receiver checks them: the PDU kind and the
            // Authenticator's algorithm follow the agreed mode.
            let alg_ok = match m.mode {
                secmms_e2e::ProtectionMode::Ae(_) => auth_alg.is_none(),
                secmms_e2e::ProtectionMode::NonAe { icv, .. } => auth_alg == Some(Some(icv)),
            };
            if !alg_ok {
                tried.push(format!(
                    "{g} (the Authenticator does not fit the key log's mode {})",
                    secmms_e2e::keylog::mode_name(m.mode)
                ));
                continue;
            }
            if m.mode.encrypted() != encrypted {
                tried.push(format!(
                    "{g} (the key log's mode {} does not use {})",
                    secmms_e2e::keylog::mode_name(m.mode),
                    crate::secure::kind_name(kind)
                ));
                continue;
            }
            let cached = matches!(&self.cache[d], Some((cg, _)) if *cg == g);
            if !cached {
                let s = match dir {
                    Direction::ToServer => &m.c2s,
                    Direction::ToClient => &m.s2c,
                };
                let keyed = match m.mode {
                    secmms_e2e::ProtectionMode::Ae(_) => secmms_pki::crypto::GcmOpener::new(&s.enc)
                        .map(Keyed::Gcm)
                        .map_err(|e| e.to_string()),
                    _ => DirKeys::from_secrets(m.mode, &s.enc, &s.icv)
                        .map(Keyed::Engine)
                        .map_err(|e| e.to_string()),
                };
                match keyed {
                    Ok(k) => self.cache[d] = Some((g, k)),
                    Err(e) => {
                        tried.push(format!("{g} (keys unusable: {e})"));
                        continue;
                    }
                }
            }
            let Some((_, keys)) = self.cache[d].as_mut() else {
                continue;
            };
            let opened = match keys {
                // The engine's AE open (§13.3.2): the nonce is ClearToken2's iv, the AAD its
                // content octets, the tag the default GCM tag length.
                Keyed::Gcm(o) => t
                    .token2
                    .iv
                    .as_deref()
                    .and_then(|nonce| {
                        o.open(
                            nonce,
                            t.token2_content,
                            t.appl_data,
                            secmms_pki::crypto::GCM_DEFAULT_TAG_LEN,
                        )
                        .ok()
                    })
                    .map(|mut p| Some(std::mem::take(&mut *p)))
                    .ok_or(()),
                Keyed::Engine(k) => open_transfer(m.mode, k, t)
                    .map(|p| p.map(|mut p| std::mem::take(&mut *p)))
                    .map_err(drop),
            };
            match opened {
                Ok(plain) => {
                    self.generation[d] = g;
                    return Checked::Verified {
                        generation: g,
                        plain,
                    };
                }
                Err(_) => tried.push(g.to_string()),
            }
        }
        Checked::Failed(format!(
            "{} does not verify with the E2E key log (key generation {})",
            if encrypted {
                "EncrTransfer AEAD tag / ICV"
            } else {
                "ClearTransfer ICV"
            },
            tried.join(", ")
        ))
    }
}
