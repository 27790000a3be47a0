//! Cryptographic primitives of IEC 62351-4 clause 8, all computed by OpenSSL through the `openssl`
//! crate: signatures (RSA PKCS#1 v1.5 and ECDSA with SHA-256), Diffie-Hellman (RFC 3526 group 14,
//! ECDH over P-256 and brainpoolP256r1) with peer-value validation, HKDF (RFC 5869), HMAC-SHA256,
//! GMAC, AES-GCM and AES-CBC.
//!
//! Symmetric keys are held in [`Zeroizing`] buffers; private asymmetric keys stay inside OpenSSL,
//! which clears them when they are freed.

use openssl::bn::{BigNum, BigNumContext};
use openssl::derive::Deriver;
use openssl::dh::Dh;
use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
use openssl::hash::MessageDigest;
use openssl::memcmp;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::pkey_ctx::{HkdfMode, PkeyCtx};
use openssl::sign::{Signer, Verifier};
use openssl::symm::{Cipher, Crypter, Mode};
use zeroize::Zeroizing;

/// Errors of the cryptographic primitives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// OpenSSL reported a failure (the message is OpenSSL's error stack).
    #[error("OpenSSL failure: {0}")]
    OpenSsl(String),
    /// A key of the wrong type, size or curve for the requested operation (§8: RSA ≥ 2048,
    /// P-256 or brainpoolP256r1).
    #[error("unsupported or too weak key: {0}")]
    BadKey(&'static str),
    /// A Diffie-Hellman public value from the peer failed validation (§13.3.1.2).
    #[error("invalid peer Diffie-Hellman public value")]
    InvalidPeerValue,
    /// A key, nonce, IV or tag of the wrong length.
    #[error("invalid length of {0}")]
    BadLength(&'static str),
    /// Authentication of a MAC, tag or padding failed.
    #[error("authentication failed")]
    AuthFailed,
    /// The random source could not produce a usable value.
    #[error("random source failure")]
    Random,
}

impl From<openssl::error::ErrorStack> for CryptoError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        CryptoError::OpenSsl(e.to_string())
    }
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, CryptoError>;

/// Minimum RSA modulus size in bits (§8, "RSA ≥ 2048").
pub const MIN_RSA_BITS: u32 = 2048;
/// Length of an HMAC-SHA256 output and of the SHA-256 hash (§13.4.2).
pub const SHA256_LEN: usize = 32;
/// AES block and CBC IV size (§8, "AES-CBC IV: 16 octets").
pub const AES_BLOCK: usize = 16;
/// Recommended AES-GCM nonce length (§8, RFC 5084).
pub const GCM_NONCE_LEN: usize = 12;
/// Default AES-GCM / GMAC tag (ICV) length when `aes-ICVlen` is absent (§8, RFC 5084).
pub const GCM_DEFAULT_TAG_LEN: usize = 12;

/// A source of cryptographically strong random octets. The sans-IO engine receives one; tests
/// pass a deterministic one.
pub trait RandomSource: Send {
    /// Fills `buf` with random octets.
    fn fill(&mut self, buf: &mut [u8]) -> Result<()>;
}

/// The default random source: OpenSSL's CSPRNG (`RAND_bytes`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        openssl::rand::rand_bytes(buf).map_err(|_| CryptoError::Random)
    }
}

// ---------------------------------------------------------------- hashes, HMAC, HKDF

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; SHA256_LEN] {
    openssl::sha::sha256(data)
}

/// SHA-256 over the concatenation of `parts` (used for the HKDF salt chain, §13.3.1.3).
pub fn sha256_concat(parts: &[&[u8]]) -> [u8; SHA256_LEN] {
    let mut h = openssl::sha::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finish()
}

/// HMAC-SHA256 (RFC 2104 / RFC 4231) of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; SHA256_LEN]> {
    let pkey = PKey::hmac(key)?;
    let mut s = Signer::new(MessageDigest::sha256(), &pkey)?;
    s.update(data)?;
    let mut out = [0u8; SHA256_LEN];
    let n = s.sign(&mut out)?;
    if n != SHA256_LEN {
        return Err(CryptoError::BadLength("HMAC output"));
    }
    Ok(out)
}

/// An HMAC-SHA256 key set up once (the OpenSSL key object, the fetched digest and a reusable
/// context), for protecting many PDUs with one key: creating the key and fetching the digest
/// cost several times the MAC of a small PDU.
pub struct HmacKey {
    pkey: PKey<Private>,
    md: openssl::md::Md,
    ctx: openssl::md_ctx::MdCtx,
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacKey").finish_non_exhaustive()
    }
}

impl HmacKey {
    /// Keys an HMAC-SHA256 context.
    pub fn new(key: &[u8]) -> Result<HmacKey> {
        Ok(HmacKey {
            pkey: PKey::hmac(key)?,
            md: openssl::md::Md::fetch(None, "SHA256", None)?,
            ctx: openssl::md_ctx::MdCtx::new()?,
        })
    }

    /// HMAC-SHA256 of `data`.
    pub fn tag(&mut self, data: &[u8]) -> Result<[u8; SHA256_LEN]> {
        self.ctx.digest_sign_init(Some(&self.md), &self.pkey)?;
        self.ctx.digest_sign_update(data)?;
        let mut out = [0u8; SHA256_LEN];
        let n = self.ctx.digest_sign_final(Some(&mut out))?;
        if n != SHA256_LEN {
            return Err(CryptoError::BadLength("HMAC output"));
        }
        Ok(out)
    }

    /// Verifies an HMAC-SHA256 value of `data` in constant time.
    pub fn verify(&mut self, data: &[u8], mac: &[u8]) -> Result<()> {
        let expect = self.tag(data)?;
        if mac.len() == expect.len() && memcmp::eq(&expect, mac) {
            Ok(())
        } else {
            Err(CryptoError::AuthFailed)
        }
    }
}

