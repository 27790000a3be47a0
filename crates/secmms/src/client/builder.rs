//! [`ClientBuilder`]: the front door for a program that embeds a client.

use std::sync::Arc;

use secmms_pki::event::SecurityEventSink;

use super::{Client, ClientConfig, ClientError};
use crate::driver::LinkError;
use crate::events::EventsConfig;
use crate::osi::{osi_config, OsiSettings};
use crate::sections::{shared_section_setters, validate_shared};
use crate::security::{tls_fingerprints, AppSecurity, ConnectionFacts, SecurityConfig};
use crate::tls::{TlsConfig, TlsContext};
use crate::transport::{self, Stream, TcpConfig};

/// The typed sections a client runs with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sections {
    pub(crate) client: ClientConfig,
    pub(crate) tcp: TcpConfig,
    pub(crate) tls: TlsConfig,
    pub(crate) security: SecurityConfig,
    pub(crate) osi: OsiSettings,
    pub(crate) events: EventsConfig,
}

impl Sections {
    /// Checks every section; the first error names its field.
    fn validate(&self) -> Result<(), ClientError> {
        self.client.validate()?;
        validate_shared(
            &self.tcp,
            &self.tls,
            &self.osi,
            &self.security,
            &self.events,
        )
    }
}

/// Builds a [`Client`] section by section ([`Client::builder`]): what is not given keeps its
/// default (plain TCP, no application security, the IEC 61850 OSI addressing). `connect`
/// (by address) and `associate` (over a stream already connected) validate the sections and
/// return typed errors.
///
/// Contexts that are costly to build and can be shared by many connections (a load generator,
/// a gateway with many peers) are given ready-made: [`Self::tls_context`] and
/// [`Self::app_security`]; a builder can be cloned and used for any number of connections. The
/// `secmms` command builds one from its TOML file with [`crate::Config::client_builder`].
#[derive(Clone, Default)]
pub struct ClientBuilder {
    cfg: Sections,
    sink: Option<Arc<dyn SecurityEventSink>>,
    tls_context: Option<Arc<TlsContext>>,
    app_security: Option<AppSecurity>,
    facts: Option<ConnectionFacts>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("tls", &(self.cfg.tls.enabled || self.tls_context.is_some()))
            .field("mode", &self.cfg.security.mode)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    shared_section_setters! {
        tls: "TLS (clause 6); its `enabled` field turns it on for [`Self::connect`] (a context is \
              then built for each connection; see [`Self::tls_context`] to share one).",
        osi: "OSI addressing (selectors, AP-titles, the peer's titles) and sizes.",
    }

    /// Timeouts and what the initiate proposes ([`ClientConfig`]).
    pub fn limits(mut self, client: ClientConfig) -> Self {
        self.cfg.client = client;
        self
    }

    /// A TLS context shared by many connections: [`Self::connect`] runs the TLS handshake
    /// with it (whatever the `enabled` field of [`Self::tls`] says).
    pub fn tls_context(mut self, tls: Arc<TlsContext>) -> Self {
        self.tls_context = Some(tls);
        self
    }

    /// An application-security context shared by many connections, instead of one built from
    /// [`Self::security`] for each.
    pub fn app_security(mut self, security: AppSecurity) -> Self {
        self.app_security = Some(security);
        self
    }

    /// What [`Self::associate`] tells the profiles about its stream (peer address, TLS
    /// certificates), when the application connected it itself.
    pub fn connection_facts(mut self, facts: ConnectionFacts) -> Self {
        self.facts = Some(facts);
        self
    }

    /// The TLS settings towards the peer at `ip`: the server name of its `[[security.peers]]`
    /// row when the TLS section names none (to build a [`TlsContext`] for
    /// [`Self::tls_context`]).
    pub fn tls_config_for(&self, ip: Option<std::net::IpAddr>) -> Result<TlsConfig, ClientError> {
        let mut tls = self.cfg.tls.clone();
        if tls.server_name.is_none() {
            let osi = osi_config(&self.cfg.osi, false)?;
            tls.server_name = self.cfg.security.tls_server_name_for(
                ip,
                osi.remote_ap_title.as_ref(),
                osi.remote_ae_qualifier,
            );
        }
        Ok(tls)
    }

    /// The sink given, or the one the events section describes.
    fn sink(&self) -> Result<Arc<dyn SecurityEventSink>, ClientError> {
        Ok(match &self.sink {
            Some(s) => s.clone(),
            None => Arc::new(self.cfg.events.build()?),
        })
    }

    /// The application-security context given, or one built from the sections.
    fn security_context(
        &self,
        sink: &Arc<dyn SecurityEventSink>,
    ) -> Result<AppSecurity, ClientError> {
        Ok(match &self.app_security {
            Some(s) => s.clone(),
            None => AppSecurity::build(
                &self.cfg.security,
                &self.cfg.tls,
                &self.cfg.osi,
                sink.clone(),
            )?,
        })
    }

    /// Validates the sections, connects to `addr` (`host:port`) over TCP, or over TLS when a
    /// context is given or the TLS section enables it, and associates.
    pub async fn connect(&self, addr: &str) -> Result<Client, ClientError> {
        self.cfg.validate()?;
        let sink = self.sink()?;
        let security = self.security_context(&sink)?;
        // Refuse a peer the §5.1 table does not allow before any traffic.
        let ip = addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
        security.check_peer(&osi_config(&self.cfg.osi, false)?, ip)?;
        let tls = match &self.tls_context {
            Some(t) => Some(t.clone()),
            None if self.cfg.tls.enabled => Some(Arc::new(TlsContext::client(
                &self.tls_config_for(ip)?,
                sink,
            )?)),
            None => None,
        };
        let tcp = transport::connect_tcp(addr, &self.cfg.tcp)
            .await
            .map_err(LinkError::Io)?;
        let peer_socket = tcp.peer_addr().ok();
        let peer_address = peer_socket.map(|a| a.ip());
        match tls {
            Some(tls) => {
                let stream = tls.connect(tcp, addr).await?;
                let facts = ConnectionFacts {
                    peer_address,
                    peer_socket,
                    tls: true,
                    tls_fingerprints: tls_fingerprints(stream.ssl()),
                };
                Client::associate_with(stream, &self.cfg, &security, &facts).await
            }
            None => {
                let facts = ConnectionFacts {
                    peer_address,
                    peer_socket,
                    ..Default::default()
                };
                Client::associate_with(tcp, &self.cfg, &security, &facts).await
            }
        }
    }

    /// Validates the sections and associates over `stream`, already connected (TCP, TLS, an
    /// in-memory pipe, a recording tap); [`Self::connection_facts`] tells the profiles about
    /// it.
    pub async fn associate<S: Stream>(&self, stream: S) -> Result<Client, ClientError> {
        self.cfg.validate()?;
        let sink = self.sink()?;
        let security = self.security_context(&sink)?;
        let facts = self.facts.clone().unwrap_or_default();
        Client::associate_with(stream, &self.cfg, &security, &facts).await
    }
}
