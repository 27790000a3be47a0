//! Algorithm identifiers of §8 (Table 11) and their mapping to the primitives of
//! `secmms_pki::crypto`.

use secmms_ber::Oid;
use secmms_pki::crypto::SignatureAlgorithm;

use crate::pdu::AlgorithmIdentifier;

/// sha256WithRSAEncryption (RFC 4055).
pub const OID_SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
/// ecdsa-with-SHA256 (RFC 5758).
pub const OID_ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
/// hmacWithSHA256 (RFC 8018).
pub const OID_HMAC_WITH_SHA256: &[u64] = &[1, 2, 840, 113549, 2, 9];
/// aes128-CBC (RFC 3565).
pub const OID_AES128_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 2];
/// aes256-CBC (RFC 3565).
pub const OID_AES256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
/// aes128-GCM (RFC 5084).
pub const OID_AES128_GCM: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 6];
/// aes256-GCM (RFC 5084).
pub const OID_AES256_GCM: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 46];

/// DER of NULL parameters.
pub const NULL_PARAMS: &[u8] = &[0x05, 0x00];

/// True when `params` is absent or NULL (accepted on receive for every algorithm of §8
/// DECISION "accept both absent and NULL").
fn absent_or_null(params: &Option<Vec<u8>>) -> bool {
    params.as_deref().map_or(true, |p| p == NULL_PARAMS)
}

/// An OID from one of the constants of this module. They are valid X.660 arc lists (checked by
/// the `constant_oids_are_valid` test), so the `expect` cannot fire on any input.
fn oid(arcs: &[u64]) -> Oid {
    Oid::new(arcs).expect("constant OID is valid")
}

/// Signature algorithm AlgorithmIdentifier (§8 DECISION: RSA with NULL, ECDSA absent).
pub fn sig_alg_id(alg: SignatureAlgorithm) -> AlgorithmIdentifier {
    match alg {
        SignatureAlgorithm::RsaPkcs1Sha256 => AlgorithmIdentifier {
            algorithm: oid(OID_SHA256_WITH_RSA),
            parameters: Some(NULL_PARAMS.to_vec()),
        },
        SignatureAlgorithm::EcdsaSha256 => AlgorithmIdentifier {
            algorithm: oid(OID_ECDSA_WITH_SHA256),
            parameters: None,
        },
    }
}

/// Maps a signature AlgorithmIdentifier to a supported algorithm.
pub fn sig_alg_from(id: &AlgorithmIdentifier) -> Option<SignatureAlgorithm> {
    if !absent_or_null(&id.parameters) {
        return None;
    }
    match id.algorithm.arcs() {
        OID_SHA256_WITH_RSA => Some(SignatureAlgorithm::RsaPkcs1Sha256),
        OID_ECDSA_WITH_SHA256 => Some(SignatureAlgorithm::EcdsaSha256),
        _ => None,
    }
}

/// The HKDF HMAC algorithm (`hmac` of ClearToken1).
pub fn hmac_alg_id() -> AlgorithmIdentifier {
    AlgorithmIdentifier {
        algorithm: oid(OID_HMAC_WITH_SHA256),
        parameters: None,
    }
}

/// True for hmacWithSHA256 (parameters absent or NULL).
pub fn is_hmac_sha256(id: &AlgorithmIdentifier) -> bool {
    id.algorithm.arcs() == OID_HMAC_WITH_SHA256 && absent_or_null(&id.parameters)
}

/// Authenticated-encryption algorithms (`aea`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeAlg {
    /// aes128-GCM.
    Aes128Gcm,
    /// aes256-GCM.
    Aes256Gcm,
}

/// Encryption algorithms of the non-AE mode (`encr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    /// aes128-CBC.
    Aes128Cbc,
    /// aes256-CBC.
    Aes256Cbc,
}

/// ICV algorithms (`icvAlgID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcvAlg {
    /// hmacWithSHA256, full 32-octet ICV.
    HmacSha256,
    /// GMAC with AES-128 (aes128-GCM as ICV).
    Gmac128,
    /// GMAC with AES-256 (aes256-GCM as ICV).
    Gmac256,
}

