//! Verification during the handshake: the server's ClientHello policy, stapled OCSP answers,
//! certificate pinning, the certificate-verification callback, re-validation of a peer after a
//! refresh, and the classification of handshake failures into findings.

use super::*;

/// The ClientHello policy of the server (runs before any suite is chosen): refuse TLS < 1.2
/// offers and TLS 1.2 offers without RFC 5746, each with its event.
pub(super) fn client_hello_policy(
    hello: &ffi::ClientHello<'_>,
    alert: &mut SslAlert,
) -> Result<ClientHelloResponse, openssl::error::ErrorStack> {
    let ssl = hello.ssl();
    // A renegotiation the client started: counted, reported, refused past the policy.
    if let Some(g) = guard_of(ssl) {
        if !g.admit(std::time::Instant::now()) {
            *alert = SslAlert::HANDSHAKE_FAILURE;
            return Err(openssl::error::ErrorStack::get());
        }
    }
    let findings = findings_index().and_then(|i| ssl.ex_data(i)).cloned();
    let legacy = hello.legacy_version();
    let versions = hello.ext(EXT_SUPPORTED_VERSIONS);
    let offers = |v: u16| match &versions {
        // supported_versions: length octet, then 2-octet versions.
        Some(body) => body
            .get(1..)
            .unwrap_or_default()
            .chunks_exact(2)
            .any(|c| u16::from_be_bytes([c[0], c[1]]) == v),
        None => legacy >= v,
    };
    let fail = |kind: TlsFinding, detail: String, a: SslAlert, alert: &mut SslAlert| {
        if let Some(f) = &findings {
            push(f, kind, detail);
        }
        *alert = a;
        Err(openssl::error::ErrorStack::get())
    };
    if !offers(0x0303) && !offers(0x0304) {
        return fail(
            TlsFinding::InsecureVersion,
            format!("peer offered only protocol version 0x{legacy:04X} (TLS 1.2 is the minimum)"),
            SslAlert::PROTOCOL_VERSION,
            alert,
        );
    }
    let scsv = ssl
        .client_hello_ciphers()
        .unwrap_or_default()
        .chunks_exact(2)
        .any(|c| c == [0x00, 0xFF]);
    let ri = hello.ext(EXT_RENEGOTIATION_INFO).is_some();
    if offers(0x0303) && !scsv && !ri {
        return fail(
            TlsFinding::RenegotiationInsecure,
            "TLS 1.2 ClientHello without RFC 5746 renegotiation_info or SCSV".into(),
            SslAlert::HANDSHAKE_FAILURE,
            alert,
        );
    }
    // A session offered for resumption whose version may differ from the one negotiated: a
    // TLS 1.2 ticket (session_ticket) in a hello that offers TLS 1.3, or a TLS 1.3 PSK in one
    // that also offers TLS 1.2. The handshake decides; `handshake` raises the alarm when the
    // version did change.
    if let Some(f) = &findings {
        let ticket = hello.ext(EXT_SESSION_TICKET).is_some_and(|t| !t.is_empty());
        if ticket && offers(0x0304) {
            push(
                f,
                TlsFinding::VersionChanged,
                "a TLS 1.2 session was offered for resumption in a TLS 1.3 handshake".into(),
            );
        }
        if hello.ext(EXT_PRE_SHARED_KEY).is_some() && offers(0x0303) {
            push(
                f,
                TlsFinding::VersionChanged,
                "a TLS 1.3 session (PSK) was offered for resumption; TLS 1.2 was negotiated".into(),
            );
        }
    }
    Ok(ClientHelloResponse::SUCCESS)
}

