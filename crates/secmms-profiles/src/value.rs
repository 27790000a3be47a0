//! MMS-Authentication-value codec — IEC 62351-4 §11.2 — and the GeneralizedTime handling of the
//! A-security-profile (§11.2 DECISION "A-profile signing and parsing").
//!
//! ```text
//! MMS-Authentication-value ::= CHOICE {
//!   certificate-based [0] IMPLICIT SEQUENCE {
//!     authentication-Certificate [0] IMPLICIT SignatureCertificate,  -- 80
//!     time                       [1] IMPLICIT GeneralizedTime,       -- 81
//!     signature                  [2] IMPLICIT SignedValue },         -- 82
//!   ... }
//! ```
//! The decoder keeps the received octets of `time` (content and whole TLV): the signature is
//! verified over them as received, never over a re-encoding.

use secmms_ber::calendar::{civil_from_days, CivilTime};
use secmms_ber::{BerError, Limits, Reader, Tag, Writer};

use crate::limits::{MAX_AUTH_VALUE_LEN, MAX_SIGNATURE_LEN, MAX_TIME_LEN};

/// Errors of the MMS-Authentication-value codec and of the time parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Invalid BER.
    #[error("MMS-Authentication-value BER: {0}")]
    Ber(#[from] BerError),
    /// The value is not the `certificate-based [0]` alternative.
    #[error("MMS-Authentication-value: unknown alternative")]
    UnknownAlternative,
    /// A component is missing, misplaced or has the wrong form.
    #[error("MMS-Authentication-value: invalid {0}")]
    Invalid(&'static str),
    /// A component exceeds its limit ([`crate::limits`]).
    #[error("MMS-Authentication-value: {0} too long")]
    TooLong(&'static str),
    /// The time is not a GeneralizedTime the lenient parser accepts.
    #[error("invalid GeneralizedTime")]
    BadTime,
}

/// `certificate-based` MMS-Authentication-value (§11.2), with the received `time` octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmsAuthenticationValue {
    /// authentication-Certificate `[0]`: the DER X.509 application certificate (Annex G).
    pub certificate: Vec<u8>,
    /// time `[1]`: the content octets of the GeneralizedTime (ASCII, as received).
    pub time: Vec<u8>,
    /// signature `[2]`: the raw signature value (the algorithm is implied by the key).
    pub signature: Vec<u8>,
    /// The `[1]` element as received (tag, length, content); empty for locally built values.
    /// One of the signature-verification fallbacks (§11.2 DECISION) is computed over it.
    pub time_tlv: Vec<u8>,
}

/// `certificate-based [0]` (constructed).
pub const TAG_CERTIFICATE_BASED: Tag = Tag::context(0, true);
/// `authentication-Certificate [0]` (primitive).
pub const TAG_CERTIFICATE: Tag = Tag::context(0, false);
/// `time [1]` (primitive).
pub const TAG_TIME: Tag = Tag::context(1, false);
/// `signature [2]` (primitive).
pub const TAG_SIGNATURE: Tag = Tag::context(2, false);

impl MmsAuthenticationValue {
    /// Decodes one complete MMS-Authentication-value (the single-ASN1-type content of the
    /// authentication EXTERNAL). Bounded by [`MAX_AUTH_VALUE_LEN`] and `max_depth`.
    pub fn decode(bytes: &[u8]) -> Result<MmsAuthenticationValue, ValueError> {
        if bytes.len() > MAX_AUTH_VALUE_LEN {
            return Err(ValueError::TooLong("value"));
        }
        let limits = Limits {
            max_depth: 4,
            max_len: MAX_AUTH_VALUE_LEN,
        };
        let mut r = Reader::new(bytes, limits);
        let top = r.read()?;
        r.finish()?;
        if top.tag() != TAG_CERTIFICATE_BASED {
            return Err(ValueError::UnknownAlternative);
        }
        let mut c = top.children()?;
        let cert = c
            .expect(TAG_CERTIFICATE)
            .map_err(|_| ValueError::Invalid("authentication-Certificate"))?;
        let time = c
            .expect(TAG_TIME)
            .map_err(|_| ValueError::Invalid("time"))?;
        let sig = c
            .expect(TAG_SIGNATURE)
            .map_err(|_| ValueError::Invalid("signature"))?;
        // Extension marker in the CHOICE, not in the SEQUENCE: nothing may follow.
        c.finish()?;
        if time.content().len() > MAX_TIME_LEN {
            return Err(ValueError::TooLong("time"));
        }
        if sig.content().len() > MAX_SIGNATURE_LEN {
            return Err(ValueError::TooLong("signature"));
        }
        Ok(MmsAuthenticationValue {
            certificate: cert.content().to_vec(),
            time: time.content().to_vec(),
            signature: sig.content().to_vec(),
            time_tlv: time.raw().to_vec(),
        })
    }

    /// Encodes the value (`A0 { 80 cert, 81 time, 82 sig }`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.certificate.len() + self.signature.len() + 64);
        w.constructed(TAG_CERTIFICATE_BASED, |w| {
            w.tlv(TAG_CERTIFICATE, &self.certificate);
            w.tlv(TAG_TIME, &self.time);
            w.tlv(TAG_SIGNATURE, &self.signature);
        });
        w.finish()
    }

    /// The byte strings a signature may cover, in the order they are tried (§11.2 DECISION):
    /// the raw time octets, the `[1]` TLV as received, a `18 len time` (universal
    /// GeneralizedTime) TLV.
    pub fn signed_variants(&self) -> [(SignedOver, Vec<u8>); 3] {
        let tlv = if self.time_tlv.is_empty() {
            let mut w = Writer::new();
            w.tlv(TAG_TIME, &self.time);
            w.finish()
        } else {
            self.time_tlv.clone()
        };
        let mut g = Writer::new();
        g.tlv(Tag::GENERALIZED_TIME, &self.time);
        [
            (SignedOver::RawTime, self.time.clone()),
            (SignedOver::ContextTlv, tlv),
            (SignedOver::UniversalTlv, g.finish()),
        ]
    }
}

