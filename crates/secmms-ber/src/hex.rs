//! Hexadecimal text, the one codec the crates share. Decoding: each caller first trims or strips
//! what its own syntax allows (XML whitespace, a `0x` prefix, separators) and maps the refusal to
//! its own error. Encoding: lower case ([`encode`]) unless a format asks for upper case
//! ([`push`] with [`Case::Upper`], e.g. `xs:hexBinary` as XER writes it).

/// The octets of `s`, two hex digits each (either case); `None` unless `s` is an even number of
/// hex digits and nothing else (no sign, no whitespace, no prefix).
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decode_into(s, &mut out)?;
    Some(out)
}

/// [`decode`] for a value of at most `max` octets: a longer text is refused before anything is
/// decoded or allocated (the bound of a length-limited field, a key of a key log).
pub fn decode_bounded(s: &str, max: usize) -> Option<Vec<u8>> {
    if s.len() / 2 > max {
        return None;
    }
    decode(s)
}

/// [`decode`] appending to `out`, which grows once, by exactly the decoded length (so that a
/// caller holding secrets in a zeroizing buffer leaves no copy behind in a reallocation). On
/// `None`, `out` may hold part of the value.
pub fn decode_into(s: &str, out: &mut Vec<u8>) -> Option<()> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    out.reserve_exact(s.len() / 2);
    for p in s.chunks_exact(2) {
        out.push(digit(p[0])? << 4 | digit(p[1])?);
    }
    Some(())
}

/// The value of one hex digit.
pub fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The case of the digits `a`–`f` in written hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `0`–`9`, `a`–`f`.
    Lower,
    /// `0`–`9`, `A`–`F`.
    Upper,
}

/// Two hex digits per octet of `b`, lower case, no separators.
pub fn encode(b: &[u8]) -> String {
    let mut s = String::new();
    push(&mut s, b, Case::Lower);
    s
}

/// Appends two hex digits in `case` per octet of `b` to `out`, no separators.
pub fn push(out: &mut String, b: &[u8], case: Case) {
    let digits: &[u8; 16] = match case {
        Case::Lower => b"0123456789abcdef",
        Case::Upper => b"0123456789ABCDEF",
    };
    out.reserve(b.len() * 2);
    for x in b {
        out.push(char::from(digits[usize::from(x >> 4)]));
        out.push(char::from(digits[usize::from(x & 15)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_strict_hex_only() {
        assert_eq!(decode(""), Some(vec![]));
        assert_eq!(decode("00aBFf"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(decode("0"), None);
        assert_eq!(decode("0g"), None);
        // What `u8::from_str_radix` would let through.
        assert_eq!(decode("+1"), None);
        assert_eq!(decode(" 01"), None);
        assert_eq!(decode("é0"), None);
    }

    #[test]
    fn bounded_decoding_refuses_long_values() {
        assert_eq!(decode_bounded("0102", 2), Some(vec![1, 2]));
        assert_eq!(decode_bounded("010203", 2), None);
        // An odd length within the bound is still refused as hex.
        assert_eq!(decode_bounded("01020", 2), None);
        assert_eq!(decode_bounded("", 0), Some(vec![]));
        let mut v = vec![9];
        assert_eq!(decode_into("0a0B", &mut v), Some(()));
        assert_eq!(v, [9, 10, 11]);
        assert_eq!(decode_into("zz", &mut v), None);
    }

    #[test]
    fn encodes_in_either_case_and_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let lower = encode(&all);
        assert!(lower.starts_with("000102") && lower.ends_with("fdfeff"));
        assert_eq!(decode(&lower).as_deref(), Some(&all[..]));
        let mut upper = String::from("x");
        push(&mut upper, &[0xab, 0x0c], Case::Upper);
        assert_eq!(upper, "xAB0C");
        assert_eq!(encode(&[]), "");
    }
}