/// Client: checks the OCSP response the server stapled (RFC 6066). Revoked → refuse; anything
/// else that is not a verified "good" → warning only (§6.2.8: missing revocation information
/// never ends a session).
pub(super) fn check_stapled_ocsp(ssl: &mut SslRef) -> Result<bool, openssl::error::ErrorStack> {
    let findings = findings_index().and_then(|i| ssl.ex_data(i)).cloned();
    let note = |kind: TlsFinding, detail: String| {
        if let Some(f) = &findings {
            push(f, kind, detail);
        }
    };
    let Some(der) = ssl.ocsp_status() else {
        // Most servers staple nothing; CRLs cover revocation then. Not worth a warning.
        tracing::debug!("server stapled no OCSP response");
        return Ok(true);
    };
    let verdict = (|| -> Result<Option<(TlsFinding, String)>, String> {
        let leaf = ssl.peer_certificate().ok_or("no server certificate")?;
        let store = ssl.ssl_context().cert_store();
        let mut chain = openssl::stack::Stack::new().map_err(|e| e.to_string())?;
        if let Some(c) = ssl.peer_cert_chain() {
            for x in c {
                chain.push(x.to_owned()).map_err(|e| e.to_string())?;
            }
        }
        let issuer = crate::ocsp::issuer_of(&leaf, &chain, store)
            .ok_or("issuer of the server certificate not found")?;
        match crate::ocsp::evaluate(der, &leaf, &issuer, &chain, store)
            .map_err(|e| format!("stapled OCSP response: {e}"))?
            .0
        {
            crate::ocsp::OcspVerdict::Good => Ok(None),
            crate::ocsp::OcspVerdict::Revoked => Ok(Some((
                TlsFinding::CertRevoked,
                "stapled OCSP response: server certificate revoked".into(),
            ))),
            crate::ocsp::OcspVerdict::Unavailable(why) => {
                Err(format!("stapled OCSP response: {why}"))
            }
        }
    })();
    match verdict {
        Ok(None) => Ok(true),
        Ok(Some((kind, detail))) => {
            note(kind, detail);
            Ok(false)
        }
        Err(detail) => {
            note(TlsFinding::CrlUnavailable, detail);
            Ok(true)
        }
    }
}

/// TLS extension `supported_versions` (RFC 8446).
pub(super) const EXT_SUPPORTED_VERSIONS: u32 = 43;
/// TLS extension `renegotiation_info` (RFC 5746).
pub(super) const EXT_RENEGOTIATION_INFO: u32 = 0xff01;
/// TLS extension `session_ticket` (RFC 5077).
pub(super) const EXT_SESSION_TICKET: u32 = 35;
/// TLS extension `pre_shared_key` (RFC 8446).
pub(super) const EXT_PRE_SHARED_KEY: u32 = 41;

/// At depth 0: the leaf's SHA-256 fingerprint must be on the allow-list, when there is one.
pub(super) fn check_allowed(
    ctx: &X509StoreContextRef,
    allowed: &[[u8; 32]],
    findings: &Findings,
) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(der) = ctx.current_cert().and_then(|c| c.to_der().ok()) else {
        return false;
    };
    let fp = openssl::sha::sha256(&der);
    if allowed.contains(&fp) {
        return true;
    }
    let hex: String = fp.iter().map(|b| format!("{b:02x}")).collect();
    push(
        findings,
        TlsFinding::CertNotAllowed,
        format!("certificate SHA-256 {hex} is not in tls.allowed_peer_fingerprints"),
    );
    false
}

