//! What the two builders ([`crate::client::ClientBuilder`], [`crate::server::ServerBuilder`])
//! share: the sections besides their own (TCP, TLS, application security, OSI, events), checked
//! by one function, [`validate_shared`], and set by one set of setters,
//! [`shared_section_setters!`].

use crate::events::{EventsConfig, EventsError};
use crate::osi::OsiSettings;
use crate::security::SecurityConfig;
use crate::settings::SettingError;
use crate::tls::{TlsConfig, TlsError};
use crate::transport::TcpConfig;

/// Checks the shared sections in the order both builders report them (after the role's own
/// section): TCP, TLS, OSI, application security (which needs the TLS trust anchors), events.
/// The first error names its field.
pub(crate) fn validate_shared<E>(
    tcp: &TcpConfig,
    tls: &TlsConfig,
    osi: &OsiSettings,
    security: &SecurityConfig,
    events: &EventsConfig,
) -> Result<(), E>
where
    E: From<SettingError> + From<TlsError> + From<EventsError>,
{
    tcp.validate()?;
    tls.validate()?;
    osi.validate()?;
    security.validate(&tls.ca)?;
    events.validate()?;
    Ok(())
}

/// The setters of the shared sections, for the `impl` block of a builder whose `cfg` holds
/// `tcp`, `tls`, `security`, `osi` and `events` and whose `sink` is an
/// `Option<Arc<dyn SecurityEventSink>>`. The documentation of `tls` and `osi`, which says what
/// the section means for that role, is given by the caller.
macro_rules! shared_section_setters {
    (tls: $tls_doc:literal, osi: $osi_doc:literal $(,)?) => {
        /// TCP socket options (Annex H keep-alive).
        pub fn tcp(mut self, tcp: $crate::transport::TcpConfig) -> Self {
            self.cfg.tcp = tcp;
            self
        }

        #[doc = $tls_doc]
        pub fn tls(mut self, tls: $crate::tls::TlsConfig) -> Self {
            self.cfg.tls = tls;
            self
        }

        /// Application-layer security: plain, compatibility or native mode, credentials, peers.
        pub fn security(mut self, security: $crate::security::SecurityConfig) -> Self {
            self.cfg.security = security;
            self
        }

        #[doc = $osi_doc]
        pub fn osi(mut self, osi: $crate::osi::OsiSettings) -> Self {
            self.cfg.osi = osi;
            self
        }

        /// Where security events go, as configured ([`EventsConfig`](crate::events::EventsConfig));
        /// see [`Self::events`].
        pub fn events_config(mut self, events: $crate::events::EventsConfig) -> Self {
            self.cfg.events = events;
            self
        }

        /// The sink that receives the security events (instead of the
        /// [`EventsConfig`](crate::events::EventsConfig) outputs).
        pub fn events(
            mut self,
            sink: std::sync::Arc<dyn secmms_pki::event::SecurityEventSink>,
        ) -> Self {
            self.sink = Some(sink);
            self
        }
    };
}
pub(crate) use shared_section_setters;
