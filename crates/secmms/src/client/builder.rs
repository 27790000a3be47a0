//! [`ClientBuilder`]: the front door for a program that embeds a client.

use std::sync::Arc;

use super::{Client, ClientError};
use crate::config::Config;

/// Builds a [`Client`] section by section ([`Client::builder`]). What is not given keeps the
/// default of [`Config`]; [`ClientBuilder::config`] takes a whole configuration to start from.
#[derive(Default)]
pub struct ClientBuilder {
    cfg: Config,
    sink: Option<Arc<dyn secmms_pki::event::SecurityEventSink>>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("tls", &self.cfg.tls.enabled)
            .field("mode", &self.cfg.security.mode)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Starts from a whole configuration (every section).
    pub fn config(mut self, cfg: Config) -> Self {
        self.cfg = cfg;
        self
    }

    /// TCP socket options (Annex H keep-alive).
    pub fn tcp(mut self, tcp: crate::transport::TcpConfig) -> Self {
        self.cfg.tcp = tcp;
        self
    }

    /// TLS (clause 6); its `enabled` field turns it on.
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.cfg.tls = tls;
        self
    }

    /// Application-layer security: plain, compatibility or native mode, credentials, peers.
    pub fn security(mut self, security: crate::security::SecurityConfig) -> Self {
        self.cfg.security = security;
        self
    }

    /// OSI addressing (selectors, AP-titles, the peer's titles) and sizes.
    pub fn osi(mut self, osi: crate::config::OsiSettings) -> Self {
        self.cfg.osi = osi;
        self
    }

    /// Timeouts and what the initiate proposes (`[client]`).
    pub fn limits(mut self, client: crate::config::ClientConfig) -> Self {
        self.cfg.client = client;
        self
    }

    /// Where security events go, as configured (`[events]`); see [`Self::events`].
    pub fn events_config(mut self, events: crate::events::EventsConfig) -> Self {
        self.cfg.events = events;
        self
    }

    /// The sink that receives the security events (instead of the `[events]` outputs).
    pub fn events(mut self, sink: Arc<dyn secmms_pki::event::SecurityEventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Validates the configuration, connects to `addr` (`host:port`) and associates.
    pub async fn connect(self, addr: &str) -> Result<Client, ClientError> {
        match self.sink {
            Some(sink) => Client::connect_with_events(addr, &self.cfg, sink).await,
            None => Client::connect(addr, &self.cfg).await,
        }
    }
}
