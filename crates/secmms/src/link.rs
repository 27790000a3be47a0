//! Drives one sans-IO OSI association over a byte stream: the only place where the runtime moves
//! bytes between a socket and `secmms_osi::Association`.

use std::time::Duration;

use secmms_osi::{Association, OsiError, OsiEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::Stream;

/// Largest coalesced write (a TLS record carries at most 16 KiB of plaintext).
const MAX_BATCH: usize = 16 * 1024;

/// Read buffer size: one maximal TPKT.
const READ_CHUNK: usize = 65_536;

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
}

/// A stream and the association running on it.
pub struct Link<S> {
    stream: S,
    assoc: Association,
    buf: Vec<u8>,
    write_timeout: Option<Duration>,
}

impl<S: Stream> Link<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S, assoc: Association) -> Self {
        Link {
            stream,
            assoc,
            buf: vec![0; READ_CHUNK],
            write_timeout: None,
        }
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
        // Coalesce everything queued (e.g. the answers to several pipelined requests) into one
        // write: one system call, and over TLS one record instead of one per PDU.
        let Some(mut batch) = self.assoc.poll_transmit() else {
            return Ok(());
        };
        while let Some(out) = self.assoc.poll_transmit() {
            if batch.len() + out.len() > MAX_BATCH {
                self.stream.write_all(&batch).await?;
                batch = out;
            } else {
                batch.extend_from_slice(&out);
            }
        }
        self.stream.write_all(&batch).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<OsiEvent> {
        self.assoc.poll_event()
    }

    /// Reads once from the stream (waiting at most `timeout`, if given) and feeds the
    /// association. Any reaction the association queued (for example an abort after a
    /// protocol error) is written before an error is returned.
    pub async fn read_input(&mut self, timeout: Option<Duration>) -> Result<(), LinkError> {
        let n = match timeout {
            Some(t) => tokio::time::timeout(t, self.stream.read(&mut self.buf))
                .await
                .map_err(|_| LinkError::Timeout(t))??,
            None => self.stream.read(&mut self.buf).await?,
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
