//! The E2E security-event catalogue (§14.5, IEC 62351-14 domain `IEC62351-4`) as used by the
//! engine. Each check of clause 14 names one entry here.

use secmms_pki::event::{EventId, SecurityEvent, Severity};

/// One catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventDef {
    /// Group (PDU) number.
    pub group: u16,
    /// Number in the group.
    pub number: u16,
    /// Mnemonic.
    pub mnemonic: &'static str,
    /// Severity class (alarms withhold the diagnostic, §13.1.5).
    pub severity: Severity,
}

impl EventDef {
    /// The catalogue id.
    pub fn id(&self) -> EventId {
        if self.group == 0 {
            EventId {
                domain: EventId::DOMAIN_LOCAL,
                group: 0,
                number: self.number,
            }
        } else {
            EventId::e2e(self.group, self.number)
        }
    }
    /// True for the alarm class.
    pub fn is_alarm(&self) -> bool {
        self.severity == Severity::Alarm
    }
    /// Builds an event.
    pub fn event(&self, message: impl Into<String>, asso: Option<&str>) -> SecurityEvent {
        SecurityEvent {
            id: self.id(),
            mnemonic: self.mnemonic,
            severity: self.severity,
            message: message.into(),
            association: asso.map(str::to_string),
        }
    }
}

const fn d(group: u16, number: u16, mnemonic: &'static str, severity: Severity) -> EventDef {
    EventDef {
        group,
        number,
        mnemonic,
        severity,
    }
}
use Severity::{Alarm as A, Error as E};

