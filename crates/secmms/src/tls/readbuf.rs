//! The buffer through which OpenSSL reads the socket ([`ReleasingReader`]).
//!
//! OpenSSL reads a record header, then the record, so a buffer of ours under it lets the socket
//! be read in large chunks while OpenSSL takes one record at a time. Unlike
//! `tokio::io::BufReader`, the buffer is only held while there is something to read: it is
//! allocated when a read needs it and given back as soon as it has been drained and the socket
//! has nothing more, so an idle association holds none (issue 17, memory per idle association).
//! While data keeps coming it stays allocated; a busy association allocates it once per burst.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A reader with a buffer of `size` octets, allocated while data flows and freed when idle.
#[derive(Debug)]
pub(crate) struct ReleasingReader<S> {
    inner: S,
    size: usize,
    buf: Vec<u8>,
    /// Octets of `buf` read from the socket.
    filled: usize,
    /// Octets of `buf` already handed out.
    pos: usize,
}

impl<S> ReleasingReader<S> {
    /// Reads `inner` through a buffer of `size` octets.
    pub(crate) fn new(size: usize, inner: S) -> Self {
        ReleasingReader {
            inner,
            size: size.max(1),
            buf: Vec::new(),
            filled: 0,
            pos: 0,
        }
    }

    /// Octets of buffer held now (0 while idle).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.capacity()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReleasingReader<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.pos == me.filled {
            // A read at least as large as the buffer needs none.
            if out.remaining() >= me.size {
                me.buf = Vec::new();
                return Pin::new(&mut me.inner).poll_read(cx, out);
            }
            if me.buf.len() < me.size {
                me.buf = vec![0; me.size];
            }
            let mut rb = ReadBuf::new(&mut me.buf);
            match Pin::new(&mut me.inner).poll_read(cx, &mut rb) {
                Poll::Pending => {
                    // Nothing to read: give the buffer back while waiting.
                    me.buf = Vec::new();
                    me.filled = 0;
                    me.pos = 0;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    me.filled = rb.filled().len();
                    me.pos = 0;
                    if me.filled == 0 {
                        // End of stream.
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
        let n = out.remaining().min(me.filled - me.pos);
        out.put_slice(&me.buf[me.pos..me.pos + n]);
        me.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReleasingReader<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_come_from_the_buffer_which_goes_when_idle() {
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        let mut r = ReleasingReader::new(1024, a);
        b.write_all(&(0..=255u8).cycle().take(3000).collect::<Vec<_>>())
            .await
            .unwrap();
        // Record-sized reads, as OpenSSL makes them.
        let mut got = Vec::new();
        while got.len() < 3000 {
            let mut five = [0u8; 5];
            let n = r.read(&mut five).await.unwrap();
            got.extend_from_slice(&five[..n]);
            assert!(r.held() <= 1024);
        }
        assert_eq!(got, (0..=255u8).cycle().take(3000).collect::<Vec<_>>());
        // Nothing more to read: the buffer goes while the read waits.
        let mut one = [0u8; 1];
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), r.read(&mut one));
        assert!(waiting.await.is_err());
        assert_eq!(r.held(), 0);
        // It comes back for the next data; large reads bypass it; the end is seen.
        b.write_all(b"xyz").await.unwrap();
        assert_eq!(r.read(&mut one).await.unwrap(), 1);
        assert_eq!(one, *b"x");
        let mut big = [0u8; 4096];
        assert_eq!(r.read(&mut big).await.unwrap(), 2);
        assert_eq!(&big[..2], b"yz");
        drop(b);
        assert_eq!(r.read(&mut big).await.unwrap(), 0);
    }
}
