//! Moves bytes and time between a byte stream (TCP, TLS) and a sans-IO
//! [`SecureAssociation`]: the runtime's one clock ([`now`]), coalesced and time-bounded writes,
//! and one wait per turn for input, the association's next timeout or a wake signal.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use secmms_e2e::TimeStamp;
use secmms_osi::OsiError;
use secmms_profiles::secure::{Now, ProtectionError, SecureAssociation};
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
    /// An application-layer security check failed; the abort it calls for was sent. The error
    /// keeps what the standard says of it: the E2E diagnostic and the security event (id,
    /// mnemonic) in native mode, the refusal in compatibility mode.
    #[error(transparent)]
    Security(Arc<ProtectionError>),
    /// No input arrived in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A wait for input ended because the wake signal ([`SecureLink::set_wake`]) changed; nothing
    /// was read.
    #[error("woken before any input arrived")]
    Woken,
}

impl From<ProtectionError> for LinkError {
    fn from(e: ProtectionError) -> Self {
        LinkError::Security(Arc::new(e))
    }
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

/// The current time, read once per turn: the calendar (Unix milliseconds) and the monotonic
/// clock.
pub fn now() -> Now {
    Now::new(
        TimeStamp(crate::events::time::unix_millis()),
        std::time::Instant::now(),
    )
}

/// What ended a [`SecureLink::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Bytes were read and fed to the association.
    Input,
    /// The peer closed the stream; the association was told.
    Closed,
    /// The association's deadline came; `handle_timeout` ran.
    Timer,
    /// The wake signal changed (the CRLs were reloaded); nothing was read.
    Woken,
}

/// What ended a [`SecureLink::wait_with`].
#[derive(Debug)]
pub enum Either<T> {
    /// The link's own turn.
    Link(Turn),
    /// The other future completed; nothing was read.
    Other(T),
}

/// What a wait saw, before the association is told.
enum Raw {
    Read(std::io::Result<usize>),
    Timer,
    Woken,
}

/// A stream and the secure association running on it.
pub struct SecureLink<S> {
    stream: S,
    sa: SecureAssociation,
    buf: Vec<u8>,
    write_timeout: Option<Duration>,
    timer: LazyTimer,
    wake: Option<tokio::sync::watch::Receiver<u64>>,
    now: Now,
}

/// True when `wake` changed; never completes once its sender is gone.
async fn changed(wake: &mut Option<tokio::sync::watch::Receiver<u64>>) -> bool {
    let Some(w) = wake else {
        return std::future::pending().await;
    };
    match w.changed().await {
        Ok(()) => true,
        Err(_) => std::future::pending().await,
    }
}

/// Completes at `at`, or never.
pub(crate) async fn until(timer: &mut LazyTimer, at: Option<std::time::Instant>) {
    match at {
        Some(at) => timer.wait_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

impl<S: Stream> SecureLink<S> {
    /// Wraps a connected stream; `now` is the time the association was made at.
    pub fn new(stream: S, sa: SecureAssociation, now: Now) -> Self {
        SecureLink {
            stream,
            sa,
            buf: vec![0; READ_CHUNK],
            write_timeout: None,
            timer: LazyTimer::default(),
            wake: None,
            now,
        }
    }

    /// A signal whose every change ends a [`Self::wait`] with [`Turn::Woken`].
    pub fn set_wake(&mut self, wake: tokio::sync::watch::Receiver<u64>) {
        self.wake = Some(wake);
    }

    /// Bounds every [`Self::flush`]: a peer that stops reading cannot hold the task once the
    /// socket buffers are full. `None` (the default) waits.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// The association.
    pub fn sa(&mut self) -> &mut SecureAssociation {
        &mut self.sa
    }

    /// The association, to inspect it.
    pub fn sa_ref(&self) -> &SecureAssociation {
        &self.sa
    }

    /// The time of this turn (read when the last [`Self::wait`] ended).
    pub fn now(&self) -> Now {
        self.now
    }

    /// Reads the clock again (after a long await inside a turn).
    pub fn refresh_now(&mut self) -> Now {
        self.now = now();
        self.now
    }

    /// Writes everything the association has queued, coalesced, within the write timeout.
    pub async fn flush(&mut self) -> Result<(), LinkError> {
        match self.write_timeout {
            Some(t) => tokio::time::timeout(t, self.flush_all())
                .await
                .map_err(|_| LinkError::Timeout(t))?,
            None => self.flush_all().await,
        }
    }

    async fn flush_all(&mut self) -> Result<(), LinkError> {
        let sa = &mut self.sa;
        write_coalesced(&mut self.stream, || sa.poll_transmit()).await
    }

    /// Writes what the association queued, then waits for the next thing to happen and hands
    /// it to the association at the time it happened: input, the end of the stream, the
    /// association's deadline, or the wake signal.
    pub async fn wait(&mut self) -> Result<Turn, LinkError> {
        self.flush().await?;
        let at = self.sa.poll_timeout();
        let r = tokio::select! {
            biased;
            n = self.stream.read(&mut self.buf) => Raw::Read(n),
            () = until(&mut self.timer, at) => Raw::Timer,
            true = changed(&mut self.wake) => Raw::Woken,
        };
        self.finish(r).await
    }

    /// [`Self::wait`], or `other` if it completes first (the client's commands and load
    /// timer); the branches are polled in random order, so none starves the others.
    pub async fn wait_with<T>(
        &mut self,
        other: impl std::future::Future<Output = T>,
    ) -> Result<Either<T>, LinkError> {
        self.flush().await?;
        let at = self.sa.poll_timeout();
        let r = tokio::select! {
            n = self.stream.read(&mut self.buf) => Raw::Read(n),
            () = until(&mut self.timer, at) => Raw::Timer,
            true = changed(&mut self.wake) => Raw::Woken,
            t = other => {
                self.now = now();
                return Ok(Either::Other(t));
            }
        };
        self.finish(r).await.map(Either::Link)
    }

    async fn finish(&mut self, r: Raw) -> Result<Turn, LinkError> {
        self.now = now();
        match r {
            Raw::Read(n) => match n? {
                0 => {
                    self.sa.transport_closed(self.now);
                    Ok(Turn::Closed)
                }
                n => {
                    if let Err(e) = self.sa.handle_input(&self.buf[..n], self.now) {
                        // The reaction the association queued goes out before the error.
                        let _ = self.flush().await;
                        return Err(e.into());
                    }
                    Ok(Turn::Input)
                }
            },
            Raw::Timer => {
                self.sa.handle_timeout(self.now);
                Ok(Turn::Timer)
            }
            Raw::Woken => Ok(Turn::Woken),
        }
    }

    /// Flushes, then shuts the write side down (after a release or abort).
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
