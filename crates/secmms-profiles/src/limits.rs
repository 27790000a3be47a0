//! Limits and decisions of the A-security-profile (IEC 62351-4 §11, Annex G.3).

/// Largest application certificate accepted in an MMS-Authentication-value: 8 192 octets
/// (spec §11.2, Annex G.3).
pub const MAX_CERTIFICATE_LEN: usize = secmms_pki::cert::MAX_CERT_LEN;
/// Largest MMS-Authentication-value decoded: the 10 240-octet session CONNECT budget (Annex G.3).
/// Larger than [`MAX_CERTIFICATE_LEN`] on purpose, so that an oversize certificate is decoded and
/// refused with its own event rather than as malformed input.
pub const MAX_AUTH_VALUE_LEN: usize = 10_240;
/// Largest `time` content accepted (a GeneralizedTime with a long fraction; DECISION).
pub const MAX_TIME_LEN: usize = 40;
/// Largest `signature` accepted: an RSA-8192 signature (DECISION).
pub const MAX_SIGNATURE_LEN: usize = 1024;
/// The accepted difference between the peer's `time` and local UTC, either way: 10 minutes
/// (spec §11.4 step 3). A difference of exactly this many seconds is accepted.
pub const TIME_WINDOW_SECS: i64 = 600;
/// How long a `time` value is remembered for the replay check: 10 minutes (spec §11.4 step 4 and
/// DECISION "replay cache keyed by (SHA-256 of the certificate, time string)").
pub const REPLAY_WINDOW_SECS: i64 = 600;
/// Maximum number of replay-cache entries (DECISION). Only values that passed the signature check
/// are stored, so only authenticated peers can fill it; when it is full of live entries new
/// associations are refused (fail closed) until entries expire.
pub const MAX_REPLAY_ENTRIES: usize = 65_536;
