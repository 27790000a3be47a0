//! IEC 62351-4 security content seen in a capture: the A-profile MMS-Authentication-value
//! (§11.2–11.4) and the E2E SecPDUs of clause 15 (structure; handshake signatures).
//!
//! What a capture lets a decoder check, and what it does here:
//! * A-profile: the value decodes; the certificate parses, is within 8 192 octets and valid at
//!   the frame's time; the `time` is a GeneralizedTime within [`AUTH_TIME_WINDOW`] of the
//!   frame's time; the signature verifies with the certificate's key over one of the signed
//!   forms the live stack accepts. With trust anchors (`--ca`) the certificate is also
//!   validated: path, validity, Annex G; without them the verdict says the chain was not checked.
//! * E2E handshake (HandshakeReq / HandshakeAcc): the signature over the received `tbs` with
//!   the key of `pkCert` in ClearToken1. Transfers: their ICVs need the
//!   session keys, which a capture does not hold; with an E2E key log [`crate::e2e`] checks
//!   them.

use secmms_e2e::{SecPdu, SecPduKind};
use secmms_osi::acse::AuthenticationValue;
use secmms_pki::crypto::{algorithm_for, verify_signature};
use secmms_pki::CertValidator;
use secmms_profiles::aprofile::extract_value;
use secmms_profiles::value::{parse_time, MmsAuthenticationValue};

use crate::limits::AUTH_TIME_WINDOW;

/// Trust anchors (`--ca`): a certificate validator shared by every stream.
#[derive(Clone)]
pub struct TrustAnchors(pub std::sync::Arc<dyn CertValidator>);

impl std::fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrustAnchors")
    }
}

/// Largest certificate in an authentication value (IEC 62351-4 Annex G: 8 192 octets).
pub const MAX_CERTIFICATE_LEN: usize = 8192;

/// Why an A-profile value or an E2E signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The authentication value does not decode.
    #[error("authentication value malformed: {0}")]
    Malformed(String),
    /// The certificate does not parse or is too long.
    #[error("certificate invalid: {0}")]
    Certificate(String),
    /// The certificate is not valid at the frame's time.
    #[error("certificate not valid at the capture time (valid {not_before}..{not_after})")]
    CertificateTime {
        /// notBefore, Unix seconds.
        not_before: i64,
        /// notAfter, Unix seconds.
        not_after: i64,
    },
    /// The `time` is not a GeneralizedTime.
    #[error("time is not a GeneralizedTime")]
    TimeInvalid,
    /// The `time` is too far from the capture time.
    #[error("time {time} is {diff} s from the capture time (window {AUTH_TIME_WINDOW} s)")]
    TimeStale {
        /// The value's time, Unix seconds.
        time: i64,
        /// Absolute difference in seconds.
        diff: u64,
    },
    /// The signature does not verify.
    #[error("signature invalid")]
    BadSignature,
    /// The certificate does not validate against the trust anchors (`--ca`): path, validity,
    /// revocation or an Annex G rule.
    #[error("certificate not trusted: {0}")]
    Untrusted(String),
}

/// What a verified A-profile value showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthVerdict {
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
    /// The value's time as sent.
    pub time: String,
}

/// Verifies an ACSE authentication value as an A-profile MMS-Authentication-value, at
/// `now` (Unix seconds, the frame's time; `None` skips the time checks).
///
/// With `anchors` the certificate is also validated by them (path, validity, revocation lists
/// loaded into the validator, Annex G rules), at `now` or, without a time, at its own
/// notBefore.
pub fn verify_aprofile(
    av: Option<&AuthenticationValue>,
    now: Option<i64>,
    anchors: Option<&dyn CertValidator>,
) -> Result<AuthVerdict, VerifyError> {
    let (v, _) = extract_value(av).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    verify_value(&v, now, anchors)
}

fn validate_chain(
    der: &[u8],
    now: Option<i64>,
    anchors: Option<&dyn CertValidator>,
) -> Result<(), VerifyError> {
    let Some(a) = anchors else {
        return Ok(());
    };
    let at = now
        .or_else(|| secmms_pki::cert::validity_of(der).map(|v| v.0))
        .unwrap_or(0);
    a.validate(der, &[], at)
        .map(|_| ())
        .map_err(|e| VerifyError::Untrusted(e.to_string()))
}

fn verify_value(
    v: &MmsAuthenticationValue,
    now: Option<i64>,
    anchors: Option<&dyn CertValidator>,
) -> Result<AuthVerdict, VerifyError> {
    if v.certificate.len() > MAX_CERTIFICATE_LEN {
        return Err(VerifyError::Certificate(format!(
            "{} octets exceeds {MAX_CERTIFICATE_LEN}",
            v.certificate.len()
        )));
    }
    let key = secmms_pki::cert::public_key_of(&v.certificate)
        .map_err(|e| VerifyError::Certificate(e.to_string()))?;
    let (not_before, not_after) = secmms_pki::cert::validity_of(&v.certificate)
        .ok_or_else(|| VerifyError::Certificate("no validity period".into()))?;
    let t = parse_time(&v.time).map_err(|_| VerifyError::TimeInvalid)?;
    if let Some(now) = now {
        if now < not_before || now > not_after {
            return Err(VerifyError::CertificateTime {
                not_before,
                not_after,
            });
        }
        let diff = t.abs_diff(now);
        if diff > AUTH_TIME_WINDOW.unsigned_abs() {
            return Err(VerifyError::TimeStale { time: t, diff });
        }
    }
    let alg = algorithm_for(&key).map_err(|e| VerifyError::Certificate(e.to_string()))?;
    let ok = v
        .signed_variants()
        .iter()
        .any(|(_, data)| verify_signature(&key, alg, data, &v.signature).is_ok());
    if !ok {
        return Err(VerifyError::BadSignature);
    }
    validate_chain(&v.certificate, now, anchors)?;
    Ok(AuthVerdict {
        fingerprint: secmms_ber::hex::encode(&secmms_pki::crypto::sha256(&v.certificate)),
        time: String::from_utf8_lossy(&v.time).into_owned(),
    })
}

/// Verifies the signature of an E2E HandshakeReq or HandshakeAcc over its `tbs` with the
/// key of its own `pkCert`; `None` for other SecPDUs (nothing a capture lets one check).
///
/// With `anchors`, `pkCert` is also validated by them at `now`.
pub fn verify_e2e(
    pdu: &SecPdu,
    now: Option<i64>,
    anchors: Option<&dyn CertValidator>,
) -> Option<Result<(), VerifyError>> {
    let (SecPdu::HandshakeReq(h) | SecPdu::HandshakeAcc(h)) = pdu else {
        return None;
    };
    let r = (|| {
        let key = secmms_pki::cert::public_key_of(&h.token1.pk_cert)
            .map_err(|e| VerifyError::Certificate(e.to_string()))?;
        let alg = algorithm_for(&key).map_err(|e| VerifyError::Certificate(e.to_string()))?;
        verify_signature(&key, alg, &h.tbs, &h.sign.sign).map_err(|_| VerifyError::BadSignature)?;
        validate_chain(&h.token1.pk_cert, now, anchors)
    })();
    Some(r)
}

/// A short name of a SecPDU kind, as §12 spells it.
pub fn kind_name(k: SecPduKind) -> &'static str {
    // The ASN.1 alternative names are the XML element names (§16.3): one table.
    secmms_e2e::xml::element_name(k)
}
