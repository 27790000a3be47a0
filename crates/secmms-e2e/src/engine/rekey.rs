//! Key refresh bookkeeping (§13.3.2): the [`Rekey`] state and the engine's timers (the
//! client's rekey timeout, the end of the server's old-key grace period). The refresh itself
//! rides on transfers (see the record layer).

use super::*;

/// Rekey bookkeeping (§13.3.2 DECISION state machine).
pub(super) enum Rekey {
    None,
    /// Client: `rekey` sent; new keys ready, waiting for `changedKey`.
    ClientPending {
        keys: KeySet,
        salt: [u8; 32],
        since: TimeStamp,
    },
    /// Server: new keys derived, `changedKey` not yet sent.
    ServerDerived {
        keys: KeySet,
        salt: [u8; 32],
    },
}

impl Core {
    /// Timer handling: the client's rekey timeout (§13.3.2 step 4) and the end of the server's
    /// old-key grace period (step 2).
    pub(super) fn handle_timeout(&mut self, now: TimeStamp) -> R<()> {
        if self.state == State::Closed {
            return Ok(());
        }
        if let Rekey::ClientPending { since, .. } = &self.rekey {
            if now.abs_diff_ms(*since) > self.ctx.config.rekey_timeout_ms {
                let f = dfail(
                    events::REKEY_TIMEOUT,
                    DtDiagnostic::NoReasonGiven,
                    "no changedKey within the rekey timeout",
                );
                return Err(self.reject(f, Some(SecPduKind::DtSecAbort), now));
            }
        }
        if let Some((_, Some(deadline))) = &self.old_recv {
            if now > *deadline {
                self.old_recv = None;
            }
        }
        Ok(())
    }

    /// The next instant at which [`Core::handle_timeout`] has work, if any.
    pub(super) fn next_timeout(&self) -> Option<TimeStamp> {
        let rekey = match &self.rekey {
            Rekey::ClientPending { since, .. } => Some(since.plus_ms(
                (self.ctx.config.rekey_timeout_ms.min(i64::MAX as u64) as i64).saturating_add(1),
            )),
            _ => None,
        };
        let grace = match &self.old_recv {
            Some((_, Some(d))) => Some(d.plus_ms(1)),
            _ => None,
        };
        match (rekey, grace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
