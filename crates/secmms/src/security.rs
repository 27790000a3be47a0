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

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::x509::{X509Crl, X509};
use secmms_ber::Oid;
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::{
    Context as E2eContext, Credentials as E2eCredentials, E2eConfig, EncryptionPolicy, ModeOffer,
};
use secmms_osi::security::Role;
use secmms_osi::OsiConfig;
use secmms_pki::cert::{CertInfo, OpenSslValidator};
use secmms_pki::crypto::{sha256, SigningKey};
use secmms_pki::event::SecurityEventSink;
use secmms_pki::PeerIdentity;
use secmms_profiles::aprofile::{AuthReplay, ProfileError, ReplayCheck, ReplayTable};
use secmms_profiles::native::{NativeConfig, NativeShared};
use secmms_profiles::policy::PeerMatch;
use secmms_profiles::secure::{Now, Protection, ProtectionError, SecureAssociation, Timeouts};
use secmms_profiles::{
    AProfileConfig, AProfileShared, ApplicationSecurity, ConnectionInfo, Credentials, PeerPolicy,
    PeerTable, TransportSecurity,
};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Application security of the associations (IEC 62351-4 Table 1 and §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppMode {
    /// No application-layer security (MMS over ACSE basic-AC; TLS may still protect the link).
    #[default]
    Plain,
    /// Compatibility mode: the A-security-profile of clause 11 (certificate, time and signature
    /// in the ACSE authentication value).
    Compat,
    /// Native mode: E2E security of clauses 13–15 (signed handshake, keys from Diffie-Hellman,
    /// protected data transfer).
    Native,
}

impl AppMode {
    /// The name used on the command line and in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            AppMode::Plain => "plain",
            AppMode::Compat => "compat",
            AppMode::Native => "native",
        }
    }
}

/// Native-mode protection of the data transfer (§13.3.1.5; `--encrypt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encrypt {
    /// Authenticated encryption with AES-GCM (`aea`).
    #[default]
    Gcm,
    /// AES-CBC encryption with an HMAC-SHA256 ICV (`non-aea` with encryption).
    Cbc,
    /// No encryption: every PDU carries an HMAC-SHA256 ICV (`non-aea` without encryption).
    None,
}

impl Encrypt {
    /// The name used on the command line and in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Encrypt::Gcm => "gcm",
            Encrypt::Cbc => "cbc",
            Encrypt::None => "none",
        }
    }
}

/// Required transport security of a peer (§5.1 `T-security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerTransport {
    /// TLS or plain TCP.
    #[default]
    DontCare,
    /// Plain TCP only.
    NonSecure,
    /// TLS only.
    Secure,
}

/// Required application security of a peer (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerApplication {
    /// No application authentication required.
    NonSecure,
    /// The A-security-profile (compatibility mode).
    Secure,
    /// E2E security (native mode).
    EndToEndSecure,
}

/// One row of the clause 5.1 bilateral table. Fields left out match any peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    /// Name used in logs and events.
    pub name: String,
    /// The peer's IP address.
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// The peer's AP-title (dotted OID).
    #[serde(default)]
    pub ap_title: Option<String>,
    /// The peer's AE-qualifier.
    #[serde(default)]
    pub ae_qualifier: Option<i64>,
    /// The identity its certificate must carry (dotted OID: AP-title with the AE-qualifier
    /// appended, Annex G.6), in addition to the AP-title binding.
    #[serde(default)]
    pub certificate_subject: Option<String>,
    /// Required transport security.
    #[serde(default)]
    pub transport: PeerTransport,
    /// Required application security (default: the configured mode's).
    #[serde(default)]
    pub application: Option<PeerApplication>,
    /// Initiator towards this peer: omit the mmsAuthenticationAS context (§11.3, SISCO style).
    #[serde(default)]
    pub sisco_compat: bool,
    /// Client towards this peer over TLS: the name or IP address its TLS certificate must
    /// carry (instead of the host connected to), unless `[tls] server_name` is set.
    #[serde(default)]
    pub tls_server_name: Option<String>,
}

/// Native mode: what the policy says about encrypting the data transfer (§13.3.1.5
/// `encryption`; `--require-encryption`). Both sides apply it: a server refuses an offer that
/// breaks it with a HandshakeSecReject, a client aborts a HandshakeAcc that breaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionRule {
    /// Either is accepted (default).
    #[default]
    Optional,
    /// Encryption (AES-GCM or AES-CBC) is required: `encryption-required` otherwise.
    Required,
    /// Encryption is not allowed: `encryption-not-required` (non-AE) or
    /// `aea-select-but-encryp-not-supp` (AE) otherwise.
    Forbidden,
}

/// Native mode: a Diffie-Hellman group by its configuration name (§13.3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DhGroupName {
    /// ECDH over secp256r1 (DH group 23 of the PICS).
    #[serde(rename = "ecdh-p256")]
    EcdhP256,
    /// 2048-bit MODP of RFC 3526 (group 14).
    #[serde(rename = "modp2048")]
    Modp2048,
    /// ECDH over brainpoolP256r1 (group 28).
    #[serde(rename = "ecdh-brainpool-p256r1")]
    EcdhBrainpoolP256r1,
}