/// Per-certificate verification: size limit, then OpenSSL's verdict mapped to findings.
/// A missing or stale CRL is turned into a warning and accepted (§6.2.8).
pub(super) fn verify_certificate(
    preverify_ok: bool,
    ctx: &mut X509StoreContextRef,
    max_size: usize,
    findings: &Findings,
) -> bool {
    let depth = ctx.error_depth();
    if let Some(cert) = ctx.current_cert() {
        let size = cert.to_der().map(|d| d.len()).unwrap_or(usize::MAX);
        if size > max_size {
            push(
                findings,
                TlsFinding::CertSizeExceeded,
                format!("certificate at depth {depth} is {size} octets (limit {max_size})"),
            );
            return false;
        }
    }
    if preverify_ok {
        return true;
    }
    let err = ctx.error();
    let code = err.as_raw();
    let detail = format!("depth {depth}: {}", err.error_string());
    let kind = match code {
        X509_V_ERR_UNABLE_TO_GET_CRL
        | X509_V_ERR_CRL_HAS_EXPIRED
        | X509_V_ERR_CRL_NOT_YET_VALID => {
            push(findings, TlsFinding::CrlUnavailable, detail);
            ctx.set_error(X509VerifyResult::OK);
            return true;
        }
        X509_V_ERR_CERT_HAS_EXPIRED => TlsFinding::CertExpired,
        X509_V_ERR_CERT_NOT_YET_VALID => TlsFinding::CertNotYetValid,
        X509_V_ERR_CERT_REVOKED => TlsFinding::CertRevoked,
        X509_V_ERR_HOSTNAME_MISMATCH | X509_V_ERR_IP_ADDRESS_MISMATCH => {
            push(
                findings,
                TlsFinding::ServerIdentityMismatch,
                format!(
                    "{detail}: the server's certificate does not name the host or address we \
                     connected to; issue it with that name (`secmms cert issue --tls --ip ADDR \
                     --dns NAME`), connect by a name it carries, or give --server-name"
                ),
            );
            return false;
        }
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        | X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        | X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        | X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE => TlsFinding::CaUnknown,
        _ => TlsFinding::CertInvalid,
    };
    push(findings, kind, detail);
    false
}

/// Validates the peer's certificate chain again against the context's current trust store and
/// CRLs (TLS 1.3 key refresh). `None` when it is still acceptable (a missing or stale CRL only
/// warns, §6.2.8); otherwise the finding.
pub(super) fn revalidate_peer(ssl: &SslRef) -> Option<(TlsFinding, String)> {
    let cert = ssl.peer_certificate()?;
    let mut chain = openssl::stack::Stack::new().ok()?;
    if let Some(peer_chain) = ssl.peer_cert_chain() {
        for c in peer_chain {
            let _ = chain.push(c.to_owned());
        }
    }
    let store = ssl.ssl_context().cert_store();
    let mut ctx = openssl::x509::X509StoreContext::new().ok()?;
    let findings: Findings = Arc::default();
    let f = findings.clone();
    let ok = ctx
        .init(store, &cert, &chain, |c| {
            let ok = c.verify_cert()?;
            if !ok {
                verify_certificate(false, c, usize::MAX, &f);
            }
            Ok(ok)
        })
        .ok()?;
    if ok {
        return None;
    }
    take(&findings)
        .into_iter()
        .find(|(k, _)| *k != TlsFinding::CrlUnavailable)
}

// X509_V_ERR_* codes (x509_vfy.h, stable since OpenSSL 1.0).
pub(super) const X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
pub(super) const X509_V_ERR_UNABLE_TO_GET_CRL: i32 = 3;
pub(super) const X509_V_ERR_CERT_NOT_YET_VALID: i32 = 9;
pub(super) const X509_V_ERR_CERT_HAS_EXPIRED: i32 = 10;
pub(super) const X509_V_ERR_CRL_NOT_YET_VALID: i32 = 11;
pub(super) const X509_V_ERR_CRL_HAS_EXPIRED: i32 = 12;
pub(super) const X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
pub(super) const X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
pub(super) const X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
pub(super) const X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
pub(super) const X509_V_ERR_CERT_REVOKED: i32 = 23;
pub(super) const X509_V_ERR_HOSTNAME_MISMATCH: i32 = 62;
pub(super) const X509_V_ERR_IP_ADDRESS_MISMATCH: i32 = 64;

// SSL_R_* reason codes (sslerr.h) used to classify handshake failures.
pub(super) const SSL_R_NO_SHARED_CIPHER: i32 = 193;
pub(super) const SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: i32 = 199;
pub(super) const SSL_R_UNSUPPORTED_PROTOCOL: i32 = 258;
pub(super) const SSL_R_WRONG_VERSION_NUMBER: i32 = 267;
pub(super) const SSL_R_NO_PROTOCOLS_AVAILABLE: i32 = 191;
pub(super) const SSL_R_TLSV1_ALERT_PROTOCOL_VERSION: i32 = 1070;
pub(super) const SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED: i32 = 1116;
pub(super) const SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE: i32 = 1040;
pub(super) const SSL_R_TLSV1_ALERT_UNKNOWN_CA: i32 = 1048;
pub(super) const SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED: i32 = 1045;
pub(super) const SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED: i32 = 1044;

