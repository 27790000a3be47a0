//! [`ServerBuilder`], the front door of an embedded server.

use std::sync::Arc;

use secmms_mms::model::SharedModel;
use secmms_pki::event::SecurityEventSink;

use super::{Server, ServerConfig, ServerError, Tuning};
use crate::events::EventsConfig;
use crate::osi::OsiSettings;
use crate::sections::{shared_section_setters, validate_shared};
use crate::security::SecurityConfig;
use crate::tls::TlsConfig;
use crate::transport::TcpConfig;

/// The typed sections a server runs with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sections {
    pub(crate) server: ServerConfig,
    pub(crate) tcp: TcpConfig,
    pub(crate) tls: TlsConfig,
    pub(crate) security: SecurityConfig,
    pub(crate) osi: OsiSettings,
    pub(crate) events: EventsConfig,
}

impl Sections {
    /// Checks every section; the first error names its field.
    pub(crate) fn validate(&self) -> Result<(), ServerError> {
        self.server.validate()?;
        validate_shared(
            &self.tcp,
            &self.tls,
            &self.osi,
            &self.security,
            &self.events,
        )
    }
}

/// Builds a [`Server`] section by section ([`Server::builder`]): what is not given keeps its
/// default (a plain server on `0.0.0.0:102` serving the built-in demo model). `bind` validates
/// the sections and returns a typed error naming what is wrong. The `secmms` command builds one
/// from its TOML file with [`crate::Config::server_builder`].
#[derive(Default)]
pub struct ServerBuilder {
    cfg: Sections,
    model: Option<SharedModel>,
    sink: Option<Arc<dyn SecurityEventSink>>,
    tuning: Tuning,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("listen", &self.cfg.server.listen)
            .field("tls", &self.cfg.tls.enabled)
            .field("mode", &self.cfg.security.mode)
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// The address to listen on (`host:port`; 102 is RFC 1006's port, 3782 with TLS).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.cfg.server.listen = addr.into();
        self
    }

    shared_section_setters! {
        tls: "TLS (clause 6); its `enabled` field turns it on.",
        osi: "OSI addressing (selectors, AP-titles) and sizes.",
    }

    /// Limits, timeouts and tuning settings of the server ([`ServerConfig`]); its `listen` and
    /// `model` fields are replaced by [`Self::listen`] and [`Self::model`] when those are given
    /// after it.
    pub fn limits(mut self, server: ServerConfig) -> Self {
        self.cfg.server = server;
        self
    }

    /// The live model to serve (instead of [`ServerConfig::model`] or the built-in demo
    /// model). Keep a clone: the application sets values in it while the server runs, reads
    /// what clients wrote, and registers observers of every change.
    pub fn model(mut self, model: SharedModel) -> Self {
        self.model = Some(model);
        self
    }

    /// Whom unset performance settings suit ([`Tuning::Embedded`] by default).
    pub fn tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Validates the sections, loads the credentials and the model, and binds.
    pub async fn bind(self) -> Result<Server, ServerError> {
        self.cfg.validate()?;
        let sink = match self.sink {
            Some(s) => s,
            None => Arc::new(self.cfg.events.build()?),
        };
        Server::bind_inner(self.cfg, sink, self.tuning, self.model).await
    }
}