impl DhGroupName {
    /// The engine's group.
    pub fn group(self) -> secmms_pki::DhGroup {
        match self {
            DhGroupName::EcdhP256 => secmms_pki::DhGroup::EcdhP256,
            DhGroupName::Modp2048 => secmms_pki::DhGroup::Modp2048,
            DhGroupName::EcdhBrainpoolP256r1 => secmms_pki::DhGroup::EcdhBrainpoolP256r1,
        }
    }
}

/// Native mode: a signature algorithm by its configuration name (§13.3.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignatureName {
    /// sha256WithRSAEncryption.
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    /// ecdsa-with-SHA256.
    #[serde(rename = "ecdsa-sha256")]
    EcdsaSha256,
}

impl SignatureName {
    /// The engine's algorithm.
    pub fn algorithm(self) -> secmms_pki::SignatureAlgorithm {
        match self {
            SignatureName::RsaSha256 => secmms_pki::SignatureAlgorithm::RsaPkcs1Sha256,
            SignatureName::EcdsaSha256 => secmms_pki::SignatureAlgorithm::EcdsaSha256,
        }
    }
}

/// Native mode: a bit of `confParams` (§13.1.3 ConfidentialityParms) we announce besides
/// `applProtected`, which is always set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfParam {
    /// tlsProtected(0): the link under us is TLS.
    #[serde(rename = "tls-protected")]
    TlsProtected,
    /// vpn(2): the link under us is a VPN.
    #[serde(rename = "vpn")]
    Vpn,
}

/// Bounds of the native-mode key-refresh interval (§13.3.3: 15 minutes to 24 hours).
pub const REKEY_INTERVAL_SECS: (u64, u64) = (900, 86_400);
/// Default key-refresh interval: one hour.
pub const DEFAULT_REKEY_INTERVAL_SECS: u64 = 3_600;

/// What happens to peers that match no `[[security.peers]]` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownPeers {
    /// They must meet the configured mode over any transport.
    #[default]
    RequireMode,
    /// They are refused.
    Refuse,
}

/// The `[security]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Application security (`--mode`).
    pub mode: AppMode,
    /// Our application certificate (PEM or DER; `--app-cert`). Separate from the TLS one
    /// (Annex G.2).
    pub app_cert: Option<PathBuf>,
    /// Its private key (PEM; `--app-key`).
    pub app_key: Option<PathBuf>,
    /// Trust anchors for the peers' application certificates (PEM files); `[tls] ca` when empty.
    pub ca: Vec<PathBuf>,
    /// CRLs for the application certificates (PEM); `[tls] crl` when empty.
    pub crl: Vec<PathBuf>,
    /// Native mode: our IEC 62351-8 attribute certificate (PEM `ATTRIBUTE CERTIFICATE` or DER;
    /// `--attribute-cert`), sent as `attCert` in the handshake (§13.3.1.6). Made by
    /// `secmms cert issue-ac` for our application certificate.
    pub attribute_certificate: Option<PathBuf>,
    /// Native mode: the attribute authorities whose attribute certificates a peer may present
    /// (PEM certificates; `--attribute-authority`). Empty: a peer's `attCert` is refused with
    /// `invalid-attribute-certificate` (it cannot be validated).
    pub attribute_authorities: Vec<PathBuf>,
    /// OCSP for the peers' application certificates (§6.2.8): `off`, `soft-fail` or
    /// `hard-fail`, looked up after the association request verified and before it is
    /// answered. Unset: as `[tls] ocsp_check` (so `--ocsp-check` covers both).
    pub ocsp_check: Option<crate::ocsp::OcspCheck>,
    /// The OCSP responder for application certificates; unset: `[tls] ocsp_responder`, else
    /// the certificate's authorityInfoAccess.
    pub ocsp_responder: Option<String>,
    /// Native mode: data-transfer protection we offer as a client (`--encrypt`).
    pub encrypt: Encrypt,
    /// Native mode: the encryption rule both roles enforce (`--require-encryption` sets
    /// `required`). A client whose own `encrypt` breaks it is a configuration error.
    pub encryption: EncryptionRule,
    /// Native mode: only authenticated encryption (AES-GCM) is accepted (§13.3.1.5
    /// `ae-is-required`); with `encrypt` other than `gcm` a client is misconfigured.
    pub require_ae: bool,
    /// Native mode: Diffie-Hellman groups. A client offers them in this order; a server accepts
    /// only these. Empty: the client offers `ecdh-p256`, the server accepts all three.
    pub dh_groups: Vec<DhGroupName>,
    /// Native mode: signature algorithms accepted from the peer (empty: both).
    pub signatures: Vec<SignatureName>,
    /// Native mode: the key-refresh interval, seconds (900 ..= 86400; default 3600).
    pub rekey_interval_secs: u64,
    /// Native mode: `confParams` bits announced besides `applProtected`.
    pub conf_params: Vec<ConfParam>,
    /// Native mode: the `pp` token of the protected protocol we send (default `IEC61850-8-1`).
    pub protected_protocol: Option<String>,
    /// Native mode: the `pp` tokens a server accepts (empty: only `protected_protocol`).
    pub accepted_protocols: Vec<String>,
    /// Annex G.2: a peer's application certificate that is a TLS certificate of the
    /// connection (the peer's or ours) is refused, in both modes (default true). Off only for
    /// a peer that cannot be fixed; the refusal is AP_TLS_CERT_REUSED (compat) or PKCERT_ERROR
    /// with `invalid-public-key-certificate` (native).
    pub separate_certificates: bool,
    /// Accepted clock difference, seconds (§11.4 and §13.1.2: 600).
    pub time_window_secs: u64,
    /// Client, compatibility mode: omit the mmsAuthenticationAS context (§11.3 DECISION).
    pub sisco_compat: bool,
    /// Peers that match no row.
    pub unknown_peers: UnknownPeers,
    /// Native mode: abstract syntax of the SecPDUs, e2eSecurityAS (spec §9 DECISION: the
    /// standard's number is unknown; default 1.0.62351.4.1.1.1).
    pub e2e_security_as: Option<String>,
    /// Native mode: application context, e2eMmsAC (spec §9 DECISION; default 1.0.62351.4.2.1).
    pub e2e_mms_ac: Option<String>,
    /// Compatibility mode: abstract syntax of mmsAuthenticationAS (spec §9; default
    /// 1.0.840.0.1.1.4.1).
    pub mms_authentication_as: Option<String>,
    /// The clause 5.1 bilateral table.
    pub peers: Vec<PeerEntry>,
}

