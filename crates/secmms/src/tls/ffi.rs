//! The OpenSSL calls the `openssl` crate does not wrap (see the declaration in the parent
//! module): renegotiation, KeyUpdate, RFC 5746 support, ClientHello inspection, session timeout,
//! read-ahead, automatic DHE parameters and CRLs added to a store in use.

use foreign_types::ForeignTypeRef;
use openssl::ssl::{ClientHelloResponse, SslAlert, SslContextBuilder, SslOptions, SslRef};
use std::os::raw::{c_int, c_long, c_uchar, c_uint};

/// `SSL_OP_ALLOW_CLIENT_RENEGOTIATION` (OpenSSL 3.0, ssl.h: bit 8): accept renegotiations the
/// client starts.
pub const OP_ALLOW_CLIENT_RENEGOTIATION: SslOptions = SslOptions::from_bits_retain(1 << 8);
const SSL_CTRL_GET_RI_SUPPORT: c_int = 76;
const SSL_CTRL_SET_MAX_CERT_LIST: c_int = 51;
const SSL_KEY_UPDATE_REQUESTED: c_int = 1;

extern "C" {
    fn SSL_set_read_ahead(s: *mut openssl_sys::SSL, yes: c_int);
    fn SSL_in_init(s: *const openssl_sys::SSL) -> c_int;
    fn SSL_renegotiate(s: *mut openssl_sys::SSL) -> c_int;
    fn SSL_renegotiate_pending(s: *const openssl_sys::SSL) -> c_int;
    fn SSL_key_update(s: *mut openssl_sys::SSL, updatetype: c_int) -> c_int;
    fn SSL_CTX_set_timeout(ctx: *mut openssl_sys::SSL_CTX, t: c_long) -> c_long;
    fn X509_STORE_add_crl(
        store: *mut openssl_sys::X509_STORE,
        crl: *mut openssl_sys::X509_CRL,
    ) -> c_int;
}

/// `X509_STORE_add_crl`: adds a CRL to a store in use (OpenSSL locks the store; it takes its
/// own reference to the CRL). A CRL already present is not an error.
pub fn store_add_crl(
    store: &openssl::x509::store::X509StoreRef,
    crl: &openssl::x509::X509CrlRef,
) -> bool {
    // SAFETY: both pointers are live for the call; X509_STORE_add_crl locks the store
    // internally and up-refs the CRL, so sharing the store with running handshakes is sound.
    unsafe { X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) == 1 }
}

/// `SSL_CTX_set_timeout`: lifetime of cached sessions and tickets, seconds.
pub fn set_session_timeout(b: &mut SslContextBuilder, secs: u64) {
    let t = c_long::try_from(secs).unwrap_or(c_long::MAX);
    // SAFETY: a plain setter on the context being built, which we own.
    unsafe {
        SSL_CTX_set_timeout(b.as_ptr(), t);
    }
}

/// `SSL_renegotiate`: schedules a TLS 1.2 renegotiation (RFC 5746 is enforced by OpenSSL
/// unless unsafe legacy renegotiation is enabled, which we never do).
pub fn renegotiate(ssl: &SslRef) -> Result<(), openssl::error::ErrorStack> {
    // SAFETY: `ssl` is a live SSL object owned by the stream; the caller holds the stream
    // exclusively (`&mut TlsStream`), so no other thread uses this SSL during the call.
    let r = unsafe { SSL_renegotiate(ssl.as_ptr()) };
    if r == 1 {
        Ok(())
    } else {
        Err(openssl::error::ErrorStack::get())
    }
}

/// `SSL_in_init`: a handshake (first one or renegotiation) is under way.
pub fn in_init(ssl: &SslRef) -> bool {
    // SAFETY: a valid SSL object; the call only reads its state machine.
    unsafe { SSL_in_init(ssl.as_ptr()) == 1 }
}

/// `SSL_set_read_ahead` on one connection.
pub fn set_read_ahead(ssl: &SslRef, yes: bool) {
    // SAFETY: a valid SSL object; the call only sets a flag of its record layer.
    unsafe { SSL_set_read_ahead(ssl.as_ptr(), c_int::from(yes)) }
}

/// `SSL_renegotiate_pending`: true while a renegotiation we started has not completed.
pub fn renegotiate_pending(ssl: &SslRef) -> bool {
    // SAFETY: read-only query on a live SSL object.
    unsafe { SSL_renegotiate_pending(ssl.as_ptr()) == 1 }
}