/// Which octets a verified signature covered (§11.2 DECISION; logged when not the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedOver {
    /// The raw GeneralizedTime content octets (interop-confirmed; what secmms signs).
    RawTime,
    /// The `81 len time` TLV (the \[EXT\] reading "DER-encoded time field").
    ContextTlv,
    /// A `18 len time` TLV (universal GeneralizedTime).
    UniversalTlv,
}

/// Formats `unix` seconds as the time secmms sends: `YYYYMMDDHHMMSSZ` (§11.2 DECISION: 15
/// characters, UTC, DER-valid). Years outside 0..=9999 are clamped.
pub fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Parses a GeneralizedTime leniently (§11.2 DECISION): `YYYYMMDDHHMMSS`, an optional fraction
/// introduced by `.` or `,`, an optional `Z`, and a tolerated trailing `.` (TSP sends
/// `YYYYMMDDHHMMSS.`). A value without `Z` is taken as UTC. Returns seconds since the Unix epoch
/// (the fraction is dropped).
pub fn parse_time(s: &[u8]) -> Result<i64, ValueError> {
    if s.len() < 14 || s.len() > MAX_TIME_LEN {
        return Err(ValueError::BadTime);
    }
    let civil = CivilTime::from_digits(&s[..14]).ok_or(ValueError::BadTime)?;
    let mut rest = &s[14..];
    if let Some(stripped) = rest.strip_suffix(b"Z") {
        rest = stripped;
    }
    if let Some((&sep, frac)) = rest.split_first() {
        if sep != b'.' && sep != b',' {
            return Err(ValueError::BadTime);
        }
        // An empty fraction is the tolerated trailing dot.
        if !frac.iter().all(u8::is_ascii_digit) || (sep == b',' && frac.is_empty()) {
            return Err(ValueError::BadTime);
        }
    }
    // A leap second is read as the last second of the minute.
    let second = civil.second.min(59);
    Ok(CivilTime { second, ..civil }.unix_seconds())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn time_forms() {
        let t = 1_750_000_000; // 2025-06-15T15:06:40Z
        assert_eq!(format_time(t), "20250615150640Z");
        for s in [
            "20250615150640Z",
            "20250615150640",
            "20250615150640.",
            "20250615150640.123Z",
            "20250615150640,5",
            "20250615150640.999",
        ] {
            assert_eq!(parse_time(s.as_bytes()), Ok(t), "{s}");
        }
        for s in [
            "2025061515064",
            "20251315150640Z",
            "20250230150640Z",
            "20250615250640Z",
            "20250615150640+0100",
            "20250615150640.Z.",
            "20250615150640,",
            "2025061515064aZ",
            "20250615150640ZZ",
        ] {
            assert!(parse_time(s.as_bytes()).is_err(), "{s}");
        }
        assert_eq!(parse_time(b"20240229000000Z"), Ok(1_709_164_800));
        assert_eq!(parse_time(b"19700101000000Z"), Ok(0));
    }

    #[test]
    fn golden_layout() {
        let v = MmsAuthenticationValue {
            certificate: vec![0x30, 0x00],
            time: b"20250615150640Z".to_vec(),
            signature: vec![1, 2, 3],
            time_tlv: Vec::new(),
        };
        let b = v.encode();
        assert_eq!(
            hex::encode(&b),
            "a01a80023000810f3230323530363135313530363430 5a8203010203".replace(' ', "")
        );
        let d = MmsAuthenticationValue::decode(&b).unwrap();
        assert_eq!(d.time_tlv, b[6..23].to_vec());
        let vars = d.signed_variants();
        assert_eq!(vars[0].1, b"20250615150640Z");
        assert_eq!(vars[1].1[0], 0x81);
        assert_eq!(vars[2].1[..2], [0x18, 15]);
    }

    #[test]
    fn refuses_bad_shapes() {
        // Wrong alternative, missing signature, trailing element, constructed certificate.
        for h in [
            "a1028000",
            "a00680003000810100",
            "a00980008100820083 00".replace(' ', "").as_str(),
            "a008a0008100820083".replace(' ', "").as_str(),
            "a0068000810082",
        ] {
            let b = hex::decode(h).unwrap();
            assert!(MmsAuthenticationValue::decode(&b).is_err(), "{h}");
        }
        let long = MmsAuthenticationValue {
            certificate: vec![],
            time: vec![b'1'; MAX_TIME_LEN + 1],
            signature: vec![],
            time_tlv: vec![],
        };
        assert_eq!(
            MmsAuthenticationValue::decode(&long.encode()),
            Err(ValueError::TooLong("time"))
        );
    }

    proptest! {
        #[test]
        fn round_trip(
            cert in proptest::collection::vec(any::<u8>(), 0..600),
            time in proptest::collection::vec(any::<u8>(), 0..MAX_TIME_LEN),
            sig in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let v = MmsAuthenticationValue { certificate: cert, time, signature: sig, time_tlv: vec![] };
            let b = v.encode();
            let d = MmsAuthenticationValue::decode(&b).unwrap();
            prop_assert_eq!(&d.certificate, &v.certificate);
            prop_assert_eq!(&d.time, &v.time);
            prop_assert_eq!(&d.signature, &v.signature);
            prop_assert_eq!(d.encode(), b);
        }

        #[test]
        fn time_round_trip(t in -62_135_596_800i64..253_402_300_799i64) {
            let s = format_time(t);
            prop_assert_eq!(parse_time(s.as_bytes()), Ok(t));
        }

        #[test]
        fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = MmsAuthenticationValue::decode(&b);
            let _ = parse_time(&b);
        }
    }
}
