//! TLS 1.2 record protection: the suites decrypted, the key block (RFC 5246 §6.3) and opening a
//! record, AES-GCM (RFC 5288) or AES-CBC with HMAC, MAC-then-encrypt (RFC 5246 §6.2.3.2) or
//! encrypt-then-MAC (RFC 7366).
//!
//! Every primitive is OpenSSL's: the PRF (the private module `prf`), AES-GCM
//! (`secmms_pki::crypto`), AES-CBC without padding and HMAC (`openssl::symm`, `openssl::sign`),
//! and the MAC comparison (`openssl::memcmp::eq`, constant time).

use openssl::hash::MessageDigest;
use openssl::md::{Md, MdRef};
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{Cipher, Crypter, Mode};

/// Length of a TLS 1.2 master secret (RFC 5246 §8.1).
pub const MASTER_SECRET_LEN: usize = 48;
const AES_BLOCK: usize = 16;
const GCM_EXPLICIT_NONCE: usize = 8;
const GCM_SALT: usize = 4;
const GCM_TAG: usize = 16;

/// The record MAC of a CBC suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlg {
    /// HMAC-SHA1 (the `_SHA` suites).
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA384.
    Sha384,
}

impl MacAlg {
    fn len(self) -> usize {
        match self {
            MacAlg::Sha1 => 20,
            MacAlg::Sha256 => 32,
            MacAlg::Sha384 => 48,
        }
    }
    fn digest(self) -> MessageDigest {
        match self {
            MacAlg::Sha1 => MessageDigest::sha1(),
            MacAlg::Sha256 => MessageDigest::sha256(),
            MacAlg::Sha384 => MessageDigest::sha384(),
        }
    }
}

/// How records of a suite are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// AES-GCM: 4-octet implicit salt from the key block, 8-octet explicit nonce per record.
    Gcm,
    /// AES-CBC with an explicit IV per record and this HMAC.
    Cbc(MacAlg),
}

/// A TLS 1.2 suite decrypted here; the key exchange (RSA, DH, DHE, ECDHE) does not matter once
/// the key log gives the master secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite12 {
    /// IANA code point.
    pub code: u16,
    /// AES key length, octets (16 or 32).
    pub key_len: usize,
    /// The PRF hash is SHA-384 (the `_SHA384` suites) instead of SHA-256.
    pub prf_sha384: bool,
    /// Record protection.
    pub protection: Protection,
}

impl Suite12 {
    /// The suite of a code point, when it is one decrypted here: the AES-GCM and AES-CBC suites
    /// of IEC 62351-3/-4 (Tables 2 and 3) and their RSA / DHE / ECDHE siblings.
    pub fn from_code(code: u16) -> Option<Suite12> {
        use MacAlg::*;
        use Protection::*;
        let (key_len, prf_sha384, protection) = match code {
            // AES-128-GCM-SHA256: RSA, DHE-RSA, DH-RSA, DHE-DSS, DH-DSS, ECDHE-ECDSA, ECDHE-RSA.
            0x009C | 0x009E | 0x00A0 | 0x00A2 | 0x00A4 | 0xC02B | 0xC02F => (16, false, Gcm),
            // AES-256-GCM-SHA384, same key exchanges.
            0x009D | 0x009F | 0x00A1 | 0x00A3 | 0x00A5 | 0xC02C | 0xC030 => (32, true, Gcm),
            // AES-128-CBC-SHA: RSA, DH-DSS, DH-RSA, DHE-DSS, DHE-RSA, ECDHE-ECDSA, ECDHE-RSA.
            0x002F | 0x0030 | 0x0031 | 0x0032 | 0x0033 | 0xC009 | 0xC013 => (16, false, Cbc(Sha1)),
            // AES-256-CBC-SHA, same key exchanges.
            0x0035 | 0x0036 | 0x0037 | 0x0038 | 0x0039 | 0xC00A | 0xC014 => (32, false, Cbc(Sha1)),
            // AES-128-CBC-SHA256: RSA, DH-DSS, DH-RSA, DHE-DSS, DHE-RSA, ECDHE-ECDSA, ECDHE-RSA.
            0x003C | 0x003E | 0x003F | 0x0040 | 0x0067 | 0xC023 | 0xC027 => {
                (16, false, Cbc(Sha256))
            }
            // AES-256-CBC-SHA256: RSA, DH-DSS, DH-RSA, DHE-DSS, DHE-RSA.
            0x003D | 0x0068 | 0x0069 | 0x006A | 0x006B => (32, false, Cbc(Sha256)),
            // AES-256-CBC-SHA384: ECDHE-ECDSA, ECDHE-RSA.
            0xC024 | 0xC028 => (32, true, Cbc(Sha384)),
            _ => return None,
        };
        Some(Suite12 {
            code,
            key_len,
            prf_sha384,
            protection,
        })
    }

