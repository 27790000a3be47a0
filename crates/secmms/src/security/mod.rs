//! Application-layer security of an association (IEC 62351-4 Table 1): none (plain MMS),
//! compatibility mode (the A-security-profile of clause 11) or native mode (E2E security of
//! clauses 13–15), selected by the `[security]` section of the configuration.
//!
//! ```toml
//! [security]
//! mode = "compat"                 # plain | compat | native
//! app_cert = "app-cert.pem"       # application certificate (Annex G), not the TLS one
//! app_key = "app-key.pem"
//! ca = ["ca.pem"]                 # anchors for application certificates (default: [tls] ca)
//! crl = ["ca.crl"]
//! encrypt = "gcm"                 # native mode: gcm | cbc | none
//!
//! [[security.peers]]              # the clause 5.1 bilateral table; first match wins
//! name = "scada"
//! address = "10.0.0.1"
//! ap_title = "1.1.1.999"
//! ae_qualifier = 12
//! transport = "secure"            # dont_care | non_secure | secure
//! application = "secure"          # non_secure | secure | end_to_end_secure
//! ```
//!
//! Without `[[security.peers]]` rows every peer gets the row `unknown_peers` describes: by default
//! the application security of the configured mode over any transport.

mod config;
mod credentials;
mod e2e;
mod peer_ocsp;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use secmms_ber::Oid;
use secmms_osi::security::Role;
use secmms_osi::OsiConfig;
use secmms_pki::cert::CertInfo;
use secmms_pki::crypto::sha256;
use secmms_pki::event::SecurityEventSink;
use secmms_pki::PeerIdentity;
use secmms_profiles::aprofile::{AuthReplay, ProfileError, ReplayCheck, ReplayTable};
use secmms_profiles::native::{NativeConfig, NativeShared};
use secmms_profiles::secure::{Now, Protection, ProtectionError, SecureAssociation, Timeouts};
use secmms_profiles::{
    AProfileConfig, AProfileShared, ConnectionInfo, Credentials, PeerPolicy, PeerTable,
};

use crate::settings::SettingError;
use config::value_err;
use credentials::{cred_err, local_titles};

pub use config::{
    AppMode, ConfParam, DhGroupName, Encrypt, EncryptionRule, PeerApplication, PeerEntry,
    PeerTransport, SecurityConfig, SignatureName, UnknownPeers, DEFAULT_REKEY_INTERVAL_SECS,
    DEFAULT_TIME_WINDOW_SECS, REKEY_INTERVAL_SECS,
};
pub use credentials::{
    load_attribute_certificate, load_certificate, load_key, load_validator, write_private_key,
    ReloadableValidator,
};
pub use e2e::{e2e_config, e2e_context, load_e2e_context};
#[allow(unused_imports)] // part of the crate-wide `security::` paths
pub(crate) use peer_ocsp::ocsp_outcome;
pub(crate) use peer_ocsp::{OcspOutcome, PeerOcsp};

/// Errors building the security context.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A certificate, key or CRL could not be used.
    #[error("{path}: {reason}")]
    Credential {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A value of the `[security]` section is out of range or malformed.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The §5.1 table has no row for the peer we are asked to call.
    #[error("no [[security.peers]] row matches the called peer and unknown_peers = \"refuse\"")]
    NoPeerRow,
    /// The profile refused our credentials.
    #[error("application credentials: {0}")]
    Profile(#[from] ProfileError),
    /// The configured local AP-title / AE-qualifier differ from the Annex G.6.2 binding of our
    /// application certificate: every peer would refuse us with an address mismatch.
    #[error(
        "our AP-title/AE-qualifier {configured} do not match the application certificate \
         {cert} (Annex G.6.2 binding {bound}): drop --ap-title/--ae-qualifier (and \
         [osi] local_ap_title/local_ae_qualifier) to use the certificate's, set them to {bound}, \
         or issue a certificate for {configured}"
    )]
    TitlesMismatch {
        /// The titles configured, `AP-title / AE-qualifier`.
        configured: String,
        /// The titles the certificate binds, `AP-title / AE-qualifier`.
        bound: String,
        /// The certificate file.
        cert: PathBuf,
    },
}

