//! Renegotiations the client starts (TLS 1.2, server side): each one is seen in the ClientHello
//! callback, where a hello that arrives after the first handshake completed, and that does not
//! answer a renegotiation we asked for, is the client's own. [`RenegGuard`] counts it, raises
//! its event, and lets it through or refuses it (`tls.client_renegotiation`,
//! `tls.max_client_renegotiations_per_min`); a refused one fails the handshake, which ends the
//! session.

use super::*;

/// The per-session state the ClientHello callback consults (kept on the `Ssl` as ex data).
pub(super) struct RenegGuard {
    policy: ClientRenegotiation,
    per_min: u32,
    peer: String,
    sink: Arc<dyn SecurityEventSink>,
    stats: Arc<TlsStats>,
    state: Mutex<GuardState>,
}

struct GuardState {
    /// The first handshake completed.
    established: bool,
    /// A renegotiation we started is under way (its ClientHello is not the client's own).
    ours: bool,
    /// Token bucket: renegotiations still allowed, and when it was last refilled.
    tokens: f64,
    refilled: std::time::Instant,
}

impl RenegGuard {
    pub(super) fn new(ctx: &TlsContext, peer: &str) -> Arc<Self> {
        let per_min = ctx.cfg.max_client_renegotiations_per_min.max(1);
        Arc::new(RenegGuard {
            policy: ctx.cfg.client_renegotiation,
            per_min,
            peer: peer.to_string(),
            sink: ctx.sink.clone(),
            stats: ctx.stats.clone(),
            state: Mutex::new(GuardState {
                established: false,
                ours: false,
                tokens: f64::from(per_min),
                refilled: std::time::Instant::now(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first handshake completed: a later ClientHello is a renegotiation.
    pub(super) fn established(&self) {
        self.lock().established = true;
    }

    /// We start (true) or finished (false) a renegotiation of our own.
    pub(super) fn ours(&self, yes: bool) {
        self.lock().ours = yes;
    }

    /// A ClientHello arrived: whether its handshake may go on. Counts, and reports, a
    /// renegotiation the client started.
    pub(super) fn admit(&self, now: std::time::Instant) -> bool {
        let mut st = self.lock();
        if !st.established || st.ours {
            return true;
        }
        let rate = f64::from(self.per_min);
        let elapsed = now.saturating_duration_since(st.refilled).as_secs_f64();
        st.tokens = (st.tokens + elapsed * rate / 60.0).min(rate);
        st.refilled = now;
        let refused = match self.policy {
            ClientRenegotiation::Refuse => Some(
                "renegotiation started by the client refused (tls.client_renegotiation = \
                 \"refuse\"): session ended"
                    .to_string(),
            ),
            ClientRenegotiation::Limit if st.tokens < 1.0 => Some(format!(
                "more than {} renegotiations started by the client in a minute \
                 (tls.max_client_renegotiations_per_min): session ended",
                self.per_min
            )),
            ClientRenegotiation::Limit => {
                st.tokens -= 1.0;
                None
            }
        };
        drop(st);
        let (kind, detail, ok) = match refused {
            Some(d) => {
                self.stats
                    .client_renegotiations_refused
                    .fetch_add(1, Ordering::Relaxed);
                (TlsFinding::ClientRenegotiationRefused, d, false)
            }
            None => {
                self.stats
                    .client_renegotiations
                    .fetch_add(1, Ordering::Relaxed);
                (
                    TlsFinding::ClientRenegotiation,
                    "renegotiation started by the client".to_string(),
                    true,
                )
            }
        };
        self.sink
            .record(&kind.event(format!("{}: {detail}", self.peer), Some(self.peer.clone())));
        ok
    }
}

/// The ex-data slot of the [`RenegGuard`] of a server session.
pub(super) fn guard_index() -> Option<openssl::ex_data::Index<Ssl, Arc<RenegGuard>>> {
    static IDX: OnceLock<Option<openssl::ex_data::Index<Ssl, Arc<RenegGuard>>>> = OnceLock::new();
    *IDX.get_or_init(|| Ssl::new_ex_index().ok())
}

/// The guard of `ssl`, if it is a server session.
pub(super) fn guard_of(ssl: &SslRef) -> Option<&Arc<RenegGuard>> {
    guard_index().and_then(|i| ssl.ex_data(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmms_pki::event::MemorySink;

    fn guard(policy: ClientRenegotiation, per_min: u32) -> (Arc<RenegGuard>, Arc<MemorySink>) {
        let sink = Arc::new(MemorySink::new());
        let cfg = TlsConfig {
            client_renegotiation: policy,
            max_client_renegotiations_per_min: per_min,
            ..TlsConfig::default()
        };
        let ctx_less = RenegGuard {
            policy: cfg.client_renegotiation,
            per_min,
            peer: "127.0.0.2:1".into(),
            sink: sink.clone(),
            stats: Arc::new(TlsStats::default()),
            state: Mutex::new(GuardState {
                established: false,
                ours: false,
                tokens: f64::from(per_min),
                refilled: std::time::Instant::now(),
            }),
        };
        (Arc::new(ctx_less), sink)
    }

    #[test]
    fn the_first_handshake_and_our_own_renegotiations_are_not_counted() {
        let (g, sink) = guard(ClientRenegotiation::Refuse, 1);
        let t = std::time::Instant::now();
        assert!(g.admit(t));
        g.established();
        g.ours(true);
        assert!(g.admit(t) && g.admit(t));
        g.ours(false);
        assert!(sink.events().is_empty());
        assert!(!g.admit(t));
        let ev = sink.events();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].mnemonic, "TLS_CLIENT_RENEG_REFUSED");
        assert_eq!(
            g.stats
                .client_renegotiations_refused
                .load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn limit_lets_the_rate_through_and_refuses_past_it() {
        let (g, sink) = guard(ClientRenegotiation::Limit, 3);
        g.established();
        let t = std::time::Instant::now();
        let admitted: Vec<bool> = (0..5).map(|_| g.admit(t)).collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        // A third of a minute later one more token (3 a minute).
        assert!(g.admit(t + Duration::from_secs(21)));
        assert!(!g.admit(t + Duration::from_secs(21)));
        let names: Vec<&str> = sink.events().iter().map(|e| e.mnemonic).collect();
        assert_eq!(
            names.iter().filter(|m| **m == "TLS_CLIENT_RENEG").count(),
            4
        );
        assert_eq!(g.stats.client_renegotiations.load(Ordering::Relaxed), 4);
        assert_eq!(
            g.stats
                .client_renegotiations_refused
                .load(Ordering::Relaxed),
            3
        );
    }
}