/// Group 1 — HandshakeReq checked by the server (§14.3).
pub mod req {
    use super::*;
    /// 1.1
    pub const SIG_ALG_NOT_SUP: EventDef = d(1, 1, "SIGNATURE_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.2
    pub const SIG_ALG_MISMATCH: EventDef = d(1, 2, "SIGNATURE_ALGO_MISMATCH_REQ", A);
    /// 1.3
    pub const INV_SIGNATURE: EventDef = d(1, 3, "INV_SIGNATURE_ASS_REQ", A);
    /// 1.4
    pub const PROT_NOT_SUP: EventDef = d(1, 4, "PROTECTED_PROT_NOT_SUP_REQ", E);
    /// 1.5
    pub const PROTOCOL_ERR: EventDef = d(1, 5, "PROTOCOL_ERR_ASS_REQ", E);
    /// 1.6
    pub const PKCERT_ERROR: EventDef = d(1, 6, "PKCERT_ERROR_ASS_REQ", E);
    /// 1.7
    pub const PKCERT_ALARM: EventDef = d(1, 7, "PKCERT_ALARM_ASS_REQ", A);
    /// 1.8
    pub const ADDR_MISMATCH: EventDef = d(1, 8, "ADDR_MISMATCH_ASS_REQ", A);
    /// 1.9
    pub const UNEXP_VERSION: EventDef = d(1, 9, "UNEXP_VERSION_ASS_REQ", E);
    /// 1.10
    pub const INV_TIME: EventDef = d(1, 10, "INV_TIME_ASS_REQ", E);
    /// 1.11
    pub const REPLAY: EventDef = d(1, 11, "REPLAY_DETEC_ASS_REQ", A);
    /// 1.12
    pub const UNSUP_DH_GROUP: EventDef = d(1, 12, "UNSUP_DH_GROUP_ASS_REQ", E);
    /// 1.13
    pub const HMAC_NOT_SUP: EventDef = d(1, 13, "HMAC_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.14 — AE mode not supported (`encr-mode-aea-not-supported`).
    pub const AEAD_NOT_SUP: EventDef = d(1, 14, "AEAD_NOT_SUP_ASS_REQ", E);
    /// 1.15 — AE requested but encryption not supported (`aea-select-but-encryp-not-supp`).
    pub const AEAD_NO_ENCR: EventDef = d(1, 15, "AEAD_NO_ENCR_ASS_REQ", E);
    /// 1.16 — no offered AE algorithm supported.
    pub const AE_ALG_NOT_SUP: EventDef = d(1, 16, "AE_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.17 — AE required.
    pub const AE_REQUIRED: EventDef = d(1, 17, "AE_REQUIRED_ASS_REQ", E);
    /// 1.18 — encryption not requested although policy requires it (`encryption-required`).
    pub const ENCR_NOT_REQ: EventDef = d(1, 18, "ENCR_NOT_REQUESTED_ASS_REQ", E);
    /// 1.19 — no offered encryption algorithm supported.
    pub const ENCR_ALG_NOT_SUP: EventDef = d(1, 19, "ENCR_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.20 — no offered ICV algorithm supported.
    pub const ICV_ALG_NOT_SUP: EventDef = d(1, 20, "ICV_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.21 — encryption requested but not allowed (`encryption-not-required`).
    pub const ENCR_NOT_REQUIRED: EventDef = d(1, 21, "ENCR_NOT_REQUIRED_ASS_REQ", E);
    /// 1.6 is also used for an invalid attribute certificate (no own entry captured).
    pub const ATTCERT: EventDef = PKCERT_ERROR;
}

/// Group 2 — HandshakeAcc checked by the client (§14.3).
pub mod acc {
    use super::*;
    /// 2.1
    pub const SIG_ALG_NOT_SUP: EventDef = d(2, 1, "SIGNATURE_ALGO_NOT_SUP_ASS_ACC", E);
    /// 2.2
    pub const SIG_ALG_MISMATCH: EventDef = d(2, 2, "SIGNATURE_ALGO_MISMATCH_ACC", A);
    /// 2.3
    pub const INV_SIGNATURE: EventDef = d(2, 3, "INV_SIGNATURE_ASS_ACC", A);
    /// 2.4
    pub const PROTOCOL_ERR: EventDef = d(2, 4, "PROTOCOL_ERR_ASS_ACC", E);
    /// 2.5
    pub const PKCERT_ERROR: EventDef = d(2, 5, "PKCERT_ERROR_ASS_ACC", E);
    /// 2.6
    pub const PKCERT_ALARM: EventDef = d(2, 6, "PKCERT_ALARM_ASS_ACC", A);
    /// 2.7
    pub const ADDR_MISMATCH: EventDef = d(2, 7, "ADDR_MISMATCH_ASS_ACC", A);
    /// 2.8
    pub const UNEXP_VERSION: EventDef = d(2, 8, "UNEXP_VERSION_ASS_ACC", E);
    /// 2.9
    pub const INV_TIME: EventDef = d(2, 9, "INV_TIME_ASS_ACC", E);
    /// 2.10
    pub const REPLAY: EventDef = d(2, 10, "REPLAY_DETEC_ASS_ACC", A);
    /// 2.11
    pub const INV_DH_GROUP: EventDef = d(2, 11, "INV_DH_GROUP_ASS_ACC", E);
    /// 2.12
    pub const HMAC_NOT_SUP: EventDef = d(2, 12, "HMAC_ALGO_NOT_SUP_ASS_ACC", E);
    /// 2.13
    pub const INV_AE_ALG: EventDef = d(2, 13, "INV_AE_ALGO_ASS_ACC", E);
    /// 2.14
    pub const SINGLE_AE_ALG: EventDef = d(2, 14, "SINGLE_AE_ALGO_REQ_ASS_ACC", E);
    /// 2.15
    pub const AE_NOT_USED: EventDef = d(2, 15, "AEAD_NOT_USED_ASS_ACC", E);
    /// 2.16
    pub const INV_ENCR_ALG: EventDef = d(2, 16, "INV_ENCR_ALGO_ASS_ACC", E);
    /// 2.17
    pub const SINGLE_ENCR_ALG: EventDef = d(2, 17, "SINGLE_ENCR_ALGO_ASS_ACC", E);
    /// 2.18
    pub const INV_ICV_ALG: EventDef = d(2, 18, "INV_ICV_ALGO_ASS_ACC", E);
    /// 2.19
    pub const SINGLE_ICV_ALG: EventDef = d(2, 19, "SINGLE_ICV_ALGO_ASS_ACC", E);
    /// 2.20
    pub const ENCR_NOT_REQUIRED: EventDef = d(2, 20, "ENCR_NOT_REQUIRED_ASS_ACC", E);
    /// 2.21
    pub const ENCR_REQUIRED: EventDef = d(2, 21, "ENCR_REQUIRED_ASS_ACC", E);
    /// Attribute certificate problems reuse 2.5.
    pub const ATTCERT: EventDef = PKCERT_ERROR;
}

/// The ten generic checks of a received signed ClearToken3 PDU (groups 3–7, 12, 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generic {
    /// x.1 signature algorithm not supported.
    SigAlgNotSup,
    /// x.2 sigAlg ≠ Signature.algo (alarm).
    SigAlgMismatch,
    /// x.3 invalid signature (alarm).
    InvSignature,
    /// x.4 protocol error.
    ProtocolErr,
    /// x.5 certificate error.
    PkCertError,
    /// x.6 certificate alarm.
    PkCertAlarm,
    /// x.7 address mismatch (alarm).
    AddrMismatch,
    /// x.8 unexpected version.
    UnexpVersion,
    /// x.9 invalid time.
    InvTime,
    /// x.10 replay (alarm).
    Replay,
}

/// The catalogue entry of a generic check for a group (3–7, 12, 13). The suffixed mnemonics
/// of these groups were not captured; the base names are used.
pub fn generic(group: u16, g: Generic) -> EventDef {
    let (n, m, s) = match g {
        Generic::SigAlgNotSup => (1, "SIGNATURE_ALGO_NOT_SUP", E),
        Generic::SigAlgMismatch => (2, "SIGNATURE_ALGO_MISMATCH", A),
        Generic::InvSignature => (3, "INV_SIGNATURE", A),
        Generic::ProtocolErr => (4, "PROTOCOL_ERR", E),
        Generic::PkCertError => (5, "PKCERT_ERROR", E),
        Generic::PkCertAlarm => (6, "PKCERT_ALARM", A),
        Generic::AddrMismatch => (7, "ADDR_MISMATCH", A),
        Generic::UnexpVersion => (8, "UNEXP_VERSION", E),
        Generic::InvTime => (9, "INV_TIME", E),
        Generic::Replay => (10, "REPLAY_DETEC", A),
    };
    d(group, n, m, s)
}

/// Group 6.11 — a DtSecAbort without diagnostic was received (the peer raised an alarm).
pub const DT_ABORT_ALARM_RCVD: EventDef = d(6, 11, "DT_SEC_ABORT_ALARM_RCVD", A);
/// A DtSecAbort with a diagnostic that has no captured catalogue entry (e.g. invalid sequence
/// number) was received: a secmms-local event (`secmms:0.1`), so the receiver still records why
/// the peer aborted.
pub const DT_ABORT_OTHER_RCVD: EventDef = d(0, 1, "DT_SEC_ABORT_RCVD", E);

/// Groups 6.12–6.16 — a DtSecAbort with one of the listed diagnostics was received (§14.5);
/// [`DT_ABORT_OTHER_RCVD`] for the others.
pub fn dt_abort_received(diag: crate::diag::DtDiagnostic) -> Option<EventDef> {
    use crate::diag::DtDiagnostic as D;
    let (n, m) = match diag {
        D::ProtocolError => (12, "DT_SEC_ABORT_PROT_ERR_RCVD"),
        D::EncryptionNotSelected => (13, "DT_SEC_ABORT_ENCR_NOT_SEL_RCVD"),
        D::EncryptionRequired => (14, "DT_SEC_ABORT_ENCR_REQ_RCVD"),
        D::UnexpectedDhPublicKey => (15, "DT_SEC_ABORT_UNEXP_REKEY_RCVD"),
        D::UnexpectedChangedKeys => (16, "DT_SEC_ABORT_UNEXP_CHANGED_KEYS_RCVD"),
        _ => return Some(DT_ABORT_OTHER_RCVD),
    };
    Some(d(6, n, m, E))
}

/// Group 4.11 — a HandshakeSecReject without diagnostic was received.
pub const SEC_REJECT_ALARM_RCVD: EventDef = d(4, 11, "HANDSHAKE_SEC_REJECT_ALARM_RCVD", A);
/// Group 5.11 — a HandshakeSecAbort without diagnostic was received.
pub const SEC_ABORT_ALARM_RCVD: EventDef = d(5, 11, "HANDSHAKE_SEC_ABORT_ALARM_RCVD", A);

/// Groups 10 (ClearTransfer) and 11 (EncrTransfer) — §14.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtCheck {
    /// x.1 protocol error.
    ProtocolErr,
    /// 10.2 encryption was selected / 11.2 encryption not selected.
    WrongKind,
    /// x.3 invalid ICV algorithm (alarm).
    IcvAlg,
    /// x.4 GMAC nonce (10.4) / GCM nonce (11.4) required.
    Nonce,
    /// x.5 bad ICV (alarm).
    BadIcv,
    /// x.6 invalid time.
    InvTime,
    /// x.7 replay (alarm).
    Replay,
    /// x.8 invalid sequence number.
    Seq,
    /// 11.9 AES IV required.
    AesIv,
    /// unexpected DH public key.
    UnexpDh,
    /// unexpected changed keys.
    UnexpChanged,
}

/// The catalogue entry of a data-transfer check.
pub fn dt(encrypted: bool, c: DtCheck) -> EventDef {
    let g = if encrypted { 11 } else { 10 };
    let (n, m, s) = match (encrypted, c) {
        (false, DtCheck::ProtocolErr) => (1, "CLEAR_DATA_PROT_ERROR_TRF", E),
        (true, DtCheck::ProtocolErr) => (1, "ENCR_DATA_PROT_ERROR_TRF", E),
        (false, DtCheck::WrongKind) => (2, "ENCR_WAS_SEL_TRF", E),
        (true, DtCheck::WrongKind) => (2, "ENCR_NOT_SEL_TRF", E),
        (false, DtCheck::IcvAlg) => (3, "CLEAR_INV_ICV_ALGO_TRF", A),
        (true, DtCheck::IcvAlg) => (3, "ENCR_INV_ICV_ALGO_TRF", A),
        (false, DtCheck::Nonce) => (4, "CLEAR_GMAC_NONCE_REQ_TRF", E),
        (true, DtCheck::Nonce) => (4, "ENCR_GMAC_NONCE_REQ_TRF", E),
        (false, DtCheck::BadIcv) => (5, "CLEAR_BAD_ICV_TRF", A),
        (true, DtCheck::BadIcv) => (5, "ENCR_BAD_ICV_TRF", A),
        (false, DtCheck::InvTime) => (6, "CLEAR_INV_TIME_TRF", E),
        (true, DtCheck::InvTime) => (6, "ENCR_INV_TIME_TRF", E),
        (false, DtCheck::Replay) => (7, "CLEAR_REPLAY_TRF", A),
        (true, DtCheck::Replay) => (7, "ENCR_REPLAY_TRF", A),
        (false, DtCheck::Seq) => (8, "CLEAR_INV_SEQ_TRF", E),
        (true, DtCheck::Seq) => (8, "ENCR_INV_SEQ_TRF", E),
        (_, DtCheck::AesIv) => (9, "AES_IV_REQ_TRF", E),
        (false, DtCheck::UnexpDh) => (9, "CLEAR_UNEXP_DH_KEY_TRF", E),
        (true, DtCheck::UnexpDh) => (10, "ENCR_UNEXP_DH_KEY_TRF", E),
        (false, DtCheck::UnexpChanged) => (10, "CLEAR_UNEXP_CHANGED_KEY_TRF", E),
        (true, DtCheck::UnexpChanged) => (11, "ENCR_UNEXP_CHANGED_KEY_TRF", E),
    };
    // An AES IV belongs to EncrTransfer only (11.9); 10.9 is the clear unexpected-DH entry.
    let g = if c == DtCheck::AesIv { 11 } else { g };
    d(g, n, m, s)
}

/// Local event (no catalogue entry): the client's rekey timed out (`secmms:0.2`).
pub const REKEY_TIMEOUT: EventDef = d(0, 2, "E2E_REKEY_TIMEOUT", E);

/// Local event `secmms:0.3`: a HandshakeSecReject arrived with a diagnostic that has no slot in
/// 4.12–4.27 (see [`handshake_diag_received`]); the message names the diagnostic.
pub const SEC_REJECT_OTHER_RCVD: EventDef = d(0, 3, "HANDSHAKE_SEC_REJECT_RCVD", E);
/// Local event `secmms:0.4`: a HandshakeSecAbort arrived with a diagnostic that has no slot in
/// 5.12–5.25.
pub const SEC_ABORT_OTHER_RCVD: EventDef = d(0, 4, "HANDSHAKE_SEC_ABORT_RCVD", E);
/// Local event `secmms:0.6`: the peer's certificate was found revoked while the association
/// was established (a CRL reloaded, §6.2.8 incident class); the association ends with a
/// DtSecAbort.
pub const PEER_CERT_REVOKED: EventDef = d(0, 6, "E2E_PEER_CERT_REVOKED", Severity::Incident);
/// Local event `secmms:0.7`: no usable OCSP answer for the peer's application certificate
/// (§6.2.8; responder down, `unknown`, or a certificate OpenSSL cannot load). Under
/// `ocsp_check = soft-fail` the association goes on; under `hard-fail` it is refused. Raised by
/// the runtime, which makes the OCSP lookup.
pub const PEER_OCSP_UNAVAILABLE: EventDef = d(0, 7, "E2E_PEER_OCSP_UNAVAILABLE", Severity::Warning);
/// Local event `secmms:0.8`: the traffic keys of an association (one key generation) were handed
/// to the E2E key log the operator asked for ([`crate::keylog`]); anyone who reads that file can
/// check and decrypt the association. Warning, raised at every key derivation while the key
/// log is on.
pub const KEYLOG_ACTIVE: EventDef = d(0, 8, "E2E_KEYLOG_ACTIVE", Severity::Warning);
/// Local event `secmms:0.5`: a received diagnostic number names no value of §14.2 (it is
/// handled as `no-reason-given`; the message carries the raw number).
pub const UNKNOWN_DIAG_RCVD: EventDef = d(0, 5, "UNKNOWN_DIAGNOSTIC_RCVD", E);

/// Mnemonics of 4.12–4.27, for the HandshakeDiagnostics codes 1–16 in order.
const SEC_REJECT_DIAG_RCVD: [&str; 16] = [
    "SEC_REJECT_PROT_ERR_RCVD",
    "SEC_REJECT_PROT_NOT_SUP_RCVD",
    "SEC_REJECT_INV_SIG_ALGO_RCVD",
    "SEC_REJECT_UNEXP_VERSION_RCVD",
    "SEC_REJECT_HMAC_NOT_SUP_RCVD",
    "SEC_REJECT_ENCR_NOT_REQUIRED_RCVD",
    "SEC_REJECT_ENCR_REQUIRED_RCVD",
    "SEC_REJECT_INV_PKCERT_RCVD",
    "SEC_REJECT_INV_CERT_PATH_RCVD",
    "SEC_REJECT_INV_TIME_RCVD",
    "SEC_REJECT_DH_GROUP_NOT_SUP_RCVD",
    "SEC_REJECT_ILLEGAL_DH_GROUP_RCVD",
    "SEC_REJECT_ICV_ALGO_NOT_SUP_RCVD",
    "SEC_REJECT_ENCR_ALGO_NOT_SUP_RCVD",
    "SEC_REJECT_AEA_ALGO_NOT_SUP_RCVD",
    "SEC_REJECT_INV_ATTCERT_RCVD",
];

/// HandshakeDiagnostics codes of 5.12–5.25, in order, with their mnemonics: codes 1–16 without
/// the two a client never sends (2 protected-protocol-not-supported, 11 dhGroup-not-supported).
const SEC_ABORT_DIAG_RCVD: [(i64, &str); 14] = [
    (1, "SEC_ABORT_PROT_ERR_RCVD"),
    (3, "SEC_ABORT_INV_SIG_ALGO_RCVD"),
    (4, "SEC_ABORT_UNEXP_VERSION_RCVD"),
    (5, "SEC_ABORT_HMAC_NOT_SUP_RCVD"),
    (6, "SEC_ABORT_ENCR_NOT_REQUIRED_RCVD"),
    (7, "SEC_ABORT_ENCR_REQUIRED_RCVD"),
    (8, "SEC_ABORT_INV_PKCERT_RCVD"),
    (9, "SEC_ABORT_INV_CERT_PATH_RCVD"),
    (10, "SEC_ABORT_INV_TIME_RCVD"),
    (12, "SEC_ABORT_ILLEGAL_DH_GROUP_RCVD"),
    (13, "SEC_ABORT_ICV_ALGO_NOT_SUP_RCVD"),
    (14, "SEC_ABORT_ENCR_ALGO_NOT_SUP_RCVD"),
    (15, "SEC_ABORT_AEA_ALGO_NOT_SUP_RCVD"),
    (16, "SEC_ABORT_INV_ATTCERT_RCVD"),
];

/// The event for a received HandshakeSecReject (`reject`) or HandshakeSecAbort carrying a
/// diagnostic (§14.5 groups 4.12–4.27 and 5.12–5.25, "one event per received diagnostic").
///
/// DECISION: the captured catalogue gives the ranges but not which diagnostic has which number.
/// 4.12–4.27 are 16 entries, exactly the HandshakeDiagnostics codes 1–16 of the original text
/// (before AMD1 added 17–25), so 4.(11+code). 5.12–5.25 are 14: the same codes without the two
/// only a server sends (2 and 11). Diagnostics outside those slots (0 and the AMD1 values) raise
/// [`SEC_REJECT_OTHER_RCVD`] / [`SEC_ABORT_OTHER_RCVD`], named in the message.
pub fn handshake_diag_received(reject: bool, diag: crate::diag::HandshakeDiagnostic) -> EventDef {
    let code = diag.code();
    if reject {
        match (1..=16).contains(&code) {
            true => d(
                4,
                11 + code as u16,
                SEC_REJECT_DIAG_RCVD[code as usize - 1],
                E,
            ),
            false => SEC_REJECT_OTHER_RCVD,
        }
    } else {
        match SEC_ABORT_DIAG_RCVD.iter().position(|(c, _)| *c == code) {
            Some(i) => d(5, 12 + i as u16, SEC_ABORT_DIAG_RCVD[i].1, E),
            None => SEC_ABORT_OTHER_RCVD,
        }
    }
}

/// Every event this catalogue can produce (for documentation and the id-uniqueness test).
pub fn all() -> Vec<EventDef> {
    use crate::diag::{DtDiagnostic, HandshakeDiagnostic};
    let mut v = vec![
        req::SIG_ALG_NOT_SUP,
        req::SIG_ALG_MISMATCH,
        req::INV_SIGNATURE,
        req::PROT_NOT_SUP,
        req::PROTOCOL_ERR,
        req::PKCERT_ERROR,
        req::PKCERT_ALARM,
        req::ADDR_MISMATCH,
        req::UNEXP_VERSION,
        req::INV_TIME,
        req::REPLAY,
        req::UNSUP_DH_GROUP,
        req::HMAC_NOT_SUP,
        req::AEAD_NOT_SUP,
        req::AEAD_NO_ENCR,
        req::AE_ALG_NOT_SUP,
        req::AE_REQUIRED,
        req::ENCR_NOT_REQ,
        req::ENCR_ALG_NOT_SUP,
        req::ICV_ALG_NOT_SUP,
        req::ENCR_NOT_REQUIRED,
        acc::SIG_ALG_NOT_SUP,
        acc::SIG_ALG_MISMATCH,
        acc::INV_SIGNATURE,
        acc::PROTOCOL_ERR,
        acc::PKCERT_ERROR,
        acc::PKCERT_ALARM,
        acc::ADDR_MISMATCH,
        acc::UNEXP_VERSION,
        acc::INV_TIME,
        acc::REPLAY,
        acc::INV_DH_GROUP,
        acc::HMAC_NOT_SUP,
        acc::INV_AE_ALG,
        acc::SINGLE_AE_ALG,
        acc::AE_NOT_USED,
        acc::INV_ENCR_ALG,
        acc::SINGLE_ENCR_ALG,
        acc::INV_ICV_ALG,
        acc::SINGLE_ICV_ALG,
        acc::ENCR_NOT_REQUIRED,
        acc::ENCR_REQUIRED,
        DT_ABORT_ALARM_RCVD,
        DT_ABORT_OTHER_RCVD,
        SEC_REJECT_ALARM_RCVD,
        SEC_ABORT_ALARM_RCVD,
        REKEY_TIMEOUT,
        SEC_REJECT_OTHER_RCVD,
        SEC_ABORT_OTHER_RCVD,
        UNKNOWN_DIAG_RCVD,
        PEER_CERT_REVOKED,
        PEER_OCSP_UNAVAILABLE,
        KEYLOG_ACTIVE,
    ];
    let generics = [
        Generic::SigAlgNotSup,
        Generic::SigAlgMismatch,
        Generic::InvSignature,
        Generic::ProtocolErr,
        Generic::PkCertError,
        Generic::PkCertAlarm,
        Generic::AddrMismatch,
        Generic::UnexpVersion,
        Generic::InvTime,
        Generic::Replay,
    ];
    for group in [3, 4, 5, 6, 7, 12, 13] {
        v.extend(generics.iter().map(|g| generic(group, *g)));
    }
    for diag in DtDiagnostic::ALL {
        v.extend(dt_abort_received(*diag));
    }
    for diag in HandshakeDiagnostic::ALL {
        v.push(handshake_diag_received(true, *diag));
        v.push(handshake_diag_received(false, *diag));
    }
    let checks = [
        DtCheck::ProtocolErr,
        DtCheck::WrongKind,
        DtCheck::IcvAlg,
        DtCheck::Nonce,
        DtCheck::BadIcv,
        DtCheck::InvTime,
        DtCheck::Replay,
        DtCheck::Seq,
        DtCheck::AesIv,
        DtCheck::UnexpDh,
        DtCheck::UnexpChanged,
    ];
    for encrypted in [false, true] {
        v.extend(checks.iter().map(|c| dt(encrypted, *c)));
    }
    let mut seen = std::collections::HashSet::new();
    v.retain(|e| seen.insert(*e));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::HandshakeDiagnostic as H;

    #[test]
    fn one_mnemonic_per_id() {
        let mut by_id = std::collections::HashMap::new();
        for e in all() {
            if let Some(m) = by_id.insert(e.id(), e.mnemonic) {
                assert_eq!(m, e.mnemonic, "{} names two events", e.id());
            }
        }
        // The received-diagnostic slots fill 4.12–4.27 and 5.12–5.25 exactly.
        for n in 12..=27 {
            assert!(by_id.contains_key(&EventId::e2e(4, n)), "4.{n}");
        }
        for n in 12..=25 {
            assert!(by_id.contains_key(&EventId::e2e(5, n)), "5.{n}");
        }
        assert!(!by_id.contains_key(&EventId::e2e(5, 26)));
        assert_eq!(
            handshake_diag_received(true, H::EncryptionRequired).id(),
            EventId::e2e(4, 18)
        );
        assert_eq!(
            handshake_diag_received(false, H::EncryptionRequired).id(),
            EventId::e2e(5, 17)
        );
        assert_eq!(
            handshake_diag_received(true, H::AeIsRequired),
            SEC_REJECT_OTHER_RCVD
        );
    }
}