impl AeAlg {
    /// Key length in octets.
    pub fn key_len(self) -> usize {
        match self {
            AeAlg::Aes128Gcm => 16,
            AeAlg::Aes256Gcm => 32,
        }
    }
    /// AlgorithmIdentifier with parameters omitted (§8 DECISION).
    pub fn id(self) -> AlgorithmIdentifier {
        AlgorithmIdentifier {
            algorithm: oid(match self {
                AeAlg::Aes128Gcm => OID_AES128_GCM,
                AeAlg::Aes256Gcm => OID_AES256_GCM,
            }),
            parameters: None,
        }
    }
    /// Recognises an AE algorithm (parameters must be absent).
    pub fn from_id(id: &AlgorithmIdentifier) -> Option<AeAlg> {
        if id.parameters.is_some() {
            return None;
        }
        match id.algorithm.arcs() {
            OID_AES128_GCM => Some(AeAlg::Aes128Gcm),
            OID_AES256_GCM => Some(AeAlg::Aes256Gcm),
            _ => None,
        }
    }
}

impl EncrAlg {
    /// Key length in octets.
    pub fn key_len(self) -> usize {
        match self {
            EncrAlg::Aes128Cbc => 16,
            EncrAlg::Aes256Cbc => 32,
        }
    }
    /// AlgorithmIdentifier with parameters omitted (§8 DECISION: the IV is per message).
    pub fn id(self) -> AlgorithmIdentifier {
        AlgorithmIdentifier {
            algorithm: oid(match self {
                EncrAlg::Aes128Cbc => OID_AES128_CBC,
                EncrAlg::Aes256Cbc => OID_AES256_CBC,
            }),
            parameters: None,
        }
    }
    /// Recognises an encryption algorithm (parameters must be absent).
    pub fn from_id(id: &AlgorithmIdentifier) -> Option<EncrAlg> {
        if id.parameters.is_some() {
            return None;
        }
        match id.algorithm.arcs() {
            OID_AES128_CBC => Some(EncrAlg::Aes128Cbc),
            OID_AES256_CBC => Some(EncrAlg::Aes256Cbc),
            _ => None,
        }
    }
}

impl IcvAlg {
    /// ICV key length in octets (§13.3.1.3 DECISION).
    pub fn key_len(self) -> usize {
        match self {
            IcvAlg::HmacSha256 => 32,
            IcvAlg::Gmac128 => 16,
            IcvAlg::Gmac256 => 32,
        }
    }
    /// AlgorithmIdentifier (HMAC parameters absent; GCM parameters absent, so the ICV length is
    /// the RFC 5084 default of 12).
    pub fn id(self) -> AlgorithmIdentifier {
        AlgorithmIdentifier {
            algorithm: oid(match self {
                IcvAlg::HmacSha256 => OID_HMAC_WITH_SHA256,
                IcvAlg::Gmac128 => OID_AES128_GCM,
                IcvAlg::Gmac256 => OID_AES256_GCM,
            }),
            parameters: None,
        }
    }
    /// Recognises an ICV algorithm.
    pub fn from_id(id: &AlgorithmIdentifier) -> Option<IcvAlg> {
        match id.algorithm.arcs() {
            OID_HMAC_WITH_SHA256 if absent_or_null(&id.parameters) => Some(IcvAlg::HmacSha256),
            OID_AES128_GCM if id.parameters.is_none() => Some(IcvAlg::Gmac128),
            OID_AES256_GCM if id.parameters.is_none() => Some(IcvAlg::Gmac256),
            _ => None,
        }
    }
    /// True for the GMAC variants (a nonce is required, §13.4.2).
    pub fn is_gmac(self) -> bool {
        !matches!(self, IcvAlg::HmacSha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn constant_oids_are_valid() {
        for a in [
            OID_SHA256_WITH_RSA,
            OID_ECDSA_WITH_SHA256,
            OID_HMAC_WITH_SHA256,
            OID_AES128_CBC,
            OID_AES256_CBC,
            OID_AES128_GCM,
            OID_AES256_GCM,
        ] {
            assert!(Oid::new(a).is_ok());
        }
        for a in [AeAlg::Aes128Gcm, AeAlg::Aes256Gcm] {
            assert_eq!(AeAlg::from_id(&a.id()), Some(a));
        }
        for a in [EncrAlg::Aes128Cbc, EncrAlg::Aes256Cbc] {
            assert_eq!(EncrAlg::from_id(&a.id()), Some(a));
        }
        for a in [IcvAlg::HmacSha256, IcvAlg::Gmac128, IcvAlg::Gmac256] {
            assert_eq!(IcvAlg::from_id(&a.id()), Some(a));
        }
        for a in [
            SignatureAlgorithm::RsaPkcs1Sha256,
            SignatureAlgorithm::EcdsaSha256,
        ] {
            assert_eq!(sig_alg_from(&sig_alg_id(a)), Some(a));
        }
    }
}