/// `SSL_key_update(…, SSL_KEY_UPDATE_REQUESTED)`: TLS 1.3 KeyUpdate, asking the peer to
/// update too.
pub fn key_update(ssl: &SslRef) -> Result<(), openssl::error::ErrorStack> {
    // SAFETY: as in `renegotiate`.
    let r = unsafe { SSL_key_update(ssl.as_ptr(), SSL_KEY_UPDATE_REQUESTED) };
    if r == 1 {
        Ok(())
    } else {
        Err(openssl::error::ErrorStack::get())
    }
}

/// `SSL_get_secure_renegotiation_support`: whether the peer uses RFC 5746.
pub fn secure_renegotiation_support(ssl: &SslRef) -> bool {
    // SAFETY: SSL_ctrl with GET_RI_SUPPORT only reads the SSL object; parg is unused.
    unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            SSL_CTRL_GET_RI_SUPPORT,
            0,
            std::ptr::null_mut(),
        ) != 0
    }
}

/// `SSL_CTX_set_dh_auto(ctx, 1)`: DHE with built-in parameters sized to the certificate.
pub fn set_dh_auto(b: &mut SslContextBuilder) {
    // SAFETY: a plain setter on the context being built, which we own.
    unsafe {
        openssl_sys::SSL_CTX_set_dh_auto(b.as_ptr(), 1);
    }
}

/// `SSL_CTX_set_max_cert_list`: bounds the peer's Certificate message.
pub fn set_max_cert_list(b: &mut SslContextBuilder, max: usize) {
    let max = c_long::try_from(max).unwrap_or(c_long::MAX);
    // SAFETY: a plain setter on the context being built, which we own.
    unsafe {
        openssl_sys::SSL_CTX_ctrl(
            b.as_ptr(),
            SSL_CTRL_SET_MAX_CERT_LIST,
            max,
            std::ptr::null_mut(),
        );
    }
}

/// The ClientHello being handled, readable only inside the ClientHello callback: the
/// `SSL_client_hello_get0_*` calls are valid only there, so a value of this type exists
/// only for the duration of a callback installed by [`set_client_hello_callback`].
pub(crate) struct ClientHello<'a> {
    ssl: &'a SslRef,
}

impl ClientHello<'_> {
    /// The connection being handshaken.
    pub(crate) fn ssl(&self) -> &SslRef {
        self.ssl
    }

    /// `SSL_client_hello_get0_legacy_version`.
    pub(crate) fn legacy_version(&self) -> u16 {
        // SAFETY: a `ClientHello` only exists inside the ClientHello callback (see
        // `set_client_hello_callback`), where this call is valid on the SSL handshaken.
        let v: c_uint =
            unsafe { openssl_sys::SSL_client_hello_get0_legacy_version(self.ssl.as_ptr()) };
        u16::try_from(v).unwrap_or(0)
    }

    /// `SSL_client_hello_get0_ext`: the body of a ClientHello extension.
    pub(crate) fn ext(&self, ext: u32) -> Option<Vec<u8>> {
        let mut out: *const c_uchar = std::ptr::null();
        let mut len: usize = 0;
        // SAFETY: inside the ClientHello callback (see above); OpenSSL sets `out`/`len` to a
        // buffer it owns for the duration of the callback, which is copied before returning.
        unsafe {
            if openssl_sys::SSL_client_hello_get0_ext(
                self.ssl.as_ptr(),
                ext as c_uint,
                &mut out,
                &mut len,
            ) != 1
                || out.is_null()
            {
                return None;
            }
            Some(std::slice::from_raw_parts(out, len).to_vec())
        }
    }
}

/// Installs `policy` as the ClientHello callback; it sees the hello through a
/// [`ClientHello`] that cannot outlive the callback.
pub(crate) fn set_client_hello_callback<F>(b: &mut SslContextBuilder, policy: F)
where
    F: Fn(
            &ClientHello<'_>,
            &mut SslAlert,
        ) -> Result<ClientHelloResponse, openssl::error::ErrorStack>
        + Send
        + Sync
        + 'static,
{
    b.set_client_hello_callback(move |ssl, alert| policy(&ClientHello { ssl }, alert));
}