/// Verifies an HMAC-SHA256 value in constant time.
pub fn hmac_sha256_verify(key: &[u8], data: &[u8], mac: &[u8]) -> Result<()> {
    let expect = hmac_sha256(key, data)?;
    if mac.len() == expect.len() && memcmp::eq(&expect, mac) {
        Ok(())
    } else {
        Err(CryptoError::AuthFailed)
    }
}

/// Maximum HKDF-SHA256 output (RFC 5869: 255 × HashLen).
pub const HKDF_MAX_OUT: usize = 255 * SHA256_LEN;

/// HKDF-Extract with SHA-256 (RFC 5869 §2.2), computed by OpenSSL's HKDF.
pub fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let mut ctx = PkeyCtx::new_id(Id::HKDF)?;
    ctx.derive_init()?;
    ctx.set_hkdf_md(openssl::md::Md::sha256())?;
    ctx.set_hkdf_mode(HkdfMode::EXTRACT_ONLY)?;
    ctx.set_hkdf_key(ikm)?;
    if !salt.is_empty() {
        ctx.set_hkdf_salt(salt)?;
    }
    let mut out = Zeroizing::new(vec![0u8; SHA256_LEN]);
    let n = ctx.derive(Some(&mut out[..]))?;
    out.truncate(n);
    Ok(out)
}

/// HKDF-Expand with SHA-256 (RFC 5869 §2.3), computed by OpenSSL's HKDF.
pub fn hkdf_expand(prk: &[u8], info: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    if len == 0 || len > HKDF_MAX_OUT {
        return Err(CryptoError::BadLength("HKDF output"));
    }
    if prk.len() < SHA256_LEN {
        return Err(CryptoError::BadLength("HKDF PRK"));
    }
    let mut ctx = PkeyCtx::new_id(Id::HKDF)?;
    ctx.derive_init()?;
    ctx.set_hkdf_md(openssl::md::Md::sha256())?;
    ctx.set_hkdf_mode(HkdfMode::EXPAND_ONLY)?;
    ctx.set_hkdf_key(prk)?;
    if !info.is_empty() {
        ctx.add_hkdf_info(info)?;
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    ctx.derive(Some(&mut out[..]))?;
    Ok(out)
}

/// HKDF-Extract then HKDF-Expand (RFC 5869 §2).
pub fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let prk = hkdf_extract(salt, ikm)?;
    hkdf_expand(&prk, info, len)
}

// ---------------------------------------------------------------- AES

fn cbc_cipher(key: &[u8]) -> Result<Cipher> {
    match key.len() {
        16 => Ok(Cipher::aes_128_cbc()),
        32 => Ok(Cipher::aes_256_cbc()),
        _ => Err(CryptoError::BadLength("AES-CBC key")),
    }
}

fn check_tag_len(tag_len: usize) -> Result<()> {
    // RFC 5084 aes-ICVlen INTEGER (12 | 13 | 14 | 15 | 16).
    if (12..=16).contains(&tag_len) {
        Ok(())
    } else {
        Err(CryptoError::BadLength("GCM tag"))
    }
}

/// AES-GCM encryption (AES-128 or AES-256 by key length). Returns `ciphertext || tag`.
pub fn gcm_seal(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    tag_len: usize,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    gcm_seal_into(key, nonce, aad, plaintext, tag_len, &mut out)?;
    Ok(out)
}

/// AES-GCM encryption appending `ciphertext || tag` to `out` (no intermediate buffer). One
/// message; for many under one key, [`GcmSealer`] keeps the keyed context.
pub fn gcm_seal_into(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    tag_len: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    check_tag_len(tag_len)?;
    if nonce.len() != GCM_NONCE_LEN {
        return Err(CryptoError::BadLength("GCM nonce"));
    }
    GcmSealer::new(key)?.seal_into(nonce, aad, plaintext, tag_len, out)
}

/// Length of the AES-CBC ciphertext of `n` plaintext octets with PKCS#7 padding.
pub fn cbc_ciphertext_len(n: usize) -> usize {
    (n / AES_BLOCK + 1) * AES_BLOCK
}

/// An AES-CBC key set up once, with an encryption and a decryption context, for many PDUs
/// under one key (only the IV changes per PDU): the per-PDU cipher fetch and key schedule cost
/// more than encrypting a small PDU.
pub struct CbcKey {
    enc: openssl::cipher_ctx::CipherCtx,
    dec: openssl::cipher_ctx::CipherCtx,
}

impl std::fmt::Debug for CbcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CbcKey").finish_non_exhaustive()
    }
}

impl CbcKey {
    /// Keys AES-128-CBC (16-octet key) or AES-256-CBC (32-octet key) contexts.
    pub fn new(key: &[u8]) -> Result<CbcKey> {
        let cipher = match key.len() {
            16 => openssl::cipher::Cipher::aes_128_cbc(),
            32 => openssl::cipher::Cipher::aes_256_cbc(),
            _ => return Err(CryptoError::BadLength("AES-CBC key")),
        };
        let mut enc = openssl::cipher_ctx::CipherCtx::new()?;
        enc.encrypt_init(Some(cipher), Some(key), None)?;
        let mut dec = openssl::cipher_ctx::CipherCtx::new()?;
        dec.decrypt_init(Some(cipher), Some(key), None)?;
        Ok(CbcKey { enc, dec })
    }

    /// Encrypts with PKCS#7 padding under `iv` (16 octets), appending the ciphertext to `out`.
    pub fn encrypt_into(&mut self, iv: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if iv.len() != AES_BLOCK {
            return Err(CryptoError::BadLength("CBC IV"));
        }
        self.enc.encrypt_init(None, None, Some(iv))?;
        let start = out.len();
        out.resize(start + plaintext.len() + 2 * AES_BLOCK, 0);
        let mut n = self.enc.cipher_update(plaintext, Some(&mut out[start..]))?;
        n += self.enc.cipher_final(&mut out[start + n..])?;
        out.truncate(start + n);
        Ok(())
    }

