//! OCSP (RFC 6960) for the peers' certificates (IEC 62351-4 §6.2.8 with IEC 62351-3): after the
//! TLS handshake and before the first TPDU, the peer's certificate is looked up at the
//! responder the configuration names, or else the one in the certificate's authorityInfoAccess.
//!
//! * A `revoked` answer always refuses the peer (`TLS_CERT_REVOKED`, incident).
//! * A responder that cannot be reached, an answer that does not verify or is out of date, and
//!   an `unknown` answer are *soft failures* by default: the peer is let in and
//!   `TLS_OCSP_UNAVAILABLE` (warning) is raised, as §6.2.8 asks when revocation information
//!   cannot be retrieved. With `ocsp_check = "hard-fail"` they refuse the peer.
//! * A verified answer is cached per certificate until its nextUpdate (at most
//!   [`MAX_CACHE_SECS`]; [`DEFAULT_CACHE_SECS`] when it gives none).
//!
//! The request is an HTTP/1.0 POST (RFC 6960 Appendix A) over the async runtime in use, bounded
//! in time (`ocsp_timeout_secs`) and size ([`MAX_RESPONSE`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openssl::ocsp::{
    OcspBasicResponse, OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse,
    OcspResponseStatus,
};
use openssl::x509::store::X509StoreRef;
use openssl::x509::{X509Ref, X509};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest OCSP response read (a response names a handful of certificates).
pub const MAX_RESPONSE: usize = 64 * 1024;
/// How long a response without nextUpdate is reused.
pub const DEFAULT_CACHE_SECS: u64 = 300;
/// Longest a response is reused, whatever its nextUpdate says.
pub const MAX_CACHE_SECS: u64 = 86_400;
/// Most certificates whose answers are cached (the oldest go first).
pub const MAX_CACHED: usize = 4_096;

/// What to do about OCSP (`[tls] ocsp_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OcspCheck {
    /// No OCSP lookups (default; CRLs still apply).
    #[default]
    Off,
    /// Look up; a revoked peer is refused, no answer is a warning.
    SoftFail,
    /// Look up; a revoked peer and no usable answer both refuse the peer.
    HardFail,
}

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcspVerdict {
    /// The responder vouches for the certificate.
    Good,
    /// The responder says the certificate is revoked.
    Revoked,
    /// No usable answer: why.
    Unavailable(String),
}

struct Cached {
    response: Vec<u8>,
    until: Instant,
}