/// The AP-title and AE-qualifier an Annex G.6.2 identity binds: the identity's arcs are the
/// AP-title with the AE-qualifier appended as the last arc. `None` for an XMPP identity or an
/// identity too short to split.
pub fn titles_of_identity(id: &PeerIdentity) -> Option<(Oid, i64)> {
    let PeerIdentity::ApTitle(oid) = id else {
        return None;
    };
    let (last, ap) = oid.arcs().split_last()?;
    let ap = Oid::new(ap).ok()?;
    Some((ap, i64::try_from(*last).ok()?))
}

/// Runtime events of the clause 5.1 peer checks (domain `secmms`, group 5: no catalogue entry).
pub mod events {
    use secmms_pki::event::{EventId, SecurityEvent, Severity};

    /// secmms:5.1 — we initiated an association without an expected peer AP-title /
    /// AE-qualifier (`--peer-ap-title`, `--peer-ae-qualifier`, `[osi] remote_*`): the peer's
    /// certificate was bound to the titles the peer answered with (compatibility mode) or to
    /// the default called titles (native mode), not to an identity the operator chose.
    pub const PEER_TITLE_UNCHECKED: (EventId, &str, Severity) = (
        EventId {
            domain: EventId::DOMAIN_LOCAL,
            group: 5,
            number: 1,
        },
        "PEER_TITLE_UNCHECKED",
        Severity::Warning,
    );

    /// secmms:17.1 — the server refused a connection at accept for admission control (its
    /// source over `max_pending_per_source` or `max_associations_per_source`, every place
    /// taken); the message names the limit.
    pub const CONNECTION_REFUSED: (EventId, &str, Severity) = (
        EventId {
            domain: EventId::DOMAIN_LOCAL,
            group: 17,
            number: 1,
        },
        "CONNECTION_REFUSED",
        Severity::Warning,
    );

    /// secmms:17.2 — every `max_pending` place was taken: the server dropped the oldest of the
    /// least advanced connections still setting up to make room for a new one.
    pub const CONNECTION_EVICTED: (EventId, &str, Severity) = (
        EventId {
            domain: EventId::DOMAIN_LOCAL,
            group: 17,
            number: 2,
        },
        "CONNECTION_EVICTED",
        Severity::Warning,
    );

    /// secmms:17.3 — a TLS handshake waited the whole handshake timeout for a place under
    /// `server.max_handshakes` / `server.handshake_rate` and the connection was closed.
    pub const HANDSHAKE_REFUSED: (EventId, &str, Severity) = (
        EventId {
            domain: EventId::DOMAIN_LOCAL,
            group: 17,
            number: 3,
        },
        "HANDSHAKE_REFUSED",
        Severity::Warning,
    );

    /// secmms:17.4 — an AARQ waited until its association set-up deadline for a place under
    /// `server.max_security_checks` / `server.security_check_rate`; its checks were not run and
    /// the connection was aborted.
    pub const CHECK_REFUSED: (EventId, &str, Severity) = (
        EventId {
            domain: EventId::DOMAIN_LOCAL,
            group: 17,
            number: 4,
        },
        "CHECK_REFUSED",
        Severity::Warning,
    );

    /// The event `e` with its message and association.
    pub fn event(
        e: (EventId, &'static str, Severity),
        message: String,
        association: Option<String>,
    ) -> SecurityEvent {
        SecurityEvent {
            id: e.0,
            mnemonic: e.1,
            severity: e.2,
            message,
            association,
        }
    }
}

/// What the transport knows about one connection, for the profiles.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFacts {
    /// The peer's IP address.
    pub peer_address: Option<IpAddr>,
    /// The peer's address and port (names the association in events).
    pub peer_socket: Option<std::net::SocketAddr>,
    /// True over TLS.
    pub tls: bool,
    /// SHA-256 fingerprints of the TLS certificates of the connection (ours and the peer's).
    pub tls_fingerprints: Vec<[u8; 32]>,
}

