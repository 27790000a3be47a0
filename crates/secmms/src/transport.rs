//! Byte-stream transports under RFC 1006: plain TCP here; TLS (clause 6) is
//! [`crate::tls::TlsStream`] over the same TCP stream, another [`Stream`] implementation.

use std::future::Future;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Any byte stream an association can run on (TCP, TLS over TCP, an in-memory pipe in tests).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A boxed stream.
pub type BoxStream = Box<dyn Stream>;

/// TCP settings for every RFC 1006 connection (IEC 62351-4 Annex H: keep-alive on every connection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    /// Enable TCP keep-alive (RFC 1122). Annex H DECISION: on by default.
    pub keepalive: bool,
    /// Idle time before the first keep-alive probe, seconds (Annex H DECISION: 60).
    pub keepalive_idle_secs: u64,
    /// Interval between probes, seconds (Annex H DECISION: 10).
    pub keepalive_interval_secs: u64,
    /// Unanswered probes before the connection is declared dead (Annex H DECISION: 6).
    pub keepalive_count: u32,
    /// Disable Nagle's algorithm (MMS is request/response; latency matters more than packing).
    pub nodelay: bool,
    /// Time allowed for the TCP connection to be established, seconds.
    pub connect_timeout_secs: u64,
}

impl TcpConfig {
    /// Annex H DECISION: keep-alive idle time.
    pub const DEFAULT_KEEPALIVE_IDLE_SECS: u64 = 60;
    /// Annex H DECISION: keep-alive probe interval.
    pub const DEFAULT_KEEPALIVE_INTERVAL_SECS: u64 = 10;
    /// Annex H DECISION: keep-alive probe count.
    pub const DEFAULT_KEEPALIVE_COUNT: u32 = 6;

    /// Checks every value against its range ([`crate::settings::bounds`]).
    pub fn validate(&self) -> Result<(), crate::settings::SettingError> {
        use crate::settings::{bounds::*, check_range};
        check_range(
            "tcp.keepalive_idle_secs",
            self.keepalive_idle_secs,
            KEEPALIVE_SECS,
        )?;
        check_range(
            "tcp.keepalive_interval_secs",
            self.keepalive_interval_secs,
            KEEPALIVE_SECS,
        )?;
        check_range(
            "tcp.keepalive_count",
            u64::from(self.keepalive_count),
            KEEPALIVE_COUNT,
        )?;
        check_range(
            "tcp.connect_timeout_secs",
            self.connect_timeout_secs,
            TIMEOUT_SECS,
        )
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            keepalive: true,
            keepalive_idle_secs: Self::DEFAULT_KEEPALIVE_IDLE_SECS,
            keepalive_interval_secs: Self::DEFAULT_KEEPALIVE_INTERVAL_SECS,
            keepalive_count: Self::DEFAULT_KEEPALIVE_COUNT,
            nodelay: true,
            connect_timeout_secs: 10,
        }
    }
}

/// Applies keep-alive and no-delay settings to a connected socket.
pub fn configure_socket(stream: &TcpStream, cfg: &TcpConfig) -> io::Result<()> {
    stream.set_nodelay(cfg.nodelay)?;
    let sock = socket2::SockRef::from(stream);
    if cfg.keepalive {
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(cfg.keepalive_idle_secs.max(1)))
            .with_interval(Duration::from_secs(cfg.keepalive_interval_secs.max(1)))
            .with_retries(cfg.keepalive_count.max(1));
        sock.set_tcp_keepalive(&ka)?;
    } else {
        sock.set_keepalive(false)?;
    }
    Ok(())
}

/// Opens a TCP connection with the configured timeout and socket options.
pub async fn connect_tcp(addr: &str, cfg: &TcpConfig) -> io::Result<TcpStream> {
    let fut = TcpStream::connect(addr);
    let stream = tokio::time::timeout(Duration::from_secs(cfg.connect_timeout_secs.max(1)), fut)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {addr} timed out"),
            )
        })??;
    configure_socket(&stream, cfg)?;
    Ok(stream)
}

