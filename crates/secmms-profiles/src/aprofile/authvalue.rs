//! The MMS authentication value of §11.2–11.4: unique time strings, building and wrapping our
//! value, extracting and verifying the peer's (certificate, time window, replay, signature,
//! address binding), and the failures each check reports.

use super::*;
pub(super) use secmms_osi::acse::{form2_ae_qualifier as form2_ae, form2_ap_title as form2_ap};

/// DECISION (§11.2, §11.4 replay check): the peer refuses a (certificate, time) pair it has
/// already seen, so whole seconds would refuse the second association a client opens within one
/// second. The time we send therefore carries the milliseconds of the call's time
/// ([`AProfile::set_now`]; `YYYYMMDDHHMMSS.fffZ`, DER-valid: no trailing
/// zeros, no fraction when it is zero), and is moved one millisecond on when it would repeat our
/// previous value. Receivers drop the fraction when checking the 10-minute window.
pub const TIME_WITH_MILLISECONDS: bool = true;

/// Hands out unique time strings for our authentication values (see
/// [`TIME_WITH_MILLISECONDS`]).
#[derive(Debug, Default)]
pub struct TimeStamps {
    /// The last value handed out (Unix milliseconds).
    last: AtomicI64,
}

impl TimeStamps {
    /// The time string for a value sent at `now` (Unix seconds), unique within this process.
    pub fn next(&self, now: i64) -> Vec<u8> {
        self.next_ms(now.saturating_mul(1000))
    }

    /// The time string for a value sent at `now_ms` (Unix milliseconds): the time with its
    /// millisecond fraction, moved one millisecond past the previous value when it would repeat
    /// it. At most one value per millisecond is handed out.
    pub fn next_ms(&self, now_ms: i64) -> Vec<u8> {
        let mut prev = self.last.load(Ordering::Relaxed);
        let ms = loop {
            let ms = now_ms.max(prev.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(prev, ms, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break ms,
                Err(seen) => prev = seen,
            }
        };
        let secs = ms.div_euclid(1000);
        let n = ms.rem_euclid(1000);
        let base = format_time(secs);
        if n == 0 {
            return base.into_bytes();
        }
        let frac = format!("{n:03}");
        let frac = frac.trim_end_matches('0');
        let mut out = base.trim_end_matches('Z').to_string();
        out.push('.');
        out.push_str(frac);
        out.push('Z');
        out.into_bytes()
    }
}

/// The Annex G.6.2 identity of an AP-title and AE-qualifier: the AE-qualifier appended to the
/// AP-title as a last arc. `None` unless both are form 2 and the qualifier is non-negative.
pub fn identity_of(ap_title: Option<&Oid>, ae_qualifier: Option<i64>) -> Option<PeerIdentity> {
    let ap = ap_title?;
    let q = u64::try_from(ae_qualifier?).ok()?;
    let mut arcs = ap.arcs().to_vec();
    arcs.push(q);
    Oid::new(&arcs).ok().map(PeerIdentity::ApTitle)
}

/// An identity in words: `AP-title A / AE-qualifier Q` for an Annex G.6.2 binding.
pub fn describe_identity(id: Option<&PeerIdentity>) -> String {
    match id {
        Some(PeerIdentity::ApTitle(o)) => match o.arcs().split_last() {
            Some((q, ap)) if !ap.is_empty() && !o.arcs().is_empty() => {
                let ap: Vec<String> = ap.iter().map(u64::to_string).collect();
                format!("AP-title {} / AE-qualifier {q}", ap.join("."))
            }
            _ => format!("identity {o}"),
        },
        Some(PeerIdentity::Jid(j)) if j.is_empty() => "no AP-title / AE-qualifier".into(),
        Some(PeerIdentity::Jid(j)) => format!("JID {j}"),
        None => "no identity".into(),
    }
}

/// Why the verification of an MMS-Authentication-value failed (each maps to one event; all map
/// to the same ABRT `authentication-failure` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No authentication-value, wrong alternative, or undecodable value.
    #[error("authentication-value malformed: {0}")]
    Malformed(String),
    /// Certificate over 8 192 octets.
    #[error("certificate of {0} octets exceeds 8192")]
    CertificateTooLarge(usize),
    /// A TLS certificate was used as application certificate (Annex G.2).
    #[error("TLS certificate reused as application certificate")]
    TlsCertificateReused,
    /// Certificate expired.
    #[error("certificate expired")]
    Expired,
    /// Certificate not yet valid.
    #[error("certificate not yet valid")]
    NotYetValid,
    /// Certificate revoked.
    #[error("certificate revoked")]
    Revoked,
    /// Unknown issuing CA.
    #[error("certificate issuer unknown: {0}")]
    UnknownCa(String),
    /// Other certificate failure.
    #[error("certificate invalid: {0}")]
    CertificateInvalid(String),
    /// Subject does not bind to the peer's address.
    #[error("certificate subject does not match the peer: {0}")]
    AddressMismatch(String),
    /// `time` not parseable.
    #[error("time is not a GeneralizedTime")]
    TimeInvalid,
    /// `time` outside the window.
    #[error("time {time} differs from local time {now} by more than {window} s")]
    TimeStale {
        /// The peer's time, Unix seconds.
        time: i64,
        /// Local time.
        now: i64,
        /// Window.
        window: i64,
    },
    /// `time` replayed.
    #[error("time value replayed")]
    Replayed,
    /// Signature invalid.
    #[error("signature invalid")]
    BadSignature,
    /// Replay cache full.
    #[error("replay cache full")]
    ReplayCacheFull,
}

