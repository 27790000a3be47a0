//! Moves bytes and time between a byte stream (TCP, TLS) and a sans-IO
//! [`SecureAssociation`]: the runtime's one clock ([`now`]), coalesced and time-bounded writes,
//! and one wait per turn for input, the association's next timeout or a wake signal.

use std::time::Duration;

use secmms_e2e::TimeStamp;
use secmms_profiles::secure::{Now, SecureAssociation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::link::{write_coalesced, LazyTimer, LinkError, READ_CHUNK};
use crate::transport::Stream;

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
async fn until(timer: &mut LazyTimer, at: Option<std::time::Instant>) {
    match at {
        Some(at) => timer.wait_until(tokio::time::Instant::from_std(at)).await,
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