    /// Decrypts and removes PKCS#7 padding. A padding error is [`CryptoError::AuthFailed`];
    /// callers authenticate the ciphertext first (encrypt-then-MAC).
    pub fn decrypt(&mut self, iv: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if iv.len() != AES_BLOCK {
            return Err(CryptoError::BadLength("CBC IV"));
        }
        if ciphertext.is_empty() || ciphertext.len() % AES_BLOCK != 0 {
            return Err(CryptoError::AuthFailed);
        }
        self.dec.decrypt_init(None, None, Some(iv))?;
        let mut out = Zeroizing::new(vec![0u8; ciphertext.len() + AES_BLOCK]);
        let n = self
            .dec
            .cipher_update(ciphertext, Some(&mut out[..]))
            .map_err(|_| CryptoError::AuthFailed)?;
        let m = self
            .dec
            .cipher_final(&mut out[n..])
            .map_err(|_| CryptoError::AuthFailed)?;
        out.truncate(n + m);
        Ok(out)
    }
}

/// AES-CBC encryption with PKCS#7 padding appending the ciphertext to `out`.
pub fn cbc_encrypt_into(key: &[u8], iv: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
    if iv.len() != AES_BLOCK {
        return Err(CryptoError::BadLength("CBC IV"));
    }
    let cipher = cbc_cipher(key)?;
    let mut c = Crypter::new(cipher, Mode::Encrypt, key, Some(iv))?;
    let start = out.len();
    out.reserve_exact(plaintext.len() + 2 * AES_BLOCK);
    out.resize(start + plaintext.len() + 2 * AES_BLOCK, 0);
    let mut n = c.update(plaintext, &mut out[start..])?;
    n += c.finalize(&mut out[start + n..])?;
    out.truncate(start + n);
    Ok(())
}

/// AES-GCM decryption of `ciphertext || tag`; fails with [`CryptoError::AuthFailed`] when the tag
/// does not verify. One message; for many under one key, [`GcmOpener`] keeps the keyed context.
pub fn gcm_open(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    sealed: &[u8],
    tag_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    check_tag_len(tag_len)?;
    if sealed.len() < tag_len {
        return Err(CryptoError::AuthFailed);
    }
    if nonce.len() != GCM_NONCE_LEN {
        return Err(CryptoError::BadLength("GCM nonce"));
    }
    GcmOpener::new(key)?.open(nonce, aad, sealed, tag_len)
}

/// GMAC: AES-GCM with an empty plaintext, `data` as AAD (§8, §13.4.2). Returns the tag.
pub fn gmac(key: &[u8], nonce: &[u8], data: &[u8], tag_len: usize) -> Result<Vec<u8>> {
    if nonce.len() != GCM_NONCE_LEN {
        return Err(CryptoError::BadLength("GMAC nonce"));
    }
    gcm_seal(key, nonce, data, &[], tag_len)
}

/// Verifies a GMAC tag in constant time.
pub fn gmac_verify(key: &[u8], nonce: &[u8], data: &[u8], tag: &[u8]) -> Result<()> {
    check_tag_len(tag.len()).map_err(|_| CryptoError::AuthFailed)?;
    let expect = gmac(key, nonce, data, tag.len())?;
    if memcmp::eq(&expect, tag) {
        Ok(())
    } else {
        Err(CryptoError::AuthFailed)
    }
}

/// The OpenSSL AES-GCM cipher for a 16- or 32-octet key.
fn gcm_cipher_of(key: &[u8]) -> Result<&'static openssl::cipher::CipherRef> {
    match key.len() {
        16 => Ok(openssl::cipher::Cipher::aes_128_gcm()),
        32 => Ok(openssl::cipher::Cipher::aes_256_gcm()),
        _ => Err(CryptoError::BadLength("AES-GCM key")),
    }
}

/// An AES-GCM encryption key with its keyed OpenSSL context kept between messages.
///
/// [`gcm_seal_into`] fetches the cipher, expands the key and derives the GHASH key for every
/// message; for the many small PDUs of one transfer key that set-up costs about as much as the
/// encryption itself. `GcmSealer` does it once: each message only sets the nonce. The output is
/// identical to [`gcm_seal_into`]'s.
pub struct GcmSealer {
    ctx: openssl::cipher_ctx::CipherCtx,
}

impl std::fmt::Debug for GcmSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcmSealer").finish_non_exhaustive()
    }
}

impl GcmSealer {
    /// Keys a context for AES-128-GCM (16-octet key) or AES-256-GCM (32-octet key).
    pub fn new(key: &[u8]) -> Result<GcmSealer> {
        let mut ctx = openssl::cipher_ctx::CipherCtx::new()?;
        ctx.encrypt_init(Some(gcm_cipher_of(key)?), Some(key), None)?;
        Ok(GcmSealer { ctx })
    }

    /// Encrypts `plaintext` under `nonce` (12 octets) with `aad`, appending
    /// `ciphertext || tag` (`tag_len` octets, 12..=16) to `out`.
    pub fn seal_into(
        &mut self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        tag_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        check_tag_len(tag_len)?;
        if nonce.len() != GCM_NONCE_LEN {
            return Err(CryptoError::BadLength("GCM nonce"));
        }
        self.ctx.encrypt_init(None, None, Some(nonce))?;
        self.ctx.cipher_update(aad, None)?;
        let start = out.len();
        // Exact growth: doubling a 64 KiB buffer would cross malloc's mmap threshold.
        out.reserve_exact(plaintext.len() + AES_BLOCK + tag_len);
        out.resize(start + plaintext.len() + AES_BLOCK, 0);
        let mut n = self.ctx.cipher_update(plaintext, Some(&mut out[start..]))?;
        n += self.ctx.cipher_final(&mut out[start + n..])?;
        out.truncate(start + n);
        let mut tag = [0u8; 16];
        self.ctx.tag(&mut tag[..tag_len])?;
        out.extend_from_slice(&tag[..tag_len]);
        Ok(())
    }
}

/// An AES-GCM decryption key with its keyed OpenSSL context kept between messages: what
/// [`GcmSealer`] is to [`gcm_seal_into`], this is to [`gcm_open`] (same checks, same result).
pub struct GcmOpener {
    ctx: openssl::cipher_ctx::CipherCtx,
}

