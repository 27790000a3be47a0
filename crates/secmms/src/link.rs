//! Drives one sans-IO OSI association over a byte stream: the only place where the runtime moves
//! bytes between a socket and `secmms_osi::Association`.

use std::pin::Pin;
use std::time::Duration;

use secmms_osi::{Association, OsiError, OsiEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::transport::Stream;

/// Largest coalesced write (a TLS record carries at most 16 KiB of plaintext).
const MAX_BATCH: usize = 16 * 1024;

/// Read buffer size: one maximal TPKT.
pub(crate) const READ_CHUNK: usize = 65_536;

/// Writes every chunk `next` yields, coalesced into writes of at most [`MAX_BATCH`] octets (the
/// answers to several pipelined requests leave in one system call and, over TLS, one record),
/// then flushes. Nothing queued: nothing written.
pub(crate) async fn write_coalesced<S: Stream>(
    stream: &mut S,
    mut next: impl FnMut() -> Option<Vec<u8>>,
) -> Result<(), LinkError> {
    let Some(mut batch) = next() else {
        return Ok(());
    };
    while let Some(out) = next() {
        if batch.len() + out.len() > MAX_BATCH {
            stream.write_all(&batch).await?;
            batch = out;
        } else {
            batch.extend_from_slice(&out);
        }
    }
    stream.write_all(&batch).await?;
    stream.flush().await?;
    Ok(())
}

/// Errors of the link between a stream and an association.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The stream failed.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer violated the OSI protocols; the reaction (ER, AB, ABRT…) was sent.
    #[error("protocol error: {0}")]
    Osi(#[from] OsiError),
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// An application-layer security check failed; the abort it calls for was sent.
    #[error("{0}")]
    Security(String),
    /// No input arrived in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A wait for input ended because the wake signal ([`Link::set_wake`]) changed; nothing
    /// was read.
    #[error("woken before any input arrived")]
    Woken,
}

/// One timer for a deadline that is set again and again, mostly later than before (an idle
/// timeout renewed by every read, the end of a load).
///
/// A fresh `tokio::time::sleep` per wait registers a timer each time, and when the runtime's
/// parked thread has no earlier timer, every registration wakes that thread: one needless
/// cross-thread wake-up per request. This timer stays registered and only moves when it fires
/// before the deadline asked for (at most once per timeout period) or when an earlier deadline
/// is asked for.
#[derive(Default)]
pub(crate) struct LazyTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl LazyTimer {
    /// Completes at `at` (at once if it has passed). Cancel-safe: dropping the future keeps the
    /// timer for the next wait.
    pub(crate) async fn wait_until(&mut self, at: Instant) {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if sleep.deadline() > at {
            sleep.as_mut().reset(at);
        }
        loop {
            sleep.as_mut().await;
            if Instant::now() >= at {
                return;
            }
            sleep.as_mut().reset(at);
        }
    }
}

/// A stream and the association running on it.
pub struct Link<S> {
    stream: S,
    assoc: Association,
    buf: Vec<u8>,
    write_timeout: Option<Duration>,
    read_timer: LazyTimer,
    wake: Option<tokio::sync::watch::Receiver<u64>>,
}

/// True when `wake` changed; never completes once its sender is gone.
async fn changed(wake: &mut tokio::sync::watch::Receiver<u64>) -> bool {
    match wake.changed().await {
        Ok(()) => true,
        Err(_) => std::future::pending().await,
    }
}

impl<S: Stream> Link<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S, assoc: Association) -> Self {
        Link {
            stream,
            assoc,
            buf: vec![0; READ_CHUNK],
            write_timeout: None,
            read_timer: LazyTimer::default(),
            wake: None,
        }
    }

    /// A signal whose every change ends a waiting [`Link::read_input`] with
    /// [`LinkError::Woken`] before anything is read (the server uses it to re-check live
    /// associations after a CRL reload).
    pub fn set_wake(&mut self, wake: tokio::sync::watch::Receiver<u64>) {
        self.wake = Some(wake);
    }

    /// Bounds every [`Link::flush`] (and so every write): a peer that stops reading cannot
    /// hold the task forever once the socket buffers are full. `None` (the default) waits.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// The association, to issue requests.
    pub fn assoc(&mut self) -> &mut Association {
        &mut self.assoc
    }

    /// The association, to inspect it.
    pub fn assoc_ref(&self) -> &Association {
        &self.assoc
    }

    /// Writes everything the association has queued, within the write timeout if one is set.
    pub async fn flush(&mut self) -> Result<(), LinkError> {
        match self.write_timeout {
            Some(t) => tokio::time::timeout(t, self.flush_all())
                .await
                .map_err(|_| LinkError::Timeout(t))?,
            None => self.flush_all().await,
        }
    }

    async fn flush_all(&mut self) -> Result<(), LinkError> {
        let assoc = &mut self.assoc;
        write_coalesced(&mut self.stream, || assoc.poll_transmit()).await
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<OsiEvent> {
        self.assoc.poll_event()
    }

    /// Reads once from the stream (waiting at most `timeout`, if given) and feeds the
    /// association. Any reaction the association queued (for example an abort after a
    /// protocol error) is written before an error is returned.
    pub async fn read_input(&mut self, timeout: Option<Duration>) -> Result<(), LinkError> {
        // A timeout too long to be a deadline (e.g. u64::MAX seconds for "never") waits forever.
        let deadline = timeout.and_then(|t| Some((t, Instant::now().checked_add(t)?)));
        let n = match (deadline, self.wake.as_mut()) {
            (Some((t, at)), Some(wake)) => {
                tokio::select! {
                    biased;
                    n = self.stream.read(&mut self.buf) => n?,
                    () = self.read_timer.wait_until(at) => return Err(LinkError::Timeout(t)),
                    true = changed(wake) => return Err(LinkError::Woken),
                }
            }
            (Some((t, at)), None) => {
                tokio::select! {
                    biased;
                    n = self.stream.read(&mut self.buf) => n?,
                    () = self.read_timer.wait_until(at) => return Err(LinkError::Timeout(t)),
                }
            }
            (None, Some(wake)) => {
                tokio::select! {
                    biased;
                    n = self.stream.read(&mut self.buf) => n?,
                    true = changed(wake) => return Err(LinkError::Woken),
                }
            }
            (None, None) => self.stream.read(&mut self.buf).await?,
        };
        if n == 0 {
            // Tell the association, so its state and events reflect the lost transport.
            self.assoc.transport_closed();
            return Err(LinkError::Closed);
        }
        let r = self.assoc.handle_input(&self.buf[..n]);
        let f = self.flush().await;
        r?;
        f
    }

    /// Cancellation-safe half of [`Link::read_input`] for `select!`: reads raw bytes only.
    pub async fn read_raw(&mut self) -> Result<usize, LinkError> {
        let n = self.stream.read(&mut self.buf).await?;
        if n == 0 {
            // Tell the association, so its state and events reflect the lost transport.
            self.assoc.transport_closed();
            return Err(LinkError::Closed);
        }
        Ok(n)
    }

    /// Feeds bytes previously read with [`Link::read_raw`], then flushes any reaction.
    pub async fn feed(&mut self, n: usize) -> Result<(), LinkError> {
        let r = self.assoc.handle_input(&self.buf[..n]);
        let f = self.flush().await;
        r?;
        f
    }

    /// Shuts the write side down (after a release or abort).
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        match self.write_timeout {
            Some(t) => {
                let _ = tokio::time::timeout(t, self.stream.shutdown()).await;
            }
            None => {
                let _ = self.stream.shutdown().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn lazy_timer_completes_at_each_deadline_asked_for() {
        let mut t = LazyTimer::default();
        let start = Instant::now();
        t.wait_until(start + 20 * MS).await;
        assert!(start.elapsed() >= 20 * MS);
        // A later deadline after the timer fired: waits for it, not less.
        let at = Instant::now() + 30 * MS;
        t.wait_until(at).await;
        assert!(Instant::now() >= at);
        // A deadline already passed: at once.
        let now = Instant::now();
        t.wait_until(now - MS).await;
        assert!(now.elapsed() < 1000 * MS);
    }

    #[tokio::test]
    async fn lazy_timer_follows_a_deadline_moved_later_or_earlier() {
        let mut t = LazyTimer::default();
        let start = Instant::now();
        // Abandoned wait (as when the read wins the select) leaves the timer at +300 ms.
        let abandoned = tokio::time::timeout(5 * MS, t.wait_until(start + 300 * MS)).await;
        assert!(abandoned.is_err());
        // Moved later: the early firing at +300 ms does not end the wait.
        t.wait_until(start + 600 * MS).await;
        assert!(start.elapsed() >= 600 * MS);
        // Moved earlier than the registered deadline: the timer is brought forward.
        let start = Instant::now();
        let _ = tokio::time::timeout(5 * MS, t.wait_until(start + 100_000 * MS)).await;
        let done = tokio::time::timeout(20_000 * MS, t.wait_until(start + 30 * MS)).await;
        assert!(
            done.is_ok(),
            "an earlier deadline must not wait for the later one"
        );
        assert!(start.elapsed() >= 30 * MS);
    }
}
