//! The refresh policy: forcing every stream of a context to refresh its keys, reloading CRLs and
//! rebuilding the context when revocation information changes, and the trigger streams watch.

use super::*;

impl TlsContext {
    /// Asks every established stream of this context to refresh its keys at its next read or
    /// write (used after a CRL update, §6.2 DECISION, so the peer's certificate is checked again).
    pub fn force_renegotiation(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    /// A handle that forces renegotiation like [`TlsContext::force_renegotiation`], usable after
    /// the context moved into a running server.
    pub fn renegotiation_trigger(&self) -> RenegotiationTrigger {
        RenegotiationTrigger(self.generation.clone(), self.notify.clone())
    }

    /// Re-reads the configured CRL files (§6.2 DECISION: at least every
    /// `crl_evaluation_period_secs`). New CRLs are added to the trust store (OpenSSL prefers the
    /// most recent CRL of an issuer); when any file changed, every established stream
    /// renegotiates, so the peer's certificate is validated again against the new CRL. An
    /// unreadable CRL raises the `TLS_CRL_UNAVAILABLE` warning and changes nothing. Returns
    /// whether a CRL changed.
    pub fn reload_crls(&self) -> bool {
        let mut changed = false;
        let mut digests = match self.crl_digests.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (i, path) in self.cfg.crl.iter().enumerate() {
            let crls = read_file(path, MAX_PEM_FILE).and_then(|b| {
                let digest = openssl::sha::sha256(&b);
                let list = parse_crls(&b).map_err(|reason| TlsError::File {
                    path: path.clone(),
                    reason,
                })?;
                Ok((digest, list))
            });
            match crls {
                Ok((digest, list)) => {
                    if digests.get(i).copied().flatten() == Some(digest) {
                        continue;
                    }
                    // Streams established on the current context check their peers against
                    // its store: give it the new CRLs too.
                    let ctx = self.current();
                    for crl in &list {
                        ffi::store_add_crl(ctx.cert_store(), crl);
                    }
                    if let Some(d) = digests.get_mut(i) {
                        *d = Some(digest);
                    }
                    changed = true;
                }
                Err(e) => self.sink.record(&TlsFinding::CrlUnavailable.event(
                    format!("CRL re-evaluation: {e}; peers stay connected"),
                    None,
                )),
            }
        }
        if changed {
            // New connections get a rebuilt context: an empty session cache and fresh ticket
            // keys, so no session established before the change can be resumed (§6.2).
            self.rebuild();
            self.force_renegotiation();
        }
        changed
    }

    /// Replaces the OpenSSL context by one built again from the configuration (files read
    /// again): an empty session cache and fresh TLS ticket keys. Established streams keep
    /// theirs. A failure keeps the current context and raises `TLS_CRL_UNAVAILABLE`.
    pub fn rebuild(&self) -> bool {
        match build_ssl_context(&self.cfg, self.role, self.sink.as_ref()) {
            Ok((ctx, _)) => {
                match self.ctx.write() {
                    Ok(mut g) => *g = ctx,
                    Err(p) => *p.into_inner() = ctx,
                }
                true
            }
            Err(e) => {
                self.sink.record(&TlsFinding::CrlUnavailable.event(
                    format!("TLS context not rebuilt, the previous one stays in use: {e}"),
                    None,
                ));
                false
            }
        }
    }
}

/// Forces every established stream of one context to refresh its keys (after a CRL update,
/// §6.2 DECISION, so that the peer's certificate is validated again).
#[derive(Debug, Clone)]
pub struct RenegotiationTrigger(Arc<AtomicU64>, Arc<tokio::sync::Notify>);

impl RenegotiationTrigger {
    /// Asks every stream to renegotiate (TLS 1.2) or update its keys (TLS 1.3) now; idle streams
    /// are woken.
    pub fn force(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        self.1.notify_waiters();
    }
}

pub(super) type Waiter = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(super) fn waiter(n: &Arc<tokio::sync::Notify>) -> Waiter {
    let n = n.clone();
    Box::pin(async move { n.notified().await })
}