impl std::fmt::Debug for GcmOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcmOpener").finish_non_exhaustive()
    }
}

impl GcmOpener {
    /// Keys a context for AES-128-GCM (16-octet key) or AES-256-GCM (32-octet key).
    pub fn new(key: &[u8]) -> Result<GcmOpener> {
        let mut ctx = openssl::cipher_ctx::CipherCtx::new()?;
        ctx.decrypt_init(Some(gcm_cipher_of(key)?), Some(key), None)?;
        Ok(GcmOpener { ctx })
    }

    /// Verifies and decrypts `sealed` (`ciphertext || tag`, a `tag_len`-octet tag) under `nonce`
    /// (12 octets) with `aad`; [`CryptoError::AuthFailed`] when the tag does not verify. A
    /// failure leaves the key usable for the next message.
    pub fn open(
        &mut self,
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
        tag_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>> {
        check_tag_len(tag_len)?;
        if sealed.len() < tag_len {
            return Err(CryptoError::AuthFailed);
        }
        if nonce.len() != GCM_NONCE_LEN {
            return Err(CryptoError::BadLength("GCM nonce"));
        }
        let (ct, tag) = sealed.split_at(sealed.len() - tag_len);
        self.ctx.decrypt_init(None, None, Some(nonce))?;
        self.ctx.set_tag(tag)?;
        self.ctx.cipher_update(aad, None)?;
        let mut out = Zeroizing::new(vec![0u8; ct.len() + AES_BLOCK]);
        let n = self.ctx.cipher_update(ct, Some(&mut out))?;
        let m = self
            .ctx
            .cipher_final(&mut out[n..])
            .map_err(|_| CryptoError::AuthFailed)?;
        out.truncate(n + m);
        Ok(out)
    }
}

/// A GMAC key with its keyed OpenSSL context kept between messages (§8, §13.4.2).
///
/// [`gmac`] sets up a fresh cipher context, expands the AES key and derives the GHASH key for
/// every message; for a transfer key used for many PDUs that set-up costs about as much as the
/// GMAC of a few KiB. `GmacKey` does it once: each message only sets the nonce. Tags are
/// identical to [`gmac`]'s.
pub struct GmacKey {
    ctx: openssl::cipher_ctx::CipherCtx,
}

impl std::fmt::Debug for GmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GmacKey").finish_non_exhaustive()
    }
}

impl GmacKey {
    /// Keys a context for AES-128-GCM (16-octet key) or AES-256-GCM (32-octet key).
    pub fn new(key: &[u8]) -> Result<GmacKey> {
        let mut ctx = openssl::cipher_ctx::CipherCtx::new()?;
        ctx.encrypt_init(Some(gcm_cipher_of(key)?), Some(key), None)?;
        Ok(GmacKey { ctx })
    }

    /// The GMAC tag of `data` under `nonce` (12 octets), written to `tag` (12..=16 octets,
    /// the tag length).
    pub fn tag_into(&mut self, nonce: &[u8], data: &[u8], tag: &mut [u8]) -> Result<()> {
        if nonce.len() != GCM_NONCE_LEN {
            return Err(CryptoError::BadLength("GMAC nonce"));
        }
        check_tag_len(tag.len())?;
        self.ctx.encrypt_init(None, None, Some(nonce))?;
        self.ctx.cipher_update(data, None)?;
        self.ctx.cipher_final(&mut [])?;
        self.ctx.tag(tag)?;
        Ok(())
    }

    /// Verifies a GMAC tag in constant time.
    pub fn verify(&mut self, nonce: &[u8], data: &[u8], tag: &[u8]) -> Result<()> {
        check_tag_len(tag.len()).map_err(|_| CryptoError::AuthFailed)?;
        let mut expect = [0u8; 16];
        self.tag_into(nonce, data, &mut expect[..tag.len()])?;
        if memcmp::eq(&expect[..tag.len()], tag) {
            Ok(())
        } else {
            Err(CryptoError::AuthFailed)
        }
    }
}

/// AES-CBC encryption with PKCS#7 padding (RFC 5652 §6.3).
pub fn cbc_encrypt(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    if iv.len() != AES_BLOCK {
        return Err(CryptoError::BadLength("CBC IV"));
    }
    let cipher = cbc_cipher(key)?;
    Ok(openssl::symm::encrypt(cipher, key, Some(iv), plaintext)?)
}

/// AES-CBC decryption with PKCS#7 padding removal. A padding error is [`CryptoError::AuthFailed`];
/// callers must authenticate the ciphertext first (encrypt-then-MAC, §13.4.4).
pub fn cbc_decrypt(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if iv.len() != AES_BLOCK {
        return Err(CryptoError::BadLength("CBC IV"));
    }
    if ciphertext.is_empty() || ciphertext.len() % AES_BLOCK != 0 {
        return Err(CryptoError::AuthFailed);
    }
    let cipher = cbc_cipher(key)?;
    openssl::symm::decrypt(cipher, key, Some(iv), ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::AuthFailed)
}

// ---------------------------------------------------------------- signatures

/// Signature algorithms of §8 (Table 11). The curve of ECDSA comes from the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// sha256WithRSAEncryption (1.2.840.113549.1.1.11), RSASSA-PKCS1-v1_5.
    RsaPkcs1Sha256,
    /// ecdsa-with-SHA256 (1.2.840.10045.4.3.2), P-256 or brainpoolP256r1.
    EcdsaSha256,
}

/// The elliptic curves of §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// secp256r1 / prime256v1 (1.2.840.10045.3.1.7).
    P256,
    /// brainpoolP256r1 (1.3.36.3.3.2.8.1.1.7).
    BrainpoolP256r1,
}