/// Looks certificates up and caches the answers. One per process (shared by connections).
pub struct OcspChecker {
    responder: Option<String>,
    timeout: Duration,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl std::fmt::Debug for OcspChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspChecker")
            .field("responder", &self.responder)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OcspChecker {
    /// A checker asking `responder` (else each certificate's AIA), waiting at most `timeout`.
    pub fn new(responder: Option<String>, timeout: Duration) -> Self {
        OcspChecker {
            responder,
            timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The status of `leaf`, issued by `issuer`; the answer must verify against `store` (the
    /// trust anchors) with the certificates of `chain`.
    pub async fn check(
        &self,
        leaf: &X509Ref,
        issuer: &X509Ref,
        chain: &openssl::stack::StackRef<X509>,
        store: &X509StoreRef,
    ) -> OcspVerdict {
        let key = match leaf.to_der() {
            Ok(d) => secmms_pki::crypto::sha256(&d),
            Err(e) => return OcspVerdict::Unavailable(e.to_string()),
        };
        let cached = {
            let g = match self.cache.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            g.get(&key)
                .filter(|c| c.until > Instant::now())
                .map(|c| c.response.clone())
        };
        if let Some(der) = cached {
            if let Ok((v, _)) = evaluate(&der, leaf, issuer, chain, store) {
                return v;
            }
        }
        let url = match self.responder.clone().or_else(|| aia_url(leaf)) {
            Some(u) => u,
            None => {
                return OcspVerdict::Unavailable(
                    "no OCSP responder: none configured (ocsp_responder) and none in the \
                     certificate's authorityInfoAccess"
                        .into(),
                )
            }
        };
        let request = match request_der(leaf, issuer) {
            Ok(r) => r,
            Err(e) => return OcspVerdict::Unavailable(format!("OCSP request: {e}")),
        };
        let der = match tokio::time::timeout(self.timeout, post(&url, &request)).await {
            Err(_) => {
                return OcspVerdict::Unavailable(format!(
                    "OCSP responder {url} gave no answer within {:?}",
                    self.timeout
                ))
            }
            Ok(Err(e)) => return OcspVerdict::Unavailable(format!("OCSP responder {url}: {e}")),
            Ok(Ok(d)) => d,
        };
        match evaluate(&der, leaf, issuer, chain, store) {
            Ok((v, secs)) => {
                if matches!(v, OcspVerdict::Good | OcspVerdict::Revoked) {
                    let mut g = match self.cache.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    if g.len() >= MAX_CACHED {
                        let now = Instant::now();
                        g.retain(|_, c| c.until > now);
                        if g.len() >= MAX_CACHED {
                            g.clear();
                        }
                    }
                    g.insert(
                        key,
                        Cached {
                            response: der,
                            until: Instant::now() + Duration::from_secs(secs),
                        },
                    );
                }
                v
            }
            Err(e) => OcspVerdict::Unavailable(format!("OCSP response from {url}: {e}")),
        }
    }
}

impl OcspChecker {
    /// The status of a peer's application certificate (`leaf_der`, DER) issued by one of
    /// `anchors` (§6.2.8 for the A-profile and E2E certificates). A certificate OpenSSL
    /// cannot load (the Annex G.6.2 OID subject form) cannot be named in a request: that is
    /// [`OcspVerdict::Unavailable`], like a silent responder.
    pub async fn check_der(&self, leaf_der: &[u8], anchors: &[X509]) -> OcspVerdict {
        let Ok(leaf) = X509::from_der(leaf_der) else {
            return OcspVerdict::Unavailable(
                "OpenSSL cannot load the certificate (e.g. the OID subject form), so no OCSP \
                 request can name it"
                    .into(),
            );
        };
        let store = match anchor_store(anchors) {
            Ok(s) => s,
            Err(e) => return OcspVerdict::Unavailable(format!("trust anchors: {e}")),
        };
        let chain = match openssl::stack::Stack::<X509>::new() {
            Ok(c) => c,
            Err(e) => return OcspVerdict::Unavailable(e.to_string()),
        };
        match issuer_of(&leaf, &chain, &store) {
            Some(issuer) => self.check(&leaf, &issuer, &chain, &store).await,
            None => OcspVerdict::Unavailable(
                "the issuer of the certificate is not among the trust anchors".into(),
            ),
        }
    }
}

fn anchor_store(
    anchors: &[X509],
) -> Result<openssl::x509::store::X509Store, openssl::error::ErrorStack> {
    let mut b = openssl::x509::store::X509StoreBuilder::new()?;
    for a in anchors {
        b.add_cert(a.clone())?;
    }
    Ok(b.build())
}

/// The first OCSP responder URL in the certificate's authorityInfoAccess.
fn aia_url(leaf: &X509Ref) -> Option<String> {
    let list = leaf.ocsp_responders().ok()?;
    let first = list.iter().next()?;
    Some(first.to_string())
}

fn request_der(leaf: &X509Ref, issuer: &X509Ref) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let id = OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), leaf, issuer)?;
    let mut req = OcspRequest::new()?;
    req.add_id(id)?;
    req.to_der()
}

/// Verifies a response and finds the status of `leaf`: the verdict and how long it may be
/// reused (seconds).
pub(crate) fn evaluate(
    der: &[u8],
    leaf: &X509Ref,
    issuer: &X509Ref,
    chain: &openssl::stack::StackRef<X509>,
    store: &X509StoreRef,
) -> Result<(OcspVerdict, u64), String> {
    let resp = OcspResponse::from_der(der).map_err(|e| e.to_string())?;
    if resp.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(format!("response status {:?}", resp.status()));
    }
    let basic: OcspBasicResponse = resp.basic().map_err(|e| e.to_string())?;
    basic
        .verify(chain, store, OcspFlag::empty())
        .map_err(|e| format!("signature: {e}"))?;
    let id = OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), leaf, issuer)
        .map_err(|e| e.to_string())?;
    let st = basic
        .find_status(&id)
        .ok_or("no status for the certificate")?;
    // Five minutes of clock skew tolerated; a response past its nextUpdate is not used.
    st.check_validity(300, None)
        .map_err(|e| format!("out of date: {e}"))?;
    let secs = match st.next_update() {
        Some(next) => seconds_until(next).clamp(1, MAX_CACHE_SECS),
        None => DEFAULT_CACHE_SECS,
    };
    let v = if st.status == OcspCertStatus::REVOKED {
        OcspVerdict::Revoked
    } else if st.status == OcspCertStatus::GOOD {
        OcspVerdict::Good
    } else {
        OcspVerdict::Unavailable("the responder does not know the certificate (unknown)".into())
    };
    Ok((v, secs))
}

fn seconds_until(t: &openssl::asn1::Asn1GeneralizedTimeRef) -> u64 {
    // Asn1GeneralizedTime has no arithmetic in the openssl crate: go through its text form,
    // "YYYYMMDDHHMMSSZ" in DER, read as an Asn1Time.
    let Ok(now) = openssl::asn1::Asn1Time::days_from_now(0) else {
        return DEFAULT_CACHE_SECS;
    };
    let text = t.to_string();
    let Ok(then) = openssl::asn1::Asn1Time::from_str_x509(&text)
        .or_else(|_| openssl::asn1::Asn1Time::from_str(&text))
    else {
        return DEFAULT_CACHE_SECS;
    };
    match now.diff(&then) {
        Ok(d) => (i64::from(d.days) * 86_400 + i64::from(d.secs)).max(0) as u64,
        Err(_) => DEFAULT_CACHE_SECS,
    }
}

/// POSTs an OCSP request to an `http://host[:port][/path]` URL; the response body.
async fn post(url: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// responders are supported (RFC 6960 Appendix A)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/ocsp-request\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(body).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read until the body is complete (Content-Length) or the responder closes.
    let mut want: Option<usize> = None;
    loop {
        if let Some(w) = want {
            if buf.len() >= w {
                break;
            }
        }
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        if buf.len() + n > MAX_RESPONSE + 4096 {
            return Err(format!("response over {MAX_RESPONSE} octets"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if want.is_none() {
            if let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..split]).to_ascii_lowercase();
                want = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .filter(|&len| len <= MAX_RESPONSE)
                    .map(|len| split + 4 + len);
            }
        }
    }
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP header")?;
    let head = std::str::from_utf8(&buf[..split]).map_err(|_| "HTTP header not text")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("HTTP status {status:?}"));
    }
    let end = want.unwrap_or(buf.len()).min(buf.len());
    Ok(buf[split + 4..end].to_vec())
}

/// The issuer of `leaf` among `chain` and the store's certificates.
pub fn issuer_of(
    leaf: &X509Ref,
    chain: &openssl::stack::StackRef<X509>,
    store: &X509StoreRef,
) -> Option<X509> {
    chain
        .iter()
        .map(|c| c.to_owned())
        .chain(store.all_certificates())
        .find(|c| c.issued(leaf) == openssl::x509::X509VerifyResult::OK)
}
