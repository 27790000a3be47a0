//! Size limits of the E2E layer. Every decoder of network input is bounded by these and by the
//! BER [`secmms_ber::Limits`] passed in.

/// Largest SecPDU accepted: a 64 KiB PrPDU plus the E2E envelope (ClearToken2, tags,
/// Authenticator). Environments that reassemble larger TSDUs can carry it (Annex H).
pub const MAX_SECPDU: usize = MAX_PRPDU + 2048;
/// Largest certificate (Annex G.3: 8 192 octets).
pub const MAX_CERT: usize = 8192;
/// Largest certPath (a short path, §13.3.1.6: up to 4 CA certificates).
pub const MAX_CERT_PATH: usize = 4 * 8192;
/// Most DiffieHellman entries in a DiffieHellmanSet.
pub const MAX_DH_ENTRIES: usize = 8;
/// Largest DH public value (MODP-2048 is 256 octets; room for a leading zero).
pub const MAX_DH_VALUE: usize = 512;
/// Most AlgorithmIdentifiers in one list of ClearToken1.
pub const MAX_ALGORITHMS: usize = 16;
/// Longest `pp` token.
pub const MAX_PP: usize = 128;
/// Largest PrPDU (one BER element, all octets) the engine protects or delivers: 64 KiB.
pub const MAX_PRPDU: usize = 65_536;
/// Most entries of the handshake replay cache (oldest are evicted beyond this).
pub const MAX_REPLAY_ENTRIES: usize = 100_000;

/// BER limits used by default for SecPDU decoding: nesting as in `secmms_ber`, element length up
/// to [`MAX_SECPDU`].
pub const fn default_ber_limits() -> secmms_ber::Limits {
    secmms_ber::Limits {
        max_depth: secmms_ber::Limits::DEFAULT_MAX_DEPTH,
        max_len: MAX_SECPDU,
    }
}