impl ConnectionFacts {
    /// How events name the association: the peer's address and port when known.
    pub fn label(&self) -> String {
        match (self.peer_socket, self.peer_address) {
            (Some(s), _) => s.to_string(),
            (None, Some(a)) => a.to_string(),
            (None, None) => "unknown peer".into(),
        }
    }

    fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            peer_address: self.peer_address,
            peer_socket: self.peer_socket,
            tls: self.tls,
            tls_certificate_fingerprints: self.tls_fingerprints.clone(),
        }
    }
}

/// SHA-256 fingerprints of the TLS certificates used on a connection (ours and the peer's).
pub fn tls_fingerprints(ssl: &openssl::ssl::SslRef) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    if let Some(der) = ssl.peer_certificate().and_then(|c| c.to_der().ok()) {
        out.push(sha256(&der));
    }
    if let Some(der) = ssl.certificate().and_then(|c| c.to_der().ok()) {
        out.push(sha256(&der));
    }
    out
}

/// OCSP for the application certificates of OSI associations, with the sink its soft-fail
/// warnings go to.
struct AppOcsp {
    ocsp: PeerOcsp,
    sink: Arc<dyn SecurityEventSink>,
}

/// The process's A-profile replay store (§11.4): one table behind a lock, shared by every
/// association.
#[derive(Default)]
struct AuthReplayStore(std::sync::Mutex<ReplayTable>);

impl AuthReplayStore {
    fn table(&self) -> std::sync::MutexGuard<'_, ReplayTable> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AuthReplay for AuthReplayStore {
    fn contains(&self, cert: &[u8; 32], time: &[u8], now: i64) -> bool {
        self.table().contains(cert, time, now)
    }
    fn insert(&self, cert: &[u8; 32], time: &[u8], now: i64, window: i64) -> ReplayCheck {
        self.table().insert(cert, time, now, window)
    }
    fn len(&self) -> usize {
        self.table().len()
    }
}

#[derive(Clone)]
enum Inner {
    Plain,
    Compat(AProfileShared),
    Native(NativeShared),
}

/// The application-security context of a process, shared by its associations.
#[derive(Clone)]
pub struct AppSecurity {
    mode: AppMode,
    inner: Inner,
    sisco_compat: bool,
    table: Arc<PeerTable>,
    /// Our AP-title / AE-qualifier, from the certificate's Annex G.6.2 binding unless
    /// configured (then checked equal to it).
    local_titles: Option<(Oid, i64)>,
    /// Whether the peer's titles were configured (else the peer's binding cannot be checked
    /// against an identity the operator chose: `PEER_TITLE_UNCHECKED`).
    peer_titles_configured: bool,
    /// Annex G.2 on (`[security] separate_certificates`): the connection's TLS certificates
    /// are handed to the profiles to refuse as application certificates.
    separate_certificates: bool,
    /// The application-certificate validator, for CRL reloads (`None` in plain mode).
    validator: Option<Arc<ReloadableValidator>>,
    /// OCSP for the peers' application certificates (`None` when off or in plain mode).
    ocsp: Option<Arc<AppOcsp>>,
    sink: Option<Arc<dyn SecurityEventSink>>,
}

