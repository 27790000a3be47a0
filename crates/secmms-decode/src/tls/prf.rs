//! OpenSSL's TLS 1.2 PRF (RFC 5246 §5), the only OpenSSL calls of this crate that the `openssl`
//! crate does not wrap.
//!
//! The `openssl` crate builds the `EVP_PKEY_CTX` of OpenSSL's "TLS1-PRF" method and runs
//! `EVP_PKEY_derive` safely; it has no setters for the method's digest, secret and seed. Those are
//! three plain OpenSSL 3 functions (`kdf.h`), declared here because `openssl-sys` 0.9 does not
//! declare them. Each call gets a context this function owns and slices it borrows for the call
//! (OpenSSL copies them), so nothing escapes. No part of the PRF is computed here: the HMAC
//! chain (P_hash) is OpenSSL's.

use std::os::raw::{c_int, c_uchar};

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::error::ErrorStack;
use openssl::md::MdRef;
use openssl::pkey::Id;
use openssl::pkey_ctx::PkeyCtx;

/// `NID_tls1_prf` (`obj_mac.h`), the key type of OpenSSL's TLS PRF `EVP_PKEY` method
/// (`EVP_PKEY_TLS1_PRF`); `openssl-sys` does not export it.
const NID_TLS1_PRF: c_int = 1021;

extern "C" {
    fn EVP_PKEY_CTX_set_tls1_prf_md(
        ctx: *mut openssl_sys::EVP_PKEY_CTX,
        md: *const openssl_sys::EVP_MD,
    ) -> c_int;
    fn EVP_PKEY_CTX_set1_tls1_prf_secret(
        ctx: *mut openssl_sys::EVP_PKEY_CTX,
        sec: *const c_uchar,
        seclen: c_int,
    ) -> c_int;
    fn EVP_PKEY_CTX_add1_tls1_prf_seed(
        ctx: *mut openssl_sys::EVP_PKEY_CTX,
        seed: *const c_uchar,
        seedlen: c_int,
    ) -> c_int;
}

/// Largest secret or label + seed passed to OpenSSL (they are lengths in a C `int`); a TLS 1.2
/// master secret is 48 octets and a key-expansion seed 77.
const MAX_INPUT: usize = 1 << 16;

fn check(r: c_int) -> Result<(), ErrorStack> {
    if r > 0 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// Fills `out` with `PRF(secret, label, seed)` of TLS 1.2 (RFC 5246 §5: P_hash with `md`), by
/// OpenSSL's TLS1-PRF. Fails (with OpenSSL's error stack, possibly empty) when OpenSSL refuses, or
/// when an input is over 64 KiB.
pub(crate) fn tls12_prf(
    md: &MdRef,
    secret: &[u8],
    label: &[u8],
    seed: &[u8],
    out: &mut [u8],
) -> Result<(), ErrorStack> {
    if secret.len() > MAX_INPUT || label.len() + seed.len() > MAX_INPUT {
        return Err(ErrorStack::get());
    }
    // One seed value, label first: OpenSSL's PRF takes the label as the seed's start.
    let mut full_seed = Vec::with_capacity(label.len() + seed.len());
    full_seed.extend_from_slice(label);
    full_seed.extend_from_slice(seed);
    let mut ctx = PkeyCtx::new_id(Id::from_raw(NID_TLS1_PRF))?;
    ctx.derive_init()?;
    // Both lengths are at most MAX_INPUT, so they fit a C int.
    let (secret_len, seed_len) = (secret.len() as c_int, full_seed.len() as c_int);
    // SAFETY: `ctx` is a live EVP_PKEY_CTX of the TLS1-PRF method that this function owns and
    // that was initialised for derivation, `md` a live EVP_MD; the buffers are valid for the
    // lengths given and only read during each call (OpenSSL copies secret and seed).
    unsafe {
        check(EVP_PKEY_CTX_set_tls1_prf_md(ctx.as_ptr(), md.as_ptr()))?;
        check(EVP_PKEY_CTX_set1_tls1_prf_secret(
            ctx.as_ptr(),
            secret.as_ptr(),
            secret_len,
        ))?;
        check(EVP_PKEY_CTX_add1_tls1_prf_seed(
            ctx.as_ptr(),
            full_seed.as_ptr(),
            seed_len,
        ))?;
    }
    let n = ctx.derive(Some(out))?;
    if n != out.len() {
        return Err(ErrorStack::get());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::md::Md;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    /// The TLS 1.2 PRF (P_SHA256) vector published on the IETF TLS list (2009) and used by
    /// PKCS #11 and many TLS stacks: 100 octets of PRF(secret, "test label", seed).
    #[test]
    fn published_sha256_vector() {
        let secret = unhex("9bbe436ba940f017b17652849a71db35");
        let seed = unhex("a0ba9f936cda311827a6f796ffd5198c");
        let expected = unhex(
            "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a
             6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab
             4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701
             87347b66",
        );
        let mut out = vec![0u8; 100];
        tls12_prf(Md::sha256(), &secret, b"test label", &seed, &mut out).unwrap();
        assert_eq!(out, expected);
        // A prefix of the output is the same PRF asked for fewer octets.
        let mut short = vec![0u8; 40];
        tls12_prf(Md::sha256(), &secret, b"test label", &seed, &mut short).unwrap();
        assert_eq!(short, expected[..40]);
    }

    #[test]
    fn label_seed_secret_and_digest_all_matter() {
        let secret = unhex("9bbe436ba940f017b17652849a71db35");
        let seed = unhex("a0ba9f936cda311827a6f796ffd5198c");
        let run = |md: &MdRef, secret: &[u8], label: &[u8], seed: &[u8]| {
            let mut out = vec![0u8; 48];
            tls12_prf(md, secret, label, seed, &mut out).unwrap();
            out
        };
        let base = run(Md::sha256(), &secret, b"test label", &seed);
        assert_ne!(base, run(Md::sha384(), &secret, b"test label", &seed));
        assert_ne!(base, run(Md::sha256(), &secret, b"test labem", &seed));
        assert_ne!(base, run(Md::sha256(), &secret[1..], b"test label", &seed));
        assert_ne!(base, run(Md::sha256(), &secret, b"test label", &seed[1..]));
        // Label and seed are one string to the PRF: only their concatenation counts.
        let mut moved = b"test label".to_vec();
        moved.push(seed[0]);
        assert_eq!(base, run(Md::sha256(), &secret, &moved, &seed[1..]));
    }

    #[test]
    fn oversize_input_is_refused() {
        let mut out = [0u8; 16];
        assert!(tls12_prf(Md::sha256(), &vec![1; MAX_INPUT + 1], b"l", b"s", &mut out).is_err());
    }
}