impl Curve {
    fn nid(self) -> Nid {
        match self {
            Curve::P256 => Nid::X9_62_PRIME256V1,
            Curve::BrainpoolP256r1 => Nid::BRAINPOOL_P256R1,
        }
    }
    fn from_nid(nid: Nid) -> Option<Curve> {
        if nid == Nid::X9_62_PRIME256V1 {
            Some(Curve::P256)
        } else if nid == Nid::BRAINPOOL_P256R1 {
            Some(Curve::BrainpoolP256r1)
        } else {
            None
        }
    }
    /// The OpenSSL group of this curve.
    pub fn group(self) -> Result<EcGroup> {
        Ok(EcGroup::from_curve_name(self.nid())?)
    }
}

/// Kind of a public key accepted by Annex G.4 (rsaEncryption ≥ 2048 bits or ecPublicKey on one of
/// the two curves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with the modulus size in bits.
    Rsa(u32),
    /// EC on the given curve.
    Ec(Curve),
}

/// Classifies a public key, refusing anything outside §8 / Annex G.4.
pub fn key_kind<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Result<KeyKind> {
    match key.id() {
        Id::RSA => {
            let bits = key.bits();
            if bits < MIN_RSA_BITS {
                Err(CryptoError::BadKey("RSA modulus below 2048 bits"))
            } else {
                Ok(KeyKind::Rsa(bits))
            }
        }
        Id::EC => {
            let ec = key.ec_key()?;
            let nid = ec
                .group()
                .curve_name()
                .ok_or(CryptoError::BadKey("EC key without named curve"))?;
            Curve::from_nid(nid)
                .map(KeyKind::Ec)
                .ok_or(CryptoError::BadKey("EC curve not P-256 or brainpoolP256r1"))
        }
        _ => Err(CryptoError::BadKey("key type not RSA or EC")),
    }
}

/// The signature algorithm that goes with a key.
pub fn algorithm_for<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Result<SignatureAlgorithm> {
    Ok(match key_kind(key)? {
        KeyKind::Rsa(_) => SignatureAlgorithm::RsaPkcs1Sha256,
        KeyKind::Ec(_) => SignatureAlgorithm::EcdsaSha256,
    })
}

/// A private signing key with its algorithm.
#[derive(Clone)]
pub struct SigningKey {
    key: PKey<Private>,
    alg: SignatureAlgorithm,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Wraps an OpenSSL private key after checking it against §8.
    pub fn new(key: PKey<Private>) -> Result<Self> {
        let alg = algorithm_for(&key)?;
        Ok(SigningKey { key, alg })
    }
    /// Reads a PEM (PKCS#8 or traditional) private key.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        Self::new(PKey::private_key_from_pem(pem)?)
    }
    /// Generates a fresh RSA key of `bits` bits (tests, tools).
    pub fn generate_rsa(bits: u32) -> Result<Self> {
        let rsa = openssl::rsa::Rsa::generate(bits)?;
        Self::new(PKey::from_rsa(rsa)?)
    }
    /// Generates a fresh EC key on `curve` (tests, tools).
    pub fn generate_ec(curve: Curve) -> Result<Self> {
        let g = curve.group()?;
        let ec = EcKey::generate(&g)?;
        Self::new(PKey::from_ec_key(ec)?)
    }
    /// The signature algorithm of this key.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }
    /// The OpenSSL key (for certificate issuance).
    pub fn pkey(&self) -> &PKey<Private> {
        &self.key
    }
    /// Signs `data` (SHA-256, PKCS#1 v1.5 for RSA; DER Ecdsa-Sig-Value for ECDSA, §13.4.1).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut s = Signer::new(MessageDigest::sha256(), &self.key)?;
        if self.alg == SignatureAlgorithm::RsaPkcs1Sha256 {
            s.set_rsa_padding(openssl::rsa::Padding::PKCS1)?;
        }
        s.update(data)?;
        Ok(s.sign_to_vec()?)
    }
}

/// Verifies a signature over `data` with `key` under `alg`. Returns `Ok(())` only when the key
/// type matches the algorithm and the signature is valid.
pub fn verify_signature(
    key: &PKey<Public>,
    alg: SignatureAlgorithm,
    data: &[u8],
    sig: &[u8],
) -> Result<()> {
    if algorithm_for(key)? != alg {
        return Err(CryptoError::BadKey(
            "key does not match signature algorithm",
        ));
    }
    let mut v = Verifier::new(MessageDigest::sha256(), key)?;
    if alg == SignatureAlgorithm::RsaPkcs1Sha256 {
        v.set_rsa_padding(openssl::rsa::Padding::PKCS1)?;
    }
    v.update(data)?;
    match v.verify(sig) {
        Ok(true) => Ok(()),
        _ => Err(CryptoError::AuthFailed),
    }
}

// ---------------------------------------------------------------- Diffie-Hellman

/// Key-agreement groups of §13.3.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 2048-bit MODP group of RFC 3526 (62351-4 group 14).
    Modp2048,
    /// ECDH over secp256r1.
    EcdhP256,
    /// ECDH over brainpoolP256r1.
    EcdhBrainpoolP256r1,
}

/// Length of a MODP-2048 public value and shared secret (left-padded, §13.3.1.2 DECISION).
pub const MODP2048_LEN: usize = 256;
/// Length of an uncompressed 256-bit EC point (`04 || X || Y`).
pub const EC_POINT_LEN: usize = 65;
/// Private exponent length drawn for MODP-2048, in octets (256 bits ≥ 2 × 112-bit strength).
pub const MODP_PRIVATE_LEN: usize = 32;
/// Attempts to draw an in-range private value before giving up (bounded loop).
const MAX_DRAWS: usize = 64;

impl DhGroup {
    /// Length of this group's public value on the wire.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => MODP2048_LEN,
            _ => EC_POINT_LEN,
        }
    }
    /// Length of the shared secret Z.
    pub fn secret_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => MODP2048_LEN,
            _ => 32,
        }
    }
    fn curve(self) -> Option<Curve> {
        match self {
            DhGroup::Modp2048 => None,
            DhGroup::EcdhP256 => Some(Curve::P256),
            DhGroup::EcdhBrainpoolP256r1 => Some(Curve::BrainpoolP256r1),
        }
    }
}

