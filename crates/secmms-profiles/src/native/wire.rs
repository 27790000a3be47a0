//! The OSI-environment module of IEC 62351-4 §15.4 (the reconstructed Annex B): how SecPDUs ride
//! in the ACSE user-information and in P-DATA. Codec only, no state.
//!
//! ```text
//! OSI-AssoReq / OSI-AssoRelReq / OSI-AssoRelRsp   EXTERNAL { pcid, [0] HandshakeReq | ReleaseReq | ReleaseRsp }
//! OSI-AssoRsp   EXTERNAL { pcid, [0] HandshakeRsp }   HandshakeRsp ::= CHOICE { [0] HandshakeAcc,
//!                                                        [1] ApplicationReject, [2] HandshakeSecReject }
//! OSI-AssoAbr   EXTERNAL { pcid, [0] AssoAbort }      AssoAbort ::= CHOICE { [0] HandshakeSecAbort,
//!                                                        [1] DtSecAbort, [2] ApplAbort, [3] OsiDiagnostics }
//! P-DATA        PDV { pcid, [0] ClearTransfer | EncrTransfer }
//! ```
//!
//! The module is `IMPLICIT TAGS`, so a CHOICE alternative carrying a SecPDU (a SEQUENCE) is the
//! SecPDU with its `30` identifier replaced by `A0`–`A2`; `osiDiag [3]` is a primitive `83`
//! ENUMERATED. Every tag involved has a one-octet identifier, so re-tagging changes only the first
//! octet: the signed `tbs` octets inside stay exactly as received (§13.4).

use secmms_ber::{BerError, Class, Limits, Reader, Tag};
use secmms_e2e::SecPduKind;
use secmms_osi::acse::{External, ExternalEncoding};

use super::events::{self, EnvEvent};

/// DECISION (§15.4): `HandshakeRsp.assoAccept [0]`.
pub const CHOICE_ASSO_ACCEPT: u8 = 0;
/// DECISION (§15.4): `HandshakeRsp.applReject [1]`.
pub const CHOICE_APPL_REJECT: u8 = 1;
/// DECISION (§15.4): `HandshakeRsp.secReject [2]`.
pub const CHOICE_SEC_REJECT: u8 = 2;
/// DECISION (§15.4): `AssoAbort.secAbort [0]`.
pub const CHOICE_SEC_ABORT: u8 = 0;
/// DECISION (§15.4): `AssoAbort.dtSecAbort [1]`.
pub const CHOICE_DT_SEC_ABORT: u8 = 1;
/// DECISION (§15.4): `AssoAbort.applAbort [2]`.
pub const CHOICE_APPL_ABORT: u8 = 2;
/// DECISION (§15.4): `AssoAbort.osiDiag [3]` (Table 4 lists OsiDiagnostics under ABRT).
pub const CHOICE_OSI_DIAG: u8 = 3;
/// DECISION (tolerance): an EXTERNAL that also carries a direct-reference (a transfer-syntax
/// name some stacks add) or a data-value-descriptor is accepted; §15.4 has neither, we never
/// send them.
pub const TOLERATE_EXTERNAL_EXTRAS: bool = true;

const SEQUENCE_OCTET: u8 = 0x30;
const CONTEXT_CONSTRUCTED: u8 = 0xA0;
const CONTEXT_PRIMITIVE: u8 = 0x80;

/// `OsiDiagnostics` (§15.4; names inferred from 62351-14 group 15, numbers a DECISION).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OsiDiagnostic {
    /// osi-env-protocol-error (0).
    OsiEnvProtocolError,
    /// invalid-indirect-reference (1).
    InvalidIndirectReference,
    /// invalid-pci (2).
    InvalidPci,
    /// acse-protocol-error (3).
    AcseProtocolError,
    /// invalid-application-context (4).
    InvalidApplicationContext,
    /// invalid-calling-AP-title (5).
    InvalidCallingApTitle,
    /// invalid-calling-AE-qualifier (6).
    InvalidCallingAeQualifier,
    /// invalid-called-AP-title (7).
    InvalidCalledApTitle,
    /// invalid-called-AE-qualifier (8).
    InvalidCalledAeQualifier,
    /// authentication-mechanism-not-allowed (9).
    AuthenticationMechanismNotAllowed,
}

