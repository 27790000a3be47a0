//! The established stream ([`TlsStream`](super::TlsStream)): what was negotiated
//! ([`TlsInfo`]), key refresh by TLS 1.2 renegotiation or TLS 1.3 KeyUpdate after the configured
//! interval or byte count, and the grace time a peer has to complete it.

use super::*;

/// Empties this thread's OpenSSL error queue. OpenSSL requires it to be empty before a TLS I/O
/// call (`SSL_get_error` reads it to tell "would block" from a failure), and other OpenSSL
/// users on the same thread, such as a certificate or CRL check that failed and was handled,
/// may leave entries behind: a TLS read of an unrelated association on that thread would then
/// fail with their message.
pub(super) fn clear_error_queue() {
    drop(openssl::error::ErrorStack::get());
}

/// A future whose every poll starts with an empty OpenSSL error queue (the TLS handshake:
/// between its polls other tasks run on the thread).
pub(super) struct ClearErrors<F>(pub(super) F);

impl<F: std::future::Future + Unpin> std::future::Future for ClearErrors<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        clear_error_queue();
        Pin::new(&mut self.0).poll(cx)
    }
}

/// What was negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLSv1.2`.
    pub version: String,
    /// OpenSSL name of the suite.
    pub cipher: String,
    /// IANA code point of the suite, when known.
    pub iana: Option<u16>,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// Subject of the peer certificate.
    pub peer_subject: Option<String>,
}

