//! Building the OpenSSL context of a [`TlsContext`](super::TlsContext) from the configuration
//! (suites, versions, trust anchors, CRLs, callbacks), and starting each connection's handshake.

use super::*;

pub(super) fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, TlsError> {
    let fail = |reason: String| TlsError::File {
        path: path.to_owned(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if len > max {
        return Err(fail(format!("{len} octets is more than {max}")));
    }
    std::fs::read(path).map_err(|e| fail(e.to_string()))
}

/// Octets of the buffer through which OpenSSL reads the socket.
pub(super) const READ_BUFFER: usize = 8 * 1024;

/// Largest PEM file read for certificates, keys and trust anchors.
pub(super) const MAX_PEM_FILE: u64 = 4 * 1024 * 1024;

impl TlsContext {
    /// A server context (accepts on port 3782, requires a client certificate).
    pub fn server(cfg: &TlsConfig, sink: Arc<dyn SecurityEventSink>) -> Result<Self, TlsError> {
        Self::build(cfg, Role::Server, sink)
    }

    /// A client context (presents our certificate, verifies the server's chain).
    pub fn client(cfg: &TlsConfig, sink: Arc<dyn SecurityEventSink>) -> Result<Self, TlsError> {
        Self::build(cfg, Role::Client, sink)
    }

    pub(super) fn build(
        cfg: &TlsConfig,
        role: Role,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Self, TlsError> {
        let mut enabled = cfg.clone();
        enabled.enabled = true;
        enabled.validate()?;
        let (ctx, crl_digests) = build_ssl_context(cfg, role, sink.as_ref())?;
        Ok(TlsContext {
            ctx: std::sync::RwLock::new(ctx),
            role,
            cfg: cfg.clone(),
            sink,
            stats: Arc::new(TlsStats::default()),
            generation: Arc::new(AtomicU64::new(0)),
            notify: Arc::new(tokio::sync::Notify::new()),
            crl_digests: Mutex::new(crl_digests),
            ocsp: (cfg.ocsp_check != crate::ocsp::OcspCheck::Off).then(|| {
                crate::ocsp::OcspChecker::new(
                    cfg.ocsp_responder.clone(),
                    Duration::from_secs(cfg.ocsp_timeout_secs.clamp(1, 60)),
                )
            }),
        })
    }

    /// The current OpenSSL context.
    pub(super) fn current(&self) -> SslContext {
        match self.ctx.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Builds the OpenSSL context of `cfg` for `role`; also returns the digests of the CRL files
/// as loaded.
#[allow(clippy::type_complexity)]
pub(super) fn build_ssl_context(
    cfg: &TlsConfig,
    role: Role,
    sink: &dyn SecurityEventSink,
) -> Result<(SslContext, Vec<Option<[u8; 32]>>), TlsError> {
    {
        let method = match role {
            Role::Server => SslMethod::tls_server(),
            Role::Client => SslMethod::tls_client(),
        };
        let mut b = SslContextBuilder::new(method)?;
        // Read whole TLS records (and any that follow) in one system call rather than the
        // 5-octet header and the body in two: MMS PDUs are small, so this halves the reads.
        // (`auto` turns it off again on TLS 1.2 client sessions, see `TlsContext::new_ssl`.)
        b.set_read_ahead(cfg.read_ahead != ReadAhead::Off);
        // An idle session gives its record buffers back (about 34 KiB each): MMS associations
        // are long and mostly quiet (issue 17: memory per idle association).
        b.set_mode(openssl::ssl::SslMode::RELEASE_BUFFERS);
        // §6.2 / 62351-3: TLS 1.2 mandatory, TLS 1.3 optional, nothing older.
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_max_proto_version(Some(if cfg.tls13 {
            SslVersion::TLS1_3
        } else {
            SslVersion::TLS1_2
        }))?;
        b.set_security_level(OPENSSL_SECURITY_LEVEL);
        b.set_cipher_list(&cfg.cipher_list()?)?;
        if cfg.tls13 {
            b.set_ciphersuites(TLS13_SUITES)?;
        }
        // Compression off; no legacy unsafe renegotiation.
        // A renegotiation is always a full handshake: new master secret, and the peer's
        // certificate validated again (revocation re-evaluated, §6.2 DECISION).
        let mut opts = SslOptions::NO_COMPRESSION
            | SslOptions::CIPHER_SERVER_PREFERENCE
            | SslOptions::NO_SESSION_RESUMPTION_ON_RENEGOTIATION;
        if role == Role::Server {
            // OpenSSL 3 answers a client's renegotiation with a no_renegotiation warning
            // unless this is set; we let it reach the ClientHello callback, where
            // `RenegGuard` counts it, reports it and applies `tls.client_renegotiation`.
            opts |= ffi::OP_ALLOW_CLIENT_RENEGOTIATION;
        }
        b.set_options(opts);
        b.clear_options(
            SslOptions::ALLOW_UNSAFE_LEGACY_RENEGOTIATION | SslOptions::NO_RENEGOTIATION,
        );
        ffi::set_dh_auto(&mut b);

        // Our certificate (chain) and key.
        let cert = cfg
            .cert
            .as_deref()
            .ok_or_else(|| cfg_err("tls.cert", "missing"))?;
        let key = cfg
            .key
            .as_deref()
            .ok_or_else(|| cfg_err("tls.key", "missing"))?;
        let pem = read_file(cert, MAX_PEM_FILE)?;
        let mut chain = X509::stack_from_pem(&pem).map_err(|e| TlsError::File {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
        if chain.is_empty() {
            return Err(cfg_err("tls.cert", "no certificate in the file"));
        }
        let leaf = chain.remove(0);
        b.set_certificate(&leaf)?;
        for c in chain {
            b.add_extra_chain_cert(c)?;
        }
        let key_pem = read_file(key, MAX_PEM_FILE)?;
        let pkey =
            openssl::pkey::PKey::private_key_from_pem(&key_pem).map_err(|e| TlsError::File {
                path: key.to_owned(),
                reason: e.to_string(),
            })?;
        b.set_private_key(&pkey)?;
        b.check_private_key()?;

        // Trust anchors (several) and CRLs.
        let mut store = X509StoreBuilder::new()?;
        let mut anchors = 0usize;
        for path in &cfg.ca {
            let pem = read_file(path, MAX_PEM_FILE)?;
            let certs = X509::stack_from_pem(&pem).map_err(|e| TlsError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            for c in certs {
                anchors += 1;
                if anchors > MAX_TRUST_ANCHORS {
                    return Err(cfg_err("tls.ca", format!("more than {MAX_TRUST_ANCHORS}")));
                }
                store.add_cert(c)?;
            }
        }
        if anchors == 0 {
            return Err(cfg_err("tls.ca", "no CA certificate found"));
        }
        let mut crl_digests = Vec::new();
        if !cfg.crl.is_empty() {
            let lookup = store.add_lookup(X509Lookup::file())?;
            for path in &cfg.crl {
                crl_digests.push(
                    read_file(path, MAX_PEM_FILE)
                        .ok()
                        .map(|b| openssl::sha::sha256(&b)),
                );
                let ok = path.is_file()
                    && lookup
                        .load_crl_file(path, SslFiletype::PEM)
                        .map(|n| n > 0)
                        .unwrap_or(false);
                if !ok {
                    // §6.2.8: unavailable revocation information is a warning, never a refusal.
                    sink.record(&TlsFinding::CrlUnavailable.event(
                        format!(
                            "cannot load CRL {}; peers are accepted with a warning",
                            path.display()
                        ),
                        None,
                    ));
                }
            }
            store.set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)?;
        }
        b.set_cert_store(store.build());
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        b.set_verify_depth(8);
        // Bound the peer's whole Certificate message: a few certificates of the maximal size.
        ffi::set_max_cert_list(&mut b, cfg.max_cert_size.saturating_mul(8));

        // Resumption (§6.2 DECISION: lifetime below the renegotiation interval).
        b.set_session_id_context(b"secmms-rfc1006-tls")?;
        ffi::set_session_timeout(&mut b, cfg.resumption_lifetime_secs);
        // Bounded: a client that renegotiates or reconnects in a loop cannot grow it.
        b.set_session_cache_size(i32::try_from(cfg.session_cache_size).unwrap_or(i32::MAX));
        b.set_session_cache_mode(match role {
            Role::Server => SslSessionCacheMode::SERVER,
            Role::Client => SslSessionCacheMode::CLIENT,
        });

        if role == Role::Server {
            ffi::set_client_hello_callback(&mut b, client_hello_policy);
            if let Some(path) = &cfg.ocsp_staple {
                match read_file(path, MAX_PEM_FILE) {
                    Ok(der) => {
                        b.set_status_callback(move |ssl| {
                            ssl.set_ocsp_status(&der)?;
                            Ok(true)
                        })?;
                    }
                    Err(e) => sink.record(
                        &TlsFinding::CrlUnavailable
                            .event(format!("OCSP response not stapled: {e}"), None),
                    ),
                }
            }
        } else if cfg.ocsp_request {
            b.set_status_callback(check_stapled_ocsp)?;
        }
        if role == Role::Server {
            // §6.2 DECISION: no TLS 1.3 tickets unless configured (see `tls13_tickets`).
            b.set_num_tickets(cfg.tls13_tickets)?;
        }
        if let Some(path) = &cfg.keylog_file {
            let file = open_keylog(path).map_err(|e| TlsError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let file = Mutex::new(file);
            b.set_keylog_callback(move |_, line| {
                use std::io::Write;
                if let Ok(mut f) = file.lock() {
                    let _ = writeln!(f, "{line}");
                }
            });
        }
        Ok((b.build(), crl_digests))
    }
}

/// Opens (creating or appending to) a TLS key log readable by its owner only (mode 0600).
pub(crate) fn open_keylog(path: &Path) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        let f = o.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(f)
    }
    #[cfg(not(unix))]
    {
        o.open(path)
    }
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
pub(super) fn host_of(peer: &str) -> &str {
    if let Some(rest) = peer.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match peer.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h,
        _ => peer,
    }
}

impl TlsContext {
    /// The counters of this context.
    pub fn stats(&self) -> Arc<TlsStats> {
        self.stats.clone()
    }

    /// Most sessions kept for resumption, as OpenSSL holds it (`tls.session_cache_size`).
    pub fn session_cache_limit(&self) -> i64 {
        self.ctx
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .session_cache_size()
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &TlsConfig {
        &self.cfg
    }
}

impl TlsContext {
    pub(super) fn report(&self, kind: TlsFinding, detail: String, peer: &str) {
        self.sink
            .record(&kind.event(format!("{peer}: {detail}"), Some(peer.to_string())));
    }

    pub(super) fn new_ssl(&self, findings: &Findings, peer: &str) -> Result<Ssl, TlsError> {
        let mut ssl = Ssl::new(&self.current())?;
        if let Some(idx) = findings_index() {
            ssl.set_ex_data(idx, findings.clone());
        }
        let f = findings.clone();
        let max = self.cfg.max_cert_size;
        let allowed: Arc<Vec<[u8; 32]>> = Arc::new(
            self.cfg
                .allowed_peer_fingerprints
                .iter()
                .filter_map(|s| parse_fingerprint(s))
                .collect(),
        );
        ssl.set_verify_callback(
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            move |ok, ctx| {
                verify_certificate(ok, ctx, max, &f)
                    && (ctx.error_depth() != 0 || check_allowed(ctx, &allowed, &f))
            },
        );
        if self.role == Role::Server {
            if let Some(idx) = guard_index() {
                ssl.set_ex_data(idx, RenegGuard::new(self, peer));
            }
        }
        if self.role == Role::Client {
            if self.cfg.read_ahead == ReadAhead::Auto {
                // A client may be sent a HelloRequest (TLS 1.2) right in front of application
                // data: OpenSSL must meet the records one at a time (the buffer below it keeps
                // the socket reads large).
                ffi::set_read_ahead(&ssl, false);
            }
            if self.cfg.ocsp_request {
                ssl.set_status_type(openssl::ssl::StatusType::OCSP)?;
            }
            // The server's identity: --server-name, else the host we connect to.
            let expected = match &self.cfg.server_name {
                Some(n) => Some(n.as_str()),
                None if self.cfg.insecure_skip_server_check => None,
                None => Some(host_of(peer)),
            };
            match expected.map(|h| (h, h.parse::<std::net::IpAddr>())) {
                Some((_, Ok(ip))) => ssl.param_mut().set_ip(ip)?,
                Some((name, Err(_))) => {
                    ssl.set_hostname(name)?;
                    ssl.param_mut().set_host(name)?;
                }
                None => {}
            }
        }
        Ok(ssl)
    }

    /// Runs the server handshake on an accepted connection.
    pub async fn accept<S>(&self, stream: S, peer: SocketAddr) -> Result<TlsStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.handshake(stream, peer.to_string()).await
    }

    /// Runs the client handshake on a connected stream. `peer` is the address connected to
    /// (`host:port`, `[v6]:port` or a bare host): it names the session in events, and its host
    /// is the identity the server's certificate must carry (an IP address against the IP SANs,
    /// a name against the DNS SANs and sent as SNI) unless `server_name` overrides it or
    /// `insecure_skip_server_check` is set.
    pub async fn connect<S>(&self, stream: S, peer: &str) -> Result<TlsStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.handshake(stream, peer.to_string()).await
    }

    async fn handshake<S>(&self, stream: S, peer: String) -> Result<TlsStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let findings: Findings = Arc::default();
        let ssl = self.new_ssl(&findings, &peer)?;
        if self.role == Role::Client
            && self.cfg.insecure_skip_server_check
            && self.cfg.server_name.is_none()
        {
            self.report(
                TlsFinding::ServerCheckSkipped,
                "the server's identity is not checked (insecure_skip_server_check): any holder \
                 of a certificate from the trust anchors can pose as this server"
                    .into(),
                &peer,
            );
        }
        // OpenSSL reads through a buffer of ours: with OpenSSL's read-ahead off it takes one
        // record at a time (see `ReadAhead::Auto`) while the socket is still read in large chunks.
        let mut s = SslStream::new(
            ssl,
            super::readbuf::ReleasingReader::new(READ_BUFFER, stream),
        )?;
        let timeout = Duration::from_secs(self.cfg.handshake_timeout_secs.max(1));
        let role = self.role;
        let r = tokio::time::timeout(
            timeout,
            super::stream::ClearErrors(std::future::poll_fn(|cx| match role {
                Role::Server => Pin::new(&mut s).poll_accept(cx),
                Role::Client => Pin::new(&mut s).poll_connect(cx),
            })),
        )
        .await;
        let found = take(&findings);
        // Warnings (stale CRL) are reported whether or not the handshake succeeded.
        for (k, d) in found
            .iter()
            .filter(|(k, _)| *k == TlsFinding::CrlUnavailable)
        {
            self.report(*k, d.clone(), &peer);
        }
        let failure = match r {
            Err(_) => Some((
                TlsFinding::HandshakeFailed,
                format!("no handshake within {timeout:?}"),
            )),
            Ok(Err(e)) => Some(classify(&found, &e, s.ssl())),
            Ok(Ok(())) => None,
        };
        if let Some((kind, detail)) = failure {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            self.report(kind, detail.clone(), &peer);
            return Err(TlsError::Handshake {
                mnemonic: kind.id().1,
                detail,
            });
        }
        let ssl = s.ssl();
        let tls12 = ssl.version2() == Some(SslVersion::TLS1_2);
        if tls12 && !ffi::secure_renegotiation_support(ssl) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            let detail = "peer does not support RFC 5746 secure renegotiation".to_string();
            self.report(TlsFinding::RenegotiationInsecure, detail.clone(), &peer);
            return Err(TlsError::Handshake {
                mnemonic: TlsFinding::RenegotiationInsecure.id().1,
                detail,
            });
        }
        if ssl.session_reused() {
            // §6.2: a resumed session skips the certificate exchange; check the peer's
            // certificate of the session against today's trust store and CRLs.
            if let Some((kind, detail)) = revalidate_peer(ssl) {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                let detail = format!("at session resumption: {detail}");
                self.report(kind, detail.clone(), &peer);
                return Err(TlsError::Handshake {
                    mnemonic: kind.id().1,
                    detail,
                });
            }
        }
        if let Some(refusal) = self.check_ocsp(ssl, &peer).await {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(refusal);
        }
        let ssl = s.ssl();
        let tls13 = ssl.version2() == Some(SslVersion::TLS1_3);
        // Alarms the ClientHello callback prepared (a session of another version offered).
        for (k, d) in found
            .iter()
            .filter(|(k, _)| *k == TlsFinding::VersionChanged)
        {
            let offered_tls12 = d.starts_with("a TLS 1.2 session");
            if offered_tls12 == tls13 {
                self.report(*k, d.clone(), &peer);
            }
        }
        if let Some(path) = &self.cfg.keylog_file {
            self.report(
                TlsFinding::KeylogActive,
                format!(
                    "the secrets of this session are written to {} (anyone who reads it can \
                     decrypt the traffic)",
                    path.display()
                ),
                &peer,
            );
        }
        self.stats.handshakes.fetch_add(1, Ordering::Relaxed);
        if ssl.session_reused() {
            self.stats.resumed.fetch_add(1, Ordering::Relaxed);
        }
        let info = TlsInfo::of(ssl);
        self.report(
            TlsFinding::Established,
            format!(
                "{} {}{}",
                info.version,
                info.cipher,
                if info.resumed { " (resumed)" } else { "" }
            ),
            &peer,
        );
        Ok(TlsStream::new(s, self, peer, findings))
    }
}

/// Parses every CRL of a PEM file.
pub(super) fn parse_crls(pem: &[u8]) -> Result<Vec<openssl::x509::X509Crl>, String> {
    const BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(at) = rest.windows(BEGIN.len()).position(|w| w == BEGIN) {
        let block = &rest[at..];
        let next = block[BEGIN.len()..]
            .windows(BEGIN.len())
            .position(|w| w == BEGIN)
            .map(|n| n + BEGIN.len())
            .unwrap_or(block.len());
        out.push(openssl::x509::X509Crl::from_pem(&block[..next]).map_err(|e| e.to_string())?);
        rest = &block[next..];
        if out.len() > 64 {
            return Err("more than 64 CRLs in one file".into());
        }
    }
    if out.is_empty() {
        return Err("no CRL in the file".into());
    }
    Ok(out)
}
