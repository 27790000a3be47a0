//! Configuration and policy of the E2E engine. Every DECISION of the reconstruction that might
//! change when the authoritative text appears is a field or constant here.

use std::sync::Arc;

use secmms_ber::Limits;
use secmms_pki::crypto::{DhGroup, SignatureAlgorithm, SigningKey};

use crate::alg::{AeAlg, EncrAlg, IcvAlg};
use crate::pdu::ConfidentialityParms;

/// DECISION §13.3.1.2: 62351-4 group number for MODP-2048 (RFC 3526).
pub const DH_GROUP_MODP2048: i64 = 14;
/// DECISION §13.3.1.2: 62351-4 group "23" means ECDH secp256r1 (not RFC 5114 MODP-2048/224).
pub const DH_GROUP_P256: i64 = 23;
/// DECISION §13.3.1.2: IANA group 19 (secp256r1), accepted as an alias when responding.
pub const DH_GROUP_P256_IANA: i64 = 19;
/// §13.3.1.2: group 28 = brainpoolP256r1.
pub const DH_GROUP_BRAINPOOL: i64 = 28;

/// DECISION §13.1.3 / open question 6: default `pp` token for IEC 61850-8-1 (an NMTOKEN
/// cannot contain the space of the EXT extract's paraphrase).
pub const DEFAULT_PP: &str = "IEC61850-8-1";
/// §14.3 step 9 / §14.4 step 6 DECISION: time window ±600 s.
pub const DEFAULT_TIME_WINDOW_MS: u64 = 600_000;
/// §13.3.1.3: shortest allowed key-refresh interval (15 min).
pub const MIN_REKEY_INTERVAL_MS: u64 = 15 * 60_000;
/// §13.3.1.3: longest allowed key-refresh interval (24 h).
pub const MAX_REKEY_INTERVAL_MS: u64 = 24 * 3_600_000;
/// §13.3.2 DECISION: default key-refresh interval (60 min).
pub const DEFAULT_REKEY_INTERVAL_MS: u64 = 3_600_000;
/// §13.3.2 DECISION step 4: a rekey without `changedKey` for this long aborts the association.
pub const DEFAULT_REKEY_TIMEOUT_MS: u64 = 120_000;
/// §13.3.2 DECISION step 2: the server accepts old keys this long after switching.
pub const DEFAULT_REKEY_GRACE_MS: u64 = 60_000;

/// The group number of a [`DhGroup`] on the wire.
pub fn group_number(g: DhGroup) -> i64 {
    match g {
        DhGroup::Modp2048 => DH_GROUP_MODP2048,
        DhGroup::EcdhP256 => DH_GROUP_P256,
        DhGroup::EcdhBrainpoolP256r1 => DH_GROUP_BRAINPOOL,
    }
}

/// The [`DhGroup`] of a group number (`alias19` accepts IANA 19 for P-256).
pub fn group_from_number(n: i64, alias19: bool) -> Option<DhGroup> {
    match n {
        DH_GROUP_MODP2048 => Some(DhGroup::Modp2048),
        DH_GROUP_P256 => Some(DhGroup::EcdhP256),
        DH_GROUP_P256_IANA if alias19 => Some(DhGroup::EcdhP256),
        DH_GROUP_BRAINPOOL => Some(DhGroup::EcdhBrainpoolP256r1),
        _ => None,
    }
}

/// Local policy on application-layer encryption (§13.3.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionPolicy {
    /// Encryption must be used (`encryption-required` otherwise).
    Required,
    /// Either is acceptable.
    Optional,
    /// Encryption is not supported or not wanted (`encryption-not-required` /
    /// `aea-select-but-encryp-not-supp`).
    Forbidden,
}

/// What the client offers in `encr-mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeOffer {
    /// `aea` with these algorithms in preference order.
    Ae(Vec<AeAlg>),
    /// `non-aea`: encryption algorithms (empty = no encryption) and ICV algorithms.
    NonAe {
        /// Encryption algorithms; empty means the `encr` list is absent.
        encr: Vec<EncrAlg>,
        /// ICV algorithms.
        icv: Vec<IcvAlg>,
    },
}

/// How SecPDUs are written on the wire (§15 vs §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireEncoding {
    /// BER (X.690), the OSI environment of clause 15. Signatures and ICVs cover the `tbs` /
    /// `tbp` content octets.
    #[default]
    Ber,
    /// XML in the `E2E_4` namespace ([`crate::xml`]), the XMPP environment of clause 16. The
    /// engine produces and consumes UTF-8 XML text; signatures, ICVs and the AEAD AAD cover the
    /// exact characters between `<tbs>`/`<tbp>`/`<token2>` and their end tags (§16.3), and the
    /// HKDF salt chain (§13.3.1.3) hashes those same characters. The PrPDU is still handed over
    /// as BER octets ([`crate::xml::OPEN_TYPE_FORM`]).
    Xml,
}