    fn prf_md(self) -> &'static MdRef {
        if self.prf_sha384 {
            Md::sha384()
        } else {
            Md::sha256()
        }
    }

    fn mac_len(self) -> usize {
        match self.protection {
            Protection::Gcm => 0,
            Protection::Cbc(m) => m.len(),
        }
    }

    fn fixed_iv_len(self) -> usize {
        match self.protection {
            Protection::Gcm => GCM_SALT,
            // RFC 5246 §6.3: CBC records carry their IV; none comes from the key block.
            Protection::Cbc(_) => 0,
        }
    }

    /// A short description: `0xC02F AES-128-GCM`, `0xC027 AES-128-CBC HMAC-SHA256 (EtM)`.
    pub fn describe(self, etm: bool) -> String {
        let bits = self.key_len * 8;
        match self.protection {
            Protection::Gcm => format!("{:#06x} AES-{bits}-GCM", self.code),
            Protection::Cbc(m) => format!(
                "{:#06x} AES-{bits}-CBC HMAC-{}{}",
                self.code,
                match m {
                    MacAlg::Sha1 => "SHA1",
                    MacAlg::Sha256 => "SHA256",
                    MacAlg::Sha384 => "SHA384",
                },
                if etm {
                    " encrypt-then-MAC"
                } else {
                    " MAC-then-encrypt"
                }
            ),
        }
    }
}

/// Why keys could not be made from a master secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key log's secret for this connection is not 48 octets.
    #[error("the key log's master secret is {0} octets, not 48")]
    MasterLength(usize),
    /// OpenSSL refused the PRF.
    #[error("TLS 1.2 PRF failed in OpenSSL")]
    Prf,
}

/// Why a record did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Shorter than its nonce or IV, tag or MAC and padding, or not whole cipher blocks.
    #[error("is too short or not whole cipher blocks")]
    Length,
    /// The GCM tag or the HMAC does not verify, or the CBC padding is wrong.
    #[error("does not authenticate with the key log's master secret")]
    Auth,
    /// OpenSSL failed (not an authentication failure).
    #[error("could not be decrypted (OpenSSL error)")]
    Crypto,
}

/// The read state of one direction: its write keys from the key block and its record sequence
/// number.
#[derive(Clone)]
pub struct DirectionKeys {
    suite: Suite12,
    etm: bool,
    mac_key: Vec<u8>,
    key: Vec<u8>,
    salt: Vec<u8>,
    seq: u64,
}

impl std::fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are not printed.
        f.debug_struct("DirectionKeys")
            .field("suite", &self.suite)
            .field("etm", &self.etm)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// The key block (RFC 5246 §6.3): `PRF(master, "key expansion", server_random + client_random)`,