impl TlsInfo {
    pub(super) fn of(ssl: &SslRef) -> TlsInfo {
        let cipher = ssl.current_cipher();
        TlsInfo {
            version: ssl.version_str().to_string(),
            cipher: cipher.map(|c| c.name().to_string()).unwrap_or_default(),
            iana: cipher.and_then(|c| u16::try_from(c.protocol_id_u64()).ok()),
            resumed: ssl.session_reused(),
            peer_subject: ssl.peer_certificate().map(|c| {
                c.subject_name()
                    .entries()
                    .map(|e| {
                        e.data()
                            .as_slice()
                            .iter()
                            .map(|&b| b as char)
                            .collect::<String>()
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            }),
        }
    }
}

pub(super) trait ProtocolId {
    fn protocol_id_u64(&self) -> u64;
}
impl ProtocolId for openssl::ssl::SslCipherRef {
    fn protocol_id_u64(&self) -> u64 {
        let id = self.protocol_id();
        u64::from(u16::from_be_bytes(id))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    pub(super) fn new(
        inner: SslStream<super::readbuf::ReleasingReader<S>>,
        ctx: &TlsContext,
        peer: String,
        findings: Findings,
    ) -> Self {
        if let Some(g) = guard_of(inner.ssl()) {
            g.established();
        }
        let interval = Duration::from_secs(ctx.cfg.renegotiation_interval_secs);
        let now = Instant::now();
        TlsStream {
            inner,
            peer,
            findings,
            sink: ctx.sink.clone(),
            stats: ctx.stats.clone(),
            seen_generation: ctx.generation.load(Ordering::Relaxed),
            generation: ctx.generation.clone(),
            notify: ctx.notify.clone(),
            gen_wait: waiter(&ctx.notify),
            interval,
            byte_limit: ctx.cfg.renegotiation_bytes,
            grace: Duration::from_secs(ctx.cfg.renegotiation_grace_secs),
            last_refresh: now,
            bytes: 0,
            pending: None,
            timer: Box::pin(tokio::time::sleep_until(now + interval)),
            refreshes: 0,
            failed: false,
            tls13_key_refresh: ctx.cfg.tls13_key_refresh,
            version: None,
            stash: Vec::new(),
            stash_pos: 0,
            read_waker: None,
        }
        .with_version()
    }

    pub(super) fn with_version(mut self) -> Self {
        self.version = self.inner.ssl().version2();
        self
    }

    /// What was negotiated (current state; changes after a renegotiation).
    pub fn info(&self) -> TlsInfo {
        TlsInfo::of(self.inner.ssl())
    }

    /// Key refreshes completed on this stream (renegotiations and key updates we started).
    pub fn refreshes(&self) -> u64 {
        self.refreshes
    }

    /// The OpenSSL session, for inspection.
    pub fn ssl(&self) -> &SslRef {
        self.inner.ssl()
    }

    /// Starts a key refresh now (it completes inside the next reads and writes).
    pub fn refresh_keys(&mut self) -> io::Result<()> {
        self.start_refresh()
    }

    pub(super) fn report(&self, kind: TlsFinding, detail: String) {
        self.sink
            .record(&kind.event(format!("{}: {detail}", self.peer), Some(self.peer.clone())));
    }

    pub(super) fn start_refresh(&mut self) -> io::Result<()> {
        let ssl = self.inner.ssl();
        if ssl.version2() == Some(SslVersion::TLS1_3) {
            // TLS 1.3 has no renegotiation: re-evaluate the peer's certificate (revocation after
            // a CRL update, expiry during a long association) against the current store here.
            if let Some((kind, detail)) = revalidate_peer(ssl) {
                self.failed = true;
                self.report(kind, format!("at key update: {detail}"));
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "peer certificate no longer valid",
                ));
            }
            if self.tls13_key_refresh == Tls13KeyRefresh::NewAssociation {
                self.failed = true;
                self.report(
                    TlsFinding::KeysRefreshed,
                    "TLS 1.3 key refresh by a new association: session ended".into(),
                );
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "TLS 1.3 key refresh: the session ends so the peer associates again",
                ));
            }
            ffi::key_update(ssl).map_err(io::Error::other)?;
            self.stats.key_updates.fetch_add(1, Ordering::Relaxed);
            self.refreshes += 1;
            self.last_refresh = Instant::now();
            self.bytes = 0;
            self.report(TlsFinding::KeysRefreshed, "TLS 1.3 KeyUpdate sent".into());
        } else {
            if !ffi::secure_renegotiation_support(ssl) {
                self.report(
                    TlsFinding::RenegotiationInsecure,
                    "cannot renegotiate: peer lacks RFC 5746".into(),
                );
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "peer does not support secure renegotiation",
                ));
            }
            if let Some(g) = guard_of(ssl) {
                g.ours(true);
            }
            ffi::renegotiate(ssl).map_err(io::Error::other)?;
            self.pending = Some(Instant::now());
        }
        Ok(())
    }

    /// A read or write failed: if a renegotiation we asked for was pending, the peer refused or
    /// broke it (OpenSSL turns a `no_renegotiation` answer into a fatal error): the session ends
    /// with "session renegotiation interval expired" (62351-3 §7).
    pub(super) fn failed_during_refresh(&mut self, e: &io::Error) {
        if self.pending.take().is_some() && !self.failed {
            self.failed = true;
            let found = take(&self.findings);
            for (k, d) in found
                .iter()
                .filter(|(k, _)| *k == TlsFinding::CrlUnavailable)
            {
                self.report(*k, d.clone());
            }
            // The certificate presented again may now be refused (revoked after a CRL update,
            // expired during a long association): report that reason.
            match found.iter().find(|(k, _)| *k != TlsFinding::CrlUnavailable) {
                Some((k, d)) => self.report(*k, format!("at renegotiation: {d}")),
                None => self.report(
                    TlsFinding::RenegotiationIntervalExpired,
                    format!("peer did not complete the renegotiation: {e}"),
                ),
            }
        }
    }

    /// True while a TLS 1.2 (re)negotiation is under way on this session.
    pub(super) fn in_handshake(&self) -> bool {
        let ssl = self.inner.ssl();
        ssl.version2() == Some(SslVersion::TLS1_2)
            && (ffi::in_init(ssl) || ffi::renegotiate_pending(ssl))
    }

    /// Before a write: while a TLS 1.2 renegotiation is under way (started by either side),
    /// drive it from the read side and keep any application data that arrives meanwhile for the
    /// next reads. OpenSSL accepts application data interleaved with a renegotiation only inside
    /// `SSL_read`; a write that drove the handshake would meet the peer's pipelined answers and
    /// fail with "unexpected record" (libiec61850 sends its HelloRequest right in front of
    /// application data). `Ready(Ok)` once no handshake is under way.
    pub(super) fn settle_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.in_handshake() {
            if self.stash.len() - self.stash_pos >= MAX_RENEGOTIATION_STASH {
                self.failed = true;
                self.report(
                    TlsFinding::RenegotiationIntervalExpired,
                    format!(
                        "more than {MAX_RENEGOTIATION_STASH} octets of application data during \
                         a renegotiation"
                    ),
                );
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "renegotiation not completed",
                )));
            }
            match self.read_into_stash(cx) {
                Poll::Ready(Ok(true)) => {}
                Poll::Ready(Ok(false)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed during a renegotiation",
                    )))
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The read may have completed the handshake without application data.
                Poll::Pending if !self.in_handshake() => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// One `SSL_read` into the stash; `Ok(false)` at end of stream. A reader waiting for data
    /// is woken when some arrives this way.
    pub(super) fn read_into_stash(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut tmp = [0u8; 8192];
        let mut rb = ReadBuf::new(&mut tmp);
        match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(())) => {
                if self.stash_pos > 0 && self.stash_pos == self.stash.len() {
                    self.stash.clear();
                    self.stash_pos = 0;
                }
                self.stash.extend_from_slice(rb.filled());
                if let Some(w) = self.read_waker.take() {
                    w.wake();
                }
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => {
                self.failed_during_refresh(&e);
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Drives the key refresh schedule; called before every read and write.
    pub(super) fn drive(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        clear_error_queue();
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "TLS session terminated",
            ));
        }
        let now = Instant::now();
        if let Some(started) = self.pending {
            if !ffi::renegotiate_pending(self.inner.ssl()) {
                self.pending = None;
                if let Some(g) = guard_of(self.inner.ssl()) {
                    g.ours(false);
                }
                self.refreshes += 1;
                self.last_refresh = now;
                self.bytes = 0;
                self.stats.renegotiations.fetch_add(1, Ordering::Relaxed);
                for (k, d) in take(&self.findings) {
                    self.report(k, d);
                }
                let info = TlsInfo::of(self.inner.ssl());
                if self.inner.ssl().version2() != self.version {
                    self.report(
                        TlsFinding::VersionChanged,
                        format!("renegotiation changed the version to {}", info.version),
                    );
                }
                self.report(
                    TlsFinding::KeysRefreshed,
                    format!("TLS 1.2 renegotiation completed ({})", info.cipher),
                );
            } else if now >= started + self.grace {
                self.failed = true;
                self.report(
                    TlsFinding::RenegotiationIntervalExpired,
                    format!("renegotiation not completed within {:?}", self.grace),
                );
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "session renegotiation interval expired",
                ));
            }
        }
        // Register for a forced refresh before reading the generation, so none is missed.
        for _ in 0..4 {
            if self.gen_wait.as_mut().poll(cx).is_pending() {
                break;
            }
            self.gen_wait = waiter(&self.notify);
        }
        let generation = self.generation.load(Ordering::Relaxed);
        let due = now >= self.last_refresh + self.interval
            || (self.byte_limit > 0 && self.bytes >= self.byte_limit)
            || generation != self.seen_generation;
        if self.pending.is_none() && due {
            self.seen_generation = generation;
            self.start_refresh()?;
            if self.inner.ssl().version2() != Some(SslVersion::TLS1_3) {
                // TLS 1.2: push the HelloRequest / ClientHello out from the read side, where
                // OpenSSL accepts the peer's application data still in flight.
                if let Poll::Ready(Err(e)) = self.settle_handshake(cx) {
                    return Err(e);
                }
            } else {
                // Push the KeyUpdate out now.
                match Pin::new(&mut self.inner).poll_do_handshake(cx) {
                    Poll::Ready(Err(e)) if e.io_error().is_none() => {
                        return Err(io::Error::other(e.to_string()))
                    }
                    Poll::Ready(Err(e)) => {
                        return Err(e.into_io_error().unwrap_or_else(io::Error::other))
                    }
                    _ => {}
                }
            }
        }
        let next = match self.pending {
            Some(started) => started + self.grace,
            None => self.last_refresh + self.interval,
        };
        if self.timer.deadline() != next {
            self.timer.as_mut().reset(next);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            // Deadline reached while polled: wake again at once to act on it.
            cx.waker().wake_by_ref();
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.drive(cx)?;
        if this.stash_pos < this.stash.len() {
            let n = buf.remaining().min(this.stash.len() - this.stash_pos);
            buf.put_slice(&this.stash[this.stash_pos..this.stash_pos + n]);
            this.stash_pos += n;
            if this.stash_pos == this.stash.len() {
                this.stash.clear();
                this.stash_pos = 0;
            }
            this.bytes = this.bytes.saturating_add(n as u64);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) => {
                this.bytes = this
                    .bytes
                    .saturating_add((buf.filled().len() - before) as u64)
            }
            Poll::Ready(Err(e)) => this.failed_during_refresh(e),
            Poll::Pending => this.read_waker = Some(cx.waker().clone()),
        }
        r
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.drive(cx)?;
        if this.settle_handshake(cx)?.is_pending() {
            return Poll::Pending;
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        match &r {
            Poll::Ready(Ok(n)) => this.bytes = this.bytes.saturating_add(*n as u64),
            Poll::Ready(Err(e)) => this.failed_during_refresh(e),
            Poll::Pending => {}
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        clear_error_queue();
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
