//! The key schedule of §13.3.1.3 (HKDF, RFC 5869, SHA-256) and the per-direction key state.

use secmms_pki::crypto::{
    self, sha256_concat, CbcKey, CryptoError, GcmOpener, GcmSealer, GmacKey, HmacKey, RandomSource,
    SHA256_LEN,
};
use zeroize::Zeroizing;

use crate::alg::{AeAlg, EncrAlg, IcvAlg};

/// The protection agreed in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtectionMode {
    /// Authenticated encryption (EncrTransfer, no Authenticator).
    Ae(AeAlg),
    /// ICV, with optional AES-CBC encryption (encrypt-then-ICV).
    NonAe {
        /// Encryption algorithm, if encryption was agreed.
        encr: Option<EncrAlg>,
        /// ICV algorithm.
        icv: IcvAlg,
    },
}

impl ProtectionMode {
    /// True when data transfer uses EncrTransfer.
    pub fn encrypted(self) -> bool {
        matches!(
            self,
            ProtectionMode::Ae(_) | ProtectionMode::NonAe { encr: Some(_), .. }
        )
    }
    /// Total OKM length L (§13.3.1.3: 2 or 4 keys).
    pub fn okm_len(self) -> usize {
        match self {
            ProtectionMode::Ae(a) => 2 * a.key_len(),
            ProtectionMode::NonAe { encr, icv } => {
                2 * icv.key_len() + encr.map_or(0, |e| 2 * e.key_len())
            }
        }
    }
}

/// DECISION §13.3.1.3: "0" in `salt₀ = H(data₁ ‖ 0)` is a HashLen string of zero octets.
pub const SALT_ZERO: [u8; SHA256_LEN] = [0u8; SHA256_LEN];

/// `salt₀ = H(data1 ‖ 0³²)`, `salt₁ = H(data2 ‖ salt₀)` (§13.3.1.3 DECISION).
pub fn initial_salt(req_tbs: &[u8], acc_tbs: &[u8]) -> [u8; SHA256_LEN] {
    let s0 = sha256_concat(&[req_tbs, &SALT_ZERO]);
    sha256_concat(&[acc_tbs, &s0])
}

/// `salt_k = H(data_k ‖ salt_{k−1})` for a rekey (§13.3.1.3 DECISION).
pub fn next_salt(tbp: &[u8], prev: &[u8; SHA256_LEN]) -> [u8; SHA256_LEN] {
    sha256_concat(&[tbp, prev])
}

/// DECISION §13.3.1.3: HKDF `info` is empty.
pub const HKDF_INFO: &[u8] = b"";

/// Keys of one direction.
pub struct DirKeys {
    /// Encryption key (AE or CBC), empty if none.
    pub enc: Zeroizing<Vec<u8>>,
    /// ICV key (HMAC or GMAC), empty in AE mode.
    pub icv: Zeroizing<Vec<u8>>,
    /// DECISION §13.3.2: 4-octet random nonce prefix fixed per key (sending side only).
    pub prefix: [u8; 4],
    /// 8-octet nonce counter (sending side only); never wraps.
    pub counter: u64,
    /// The GMAC ICV key with its keyed cipher context, set up once per key (GMAC modes only).
    gmac: Option<GmacKey>,
    /// The HMAC ICV key with its keyed context, set up once per key (HMAC modes only).
    hmac: Option<HmacKey>,
    /// The AES-CBC key with its keyed contexts, set up once per key (CBC modes only).
    cbc: Option<CbcKey>,
    /// The AES-GCM key keyed for sealing, set up at its first use (AE mode, sending side).
    gcm_seal: Option<GcmSealer>,
    /// The AES-GCM key keyed for opening, set up at its first use (AE mode, receiving side).
    gcm_open: Option<GcmOpener>,
}

impl std::fmt::Debug for DirKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirKeys").finish_non_exhaustive()
    }
}

impl DirKeys {
    /// The receiving keys of one direction from their octets (a key log's, see
    /// [`crate::keylog`]), with the keyed contexts `mode` needs. The nonce prefix and counter
    /// are zero: keys built this way are for [`crate::engine::open_transfer`], not for sending.
    pub fn from_secrets(
        mode: ProtectionMode,
        enc: &[u8],
        icv: &[u8],
    ) -> Result<DirKeys, CryptoError> {
        let (gmac, hmac, cbc) = match mode {
            ProtectionMode::Ae(_) => (None, None, None),
            ProtectionMode::NonAe { encr, icv: alg } => (
                if alg.is_gmac() {
                    Some(GmacKey::new(icv)?)
                } else {
                    None
                },
                if alg.is_gmac() {
                    None
                } else {
                    Some(HmacKey::new(icv)?)
                },
                match encr {
                    Some(_) => Some(CbcKey::new(enc)?),
                    None => None,
                },
            ),
        };
        Ok(DirKeys {
            enc: Zeroizing::new(enc.to_vec()),
            icv: Zeroizing::new(icv.to_vec()),
            prefix: [0; 4],
            counter: 0,
            gmac,
            hmac,
            cbc,
            gcm_seal: None,
            gcm_open: None,
        })
    }

    /// The next never-repeating 12-octet nonce: prefix ‖ counter.
    pub fn next_nonce(&mut self) -> Result<[u8; 12], CryptoError> {
        if self.counter == u64::MAX {
            return Err(CryptoError::Random);
        }
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.prefix);
        n[4..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter += 1;
        Ok(n)
    }

