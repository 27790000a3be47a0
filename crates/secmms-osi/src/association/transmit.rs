//! What the machine queues for transmit: TPDUs, TSDUs (segmented to the negotiated TPDU size)
//! and SPDUs, and the common reactions that close the association (protocol errors, telling
//! the security hook).

use super::*;

impl<H: AssociationSecurity> Association<H> {
    pub(super) fn expect_state(&self, op: &'static str, ok: &[State]) -> Result<(), OsiError> {
        if ok.contains(&self.state) {
            Ok(())
        } else {
            Err(OsiError::InvalidState {
                operation: op,
                state: self.state,
            })
        }
    }

    pub(super) fn queue_tpdu(&mut self, t: &Tpdu) -> Result<(), OsiError> {
        let b = t.encode()?;
        self.transmit.extend(tpkt::encode(&b)?);
        Ok(())
    }

    pub(super) fn queue_tsdu(&mut self, tsdu: &[u8]) -> Result<(), OsiError> {
        self.queue_tsdu_parts(&[tsdu]);
        Ok(())
    }

    /// Segments the concatenation of `parts` into TPKT + DT frames written straight into the
    /// transmit buffer: each octet of user data is copied once (same bytes as
    /// [`cotp::segment`] + [`tpkt::encode`]).
    pub(super) fn queue_tsdu_parts(&mut self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let n = self.tpdu_size.dt_payload();
        let frames = total.div_ceil(n);
        self.transmit
            .reserve(total + frames * (TPKT_HEADER_LEN + 3));
        let mut it = parts.iter().flat_map(|p| p.chunks(n)).peekable();
        let mut cur: &[u8] = &[];
        for i in 0..frames {
            let len = if i + 1 == frames { total - i * n } else { n };
            let tpkt_len = len + 3 + TPKT_HEADER_LEN;
            let eot = if i + 1 == frames { cotp::DT_EOT } else { 0 };
            self.transmit.extend_from_slice(&[
                crate::limits::TPKT_VERSION,
                0,
                (tpkt_len >> 8) as u8,
                tpkt_len as u8,
                2,
                cotp::CODE_DT,
                eot,
            ]);
            let mut need = len;
            while need > 0 {
                if cur.is_empty() {
                    match it.next() {
                        Some(c) => cur = c,
                        None => break,
                    }
                }
                let take = need.min(cur.len());
                self.transmit.extend_from_slice(&cur[..take]);
                cur = &cur[take..];
                need -= take;
            }
        }
    }

    pub(super) fn queue_spdu(&mut self, s: &Spdu) -> Result<(), OsiError> {
        let b = s.encode_with(self.cfg.cn_user_data_mode)?;
        self.queue_tsdu(&b)
    }

    pub(super) fn close(&mut self) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events.push_back(OsiEvent::Closed);
        }
    }

    pub(super) fn protocol_error(&mut self, e: OsiError) {
        self.tell_security(&e);
        self.events.push_back(OsiEvent::ProtocolError(e));
        self.close();
    }

    /// Lets the security hook see a protocol error we detected (§15.7 ACSE_PROT_ERR).
    pub(super) fn tell_security(&mut self, e: &OsiError) {
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        self.security.protocol_error(&ctx, e);
    }

    // ---------------------------------------------------------------- initiator API
}