/// cut into the client's and the server's MAC key, key and fixed IV. Returns (client write,
/// server write). `etm`: the ServerHello accepted encrypt-then-MAC (RFC 7366; CBC suites only).
pub fn key_block(
    suite: Suite12,
    master: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
    etm: bool,
) -> Result<(DirectionKeys, DirectionKeys), KeyError> {
    if master.len() != MASTER_SECRET_LEN {
        return Err(KeyError::MasterLength(master.len()));
    }
    let (m, k, iv) = (suite.mac_len(), suite.key_len, suite.fixed_iv_len());
    let mut block = vec![0u8; 2 * (m + k + iv)];
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(server_random);
    seed[32..].copy_from_slice(client_random);
    super::prf::tls12_prf(suite.prf_md(), master, b"key expansion", &seed, &mut block)
        .map_err(|_| KeyError::Prf)?;
    let mut rest = &block[..];
    let mut take = |n: usize| {
        let (a, b) = rest.split_at(n);
        rest = b;
        a.to_vec()
    };
    let (cm, sm, ck, sk, civ, siv) = (take(m), take(m), take(k), take(k), take(iv), take(iv));
    let etm = etm && matches!(suite.protection, Protection::Cbc(_));
    let keys = |mac_key, key, salt| DirectionKeys {
        suite,
        etm,
        mac_key,
        key,
        salt,
        seq: 0,
    };
    Ok((keys(cm, ck, civ), keys(sm, sk, siv)))
}

/// The MAC/AAD prefix of a record: seq_num(8) type(1) version(2) length(2).
fn pseudo_header(seq: u64, header: &[u8], len: usize) -> [u8; 13] {
    let mut h = [0u8; 13];
    h[..8].copy_from_slice(&seq.to_be_bytes());
    h[8..11].copy_from_slice(&header[..3]);
    h[11..].copy_from_slice(&(len as u16).to_be_bytes());
    h
}

fn aes_cbc(key_len: usize) -> Cipher {
    if key_len == 32 {
        Cipher::aes_256_cbc()
    } else {
        Cipher::aes_128_cbc()
    }
}

