//! Lexical forms of the XML encoding: whitespace, hexBinary and base64Binary, OBJECT IDENTIFIER,
//! INTEGER, BOOLEAN, GeneralizedTime, BIT STRING and the bit-string fields of ClearToken1.

use super::*;

pub(super) const B64: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(super) fn is_xml_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub(super) fn trim_ws(s: &str) -> &str {
    s.trim_matches(is_xml_ws)
}

pub(super) fn put_base64(out: &mut String, v: &[u8]) {
    out.reserve(v.len().div_ceil(3) * 4);
    for c in v.chunks(3) {
        let n = (c[0] as u32) << 16
            | (c.get(1).copied().unwrap_or(0) as u32) << 8
            | c.get(2).copied().unwrap_or(0) as u32;
        out.push(char::from(B64[(n >> 18) as usize & 63]));
        out.push(char::from(B64[(n >> 12) as usize & 63]));
        out.push(if c.len() > 1 {
            char::from(B64[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            char::from(B64[n as usize & 63])
        } else {
            '='
        });
    }
}

pub(super) fn b64_val(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some((c - b'A') as u32),
        b'a'..=b'z' => Some((c - b'a') as u32 + 26),
        b'0'..=b'9' => Some((c - b'0') as u32 + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes `xs:base64Binary` (whitespace ignored, padding required, unused bits zero).
pub(super) fn parse_base64(s: &str, max: usize, what: &'static str) -> XResult<Vec<u8>> {
    let chars: Vec<u8> = s.bytes().filter(|c| !is_xml_ws(char::from(*c))).collect();
    if chars.len() % 4 != 0 || chars.len() / 4 * 3 > max.saturating_add(2) {
        return Err(XmlError::Invalid(what));
    }
    let mut out = Vec::with_capacity(chars.len() / 4 * 3);
    let quads = chars.len() / 4;
    for (i, q) in chars.chunks(4).enumerate() {
        let last = i + 1 == quads;
        let pad = match (q[2], q[3]) {
            (b'=', b'=') if last => 2,
            (_, b'=') if last => 1,
            _ => 0,
        };
        let mut n = 0u32;
        for (j, &c) in q.iter().enumerate() {
            let v = if j >= 4 - pad {
                0
            } else {
                b64_val(c).ok_or(XmlError::Invalid(what))?
            };
            n = n << 6 | v;
        }
        // Bits that fall outside the last octet must be zero (xs:base64Binary lexical space).
        let unused_mask = match pad {
            2 => 0xffff,
            1 => 0xff,
            _ => 0,
        };
        if n & unused_mask != 0 {
            return Err(XmlError::Invalid(what));
        }
        out.push((n >> 16) as u8);
        if pad < 2 {
            out.push((n >> 8) as u8);
        }
        if pad < 1 {
            out.push(n as u8);
        }
    }
    if out.len() > max {
        return Err(XmlError::Invalid(what));
    }
    Ok(out)
}

pub(super) fn put_binary(out: &mut String, form: BinaryForm, v: &[u8]) {
    match form {
        // Upper case, as XER writes `xs:hexBinary`.
        BinaryForm::HexBinary => secmms_ber::hex::push(out, v, secmms_ber::hex::Case::Upper),
        BinaryForm::Base64Binary => put_base64(out, v),
    }
}

pub(super) fn parse_binary(
    form: BinaryForm,
    s: &str,
    max: usize,
    what: &'static str,
) -> XResult<Vec<u8>> {
    match form {
        BinaryForm::HexBinary => {
            secmms_ber::hex::decode_bounded(trim_ws(s), max).ok_or(XmlError::Invalid(what))
        }
        BinaryForm::Base64Binary => parse_base64(s, max, what),
    }
}

/// The octets of an open type must be exactly one BER element within the limits.
pub(super) fn check_ber_element(v: &[u8], lim: &XmlLimits, what: &'static str) -> XResult<()> {
    let mut r = Reader::new(v, lim.ber);
    r.read().map_err(|_| XmlError::Invalid(what))?;
    r.finish().map_err(|_| XmlError::Invalid(what))
}

/// Strict dotted OID: decimal arcs without signs or leading zeros.
pub(super) fn parse_oid(s: &str) -> XResult<Oid> {
    let s = trim_ws(s);
    let mut arcs = Vec::new();
    for p in s.split('.') {
        let ok = !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'));
        // Oid::new enforces the real arc limit; this only stops collecting early.
        if !ok || arcs.len() > 64 {
            return Err(XmlError::Invalid("OBJECT IDENTIFIER"));
        }
        arcs.push(
            p.parse::<u64>()
                .map_err(|_| XmlError::Invalid("OBJECT IDENTIFIER"))?,
        );
    }
    // The first two arcs share one BER subidentifier (40·a + b); it must fit in 64 bits so the
    // value can be re-encoded in BER.
    if arcs.len() >= 2 && arcs[1] > u64::MAX - 80 {
        return Err(XmlError::Invalid("OBJECT IDENTIFIER"));
    }
    Oid::new(&arcs).map_err(|_| XmlError::Invalid("OBJECT IDENTIFIER"))
}

pub(super) fn parse_i64(s: &str, what: &'static str) -> XResult<i64> {
    let s = trim_ws(s);
    if s.len() > 40 {
        return Err(XmlError::Invalid(what));
    }
    s.parse::<i64>().map_err(|_| XmlError::Invalid(what))
}

pub(super) fn parse_bool(s: &str, what: &'static str) -> XResult<bool> {
    match trim_ws(s) {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(XmlError::Invalid(what)),
    }
}

pub(super) fn parse_time(s: &str) -> XResult<TimeStamp> {
    let s = trim_ws(s);
    if s.len() > 32 {
        return Err(XmlError::Invalid("time"));
    }
    TimeStamp::parse_generalized(s.as_bytes()).map_err(|_| XmlError::Invalid("time"))
}

pub(super) fn parse_asso(s: &str) -> XResult<AssoId> {
    AssoId::new(trim_ws(s)).ok_or(XmlError::Invalid("assoID"))
}

pub(super) fn parse_bits(s: &str, what: &'static str) -> XResult<Vec<bool>> {
    let s = trim_ws(s);
    if s.len() > MAX_BSTRING_BITS {
        return Err(XmlError::Invalid(what));
    }
    s.bytes()
        .map(|b| match b {
            b'0' => Ok(false),
            b'1' => Ok(true),
            _ => Err(XmlError::Invalid(what)),
        })
        .collect()
}

pub(super) fn version_bits(v: &Version) -> String {
    let n = (v.bits.len() * 8).saturating_sub(v.unused as usize);
    (0..n)
        .map(|i| {
            let on = v
                .bits
                .get(i / 8)
                .is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
            if on {
                '1'
            } else {
                '0'
            }
        })
        .collect()
}

pub(super) fn version_from_bits(bits: &[bool]) -> Version {
    let mut octets = vec![0u8; bits.len().div_ceil(8)];
    for (i, on) in bits.iter().enumerate() {
        if *on {
            octets[i / 8] |= 0x80 >> (i % 8);
        }
    }
    Version {
        unused: (octets.len() * 8 - bits.len()) as u8,
        bits: octets,
    }
}

pub(super) fn conf_bits(c: ConfidentialityParms) -> String {
    // DER named-bit list: trailing zero bits removed.
    let mut s: String = [c.tls_protected, c.appl_protected, c.vpn]
        .iter()
        .map(|on| if *on { '1' } else { '0' })
        .collect();
    while s.ends_with('0') {
        s.pop();
    }
    s
}
