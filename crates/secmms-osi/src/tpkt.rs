//! RFC 1006 TPKT framing: `03 00 LL LL` + one TPDU (reference §2, Annex H).
//!
//! TCP is a byte stream: a TPKT header may arrive alone, or several TPKTs in one read. The
//! [`TpktDecoder`] buffers pushed bytes and yields whole TPDUs.

use crate::limits::{TPKT_HEADER_LEN, TPKT_MAX_LEN, TPKT_MIN_LEN, TPKT_VERSION};

/// Errors of RFC 1006 framing. Any of them makes the stream unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TpktError {
    /// The version octet is not 3.
    #[error("TPKT version {0}, expected 3")]
    BadVersion(u8),
    /// The reserved octet is not 0.
    #[error("TPKT reserved octet {0:#04x}, expected 0")]
    Reserved(u8),
    /// The length is below 7 (cannot hold a class-0 TPDU).
    #[error("TPKT length {0} below the minimum of 7")]
    TooShort(usize),
    /// The length exceeds the configured maximum.
    #[error("TPKT length {len} exceeds the limit of {max}")]
    TooLong {
        /// Announced length.
        len: usize,
        /// Limit in force.
        max: usize,
    },
}

/// Encodes one TPKT around `tpdu`.
pub fn encode(tpdu: &[u8]) -> Result<Vec<u8>, TpktError> {
    let len = tpdu.len() + TPKT_HEADER_LEN;
    if len > TPKT_MAX_LEN {
        return Err(TpktError::TooLong {
            len,
            max: TPKT_MAX_LEN,
        });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&[TPKT_VERSION, 0, (len >> 8) as u8, len as u8]);
    out.extend_from_slice(tpdu);
    Ok(out)
}

/// Streaming TPKT decoder: push bytes as they arrive, pop whole TPDUs.
#[derive(Debug, Clone)]
pub struct TpktDecoder {
    buf: Vec<u8>,
    start: usize,
    max_len: usize,
    failed: Option<TpktError>,
}

impl TpktDecoder {
    /// A decoder refusing TPKTs longer than `max_len` octets (header included; capped at 65 535).
    pub fn new(max_len: usize) -> Self {
        TpktDecoder {
            buf: Vec::new(),
            start: 0,
            max_len: max_len.min(TPKT_MAX_LEN),
            failed: None,
        }
    }
    /// Changes the maximum TPKT length (e.g. after TPDU-size negotiation).
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len.min(TPKT_MAX_LEN);
    }
    /// The maximum TPKT length in force.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }
    /// Number of buffered octets not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
    /// The next whole TPDU (TPKT header removed), `Ok(None)` if more bytes are needed. After an
    /// error the decoder keeps returning it.
    pub fn next_tpdu(&mut self) -> Result<Option<Vec<u8>>, TpktError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let avail = &self.buf[self.start..];
        if avail.is_empty() {
            return Ok(None);
        }
        if avail[0] != TPKT_VERSION {
            return Err(self.fail(TpktError::BadVersion(avail[0])));
        }
        if avail.len() < TPKT_HEADER_LEN {
            return Ok(None);
        }
        // RFC 1006: the reserved octet is 0 (libiec61850 requires it; open61850 ignores it,
        // reference §2). Anything else is not a TPKT stream we can trust to frame.
        if avail[1] != 0 {
            return Err(self.fail(TpktError::Reserved(avail[1])));
        }
        let len = ((avail[2] as usize) << 8) | avail[3] as usize;
        if len < TPKT_MIN_LEN {
            return Err(self.fail(TpktError::TooShort(len)));
        }
        if len > self.max_len {
            return Err(self.fail(TpktError::TooLong {
                len,
                max: self.max_len,
            }));
        }
        if avail.len() < len {
            return Ok(None);
        }
        let tpdu = avail[TPKT_HEADER_LEN..len].to_vec();
        self.start += len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4 * TPKT_MAX_LEN {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(tpdu))
    }

    fn fail(&mut self, e: TpktError) -> TpktError {
        self.failed = Some(e.clone());
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_header_and_body() {
        let pkt = encode(&[0x02, 0xF0, 0x80, 0x01]).unwrap();
        let mut d = TpktDecoder::new(TPKT_MAX_LEN);
        d.push(&pkt[..2]);
        assert_eq!(d.next_tpdu().unwrap(), None);
        d.push(&pkt[2..4]);
        assert_eq!(d.next_tpdu().unwrap(), None);
        d.push(&pkt[4..]);
        assert_eq!(
            d.next_tpdu().unwrap().unwrap(),
            vec![0x02, 0xF0, 0x80, 0x01]
        );
        assert_eq!(d.next_tpdu().unwrap(), None);
    }

    #[test]
    fn errors() {
        let mut d = TpktDecoder::new(100);
        d.push(&[4, 0, 0, 10]);
        assert_eq!(d.next_tpdu(), Err(TpktError::BadVersion(4)));
        assert_eq!(d.next_tpdu(), Err(TpktError::BadVersion(4)));
        let mut d = TpktDecoder::new(100);
        d.push(&[3, 0, 0, 4]);
        assert_eq!(d.next_tpdu(), Err(TpktError::TooShort(4)));
        let mut d = TpktDecoder::new(100);
        d.push(&[3, 0, 0, 101]);
        assert_eq!(
            d.next_tpdu(),
            Err(TpktError::TooLong { len: 101, max: 100 })
        );
        assert!(encode(&vec![0; 65_532]).is_err());
        let mut d = TpktDecoder::new(100);
        d.push(&[3, 0xff, 0, 10, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_tpdu(), Err(TpktError::Reserved(0xff)));
    }

    proptest! {
        #[test]
        fn roundtrip_any_chunking(tpdus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 3..300), 1..8), cut in 1usize..50) {
            let mut stream = Vec::new();
            for t in &tpdus { stream.extend(encode(t).unwrap()); }
            let mut d = TpktDecoder::new(TPKT_MAX_LEN);
            let mut out = Vec::new();
            for chunk in stream.chunks(cut) {
                d.push(chunk);
                while let Some(t) = d.next_tpdu().unwrap() { out.push(t); }
            }
            prop_assert_eq!(out, tpdus);
            prop_assert_eq!(d.buffered(), 0);
        }
    }
}