fn modp_params() -> Result<Dh<openssl::pkey::Params>> {
    let p = BigNum::get_rfc3526_prime_2048()?;
    let g = BigNum::from_u32(2)?;
    Ok(Dh::from_pqg(p, None, g)?)
}

fn left_pad(v: Vec<u8>, len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let v = Zeroizing::new(v);
    if v.len() > len {
        return Err(CryptoError::BadLength("DH value"));
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    out[len - v.len()..].copy_from_slice(&v);
    Ok(out)
}

/// An ephemeral Diffie-Hellman key pair.
pub struct EphemeralKey {
    group: DhGroup,
    key: PKey<Private>,
    public: Vec<u8>,
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralKey")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl EphemeralKey {
    /// Draws a private value from `rng` and computes the public value.
    pub fn generate(group: DhGroup, rng: &mut dyn RandomSource) -> Result<Self> {
        let mut buf = Zeroizing::new([0u8; 32]);
        for _ in 0..MAX_DRAWS {
            rng.fill(&mut buf[..])?;
            match Self::from_private(group, &buf[..]) {
                Ok(k) => return Ok(k),
                Err(CryptoError::BadKey(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CryptoError::Random)
    }

    /// Builds a key pair from a big-endian private value (fixed-key tests). For the EC groups the
    /// value must lie in [1, n−1]; for MODP in [2, p−2].
    pub fn from_private(group: DhGroup, private: &[u8]) -> Result<Self> {
        let priv_bn = BigNum::from_slice(private)?;
        match group.curve() {
            None => {
                let one = BigNum::from_u32(1)?;
                if priv_bn <= one {
                    return Err(CryptoError::BadKey("DH private value out of range"));
                }
                let dh = modp_params()?.set_private_key(priv_bn)?;
                let public = left_pad(dh.public_key().to_vec(), MODP2048_LEN)?.to_vec();
                let key = PKey::from_dh(dh)?;
                Ok(EphemeralKey { group, key, public })
            }
            Some(curve) => {
                let g = curve.group()?;
                let mut ctx = BigNumContext::new()?;
                let mut order = BigNum::new()?;
                g.order(&mut order, &mut ctx)?;
                if priv_bn.num_bits() == 0 || priv_bn >= order {
                    return Err(CryptoError::BadKey("EC private value out of range"));
                }
                let mut pt = EcPoint::new(&g)?;
                pt.mul_generator2(&g, &priv_bn, &mut ctx)?;
                // The public point is computed from the private value here, so no
                // EC_KEY_check_key (a further scalar multiplication) is needed.
                let ec = EcKey::from_private_components(&g, &priv_bn, &pt)?;
                let public = pt.to_bytes(&g, PointConversionForm::UNCOMPRESSED, &mut ctx)?;
                let key = PKey::from_ec_key(ec)?;
                Ok(EphemeralKey { group, key, public })
            }
        }
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }
    /// The public value in wire form (§13.3.1.2 DECISION).
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// Computes the shared secret Z with a peer public value, after validating it: MODP
    /// `1 < y < p−1`, EC point on the curve and not at infinity.
    pub fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let peer_key = validate_peer_value(self.group, peer)?;
        let mut d = Deriver::new(&self.key)?;
        d.set_peer(&peer_key)?;
        let z = d.derive_to_vec()?;
        left_pad(z, self.group.secret_len())
    }
}

/// Validates a peer public value and turns it into an OpenSSL key (§13.3.1.2).
pub fn validate_peer_value(group: DhGroup, peer: &[u8]) -> Result<PKey<Public>> {
    if peer.len() != group.public_len() {
        return Err(CryptoError::InvalidPeerValue);
    }
    match group.curve() {
        None => {
            let p = BigNum::get_rfc3526_prime_2048()?;
            let y = BigNum::from_slice(peer)?;
            let one = BigNum::from_u32(1)?;
            let mut pm1 = BigNum::new()?;
            pm1.checked_sub(&p, &one)?;
            if y <= one || y >= pm1 {
                return Err(CryptoError::InvalidPeerValue);
            }
            let dh = modp_params()?.set_public_key(y)?;
            Ok(PKey::from_dh(dh)?)
        }
        Some(curve) => {
            let g = curve.group()?;
            let mut ctx = BigNumContext::new()?;
            if peer.first() != Some(&0x04) {
                return Err(CryptoError::InvalidPeerValue);
            }
            let pt = EcPoint::from_bytes(&g, peer, &mut ctx)
                .map_err(|_| CryptoError::InvalidPeerValue)?;
            if !pt.is_on_curve(&g, &mut ctx).unwrap_or(false) || pt.is_infinity(&g) {
                return Err(CryptoError::InvalidPeerValue);
            }
            // Both curves have cofactor 1: a finite point on the curve is in the prime-order
            // group, so partial validation (SEC 1 §3.2.3.1) is complete; the order check of
            // EC_KEY_check_key would repeat a scalar multiplication for nothing.
            let ec = EcKey::from_public_key(&g, &pt).map_err(|_| CryptoError::InvalidPeerValue)?;
            Ok(PKey::from_ec_key(ec)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    #[test]
    fn hkdf_rfc5869_case1() {
        let ikm = h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        let salt = h("000102030405060708090a0b0c");
        let info = h("f0f1f2f3f4f5f6f7f8f9");
        let prk = hkdf_extract(&salt, &ikm).unwrap();
        assert_eq!(
            prk.to_vec(),
            h("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
        );
        let okm = hkdf_expand(&prk, &info, 42).unwrap();
        assert_eq!(
            okm.to_vec(),
            h("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }

    #[test]
    fn hkdf_rfc5869_case3_empty_salt_info() {
        let ikm = h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        let okm = hkdf(&[], &ikm, &[], 42).unwrap();
        assert_eq!(
            okm.to_vec(),
            h("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
        );
    }

    #[test]
    fn keyed_cbc_matches_the_one_shot_functions() {
        for key in [vec![0x2b; 16], vec![0x60; 32]] {
            let mut k = CbcKey::new(&key).unwrap();
            for (i, len) in [0usize, 1, 15, 16, 17, 100].into_iter().enumerate() {
                let iv = [i as u8; 16];
                let pt: Vec<u8> = (0..len).map(|b| b as u8).collect();
                let mut ct = Vec::new();
                k.encrypt_into(&iv, &pt, &mut ct).unwrap();
                let mut one = Vec::new();
                cbc_encrypt_into(&key, &iv, &pt, &mut one).unwrap();
                assert_eq!(ct, one);
                assert_eq!(&k.decrypt(&iv, &ct).unwrap()[..], &pt[..]);
                assert_eq!(&cbc_decrypt(&key, &iv, &ct).unwrap()[..], &pt[..]);
            }
            // Bad padding and bad lengths are authentication failures.
            let mut ct = Vec::new();
            k.encrypt_into(&[0; 16], b"abc", &mut ct).unwrap();
            let last = ct.len() - 1;
            ct[last] ^= 0xff;
            assert!(matches!(
                k.decrypt(&[0; 16], &ct),
                Err(CryptoError::AuthFailed)
            ));
            assert!(matches!(
                k.decrypt(&[0; 16], &ct[..5]),
                Err(CryptoError::AuthFailed)
            ));
            assert!(k.encrypt_into(&[0; 8], b"x", &mut Vec::new()).is_err());
        }
        assert!(CbcKey::new(&[0; 24]).is_err());
    }

    #[test]
    fn hmac_rfc4231_cases_keyed_context() {
        // The reusable keyed context gives the RFC 4231 values, call after call.
        let mut k = HmacKey::new(&[0x0b; 20]).unwrap();
        for _ in 0..3 {
            assert_eq!(
                k.tag(b"Hi There").unwrap().to_vec(),
                h("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
            );
        }
        let mut j = HmacKey::new(b"Jefe").unwrap();
        let mac = j.tag(b"what do ya want for nothing?").unwrap();
        assert_eq!(
            mac.to_vec(),
            h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert!(j.verify(b"what do ya want for nothing?", &mac).is_ok());
        assert!(j.verify(b"what do ya want for nothing!", &mac).is_err());
        assert!(j
            .verify(b"what do ya want for nothing?", &mac[..31])
            .is_err());
    }

    #[test]
    fn hmac_rfc4231_cases() {
        // Test case 1.
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There").unwrap();
        assert_eq!(
            mac.to_vec(),
            h("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            mac.to_vec(),
            h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        // Test case 6 (key longer than the block size).
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        )
        .unwrap();
        assert_eq!(
            mac.to_vec(),
            h("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
        assert!(hmac_sha256_verify(&[0x0b; 20], b"Hi There", &mac).is_err());
    }

    #[test]
    fn gcm_nist_vectors() {
        // NIST GCM spec (McGrew–Viega) test case 2: AES-128, zero key, zero IV, 16 zero octets.
        let key = [0u8; 16];
        let iv = [0u8; 12];
        let ct = gcm_seal(&key, &iv, &[], &[0u8; 16], 16).unwrap();
        assert_eq!(
            ct,
            h("0388dace60b6a392f328c2b971b2fe78 ab6e47d42cec13bdf53a67b21257bddf")
        );
        // Test case 4: AES-128 with AAD.
        let key = h("feffe9928665731c6d6a8f9467308308");
        let iv = h("cafebabefacedbaddecaf888");
        let pt = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let ct = gcm_seal(&key, &iv, &aad, &pt, 16).unwrap();
        assert_eq!(
            ct,
            h("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091 5bc94fbc3221a5db94fae95ae7121a47")
        );
        assert_eq!(gcm_open(&key, &iv, &aad, &ct, 16).unwrap().to_vec(), pt);
        let mut into = vec![9u8];
        gcm_seal_into(&key, &iv, &aad, &pt, 16, &mut into).unwrap();
        assert_eq!(&into[1..], &ct[..]);
        // Test case 16: AES-256 with AAD.
        let key = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let ct = gcm_seal(&key, &iv, &aad, &pt, 16).unwrap();
        assert_eq!(
            ct,
            h("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662 76fc6ece0f4e1768cddf8853bb2d551b")
        );
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(
            gcm_open(&key, &iv, &aad, &bad, 16),
            Err(CryptoError::AuthFailed)
        );
        // Truncated 12-octet tag is the prefix of the full tag.
        let ct12 = gcm_seal(&key, &iv, &aad, &pt, 12).unwrap();
        assert_eq!(ct12[..], ct[..ct.len() - 4]);
        assert!(gcm_open(&key, &iv, &aad, &ct12, 12).is_ok());
    }

    #[test]
    fn gmac_key_matches_gmac_and_is_reusable() {
        for klen in [16usize, 32] {
            let key = vec![7u8; klen];
            let mut k = GmacKey::new(&key).unwrap();
            for i in 0..3u8 {
                let nonce = [i; 12];
                let data = vec![i; 100 * usize::from(i)];
                let want = gmac(&key, &nonce, &data, 16).unwrap();
                let mut got = [0u8; 16];
                k.tag_into(&nonce, &data, &mut got).unwrap();
                assert_eq!(want, got);
                k.verify(&nonce, &data, &want).unwrap();
                let mut bad = want.clone();
                bad[0] ^= 1;
                assert!(k.verify(&nonce, &data, &bad).is_err());
                let mut short = [0u8; 12];
                k.tag_into(&nonce, &data, &mut short).unwrap();
                assert_eq!(&want[..12], &short);
            }
        }
        assert!(GmacKey::new(&[0; 24]).is_err());
    }

    #[test]
    fn keyed_gcm_contexts_match_the_one_shot_functions() {
        for key in [vec![7u8; 16], vec![9u8; 32]] {
            let mut sealer = GcmSealer::new(&key).unwrap();
            let mut opener = GcmOpener::new(&key).unwrap();
            for i in 0..4u8 {
                let nonce = [i; 12];
                let aad = [i, 1, 2];
                let plain = vec![i; 40 + usize::from(i) * 7];
                let mut one_shot = vec![0xAA];
                gcm_seal_into(&key, &nonce, &aad, &plain, 16, &mut one_shot).unwrap();
                let mut keyed = vec![0xAA];
                sealer
                    .seal_into(&nonce, &aad, &plain, 16, &mut keyed)
                    .unwrap();
                assert_eq!(keyed, one_shot);
                let sealed = &keyed[1..];
                assert_eq!(&*opener.open(&nonce, &aad, sealed, 16).unwrap(), &plain);
                let mut bad = sealed.to_vec();
                *bad.last_mut().unwrap() ^= 1;
                assert!(matches!(
                    opener.open(&nonce, &aad, &bad, 16),
                    Err(CryptoError::AuthFailed)
                ));
                // A failure leaves the context usable.
                assert_eq!(&*opener.open(&nonce, &aad, sealed, 16).unwrap(), &plain);
                assert_eq!(&*gcm_open(&key, &nonce, &aad, sealed, 16).unwrap(), &plain);
            }
            assert!(opener.open(&[0; 11], &[], &[0; 16], 16).is_err());
            assert!(opener.open(&[0; 12], &[], &[0; 8], 16).is_err());
            assert!(sealer
                .seal_into(&[0; 11], &[], &[], 16, &mut Vec::new())
                .is_err());
        }
        assert!(GcmSealer::new(&[0; 24]).is_err());
        assert!(GcmOpener::new(&[0; 24]).is_err());
    }

    #[test]
    fn gmac_verifies_and_detects_change() {
        let key = [7u8; 32];
        let nonce = [1u8; 12];
        let tag = gmac(&key, &nonce, b"data", 12).unwrap();
        assert_eq!(tag.len(), 12);
        gmac_verify(&key, &nonce, b"data", &tag).unwrap();
        assert!(gmac_verify(&key, &nonce, b"datb", &tag).is_err());
    }

    #[test]
    fn cbc_round_trip_and_padding() {
        // NIST SP 800-38A F.2.1 first block (CBC-AES128), followed by the PKCS#7 pad block.
        let key = h("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = h("000102030405060708090a0b0c0d0e0f");
        let pt = h("6bc1bee22e409f96e93d7e117393172a");
        let ct = cbc_encrypt(&key, &iv, &pt).unwrap();
        assert_eq!(&ct[..16], &h("7649abac8119b246cee98e9b12e9197d")[..]);
        assert_eq!(ct.len(), 32);
        assert_eq!(cbc_decrypt(&key, &iv, &ct).unwrap().to_vec(), pt);
        let mut into = vec![9u8];
        cbc_encrypt_into(&key, &iv, &pt, &mut into).unwrap();
        assert_eq!(&into[1..], &ct[..]);
        assert_eq!(cbc_ciphertext_len(pt.len()), ct.len());
        assert!(cbc_decrypt(&key, &iv, &ct[..17]).is_err());
    }

    #[test]
    fn dh_agreement_all_groups() {
        let mut rng = OsRandom;
        for g in [
            DhGroup::Modp2048,
            DhGroup::EcdhP256,
            DhGroup::EcdhBrainpoolP256r1,
        ] {
            let a = EphemeralKey::generate(g, &mut rng).unwrap();
            let b = EphemeralKey::generate(g, &mut rng).unwrap();
            assert_eq!(a.public_value().len(), g.public_len());
            let z1 = a.agree(b.public_value()).unwrap();
            let z2 = b.agree(a.public_value()).unwrap();
            assert_eq!(z1, z2);
            assert_eq!(z1.len(), g.secret_len());
        }
    }

    #[test]
    fn dh_peer_validation() {
        let mut rng = OsRandom;
        let a = EphemeralKey::generate(DhGroup::Modp2048, &mut rng).unwrap();
        let mut one = vec![0u8; 256];
        one[255] = 1;
        assert_eq!(a.agree(&one), Err(CryptoError::InvalidPeerValue));
        assert_eq!(a.agree(&[0u8; 256]), Err(CryptoError::InvalidPeerValue));
        let p = BigNum::get_rfc3526_prime_2048().unwrap().to_vec();
        let mut pm1 = p.clone();
        pm1[255] -= 1;
        assert_eq!(a.agree(&pm1), Err(CryptoError::InvalidPeerValue));
        assert_eq!(a.agree(&[1u8; 10]), Err(CryptoError::InvalidPeerValue));
        let e = EphemeralKey::generate(DhGroup::EcdhP256, &mut rng).unwrap();
        let mut off = e.public_value().to_vec();
        off[64] ^= 1;
        assert_eq!(e.agree(&off), Err(CryptoError::InvalidPeerValue));
        // A brainpool point is not a P-256 point.
        let bp = EphemeralKey::generate(DhGroup::EcdhBrainpoolP256r1, &mut rng).unwrap();
        assert_eq!(
            e.agree(bp.public_value()),
            Err(CryptoError::InvalidPeerValue)
        );
    }

    #[test]
    fn signatures_all_algorithms() {
        for k in [
            SigningKey::generate_rsa(2048).unwrap(),
            SigningKey::generate_ec(Curve::P256).unwrap(),
            SigningKey::generate_ec(Curve::BrainpoolP256r1).unwrap(),
        ] {
            let sig = k.sign(b"tbs").unwrap();
            let pubk = PKey::public_key_from_der(&k.pkey().public_key_to_der().unwrap()).unwrap();
            verify_signature(&pubk, k.algorithm(), b"tbs", &sig).unwrap();
            assert!(verify_signature(&pubk, k.algorithm(), b"tbt", &sig).is_err());
            let other = match k.algorithm() {
                SignatureAlgorithm::RsaPkcs1Sha256 => SignatureAlgorithm::EcdsaSha256,
                SignatureAlgorithm::EcdsaSha256 => SignatureAlgorithm::RsaPkcs1Sha256,
            };
            assert!(verify_signature(&pubk, other, b"tbs", &sig).is_err());
        }
        assert!(SigningKey::generate_rsa(1024).is_err());
    }
}