/// Binds a TCP listener.
pub async fn listen_tcp(addr: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The local address of a listener, for logs and for tests that bind port 0.
pub fn local_addr(l: &TcpListener) -> io::Result<SocketAddr> {
    l.local_addr()
}

/// When a [`PollingTcpStream`] keeps polling after it has written: consulted each time a write
/// arms the window, so a server can poll while it has CPUs to spare and stop when it has not.
pub type BusyPollPolicy = Arc<dyn Fn() -> Duration + Send + Sync>;

/// A TCP stream that, after a write, keeps polling its socket for the next input during a short
/// window instead of letting the thread sleep at once.
///
/// A request/response peer that has just been answered often sends its next request within a
/// few tens of microseconds. A thread that goes to sleep in that gap has to be woken by the
/// kernel when the request arrives, and on virtual machines whose idle CPUs halt at once that
/// wake-up is most of a round trip's cost (docs/PERFORMANCE.md). Inside the window a read that
/// finds nothing yields to the runtime (other tasks run, the I/O driver is polled without
/// blocking) and tries again; after it, the stream waits for readiness like any tokio socket.
///
/// Polling costs CPU time, so it is kept for peers that use it:
/// - only writes open the window: a peer that sends without being answered gets no polling;
/// - a write opens it only if the first input after the previous write came within that
///   write's window: a peer that answered slowly (a client polling once a second) is not polled
///   for until it is quick again, which is seen on the next input even without polling;
/// - reads inside the window spend the task's cooperative budget like any tokio read;
/// - the window's length comes from a [`BusyPollPolicy`], asked at each write; zero disables it.
pub struct PollingTcpStream {
    tcp: TcpStream,
    policy: BusyPollPolicy,
    /// Start and length of the current window, set by a write, cleared when it runs out.
    armed: Option<(Instant, Duration)>,
    /// Time and window of the last write, until the first input after it is seen.
    last_write: Option<(Instant, Duration)>,
    /// The first input after the previous write came within its window (true at the start).
    quick: bool,
    /// Reads served by polling (inside a window).
    polled_reads: u64,
}

impl PollingTcpStream {
    /// Wraps a connected stream.
    pub fn new(tcp: TcpStream, policy: BusyPollPolicy) -> Self {
        PollingTcpStream {
            tcp,
            policy,
            armed: None,
            last_write: None,
            quick: true,
            polled_reads: 0,
        }
    }

    /// The underlying stream (for addresses and socket options).
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// Reads served by polling inside a window so far.
    pub fn polled_reads(&self) -> u64 {
        self.polled_reads
    }

    /// True while a write's polling window is open.
    fn polling(&mut self) -> bool {
        match self.armed {
            Some((start, len)) if start.elapsed() < len => true,
            Some(_) => {
                self.armed = None;
                false
            }
            None => false,
        }
    }

    /// Input arrived: judge how quickly it followed our last write.
    fn input_seen(&mut self) {
        if let Some((at, window)) = self.last_write.take() {
            self.quick = at.elapsed() <= window;
        }
    }
}

impl AsyncRead for PollingTcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.polling() {
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            // Ask the socket itself: tokio's readiness only changes when the I/O driver has
            // seen an event, and not sleeping is the point of the window.
            let sock = socket2::SockRef::from(&self.tcp);
            match (&*sock).read(buf.initialize_unfilled()) {
                Ok(n) => {
                    coop.made_progress();
                    buf.advance(n);
                    self.polled_reads += 1;
                    self.input_seen();
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Be polled again after the other ready tasks and a non-blocking look at
                    // the I/O driver: a yield, not a sleep.
                    let mut again = std::pin::pin!(tokio::task::yield_now());
                    let _ = again.as_mut().poll(cx);
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.input_seen();
        }
        r
    }
}

impl AsyncWrite for PollingTcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, data);
        if let Poll::Ready(Ok(_)) = r {
            let window = (self.policy)();
            let now = Instant::now();
            self.last_write = Some((now, window));
            self.armed = (!window.is_zero() && self.quick).then_some((now, window));
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(window: Duration) -> (PollingTcpStream, TcpStream) {
        let l = listen_tcp("127.0.0.1:0").await.unwrap();
        let addr = local_addr(&l).unwrap().to_string();
        let cfg = TcpConfig::default();
        let (c, s) = tokio::join!(connect_tcp(&addr, &cfg), l.accept());
        let policy: BusyPollPolicy = Arc::new(move || window);
        (PollingTcpStream::new(s.unwrap().0, policy), c.unwrap())
    }

    #[tokio::test]
    async fn a_write_opens_the_polling_window_and_it_closes() {
        let (mut s, mut c) = pair(Duration::from_millis(50)).await;
        assert!(!s.polling(), "no window before a write");
        s.write_all(b"answer").await.unwrap();
        assert!(s.polling(), "a write opens the window");
        let mut buf = [0u8; 6];
        c.read_exact(&mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!s.polling(), "the window closes");
        // After it, input is read through readiness, not by polling.
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.write_all(b"late").await.unwrap();
            c
        });
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"late");
        assert_eq!(s.polled_reads(), 0);
        let mut c = late.await.unwrap();
        // End of stream: what was written before the close arrives, then the end.
        s.write_all(b"x").await.unwrap();
        drop(s);
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"x");
    }

    #[tokio::test]
    async fn input_arriving_inside_the_window_is_read_by_polling() {
        // Nothing is in the socket when the read starts: it finds nothing, yields, and must be
        // polled again until the input arrives (a lost wake-up would hang here: no readiness is
        // registered while polling).
        let (mut s, mut c) = pair(Duration::from_secs(5)).await;
        s.write_all(b"answer").await.unwrap();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.write_all(b"next").await.unwrap();
            c
        });
        let mut got = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(4), s.read_exact(&mut got))
            .await
            .expect("the input must be read inside the window")
            .unwrap();
        assert_eq!(&got, b"next");
        assert!(s.polled_reads() >= 1, "read by polling");
        let mut c = writer.await.unwrap();
        // The peer was quick (20 ms inside a 5 s window): the next answer opens a window again.
        s.write_all(b"again").await.unwrap();
        assert!(s.polling());
        let mut buf = [0u8; 11];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"answeragain");
    }

    #[tokio::test]
    async fn a_slow_peer_is_not_polled_for_until_it_is_quick_again() {
        let (mut s, mut c) = pair(Duration::from_millis(30)).await;
        let mut got = [0u8; 3];
        let mut buf = [0u8; 1];
        // Answer, then the next request comes only after the window: the peer is slow.
        s.write_all(b"a").await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        c.write_all(b"req").await.unwrap();
        s.read_exact(&mut got).await.unwrap();
        s.write_all(b"b").await.unwrap();
        assert!(!s.polling(), "no window for a peer that was slow");
        c.read_exact(&mut buf).await.unwrap();
        // The peer answers at once this time (seen through readiness): quick again.
        c.write_all(b"req").await.unwrap();
        s.read_exact(&mut got).await.unwrap();
        s.write_all(b"c").await.unwrap();
        assert!(s.polling(), "a window again once the peer is quick");
    }

    #[tokio::test]
    async fn a_polling_read_does_not_starve_other_tasks() {
        // On a single-threaded runtime a read that polls must still let the other tasks run
        // (a read that spun inside `poll_read` would hold the thread for the whole window).
        let window = Duration::from_secs(3);
        let (mut s, _c) = pair(window).await;
        s.write_all(b"answer").await.unwrap();
        let reader = tokio::spawn(async move {
            let mut b = [0u8; 1];
            let _ = s.read(&mut b).await;
        });
        let start = Instant::now();
        let other = tokio::spawn(async { 42 });
        assert_eq!(other.await.unwrap(), 42);
        assert!(start.elapsed() < window / 3, "{:?}", start.elapsed());
        reader.abort();
    }

    #[tokio::test]
    async fn no_window_no_polling() {
        let (mut s, mut c) = pair(Duration::ZERO).await;
        s.write_all(b"answer").await.unwrap();
        assert!(!s.polling());
        c.write_all(b"req").await.unwrap();
        let mut got = [0u8; 3];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"req");
        // Only writes open the window: input alone does not.
        assert!(!s.polling());
    }

    #[tokio::test]
    async fn keepalive_is_applied() {
        let l = listen_tcp("127.0.0.1:0").await.unwrap();
        let addr = local_addr(&l).unwrap().to_string();
        let cfg = TcpConfig::default();
        let (c, s) = tokio::join!(connect_tcp(&addr, &cfg), l.accept());
        let c = c.unwrap();
        let _s = s.unwrap();
        let sock = socket2::SockRef::from(&c);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.keepalive_time().unwrap(), Duration::from_secs(60));
        assert!(c.nodelay().unwrap());
    }
}