/// Default accepted clock difference (§11.4, §13.1.2: 10 minutes).
pub const DEFAULT_TIME_WINDOW_SECS: u64 = 600;

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            mode: AppMode::Plain,
            app_cert: None,
            app_key: None,
            ca: Vec::new(),
            crl: Vec::new(),
            attribute_certificate: None,
            attribute_authorities: Vec::new(),
            ocsp_check: None,
            ocsp_responder: None,
            encrypt: Encrypt::Gcm,
            encryption: EncryptionRule::Optional,
            require_ae: false,
            dh_groups: Vec::new(),
            signatures: Vec::new(),
            rekey_interval_secs: DEFAULT_REKEY_INTERVAL_SECS,
            conf_params: Vec::new(),
            protected_protocol: None,
            accepted_protocols: Vec::new(),
            separate_certificates: true,
            time_window_secs: DEFAULT_TIME_WINDOW_SECS,
            sisco_compat: false,
            unknown_peers: UnknownPeers::RequireMode,
            e2e_security_as: None,
            e2e_mms_ac: None,
            mms_authentication_as: None,
            peers: Vec::new(),
        }
    }
}

fn value_err(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        field,
        reason: reason.into(),
    }
}

impl SecurityConfig {
    /// Checks the section on its own (files are read when the security context is built).
    pub fn validate(&self, tls_ca: &[PathBuf]) -> Result<(), ConfigError> {
        if let Some(u) = &self.ocsp_responder {
            if !u.starts_with("http://") || u.len() > 2048 {
                return Err(value_err(
                    "security.ocsp_responder",
                    "must be an http:// URL (RFC 6960 Appendix A) of at most 2048 characters",
                ));
            }
        }
        if self.mode != AppMode::Native
            && (self.attribute_certificate.is_some() || !self.attribute_authorities.is_empty())
        {
            return Err(value_err(
                "security.attribute_certificate",
                "attribute certificates travel in the E2E handshake: they need mode `native`",
            ));
        }
        if self.mode != AppMode::Plain {
            if self.app_cert.is_none() || self.app_key.is_none() {
                return Err(value_err(
                    "security.app_cert",
                    format!(
                        "mode `{}` needs an application certificate and key (--app-cert, --app-key)",
                        self.mode.name()
                    ),
                ));
            }
            if self.ca.is_empty() && tls_ca.is_empty() {
                return Err(value_err(
                    "security.ca",
                    format!(
                        "mode `{}` needs trust anchors for the peers' certificates (--ca)",
                        self.mode.name()
                    ),
                ));
            }
        }
        for (field, v) in [
            ("security.e2e_security_as", &self.e2e_security_as),
            ("security.e2e_mms_ac", &self.e2e_mms_ac),
            (
                "security.mms_authentication_as",
                &self.mms_authentication_as,
            ),
        ] {
            if let Some(v) = v {
                v.parse::<Oid>()
                    .map_err(|_| value_err(field, format!("`{v}` is not a dotted OID")))?;
            }
        }
        if !(1..=86_400).contains(&self.time_window_secs) {
            return Err(value_err("security.time_window_secs", "1 ..= 86400"));
        }
        let (lo, hi) = REKEY_INTERVAL_SECS;
        if !(lo..=hi).contains(&self.rekey_interval_secs) {
            return Err(value_err(
                "security.rekey_interval_secs",
                format!("{lo} ..= {hi} (§13.3.3: 15 minutes to 24 hours)"),
            ));
        }
        match (self.encryption, self.encrypt) {
            (EncryptionRule::Required, Encrypt::None) => {
                return Err(value_err(
                    "security.encryption",
                    "encryption is required (--require-encryption) but --encrypt none offers none",
                ))
            }
            (EncryptionRule::Forbidden, Encrypt::Gcm | Encrypt::Cbc) => {
                return Err(value_err(
                    "security.encryption",
                    format!(
                        "encryption is forbidden but --encrypt {} offers it (use --encrypt none)",
                        self.encrypt.name()
                    ),
                ))
            }
            _ => {}
        }
        if self.require_ae && self.encrypt != Encrypt::Gcm {
            return Err(value_err(
                "security.require_ae",
                format!(
                    "authenticated encryption is required but --encrypt {} does not offer it",
                    self.encrypt.name()
                ),
            ));
        }
        if self.require_ae && self.encryption == EncryptionRule::Forbidden {
            return Err(value_err(
                "security.require_ae",
                "require_ae and encryption = \"forbidden\" exclude each other",
            ));
        }
        for pp in self
            .protected_protocol
            .iter()
            .chain(&self.accepted_protocols)
        {
            if pp.is_empty() || pp.len() > 64 || !pp.is_ascii() {
                return Err(value_err(
                    "security.protected_protocol",
                    format!("`{pp}`: 1 to 64 ASCII characters"),
                ));
            }
        }
        self.table(AppMode::Compat).map(|_| ())
    }