impl OsiDiagnostic {
    /// Every value, in numeric order.
    pub const ALL: [OsiDiagnostic; 10] = [
        OsiDiagnostic::OsiEnvProtocolError,
        OsiDiagnostic::InvalidIndirectReference,
        OsiDiagnostic::InvalidPci,
        OsiDiagnostic::AcseProtocolError,
        OsiDiagnostic::InvalidApplicationContext,
        OsiDiagnostic::InvalidCallingApTitle,
        OsiDiagnostic::InvalidCallingAeQualifier,
        OsiDiagnostic::InvalidCalledApTitle,
        OsiDiagnostic::InvalidCalledAeQualifier,
        OsiDiagnostic::AuthenticationMechanismNotAllowed,
    ];

    /// The ENUMERATED number on the wire.
    pub fn code(self) -> i64 {
        Self::ALL.iter().position(|d| *d == self).unwrap_or(0) as i64
    }

    /// The value of a number, if known.
    pub fn from_code(n: i64) -> Option<OsiDiagnostic> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The ASN.1 name.
    pub fn name(self) -> &'static str {
        match self {
            OsiDiagnostic::OsiEnvProtocolError => "osi-env-protocol-error",
            OsiDiagnostic::InvalidIndirectReference => "invalid-indirect-reference",
            OsiDiagnostic::InvalidPci => "invalid-pci",
            OsiDiagnostic::AcseProtocolError => "acse-protocol-error",
            OsiDiagnostic::InvalidApplicationContext => "invalid-application-context",
            OsiDiagnostic::InvalidCallingApTitle => "invalid-calling-AP-title",
            OsiDiagnostic::InvalidCallingAeQualifier => "invalid-calling-AE-qualifier",
            OsiDiagnostic::InvalidCalledApTitle => "invalid-called-AP-title",
            OsiDiagnostic::InvalidCalledAeQualifier => "invalid-called-AE-qualifier",
            OsiDiagnostic::AuthenticationMechanismNotAllowed => {
                "authentication-mechanism-not-allowed"
            }
        }
    }
}

impl std::fmt::Display for OsiDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name(), self.code())
    }
}

/// The APDU whose user-information a value belongs to (it decides the module type of §15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvApdu {
    /// AARQ: OSI-AssoReq.
    Aarq,
    /// AARE: OSI-AssoRsp.
    Aare,
    /// ABRT: OSI-AssoAbr.
    Abrt,
    /// RLRQ: OSI-AssoRelReq.
    Rlrq,
    /// RLRE: OSI-AssoRelRsp.
    Rlre,
}

/// A decoded `single-ASN1-type` value of the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// A SecPDU. `pdu` is its encoding as the untagged SEQUENCE the E2E codec reads: a CHOICE
    /// alternative has its identifier octet replaced by `30`; length and content are as received.
    SecPdu {
        /// Which SecPDU (from the APDU and the CHOICE alternative).
        kind: SecPduKind,
        /// Its octets.
        pdu: Vec<u8>,
    },
    /// `AssoAbort.osiDiag`: the ENUMERATED number as received (see [`OsiDiagnostic::from_code`]).
    OsiDiag(i64),
}

/// Why an environment value was refused. Each maps to a §15.7 check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The user-information is not exactly one EXTERNAL (`SEQUENCE SIZE (1)`).
    #[error("user-information holds {0} EXTERNALs, not 1")]
    ExternalCount(usize),
    /// The indirect-reference is absent or not the e2eSecurityAS context.
    #[error("indirect-reference {got:?} is not the e2eSecurityAS context {want:?}")]
    IndirectReference {
        /// Received.
        got: Option<i64>,
        /// The e2eSecurityAS presentation context, if negotiated.
        want: Option<u32>,
    },
    /// The EXTERNAL has fields §15.4 does not define (only when not tolerated).
    #[error("EXTERNAL carries a direct-reference or data-value-descriptor")]
    ExternalExtras,
    /// The EXTERNAL encoding is not single-ASN1-type.
    #[error("EXTERNAL encoding is not single-ASN1-type")]
    Encoding,
    /// The value is not one BER element.
    #[error("value is not one BER element: {0}")]
    Ber(#[from] BerError),
    /// The element is not the type or CHOICE alternative this APDU carries.
    #[error("{tag} is not allowed in the {apdu:?} user-information")]
    UnexpectedTag {
        /// The APDU.
        apdu: EnvApdu,
        /// The tag found.
        tag: Tag,
    },
    /// An outgoing SecPDU does not fit the APDU (a local error).
    #[error("{kind:?} cannot be carried in an {apdu:?}")]
    NotCarried {
        /// The APDU.
        apdu: EnvApdu,
        /// The SecPDU kind.
        kind: SecPduKind,
    },
}

