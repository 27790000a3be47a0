//! A tokio stream wrapper that records what crosses it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Packet;

/// The log a [`Recording`] appends to: every successful read or write as one chunk, in the order
/// they happened (`true` for what the wrapped side wrote).
pub type WireLog = Arc<Mutex<Vec<Packet>>>;

/// The client's end of a connection, logging each direction's octets into a [`WireLog`].
///
/// Reads are logged as received (`false`) and writes as accepted by the inner stream (`true`).
/// A recording made with [`Recording::corrupting`] can also damage traffic on demand: while its
/// flag is set, each write goes out with its last octet inverted, and the flag is cleared once a
/// damaged write has been accepted whole. The log holds the octets as they were sent.
pub struct Recording<S> {
    inner: S,
    log: WireLog,
    corrupt: Arc<AtomicBool>,
}

impl<S> Recording<S> {
    /// Records `inner` into `log`, never altering what is written.
    pub fn new(inner: S, log: WireLog) -> Self {
        Self::corrupting(inner, log, Arc::default())
    }

    /// Records `inner` into `log`; setting `corrupt` damages the next write as described above.
    pub fn corrupting(inner: S, log: WireLog, corrupt: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            log,
            corrupt,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let start = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > start {
            let got = buf.filled()[start..].to_vec();
            self.log.lock().unwrap().push((false, got));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut out = buf.to_vec();
        let corrupting = self.corrupt.load(Ordering::SeqCst) && !out.is_empty();
        if corrupting {
            let last = out.len() - 1;
            out[last] ^= 0xFF;
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, &out);
        if let Poll::Ready(Ok(n)) = &polled {
            if corrupting && *n == out.len() {
                self.corrupt.store(false, Ordering::SeqCst);
            }
            self.log.lock().unwrap().push((true, out[..*n].to_vec()));
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