    /// The TLS identity the first row matching a called peer names (`tls_server_name`), if
    /// that row names one. Rows match as in [`SecurityConfig::table`]: fields left out match any
    /// peer; the first match wins.
    pub fn tls_server_name_for(
        &self,
        address: Option<IpAddr>,
        ap_title: Option<&Oid>,
        ae_qualifier: Option<i64>,
    ) -> Option<String> {
        let row = self.peers.iter().find(|p| {
            PeerMatch {
                address: p.address,
                ap_title: p.ap_title.as_deref().and_then(|t| t.parse().ok()),
                ae_qualifier: p.ae_qualifier,
            }
            .matches(address, ap_title, ae_qualifier)
        })?;
        row.tls_server_name.clone()
    }

    fn default_application(mode: AppMode) -> ApplicationSecurity {
        match mode {
            AppMode::Plain => ApplicationSecurity::NonSecure,
            AppMode::Compat => ApplicationSecurity::Secure,
            AppMode::Native => ApplicationSecurity::EndToEndSecure,
        }
    }

    /// The §5.1 table these settings describe for `mode`.
    pub fn table(&self, mode: AppMode) -> Result<PeerTable, ConfigError> {
        let mut peers = Vec::new();
        for p in &self.peers {
            let ap_title = p
                .ap_title
                .as_deref()
                .map(|s| {
                    s.parse::<Oid>().map_err(|_| {
                        value_err("security.peers.ap_title", format!("`{s}` is not an OID"))
                    })
                })
                .transpose()?;
            let certificate_subject = p
                .certificate_subject
                .as_deref()
                .map(|s| {
                    s.parse::<Oid>().map(PeerIdentity::ApTitle).map_err(|_| {
                        value_err(
                            "security.peers.certificate_subject",
                            format!("`{s}` is not an OID"),
                        )
                    })
                })
                .transpose()?;
            peers.push(PeerPolicy {
                name: p.name.clone(),
                matcher: PeerMatch {
                    address: p.address,
                    ap_title,
                    ae_qualifier: p.ae_qualifier,
                },
                certificate_subject,
                transport: match p.transport {
                    PeerTransport::DontCare => TransportSecurity::DontCare,
                    PeerTransport::NonSecure => TransportSecurity::NonSecure,
                    PeerTransport::Secure => TransportSecurity::Secure,
                },
                application: match p.application {
                    Some(PeerApplication::NonSecure) => ApplicationSecurity::NonSecure,
                    Some(PeerApplication::Secure) => ApplicationSecurity::Secure,
                    Some(PeerApplication::EndToEndSecure) => ApplicationSecurity::EndToEndSecure,
                    None => Self::default_application(mode),
                },
                sisco_compat: p.sisco_compat,
            });
        }
        let default = match self.unknown_peers {
            UnknownPeers::Refuse => None,
            UnknownPeers::RequireMode => Some(PeerPolicy {
                application: Self::default_application(mode),
                sisco_compat: self.sisco_compat,
                ..PeerPolicy::any(secmms_profiles::policy::DEFAULT_ROW_NAME)
            }),
        };
        Ok(PeerTable { peers, default })
    }
}

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
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
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

