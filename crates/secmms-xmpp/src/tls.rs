//! TLS for the XMPP stream (IEC 62351-4 §6.4): OpenSSL through `tokio-openssl`, TLS 1.2 minimum,
//! the suite policy of Table 3 without static DH, configured trust anchors, an optional client
//! certificate, and the server name checked against the XMPP domain (RFC 6125 DNS-ID).

use std::pin::Pin;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509VerifyResult, X509};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use crate::config::XmppConfig;
use crate::error::XmppError;
use crate::limits::MAX_CERT_SIZE;

/// TLS 1.2 suites (§6.4 DECISION: the Table 3 policy minus static DH, which OpenSSL lacks):
/// the mandatory 0xC02B, 0x009E, 0x003C and the optional ECDHE-RSA/ECDSA GCM and 0xC023.
pub(crate) const TLS12_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:\
ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
DHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA256:AES128-SHA256";

/// TLS 1.3 suites (AES-GCM only, as for the OSI profile).
pub(crate) const TLS13_SUITES: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";

/// OpenSSL security level 2: RSA/DH ≥ 2048 bits, ≥ 112-bit signatures (62351-3).
const SECURITY_LEVEL: u32 = 2;

fn cfg_err(field: &'static str, reason: impl Into<String>) -> XmppError {
    XmppError::Config {
        field,
        reason: reason.into(),
    }
}

/// Builds the client context from the configuration.
pub(crate) fn connector(cfg: &XmppConfig) -> Result<SslConnector, XmppError> {
    let mut b = SslConnector::builder(SslMethod::tls_client())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    if !cfg.tls13 {
        b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
    }
    b.set_cipher_list(TLS12_CIPHERS)?;
    b.set_ciphersuites(TLS13_SUITES)?;
    b.set_security_level(SECURITY_LEVEL);
    if !cfg.ca.is_empty() {
        // Only the configured anchors: replace the default store that the builder loaded.
        let mut store = X509StoreBuilder::new()?;
        for path in &cfg.ca {
            let pem = std::fs::read(path)
                .map_err(|e| cfg_err("ca", format!("{}: {e}", path.display())))?;
            let certs = X509::stack_from_pem(&pem)
                .map_err(|e| cfg_err("ca", format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(cfg_err("ca", format!("{}: no certificate", path.display())));
            }
            for c in certs {
                store.add_cert(c)?;
            }
        }
        b.set_cert_store(store.build());
    }
    if let (Some(cert), Some(key)) = (&cfg.cert, &cfg.key) {
        b.set_certificate_chain_file(cert)
            .map_err(|e| cfg_err("cert", format!("{}: {e}", cert.display())))?;
        b.set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| cfg_err("key", format!("{}: {e}", key.display())))?;
        b.check_private_key()
            .map_err(|e| cfg_err("key", format!("does not match cert: {e}")))?;
    }
    b.set_verify(SslVerifyMode::PEER);
    Ok(b.build())
}

/// What the handshake negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// Protocol version (`TLSv1.3`).
    pub version: String,
    /// Cipher suite (OpenSSL name).
    pub cipher: String,
}

/// Runs the client handshake over `io` with SNI and name check for `domain`.
pub(crate) async fn handshake<S>(
    connector: &SslConnector,
    domain: &str,
    io: S,
    timeout: Duration,
) -> Result<(SslStream<S>, TlsInfo), XmppError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ssl = connector.configure()?.into_ssl(domain)?;
    let mut stream = SslStream::new(ssl, io)?;
    match tokio::time::timeout(timeout, Pin::new(&mut stream).connect()).await {
        Err(_) => {
            return Err(XmppError::Timeout {
                step: "TLS handshake",
            })
        }
        Ok(Err(e)) => {
            let verify = stream.ssl().verify_result();
            if verify != X509VerifyResult::OK {
                return Err(XmppError::Certificate {
                    reason: verify.error_string().to_owned(),
                });
            }
            return Err(match e.into_io_error() {
                Ok(io) => XmppError::Io(io),
                Err(e) => XmppError::Tls(e.to_string()),
            });
        }
        Ok(Ok(())) => {}
    }
    if let Some(chain) = stream.ssl().peer_cert_chain() {
        for c in chain {
            let size = c.to_der()?.len();
            if size > MAX_CERT_SIZE {
                return Err(XmppError::CertificateTooLarge {
                    size,
                    limit: MAX_CERT_SIZE,
                });
            }
        }
    }
    let info = TlsInfo {
        version: stream.ssl().version_str().to_owned(),
        cipher: stream
            .ssl()
            .current_cipher()
            .map(|c| c.name().to_owned())
            .unwrap_or_default(),
    };
    Ok((stream, info))
}
