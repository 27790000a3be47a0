//! Byte-stream transports under RFC 1006: plain TCP here; TLS (clause 6) is
//! [`crate::tls::TlsStream`] over the same TCP stream, another [`Stream`] implementation.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
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

#[cfg(test)]
mod tests {
    use super::*;

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
