//! [`ServerBuilder`], the front door of an embedded server.

use std::sync::Arc;

use secmms_mms::model::SharedModel;
use secmms_pki::event::SecurityEventSink;

use super::{Server, ServerError, Tuning};
use crate::config::{Config, ServerConfig};

/// Builds a [`Server`] section by section ([`Server::builder`]). What is not given keeps the
/// default of [`Config`]; [`ServerBuilder::config`] takes a whole configuration (the TOML file
/// of `secmms server`) to start from.
#[derive(Default)]
pub struct ServerBuilder {
    cfg: Config,
    model: Option<SharedModel>,
    sink: Option<Arc<dyn SecurityEventSink>>,
    tuning: Tuning,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("listen", &self.cfg.server.listen)
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Starts from a whole configuration (every section).
    pub fn config(mut self, cfg: Config) -> Self {
        self.cfg = cfg;
        self
    }

    /// The address to listen on (`host:port`; 102 is RFC 1006's port, 3782 with TLS).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.cfg.server.listen = addr.into();
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

    /// OSI addressing (selectors, AP-titles) and sizes.
    pub fn osi(mut self, osi: crate::config::OsiSettings) -> Self {
        self.cfg.osi = osi;
        self
    }

    /// Limits, timeouts and tuning settings of the server (`[server]`); its `listen` and
    /// `model` fields are replaced by [`Self::listen`] and [`Self::model`] when those are given
    /// after it.
    pub fn limits(mut self, server: ServerConfig) -> Self {
        self.cfg.server = server;
        self
    }

    /// Where security events go, as configured (`[events]`); see [`Self::events`].
    pub fn events_config(mut self, events: crate::events::EventsConfig) -> Self {
        self.cfg.events = events;
        self
    }

    /// The sink that receives the security events (instead of the `[events]` outputs).
    pub fn events(mut self, sink: Arc<dyn SecurityEventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The live model to serve (instead of `[server] model` or the built-in demo model). Keep
    /// a clone: the application sets values in it while the server runs, reads what clients
    /// wrote, and registers observers of every change.
    pub fn model(mut self, model: SharedModel) -> Self {
        self.model = Some(model);
        self
    }

    /// Whom unset performance settings suit ([`Tuning::Embedded`] by default).
    pub fn tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Validates the configuration, loads the credentials and binds.
    pub async fn bind(self) -> Result<Server, ServerError> {
        let sink = match self.sink {
            Some(s) => s,
            None => Arc::new(
                self.cfg
                    .events
                    .build()
                    .map_err(crate::config::ConfigError::from)?,
            ),
        };
        Server::bind_inner(self.cfg, sink, self.tuning, self.model).await
    }
}
