//! Text and JSON-friendly forms of [`Data`]: parsing a user's value string against a
//! [`TypeDescription`] (the CLI's `write REF VALUE`), a `Display` rendering, and a serde
//! [`Value`] tree.
//!
//! Text syntax accepted by [`parse_value`]:
//!
//! | type | examples |
//! |---|---|
//! | boolean | `true`, `false`, `1`, `0`, `on`, `off` |
//! | integer / unsigned / bcd | `-5`, `42` |
//! | floating-point | `42.5`, `-1e-3` |
//! | bit-string / booleanArray | `0110` (bit 0 first), or the empty string |
//! | octet-string | hex: `0a0b`, `0x0a0b` |
//! | visible-string / mMSString / generalized-time | the text itself (optionally in double quotes) |
//! | utc-time | seconds since 1970, optionally with a fraction: `1700000000.25` |
//! | binary-time | `millis` or `millis/days` |
//! | objId | `1.0.9506.2.1` |
//! | structure / array | `{a, b, c}` or `[a, b, c]` with one element per component |
//!
//! ```
//! use secmms_mms::{value::parse_value, Data, TypeDescription};
//! assert_eq!(parse_value(&TypeDescription::FLOAT32, "42.5").unwrap(), Data::float32(42.5));
//! assert_eq!(parse_value(&TypeDescription::Unsigned(8), "7").unwrap(), Data::Unsigned(7));
//! assert!(parse_value(&TypeDescription::Unsigned(8), "300").is_err());
//! ```

use crate::data::{BitString, Data, TimeOfDay, TypeDescription, UtcTime};
use secmms_ber::calendar::civil_from_days;
use serde::Serialize;
use std::fmt;

/// Most nesting [`parse_value`] accepts in brace syntax.
const MAX_TEXT_NESTING: usize = 32;

/// Why a value string does not fit a type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {text:?} as {expected}")]
pub struct ValueError {
    /// The text (or the offending part).
    pub text: String,
    /// What was expected.
    pub expected: String,
}