    /// The keyed GMAC context of the ICV key; `None` unless the ICV algorithm is GMAC.
    pub fn gmac(&mut self) -> Option<&mut GmacKey> {
        self.gmac.as_mut()
    }

    /// The keyed AES-CBC contexts of the encryption key; `None` unless CBC was agreed.
    pub fn cbc(&mut self) -> Option<&mut CbcKey> {
        self.cbc.as_mut()
    }

    /// The keyed HMAC context of the ICV key; `None` unless the ICV algorithm is HMAC-SHA256.
    pub fn hmac(&mut self) -> Option<&mut HmacKey> {
        self.hmac.as_mut()
    }

    /// The encryption key keyed for AES-GCM sealing, set up the first time it is asked for
    /// (only one side of a direction seals, so the other never holds this context).
    pub fn gcm_sealer(&mut self) -> Result<&mut GcmSealer, CryptoError> {
        if self.gcm_seal.is_none() {
            self.gcm_seal = Some(GcmSealer::new(&self.enc)?);
        }
        self.gcm_seal
            .as_mut()
            .ok_or(CryptoError::BadLength("AES-GCM key"))
    }

    /// The encryption key keyed for AES-GCM opening, set up the first time it is asked for.
    pub fn gcm_opener(&mut self) -> Result<&mut GcmOpener, CryptoError> {
        if self.gcm_open.is_none() {
            self.gcm_open = Some(GcmOpener::new(&self.enc)?);
        }
        self.gcm_open
            .as_mut()
            .ok_or(CryptoError::BadLength("AES-GCM key"))
    }
}

/// Keys of both directions.
#[derive(Debug)]
pub struct KeySet {
    /// Client → server.
    pub c2s: DirKeys,
    /// Server → client.
    pub s2c: DirKeys,
}

/// Derives the key set from the shared secret Z and the salt (§13.3.1.3 DECISION order: AE
/// `K_c2s ‖ K_s2c`; non-AE `I_c2s ‖ I_s2c [‖ E_c2s ‖ E_s2c]`).
pub fn derive(
    mode: ProtectionMode,
    salt: &[u8; SHA256_LEN],
    z: &[u8],
    rng: &mut dyn RandomSource,
) -> Result<KeySet, CryptoError> {
    let okm = crypto::hkdf(salt, z, HKDF_INFO, mode.okm_len())?;
    let take = |from: usize, n: usize| Zeroizing::new(okm[from..from + n].to_vec());
    let empty = || Zeroizing::new(Vec::new());
    let (c2s_enc, s2c_enc, c2s_icv, s2c_icv) = match mode {
        ProtectionMode::Ae(a) => {
            let k = a.key_len();
            (take(0, k), take(k, k), empty(), empty())
        }
        ProtectionMode::NonAe { encr, icv } => {
            let i = icv.key_len();
            let (e1, e2) = match encr {
                Some(e) => {
                    let k = e.key_len();
                    (take(2 * i, k), take(2 * i + k, k))
                }
                None => (empty(), empty()),
            };
            (e1, e2, take(0, i), take(i, i))
        }
    };
    let gmac_of = |k: &[u8]| -> Result<Option<GmacKey>, CryptoError> {
        match mode {
            ProtectionMode::NonAe { icv, .. } if icv.is_gmac() => Ok(Some(GmacKey::new(k)?)),
            _ => Ok(None),
        }
    };
    let (c2s_gmac, s2c_gmac) = (gmac_of(&c2s_icv)?, gmac_of(&s2c_icv)?);
    let hmac_of = |k: &[u8]| -> Result<Option<HmacKey>, CryptoError> {
        match mode {
            ProtectionMode::NonAe { icv, .. } if !icv.is_gmac() => Ok(Some(HmacKey::new(k)?)),
            _ => Ok(None),
        }
    };
    let (c2s_hmac, s2c_hmac) = (hmac_of(&c2s_icv)?, hmac_of(&s2c_icv)?);
    let cbc_of = |k: &[u8]| -> Result<Option<CbcKey>, CryptoError> {
        match mode {
            ProtectionMode::NonAe { encr: Some(_), .. } => Ok(Some(CbcKey::new(k)?)),
            _ => Ok(None),
        }
    };
    let (c2s_cbc, s2c_cbc) = (cbc_of(&c2s_enc)?, cbc_of(&s2c_enc)?);
    let mut p1 = [0u8; 4];
    let mut p2 = [0u8; 4];
    rng.fill(&mut p1)?;
    rng.fill(&mut p2)?;
    Ok(KeySet {
        c2s: DirKeys {
            enc: c2s_enc,
            icv: c2s_icv,
            prefix: p1,
            counter: 0,
            gmac: c2s_gmac,
            hmac: c2s_hmac,
            cbc: c2s_cbc,
            gcm_seal: None,
            gcm_open: None,
        },
        s2c: DirKeys {
            enc: s2c_enc,
            icv: s2c_icv,
            prefix: p2,
            counter: 0,
            gmac: s2c_gmac,
            hmac: s2c_hmac,
            cbc: s2c_cbc,
            gcm_seal: None,
            gcm_open: None,
        },
    })
}
