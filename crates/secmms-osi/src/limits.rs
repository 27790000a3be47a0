//! Size limits and lower-layer decisions — IEC 62351-4 Annex H (TP0 / RFC 1006) and §10.1.
//!
//! Every number here is either fixed by a base standard (RFC 1006, ISO 8073, ISO 8327-1) or a
//! DECISION of the spec reconstruction; the doc comment says which.

use secmms_ber::Limits as BerLimits;

/// RFC 1006 §6: the TPKT version octet.
pub const TPKT_VERSION: u8 = 3;
/// RFC 1006 §6: length of the TPKT header (version, reserved, 16-bit length).
pub const TPKT_HEADER_LEN: usize = 4;
/// Smallest TPKT that can hold a class-0 TPDU (header + LI + code + one octet), reference §2.
pub const TPKT_MIN_LEN: usize = 7;
/// RFC 1006: the 16-bit length field bounds a TPKT at 65 535 octets (Annex H).
pub const TPKT_MAX_LEN: usize = 65_535;

/// ISO 8073 TPDU size code for 128 octets: the smallest size, and the value implied when a CR or
/// CC carries no `C0` parameter (reference §3.3).
pub const TPDU_SIZE_CODE_MIN: u8 = 7;
/// ISO 8073 class 0 maximum TPDU size code (11 = 2048 octets), Annex H.
pub const TPDU_SIZE_CODE_CLASS0_MAX: u8 = 11;
/// Largest TPDU size code accepted in a received CR (13 = 8192). libiec61850 and iec61850-rust
/// propose 8192 in class 0 (reference §3.3, §9 item 2); we accept the proposal and answer with
/// at most our own configured size.
pub const TPDU_SIZE_CODE_ACCEPT_MAX: u8 = 13;
/// DECISION (Annex H): the TPDU size we propose and the largest we grant — code 0x0B, 2048 octets.
pub const DEFAULT_TPDU_SIZE_CODE: u8 = 11;

/// DECISION (Annex H): limit on a reassembled TSDU — 64 KiB.
pub const DEFAULT_MAX_TSDU: usize = 65_536;

/// DECISION (Annex H): transport selectors of 0–4 octets are supported.
pub const MAX_TSEL_LEN: usize = 4;
/// ISO 8327-1 (X.225) bound on a session selector (16 octets); Annex H asks for at least 2.
pub const MAX_SSEL_LEN: usize = 16;
/// Largest presentation selector accepted (libiec61850 accepts 16, reference §5.3); Annex H
/// asks for at least 4.
pub const MAX_PSEL_LEN: usize = 16;

/// ISO 8327-1: user data of a CONNECT SPDU in PGI 193 (User Data) is limited to 512 octets
/// (spec §10.1).
pub const CN_USER_DATA_MAX: usize = 512;
/// ISO 8327-1 version 2: PGI 194 (Extended User Data) carries up to 10 240 octets — the CONNECT
/// budget of IEC 62351-4 (spec §10.1, Annex G.3). Larger CONNECT user data would need CDO
/// SPDUs, which secmms does not implement.
pub const CN_EXTENDED_USER_DATA_MAX: usize = 10_240;

/// Default BER nesting limit for presentation and ACSE decoding (outer envelopes are shallow;
/// the MMS payload is decoded later by its own crate).
pub const DEFAULT_BER_MAX_DEPTH: usize = 32;

/// Limits applied by every decoder of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsiLimits {
    /// Largest reassembled TSDU (Annex H; default [`DEFAULT_MAX_TSDU`]).
    pub max_tsdu: usize,
    /// Longest transport selector accepted ([`MAX_TSEL_LEN`]).
    pub max_tsel_len: usize,
    /// Longest session selector accepted ([`MAX_SSEL_LEN`]).
    pub max_ssel_len: usize,
    /// Longest presentation selector accepted ([`MAX_PSEL_LEN`]).
    pub max_psel_len: usize,
    /// BER limits for presentation and ACSE.
    pub ber: BerLimits,
}

impl Default for OsiLimits {
    fn default() -> Self {
        OsiLimits {
            max_tsdu: DEFAULT_MAX_TSDU,
            max_tsel_len: MAX_TSEL_LEN,
            max_ssel_len: MAX_SSEL_LEN,
            max_psel_len: MAX_PSEL_LEN,
            ber: BerLimits {
                max_depth: DEFAULT_BER_MAX_DEPTH,
                max_len: DEFAULT_MAX_TSDU,
            },
        }
    }
}
