//! The association engine (§13–14): handshake, negotiation, data transfer, key refresh, release
//! and aborts, for the client ([`E2eClient`]) and server ([`E2eServer`]) roles.
//!
//! The engine is sans-IO: it takes SecPDU octets plus the current time and returns SecPDU octets
//! to send and [`Output`]s for the protected protocol. The octets are BER (clause 15) or UTF-8
//! XML (clause 16), as [`E2eConfig::encoding`](crate::E2eConfig::encoding) says; the checks are
//! the same, and signatures, ICVs and the AAD always cover the octets as sent or received.
//! Randomness comes from the [`RandomSource`] passed in. Every exception yields a
//! [`SecurityEvent`] (queued, see [`E2eClient::poll_event`]) and, where clause 14 says so, a
//! signed reject or abort to send ([`Rejection::reply`]).

use std::collections::VecDeque;

use openssl::pkey::{PKey, Public};
use openssl::x509::X509;
use secmms_ber::{Limits, Reader, Tag};
use secmms_pki::cert::{split_pki_path, CertError, PeerIdentity};
use secmms_pki::crypto::{
    self, CryptoError, DhGroup, EphemeralKey, RandomSource, SignatureAlgorithm,
    GCM_DEFAULT_TAG_LEN, GCM_NONCE_LEN,
};
use secmms_pki::event::SecurityEvent;
use zeroize::Zeroizing;

use crate::alg::{self, AeAlg, EncrAlg, IcvAlg};
use crate::config::{
    group_from_number, group_number, Context, EncryptionPolicy, ModeOffer, WireEncoding,
};
use crate::diag::{Diagnostic, DtDiagnostic, HandshakeDiagnostic};
use crate::events::{self, acc, dt, generic, req, DtCheck, EventDef, Generic};
use crate::keys::{self, DirKeys, KeySet, ProtectionMode};
use crate::limits::{self, XmlLimits};
use crate::pdu::*;
use crate::time::TimeStamp;
use crate::xml;

/// The role of an association end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends HandshakeReq.
    Client,
    /// Answers with HandshakeAcc.
    Server,
}

/// Association state (§13.1.1 phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Client: nothing sent yet. Server: waiting for HandshakeReq.
    Idle,
    /// Client: HandshakeReq sent.
    AwaitAcc,
    /// Server: HandshakeReq accepted by security, waiting for [`E2eServer::accept`] or
    /// [`E2eServer::appl_reject`].
    AwaitLocalAccept,
    /// Data transfer.
    Established,
    /// ReleaseReq sent.
    ReleaseSent,
    /// ReleaseReq received, waiting for [`E2eClient::release_rsp`].
    ReleaseReceived,
    /// Both ends sent ReleaseReq (release collision, spec §16.5 DECISION): each must send its
    /// ReleaseRsp and receive the peer's before the association is over. Which goes first is
    /// the environment's rule ([`Role::Client`] answers at once, the server after the
    /// client's ReleaseRsp).
    ReleaseCollision,
    /// Terminated (released, rejected or aborted).
    Closed,
}

/// What a received SecPDU means for the protected protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Server: a valid HandshakeReq; `appl_data` is the PrPDU (MMS Initiate-Request). Answer
    /// with [`E2eServer::accept`] or [`E2eServer::appl_reject`].
    HandshakeRequested {
        /// applData.
        appl_data: Option<Vec<u8>>,
        /// The peer's certificate identity (Annex G.6).
        peer: Option<PeerIdentity>,
    },
    /// Client: the association is established; `appl_data` is the PrPDU (Initiate-Response).
    Established {
        /// applData.
        appl_data: Option<Vec<u8>>,
    },
    /// Client: the server's protected protocol rejected the association.
    ApplicationRejected {
        /// applData (Initiate-Error).
        appl_data: Option<Vec<u8>>,
    },
    /// Client: the server's security rejected the HandshakeReq.
    SecurityRejected {
        /// The diagnostic, absent when the server raised an alarm.
        diagnostic: Option<HandshakeDiagnostic>,
    },
    /// A protected PrPDU (decrypted if it was encrypted). It is application data, handed over
    /// without a copy; key material is what the engine zeroizes.
    Data(Vec<u8>),
    /// The peer asks to release; answer with `release_rsp`.
    ReleaseRequested {
        /// applData (Conclude-Request).
        appl_data: Option<Vec<u8>>,
    },
    /// The release completed.
    Released {
        /// applData (Conclude-Response).
        appl_data: Option<Vec<u8>>,
    },
    /// The peer aborted.
    Aborted {
        /// HandshakeSecAbort, DtSecAbort or ApplAbort.
        kind: SecPduKind,
        /// The diagnostic, if any.
        diagnostic: Option<Diagnostic>,
        /// applData of an ApplAbort.
        appl_data: Option<Vec<u8>>,
    },
}

/// A failed security check (clause 14): the event raised, the diagnostic sent (absent for
/// alarms) and the signed reject/abort to send, if any.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The event (also queued in the engine).
    pub event: SecurityEvent,
    /// The check's catalogue entry.
    pub check: EventDef,
    /// The diagnostic of the check (sent unless it is an alarm).
    pub cause: Option<Diagnostic>,
    /// The SecPDU to send to the peer (HandshakeSecReject, HandshakeSecAbort or DtSecAbort).
    pub reply: Option<(SecPduKind, Vec<u8>)>,
}

/// Errors of the engine API.
#[derive(Debug, Clone, thiserror::Error)]
pub enum E2eError {
    /// A security check failed; the association is closed.
    #[error("security check failed: {}", .0.event)]
    Rejected(Box<Rejection>),
    /// The call is not allowed in the current state or role.
    #[error("operation not allowed in state {0:?}")]
    State(State),
    /// The PrPDU handed to the engine is not a single BER element of acceptable size.
    #[error("invalid PrPDU")]
    InvalidPrPdu,
    /// A local cryptographic failure (key generation, RNG, signing).
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// A local configuration problem.
    #[error("configuration: {0}")]
    Config(&'static str),
}

impl E2eError {
    /// The rejection, if this is one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            E2eError::Rejected(r) => Some(r),
            _ => None,
        }
    }
}

type R<T> = Result<T, E2eError>;

/// An internal failure before it is turned into a [`Rejection`].
struct Fail {
    def: EventDef,
    cause: Option<Diagnostic>,
    msg: String,
}

fn fail(def: EventDef, cause: Option<Diagnostic>, msg: impl Into<String>) -> Fail {
    Fail {
        def,
        cause,
        msg: msg.into(),
    }
}
fn hfail(def: EventDef, d: HandshakeDiagnostic, msg: impl Into<String>) -> Fail {
    fail(def, Some(Diagnostic::Handshake(d)), msg)
}
fn dfail(def: EventDef, d: DtDiagnostic, msg: impl Into<String>) -> Fail {
    fail(def, Some(Diagnostic::Dt(d)), msg)
}

struct PeerInfo {
    key: PKey<Public>,
    fingerprint: [u8; 32],
    cert: Vec<u8>,
    identity: Option<PeerIdentity>,
}

struct Suite {
    group: DhGroup,
    mode: ProtectionMode,
}

/// Rekey bookkeeping (§13.3.2 DECISION state machine).
enum Rekey {
    None,
    /// Client: `rekey` sent; new keys ready, waiting for `changedKey`.
    ClientPending {
        keys: KeySet,
        salt: [u8; 32],
        since: TimeStamp,
    },
    /// Server: new keys derived, `changedKey` not yet sent.
    ServerDerived {
        keys: KeySet,
        salt: [u8; 32],
    },
}

/// The shared core of both roles.
struct Core {
    /// Release collision: (our ReleaseRsp sent, the peer's ReleaseRsp received).
    collision: (bool, bool),
    role: Role,
    ctx: Context,
    rng: Box<dyn RandomSource>,
    state: State,
    local_num: u16,
    asso: Option<AssoId>,
    expected_peer: Option<PeerIdentity>,
    /// SHA-256 fingerprints of certificates the peer may not sign with (Annex G.2: the TLS
    /// certificates of this connection).
    refused_certs: Vec<[u8; 32]>,
    peer: Option<PeerInfo>,
    offered: Vec<EphemeralKey>,
    my_dh: Option<EphemeralKey>,
    peer_dh_public: Vec<u8>,
    /// Server: Z computed when the HandshakeReq was accepted by security.
    pending_z: Option<Zeroizing<Vec<u8>>>,
    req: Option<Handshake>,
    suite: Option<Suite>,
    salt: [u8; 32],
    keys: Option<KeySet>,
    rekey: Rekey,
    /// Server: the previous receive key with the grace deadline (None = until first new PDU).
    old_recv: Option<(DirKeys, Option<TimeStamp>)>,
    keys_since: TimeStamp,
    send_last: Option<(TimeStamp, u32)>,
    recv_last: Option<(TimeStamp, u32)>,
    req_rekey: bool,
    events: VecDeque<SecurityEvent>,
}

/// Most events kept in the queue before the oldest are dropped.
const MAX_QUEUED_EVENTS: usize = 1024;

impl Core {
    fn new(role: Role, ctx: Context, rng: Box<dyn RandomSource>, local_num: u16) -> Core {
        Core {
            collision: (false, false),
            role,
            ctx,
            rng,
            state: State::Idle,
            local_num: local_num % 1000,
            asso: None,
            expected_peer: None,
            refused_certs: Vec::new(),
            peer: None,
            offered: Vec::new(),
            my_dh: None,
            peer_dh_public: Vec::new(),
            pending_z: None,
            req: None,
            suite: None,
            salt: [0; 32],
            keys: None,
            rekey: Rekey::None,
            old_recv: None,
            keys_since: TimeStamp(0),
            send_last: None,
            recv_last: None,
            req_rekey: false,
            events: VecDeque::new(),
        }
    }

    fn limits(&self) -> Limits {
        self.ctx.config.limits
    }

    // ------------------------------------------------------------ wire encoding (§15 / §16)

    fn encoding(&self) -> WireEncoding {
        self.ctx.config.encoding
    }

