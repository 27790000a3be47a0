//! Small BER helpers shared by the MMS codecs.

use crate::error::{MmsError, Result};
use crate::limits::{MmsLimits, MAX_IDENTIFIER_LEN, MAX_STRING_LEN};
use secmms_ber::{Reader, Tag, Tlv};

/// True for a character allowed in a VisibleString (ISO 646 graphic characters and space).
pub(crate) fn is_visible(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// Decodes a VisibleString of at most `max` octets.
pub(crate) fn visible_string(t: &Tlv<'_>, max: usize, what: &'static str) -> Result<String> {
    if t.tag().constructed {
        return Err(MmsError::Unsupported("constructed string encoding"));
    }
    let c = t.content();
    if c.len() > max || !c.iter().all(|b| is_visible(*b)) {
        return Err(MmsError::InvalidValue(what));
    }
    // All octets are visible ASCII, so the UTF-8 check (ASCII fast path) cannot fail; the
    // `String` is allocated once at its exact size.
    std::str::from_utf8(c)
        .map(str::to_owned)
        .map_err(|_| MmsError::InvalidValue(what))
}

/// Decodes an MMS Identifier (ISO 9506-2 §7.5.2, a VisibleString).
pub(crate) fn identifier(t: &Tlv<'_>) -> Result<String> {
    let s = visible_string(t, MAX_IDENTIFIER_LEN, "Identifier")?;
    if s.is_empty() {
        return Err(MmsError::InvalidValue("Identifier"));
    }
    Ok(s)
}

/// Decodes a free VisibleString (vendor names and the like).
pub(crate) fn text(t: &Tlv<'_>) -> Result<String> {
    visible_string(t, MAX_STRING_LEN, "VisibleString")
}

/// Reads the next element, which must have `tag`.
///
/// Fast path: the element is parsed once (instead of a tag peek followed by a full read) and
/// the reader advances only when it parsed and carries `tag`; in every other case the reader is
/// left untouched and [`Reader::expect`] produces the usual error.
#[inline]
pub(crate) fn expect<'a>(r: &mut Reader<'a>, tag: Tag) -> Result<Tlv<'a>> {
    let mut probe = r.clone();
    match probe.read() {
        Ok(t) if t.tag() == tag => {
            *r = probe;
            Ok(t)
        }
        _ => Ok(r.expect(tag)?),
    }
}

/// Fails unless the reader is exhausted.
pub(crate) fn finish(r: &Reader<'_>) -> Result<()> {
    Ok(r.finish()?)
}

/// Decodes every child of a constructed element with `f`, enforcing the list cap.
pub(crate) fn seq_of<'a, T>(
    t: &Tlv<'a>,
    lim: &MmsLimits,
    mut f: impl FnMut(&Tlv<'a>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut r = t.children()?;
    let mut out = Vec::new();
    while !r.is_empty() {
        if out.len() >= lim.max_list_len {
            return Err(MmsError::ListTooLong(lim.max_list_len));
        }
        let c = r.read()?;
        out.push(f(&c)?);
    }
    Ok(out)
}

/// INTEGER content as u32 with a range check.
pub(crate) fn u32_of(t: &Tlv<'_>, what: &'static str) -> Result<u32> {
    let v = t.as_i64()?;
    u32::try_from(v).map_err(|_| MmsError::InvalidValue(what))
}

/// INTEGER content within 0..=max.
pub(crate) fn bounded(t: &Tlv<'_>, max: i64, what: &'static str) -> Result<i64> {
    let v = t.as_i64()?;
    if (0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(MmsError::InvalidValue(what))
    }
}

/// Checks that a primitive element was received (IMPLICIT primitive types).
pub(crate) fn primitive<'a>(t: Tlv<'a>) -> Result<Tlv<'a>> {
    if t.tag().constructed {
        Err(MmsError::InvalidValue("primitive encoding"))
    } else {
        Ok(t)
    }
}