/// Maps a failed handshake to its finding: first what our callbacks saw, then OpenSSL's reason.
pub(super) fn classify(
    found: &[(TlsFinding, String)],
    e: &openssl::ssl::Error,
    ssl: &SslRef,
) -> (TlsFinding, String) {
    if let Some((k, d)) = found.iter().find(|(k, _)| *k != TlsFinding::CrlUnavailable) {
        return (*k, d.clone());
    }
    let reasons: Vec<(i32, String)> = e
        .ssl_error()
        .map(|s| {
            s.errors()
                .iter()
                .map(|x| (x.reason_code(), x.reason().unwrap_or("?").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let text = if reasons.is_empty() {
        e.to_string()
    } else {
        reasons
            .iter()
            .map(|(_, r)| r.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    for (code, _) in &reasons {
        let kind = match *code {
            SSL_R_NO_SHARED_CIPHER => TlsFinding::CipherDisallowed,
            SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE | SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED => {
                TlsFinding::CertUnavailable
            }
            SSL_R_WRONG_VERSION_NUMBER => {
                // Not a TLS record at all: typically plain RFC 1006 sent to the TLS port.
                return (
                    TlsFinding::HandshakeFailed,
                    format!("not a TLS client (plain RFC 1006 to the TLS port?): {text}"),
                );
            }
            SSL_R_UNSUPPORTED_PROTOCOL
            | SSL_R_NO_PROTOCOLS_AVAILABLE
            | SSL_R_TLSV1_ALERT_PROTOCOL_VERSION => TlsFinding::InsecureVersion,
            SSL_R_TLSV1_ALERT_UNKNOWN_CA => TlsFinding::CaUnknown,
            SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED => TlsFinding::CertExpired,
            SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED => TlsFinding::CertRevoked,
            SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE => TlsFinding::HandshakeFailed,
            _ => continue,
        };
        return (kind, text);
    }
    let _ = ssl;
    (TlsFinding::HandshakeFailed, text)
}

impl TlsContext {
    /// The OCSP step after a handshake ([`crate::ocsp`]): `Some(error)` when the peer must be
    /// refused; events are raised here.
    pub(super) async fn check_ocsp(&self, ssl: &SslRef, peer: &str) -> Option<TlsError> {
        use crate::ocsp::{OcspCheck, OcspVerdict};
        let checker = self.ocsp.as_ref()?;
        let leaf = ssl.peer_certificate()?;
        let ctx = ssl.ssl_context().to_owned();
        let mut chain = openssl::stack::Stack::new().ok()?;
        if let Some(c) = ssl.peer_cert_chain() {
            for x in c {
                let _ = chain.push(x.to_owned());
            }
        }
        let verdict = match crate::ocsp::issuer_of(&leaf, &chain, ctx.cert_store()) {
            Some(issuer) => {
                checker
                    .check(&leaf, &issuer, &chain, ctx.cert_store())
                    .await
            }
            None => {
                OcspVerdict::Unavailable("the issuer of the peer's certificate is not known".into())
            }
        };
        let refuse = |kind: TlsFinding, detail: String| {
            self.report(kind, detail.clone(), peer);
            Some(TlsError::Handshake {
                mnemonic: kind.id().1,
                detail,
            })
        };
        match verdict {
            OcspVerdict::Good => None,
            OcspVerdict::Revoked => refuse(
                TlsFinding::CertRevoked,
                "OCSP: the peer's certificate is revoked".into(),
            ),
            OcspVerdict::Unavailable(why) if self.cfg.ocsp_check == OcspCheck::HardFail => refuse(
                TlsFinding::OcspUnavailable,
                format!("{why} (ocsp_check = hard-fail)"),
            ),
            OcspVerdict::Unavailable(why) => {
                self.report(
                    TlsFinding::OcspUnavailable,
                    format!("{why}; the peer is let in (ocsp_check = soft-fail)"),
                    peer,
                );
                None
            }
        }
    }
}