impl AuthFailure {
    /// The event that records this failure.
    pub fn event(&self) -> AEvent {
        match self {
            AuthFailure::Malformed(_) => events::VALUE_MALFORMED,
            AuthFailure::CertificateTooLarge(_) => events::CERT_TOO_LARGE,
            AuthFailure::TlsCertificateReused => events::TLS_CERT_REUSED,
            AuthFailure::Expired => events::CERT_EXPIRED,
            AuthFailure::NotYetValid => events::CERT_NOT_YET_VALID,
            AuthFailure::Revoked => events::CERT_REVOKED,
            AuthFailure::UnknownCa(_) => events::CA_UNKNOWN,
            AuthFailure::CertificateInvalid(_) => events::CERT_INVALID,
            AuthFailure::AddressMismatch(_) => events::ADDRESS_MISMATCH,
            AuthFailure::TimeInvalid => events::TIME_INVALID,
            AuthFailure::TimeStale { .. } => events::TIME_STALE,
            AuthFailure::Replayed => events::TIME_REPLAYED,
            AuthFailure::BadSignature => events::SIGNATURE_INVALID,
            AuthFailure::ReplayCacheFull => events::REPLAY_CACHE_FULL,
        }
    }
}

/// A verified peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedPeer {
    /// SHA-256 of the peer's application certificate.
    pub fingerprint: [u8; 32],
    /// The identity in its subject.
    pub identity: Option<PeerIdentity>,
    /// Which octets the signature covered.
    pub signed_over: SignedOver,
    /// The peer's application certificate (DER), for re-checks after a CRL reload.
    pub certificate: Vec<u8>,
}

/// Inputs of [`verify_value`] besides the value.
#[derive(Clone, Copy)]
pub struct VerifyInput<'a> {
    /// The certificate validator.
    pub validator: &'a dyn CertValidator,
    /// Local time, Unix seconds.
    pub now: i64,
    /// Accepted clock difference.
    pub window: i64,
    /// TLS certificate fingerprints that must not appear (Annex G.2).
    pub tls_fingerprints: &'a [[u8; 32]],
    /// The identity the subject must carry (Annex G.6.2), if checked.
    pub expected_identity: Option<&'a PeerIdentity>,
    /// A further subject required by the peer's §5.1 row.
    pub configured_subject: Option<&'a PeerIdentity>,
    /// The replay store.
    pub replay: &'a dyn AuthReplay,
}

/// Verifies a decoded MMS-Authentication-value in the order of §11.4: size, Annex G.2
/// separation, certificate (path, validity, revocation, Annex G profile), G.6 binding, time
/// window, replay, signature; the value is remembered for the replay check only once its
/// signature verified (so forged values cannot block a genuine one).
pub fn verify_value(
    v: &MmsAuthenticationValue,
    inp: &VerifyInput<'_>,
) -> Result<AuthenticatedPeer, AuthFailure> {
    if v.certificate.len() > MAX_CERTIFICATE_LEN {
        return Err(AuthFailure::CertificateTooLarge(v.certificate.len()));
    }
    let fingerprint = sha256(&v.certificate);
    if inp.tls_fingerprints.contains(&fingerprint) {
        return Err(AuthFailure::TlsCertificateReused);
    }
    let validated = inp
        .validator
        .validate(&v.certificate, &[], inp.now)
        .map_err(|e| classify_cert_error(e, &v.certificate, inp.now))?;
    let identity = validated.info.identity.clone();
    if let Some(want) = inp.expected_identity {
        if identity.as_ref() != Some(want) {
            return Err(AuthFailure::AddressMismatch(format!(
                "the certificate binds {}, the association names {}: the AP-title/AE-qualifier \
                 expected for this peer (a client's --peer-ap-title/--peer-ae-qualifier, or the \
                 calling side's own --ap-title/--ae-qualifier) must equal the certificate's \
                 binding, or the certificate be reissued (Annex G.6.2)",
                describe_identity(identity.as_ref()),
                describe_identity(Some(want))
            )));
        }
    }
    if let Some(want) = inp.configured_subject {
        if identity.as_ref() != Some(want) {
            return Err(AuthFailure::AddressMismatch(format!(
                "the certificate binds {}, the peer's [[security.peers]] row wants \
                 certificate_subject {}: change the row or reissue the certificate",
                describe_identity(identity.as_ref()),
                describe_identity(Some(want))
            )));
        }
    }
    let t = parse_time(&v.time).map_err(|_| AuthFailure::TimeInvalid)?;
    if t.abs_diff(inp.now) > inp.window.unsigned_abs() {
        return Err(AuthFailure::TimeStale {
            time: t,
            now: inp.now,
            window: inp.window,
        });
    }
    if inp.replay.contains(&fingerprint, &v.time, inp.now) {
        return Err(AuthFailure::Replayed);
    }
    let alg = algorithm_for(&validated.public_key)
        .map_err(|e| AuthFailure::CertificateInvalid(e.to_string()))?;
    let signed_over = v
        .signed_variants()
        .into_iter()
        .find(|(_, data)| verify_signature(&validated.public_key, alg, data, &v.signature).is_ok())
        .map(|(which, _)| which)
        .ok_or(AuthFailure::BadSignature)?;
    match inp
        .replay
        .insert(&fingerprint, &v.time, inp.now, inp.window)
    {
        ReplayCheck::Fresh => {}
        ReplayCheck::Replayed => return Err(AuthFailure::Replayed),
        ReplayCheck::Full => return Err(AuthFailure::ReplayCacheFull),
    }
    Ok(AuthenticatedPeer {
        fingerprint,
        identity,
        signed_over,
        certificate: v.certificate.clone(),
    })
}

