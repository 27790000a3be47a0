//! Reconnection after a link loss, with the backoff of [`ReconnectPolicy`].
//!
//! IEC 62351-4 §16.5: when the XMPP link drops, every E2E association over it is aborted
//! locally. [`ReconnectingClient::next_event`] therefore reports the loss
//! ([`ClientEvent::Disconnected`]) before it reconnects ([`ClientEvent::Reconnected`]); the layer
//! above drops its association state on the first and starts afresh after the second.
//!
//! Only errors for which [`XmppError::is_retryable`] holds are retried: a wrong password, a
//! refused certificate or a configuration error ends the loop at once.

use crate::client::{XmppClient, XmppSender};
use crate::config::{ReconnectPolicy, XmppConfig};
use crate::error::XmppError;
use crate::stream::Stanza;

/// What [`ReconnectingClient::next_event`] reports.
#[derive(Debug)]
pub enum ClientEvent {
    /// A stanza arrived.
    Stanza(Stanza),
    /// The link was lost, with the reason; a reconnection follows on the next call.
    Disconnected(XmppError),
    /// A new session is up, bound to `jid`.
    Reconnected {
        /// The full JID of the new session.
        jid: String,
    },
}

/// Connects with retries: the first attempt at once, then after each retryable failure the
/// policy's delay, until it succeeds, a failure is permanent, or the attempts run out
/// ([`XmppError::GaveUp`]).
pub async fn connect_with_retry(
    cfg: &XmppConfig,
    policy: &ReconnectPolicy,
) -> Result<XmppClient, XmppError> {
    attempts(cfg, policy, false).await
}

async fn attempts(
    cfg: &XmppConfig,
    policy: &ReconnectPolicy,
    wait_first: bool,
) -> Result<XmppClient, XmppError> {
    let mut failed: u32 = 0;
    loop {
        if wait_first || failed > 0 {
            let d = policy.delay(failed.saturating_sub(u32::from(!wait_first)));
            tokio::time::sleep(d).await;
        }
        match XmppClient::connect(cfg).await {
            Ok(c) => return Ok(c),
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => {
                failed = failed.saturating_add(1);
                tracing::warn!(attempt = failed, error = %e, "XMPP connection attempt failed");
                if !policy.may_retry(failed) {
                    return Err(XmppError::GaveUp {
                        attempts: failed,
                        last: Box::new(e),
                    });
                }
            }
        }
    }
}

/// A client that reconnects by itself under [`XmppConfig::reconnect`].
#[derive(Debug)]
pub struct ReconnectingClient {
    cfg: XmppConfig,
    client: Option<XmppClient>,
    /// Set after a permanent failure: no more attempts.
    stopped: bool,
}

impl ReconnectingClient {
    /// Connects (with retries, see [`connect_with_retry`]).
    pub async fn connect(cfg: XmppConfig) -> Result<ReconnectingClient, XmppError> {
        let client = connect_with_retry(&cfg, &cfg.reconnect).await?;
        Ok(ReconnectingClient {
            cfg,
            client: Some(client),
            stopped: false,
        })
    }

    /// The full JID of the current session, if connected.
    pub fn jid(&self) -> Option<&str> {
        self.client.as_ref().map(XmppClient::jid)
    }

    /// Whether a session is up.
    pub fn is_connected(&self) -> bool {
        self.client.is_some()
    }

    /// A sender for the current session, if connected. It fails with [`XmppError::Closed`] once
    /// that session is gone; take a new one after [`ClientEvent::Reconnected`].
    pub fn sender(&self) -> Option<XmppSender> {
        self.client.as_ref().map(XmppClient::sender)
    }

    /// Sends on the current session; [`XmppError::Closed`] while disconnected.
    pub async fn send(&self, raw_stanza: &str) -> Result<(), XmppError> {
        match &self.client {
            Some(c) => c.send(raw_stanza).await,
            None => Err(XmppError::Closed),
        }
    }

    /// The next event: a stanza, a link loss, or a reconnection. Returns an error only when
    /// reconnection is over for good (a permanent failure, or the policy's attempts used up);
    /// after that every call returns [`XmppError::Closed`].
    pub async fn next_event(&mut self) -> Result<ClientEvent, XmppError> {
        if self.stopped {
            return Err(XmppError::Closed);
        }
        if let Some(c) = &mut self.client {
            return match c.recv().await {
                Ok(s) => Ok(ClientEvent::Stanza(s)),
                Err(e) => {
                    self.client = None;
                    if !e.is_retryable() {
                        self.stopped = true;
                    }
                    Ok(ClientEvent::Disconnected(e))
                }
            };
        }
        match attempts(&self.cfg, &self.cfg.reconnect, true).await {
            Ok(c) => {
                let jid = c.jid().to_owned();
                self.client = Some(c);
                Ok(ClientEvent::Reconnected { jid })
            }
            Err(e) => {
                self.stopped = true;
                Err(e)
            }
        }
    }

    /// Closes the current session politely and stops reconnecting.
    pub async fn close(mut self) -> Result<(), XmppError> {
        self.stopped = true;
        match self.client.take() {
            Some(c) => c.close().await,
            None => Ok(()),
        }
    }
}