/// Our titles: the configured ones must equal the certificate's binding; absent ones come from
/// it. A certificate without an AP-title binding leaves the configured (or default) titles.
fn local_titles(
    osi: &crate::config::OsiSettings,
    info: &CertInfo,
    cert: &Path,
) -> Result<Option<(Oid, i64)>, SecurityError> {
    let Some((ap, ae)) = info.identity.as_ref().and_then(titles_of_identity) else {
        return Ok(None);
    };
    let configured_ap = osi
        .local_ap_title
        .as_deref()
        .map(|s| {
            s.parse::<Oid>()
                .map_err(|_| value_err("osi.local_ap_title", format!("`{s}` is not an OID")))
        })
        .transpose()?;
    let want_ap = configured_ap.clone().unwrap_or_else(|| ap.clone());
    let want_ae = osi.local_ae_qualifier.unwrap_or(ae);
    if want_ap != ap || want_ae != ae {
        return Err(SecurityError::TitlesMismatch {
            configured: format!("{want_ap} / {want_ae}"),
            bound: format!("{ap} / {ae}"),
            cert: cert.to_owned(),
        });
    }
    Ok(Some((ap, ae)))
}

fn read(path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Io {
        path: path.to_owned(),
        source,
    })
}

fn cred_err(path: &Path, reason: impl std::fmt::Display) -> SecurityError {
    SecurityError::Credential {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads one certificate, PEM or DER, as DER.
pub fn load_certificate(path: &Path) -> Result<Vec<u8>, SecurityError> {
    let bytes = read(path)?;
    let x = if bytes.starts_with(b"-----") || bytes.iter().take(64).all(|b| b.is_ascii()) {
        X509::from_pem(&bytes)
    } else {
        X509::from_der(&bytes)
    };
    match x.and_then(|c| c.to_der()) {
        Ok(der) => Ok(der),
        Err(e) => {
            // OpenSSL 3.0 cannot load the Annex G.6.2 OBJECT IDENTIFIER subject form
            // (`secmms cert issue --subject-form oid`): take the DER out of the PEM here and
            // accept it when it parses as a certificate with a usable key.
            let der = secmms_pki::tooling::pem_or_der("CERTIFICATE", &bytes).unwrap_or(bytes);
            match secmms_pki::cert::public_key_of(&der) {
                Ok(_) => Ok(der),
                Err(_) => Err(cred_err(path, format!("not a certificate: {e}"))),
            }
        }
    }
}

/// Reads a private key (PEM).
pub fn load_key(path: &Path) -> Result<SigningKey, SecurityError> {
    let bytes = read(path)?;
    SigningKey::from_pem(&bytes).map_err(|e| cred_err(path, format!("not a usable key: {e}")))
}

/// Writes a private key as PKCS#8 PEM readable by its owner only (0600 on Unix), replacing any
/// file at `path`. The key is never printed or logged.
pub fn write_private_key(path: &Path, key: &SigningKey) -> std::io::Result<()> {
    use std::io::Write;
    let pem = key
        .pkey()
        .private_key_to_pem_pkcs8()
        .map_err(std::io::Error::other)?;
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(&pem)
}

/// Our attribute certificate (`[security] attribute_certificate`), DER, checked to be one.
pub fn load_attribute_certificate(s: &SecurityConfig) -> Result<Option<Vec<u8>>, SecurityError> {
    let Some(p) = &s.attribute_certificate else {
        return Ok(None);
    };
    let bytes = read(p)?;
    let der = secmms_pki::tooling::pem_or_der("ATTRIBUTE CERTIFICATE", &bytes)
        .map_err(|e| cred_err(p, format!("not an attribute certificate: {e}")))?;
    secmms_pki::acert::parse(&der)
        .map_err(|e| cred_err(p, format!("not a usable attribute certificate: {e}")))?;
    Ok(Some(der))
}

/// A validator with the anchors, CRLs and attribute authorities of these files.
pub fn load_validator(
    anchors: &[PathBuf],
    crls: &[PathBuf],
    attribute_authorities: &[PathBuf],
) -> Result<OpenSslValidator, SecurityError> {
    let mut v = OpenSslValidator::new();
    for p in attribute_authorities {
        let bytes = read(p)?;
        let certs = X509::stack_from_pem(&bytes)
            .map_err(|e| cred_err(p, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(cred_err(p, "no certificate"));
        }
        for c in certs {
            v.add_attribute_authority(c);
        }
    }
    for p in anchors {
        let bytes = read(p)?;
        let certs = X509::stack_from_pem(&bytes)
            .map_err(|e| cred_err(p, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(cred_err(p, "no certificate"));
        }
        for c in certs {
            v.add_anchor(c);
        }
    }
    for p in crls {
        for crl in read_crls(p)? {
            v.add_crl(crl);
        }
    }
    Ok(v)
}

/// Every CRL in a file: PEM (one or more `X509 CRL` blocks) or one DER CRL.
fn read_crls(p: &Path) -> Result<Vec<X509Crl>, SecurityError> {
    let bytes = read(p)?;
    let bad = |e: String| cred_err(p, format!("not a CRL: {e}"));
    if !bytes.starts_with(b"-----") && !bytes.iter().take(64).all(u8::is_ascii) {
        return Ok(vec![
            X509Crl::from_der(&bytes).map_err(|e| bad(e.to_string()))?
        ]);
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| bad(e.to_string()))?;
    let end = "-----END X509 CRL-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("-----BEGIN X509 CRL-----") {
        let Some(j) = rest[i..].find(end) else { break };
        let block = &rest[i..i + j + end.len()];
        out.push(X509Crl::from_pem(block.as_bytes()).map_err(|e| bad(e.to_string()))?);
        rest = &rest[i + j + end.len()..];
    }
    if out.is_empty() {
        return Err(bad("no X509 CRL block".into()));
    }
    Ok(out)
}

/// The application-certificate validator of a running process: the configured trust anchors and
/// CRLs, with the CRLs read again on demand ([`ReloadableValidator::reload`]: on the TLS
/// schedule, `crl_evaluation_period_secs`, and on SIGHUP). Both profiles share one.
pub struct ReloadableValidator {
    anchors: Vec<PathBuf>,
    crls: Vec<PathBuf>,
    attribute_authorities: Vec<PathBuf>,
    current: std::sync::RwLock<Arc<OpenSslValidator>>,
    digest: std::sync::Mutex<[u8; 32]>,
}

impl std::fmt::Debug for ReloadableValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableValidator")
            .field("anchors", &self.anchors)
            .field("crls", &self.crls)
            .finish_non_exhaustive()
    }
}

impl ReloadableValidator {
    /// Reads the anchors, CRLs and attribute authorities.
    pub fn load(
        anchors: &[PathBuf],
        crls: &[PathBuf],
        attribute_authorities: &[PathBuf],
    ) -> Result<Self, SecurityError> {
        let v = load_validator(anchors, crls, attribute_authorities)?;
        Ok(ReloadableValidator {
            anchors: anchors.to_vec(),
            crls: crls.to_vec(),
            attribute_authorities: attribute_authorities.to_vec(),
            current: std::sync::RwLock::new(Arc::new(v)),
            digest: std::sync::Mutex::new(Self::digest_of(crls)?),
        })
    }

    fn digest_of(crls: &[PathBuf]) -> Result<[u8; 32], SecurityError> {
        let mut all = Vec::new();
        for p in crls {
            all.extend_from_slice(p.as_os_str().as_encoded_bytes());
            all.push(0);
            all.extend_from_slice(&sha256(&read(p)?));
        }
        Ok(sha256(&all))
    }

    /// Reads the CRL files again. `Ok(true)` when they changed (the new CRLs are in force; live
    /// associations should be re-checked), `Ok(false)` when they did not. On an error (a file
    /// missing or unreadable) the CRLs in force stay.
    pub fn reload(&self) -> Result<bool, SecurityError> {
        let digest = Self::digest_of(&self.crls)?;
        let mut d = match self.digest.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if *d == digest {
            return Ok(false);
        }
        let fresh = Arc::new(load_validator(
            &self.anchors,
            &self.crls,
            &self.attribute_authorities,
        )?);
        match self.current.write() {
            Ok(mut g) => *g = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        *d = digest;
        Ok(true)
    }

    /// The trust anchors in force.
    pub fn anchors(&self) -> Vec<X509> {
        self.current().anchors().to_vec()
    }

    fn current(&self) -> Arc<OpenSslValidator> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl secmms_pki::CertValidator for ReloadableValidator {
    fn validate(
        &self,
        leaf_der: &[u8],
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<secmms_pki::ValidatedCert, secmms_pki::CertError> {
        self.current().validate(leaf_der, path_der, now)
    }

    fn validate_parsed(
        &self,
        leaf_der: &[u8],
        leaf: &X509,
        public_key: &openssl::pkey::PKey<openssl::pkey::Public>,
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<secmms_pki::ValidatedCert, secmms_pki::CertError> {
        self.current()
            .validate_parsed(leaf_der, leaf, public_key, path_der, now)
    }

    fn validate_attribute_cert(
        &self,
        acert_der: &[u8],
        holder: &secmms_pki::ValidatedCert,
        now: i64,
    ) -> Result<(), secmms_pki::CertError> {
        self.current()
            .validate_attribute_cert(acert_der, holder, now)
    }
}

fn parse_checked(s: &str) -> Result<Oid, SecurityError> {
    s.parse()
        .map_err(|_| value_err("security", format!("`{s}` is not a dotted OID")).into())
}

/// The E2E engine context of native mode (clauses 13–14) from the `[security]` section and the
/// loaded credentials: the offer follows `encrypt`, the time window `time_window_secs`.
pub fn e2e_context(
    s: &SecurityConfig,
    certificate: Vec<u8>,
    key: SigningKey,
    att_cert: Option<Vec<u8>>,
    validator: Arc<dyn secmms_pki::CertValidator>,
) -> E2eContext {
    let e2e = e2e_config(s);
    E2eContext {
        config: Arc::new(e2e),
        credentials: Arc::new(E2eCredentials {
            key,
            cert_der: certificate,
            cert_path: None,
            att_cert,
        }),
        validator,
        replay: Arc::new(std::sync::Mutex::new(secmms_e2e::replay::ReplayCache::new())),
    }
}

/// The E2E engine configuration the `[security]` section describes (§13.3.1.5 policy, both
/// roles): the offer follows `encrypt`, the rule `encryption` and `require_ae`, the groups,
/// signatures, rekey interval, `confParams` and `pp` their keys. The PICS reads the same value.
pub fn e2e_config(s: &SecurityConfig) -> E2eConfig {
    let mut e2e = E2eConfig {
        time_window_ms: s.time_window_secs.saturating_mul(1000),
        rekey_interval_ms: s.rekey_interval_secs.saturating_mul(1000),
        require_ae: s.require_ae,
        encryption: match s.encryption {
            EncryptionRule::Optional => EncryptionPolicy::Optional,
            EncryptionRule::Required => EncryptionPolicy::Required,
            EncryptionRule::Forbidden => EncryptionPolicy::Forbidden,
        },
        ..E2eConfig::default()
    };
    if !s.dh_groups.is_empty() {
        e2e.offer_groups = s.dh_groups.iter().map(|g| g.group()).collect();
        e2e.accept_groups = e2e.offer_groups.clone();
    }
    if !s.signatures.is_empty() {
        e2e.allowed_signatures = s.signatures.iter().map(|g| g.algorithm()).collect();
    }
    for c in &s.conf_params {
        match c {
            ConfParam::TlsProtected => e2e.conf_params.tls_protected = true,
            ConfParam::Vpn => e2e.conf_params.vpn = true,
        }
    }
    if let Some(pp) = &s.protected_protocol {
        e2e.protected_protocol = pp.clone();
        e2e.accepted_protocols = vec![pp.clone()];
    }
    if !s.accepted_protocols.is_empty() {
        e2e.accepted_protocols = s.accepted_protocols.clone();
    }
    e2e.offer = match s.encrypt {
        Encrypt::Gcm => ModeOffer::Ae(vec![AeAlg::Aes128Gcm, AeAlg::Aes256Gcm]),
        Encrypt::Cbc => ModeOffer::NonAe {
            encr: vec![EncrAlg::Aes128Cbc, EncrAlg::Aes256Cbc],
            icv: vec![IcvAlg::HmacSha256],
        },
        Encrypt::None => ModeOffer::NonAe {
            encr: Vec::new(),
            icv: vec![IcvAlg::HmacSha256],
        },
    };
    e2e
}

/// Loads the application credentials and trust anchors `cfg.security` names (with `[tls]` as
/// fallback for anchors and CRLs) and builds the E2E context of native mode.
pub fn load_e2e_context(cfg: &crate::config::Config) -> Result<E2eContext, SecurityError> {
    let s = &cfg.security;
    let (Some(cert_p), Some(key_p)) = (&s.app_cert, &s.app_key) else {
        return Err(value_err(
            "security.app_cert",
            "native mode needs --app-cert and --app-key",
        )
        .into());
    };
    let certificate = load_certificate(cert_p)?;
    let key = load_key(key_p)?;
    let anchors = if s.ca.is_empty() { &cfg.tls.ca } else { &s.ca };
    let crls = if s.crl.is_empty() {
        &cfg.tls.crl
    } else {
        &s.crl
    };
    let validator = Arc::new(load_validator(anchors, crls, &s.attribute_authorities)?);
    let att_cert = load_attribute_certificate(s)?;
    Ok(e2e_context(s, certificate, key, att_cert, validator))
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

/// What an OCSP answer about a peer's application certificate means under `ocsp_check`.
pub(crate) struct OcspOutcome {
    /// The responder said revoked.
    pub(crate) revoked: bool,
    /// The peer is refused (revoked, or no answer under hard-fail).
    pub(crate) refuse: bool,
    /// The reason, for the event.
    pub(crate) why: String,
}

/// `None` when the answer is good; otherwise what to do and say (§6.2.8: revoked refuses, no
/// usable answer warns under soft-fail and refuses under hard-fail).
pub(crate) fn ocsp_outcome(
    check: crate::ocsp::OcspCheck,
    verdict: crate::ocsp::OcspVerdict,
) -> Option<OcspOutcome> {
    use crate::ocsp::{OcspCheck, OcspVerdict};
    let (revoked, why) = match verdict {
        OcspVerdict::Good => return None,
        OcspVerdict::Revoked => (
            true,
            "OCSP: the peer's application certificate is revoked".to_string(),
        ),
        OcspVerdict::Unavailable(why) => (false, format!("OCSP: {why}")),
    };
    let refuse = revoked || check == OcspCheck::HardFail;
    let why = if revoked {
        why
    } else if refuse {
        format!("{why} (ocsp_check = hard-fail: refused)")
    } else {
        format!("{why} (ocsp_check = soft-fail: let in)")
    };
    Some(OcspOutcome {
        revoked,
        refuse,
        why,
    })
}

/// OCSP of the peers' application certificates (§6.2.8): the policy, the checker with its
/// cache, and the anchors the issuer is found among. Used by both OSI profiles and by XMPP.
pub(crate) struct PeerOcsp {
    check: crate::ocsp::OcspCheck,
    checker: crate::ocsp::OcspChecker,
    anchors: Arc<ReloadableValidator>,
}

impl PeerOcsp {
    /// From the configuration (`[security] ocsp_*`, else `[tls] ocsp_*`); `None` when
    /// `ocsp_check` is off.
    pub(crate) fn from_config(
        cfg: &crate::config::Config,
        anchors: Arc<ReloadableValidator>,
    ) -> Option<PeerOcsp> {
        let s = &cfg.security;
        let check = s.ocsp_check.unwrap_or(cfg.tls.ocsp_check);
        (check != crate::ocsp::OcspCheck::Off).then(|| PeerOcsp {
            check,
            checker: crate::ocsp::OcspChecker::new(
                s.ocsp_responder
                    .clone()
                    .or_else(|| cfg.tls.ocsp_responder.clone()),
                std::time::Duration::from_secs(cfg.tls.ocsp_timeout_secs.clamp(1, 60)),
            ),
            anchors,
        })
    }

    /// Looks `cert` (DER) up: `None` when the answer is good.
    pub(crate) async fn outcome(&self, cert: &[u8]) -> Option<OcspOutcome> {
        let verdict = self.checker.check_der(cert, &self.anchors.anchors()).await;
        ocsp_outcome(self.check, verdict)
    }
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

    /// Builds the context the configuration asks for: reads the application certificate, key,
    /// anchors and CRLs. `own_tls_certs` are the DER TLS certificates of this process, which may
    /// not double as application certificates (Annex G.2).
    pub fn build(
        cfg: &crate::config::Config,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Self, SecurityError> {
        let s = &cfg.security;
        s.validate(&cfg.tls.ca)?;
        if s.mode == AppMode::Plain {
            return Ok(Self::plain());
        }
        let (Some(cert_p), Some(key_p)) = (&s.app_cert, &s.app_key) else {
            return Err(value_err("security.app_cert", "missing").into());
        };
        let certificate = load_certificate(cert_p)?;
        let info = CertInfo::parse(&certificate)
            .map_err(|e| cred_err(cert_p, format!("unusable certificate: {e}")))?;
        let local_titles = local_titles(&cfg.osi, &info, cert_p)?;
        let key = load_key(key_p)?;
        let anchors = if s.ca.is_empty() { &cfg.tls.ca } else { &s.ca };
        let crls = if s.crl.is_empty() {
            &cfg.tls.crl
        } else {
            &s.crl
        };
        let validator = Arc::new(ReloadableValidator::load(
            anchors,
            crls,
            &s.attribute_authorities,
        )?);
        let mut own_tls = Vec::new();
        if cfg.tls.enabled && s.separate_certificates {
            if let Some(p) = &cfg.tls.cert {
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
        let ocsp = PeerOcsp::from_config(cfg, validator.clone()).map(|ocsp| {
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
                Inner::Native(NativeShared::new(ctx, ncfg, table.clone(), sink.clone()))
            }
        };
        Ok(AppSecurity {
            mode: s.mode,
            inner,
            sisco_compat: s.sisco_compat,
            table: Arc::new(table),
            local_titles,
            peer_titles_configured: cfg.osi.remote_ap_title.is_some()
                || cfg.osi.remote_ae_qualifier.is_some(),
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
        mut osi: OsiConfig,
        conn: &ConnectionFacts,
        timeouts: Timeouts,
        now: Now,
    ) -> SecureAssociation {
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
        SecureAssociation::new(Role::Responder, osi, protection, timeouts, now)
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
    pub(crate) fn peer_ocsp_lookup(
        &self,
        sa: &SecureAssociation,
    ) -> Option<crate::driver::BoxFuture<Option<OcspOutcome>>> {
        let o = self.ocsp.clone()?;
        let cert = sa.protection().peer_certificate()?;
        Some(Box::pin(async move { o.ocsp.outcome(&cert).await }))
    }

    /// Acts on an OCSP outcome of [`Self::peer_ocsp_lookup`]: a refused peer gets the abort its
    /// profile prescribes (queued on `sa`; the error says why), a soft-fail warning becomes an
    /// event naming `label`.
    pub(crate) fn apply_peer_ocsp(
        &self,
        sa: &mut SecureAssociation,
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