/// Maps a validator error to the failure reported. The OpenSSL validator reports path errors as
/// text, so the validity period is re-read from the certificate to tell expiry apart.
pub(super) fn classify_cert_error(e: CertError, der: &[u8], now: i64) -> AuthFailure {
    match e {
        CertError::Revoked => AuthFailure::Revoked,
        CertError::Path(msg) => {
            if let Some(f) = validity_failure(der, now) {
                return f;
            }
            let m = msg.to_ascii_lowercase();
            if m.contains("issuer") || m.contains("self-signed") || m.contains("self signed") {
                AuthFailure::UnknownCa(msg)
            } else {
                AuthFailure::CertificateInvalid(msg)
            }
        }
        other => AuthFailure::CertificateInvalid(other.to_string()),
    }
}

pub(super) fn validity_failure(der: &[u8], now: i64) -> Option<AuthFailure> {
    // Read without OpenSSL, so the Annex G.6.2 OBJECT IDENTIFIER subject form is covered too.
    let (not_before, not_after) = secmms_pki::cert::validity_of(der)?;
    if now > not_after {
        return Some(AuthFailure::Expired);
    }
    if now < not_before {
        return Some(AuthFailure::NotYetValid);
    }
    None
}

/// Extracts the MMS-Authentication-value from an ACSE Authentication-value: the `external [2]`
/// alternative with `single-ASN1-type`; any subset of direct- and indirect-reference is accepted
/// (§11.3 DECISION). Returns the value and the indirect-reference seen.
pub fn extract_value(
    av: Option<&AuthenticationValue>,
) -> Result<(MmsAuthenticationValue, Option<i64>), AuthFailure> {
    let Some(AuthenticationValue::External(e)) = av else {
        return Err(AuthFailure::Malformed(
            "authentication-value absent or not EXTERNAL".into(),
        ));
    };
    let ExternalEncoding::SingleAsn1Type(bytes) = &e.encoding else {
        return Err(AuthFailure::Malformed(
            "EXTERNAL encoding is not single-ASN1-type".into(),
        ));
    };
    let v =
        MmsAuthenticationValue::decode(bytes).map_err(|e| AuthFailure::Malformed(e.to_string()))?;
    Ok((v, e.indirect_reference))
}

/// Builds our MMS-Authentication-value at `now` (§11.2 DECISION: time `YYYYMMDDHHMMSSZ`,
/// signature over the raw time octets).
pub fn build_value(creds: &Credentials, now: i64) -> Result<MmsAuthenticationValue, String> {
    build_value_at(creds, format_time(now).into_bytes())
}

/// Builds our MMS-Authentication-value carrying exactly `time` (GeneralizedTime octets).
pub fn build_value_at(
    creds: &Credentials,
    time: Vec<u8>,
) -> Result<MmsAuthenticationValue, String> {
    let signature = creds.key.sign(&time).map_err(|e| e.to_string())?;
    Ok(MmsAuthenticationValue {
        certificate: creds.certificate.clone(),
        time,
        signature,
        time_tlv: Vec::new(),
    })
}

/// Wraps an encoded value as `external [2]` with `single-ASN1-type` and the given
/// indirect-reference (§11.3).
pub fn wrap_value(
    v: &MmsAuthenticationValue,
    indirect_reference: Option<i64>,
) -> AuthenticationValue {
    AuthenticationValue::External(External {
        direct_reference: None,
        indirect_reference,
        data_value_descriptor: None,
        encoding: ExternalEncoding::SingleAsn1Type(v.encode()),
        raw: Vec::new(),
    })
}
