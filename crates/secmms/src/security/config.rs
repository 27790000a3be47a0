//! The `[security]` section of the configuration: the mode, the native-mode policy, the
//! clause 5.1 bilateral table (`[[security.peers]]`) and their validation.

use std::net::IpAddr;
use std::path::PathBuf;

use secmms_ber::Oid;
use secmms_pki::PeerIdentity;
use secmms_profiles::policy::PeerMatch;
use secmms_profiles::{ApplicationSecurity, PeerPolicy, PeerTable, TransportSecurity};
use serde::{Deserialize, Serialize};

use crate::settings::SettingError;

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
    /// Native mode, OSI environment: write the E2E traffic keys of every association (one line
    /// per association and key generation, the format of `secmms_e2e::keylog`, documented in
    /// docs/EVENTS.md and `secmms decode --help`) to this file so that `secmms decode
    /// --e2e-keylog` can verify and decrypt a capture. Only ever set explicitly
    /// (`--e2e-keylog`); the file is created with mode 0600 (an existing file's mode is set
    /// to 0600) and every key derivation logged raises an `E2E_KEYLOG_ACTIVE` warning event.
    /// Private keys and Diffie-Hellman secrets are never written.
    pub e2e_keylog_file: Option<PathBuf>,
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
            e2e_keylog_file: None,
        }
    }
}

pub(super) fn value_err(field: &'static str, reason: impl Into<String>) -> SettingError {
    SettingError::new(field, reason)
}

impl SecurityConfig {
    /// Checks the section on its own (files are read when the security context is built).
    pub fn validate(&self, tls_ca: &[PathBuf]) -> Result<(), SettingError> {
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
        if self.mode != AppMode::Native && self.e2e_keylog_file.is_some() {
            return Err(value_err(
                "security.e2e_keylog_file",
                "an E2E key log holds the keys of native-mode associations: it needs mode `native`",
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
    pub fn table(&self, mode: AppMode) -> Result<PeerTable, SettingError> {
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