    /// Decodes a received SecPDU of the kind the environment announced. Its covered fields hold
    /// the octets (BER) or characters (XML) as received.
    fn decode_pdu(&self, kind: SecPduKind, bytes: &[u8]) -> Result<SecPdu, String> {
        match self.encoding() {
            WireEncoding::Ber => {
                SecPdu::decode(kind, bytes, self.limits()).map_err(|e| e.to_string())
            }
            WireEncoding::Xml => {
                xml::decode_octets(kind, bytes, &XmlLimits::from_ber(self.limits()))
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Encodes a SecPDU built by this engine (its covered fields are in the configured encoding).
    fn encode_pdu(&self, pdu: &SecPdu) -> R<Vec<u8>> {
        match self.encoding() {
            WireEncoding::Ber => Ok(pdu.encode()),
            WireEncoding::Xml => xml::encode(pdu)
                .map(String::into_bytes)
                .map_err(|_| E2eError::Config("XML encoding of a SecPDU")),
        }
    }

    /// What the signature of a HandshakeReq/Acc covers (§13.4.1, §16.3).
    fn handshake_tbs(&self, token1: &ClearToken1, appl_data: Option<&[u8]>) -> Vec<u8> {
        match self.encoding() {
            WireEncoding::Ber => Handshake::tbs_content(token1, appl_data),
            WireEncoding::Xml => xml::handshake_tbs(token1, appl_data).into_bytes(),
        }
    }

    fn push_event(&mut self, e: SecurityEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn asso_str(&self) -> Option<String> {
        self.asso.as_ref().map(|a| a.as_str().to_string())
    }

    // ------------------------------------------------------------ signing helpers

    fn sig_alg_id(&self) -> AlgorithmIdentifier {
        alg::sig_alg_id(self.ctx.credentials.key.algorithm())
    }

    fn sign(&self, tbs: &[u8]) -> R<Signature> {
        Ok(Signature {
            algo: self.sig_alg_id(),
            sign: self.ctx.credentials.key.sign(tbs)?,
        })
    }

    fn token3(&self, now: TimeStamp) -> ClearToken3 {
        ClearToken3 {
            sig_alg: self.sig_alg_id(),
            version: Version::v1(),
            asso_id: self.asso.clone(),
            time: now,
            pk_cert: self.ctx.credentials.cert_der.clone(),
            cert_path: self.ctx.credentials.cert_path.clone(),
        }
    }

    fn build_token3_pdu(&self, kind: SecPduKind, body: Token3Body, now: TimeStamp) -> R<Vec<u8>> {
        let token3 = self.token3(now);
        let tbs = match self.encoding() {
            WireEncoding::Ber => Token3Pdu::tbs_content(&token3, &body),
            WireEncoding::Xml => xml::token3_tbs(&token3, &body).into_bytes(),
        };
        let sign = self.sign(&tbs)?;
        let p = Token3Pdu {
            token3,
            body,
            sign,
            tbs,
            unknown_diag: None,
        };
        let pdu = match kind {
            SecPduKind::ApplicationReject => SecPdu::ApplicationReject(p),
            SecPduKind::HandshakeSecReject => SecPdu::HandshakeSecReject(p),
            SecPduKind::HandshakeSecAbort => SecPdu::HandshakeSecAbort(p),
            SecPduKind::DtSecAbort => SecPdu::DtSecAbort(p),
            SecPduKind::ApplAbort => SecPdu::ApplAbort(p),
            SecPduKind::ReleaseReq => SecPdu::ReleaseReq(p),
            SecPduKind::ReleaseRsp => SecPdu::ReleaseRsp(p),
            _ => return Err(E2eError::Config("not a ClearToken3 PDU")),
        };
        self.encode_pdu(&pdu)
    }

    /// Turns a failure into a rejection, queues the event, builds the reply, closes.
    fn reject(&mut self, f: Fail, reply_kind: Option<SecPduKind>, now: TimeStamp) -> E2eError {
        let event = f.def.event(f.msg, self.asso_str().as_deref());
        self.push_event(event.clone());
        // Diagnostics are withheld when an alarm is raised (§13.1.5, §14.1).
        let wire = if f.def.is_alarm() { None } else { f.cause };
        let reply = reply_kind.and_then(|k| {
            let body = match (k, wire) {
                (SecPduKind::DtSecAbort, Some(Diagnostic::Dt(d))) => Token3Body::DtDiag(Some(d)),
                (SecPduKind::DtSecAbort, _) => Token3Body::DtDiag(None),
                (_, Some(Diagnostic::Handshake(d))) => Token3Body::HandshakeDiag(Some(d)),
                _ => Token3Body::HandshakeDiag(None),
            };
            self.build_token3_pdu(k, body, now).ok().map(|b| (k, b))
        });
        self.state = State::Closed;
        self.keys = None;
        self.rekey = Rekey::None;
        self.old_recv = None;
        E2eError::Rejected(Box::new(Rejection {
            event,
            check: f.def,
            cause: f.cause,
            reply,
        }))
    }

    // ------------------------------------------------------------ common verification

    fn in_window(&self, t: TimeStamp, now: TimeStamp) -> bool {
        t.abs_diff_ms(now) <= self.ctx.config.time_window_ms
    }

    /// Steps 2–6 of §14.3 for a signed area: algorithm, signature, certificate, address.
    #[allow(clippy::too_many_arguments)]
    fn verify_signed(
        &self,
        sig_alg: &AlgorithmIdentifier,
        sign: &Signature,
        tbs: &[u8],
        pk_cert: &[u8],
        cert_path: Option<&[u8]>,
        now: TimeStamp,
        defs: &SignedDefs,
    ) -> Result<PeerInfo, Fail> {
        let alg = match alg::sig_alg_from(sig_alg) {
            Some(a) if self.ctx.config.allowed_signatures.contains(&a) => a,
            _ => {
                return Err(hfail(
                    defs.sig_alg_not_sup,
                    HandshakeDiagnostic::InvalidSignatureAlgorithm,
                    "signature algorithm not supported",
                ))
            }
        };
        if alg::sig_alg_from(&sign.algo) != Some(alg) {
            return Err(fail(
                defs.sig_alg_mismatch,
                None,
                "sigAlg differs from Signature.algo",
            ));
        }
        // Annex G.2: the application certificate is not one of this connection's TLS
        // certificates. DECISION: an error with its diagnostic, not an alarm — it is what a
        // misconfigured peer sends, and the diagnostic tells its operator what to change.
        if !self.refused_certs.is_empty()
            && self
                .refused_certs
                .contains(&secmms_pki::crypto::sha256(pk_cert))
        {
            return Err(hfail(
                defs.pkcert_error,
                HandshakeDiagnostic::InvalidPublicKeyCertificate,
                "the application certificate is a TLS certificate of this connection (Annex G.2)",
            ));
        }
        // OpenSSL when it can load the certificate, else the parsed SubjectPublicKeyInfo (the
        // Annex G.6.2 OBJECT IDENTIFIER subject form OpenSSL 3.0 refuses).
        let cert = X509::from_der(pk_cert).ok();
        let key = match &cert {
            Some(c) => c.public_key().ok(),
            None => secmms_pki::cert::public_key_of(pk_cert).ok(),
        }
        .ok_or_else(|| {
            hfail(
                defs.pkcert_error,
                HandshakeDiagnostic::InvalidPublicKeyCertificate,
                "pkCert not decodable",
            )
        })?;
        verify_sig(&key, alg, tbs, &sign.sign)
            .map_err(|_| fail(defs.inv_signature, None, "signature does not verify"))?;
        let path = match cert_path {
            Some(p) => split_pki_path(p).map_err(|_| {
                hfail(
                    defs.pkcert_error,
                    HandshakeDiagnostic::InvalidCertificationPath,
                    "certPath not decodable",
                )
            })?,
            None => Vec::new(),
        };
        let validated = match &cert {
            Some(c) => self
                .ctx
                .validator
                .validate_parsed(pk_cert, c, &key, &path, now.unix_secs()),
            None => self.ctx.validator.validate(pk_cert, &path, now.unix_secs()),
        };
        let v = validated.map_err(|e| match e {
            e if e.is_alarm() => fail(defs.pkcert_alarm, None, e.to_string()),
            CertError::Path(m) => hfail(
                defs.pkcert_error,
                HandshakeDiagnostic::InvalidCertificationPath,
                m,
            ),
            e => hfail(
                defs.pkcert_error,
                HandshakeDiagnostic::InvalidPublicKeyCertificate,
                e.to_string(),
            ),
        })?;
        if let Some(exp) = &self.expected_peer {
            if v.info.identity.as_ref() != Some(exp) {
                return Err(fail(
                    defs.addr_mismatch,
                    None,
                    "certificate subject does not match the peer address",
                ));
            }
        }
        Ok(PeerInfo {
            key: v.public_key,
            fingerprint: v.fingerprint,
            cert: pk_cert.to_vec(),
            identity: v.info.identity,
        })
    }

    fn check_replay(
        &self,
        peer: &PeerInfo,
        time: TimeStamp,
        asso: &str,
        kind: SecPduKind,
        now: TimeStamp,
    ) -> bool {
        let k = SecPduKind::ALL.iter().position(|x| *x == kind).unwrap_or(0) as u8;
        self.ctx.replay.check_and_insert(
            peer.fingerprint,
            time,
            asso,
            k,
            now,
            self.ctx.config.time_window_ms.saturating_mul(2),
        )
    }

    /// The ten generic checks of a received ClearToken3 PDU (groups 3–7, 12, 13).
    fn verify_token3(
        &mut self,
        group: u16,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> Result<Token3Pdu, Fail> {
        let g = |c| generic(group, c);
        let pdu = self.decode_pdu(kind, bytes).map_err(|e| {
            hfail(
                g(Generic::ProtocolErr),
                HandshakeDiagnostic::ProtocolError,
                e,
            )
        })?;
        let p = match pdu {
            SecPdu::ApplicationReject(p)
            | SecPdu::HandshakeSecReject(p)
            | SecPdu::HandshakeSecAbort(p)
            | SecPdu::DtSecAbort(p)
            | SecPdu::ApplAbort(p)
            | SecPdu::ReleaseReq(p)
            | SecPdu::ReleaseRsp(p) => p,
            _ => {
                return Err(hfail(
                    g(Generic::ProtocolErr),
                    HandshakeDiagnostic::ProtocolError,
                    "unexpected PDU",
                ))
            }
        };
        let defs = SignedDefs::generic(group);
        let t = &p.token3;
        let info = self.verify_signed(
            &t.sig_alg,
            &p.sign,
            &p.tbs,
            &t.pk_cert,
            t.cert_path.as_deref(),
            now,
            &defs,
        )?;
        if let Some(peer) = &self.peer {
            if peer.cert != info.cert {
                return Err(fail(
                    g(Generic::PkCertAlarm),
                    None,
                    "certificate differs from the handshake certificate",
                ));
            }
        }
        if let (Some(a), Some(mine)) = (&t.asso_id, &self.asso) {
            // Before HandshakeAcc the peer may only know "c".
            let ok = a == mine || (!a.is_pair() && a.as_str() == mine.client_part());
            if !ok {
                return Err(hfail(
                    g(Generic::ProtocolErr),
                    HandshakeDiagnostic::ProtocolError,
                    "assoID mismatch",
                ));
            }
        }
        if !t.version.has_v1() {
            return Err(hfail(
                g(Generic::UnexpVersion),
                HandshakeDiagnostic::UnexpectedVersion,
                "version",
            ));
        }
        if !self.in_window(t.time, now) {
            return Err(hfail(
                g(Generic::InvTime),
                HandshakeDiagnostic::InvalidTimeValue,
                "time outside window",
            ));
        }
        let asso = t
            .asso_id
            .as_ref()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        if !self.check_replay(&info, t.time, &asso, kind, now) {
            return Err(fail(g(Generic::Replay), None, "replayed PDU"));
        }
        Ok(p)
    }

    // ------------------------------------------------------------ data transfer

    fn keys_for_send(&mut self) -> Option<&mut DirKeys> {
        let role = self.role;
        self.keys.as_mut().map(|k| match role {
            Role::Client => &mut k.c2s,
            Role::Server => &mut k.s2c,
        })
    }

    fn next_send_time(&mut self, now: TimeStamp) -> (TimeStamp, u32) {
        // Sender rule (§14.4 DECISION): seq 0 at each new time value, +1 with the same time.
        let (t, s) = match self.send_last {
            Some((lt, ls)) if now <= lt => (lt, ls.saturating_add(1)),
            _ => (now, 0),
        };
        self.send_last = Some((t, s));
        (t, s)
    }

    fn protect(&mut self, pr_pdu: &[u8], now: TimeStamp) -> R<(SecPduKind, Vec<u8>)> {
        if self.state != State::Established {
            return Err(E2eError::State(self.state));
        }
        check_prpdu(pr_pdu, self.limits())?;
        let mode = match &self.suite {
            Some(s) => s.mode,
            None => return Err(E2eError::State(self.state)),
        };
        let mut token_rekey = None;
        let mut changed_key = false;
        match self.role {
            Role::Client => {
                let pending_since = match &self.rekey {
                    Rekey::ClientPending { since, .. } if !self.req_rekey => Some(*since),
                    _ => None,
                };
                if let Some(since) = pending_since {
                    if now.abs_diff_ms(since) > self.ctx.config.rekey_timeout_ms {
                        let f = dfail(
                            events::REKEY_TIMEOUT,
                            DtDiagnostic::NoReasonGiven,
                            "no changedKey within the rekey timeout",
                        );
                        return Err(self.reject(f, Some(SecPduKind::DtSecAbort), now));
                    }
                } else if self.req_rekey
                    || now.abs_diff_ms(self.keys_since)
                        >= self.ctx.config.effective_rekey_interval_ms()
                {
                    let group = self
                        .suite
                        .as_ref()
                        .map(|s| s.group)
                        .unwrap_or(DhGroup::EcdhP256);
                    let eph = EphemeralKey::generate(group, self.rng.as_mut())?;
                    token_rekey = Some(eph);
                    self.req_rekey = false;
                }
            }
            Role::Server => {
                if matches!(self.rekey, Rekey::ServerDerived { .. }) {
                    if let Rekey::ServerDerived { keys, salt } =
                        std::mem::replace(&mut self.rekey, Rekey::None)
                    {
                        let old = self.keys.replace(keys);
                        self.salt = salt;
                        self.keys_since = now;
                        if let Some(old) = old {
                            self.old_recv = Some((
                                old.c2s,
                                Some(now.plus_ms(
                                    self.ctx.config.rekey_grace_ms.min(i64::MAX as u64) as i64,
                                )),
                            ));
                        }
                        changed_key = true;
                    }
                }
            }
        }
        let req_rekey = self.role == Role::Server && std::mem::take(&mut self.req_rekey);
        let (time, seq) = self.next_send_time(now);
        let asso = self.asso.clone().ok_or(E2eError::State(self.state))?;
        let mut token2 = ClearToken2 {
            asso_id: asso,
            time,
            seq,
            iv: None,
            rekey: token_rekey.as_ref().map(|e| e.public_value().to_vec()),
            req_rekey,
            changed_key,
        };
        let mut iv16 = [0u8; 16];
        if let ProtectionMode::NonAe { encr: Some(_), .. } = mode {
            self.rng.fill(&mut iv16)?;
            token2.iv = Some(iv16.to_vec());
        }
        let encoding = self.encoding();
        let keys = self.keys_for_send().ok_or(E2eError::State(State::Closed))?;
        let (kind, out, tbp_start, tbp_end) = match encoding {
            WireEncoding::Ber => seal_ber(mode, keys, &mut token2, &iv16, pr_pdu)?,
            WireEncoding::Xml => seal_xml(mode, keys, &mut token2, &iv16, pr_pdu)?,
        };
        if let Some(eph) = token_rekey {
            // Client: derive the next keys now; they take effect on changedKey.
            let z = eph.agree(&self.peer_dh_public)?;
            let salt = keys::next_salt(&out[tbp_start..tbp_end], &self.salt);
            let new = keys::derive(mode, &salt, &z, self.rng.as_mut())?;
            self.rekey = Rekey::ClientPending {
                keys: new,
                salt,
                since: now,
            };
        }
        Ok((kind, out))
    }

    fn unprotect(&mut self, kind: SecPduKind, bytes: &[u8], now: TimeStamp) -> R<Output> {
        match self.unprotect_inner(kind, bytes, now) {
            Ok(o) => Ok(o),
            Err(f) => Err(self.reject(f, Some(SecPduKind::DtSecAbort), now)),
        }
    }

    fn unprotect_inner(
        &mut self,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> Result<Output, Fail> {
        let encrypted = kind == SecPduKind::EncrTransfer;
        let ev = |c| dt(encrypted, c);
        let perr = |m: &str| dfail(ev(DtCheck::ProtocolErr), DtDiagnostic::ProtocolError, m);
        // Step 1: well-formed, assoID known.
        let xml_transfer: Transfer;
        let t = match self.encoding() {
            WireEncoding::Ber => match TransferView::decode(encrypted, bytes, self.limits()) {
                Ok(t) => t,
                Err(e) => return Err(perr(&e.to_string())),
            },
            WireEncoding::Xml => {
                xml_transfer =
                    match xml::decode_octets(kind, bytes, &XmlLimits::from_ber(self.limits())) {
                        Ok(SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t)) => t,
                        Ok(_) => return Err(perr("not a transfer")),
                        Err(e) => return Err(perr(&e.to_string())),
                    };
                xml_transfer.view()
            }
        };
        if Some(&t.token2.asso_id) != self.asso.as_ref() {
            return Err(perr("unknown assoID"));
        }
        let mode = match &self.suite {
            Some(s) => s.mode,
            None => return Err(perr("no suite")),
        };
        // Step 2: PDU kind matches the agreed mode.
        if encrypted != mode.encrypted() {
            return Err(if encrypted {
                dfail(
                    ev(DtCheck::WrongKind),
                    DtDiagnostic::EncryptionNotSelected,
                    "EncrTransfer without agreed encryption",
                )
            } else {
                dfail(
                    ev(DtCheck::WrongKind),
                    DtDiagnostic::EncryptionRequired,
                    "ClearTransfer although encryption was agreed",
                )
            });
        }
        // Steps 3–4: algorithm and nonce / IV presence.
        match mode {
            ProtectionMode::Ae(_) => {
                if t.auth.is_some() {
                    return Err(perr("auth present in AE mode"));
                }
                if t.token2.iv.as_ref().map(Vec::len) != Some(GCM_NONCE_LEN) {
                    return Err(dfail(
                        ev(DtCheck::Nonce),
                        DtDiagnostic::GmacInitVectorRequired,
                        "GCM nonce missing",
                    ));
                }
            }
            ProtectionMode::NonAe { encr, icv } => {
                let auth = t.auth.as_ref().ok_or_else(|| perr("auth missing"))?;
                if IcvAlg::from_id(&auth.algorithm) != Some(icv) {
                    return Err(fail(
                        ev(DtCheck::IcvAlg),
                        None,
                        "ICV algorithm differs from the agreed one",
                    ));
                }
                if icv.is_gmac() && auth.nonce.as_ref().map(Vec::len) != Some(GCM_NONCE_LEN) {
                    return Err(dfail(
                        ev(DtCheck::Nonce),
                        DtDiagnostic::GmacNonceRequired,
                        "GMAC nonce missing",
                    ));
                }
                if encr.is_some() && t.token2.iv.as_ref().map(Vec::len) != Some(16) {
                    return Err(dfail(
                        ev(DtCheck::AesIv),
                        DtDiagnostic::AesInitVectorRequired,
                        "AES-CBC IV missing",
                    ));
                }
            }
        }
        let role = self.role;
        let changed = t.token2.changed_key;
        // Step 9: rekey fields. DECISION (§14.4): their legality depends only on clear fields and
        // local state, so they are checked with the structural checks, before the ICV. Nothing is
        // lost: anyone able to alter a PDU can already force a BAD_ICV abort.
        match role {
            Role::Client => {
                if t.token2.rekey.is_some() {
                    return Err(perr("client received rekey"));
                }
                if changed && !matches!(self.rekey, Rekey::ClientPending { .. }) {
                    return Err(dfail(
                        ev(DtCheck::UnexpChanged),
                        DtDiagnostic::UnexpectedChangedKeys,
                        "changedKey without pending rekey",
                    ));
                }
            }
            Role::Server => {
                if t.token2.changed_key || t.token2.req_rekey {
                    return Err(perr("server received changedKey or reqRekey"));
                }
                if t.token2.rekey.is_some() && matches!(self.rekey, Rekey::ServerDerived { .. }) {
                    return Err(dfail(
                        ev(DtCheck::UnexpDh),
                        DtDiagnostic::UnexpectedDhPublicKey,
                        "second rekey before changedKey",
                    ));
                }
            }
        }
        // Step 5: ICV / AEAD, choosing the key per the rekey state.
        let use_pending =
            role == Role::Client && changed && matches!(self.rekey, Rekey::ClientPending { .. });
        let plain: Option<Zeroizing<Vec<u8>>>;
        let mut used_old = false;
        {
            fn recv_of(role: Role, k: &mut KeySet) -> &mut DirKeys {
                match role {
                    Role::Client => &mut k.s2c,
                    Role::Server => &mut k.c2s,
                }
            }
            let primary: Option<&mut DirKeys> = if use_pending {
                match &mut self.rekey {
                    Rekey::ClientPending { keys, .. } => Some(recv_of(role, keys)),
                    _ => None,
                }
            } else {
                self.keys.as_mut().map(|k| recv_of(role, k))
            };
            let primary = primary.ok_or_else(|| perr("no keys"))?;
            match open(mode, primary, &t) {
                Ok(p) => plain = p,
                Err(()) => {
                    let old_ok = match &mut self.old_recv {
                        Some((old, deadline)) if deadline.map_or(true, |d| now <= d) => {
                            open(mode, old, &t).ok()
                        }
                        _ => None,
                    };
                    match old_ok {
                        Some(p) => {
                            plain = p;
                            used_old = true;
                        }
                        None => {
                            return Err(fail(
                                ev(DtCheck::BadIcv),
                                None,
                                "ICV / AEAD verification failed",
                            ))
                        }
                    }
                }
            }
        }
        // Step 6: time window and monotonic time.
        let time = t.token2.time;
        let seq = t.token2.seq;
        if !self.in_window(time, now) || self.recv_last.is_some_and(|(lt, _)| time < lt) {
            return Err(dfail(
                ev(DtCheck::InvTime),
                DtDiagnostic::InvalidTimeValue,
                "time outside window or older than the last PDU",
            ));
        }
        // Steps 7–8: replay and sequence rule.
        match self.recv_last {
            Some((lt, ls)) if lt == time => {
                if seq <= ls {
                    return Err(fail(
                        ev(DtCheck::Replay),
                        None,
                        "(time, seq) already accepted",
                    ));
                }
                if seq != ls.saturating_add(1) {
                    return Err(dfail(
                        ev(DtCheck::Seq),
                        DtDiagnostic::InvalidSequenceNumber,
                        "seq is not previous + 1",
                    ));
                }
            }
            _ => {
                if seq != 0 {
                    return Err(dfail(
                        ev(DtCheck::Seq),
                        DtDiagnostic::InvalidSequenceNumber,
                        "seq is not 0 for a new time",
                    ));
                }
            }
        }
        let plain = match plain {
            // Move the plaintext out of its Zeroizing wrapper (leaving an empty vector behind):
            // it is handed to the protected protocol, not kept.
            Some(mut p) => std::mem::take(&mut *p),
            None => t.appl_data.to_vec(),
        };
        if encrypted && check_prpdu(&plain, self.limits()).is_err() {
            return Err(perr("decrypted applData is not one PrPDU"));
        }
        // Accepted: update state.
        self.recv_last = Some((time, seq));
        match role {
            Role::Client => {
                if t.token2.req_rekey {
                    self.req_rekey = true;
                }
                if use_pending {
                    if let Rekey::ClientPending { keys, salt, .. } =
                        std::mem::replace(&mut self.rekey, Rekey::None)
                    {
                        self.keys = Some(keys);
                        self.salt = salt;
                        self.keys_since = now;
                    }
                }
            }
            Role::Server => {
                if !used_old && self.old_recv.as_ref().is_some_and(|(_, d)| d.is_some()) {
                    self.old_recv = None;
                }
                if let Some(y) = &t.token2.rekey {
                    let group = self
                        .suite
                        .as_ref()
                        .map(|s| s.group)
                        .ok_or_else(|| perr("no suite"))?;
                    let eph = self.my_dh.as_ref().ok_or_else(|| perr("no DH key"))?;
                    let z = eph
                        .agree(y)
                        .map_err(|_| perr("invalid rekey public value"))?;
                    let _ = group;
                    let salt = keys::next_salt(t.tbp, &self.salt);
                    let new = keys::derive(mode, &salt, &z, self.rng.as_mut())
                        .map_err(|e| perr(&e.to_string()))?;
                    // Old receive keys stay valid until the first PDU under the new ones.
                    self.rekey = Rekey::ServerDerived { keys: new, salt };
                }
            }
        }
        Ok(Output::Data(plain))
    }

    // ------------------------------------------------------------ release and abort

    fn release_req(&mut self, appl: Option<&[u8]>, now: TimeStamp) -> R<Vec<u8>> {
        if self.state != State::Established {
            return Err(E2eError::State(self.state));
        }
        if let Some(a) = appl {
            check_prpdu(a, self.limits())?;
        }
        let b = self.build_token3_pdu(
            SecPduKind::ReleaseReq,
            Token3Body::ApplData(appl.map(<[u8]>::to_vec)),
            now,
        )?;
        self.state = State::ReleaseSent;
        Ok(b)
    }

    fn release_rsp(&mut self, appl: Option<&[u8]>, now: TimeStamp) -> R<Vec<u8>> {
        let collision = self.state == State::ReleaseCollision && !self.collision.0;
        if self.state != State::ReleaseReceived && !collision {
            return Err(E2eError::State(self.state));
        }
        if let Some(a) = appl {
            check_prpdu(a, self.limits())?;
        }
        let b = self.build_token3_pdu(
            SecPduKind::ReleaseRsp,
            Token3Body::ApplData(appl.map(<[u8]>::to_vec)),
            now,
        )?;
        if collision {
            self.collision.0 = true;
            if self.collision.1 {
                self.close();
            }
        } else {
            self.close();
        }
        Ok(b)
    }

    fn appl_abort(&mut self, appl: Option<&[u8]>, now: TimeStamp) -> R<Vec<u8>> {
        if self.state == State::Closed {
            return Err(E2eError::State(self.state));
        }
        if let Some(a) = appl {
            check_prpdu(a, self.limits())?;
        }
        let b = self.build_token3_pdu(
            SecPduKind::ApplAbort,
            Token3Body::ApplData(appl.map(<[u8]>::to_vec)),
            now,
        )?;
        self.close();
        Ok(b)
    }

    /// Timer handling: the client's rekey timeout (§13.3.2 step 4) and the end of the server's
    /// old-key grace period (step 2).
    fn handle_timeout(&mut self, now: TimeStamp) -> R<()> {
        if self.state == State::Closed {
            return Ok(());
        }
        if let Rekey::ClientPending { since, .. } = &self.rekey {
            if now.abs_diff_ms(*since) > self.ctx.config.rekey_timeout_ms {
                let f = dfail(
                    events::REKEY_TIMEOUT,
                    DtDiagnostic::NoReasonGiven,
                    "no changedKey within the rekey timeout",
                );
                return Err(self.reject(f, Some(SecPduKind::DtSecAbort), now));
            }
        }
        if let Some((_, Some(deadline))) = &self.old_recv {
            if now > *deadline {
                self.old_recv = None;
            }
        }
        Ok(())
    }

    /// The next instant at which [`Core::handle_timeout`] has work, if any.
    fn next_timeout(&self) -> Option<TimeStamp> {
        let rekey = match &self.rekey {
            Rekey::ClientPending { since, .. } => Some(since.plus_ms(
                (self.ctx.config.rekey_timeout_ms.min(i64::MAX as u64) as i64).saturating_add(1),
            )),
            _ => None,
        };
        let grace = match &self.old_recv {
            Some((_, Some(d))) => Some(d.plus_ms(1)),
            _ => None,
        };
        match (rekey, grace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.keys = None;
        self.rekey = Rekey::None;
        self.old_recv = None;
        self.my_dh = None;
        self.pending_z = None;
        self.offered.clear();
    }

    /// Receives a PDU of the data phase or of termination.
    fn receive_common(&mut self, kind: SecPduKind, bytes: &[u8], now: TimeStamp) -> R<Output> {
        match (self.state, kind) {
            (
                State::Established | State::ReleaseSent | State::ReleaseCollision,
                SecPduKind::ClearTransfer | SecPduKind::EncrTransfer,
            ) => self.unprotect(kind, bytes, now),
            (State::ReleaseCollision, SecPduKind::ReleaseRsp) if !self.collision.1 => {
                let p = self
                    .verify_token3(13, kind, bytes, now)
                    .map_err(|f| self.reject(f, None, now))?;
                self.collision.1 = true;
                if self.collision.0 {
                    self.close();
                }
                Ok(Output::Released {
                    appl_data: appl_of(&p.body),
                })
            }
            (State::Established | State::ReleaseSent, SecPduKind::ReleaseReq) => {
                match self.verify_token3(12, kind, bytes, now) {
                    Ok(p) => {
                        self.state = if self.state == State::ReleaseSent {
                            self.collision = (false, false);
                            State::ReleaseCollision
                        } else {
                            State::ReleaseReceived
                        };
                        Ok(Output::ReleaseRequested {
                            appl_data: appl_of(&p.body),
                        })
                    }
                    // §15.6 DECISION: a ReleaseReq that fails verification is answered by DtSecAbort.
                    Err(f) => {
                        let f = match f.cause {
                            Some(Diagnostic::Handshake(HandshakeDiagnostic::UnexpectedVersion)) => {
                                Fail {
                                    cause: Some(Diagnostic::Dt(DtDiagnostic::UnexpectedVersion)),
                                    ..f
                                }
                            }
                            Some(Diagnostic::Handshake(HandshakeDiagnostic::InvalidTimeValue)) => {
                                Fail {
                                    cause: Some(Diagnostic::Dt(DtDiagnostic::InvalidTimeValue)),
                                    ..f
                                }
                            }
                            Some(Diagnostic::Handshake(_)) => Fail {
                                cause: Some(Diagnostic::Dt(DtDiagnostic::ProtocolError)),
                                ..f
                            },
                            _ => f,
                        };
                        Err(self.reject(f, Some(SecPduKind::DtSecAbort), now))
                    }
                }
            }
            (State::ReleaseSent, SecPduKind::ReleaseRsp) => {
                let p = self
                    .verify_token3(13, kind, bytes, now)
                    .map_err(|f| self.reject(f, None, now))?;
                self.close();
                Ok(Output::Released {
                    appl_data: appl_of(&p.body),
                })
            }
            (s, SecPduKind::DtSecAbort | SecPduKind::ApplAbort | SecPduKind::HandshakeSecAbort)
                if s != State::Closed =>
            {
                let group = match kind {
                    SecPduKind::DtSecAbort => 6,
                    SecPduKind::ApplAbort => 7,
                    _ => 5,
                };
                let p = self
                    .verify_token3(group, kind, bytes, now)
                    .map_err(|f| self.reject(f, None, now))?;
                let (diagnostic, appl_data) = match &p.body {
                    Token3Body::DtDiag(d) => (d.map(Diagnostic::Dt), None),
                    Token3Body::HandshakeDiag(d) => (d.map(Diagnostic::Handshake), None),
                    Token3Body::ApplData(a) => (None, a.clone()),
                };
                self.record_unknown_diag(kind, p.unknown_diag);
                self.record_received_abort(kind, diagnostic);
                self.close();
                Ok(Output::Aborted {
                    kind,
                    diagnostic,
                    appl_data,
                })
            }
            (State::Closed, _) => Err(E2eError::State(State::Closed)),
            _ => {
                let f = if matches!(
                    self.state,
                    State::Established
                        | State::ReleaseSent
                        | State::ReleaseReceived
                        | State::ReleaseCollision
                ) {
                    dfail(
                        dt(false, DtCheck::ProtocolErr),
                        DtDiagnostic::ProtocolError,
                        "unexpected SecPDU",
                    )
                } else {
                    let def = if self.role == Role::Server {
                        req::PROTOCOL_ERR
                    } else {
                        acc::PROTOCOL_ERR
                    };
                    hfail(def, HandshakeDiagnostic::ProtocolError, "unexpected SecPDU")
                };
                let reply = match self.state {
                    State::Established
                    | State::ReleaseSent
                    | State::ReleaseReceived
                    | State::ReleaseCollision => Some(SecPduKind::DtSecAbort),
                    State::AwaitAcc => Some(SecPduKind::HandshakeSecAbort),
                    _ => None,
                };
                Err(self.reject(f, reply, now))
            }
        }
    }

    /// Logs a received diagnostic number that names no value (§14.2 DECISION: handled as
    /// `no-reason-given`, the raw number logged).
    fn record_unknown_diag(&mut self, kind: SecPduKind, raw: Option<i64>) {
        if let Some(raw) = raw {
            let e = events::UNKNOWN_DIAG_RCVD.event(
                format!("{kind:?} received with unknown diagnostic number {raw} (taken as no-reason-given)"),
                self.asso_str().as_deref(),
            );
            self.push_event(e);
        }
    }

    fn record_received_abort(&mut self, kind: SecPduKind, diag: Option<Diagnostic>) {
        let def = match (kind, diag) {
            (SecPduKind::DtSecAbort, None) => Some(events::DT_ABORT_ALARM_RCVD),
            (SecPduKind::HandshakeSecAbort, None) => Some(events::SEC_ABORT_ALARM_RCVD),
            (SecPduKind::DtSecAbort, Some(Diagnostic::Dt(d))) => events::dt_abort_received(d),
            (SecPduKind::HandshakeSecAbort, Some(Diagnostic::Handshake(d))) => {
                Some(events::handshake_diag_received(false, d))
            }
            _ => None,
        };
        if let Some(def) = def {
            let e = def.event(
                match diag {
                    Some(Diagnostic::Dt(d)) => {
                        format!("{kind:?} received with diagnostic {}", d.name())
                    }
                    Some(Diagnostic::Handshake(d)) => {
                        format!("{kind:?} received with diagnostic {}", d.name())
                    }
                    None => format!("{kind:?} received without diagnostic"),
                },
                self.asso_str().as_deref(),
            );
            self.push_event(e);
        }
    }
}

/// Per-group event definitions for the signed-area checks.
struct SignedDefs {
    sig_alg_not_sup: EventDef,
    sig_alg_mismatch: EventDef,
    inv_signature: EventDef,
    pkcert_error: EventDef,
    pkcert_alarm: EventDef,
    addr_mismatch: EventDef,
}

impl SignedDefs {
    fn generic(group: u16) -> SignedDefs {
        SignedDefs {
            sig_alg_not_sup: generic(group, Generic::SigAlgNotSup),
            sig_alg_mismatch: generic(group, Generic::SigAlgMismatch),
            inv_signature: generic(group, Generic::InvSignature),
            pkcert_error: generic(group, Generic::PkCertError),
            pkcert_alarm: generic(group, Generic::PkCertAlarm),
            addr_mismatch: generic(group, Generic::AddrMismatch),
        }
    }
    fn req() -> SignedDefs {
        SignedDefs {
            sig_alg_not_sup: req::SIG_ALG_NOT_SUP,
            sig_alg_mismatch: req::SIG_ALG_MISMATCH,
            inv_signature: req::INV_SIGNATURE,
            pkcert_error: req::PKCERT_ERROR,
            pkcert_alarm: req::PKCERT_ALARM,
            addr_mismatch: req::ADDR_MISMATCH,
        }
    }
    fn acc() -> SignedDefs {
        SignedDefs {
            sig_alg_not_sup: acc::SIG_ALG_NOT_SUP,
            sig_alg_mismatch: acc::SIG_ALG_MISMATCH,
            inv_signature: acc::INV_SIGNATURE,
            pkcert_error: acc::PKCERT_ERROR,
            pkcert_alarm: acc::PKCERT_ALARM,
            addr_mismatch: acc::ADDR_MISMATCH,
        }
    }
}

fn appl_of(b: &Token3Body) -> Option<Vec<u8>> {
    match b {
        Token3Body::ApplData(a) => a.clone(),
        _ => None,
    }
}

fn verify_sig(
    key: &PKey<Public>,
    alg: SignatureAlgorithm,
    data: &[u8],
    sig: &[u8],
) -> Result<(), CryptoError> {
    crypto::verify_signature(key, alg, data, sig)
}

/// A PrPDU must be exactly one BER element (the open type of applData, §13.5).
fn check_prpdu(pr: &[u8], limits: Limits) -> R<()> {
    if pr.len() > limits::MAX_PRPDU {
        return Err(E2eError::InvalidPrPdu);
    }
    let mut r = Reader::new(pr, limits);
    r.read().map_err(|_| E2eError::InvalidPrPdu)?;
    r.finish().map_err(|_| E2eError::InvalidPrPdu)
}

/// Seals a PrPDU into a BER ClearTransfer or EncrTransfer (§13.2, §13.4); returns the kind, the
/// PDU and the range of the `tbp` content octets in it.
fn seal_ber(
    mode: ProtectionMode,
    keys: &mut DirKeys,
    token2: &mut ClearToken2,
    iv16: &[u8; 16],
    pr_pdu: &[u8],
) -> R<(SecPduKind, Vec<u8>, usize, usize)> {
    // The PDU is assembled in one buffer: headers first (all lengths are known in advance),
    // then the payload is encrypted or copied in place, then the ICV is computed over the
    // tbp octets inside that buffer.
    let seq_tag = Tag::SEQUENCE;
    Ok(match mode {
        ProtectionMode::Ae(_) => {
            let nonce = keys.next_nonce()?;
            token2.iv = Some(nonce.to_vec());
            let aad = token2.encode_content();
            let ct_len = pr_pdu.len() + GCM_DEFAULT_TAG_LEN;
            let tbp_len = tlv_len(aad.len()) + tlv_len(ct_len);
            // Slack for the cipher's block of look-ahead output.
            let mut out = Vec::with_capacity(tlv_len(tlv_len(tbp_len)) + 2 * crypto::AES_BLOCK);
            put_header(&mut out, seq_tag, tlv_len(tbp_len));
            put_header(&mut out, seq_tag, tbp_len);
            let start = out.len();
            put_header(&mut out, seq_tag, aad.len());
            out.extend_from_slice(&aad);
            put_header(&mut out, Tag::OCTET_STRING, ct_len);
            crypto::gcm_seal_into(
                &keys.enc,
                &nonce,
                &aad,
                pr_pdu,
                GCM_DEFAULT_TAG_LEN,
                &mut out,
            )?;
            (SecPduKind::EncrTransfer, out, start, start + tbp_len)
        }
        ProtectionMode::NonAe { encr, icv } => {
            let aad = token2.encode_content();
            let payload_len = match encr {
                Some(_) => tlv_len(crypto::cbc_ciphertext_len(pr_pdu.len())),
                None => pr_pdu.len(),
            };
            let tbp_len = tlv_len(aad.len()) + payload_len;
            let nonce = if icv.is_gmac() {
                Some(keys.next_nonce()?)
            } else {
                None
            };
            let icv_len = if icv.is_gmac() {
                GCM_DEFAULT_TAG_LEN
            } else {
                crypto::SHA256_LEN
            };
            let mut auth = Authenticator {
                nonce: nonce.map(|n| n.to_vec()),
                algorithm: icv.id(),
                icv: vec![0; icv_len],
            };
            let auth_len = auth.to_ber().len();
            let mut out =
                Vec::with_capacity(tlv_len(tlv_len(tbp_len) + auth_len) + 2 * crypto::AES_BLOCK);
            put_header(&mut out, seq_tag, tlv_len(tbp_len) + auth_len);
            put_header(&mut out, seq_tag, tbp_len);
            let start = out.len();
            put_header(&mut out, seq_tag, aad.len());
            out.extend_from_slice(&aad);
            match encr {
                Some(_) => {
                    put_header(
                        &mut out,
                        Tag::OCTET_STRING,
                        crypto::cbc_ciphertext_len(pr_pdu.len()),
                    );
                    match keys.cbc() {
                        Some(c) => c.encrypt_into(iv16, pr_pdu, &mut out)?,
                        None => crypto::cbc_encrypt_into(&keys.enc, iv16, pr_pdu, &mut out)?,
                    }
                }
                None => out.extend_from_slice(pr_pdu),
            }
            let end = out.len();
            if end - start != tbp_len {
                return Err(E2eError::Config("tbp length mismatch"));
            }
            auth.icv = icv_tag(icv, keys, nonce.as_ref(), &out[start..end])?;
            let a = auth.to_ber();
            if a.len() != auth_len {
                return Err(E2eError::Config("auth length mismatch"));
            }
            out.extend_from_slice(&a);
            let kind = if encr.is_some() {
                SecPduKind::EncrTransfer
            } else {
                SecPduKind::ClearTransfer
            };
            (kind, out, start, end)
        }
    })
}

/// Seals a PrPDU into an XML ClearTransfer or EncrTransfer (§16.3): the AAD is the characters
/// between `<token2>` and `</token2>`, the ICV covers those between `<tbp>` and `</tbp>`, and
/// the plaintext is the PrPDU's BER octets ([`xml::OPEN_TYPE_FORM`] DECISION). Returns the
/// kind, the UTF-8 PDU and the range of the `tbp` characters in it.
fn seal_xml(
    mode: ProtectionMode,
    keys: &mut DirKeys,
    token2: &mut ClearToken2,
    iv16: &[u8; 16],
    pr_pdu: &[u8],
) -> R<(SecPduKind, Vec<u8>, usize, usize)> {
    let (kind, t) = match mode {
        ProtectionMode::Ae(_) => {
            let nonce = keys.next_nonce()?;
            token2.iv = Some(nonce.to_vec());
            let aad = xml::token2_content(token2);
            let mut ct =
                Vec::with_capacity(pr_pdu.len() + GCM_DEFAULT_TAG_LEN + 2 * crypto::AES_BLOCK);
            crypto::gcm_seal_into(
                &keys.enc,
                &nonce,
                aad.as_bytes(),
                pr_pdu,
                GCM_DEFAULT_TAG_LEN,
                &mut ct,
            )?;
            let t = xml::assemble_transfer(token2.clone(), aad, ct, true);
            (SecPduKind::EncrTransfer, t)
        }
        ProtectionMode::NonAe { encr, icv } => {
            let aad = xml::token2_content(token2);
            let payload = match encr {
                Some(_) => {
                    let mut ct = Vec::with_capacity(
                        crypto::cbc_ciphertext_len(pr_pdu.len()) + 2 * crypto::AES_BLOCK,
                    );
                    match keys.cbc() {
                        Some(c) => c.encrypt_into(iv16, pr_pdu, &mut ct)?,
                        None => crypto::cbc_encrypt_into(&keys.enc, iv16, pr_pdu, &mut ct)?,
                    }
                    ct
                }
                None => pr_pdu.to_vec(),
            };
            let mut t = xml::assemble_transfer(token2.clone(), aad, payload, encr.is_some());
            let nonce = if icv.is_gmac() {
                Some(keys.next_nonce()?)
            } else {
                None
            };
            let tag = icv_tag(icv, keys, nonce.as_ref(), &t.tbp)?;
            t.auth = Some(Authenticator {
                nonce: nonce.map(|n| n.to_vec()),
                algorithm: icv.id(),
                icv: tag,
            });
            let kind = if encr.is_some() {
                SecPduKind::EncrTransfer
            } else {
                SecPduKind::ClearTransfer
            };
            (kind, t)
        }
    };
    let start = xml::covered_offset(kind).ok_or(E2eError::Config("tbp offset"))?;
    let end = start + t.tbp.len();
    let tbp = t.tbp.clone();
    let pdu = if kind == SecPduKind::EncrTransfer {
        SecPdu::EncrTransfer(t)
    } else {
        SecPdu::ClearTransfer(t)
    };
    let out = xml::encode(&pdu)
        .map_err(|_| E2eError::Config("XML encoding of a transfer"))?
        .into_bytes();
    if out.get(start..end) != Some(&tbp[..]) {
        return Err(E2eError::Config("tbp offset mismatch"));
    }
    Ok((kind, out, start, end))
}

/// The ICV over `data` with one direction's ICV key (§13.4.2).
fn icv_tag(
    icv: IcvAlg,
    keys: &mut DirKeys,
    nonce: Option<&[u8; GCM_NONCE_LEN]>,
    data: &[u8],
) -> R<Vec<u8>> {
    Ok(match (icv, nonce) {
        (IcvAlg::HmacSha256, _) => match keys.hmac() {
            // The keyed context of this key (no per-PDU key set-up and digest fetch).
            Some(h) => h.tag(data)?.to_vec(),
            None => crypto::hmac_sha256(&keys.icv, data)?.to_vec(),
        },
        (_, Some(n)) => match keys.gmac() {
            // The keyed context of this key (no per-PDU cipher set-up).
            Some(g) => {
                let mut tag = vec![0; GCM_DEFAULT_TAG_LEN];
                g.tag_into(n, data, &mut tag)?;
                tag
            }
            None => crypto::gmac(&keys.icv, n, data, GCM_DEFAULT_TAG_LEN)?,
        },
        (_, None) => return Err(E2eError::Config("GMAC without nonce")),
    })
}

/// Verifies and decrypts a transfer with one direction's keys. `Ok(None)` = clear, verified.
fn open(
    mode: ProtectionMode,
    k: &mut DirKeys,
    t: &TransferView<'_>,
) -> Result<Option<Zeroizing<Vec<u8>>>, ()> {
    match mode {
        ProtectionMode::Ae(_) => {
            let nonce = t.token2.iv.as_deref().ok_or(())?;
            crypto::gcm_open(
                &k.enc,
                nonce,
                t.token2_content,
                t.appl_data,
                GCM_DEFAULT_TAG_LEN,
            )
            .map(Some)
            .map_err(|_| ())
        }
        ProtectionMode::NonAe { encr, icv } => {
            let auth = t.auth.as_ref().ok_or(())?;
            match icv {
                IcvAlg::HmacSha256 => match k.hmac() {
                    Some(h) => h.verify(t.tbp, &auth.icv).map_err(|_| ())?,
                    None => crypto::hmac_sha256_verify(&k.icv, t.tbp, &auth.icv).map_err(|_| ())?,
                },
                _ => {
                    let n = auth.nonce.as_deref().ok_or(())?;
                    match k.gmac() {
                        // The keyed context of this key (no per-PDU cipher set-up).
                        Some(g) => g.verify(n, t.tbp, &auth.icv).map_err(|_| ())?,
                        None => crypto::gmac_verify(&k.icv, n, t.tbp, &auth.icv).map_err(|_| ())?,
                    }
                }
            }
            match encr {
                None => Ok(None),
                Some(_) => {
                    let iv = t.token2.iv.as_deref().ok_or(())?;
                    let pt = match k.cbc() {
                        Some(c) => c.decrypt(iv, t.appl_data),
                        None => crypto::cbc_decrypt(&k.enc, iv, t.appl_data),
                    };
                    pt.map(Some).map_err(|_| ())
                }
            }
        }
    }
}

// ================================================================ negotiation (§13.3.1.5)

fn server_select(cfg: &crate::config::E2eConfig, t: &ClearToken1) -> Result<ProtectionMode, Fail> {
    use HandshakeDiagnostic as H;
    match &t.encr_mode {
        EncrMode::Aea(list) => {
            if cfg.encryption == EncryptionPolicy::Forbidden {
                return Err(hfail(
                    req::AEAD_NO_ENCR,
                    H::AeaSelectButEncrypNotSupp,
                    "AE requested, encryption not supported",
                ));
            }
            if cfg.allowed_ae.is_empty() {
                return Err(hfail(
                    req::AEAD_NOT_SUP,
                    H::EncrModeAeaNotSupported,
                    "AE mode not supported",
                ));
            }
            list.iter()
                .filter_map(AeAlg::from_id)
                .find(|a| cfg.allowed_ae.contains(a))
                .map(ProtectionMode::Ae)
                .ok_or_else(|| {
                    hfail(
                        req::AE_ALG_NOT_SUP,
                        H::AeaAlgorithmsNotSupported,
                        "no AE algorithm supported",
                    )
                })
        }
        EncrMode::NonAea { encr, icv } => {
            if cfg.require_ae {
                return Err(hfail(
                    req::AE_REQUIRED,
                    H::AeIsRequired,
                    "policy requires AE",
                ));
            }
            let e = match encr {
                None => {
                    if cfg.encryption == EncryptionPolicy::Required {
                        return Err(hfail(
                            req::ENCR_NOT_REQ,
                            H::EncryptionRequired,
                            "policy requires encryption",
                        ));
                    }
                    None
                }
                Some(list) => {
                    if cfg.encryption == EncryptionPolicy::Forbidden {
                        return Err(hfail(
                            req::ENCR_NOT_REQUIRED,
                            H::EncryptionNotRequired,
                            "encryption not allowed by policy",
                        ));
                    }
                    Some(
                        list.iter()
                            .filter_map(EncrAlg::from_id)
                            .find(|a| cfg.allowed_encr.contains(a))
                            .ok_or_else(|| {
                                hfail(
                                    req::ENCR_ALG_NOT_SUP,
                                    H::EncryptAlgorithmsNotSupported,
                                    "no encryption algorithm supported",
                                )
                            })?,
                    )
                }
            };
            let i = icv
                .iter()
                .filter_map(IcvAlg::from_id)
                .find(|a| cfg.allowed_icv.contains(a))
                .ok_or_else(|| {
                    hfail(
                        req::ICV_ALG_NOT_SUP,
                        H::IcvAlgorithmsNotSupported,
                        "no ICV algorithm supported",
                    )
                })?;
            Ok(ProtectionMode::NonAe { encr: e, icv: i })
        }
    }
}

fn client_check_selection(
    cfg: &crate::config::E2eConfig,
    sel: &EncrMode,
) -> Result<ProtectionMode, Fail> {
    use HandshakeDiagnostic as H;
    let selects_encryption = match sel {
        EncrMode::Aea(_) => true,
        EncrMode::NonAea { encr, .. } => encr.is_some(),
    };
    if selects_encryption && cfg.encryption == EncryptionPolicy::Forbidden {
        return Err(hfail(
            acc::ENCR_NOT_REQUIRED,
            H::EncryptionNotRequired,
            "server selected encryption against policy",
        ));
    }
    match (&cfg.offer, sel) {
        (ModeOffer::Ae(offered), EncrMode::Aea(list)) => {
            if list.len() != 1 {
                return Err(hfail(
                    acc::SINGLE_AE_ALG,
                    H::SingleAeAlgorithmRequired,
                    "not exactly one AE algorithm",
                ));
            }
            match AeAlg::from_id(&list[0]) {
                Some(a) if offered.contains(&a) => Ok(ProtectionMode::Ae(a)),
                _ => Err(hfail(
                    acc::INV_AE_ALG,
                    H::InvalidAeAlgorithm,
                    "AE algorithm not offered",
                )),
            }
        }
        (ModeOffer::Ae(_), EncrMode::NonAea { .. }) => Err(hfail(
            acc::AE_NOT_USED,
            H::AeNotUsed,
            "server answered non-AE",
        )),
        (ModeOffer::NonAe { .. }, EncrMode::Aea(_)) => Err(hfail(
            acc::INV_AE_ALG,
            H::InvalidAeAlgorithm,
            "AE not offered",
        )),
        (ModeOffer::NonAe { encr: oe, icv: oi }, EncrMode::NonAea { encr, icv }) => {
            let e = match encr {
                Some(list) => {
                    if list.len() != 1 {
                        return Err(hfail(
                            acc::SINGLE_ENCR_ALG,
                            H::SingleEncryptAlgoRequired,
                            "not exactly one encryption algorithm",
                        ));
                    }
                    match EncrAlg::from_id(&list[0]) {
                        Some(a) if oe.contains(&a) => Some(a),
                        _ => {
                            return Err(hfail(
                                acc::INV_ENCR_ALG,
                                H::InvalidEncryptionAlgorithm,
                                "encryption algorithm not offered",
                            ))
                        }
                    }
                }
                None => {
                    if cfg.encryption == EncryptionPolicy::Required {
                        return Err(hfail(
                            acc::ENCR_REQUIRED,
                            H::EncryptionRequired,
                            "server selected no encryption",
                        ));
                    }
                    None
                }
            };
            if icv.len() != 1 {
                return Err(hfail(
                    acc::SINGLE_ICV_ALG,
                    H::SingleIcvAlgoRequired,
                    "not exactly one ICV algorithm",
                ));
            }
            match IcvAlg::from_id(&icv[0]) {
                Some(a) if oi.contains(&a) => Ok(ProtectionMode::NonAe { encr: e, icv: a }),
                _ => Err(hfail(
                    acc::INV_ICV_ALG,
                    H::IcvAlgorithmsNotSupported,
                    "ICV algorithm not offered",
                )),
            }
        }
    }
}

fn offer_mode(offer: &ModeOffer) -> EncrMode {
    match offer {
        ModeOffer::Ae(l) => EncrMode::Aea(l.iter().map(|a| a.id()).collect()),
        ModeOffer::NonAe { encr, icv } => EncrMode::NonAea {
            encr: if encr.is_empty() {
                None
            } else {
                Some(encr.iter().map(|a| a.id()).collect())
            },
            icv: icv.iter().map(|a| a.id()).collect(),
        },
    }
}

fn selection_mode(m: ProtectionMode) -> EncrMode {
    match m {
        ProtectionMode::Ae(a) => EncrMode::Aea(vec![a.id()]),
        ProtectionMode::NonAe { encr, icv } => EncrMode::NonAea {
            encr: encr.map(|e| vec![e.id()]),
            icv: vec![icv.id()],
        },
    }
}

// ================================================================ public roles

macro_rules! common_api {
    () => {
        /// The association state.
        pub fn state(&self) -> State {
            self.core.state
        }
        /// The AssoID, once known.
        pub fn asso_id(&self) -> Option<&AssoId> {
            self.core.asso.as_ref()
        }
        /// The agreed protection, once established.
        pub fn protection(&self) -> Option<ProtectionMode> {
            self.core.suite.as_ref().map(|s| s.mode)
        }
        /// The next queued security event.
        pub fn poll_event(&mut self) -> Option<SecurityEvent> {
            self.core.events.pop_front()
        }
        /// Sets the environment address the peer's certificate must bind to (Annex G.6; §14.3
        /// step 6). Without it the address check is skipped.
        pub fn set_expected_peer(&mut self, id: Option<PeerIdentity>) {
            self.core.expected_peer = id;
        }
        /// The peer's application certificate (DER) once the handshake verified it.
        pub fn peer_certificate(&self) -> Option<&[u8]> {
            self.core.peer.as_ref().map(|p| p.cert.as_slice())
        }
        /// Ends an established association because the peer's certificate is now revoked
        /// (a reloaded CRL): the DtSecAbort (diagnostic `no-reason-given`) comes back in the
        /// [`E2eError::Rejected`] and the `E2E_PEER_CERT_REVOKED` incident is queued.
        /// Outside the data-transfer phase it returns [`E2eError::State`] and does nothing.
        pub fn abort_revoked_peer(&mut self, detail: &str, now: TimeStamp) -> E2eError {
            match self.core.state {
                State::Established
                | State::ReleaseSent
                | State::ReleaseReceived
                | State::ReleaseCollision => self.core.reject(
                    dfail(
                        events::PEER_CERT_REVOKED,
                        DtDiagnostic::NoReasonGiven,
                        detail.to_string(),
                    ),
                    Some(SecPduKind::DtSecAbort),
                    now,
                ),
                s => E2eError::State(s),
            }
        }
        /// Certificates (SHA-256 of their DER) the peer's application certificate may not be:
        /// the TLS certificates of this connection (Annex G.2). A HandshakeReq or HandshakeAcc
        /// signed with one is refused with `invalid-public-key-certificate` (PKCERT_ERROR).
        pub fn refuse_certificates(&mut self, fingerprints: &[[u8; 32]]) {
            self.core.refused_certs = fingerprints.to_vec();
        }
        /// Protects a PrPDU (one BER element) into a ClearTransfer or EncrTransfer, as agreed.
        pub fn protect(
            &mut self,
            pr_pdu: &[u8],
            now: TimeStamp,
        ) -> Result<(SecPduKind, Vec<u8>), E2eError> {
            self.core.protect(pr_pdu, now)
        }
        /// Sends ReleaseReq (applData: e.g. MMS Conclude-Request).
        pub fn release_req(
            &mut self,
            appl: Option<&[u8]>,
            now: TimeStamp,
        ) -> Result<Vec<u8>, E2eError> {
            self.core.release_req(appl, now)
        }
        /// Answers a received ReleaseReq with ReleaseRsp and closes.
        pub fn release_rsp(
            &mut self,
            appl: Option<&[u8]>,
            now: TimeStamp,
        ) -> Result<Vec<u8>, E2eError> {
            self.core.release_rsp(appl, now)
        }
        /// Runs the engine's timers (client rekey timeout, server old-key grace period). A rekey
        /// timeout returns [`E2eError::Rejected`] whose reply is the DtSecAbort to send.
        pub fn handle_timeout(&mut self, now: TimeStamp) -> Result<(), E2eError> {
            self.core.handle_timeout(now)
        }
        /// When [`Self::handle_timeout`] should next be called, if a timer is running.
        pub fn next_timeout(&self) -> Option<TimeStamp> {
            self.core.next_timeout()
        }
        /// Sends ApplAbort (abort by the protected protocol) and closes.
        pub fn appl_abort(
            &mut self,
            appl: Option<&[u8]>,
            now: TimeStamp,
        ) -> Result<Vec<u8>, E2eError> {
            self.core.appl_abort(appl, now)
        }
    };
}

/// The client end of an E2E association.
///
/// ```
/// # use secmms_e2e::doc_support::*;
/// use secmms_e2e::{E2eClient, E2eServer, Output, SecPduKind, TimeStamp};
/// let (cctx, sctx) = demo_contexts();
/// let now = TimeStamp::from_unix_secs(1_750_000_000);
/// let mut client = E2eClient::new(cctx, Box::new(secmms_pki::crypto::OsRandom), 1);
/// let mut server = E2eServer::new(sctx, Box::new(secmms_pki::crypto::OsRandom), 7);
/// // Handshake: Initiate-Request inside HandshakeReq, Initiate-Response inside HandshakeAcc.
/// let req = client.handshake_req(Some(&[0xa8, 0x00]), now).unwrap();
/// let out = server.receive(SecPduKind::HandshakeReq, &req, now).unwrap();
/// assert!(matches!(out, Output::HandshakeRequested { .. }));
/// let acc = server.accept(Some(&[0xa9, 0x00]), now).unwrap();
/// let out = client.receive(SecPduKind::HandshakeAcc, &acc, now).unwrap();
/// assert_eq!(out, Output::Established { appl_data: Some(vec![0xa9, 0x00]) });
/// // Data transfer.
/// let (kind, pdu) = client.protect(&[0xa0, 0x03, 0x02, 0x01, 0x05], now).unwrap();
/// match server.receive(kind, &pdu, now).unwrap() {
///     Output::Data(pr) => assert_eq!(&pr[..], &[0xa0, 0x03, 0x02, 0x01, 0x05]),
///     o => panic!("{o:?}"),
/// }
/// ```
pub struct E2eClient {
    core: Core,
}

impl std::fmt::Debug for E2eClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eClient")
            .field("state", &self.core.state)
            .finish_non_exhaustive()
    }
}

impl E2eClient {
    /// A client association; `local_num` becomes the `c` of the AssoID (mod 1000).
    pub fn new(ctx: Context, rng: Box<dyn RandomSource>, local_num: u16) -> E2eClient {
        E2eClient {
            core: Core::new(Role::Client, ctx, rng, local_num),
        }
    }

    common_api!();

    /// Asks for a key refresh on the next protected PDU (a pending, unacknowledged refresh is
    /// abandoned and replaced).
    pub fn start_rekey(&mut self) {
        self.core.req_rekey = true;
    }

    /// Builds the HandshakeReq carrying `appl_data` (MMS Initiate-RequestPDU).
    pub fn handshake_req(
        &mut self,
        appl_data: Option<&[u8]>,
        now: TimeStamp,
    ) -> Result<Vec<u8>, E2eError> {
        let c = &mut self.core;
        if c.state != State::Idle {
            return Err(E2eError::State(c.state));
        }
        if let Some(a) = appl_data {
            check_prpdu(a, c.limits())?;
        }
        let cfg = c.ctx.config.clone();
        if cfg.offer_groups.is_empty() || cfg.offer_groups.len() > limits::MAX_DH_ENTRIES {
            return Err(E2eError::Config("offer_groups"));
        }
        let mut dh_key = Vec::new();
        c.offered.clear();
        for g in &cfg.offer_groups {
            let k = EphemeralKey::generate(*g, c.rng.as_mut())?;
            dh_key.push(DiffieHellman {
                group: group_number(*g),
                public_key: k.public_value().to_vec(),
            });
            c.offered.push(k);
        }
        let encr_mode = offer_mode(&cfg.offer);
        let mut conf = cfg.conf_params;
        conf.appl_protected |= match &encr_mode {
            EncrMode::Aea(_) => true,
            EncrMode::NonAea { encr, .. } => encr.is_some(),
        };
        let asso = AssoId::client(c.local_num);
        let token1 = ClearToken1 {
            sig_alg: c.sig_alg_id(),
            pk_cert: c.ctx.credentials.cert_der.clone(),
            cert_path: c.ctx.credentials.cert_path.clone(),
            version: Version::v1(),
            asso_id: asso.clone(),
            dh_key,
            hmac: alg::hmac_alg_id(),
            time: now,
            encr_mode,
            conf_params: conf,
            att_cert: c.ctx.credentials.att_cert.clone(),
        };
        let tbs = c.handshake_tbs(&token1, appl_data);
        let sign = c.sign(&tbs)?;
        let h = Handshake {
            pp: cfg.protected_protocol.clone(),
            token1,
            appl_data: appl_data.map(<[u8]>::to_vec),
            sign,
            tbs,
        };
        let bytes = c.encode_pdu(&SecPdu::HandshakeReq(h.clone()))?;
        c.asso = Some(asso);
        c.req = Some(h);
        c.state = State::AwaitAcc;
        Ok(bytes)
    }

    /// Receives a SecPDU from the server (HandshakeAcc, ApplicationReject, HandshakeSecReject,
    /// transfers, release and aborts).
    pub fn receive(
        &mut self,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> Result<Output, E2eError> {
        let c = &mut self.core;
        if c.state == State::AwaitAcc {
            match kind {
                SecPduKind::HandshakeAcc => {
                    return match self.check_acc(bytes, now) {
                        Ok(o) => Ok(o),
                        Err(f) => {
                            Err(self
                                .core
                                .reject(f, Some(SecPduKind::HandshakeSecAbort), now))
                        }
                    }
                }
                SecPduKind::ApplicationReject | SecPduKind::HandshakeSecReject => {
                    let group = if kind == SecPduKind::ApplicationReject {
                        3
                    } else {
                        4
                    };
                    let p = c
                        .verify_token3(group, kind, bytes, now)
                        .map_err(|f| c.reject(f, None, now))?;
                    c.close();
                    c.record_unknown_diag(kind, p.unknown_diag);
                    return Ok(match p.body {
                        Token3Body::HandshakeDiag(d) => {
                            let (def, text) = match d {
                                None => (
                                    events::SEC_REJECT_ALARM_RCVD,
                                    "HandshakeSecReject received without diagnostic".to_string(),
                                ),
                                Some(d) => (
                                    events::handshake_diag_received(true, d),
                                    format!(
                                        "HandshakeSecReject received with diagnostic {}",
                                        d.name()
                                    ),
                                ),
                            };
                            let e = def.event(text, c.asso_str().as_deref());
                            c.push_event(e);
                            Output::SecurityRejected { diagnostic: d }
                        }
                        Token3Body::ApplData(a) => Output::ApplicationRejected { appl_data: a },
                        Token3Body::DtDiag(_) => Output::SecurityRejected { diagnostic: None },
                    });
                }
                _ => {}
            }
        }
        c.receive_common(kind, bytes, now)
    }

    fn check_acc(&mut self, bytes: &[u8], now: TimeStamp) -> Result<Output, Fail> {
        use HandshakeDiagnostic as H;
        let c = &mut self.core;
        let h = match c.decode_pdu(SecPduKind::HandshakeAcc, bytes) {
            Ok(SecPdu::HandshakeAcc(h)) => h,
            Ok(_) => {
                return Err(hfail(
                    acc::PROTOCOL_ERR,
                    H::ProtocolError,
                    "not a HandshakeAcc",
                ))
            }
            Err(e) => return Err(hfail(acc::PROTOCOL_ERR, H::ProtocolError, e)),
        };
        let t = &h.token1;
        let info = c.verify_signed(
            &t.sig_alg,
            &h.sign,
            &h.tbs,
            &t.pk_cert,
            t.cert_path.as_deref(),
            now,
            &SignedDefs::acc(),
        )?;
        let my = c
            .asso
            .clone()
            .ok_or_else(|| hfail(acc::PROTOCOL_ERR, H::ProtocolError, "no assoID"))?;
        if !t.asso_id.is_pair() || t.asso_id.client_part() != my.as_str() {
            return Err(hfail(
                acc::PROTOCOL_ERR,
                H::ProtocolError,
                "assoID is not c:s with our c",
            ));
        }
        if h.pp != c.ctx.config.protected_protocol {
            return Err(hfail(acc::PROTOCOL_ERR, H::ProtocolError, "pp differs"));
        }
        if !t.version.has_v1() {
            return Err(hfail(acc::UNEXP_VERSION, H::UnexpectedVersion, "version"));
        }
        if !c.in_window(t.time, now) {
            return Err(hfail(
                acc::INV_TIME,
                H::InvalidTimeValue,
                "time outside window",
            ));
        }
        if !c.check_replay(
            &info,
            t.time,
            t.asso_id.as_str(),
            SecPduKind::HandshakeAcc,
            now,
        ) {
            return Err(fail(acc::REPLAY, None, "replayed HandshakeAcc"));
        }
        // Step 11: exactly one DH entry in a group we offered.
        let (idx, dh) = match t.dh_key.as_slice() {
            [d] => {
                let idx = c
                    .offered
                    .iter()
                    .position(|k| group_number(k.group()) == d.group)
                    .ok_or_else(|| {
                        hfail(
                            acc::INV_DH_GROUP,
                            H::IllegalDhGroupSelected,
                            "DH group not offered",
                        )
                    })?;
                (idx, d)
            }
            _ => {
                return Err(hfail(
                    acc::INV_DH_GROUP,
                    H::IllegalDhGroupSelected,
                    "not exactly one DH entry",
                ))
            }
        };
        // Step 12: HMAC unchanged.
        if !alg::is_hmac_sha256(&t.hmac) {
            return Err(hfail(
                acc::HMAC_NOT_SUP,
                H::HmacAlgorithmNotSupported,
                "hmac changed",
            ));
        }
        // Step 13: selection.
        let mode = client_check_selection(&c.ctx.config, &t.encr_mode)?;
        // Step 14: attribute certificate.
        if let Some(ac) = &t.att_cert {
            check_att_cert(c, ac, &info, now, acc::ATTCERT)?;
        }
        let eph = c.offered.swap_remove(idx);
        let z = eph.agree(&dh.public_key).map_err(|_| {
            hfail(
                acc::PROTOCOL_ERR,
                H::ProtocolError,
                "invalid server DH value",
            )
        })?;
        let req_tbs = c.req.as_ref().map(|r| r.tbs.clone()).unwrap_or_default();
        c.salt = keys::initial_salt(&req_tbs, &h.tbs);
        let ks = keys::derive(mode, &c.salt, &z, c.rng.as_mut())
            .map_err(|e| hfail(acc::PROTOCOL_ERR, H::ProtocolError, e.to_string()))?;
        c.keys = Some(ks);
        c.peer_dh_public = dh.public_key.clone();
        c.suite = Some(Suite {
            group: eph.group(),
            mode,
        });
        c.offered.clear();
        c.my_dh = None;
        c.asso = Some(t.asso_id.clone());
        c.peer = Some(info);
        c.keys_since = now;
        c.state = State::Established;
        Ok(Output::Established {
            appl_data: h.appl_data,
        })
    }
}

fn check_att_cert(
    c: &Core,
    ac: &[u8],
    info: &PeerInfo,
    now: TimeStamp,
    def: EventDef,
) -> Result<(), Fail> {
    let holder = secmms_pki::ValidatedCert {
        public_key: info.key.clone(),
        info: secmms_pki::cert::CertInfo::parse(&info.cert).map_err(|e| {
            hfail(
                def,
                HandshakeDiagnostic::InvalidPublicKeyCertificate,
                e.to_string(),
            )
        })?,
        warnings: Vec::new(),
        fingerprint: info.fingerprint,
    };
    c.ctx
        .validator
        .validate_attribute_cert(ac, &holder, now.unix_secs())
        .map_err(|e| {
            hfail(
                def,
                HandshakeDiagnostic::InvalidAttributeCertificate,
                e.to_string(),
            )
        })
}

/// The server end of an E2E association. See [`E2eClient`] for an example.
pub struct E2eServer {
    core: Core,
}

impl std::fmt::Debug for E2eServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eServer")
            .field("state", &self.core.state)
            .finish_non_exhaustive()
    }
}

impl E2eServer {
    /// A server association; `local_num` becomes the `s` of the AssoID (mod 1000).
    pub fn new(ctx: Context, rng: Box<dyn RandomSource>, local_num: u16) -> E2eServer {
        E2eServer {
            core: Core::new(Role::Server, ctx, rng, local_num),
        }
    }

    common_api!();

    /// Asks the client for a key refresh (`reqRekey`) on the next protected PDU.
    pub fn request_rekey(&mut self) {
        self.core.req_rekey = true;
    }

    /// Rejects a HandshakeReq that passed the security checks for a local reason outside
    /// clause 14 (for example a role-based access decision or resource limits): sends
    /// HandshakeSecReject with `diag` (usually `no-reason-given`) and closes.
    pub fn security_reject(
        &mut self,
        diag: HandshakeDiagnostic,
        now: TimeStamp,
    ) -> Result<Vec<u8>, E2eError> {
        let c = &mut self.core;
        if c.state != State::AwaitLocalAccept {
            return Err(E2eError::State(c.state));
        }
        let b = c.build_token3_pdu(
            SecPduKind::HandshakeSecReject,
            Token3Body::HandshakeDiag(Some(diag)),
            now,
        )?;
        c.close();
        Ok(b)
    }

    /// Receives a SecPDU from the client. A HandshakeReq that fails a check yields
    /// [`E2eError::Rejected`] whose reply is the HandshakeSecReject to send.
    pub fn receive(
        &mut self,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> Result<Output, E2eError> {
        if self.core.state == State::Idle {
            if kind != SecPduKind::HandshakeReq {
                let f = hfail(
                    req::PROTOCOL_ERR,
                    HandshakeDiagnostic::ProtocolError,
                    "expected HandshakeReq",
                );
                return Err(self
                    .core
                    .reject(f, Some(SecPduKind::HandshakeSecReject), now));
            }
            return match self.check_req(bytes, now) {
                Ok(o) => Ok(o),
                Err(f) => Err(self
                    .core
                    .reject(f, Some(SecPduKind::HandshakeSecReject), now)),
            };
        }
        if self.core.state == State::AwaitLocalAccept {
            if matches!(kind, SecPduKind::HandshakeSecAbort | SecPduKind::ApplAbort) {
                return self.core.receive_common(kind, bytes, now);
            }
            return Err(E2eError::State(self.core.state));
        }
        self.core.receive_common(kind, bytes, now)
    }

    fn check_req(&mut self, bytes: &[u8], now: TimeStamp) -> Result<Output, Fail> {
        use HandshakeDiagnostic as H;
        let c = &mut self.core;
        let h = match c.decode_pdu(SecPduKind::HandshakeReq, bytes) {
            Ok(SecPdu::HandshakeReq(h)) => h,
            Ok(_) => {
                return Err(hfail(
                    req::PROTOCOL_ERR,
                    H::ProtocolError,
                    "not a HandshakeReq",
                ))
            }
            Err(e) => {
                return Err(hfail(req::PROTOCOL_ERR, H::ProtocolError, e));
            }
        };
        let t = &h.token1;
        // The client's "c" is known as soon as the token decodes (for the reject's assoID).
        if t.asso_id.is_pair() {
            return Err(hfail(
                req::PROTOCOL_ERR,
                H::ProtocolError,
                "assoID of HandshakeReq must be \"c\"",
            ));
        }
        c.asso = Some(t.asso_id.clone());
        let info = c.verify_signed(
            &t.sig_alg,
            &h.sign,
            &h.tbs,
            &t.pk_cert,
            t.cert_path.as_deref(),
            now,
            &SignedDefs::req(),
        )?;
        let cfg = c.ctx.config.clone();
        if !cfg.accepted_protocols.contains(&h.pp) {
            return Err(hfail(
                req::PROT_NOT_SUP,
                H::ProtectedProtocolNotSupported,
                "pp not supported",
            ));
        }
        if !t.version.has_v1() {
            return Err(hfail(req::UNEXP_VERSION, H::UnexpectedVersion, "version"));
        }
        if !c.in_window(t.time, now) {
            return Err(hfail(
                req::INV_TIME,
                H::InvalidTimeValue,
                "time outside window",
            ));
        }
        if !c.check_replay(
            &info,
            t.time,
            t.asso_id.as_str(),
            SecPduKind::HandshakeReq,
            now,
        ) {
            return Err(fail(req::REPLAY, None, "replayed HandshakeReq"));
        }
        // Step 11: first offered group we support (client preference order).
        let chosen = t
            .dh_key
            .iter()
            .find_map(|d| {
                group_from_number(d.group, cfg.accept_group19_alias)
                    .filter(|g| cfg.accept_groups.contains(g))
                    .map(|g| (g, d))
            })
            .ok_or_else(|| {
                hfail(
                    req::UNSUP_DH_GROUP,
                    H::DhGroupNotSupported,
                    "no offered DH group supported",
                )
            })?;
        // The server's ephemeral key and Z are computed now: the agreement validates the
        // client's value (§13.3.1.2) once, and `accept` only signs.
        let eph = EphemeralKey::generate(chosen.0, c.rng.as_mut())
            .map_err(|e| hfail(req::PROTOCOL_ERR, H::ProtocolError, e.to_string()))?;
        let z = eph.agree(&chosen.1.public_key).map_err(|_| {
            hfail(
                req::PROTOCOL_ERR,
                H::ProtocolError,
                "invalid client DH value",
            )
        })?;
        // Step 12.
        if !alg::is_hmac_sha256(&t.hmac) {
            return Err(hfail(
                req::HMAC_NOT_SUP,
                H::HmacAlgorithmNotSupported,
                "hmac not supported",
            ));
        }
        // Step 13.
        let mode = server_select(&cfg, t)?;
        // Step 14.
        if let Some(ac) = &t.att_cert {
            check_att_cert(c, ac, &info, now, req::ATTCERT)?;
        }
        c.peer_dh_public = chosen.1.public_key.clone();
        c.my_dh = Some(eph);
        c.pending_z = Some(z);
        c.suite = Some(Suite {
            group: chosen.0,
            mode,
        });
        let peer = info.identity.clone();
        c.peer = Some(info);
        let appl = h.appl_data.clone();
        c.req = Some(h);
        c.state = State::AwaitLocalAccept;
        Ok(Output::HandshakeRequested {
            appl_data: appl,
            peer,
        })
    }

    /// Accepts the association: builds the HandshakeAcc carrying `appl_data` (MMS
    /// Initiate-ResponsePDU) and derives the keys.
    pub fn accept(
        &mut self,
        appl_data: Option<&[u8]>,
        now: TimeStamp,
    ) -> Result<Vec<u8>, E2eError> {
        let c = &mut self.core;
        if c.state != State::AwaitLocalAccept {
            return Err(E2eError::State(c.state));
        }
        if let Some(a) = appl_data {
            check_prpdu(a, c.limits())?;
        }
        let (group, mode) = match &c.suite {
            Some(s) => (s.group, s.mode),
            None => return Err(E2eError::State(c.state)),
        };
        let (eph, z) = match (c.my_dh.take(), c.pending_z.take()) {
            (Some(e), Some(z)) if e.group() == group => (e, z),
            _ => return Err(E2eError::State(c.state)),
        };
        let client_part = c
            .asso
            .as_ref()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let asso = AssoId::pair(&client_part, c.local_num);
        let req_group = c
            .req
            .as_ref()
            .and_then(|r| {
                r.token1
                    .dh_key
                    .iter()
                    .find(|d| d.public_key == c.peer_dh_public)
                    .map(|d| d.group)
            })
            .unwrap_or(group_number(group));
        let mut conf = c.ctx.config.conf_params;
        conf.appl_protected |= mode.encrypted();
        let token1 = ClearToken1 {
            sig_alg: c.sig_alg_id(),
            pk_cert: c.ctx.credentials.cert_der.clone(),
            cert_path: c.ctx.credentials.cert_path.clone(),
            version: Version::v1(),
            asso_id: asso.clone(),
            dh_key: vec![DiffieHellman {
                group: req_group,
                public_key: eph.public_value().to_vec(),
            }],
            hmac: alg::hmac_alg_id(),
            time: now,
            encr_mode: selection_mode(mode),
            conf_params: conf,
            att_cert: c.ctx.credentials.att_cert.clone(),
        };
        let tbs = c.handshake_tbs(&token1, appl_data);
        let sign = c.sign(&tbs)?;
        let req_tbs = c.req.as_ref().map(|r| r.tbs.clone()).unwrap_or_default();
        c.salt = keys::initial_salt(&req_tbs, &tbs);
        c.keys = Some(keys::derive(mode, &c.salt, &z, c.rng.as_mut())?);
        // The HandshakeAcc names the protected protocol the request asked for (one of ours).
        let pp = match &c.req {
            Some(r) => r.pp.clone(),
            None => c.ctx.config.protected_protocol.clone(),
        };
        let h = Handshake {
            pp,
            token1,
            appl_data: appl_data.map(<[u8]>::to_vec),
            sign,
            tbs,
        };
        c.my_dh = Some(eph);
        c.asso = Some(asso);
        c.keys_since = now;
        c.state = State::Established;
        c.encode_pdu(&SecPdu::HandshakeAcc(h))
    }

    /// Rejects the association on behalf of the protected protocol: ApplicationReject carrying
    /// `appl_data` (MMS Initiate-ErrorPDU).
    pub fn appl_reject(&mut self, appl_data: &[u8], now: TimeStamp) -> Result<Vec<u8>, E2eError> {
        let c = &mut self.core;
        if c.state != State::AwaitLocalAccept {
            return Err(E2eError::State(c.state));
        }
        check_prpdu(appl_data, c.limits())?;
        let b = c.build_token3_pdu(
            SecPduKind::ApplicationReject,
            Token3Body::ApplData(Some(appl_data.to_vec())),
            now,
        )?;
        c.close();
        Ok(b)
    }
}