impl std::fmt::Debug for AppSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSecurity")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl AppSecurity {
    /// No application-layer security.
    pub fn plain() -> Self {
        AppSecurity {
            mode: AppMode::Plain,
            inner: Inner::Plain,
            sisco_compat: false,
            table: Arc::new(PeerTable::default()),
            local_titles: None,
            peer_titles_configured: false,
            separate_certificates: true,
            validator: None,
            ocsp: None,
            sink: None,
        }
    }

    /// Reads the CRLs of the application certificates again (`[security] crl`, or `[tls] crl`).
    /// `Ok(true)` when they changed: the caller then re-checks its live associations
    /// ([`SecureAssociation::recheck_peer`]). `Ok(false)` when unchanged or in plain mode. On an
    /// error the CRLs in force stay.
    pub fn reload_crls(&self) -> Result<bool, SecurityError> {
        match &self.validator {
            Some(v) => v.reload(),
            None => Ok(false),
        }
    }

    fn conn_info(&self, conn: &ConnectionFacts) -> ConnectionInfo {
        let mut info = conn.info();
        if !self.separate_certificates {
            info.tls_certificate_fingerprints.clear();
        }
        info
    }

    /// Builds the context the `[security]` section `s` asks for: reads the application
    /// certificate, key, anchors and CRLs. The TLS section `tls` gives the fallback anchors,
    /// CRLs and OCSP settings, and our TLS certificate, which may not double as the application
    /// certificate (Annex G.2); `osi` our titles (checked against the certificate's binding)
    /// and whether the peer's are configured.
    pub fn build(
        s: &SecurityConfig,
        tls: &crate::tls::TlsConfig,
        osi: &crate::osi::OsiSettings,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Self, SecurityError> {
        s.validate(&tls.ca)?;
        if s.mode == AppMode::Plain {
            return Ok(Self::plain());
        }
        let (Some(cert_p), Some(key_p)) = (&s.app_cert, &s.app_key) else {
            return Err(value_err("security.app_cert", "missing").into());
        };
        let certificate = load_certificate(cert_p)?;
        let info = CertInfo::parse(&certificate)
            .map_err(|e| cred_err(cert_p, format!("unusable certificate: {e}")))?;
        let local_titles = local_titles(osi, &info, cert_p)?;
        let key = load_key(key_p)?;
        let anchors = if s.ca.is_empty() { &tls.ca } else { &s.ca };
        let crls = if s.crl.is_empty() { &tls.crl } else { &s.crl };
        let validator = Arc::new(ReloadableValidator::load(
            anchors,
            crls,
            &s.attribute_authorities,
        )?);
        let mut own_tls = Vec::new();
        if tls.enabled && s.separate_certificates {
            if let Some(p) = &tls.cert {
                if let Ok(der) = load_certificate(p) {
                    own_tls.push(sha256(&der));
                }
            }
        }
        if own_tls.contains(&sha256(&certificate)) {
            return Err(cred_err(
                cert_p,
                "the application certificate is our TLS certificate; Annex G.2 wants separate \
                 ones (or set [security] separate_certificates = false)",
            ));
        }
        let ocsp = PeerOcsp::from_config(s, tls, validator.clone()).map(|ocsp| {
            Arc::new(AppOcsp {
                ocsp,
                sink: sink.clone(),
            })
        });
        let table = s.table(s.mode)?;
        let inner = match s.mode {
            AppMode::Plain => Inner::Plain,
            AppMode::Compat => {
                let mut acfg = AProfileConfig::new(
                    Some(Credentials { certificate, key }),
                    validator.clone() as Arc<dyn secmms_pki::CertValidator>,
                );
                acfg.time_window_secs = s.time_window_secs as i64;
                acfg.tls_certificate_fingerprints = own_tls;
                if let Some(o) = &s.mms_authentication_as {
                    acfg.mms_authentication_as = parse_checked(o)?;
                }
                Inner::Compat(AProfileShared::new(
                    acfg,
                    table.clone(),
                    Arc::new(AuthReplayStore::default()),
                    sink.clone(),
                )?)
            }
            AppMode::Native => {
                let att_cert = load_attribute_certificate(s)?;
                let ctx = e2e_context(s, certificate, key, att_cert, validator.clone());
                let mut ncfg = NativeConfig {
                    separate_certificates: s.separate_certificates,
                    tls_certificate_fingerprints: own_tls,
                    ..NativeConfig::default()
                };
                if let Some(o) = &s.e2e_security_as {
                    ncfg.e2e_security_as = parse_checked(o)?;
                }
                if let Some(o) = &s.e2e_mms_ac {
                    ncfg.e2e_mms_ac = parse_checked(o)?;
                }
                let mut shared = NativeShared::new(ctx, ncfg, table.clone(), sink.clone());
                if let Some(p) = &s.e2e_keylog_file {
                    shared = shared.with_key_log(Arc::new(e2e::E2eKeyLogFile::open(p)?));
                }
                Inner::Native(shared)
            }
        };
        Ok(AppSecurity {
            mode: s.mode,
            inner,
            sisco_compat: s.sisco_compat,
            table: Arc::new(table),
            local_titles,
            peer_titles_configured: osi.remote_ap_title.is_some()
                || osi.remote_ae_qualifier.is_some(),
            separate_certificates: s.separate_certificates,
            ocsp,
            validator: Some(validator),
            sink: Some(sink),
        })
    }

    /// Our AP-title and AE-qualifier: the configured ones, or by default those our application
    /// certificate binds (Annex G.6.2). `None` in plain mode.
    pub fn local_titles(&self) -> Option<&(Oid, i64)> {
        self.local_titles.as_ref()
    }

    fn set_local_titles(&self, osi: &mut OsiConfig) {
        if let Some((ap, ae)) = &self.local_titles {
            osi.local_ap_title = Some(ap.clone());
            osi.local_ae_qualifier = Some(*ae);
        }
    }

    fn warn_unchecked_peer(&self, osi: &OsiConfig, assoc: &str) {
        if self.peer_titles_configured {
            return;
        }
        let Some(sink) = &self.sink else { return };
        let how = format!(
            "the server's certificate is checked against the default called titles {} / {}{}",
            osi.remote_ap_title
                .as_ref()
                .map_or("-".into(), |o| o.to_string()),
            osi.remote_ae_qualifier
                .map_or("-".into(), |q| q.to_string()),
            if self.mode == AppMode::Compat {
                " (or the responding titles its AARE names)"
            } else {
                ""
            }
        );
        sink.record(&events::event(
            events::PEER_TITLE_UNCHECKED,
            format!(
                "no expected peer AP-title/AE-qualifier configured; {how} (give \
                 --peer-ap-title and --peer-ae-qualifier to check the server's identity)"
            ),
            Some(assoc.to_string()),
        ));
    }

    /// The mode.
    pub fn mode(&self) -> AppMode {
        self.mode
    }

    /// A server-side [`SecureAssociation`] on a connection with these facts (one object, no lock, time
    /// passed in).
    pub fn secure_responder(
        &self,
        osi: OsiConfig,
        conn: &ConnectionFacts,
        timeouts: Timeouts,
        now: Now,
    ) -> SecureAssociation {
        let (osi, protection) = self.responder_parts(osi, conn);
        SecureAssociation::new(Role::Responder, osi, protection, timeouts, now)
    }

    /// What [`Self::secure_responder`] builds its association from: `osi` prepared for the
    /// profile (our titles, the profile's contexts) and the responder's protection.
    pub(crate) fn responder_parts(
        &self,
        mut osi: OsiConfig,
        conn: &ConnectionFacts,
    ) -> (OsiConfig, Protection) {
        let protection = match &self.inner {
            Inner::Plain => Protection::Plain,
            Inner::Compat(shared) => {
                self.set_local_titles(&mut osi);
                shared.prepare_osi_config(&mut osi, Role::Responder, false);
                Protection::AProfile(Box::new(shared.responder(self.conn_info(conn))))
            }
            Inner::Native(shared) => {
                self.set_local_titles(&mut osi);
                shared.prepare_osi_config(&mut osi, Role::Responder);
                Protection::Native(Box::new(shared.responder_state(self.conn_info(conn))))
            }
        };
        (osi, protection)
    }

    /// A client-side [`SecureAssociation`] towards the peer `osi` calls. Refused when the §5.1
    /// table has no row for that peer.
    pub fn secure_initiator(
        &self,
        mut osi: OsiConfig,
        conn: &ConnectionFacts,
        timeouts: Timeouts,
        now: Now,
    ) -> Result<SecureAssociation, SecurityError> {
        let protection = match &self.inner {
            Inner::Plain => Protection::Plain,
            Inner::Compat(shared) => {
                let row = self.row_for(&osi, conn)?;
                let sisco = row.sisco_compat || self.sisco_compat;
                self.set_local_titles(&mut osi);
                shared.prepare_osi_config(&mut osi, Role::Initiator, sisco);
                self.warn_unchecked_peer(&osi, &conn.label());
                Protection::AProfile(Box::new(shared.initiator_for(
                    self.conn_info(conn),
                    row,
                    &osi,
                )))
            }
            Inner::Native(shared) => {
                let row = self.row_for(&osi, conn)?;
                self.set_local_titles(&mut osi);
                shared.prepare_osi_config(&mut osi, Role::Initiator);
                self.warn_unchecked_peer(&osi, &conn.label());
                let id = secmms_profiles::aprofile::identity_of(
                    osi.remote_ap_title.as_ref(),
                    osi.remote_ae_qualifier,
                );
                Protection::Native(Box::new(shared.initiator_state(
                    self.conn_info(conn),
                    row,
                    id,
                )))
            }
        };
        Ok(SecureAssociation::new(
            Role::Initiator,
            osi,
            protection,
            timeouts,
            now,
        ))
    }

    /// The OCSP look-up of §6.2.8 for the peer's application certificate of `sa`, as a future
    /// that borrows nothing (the driver awaits it while the association waits); `None` when
    /// OCSP is off or the peer has no application certificate. Its result goes to
    /// [`Self::apply_peer_ocsp`] before the AARE (or HandshakeAcc) leaves.
    pub(crate) fn peer_ocsp_lookup<L: secmms_profiles::secure::Layer>(
        &self,
        sa: &SecureAssociation<L>,
    ) -> Option<crate::driver::BoxFuture<Option<OcspOutcome>>> {
        let o = self.ocsp.clone()?;
        let cert = sa.protection().peer_certificate()?;
        Some(Box::pin(async move { o.ocsp.outcome(&cert).await }))
    }

    /// Acts on an OCSP outcome of [`Self::peer_ocsp_lookup`]: a refused peer gets the abort its
    /// profile prescribes (queued on `sa`; the error says why), a soft-fail warning becomes an
    /// event naming `label`.
    pub(crate) fn apply_peer_ocsp<L: secmms_profiles::secure::Layer>(
        &self,
        sa: &mut SecureAssociation<L>,
        outcome: Option<OcspOutcome>,
        label: &str,
        now: secmms_profiles::secure::Now,
    ) -> Result<(), ProtectionError> {
        let (
            Some(o),
            Some(OcspOutcome {
                revoked,
                refuse,
                why,
            }),
        ) = (&self.ocsp, outcome)
        else {
            return Ok(());
        };
        if refuse {
            return match sa.refuse_peer(revoked, why, now) {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        match &self.inner {
            Inner::Native(_) => {
                let event = secmms_e2e::events::PEER_OCSP_UNAVAILABLE;
                o.sink.record(&secmms_pki::event::SecurityEvent {
                    id: event.id(),
                    mnemonic: event.mnemonic,
                    severity: event.severity,
                    message: why,
                    association: Some(label.to_string()),
                });
            }
            Inner::Compat(shared) => shared.record(
                secmms_profiles::events::OCSP_UNAVAILABLE,
                why,
                Some(label.to_string()),
            ),
            Inner::Plain => {}
        }
        Ok(())
    }

    /// Checks, before any connection is made, that the §5.1 table lets us call the peer at
    /// `address` with the titles of `osi` (the same check [`Self::secure_initiator`] makes).
    pub fn check_peer(
        &self,
        osi: &OsiConfig,
        address: Option<IpAddr>,
    ) -> Result<(), SecurityError> {
        match self.inner {
            Inner::Plain => Ok(()),
            _ => self
                .row_for(
                    osi,
                    &ConnectionFacts {
                        peer_address: address,
                        ..Default::default()
                    },
                )
                .map(|_| ()),
        }
    }

    fn row_for(
        &self,
        osi: &OsiConfig,
        conn: &ConnectionFacts,
    ) -> Result<PeerPolicy, SecurityError> {
        self.table
            .find(
                conn.peer_address,
                osi.remote_ap_title.as_ref(),
                osi.remote_ae_qualifier,
            )
            .cloned()
            .ok_or(SecurityError::NoPeerRow)
    }
}

fn parse_checked(s: &str) -> Result<Oid, SecurityError> {
    s.parse()
        .map_err(|_| value_err("security", format!("`{s}` is not a dotted OID")).into())
}