impl WireError {
    /// The §15.7 event of this failure.
    pub fn event(&self) -> EnvEvent {
        match self {
            WireError::IndirectReference { .. } => events::OSI_INV_INDR_REF,
            _ => events::OSI_ENV_PROT_ERR,
        }
    }

    /// The OsiDiagnostics value reported for this failure.
    pub fn osi_diagnostic(&self) -> OsiDiagnostic {
        match self {
            WireError::IndirectReference { .. } => OsiDiagnostic::InvalidIndirectReference,
            _ => OsiDiagnostic::OsiEnvProtocolError,
        }
    }
}

/// The CHOICE alternatives (context tag number → SecPDU kind) of an APDU; `None` for the APDUs
/// that carry a plain SecPDU SEQUENCE.
fn alternatives(apdu: EnvApdu) -> Option<&'static [(u8, SecPduKind)]> {
    const RSP: &[(u8, SecPduKind)] = &[
        (CHOICE_ASSO_ACCEPT, SecPduKind::HandshakeAcc),
        (CHOICE_APPL_REJECT, SecPduKind::ApplicationReject),
        (CHOICE_SEC_REJECT, SecPduKind::HandshakeSecReject),
    ];
    const ABR: &[(u8, SecPduKind)] = &[
        (CHOICE_SEC_ABORT, SecPduKind::HandshakeSecAbort),
        (CHOICE_DT_SEC_ABORT, SecPduKind::DtSecAbort),
        (CHOICE_APPL_ABORT, SecPduKind::ApplAbort),
    ];
    match apdu {
        EnvApdu::Aare => Some(RSP),
        EnvApdu::Abrt => Some(ABR),
        _ => None,
    }
}

/// The SecPDU an APDU without CHOICE carries.
fn plain_kind(apdu: EnvApdu) -> Option<SecPduKind> {
    match apdu {
        EnvApdu::Aarq => Some(SecPduKind::HandshakeReq),
        EnvApdu::Rlrq => Some(SecPduKind::ReleaseReq),
        EnvApdu::Rlre => Some(SecPduKind::ReleaseRsp),
        _ => None,
    }
}

/// The `single-ASN1-type` value of the one EXTERNAL of a user-information, checked against
/// §15.4: `SEQUENCE SIZE (1)`, indirect-reference = `pcid` (the e2eSecurityAS context),
/// single-ASN1-type encoding.
pub fn user_information_value(ui: &[External], pcid: Option<u32>) -> Result<&[u8], WireError> {
    let [e] = ui else {
        return Err(WireError::ExternalCount(ui.len()));
    };
    if e.indirect_reference.is_none()
        || e.indirect_reference != pcid.map(i64::from)
        || pcid.is_none()
    {
        return Err(WireError::IndirectReference {
            got: e.indirect_reference,
            want: pcid,
        });
    }
    if !TOLERATE_EXTERNAL_EXTRAS
        && (e.direct_reference.is_some() || e.data_value_descriptor.is_some())
    {
        return Err(WireError::ExternalExtras);
    }
    match &e.encoding {
        ExternalEncoding::SingleAsn1Type(v) => Ok(v),
        _ => Err(WireError::Encoding),
    }
}

/// Decodes the `single-ASN1-type` value of `apdu`'s EXTERNAL (structure only: the SecPDU itself
/// is decoded and verified by the E2E engine).
pub fn decode(apdu: EnvApdu, value: &[u8], limits: Limits) -> Result<EnvValue, WireError> {
    let mut r = Reader::new(value, limits);
    let t = r.read()?;
    r.finish()?;
    let tag = t.tag();
    let unexpected = || WireError::UnexpectedTag { apdu, tag };
    if let Some(kind) = plain_kind(apdu) {
        if tag != Tag::SEQUENCE {
            return Err(unexpected());
        }
        return Ok(EnvValue::SecPdu {
            kind,
            pdu: value.to_vec(),
        });
    }
    if tag.class != Class::Context {
        return Err(unexpected());
    }
    if apdu == EnvApdu::Abrt && tag == Tag::context(u32::from(CHOICE_OSI_DIAG), false) {
        return Ok(EnvValue::OsiDiag(t.as_i64()?));
    }
    let kind = alternatives(apdu)
        .and_then(|alts| {
            alts.iter()
                .find(|(n, _)| tag == Tag::context(u32::from(*n), true))
                .map(|(_, k)| *k)
        })
        .ok_or_else(unexpected)?;
    // One-octet identifier (context, constructed, number ≤ 2): replace it by SEQUENCE.
    let mut pdu = value.to_vec();
    match pdu.first_mut() {
        Some(first) if *first & 0x1F == tag.number as u8 => *first = SEQUENCE_OCTET,
        _ => return Err(unexpected()),
    }
    Ok(EnvValue::SecPdu { kind, pdu })
}

