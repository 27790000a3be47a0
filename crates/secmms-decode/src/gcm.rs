//! AES-GCM decryption with a context keyed once per key.
//!
//! `secmms_pki::crypto::gcm_open` builds and keys an OpenSSL cipher context for every message
//! (fetching the cipher, expanding the key): for a capture of many small records that set-up
//! costs more than the decryption itself. [`GcmOpener`] keeps the keyed context and only sets
//! the nonce per message, as `secmms_pki::crypto::GmacKey` does for GMAC. The checks and the
//! result are those of `gcm_open`.

use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;

/// Nonce length (RFC 5116 §5.1, TLS 1.3, §13.3.2 of IEC 62351-4).
const NONCE_LEN: usize = 12;

/// An AES-128-GCM or AES-256-GCM key with its keyed decryption context.
pub struct GcmOpener {
    ctx: CipherCtx,
}

impl std::fmt::Debug for GcmOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcmOpener").finish_non_exhaustive()
    }
}

impl GcmOpener {
    /// Keys a context for a 16-octet (AES-128) or 32-octet (AES-256) key; `None` for another
    /// length or when OpenSSL refuses.
    pub fn new(key: &[u8]) -> Option<GcmOpener> {
        let cipher = match key.len() {
            16 => Cipher::aes_128_gcm(),
            32 => Cipher::aes_256_gcm(),
            _ => return None,
        };
        let mut ctx = CipherCtx::new().ok()?;
        ctx.decrypt_init(Some(cipher), Some(key), None).ok()?;
        Some(GcmOpener { ctx })
    }

    /// Verifies and decrypts `sealed` (ciphertext then a `tag_len`-octet tag, 12..=16) under
    /// `nonce` (12 octets) with `aad`. `None` when anything does not fit or the tag does not
    /// verify.
    pub fn open(
        &mut self,
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
        tag_len: usize,
    ) -> Option<Vec<u8>> {
        if nonce.len() != NONCE_LEN || !(12..=16).contains(&tag_len) || sealed.len() < tag_len {
            return None;
        }
        let (ct, tag) = sealed.split_at(sealed.len() - tag_len);
        self.ctx.decrypt_init(None, None, Some(nonce)).ok()?;
        self.ctx.set_tag(tag).ok()?;
        self.ctx.cipher_update(aad, None).ok()?;
        // GCM is a stream mode: the output is as long as the input (the block-size margin
        // keeps OpenSSL's length check content).
        let mut out = vec![0u8; ct.len() + 16];
        let n = self.ctx.cipher_update(ct, Some(&mut out)).ok()?;
        let m = self.ctx.cipher_final(&mut out[n..]).ok()?;
        out.truncate(n + m);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_result_as_gcm_open_across_messages_and_refuses_a_bad_tag() {
        for key in [vec![7u8; 16], vec![9u8; 32]] {
            let mut o = GcmOpener::new(&key).unwrap();
            for i in 0..3u8 {
                let nonce = [i; 12];
                let aad = [i, 1, 2];
                let plain = vec![i; 40 + usize::from(i)];
                let sealed = secmms_pki::crypto::gcm_seal(&key, &nonce, &aad, &plain, 16).unwrap();
                assert_eq!(o.open(&nonce, &aad, &sealed, 16), Some(plain.clone()));
                let mut bad = sealed.clone();
                *bad.last_mut().unwrap() ^= 1;
                assert_eq!(o.open(&nonce, &aad, &bad, 16), None);
                // A failure leaves the context usable.
                assert_eq!(o.open(&nonce, &aad, &sealed, 16), Some(plain));
            }
            assert_eq!(o.open(&[0; 11], &[], &[0; 16], 16), None);
            assert_eq!(o.open(&[0; 12], &[], &[0; 8], 16), None);
        }
        assert!(GcmOpener::new(&[0; 24]).is_none());
    }
}