/// Engine configuration (one per endpoint, shared by its associations).
#[derive(Debug, Clone)]
pub struct E2eConfig {
    /// `pp` sent in HandshakeReq/Acc.
    pub protected_protocol: String,
    /// `pp` values a server accepts (§14.3 step 7).
    pub accepted_protocols: Vec<String>,
    /// Allowed |time − now| in milliseconds (handshake and data transfer).
    pub time_window_ms: u64,
    /// Key-refresh interval, clamped to [`MIN_REKEY_INTERVAL_MS`]..=[`MAX_REKEY_INTERVAL_MS`].
    pub rekey_interval_ms: u64,
    /// Rekey timeout of the client.
    pub rekey_timeout_ms: u64,
    /// Grace period for old keys at the server.
    pub rekey_grace_ms: u64,
    /// Client: DH groups offered, in preference order (one key pair each).
    pub offer_groups: Vec<DhGroup>,
    /// Server: DH groups accepted.
    pub accept_groups: Vec<DhGroup>,
    /// Server: accept IANA group 19 as P-256.
    pub accept_group19_alias: bool,
    /// Signature algorithms accepted from peers.
    pub allowed_signatures: Vec<SignatureAlgorithm>,
    /// Client: the encr-mode offer.
    pub offer: ModeOffer,
    /// Server: AE algorithms supported (empty = `encr-mode-aea-not-supported`).
    pub allowed_ae: Vec<AeAlg>,
    /// Server: encryption algorithms supported in non-AE mode.
    pub allowed_encr: Vec<EncrAlg>,
    /// Server: ICV algorithms supported.
    pub allowed_icv: Vec<IcvAlg>,
    /// Server: only AE mode is acceptable (`ae-is-required`).
    pub require_ae: bool,
    /// Encryption policy (both roles).
    pub encryption: EncryptionPolicy,
    /// confParams announced (applProtected is set automatically when encryption is offered or
    /// selected, §13.3.1.5).
    pub conf_params: ConfidentialityParms,
    /// BER limits for SecPDU decoding (in XML mode they also scale the XML limits, see
    /// [`crate::limits::XmlLimits::from_ber`]).
    pub limits: Limits,
    /// Wire encoding of the SecPDUs (default BER).
    pub encoding: WireEncoding,
}

impl Default for E2eConfig {
    fn default() -> Self {
        E2eConfig {
            protected_protocol: DEFAULT_PP.to_string(),
            accepted_protocols: vec![DEFAULT_PP.to_string()],
            time_window_ms: DEFAULT_TIME_WINDOW_MS,
            rekey_interval_ms: DEFAULT_REKEY_INTERVAL_MS,
            rekey_timeout_ms: DEFAULT_REKEY_TIMEOUT_MS,
            rekey_grace_ms: DEFAULT_REKEY_GRACE_MS,
            offer_groups: vec![DhGroup::EcdhP256],
            accept_groups: vec![
                DhGroup::EcdhP256,
                DhGroup::Modp2048,
                DhGroup::EcdhBrainpoolP256r1,
            ],
            accept_group19_alias: true,
            allowed_signatures: vec![
                SignatureAlgorithm::RsaPkcs1Sha256,
                SignatureAlgorithm::EcdsaSha256,
            ],
            offer: ModeOffer::Ae(vec![AeAlg::Aes128Gcm, AeAlg::Aes256Gcm]),
            allowed_ae: vec![AeAlg::Aes128Gcm, AeAlg::Aes256Gcm],
            allowed_encr: vec![EncrAlg::Aes128Cbc, EncrAlg::Aes256Cbc],
            allowed_icv: vec![IcvAlg::HmacSha256, IcvAlg::Gmac128, IcvAlg::Gmac256],
            require_ae: false,
            encryption: EncryptionPolicy::Optional,
            conf_params: ConfidentialityParms::default(),
            limits: crate::limits::default_ber_limits(),
            encoding: WireEncoding::Ber,
        }
    }
}

impl E2eConfig {
    /// The rekey interval clamped to the 15 min – 24 h range of §13.3.1.3.
    pub fn effective_rekey_interval_ms(&self) -> u64 {
        self.rekey_interval_ms
            .clamp(MIN_REKEY_INTERVAL_MS, MAX_REKEY_INTERVAL_MS)
    }
}

/// The local end entity: signing key, its Annex G certificate and optional CA path and
/// attribute certificate.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Signing key (its algorithm becomes `sigAlg`).
    pub key: SigningKey,
    /// DER end-entity certificate (`pkCert`).
    pub cert_der: Vec<u8>,
    /// DER PkiPath of CA certificates (`certPath`).
    pub cert_path: Option<Vec<u8>>,
    /// DER attribute certificate (`attCert`).
    pub att_cert: Option<Vec<u8>>,
}

/// Shared handles an association needs.
#[derive(Clone)]
pub struct Context {
    /// Configuration.
    pub config: Arc<E2eConfig>,
    /// Local credentials.
    pub credentials: Arc<Credentials>,
    /// Certificate validation.
    pub validator: Arc<dyn secmms_pki::CertValidator>,
    /// Handshake replay cache shared by all associations of the endpoint (§14.3 step 10).
    pub replay: Arc<dyn crate::replay::HandshakeReplay>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