/// The `single-ASN1-type` value carrying an outgoing SecPDU (as the engine encoded it, an untagged
/// SEQUENCE) in `apdu`: unchanged for AARQ/RLRQ/RLRE, re-tagged as its CHOICE alternative in
/// AARE/ABRT.
pub fn encode(apdu: EnvApdu, kind: SecPduKind, mut pdu: Vec<u8>) -> Result<Vec<u8>, WireError> {
    let not_carried = WireError::NotCarried { apdu, kind };
    if pdu.first() != Some(&SEQUENCE_OCTET) {
        return Err(not_carried);
    }
    if plain_kind(apdu) == Some(kind) {
        return Ok(pdu);
    }
    let n = alternatives(apdu)
        .and_then(|alts| alts.iter().find(|(_, k)| *k == kind).map(|(n, _)| *n))
        .ok_or(not_carried)?;
    pdu[0] = CONTEXT_CONSTRUCTED | n;
    Ok(pdu)
}

/// The `single-ASN1-type` value `AssoAbort.osiDiag [3]` (implicit ENUMERATED, `83 01 nn`).
pub fn encode_osi_diag(d: OsiDiagnostic) -> Vec<u8> {
    let n = d.code();
    vec![CONTEXT_PRIMITIVE | CHOICE_OSI_DIAG, 1, n as u8]
}

/// The one EXTERNAL of an outgoing user-information (§15.4): indirect-reference = `pcid`,
/// single-ASN1-type = `value`.
pub fn external(pcid: u32, value: Vec<u8>) -> Vec<External> {
    vec![External::single(i64::from(pcid), value)]
}