impl DirectionKeys {
    /// Records opened so far (the next record's sequence number).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Opens one record (`header`: its 5 octets; `body`: the rest) and returns its plaintext.
    /// The sequence number advances whatever the outcome.
    pub fn open(&mut self, header: &[u8], body: &[u8]) -> Result<Vec<u8>, RecordError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        if header.len() < 5 {
            return Err(RecordError::Length);
        }
        match self.suite.protection {
            Protection::Gcm => self.open_gcm(seq, header, body),
            Protection::Cbc(mac) if self.etm => self.open_etm(seq, header, body, mac),
            Protection::Cbc(mac) => self.open_mte(seq, header, body, mac),
        }
    }

    fn open_gcm(&self, seq: u64, header: &[u8], body: &[u8]) -> Result<Vec<u8>, RecordError> {
        if body.len() < GCM_EXPLICIT_NONCE + GCM_TAG {
            return Err(RecordError::Length);
        }
        let (explicit, sealed) = body.split_at(GCM_EXPLICIT_NONCE);
        let mut nonce = [0u8; GCM_SALT + GCM_EXPLICIT_NONCE];
        nonce[..GCM_SALT].copy_from_slice(&self.salt);
        nonce[GCM_SALT..].copy_from_slice(explicit);
        let aad = pseudo_header(seq, header, sealed.len() - GCM_TAG);
        match secmms_pki::crypto::gcm_open(&self.key, &nonce, &aad, sealed, GCM_TAG) {
            Ok(plain) => Ok(plain.to_vec()),
            Err(secmms_pki::crypto::CryptoError::AuthFailed) => Err(RecordError::Auth),
            Err(_) => Err(RecordError::Crypto),
        }
    }

    fn hmac(&self, mac: MacAlg, parts: &[&[u8]]) -> Result<Vec<u8>, RecordError> {
        let key = PKey::hmac(&self.mac_key).map_err(|_| RecordError::Crypto)?;
        let mut s = Signer::new(mac.digest(), &key).map_err(|_| RecordError::Crypto)?;
        for p in parts {
            s.update(p).map_err(|_| RecordError::Crypto)?;
        }
        s.sign_to_vec().map_err(|_| RecordError::Crypto)
    }

    /// AES-CBC without padding removal: `data` is whole blocks.
    fn cbc_decrypt(&self, iv: &[u8], data: &[u8]) -> Result<Vec<u8>, RecordError> {
        let mut c = Crypter::new(
            aes_cbc(self.suite.key_len),
            Mode::Decrypt,
            &self.key,
            Some(iv),
        )
        .map_err(|_| RecordError::Crypto)?;
        c.pad(false);
        let mut out = vec![0u8; data.len() + AES_BLOCK];
        let mut n = c.update(data, &mut out).map_err(|_| RecordError::Crypto)?;
        n += c.finalize(&mut out[n..]).map_err(|_| RecordError::Crypto)?;
        out.truncate(n);
        Ok(out)
    }

    /// Length of the TLS padding (padding octets + the length octet) at the end of `plain`,
    /// checked: every padding octet equals the length octet (RFC 5246 §6.2.3.2).
    fn padding(plain: &[u8], room: usize) -> Result<usize, RecordError> {
        let Some(&last) = plain.last() else {
            return Err(RecordError::Auth);
        };
        let pad = usize::from(last) + 1;
        if pad > room {
            return Err(RecordError::Auth);
        }
        let bad = plain[plain.len() - pad..]
            .iter()
            .fold(0u8, |acc, b| acc | (b ^ last));
        if bad != 0 {
            return Err(RecordError::Auth);
        }
        Ok(pad)
    }

    /// MAC-then-encrypt: IV || CBC(content || MAC || padding).
    fn open_mte(
        &self,
        seq: u64,
        header: &[u8],
        body: &[u8],
        mac: MacAlg,
    ) -> Result<Vec<u8>, RecordError> {
        let m = mac.len();
        if body.len() < 2 * AES_BLOCK || body.len() % AES_BLOCK != 0 {
            return Err(RecordError::Length);
        }
        let (iv, data) = body.split_at(AES_BLOCK);
        let plain = self.cbc_decrypt(iv, data)?;
        if plain.len() < m + 1 {
            return Err(RecordError::Length);
        }
        let pad = Self::padding(&plain, plain.len() - m)?;
        let content_len = plain.len() - pad - m;
        let (content, rest) = plain.split_at(content_len);
        let expected = self.hmac(mac, &[&pseudo_header(seq, header, content_len), content])?;
        if !openssl::memcmp::eq(&expected, &rest[..m]) {
            return Err(RecordError::Auth);
        }
        Ok(content.to_vec())
    }

    /// Encrypt-then-MAC (RFC 7366): IV || CBC(content || padding) || MAC over the IV and
    /// ciphertext.
    fn open_etm(
        &self,
        seq: u64,
        header: &[u8],
        body: &[u8],
        mac: MacAlg,
    ) -> Result<Vec<u8>, RecordError> {
        let m = mac.len();
        if body.len() < 2 * AES_BLOCK + m || (body.len() - m) % AES_BLOCK != 0 {
            return Err(RecordError::Length);
        }
        let (sealed, tag) = body.split_at(body.len() - m);
        let expected = self.hmac(mac, &[&pseudo_header(seq, header, sealed.len()), sealed])?;
        if !openssl::memcmp::eq(&expected, tag) {
            return Err(RecordError::Auth);
        }
        let (iv, data) = sealed.split_at(AES_BLOCK);
        let mut plain = self.cbc_decrypt(iv, data)?;
        let pad = Self::padding(&plain, plain.len())?;
        plain.truncate(plain.len() - pad);
        Ok(plain)
    }
}

