//! Hexadecimal text to octets, the one decoder the crates share: each caller first trims or
//! strips what its own syntax allows (XML whitespace, a `0x` prefix, separators) and maps the
//! refusal to its own error.

/// The octets of `s`, two hex digits each (either case); `None` unless `s` is an even number of
/// hex digits and nothing else (no sign, no whitespace, no prefix).
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
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
}