/// Tells ClearTransfer from EncrTransfer in a P-DATA value. Both are untagged SEQUENCEs
/// (§15.4 OSI-ClearTransfer / OSI-EncrTransfer share one layout), so the kind is read from the
/// second element of `tbp`: DECISION — a UNIVERSAL OCTET STRING (`Encrypted-ApplData`) means
/// EncrTransfer, anything else ClearTransfer (an MMS PrPDU is always context-tagged). `None`
/// when the value is not even shaped like a transfer.
pub fn transfer_kind(value: &[u8], limits: Limits) -> Option<SecPduKind> {
    let mut r = Reader::new(value, limits);
    let outer = r.read().ok()?;
    if outer.tag() != Tag::SEQUENCE {
        return None;
    }
    let tbp = outer.children().ok()?.read().ok()?;
    if tbp.tag() != Tag::SEQUENCE {
        return None;
    }
    let mut c = tbp.children().ok()?;
    c.read().ok()?;
    let appl = c.peek_tag()?;
    Some(if appl == Tag::OCTET_STRING {
        SecPduKind::EncrTransfer
    } else {
        SecPduKind::ClearTransfer
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn choice_retagging_round_trips_and_keeps_content() {
        let pdu = vec![0x30, 0x03, 0x02, 0x01, 0x07];
        let cases = [
            (EnvApdu::Aare, SecPduKind::HandshakeAcc, 0xA0),
            (EnvApdu::Aare, SecPduKind::ApplicationReject, 0xA1),
            (EnvApdu::Aare, SecPduKind::HandshakeSecReject, 0xA2),
            (EnvApdu::Abrt, SecPduKind::HandshakeSecAbort, 0xA0),
            (EnvApdu::Abrt, SecPduKind::DtSecAbort, 0xA1),
            (EnvApdu::Abrt, SecPduKind::ApplAbort, 0xA2),
            (EnvApdu::Aarq, SecPduKind::HandshakeReq, 0x30),
            (EnvApdu::Rlrq, SecPduKind::ReleaseReq, 0x30),
            (EnvApdu::Rlre, SecPduKind::ReleaseRsp, 0x30),
        ];
        for (apdu, kind, first) in cases {
            let v = encode(apdu, kind, pdu.clone()).unwrap();
            assert_eq!(v[0], first, "{apdu:?} {kind:?}");
            assert_eq!(&v[1..], &pdu[1..]);
            assert_eq!(
                decode(apdu, &v, lim()).unwrap(),
                EnvValue::SecPdu {
                    kind,
                    pdu: pdu.clone()
                }
            );
        }
        assert!(encode(EnvApdu::Aarq, SecPduKind::HandshakeAcc, pdu.clone()).is_err());
        assert!(encode(EnvApdu::Aare, SecPduKind::DtSecAbort, pdu.clone()).is_err());
        assert!(encode(EnvApdu::Aare, SecPduKind::HandshakeAcc, vec![0xA0, 0]).is_err());
    }

    #[test]
    fn wrong_alternatives_are_refused() {
        // [3] constructed in an AARE, a SEQUENCE in an ABRT, [0] in an AARQ, trailing octets.
        for (apdu, v) in [
            (EnvApdu::Aare, vec![0xA3, 0x00]),
            (EnvApdu::Aare, vec![0x83, 0x01, 0x00]),
            (EnvApdu::Abrt, vec![0x30, 0x00]),
            (EnvApdu::Aarq, vec![0xA0, 0x00]),
            (EnvApdu::Rlre, vec![0x30, 0x00, 0x00]),
            (EnvApdu::Abrt, vec![0x5F, 0x21, 0x00]),
        ] {
            assert!(decode(apdu, &v, lim()).is_err(), "{apdu:?} {v:02x?}");
        }
    }

    #[test]
    fn osi_diag_codes() {
        for (i, d) in OsiDiagnostic::ALL.iter().enumerate() {
            assert_eq!(d.code(), i as i64);
            assert_eq!(OsiDiagnostic::from_code(i as i64), Some(*d));
            let v = encode_osi_diag(*d);
            assert_eq!(v, vec![0x83, 0x01, i as u8]);
            assert_eq!(
                decode(EnvApdu::Abrt, &v, lim()).unwrap(),
                EnvValue::OsiDiag(i as i64)
            );
        }
        assert_eq!(OsiDiagnostic::from_code(10), None);
        assert_eq!(OsiDiagnostic::from_code(-1), None);
    }

    #[test]
    fn external_checks() {
        let ok = external(5, vec![0x30, 0x00]);
        assert_eq!(user_information_value(&ok, Some(5)).unwrap(), &[0x30, 0x00]);
        assert_eq!(
            user_information_value(&ok, Some(7)),
            Err(WireError::IndirectReference {
                got: Some(5),
                want: Some(7)
            })
        );
        assert!(matches!(
            user_information_value(&ok, None),
            Err(WireError::IndirectReference { .. })
        ));
        let two = [ok[0].clone(), ok[0].clone()];
        assert_eq!(
            user_information_value(&two, Some(5)),
            Err(WireError::ExternalCount(2))
        );
        assert_eq!(
            user_information_value(&[], Some(5)),
            Err(WireError::ExternalCount(0))
        );
        let mut oa = ok[0].clone();
        oa.encoding = ExternalEncoding::OctetAligned(vec![0x30, 0x00]);
        assert_eq!(
            user_information_value(&[oa], Some(5)),
            Err(WireError::Encoding)
        );
        let mut noref = ok[0].clone();
        noref.indirect_reference = None;
        assert_eq!(
            user_information_value(&[noref], Some(5))
                .unwrap_err()
                .event(),
            events::OSI_INV_INDR_REF
        );
    }

    #[test]
    fn transfer_kind_sniffing() {
        // SEQUENCE { tbp SEQUENCE { token2 SEQUENCE {}, applData }, auth }
        let clear = [0x30, 0x08, 0x30, 0x04, 0x30, 0x00, 0xA0, 0x00, 0x30, 0x00];
        let encr = [0x30, 0x06, 0x30, 0x04, 0x30, 0x00, 0x04, 0x00];
        assert_eq!(
            transfer_kind(&clear, lim()),
            Some(SecPduKind::ClearTransfer)
        );
        assert_eq!(transfer_kind(&encr, lim()), Some(SecPduKind::EncrTransfer));
        assert_eq!(transfer_kind(&[0x04, 0x00], lim()), None);
        assert_eq!(transfer_kind(&[0x30, 0x02, 0x30, 0x00], lim()), None);
    }
}