/// A whole AES-GCM record of type `typ` with sequence number `seq` (tests: the writer's side).
#[cfg(test)]
pub(crate) fn seal_gcm(
    k: &DirectionKeys,
    seq: u64,
    typ: u8,
    plain: &[u8],
    explicit: [u8; 8],
) -> Vec<u8> {
    let mut nonce = k.salt.clone();
    nonce.extend_from_slice(&explicit);
    let header = [typ, 3, 3, 0, 0];
    let aad = pseudo_header(seq, &header, plain.len());
    let sealed = secmms_pki::crypto::gcm_seal(&k.key, &nonce, &aad, plain, 16).unwrap();
    let mut rec = header.to_vec();
    rec.extend_from_slice(&explicit);
    rec.extend_from_slice(&sealed);
    let len = (rec.len() - 5) as u16;
    rec[3..5].copy_from_slice(&len.to_be_bytes());
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(k: &DirectionKeys, mac: MacAlg, data: &[u8]) -> Vec<u8> {
        k.hmac(mac, &[data]).unwrap()
    }

    fn cbc_encrypt(k: &DirectionKeys, iv: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c =
            Crypter::new(aes_cbc(k.suite.key_len), Mode::Encrypt, &k.key, Some(iv)).unwrap();
        c.pad(false);
        let mut out = vec![0u8; data.len() + AES_BLOCK];
        let n = c.update(data, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn tls_pad(v: &mut Vec<u8>) {
        let pad = AES_BLOCK - (v.len() + 1) % AES_BLOCK;
        v.extend(std::iter::repeat(pad as u8).take(pad + 1));
    }

    /// A CBC record, MAC-then-encrypt or encrypt-then-MAC, sealed by hand from OpenSSL's
    /// primitives.
    fn seal_cbc(k: &DirectionKeys, seq: u64, plain: &[u8], etm: bool) -> Vec<u8> {
        let Protection::Cbc(mac) = k.suite.protection else {
            panic!()
        };
        let iv = [0x5a; 16];
        let mut header = vec![23, 3, 3, 0, 0];
        let body = if etm {
            let mut p = plain.to_vec();
            tls_pad(&mut p);
            let mut sealed = iv.to_vec();
            sealed.extend(cbc_encrypt(k, &iv, &p));
            let mut mac_in = pseudo_header(seq, &header, sealed.len()).to_vec();
            mac_in.extend_from_slice(&sealed);
            sealed.extend(hmac(k, mac, &mac_in));
            sealed
        } else {
            let mut mac_in = pseudo_header(seq, &header, plain.len()).to_vec();
            mac_in.extend_from_slice(plain);
            let mut p = plain.to_vec();
            p.extend(hmac(k, mac, &mac_in));
            tls_pad(&mut p);
            let mut sealed = iv.to_vec();
            sealed.extend(cbc_encrypt(k, &iv, &p));
            sealed
        };
        header[3..5].copy_from_slice(&(body.len() as u16).to_be_bytes());
        header.extend(body);
        header
    }

    fn keys(code: u16, etm: bool) -> (DirectionKeys, DirectionKeys) {
        key_block(
            Suite12::from_code(code).unwrap(),
            &[7u8; 48],
            &[1u8; 32],
            &[2u8; 32],
            etm,
        )
        .unwrap()
    }

    #[test]
    fn key_block_lengths_and_order() {
        let (c, s) = keys(0xC02F, false);
        assert_eq!((c.key.len(), c.salt.len(), c.mac_key.len()), (16, 4, 0));
        assert_ne!(c.key, s.key);
        let (c, _) = keys(0xC030, false);
        assert_eq!((c.key.len(), c.salt.len()), (32, 4));
        let (c, s) = keys(0xC028, true);
        assert_eq!((c.key.len(), c.salt.len(), c.mac_key.len()), (32, 0, 48));
        assert!(c.etm && s.etm);
        // The key block is PRF(master, "key expansion", server_random + client_random), cut
        // client MAC, server MAC, client key, server key.
        let mut block = vec![0u8; 2 * 32 + 2 * 16];
        let mut seed = [2u8; 64];
        seed[32..].fill(1);
        super::super::prf::tls12_prf(
            Md::sha256(),
            &[7u8; 48],
            b"key expansion",
            &seed,
            &mut block,
        )
        .unwrap();
        let (c, s) = keys(0xC027, false);
        assert_eq!(c.mac_key, block[..32]);
        assert_eq!(s.mac_key, block[32..64]);
        assert_eq!(c.key, block[64..80]);
        assert_eq!(s.key, block[80..96]);
        // Randoms swapped: other keys.
        let (c2, _) = key_block(
            Suite12::from_code(0xC027).unwrap(),
            &[7u8; 48],
            &[2u8; 32],
            &[1u8; 32],
            false,
        )
        .unwrap();
        assert_ne!(c2.key, c.key);
        assert_eq!(
            key_block(
                Suite12::from_code(0xC02F).unwrap(),
                &[7u8; 47],
                &[1; 32],
                &[2; 32],
                false
            )
            .unwrap_err(),
            KeyError::MasterLength(47)
        );
        assert_eq!(Suite12::from_code(0x1301), None);
        assert_eq!(Suite12::from_code(0x000A), None);
    }

    #[test]
    fn gcm_records_open_in_sequence_and_reject_changes() {
        for code in [0xC02F, 0xC030, 0x009E] {
            let (c, _) = keys(code, false);
            let mut reader = c.clone();
            let r0 = seal_gcm(&c, 0, 23, b"first", [0, 0, 0, 0, 0, 0, 0, 1]);
            let r1 = seal_gcm(&c, 1, 23, b"second record", [9; 8]);
            assert_eq!(reader.open(&r0[..5], &r0[5..]).unwrap(), b"first");
            assert_eq!(reader.open(&r1[..5], &r1[5..]).unwrap(), b"second record");
            assert_eq!(reader.seq(), 2);
            // Replayed out of sequence, a flipped ciphertext octet, another content type, a
            // wrong explicit nonce: none authenticates.
            let mut again = c.clone();
            again.seq = 1;
            assert_eq!(again.open(&r0[..5], &r0[5..]), Err(RecordError::Auth));
            for (i, x) in [(14usize, 1u8), (0, 1), (6, 0x80)] {
                let mut bad = r0.clone();
                bad[i] ^= x;
                let mut k = c.clone();
                assert_eq!(k.open(&bad[..5], &bad[5..]), Err(RecordError::Auth), "{i}");
            }
            let mut k = c.clone();
            assert_eq!(k.open(&r0[..5], &r0[5..20]), Err(RecordError::Length));
        }
    }

    #[test]
    fn cbc_records_mac_then_encrypt_and_encrypt_then_mac() {
        for code in [0xC027, 0xC028, 0x0033, 0x0035, 0x003C] {
            for etm in [false, true] {
                let (c, _) = keys(code, etm);
                for len in [0usize, 1, 15, 16, 17, 100] {
                    let plain: Vec<u8> = (0..len as u8).collect();
                    let r = seal_cbc(&c, 0, &plain, etm);
                    let mut k = c.clone();
                    assert_eq!(
                        k.open(&r[..5], &r[5..]).unwrap(),
                        plain,
                        "{code:#x} {etm} {len}"
                    );
                    // Wrong sequence number: the MAC fails.
                    let mut k = c.clone();
                    k.seq = 5;
                    assert_eq!(k.open(&r[..5], &r[5..]), Err(RecordError::Auth));
                    // Any octet of IV, ciphertext or MAC changed: refused.
                    for i in [5usize, 21, r.len() - 1] {
                        let mut bad = r.clone();
                        bad[i] ^= 1;
                        let mut k = c.clone();
                        assert!(k.open(&bad[..5], &bad[5..]).is_err(), "{code:#x} {etm} {i}");
                    }
                }
                // Read with the other mode: refused, never a panic.
                let r = seal_cbc(&c, 0, b"mode", etm);
                let (mut other, _) = keys(code, !etm);
                assert!(other.open(&r[..5], &r[5..]).is_err());
                let mut k = c.clone();
                assert_eq!(k.open(&r[..5], &r[5..21]), Err(RecordError::Length));
            }
        }
    }

    #[test]
    fn bad_padding_is_refused() {
        let (c, _) = keys(0xC027, false);
        let mac_in = pseudo_header(0, &[23, 3, 3], 3);
        let mut p = b"abc".to_vec();
        p.extend(hmac(&c, MacAlg::Sha256, &[&mac_in[..], b"abc"].concat()));
        // 35 octets: 13 of padding, one of them wrong.
        p.extend([12u8; 13]);
        p[40] = 11;
        let iv = [1u8; 16];
        let mut body = iv.to_vec();
        body.extend(cbc_encrypt(&c, &iv, &p));
        let mut k = c.clone();
        assert_eq!(k.open(&[23, 3, 3, 0, 64], &body), Err(RecordError::Auth));
        p[40] = 12;
        let mut body = iv.to_vec();
        body.extend(cbc_encrypt(&c, &iv, &p));
        let mut k = c.clone();
        assert_eq!(k.open(&[23, 3, 3, 0, 64], &body).unwrap(), b"abc");
    }
}