fn err(text: &str, expected: impl Into<String>) -> ValueError {
    ValueError {
        text: text.to_owned(),
        expected: expected.into(),
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// Splits `{a, {b, c}, d}` / `[a, b]` into its top-level elements.
fn split_list(s: &str) -> Option<Vec<&str>> {
    let s = s.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .or_else(|| s.strip_prefix('[').and_then(|x| x.strip_suffix(']')))?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    let (mut depth, mut start, mut quoted) = (0usize, 0usize, false);
    for (i, c) in inner.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' | '[' if !quoted => depth += 1,
            '}' | ']' if !quoted => depth = depth.checked_sub(1)?,
            ',' if !quoted && depth == 0 => {
                out.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(inner[start..].trim());
    Some(out)
}

/// Parses a value given in text against a type (see the module documentation).
pub fn parse_value(ty: &TypeDescription, text: &str) -> Result<Data, ValueError> {
    parse_at(ty, text, 0)
}

fn parse_at(ty: &TypeDescription, text: &str, depth: usize) -> Result<Data, ValueError> {
    if depth > MAX_TEXT_NESTING {
        return Err(err(text, "less nesting"));
    }
    let t = text.trim();
    let d = match ty {
        TypeDescription::TypeName(n) => return Err(err(t, format!("a value of named type {n}"))),
        TypeDescription::Array { element_type, .. } => {
            let items = split_list(t).ok_or_else(|| err(t, "[elements]"))?;
            Data::Array(
                items
                    .iter()
                    .map(|i| parse_at(element_type, i, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        TypeDescription::Structure { components, .. } => {
            let items = split_list(t).ok_or_else(|| err(t, "{components}"))?;
            if items.len() != components.len() {
                return Err(err(t, format!("{} components", components.len())));
            }
            Data::Structure(
                components
                    .iter()
                    .zip(items)
                    .map(|(c, i)| parse_at(&c.ty, i, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        TypeDescription::Boolean => Data::Boolean(match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" => true,
            "false" | "0" | "off" => false,
            _ => return Err(err(t, "boolean")),
        }),
        TypeDescription::BitString(_) => Data::BitString(parse_bits(t)?),
        TypeDescription::Integer(_) => Data::Integer(t.parse().map_err(|_| err(t, "integer"))?),
        TypeDescription::Unsigned(_) => Data::Unsigned(t.parse().map_err(|_| err(t, "unsigned"))?),
        TypeDescription::FloatingPoint { format_width, .. } => {
            let v: f64 = t.parse().map_err(|_| err(t, "floating-point"))?;
            if *format_width <= 32 {
                Data::float32(v as f32)
            } else {
                Data::float64(v)
            }
        }
        TypeDescription::OctetString(_) => Data::OctetString(parse_hex(t)?),
        TypeDescription::VisibleString(_) => {
            let s = unquote(t);
            if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                return Err(err(t, "visible characters"));
            }
            Data::VisibleString(s.to_owned())
        }
        TypeDescription::GeneralizedTime => Data::GeneralizedTime(unquote(t).to_owned()),
        TypeDescription::BinaryTime(with_date) => {
            let mut parts = t.splitn(2, '/');
            let millis = parts
                .next()
                .and_then(|m| m.trim().parse().ok())
                .ok_or_else(|| err(t, "millis[/days]"))?;
            let days = match parts.next() {
                Some(d) => Some(d.trim().parse().map_err(|_| err(t, "millis/days"))?),
                None if *with_date => Some(0),
                None => None,
            };
            Data::BinaryTime(TimeOfDay { millis, days })
        }
        TypeDescription::Bcd(_) => {
            let v: i64 = t.parse().map_err(|_| err(t, "bcd"))?;
            if v < 0 {
                return Err(err(t, "non-negative bcd"));
            }
            Data::Bcd(v)
        }
        TypeDescription::ObjId => Data::ObjId(t.parse().map_err(|_| err(t, "object identifier"))?),
        TypeDescription::MmsString(_) => Data::MmsString(unquote(t).to_owned()),
        TypeDescription::UtcTime => {
            let v: f64 = t.parse().map_err(|_| err(t, "seconds since 1970"))?;
            if !(0.0..4_294_967_296.0).contains(&v) {
                return Err(err(t, "seconds since 1970"));
            }
            let seconds = v.trunc() as u32;
            let fraction = ((v.fract() * 16_777_216.0) as u32).min(0x00ff_ffff);
            Data::UtcTime(UtcTime {
                seconds,
                fraction,
                quality: 0,
            })
        }
    };
    if ty.matches(&d) {
        Ok(d)
    } else {
        Err(err(t, format!("a value of type {}", type_name(ty))))
    }
}

fn parse_bits(t: &str) -> Result<BitString, ValueError> {
    let bits: Option<Vec<bool>> = t
        .chars()
        .filter(|c| *c != '_' && *c != ' ')
        .map(|c| match c {
            '0' => Some(false),
            '1' => Some(true),
            _ => None,
        })
        .collect();
    bits.map(|b| BitString::from_bits(&b))
        .ok_or_else(|| err(t, "bits (0/1)"))
}

fn parse_hex(t: &str) -> Result<Vec<u8>, ValueError> {
    let h: String = t
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    secmms_ber::hex::decode(&h).ok_or_else(|| err(t, "hex octets"))
}

/// A short name of a type (`FLOAT32`, `visible-string(-255)`, `structure{3}`).
pub fn type_name(ty: &TypeDescription) -> String {
    match ty {
        TypeDescription::TypeName(n) => format!("type {n}"),
        TypeDescription::Array {
            number_of_elements,
            element_type,
            ..
        } => format!("array[{number_of_elements}] of {}", type_name(element_type)),
        TypeDescription::Structure { components, .. } => {
            format!("structure{{{}}}", components.len())
        }
        TypeDescription::Boolean => "boolean".into(),
        TypeDescription::BitString(n) => format!("bit-string({n})"),
        TypeDescription::Integer(n) => format!("INT{n}"),
        TypeDescription::Unsigned(n) => format!("INT{n}U"),
        TypeDescription::FloatingPoint { format_width, .. } => format!("FLOAT{format_width}"),
        TypeDescription::OctetString(n) => format!("octet-string({n})"),
        TypeDescription::VisibleString(n) => format!("visible-string({n})"),
        TypeDescription::GeneralizedTime => "generalized-time".into(),
        TypeDescription::BinaryTime(_) => "binary-time".into(),
        TypeDescription::Bcd(n) => format!("bcd({n})"),
        TypeDescription::ObjId => "objId".into(),
        TypeDescription::MmsString(n) => format!("mMSString({n})"),
        TypeDescription::UtcTime => "utc-time".into(),
    }
}

/// Renders a UtcTime as ISO 8601 (`2026-11-25T10:00:00.500000Z`).
pub fn utc_time_string(t: &UtcTime) -> String {
    let secs = t.seconds as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let micros = (t.fraction as u64 * 1_000_000) >> 24;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn bits_string(b: &BitString) -> String {
    (0..b.len())
        .map(|i| if b.get(i) { '1' } else { '0' })
        .collect()
}

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::Array(v) | Data::Structure(v) => {
                let (open, close) = if matches!(self, Data::Array(_)) {
                    ('[', ']')
                } else {
                    ('{', '}')
                };
                write!(f, "{open}")?;
                for (i, d) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                write!(f, "{close}")
            }
            Data::Boolean(b) => write!(f, "{b}"),
            Data::BitString(b) | Data::BooleanArray(b) => f.write_str(&bits_string(b)),
            Data::Integer(i) | Data::Bcd(i) => write!(f, "{i}"),
            Data::Unsigned(u) => write!(f, "{u}"),
            Data::FloatingPoint(p) => {
                if p.is_single() {
                    write!(f, "{}", p.to_f64() as f32)
                } else {
                    write!(f, "{}", p.to_f64())
                }
            }
            Data::OctetString(o) => f.write_str(&secmms_ber::hex::encode(o)),
            Data::VisibleString(s) | Data::MmsString(s) | Data::GeneralizedTime(s) => {
                write!(f, "{s:?}")
            }
            Data::BinaryTime(t) => match t.days {
                Some(d) => write!(f, "{}/{d}", t.millis),
                None => write!(f, "{}", t.millis),
            },
            Data::ObjId(o) => write!(f, "{o}"),
            Data::UtcTime(t) => f.write_str(&utc_time_string(t)),
        }
    }
}

/// A JSON-friendly value tree (serde `Serialize`, untagged): numbers, booleans, strings,
/// lists. Bit strings render as `"0101"`, octet strings as hex, times as ISO 8601 text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// boolean.
    Bool(bool),
    /// integer, bcd.
    Int(i64),
    /// unsigned.
    UInt(u64),
    /// floating-point.
    Float(f64),
    /// strings and the textual renderings.
    Text(String),
    /// structure and array.
    List(Vec<Value>),
}

impl From<&Data> for Value {
    fn from(d: &Data) -> Value {
        match d {
            Data::Array(v) | Data::Structure(v) => Value::List(v.iter().map(Value::from).collect()),
            Data::Boolean(b) => Value::Bool(*b),
            Data::Integer(i) | Data::Bcd(i) => Value::Int(*i),
            Data::Unsigned(u) => Value::UInt(*u),
            Data::FloatingPoint(p) => Value::Float(p.to_f64()),
            Data::VisibleString(s) | Data::MmsString(s) | Data::GeneralizedTime(s) => {
                Value::Text(s.clone())
            }
            other => Value::Text(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::StructComponent;

    #[test]
    fn parse_and_render() {
        let st = TypeDescription::Structure {
            packed: false,
            components: vec![
                StructComponent {
                    name: Some("a".into()),
                    ty: TypeDescription::Boolean,
                },
                StructComponent {
                    name: Some("b".into()),
                    ty: TypeDescription::VisibleString(-10),
                },
                StructComponent {
                    name: Some("c".into()),
                    ty: TypeDescription::BitString(13),
                },
            ],
        };
        let d = parse_value(&st, "{true, \"x, y\", 0000000000001}").unwrap();
        assert_eq!(d.to_string(), "{true, \"x, y\", 0000000000001}");
        assert!(parse_value(&st, "{true, x}").is_err());
        assert!(parse_value(&TypeDescription::Integer(8), "128").is_err());
        assert_eq!(
            parse_value(&TypeDescription::Integer(8), "-128").unwrap(),
            Data::Integer(-128)
        );
        assert_eq!(
            parse_value(&TypeDescription::OctetString(-64), "0x0aff").unwrap(),
            Data::OctetString(vec![10, 255])
        );
        assert!(parse_value(&TypeDescription::OctetString(-64), "é0").is_err());
        let t = UtcTime {
            seconds: 1_700_000_000,
            fraction: 1 << 23,
            quality: 0,
        };
        assert_eq!(utc_time_string(&t), "2023-11-14T22:13:20.500000Z");
        assert_eq!(
            parse_value(&TypeDescription::UtcTime, "1700000000.5").unwrap(),
            Data::UtcTime(t)
        );
    }

    #[test]
    fn json_tree() {
        let d = Data::Structure(vec![
            Data::float32(42.5),
            Data::Boolean(true),
            Data::Unsigned(3),
        ]);
        let v = Value::from(&d);
        assert_eq!(
            v,
            Value::List(vec![Value::Float(42.5), Value::Bool(true), Value::UInt(3)])
        );
    }
}
