//! Data, TypeSpecification and AccessResult — ISO 9506-2 §14 (Data), §14.1 (TypeSpecification)
//! and §14.4 (AccessResult), with the IEC 61850-8-1 interpretations of the octet-string based
//! types (FloatingPoint, TimeOfDay, UtcTime).

use crate::codec::{bounded, identifier, seq_of, visible_string};
use crate::error::{DataAccessError, MmsError, Result};
use crate::limits::{MmsLimits, MAX_STRING_LEN};
use crate::name::ObjectName;
use secmms_ber::{decode_i64, Class, Oid, Tag, Tlv, Writer};

/// Octet written for BOOLEAN TRUE inside Data. DECISION (reference §7.5 and §9 item 8): peers
/// differ (`01` libiec61850, `FF` Wireshark's sample); any non-zero octet is accepted on
/// receive and the DER form `FF` is sent.
pub const BOOLEAN_TRUE_OCTET: u8 = 0xFF;

/// Most elements (simple values and containers) [`TypeDescription::default_value`] builds for
/// one value: bounds memory when a model (SCL `count`) nests arrays.
pub const MAX_DEFAULT_VALUE_ELEMENTS: usize = 65_536;

/// Exponent width octet of a single-precision FloatingPoint (ISO 9506-2 §14.4.2.2; IEC 61850-8-1
/// FLOAT32 = `87 05 08 …`).
pub const FLOAT32_EXPONENT_WIDTH: u8 = 8;
/// Exponent width octet of a double-precision FloatingPoint (IEC 61850-8-1 FLOAT64 = `87 09 0B …`).
pub const FLOAT64_EXPONENT_WIDTH: u8 = 11;

/// A BIT STRING value: octets plus the number of unused bits in the last one (X.690 §8.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BitString {
    bytes: Vec<u8>,
    unused: u8,
}

impl BitString {
    /// From octets and the number of unused trailing bits (0..=7; 0 when empty).
    pub fn from_parts(bytes: Vec<u8>, unused: u8) -> Result<Self> {
        if unused > 7 || (bytes.is_empty() && unused != 0) {
            return Err(MmsError::InvalidValue("BIT STRING"));
        }
        Ok(BitString { bytes, unused })
    }
    /// An all-zero bit string of `len` bits.
    pub fn zeros(len: usize) -> Self {
        let n = len.div_ceil(8);
        BitString {
            bytes: vec![0; n],
            unused: (n * 8 - len) as u8,
        }
    }
    /// From a list of bits, bit 0 first (the most significant bit of the first octet).
    pub fn from_bits(bits: &[bool]) -> Self {
        let mut b = Self::zeros(bits.len());
        for (i, v) in bits.iter().enumerate() {
            b.set(i, *v);
        }
        b
    }
    /// Number of bits.
    pub fn len(&self) -> usize {
        self.bytes.len() * 8 - self.unused as usize
    }
    /// True when there are no bits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bit `i` (bit 0 is the most significant bit of the first octet); false when out of range.
    pub fn get(&self, i: usize) -> bool {
        i < self.len() && self.bytes[i / 8] & (0x80 >> (i % 8)) != 0
    }
    /// Sets bit `i` when in range.
    pub fn set(&mut self, i: usize, v: bool) {
        if i < self.len() {
            if v {
                self.bytes[i / 8] |= 0x80 >> (i % 8);
            } else {
                self.bytes[i / 8] &= !(0x80 >> (i % 8));
            }
        }
    }
    /// The octets.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Unused bits in the last octet.
    pub fn unused(&self) -> u8 {
        self.unused
    }
    fn encode(&self, w: &mut Writer, tag: Tag) {
        w.bit_string(tag, self.unused, &self.bytes);
    }
    fn decode(t: &Tlv<'_>) -> Result<Self> {
        if t.tag().constructed {
            return Err(MmsError::Unsupported("constructed BIT STRING"));
        }
        let (unused, bytes) = t.as_bit_string()?;
        Self::from_parts(bytes.to_vec(), unused)
    }
}

/// FloatingPoint — ISO 9506-2 §14.4.2.2: an exponent-width octet followed by an IEEE 754
/// value, big-endian. Only the single (5 octets) and double (9 octets) forms are accepted.
/// The octets are kept as received so values round-trip exactly (NaN payloads included).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FloatingPoint(Vec<u8>);

impl FloatingPoint {
    /// A single-precision value (`08` + 4 octets).
    pub fn from_f32(v: f32) -> Self {
        let mut o = Vec::with_capacity(5);
        o.push(FLOAT32_EXPONENT_WIDTH);
        o.extend_from_slice(&v.to_be_bytes());
        FloatingPoint(o)
    }
    /// A double-precision value (`0B` + 8 octets).
    pub fn from_f64(v: f64) -> Self {
        let mut o = Vec::with_capacity(9);
        o.push(FLOAT64_EXPONENT_WIDTH);
        o.extend_from_slice(&v.to_be_bytes());
        FloatingPoint(o)
    }
    /// From the content octets (5 or 9 of them).
    pub fn from_content(c: &[u8]) -> Result<Self> {
        match c.len() {
            5 | 9 => Ok(FloatingPoint(c.to_vec())),
            _ => Err(MmsError::InvalidValue("FloatingPoint")),
        }
    }
    /// The content octets.
    pub fn content(&self) -> &[u8] {
        &self.0
    }
    /// The exponent width octet.
    pub fn exponent_width(&self) -> u8 {
        self.0.first().copied().unwrap_or(0)
    }
    /// True for the 4-octet (single precision) form.
    pub fn is_single(&self) -> bool {
        self.0.len() == 5
    }
    /// The value as f64 (exact for both forms).
    pub fn to_f64(&self) -> f64 {
        match self.0.len() {
            5 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&self.0[1..5]);
                f32::from_be_bytes(b) as f64
            }
            9 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.0[1..9]);
                f64::from_be_bytes(b)
            }
            _ => f64::NAN,
        }
    }
}

/// TimeOfDay (binary-time) — ISO 9506-2 §14.4.2.5: milliseconds since midnight, and optionally
/// days since 1984-01-01 (4 or 6 octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeOfDay {
    /// Milliseconds since midnight.
    pub millis: u32,
    /// Days since 1 January 1984, when the 6-octet form is used.
    pub days: Option<u16>,
}

impl TimeOfDay {
    fn content(&self) -> Vec<u8> {
        let mut o = self.millis.to_be_bytes().to_vec();
        if let Some(d) = self.days {
            o.extend_from_slice(&d.to_be_bytes());
        }
        o
    }
    fn from_content(c: &[u8]) -> Result<Self> {
        match c.len() {
            4 | 6 => Ok(TimeOfDay {
                millis: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                days: (c.len() == 6).then(|| u16::from_be_bytes([c[4], c[5]])),
            }),
            _ => Err(MmsError::InvalidValue("TimeOfDay")),
        }
    }
}

/// UtcTime — IEC 61850-8-1 §8.1.3.7 / ISO 9506-2 §14.4.2.9: 4 octets seconds since 1970-01-01,
/// 3 octets fraction of a second (units of 2⁻²⁴ s), 1 octet TimeQuality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UtcTime {
    /// Seconds since the epoch.
    pub seconds: u32,
    /// Fraction of a second, 24 bits.
    pub fraction: u32,
    /// TimeQuality octet (leap-seconds-known, clock-failure, not-synchronized, accuracy).
    pub quality: u8,
}

impl UtcTime {
    /// The 8 content octets.
    pub fn to_bytes(&self) -> [u8; 8] {
        let s = self.seconds.to_be_bytes();
        let f = (self.fraction & 0x00ff_ffff).to_be_bytes();
        [s[0], s[1], s[2], s[3], f[1], f[2], f[3], self.quality]
    }
    /// From the 8 content octets.
    pub fn from_bytes(c: &[u8]) -> Result<Self> {
        if c.len() != 8 {
            return Err(MmsError::InvalidValue("UtcTime"));
        }
        Ok(UtcTime {
            seconds: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            fraction: u32::from_be_bytes([0, c[4], c[5], c[6]]),
            quality: c[7],
        })
    }
}

/// Data — ISO 9506-2 §14.4.2. `real [8]` is not supported (refused as type-unsupported).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `array [1]`.
    Array(Vec<Data>),
    /// `structure [2]`.
    Structure(Vec<Data>),
    /// `boolean [3]`.
    Boolean(bool),
    /// `bit-string [4]`.
    BitString(BitString),
    /// `integer [5]`.
    Integer(i64),
    /// `unsigned [6]`.
    Unsigned(u64),
    /// `floating-point [7]`.
    FloatingPoint(FloatingPoint),
    /// `octet-string [9]`.
    OctetString(Vec<u8>),
    /// `visible-string [10]`.
    VisibleString(String),
    /// `generalized-time [11]` (the GeneralizedTime characters).
    GeneralizedTime(String),
    /// `binary-time [12]`.
    BinaryTime(TimeOfDay),
    /// `bcd [13]`.
    Bcd(i64),
    /// `booleanArray [14]`.
    BooleanArray(BitString),
    /// `objId [15]`.
    ObjId(Oid),
    /// `mMSString [16]` (UTF8String).
    MmsString(String),
    /// `utc-time [17]`.
    UtcTime(UtcTime),
}

impl Eq for Data {}

impl Data {
    /// A FLOAT32 value.
    pub fn float32(v: f32) -> Data {
        Data::FloatingPoint(FloatingPoint::from_f32(v))
    }
    /// A FLOAT64 value.
    pub fn float64(v: f64) -> Data {
        Data::FloatingPoint(FloatingPoint::from_f64(v))
    }

    /// Encodes this value.
    pub fn encode(&self, w: &mut Writer) {
        let p = |n| Tag::context(n, false);
        match self {
            Data::Array(v) => w.constructed(Tag::context(1, true), |w| {
                v.iter().for_each(|d| d.encode(w))
            }),
            Data::Structure(v) => w.constructed(Tag::context(2, true), |w| {
                v.iter().for_each(|d| d.encode(w))
            }),
            Data::Boolean(b) => w.tlv(p(3), &[if *b { BOOLEAN_TRUE_OCTET } else { 0 }]),
            Data::BitString(b) => b.encode(w, p(4)),
            Data::Integer(i) => w.integer(p(5), *i),
            Data::Unsigned(u) => w.unsigned(p(6), *u),
            Data::FloatingPoint(f) => w.tlv(p(7), f.content()),
            Data::OctetString(o) => w.tlv(p(9), o),
            Data::VisibleString(s) => w.tlv(p(10), s.as_bytes()),
            Data::GeneralizedTime(s) => w.tlv(p(11), s.as_bytes()),
            Data::BinaryTime(t) => w.tlv(p(12), &t.content()),
            Data::Bcd(i) => w.integer(p(13), *i),
            Data::BooleanArray(b) => b.encode(w, p(14)),
            Data::ObjId(o) => w.oid(p(15), o),
            Data::MmsString(s) => w.tlv(p(16), s.as_bytes()),
            Data::UtcTime(t) => w.tlv(p(17), &t.to_bytes()),
        }
    }

    /// The encoding as a byte vector.
    pub fn to_ber(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.finish()
    }

    /// Decodes one Data element. `lim.max_nesting` bounds array/structure nesting.
    pub fn decode(t: &Tlv<'_>, lim: &MmsLimits) -> Result<Data> {
        Self::decode_at(t, lim, 0)
    }

    fn decode_at(t: &Tlv<'_>, lim: &MmsLimits, level: usize) -> Result<Data> {
        let tag = t.tag();
        if tag.class != Class::Context {
            return Err(MmsError::InvalidValue("Data"));
        }
        if tag.constructed {
            if tag.number != 1 && tag.number != 2 {
                return Err(MmsError::Unsupported("constructed Data encoding"));
            }
            if level >= lim.max_nesting {
                return Err(MmsError::NestingTooDeep(lim.max_nesting));
            }
            let items = seq_of(t, lim, |c| Self::decode_at(c, lim, level + 1))?;
            return Ok(if tag.number == 1 {
                Data::Array(items)
            } else {
                Data::Structure(items)
            });
        }
        let c = t.content();
        Ok(match tag.number {
            3 => Data::Boolean(t.as_bool()?),
            4 => Data::BitString(BitString::decode(t)?),
            5 => Data::Integer(t.as_i64()?),
            6 => Data::Unsigned(t.as_u64().map_err(|_| MmsError::InvalidValue("unsigned"))?),
            7 => Data::FloatingPoint(FloatingPoint::from_content(c)?),
            8 => return Err(MmsError::Unsupported("Data real")),
            9 => Data::OctetString(c.to_vec()),
            10 => Data::VisibleString(visible_string(t, MAX_STRING_LEN, "visible-string")?),
            11 => Data::GeneralizedTime(visible_string(t, 64, "generalized-time")?),
            12 => Data::BinaryTime(TimeOfDay::from_content(c)?),
            13 => {
                let v = decode_i64(c)?;
                if v < 0 {
                    return Err(MmsError::InvalidValue("bcd"));
                }
                Data::Bcd(v)
            }
            14 => Data::BooleanArray(BitString::decode(t)?),
            15 => Data::ObjId(t.as_oid()?),
            16 => Data::MmsString(
                std::str::from_utf8(c)
                    .map_err(|_| MmsError::InvalidValue("mMSString"))?
                    .to_owned(),
            ),
            17 => Data::UtcTime(UtcTime::from_bytes(c)?),
            _ => return Err(MmsError::InvalidValue("Data")),
        })
    }

    /// Number of elements of this value (1 for a simple value; containers count themselves).
    pub fn element_count(&self) -> usize {
        match self {
            Data::Array(v) | Data::Structure(v) => {
                1 + v.iter().map(Data::element_count).sum::<usize>()
            }
            _ => 1,
        }
    }

    /// Nesting level of this value (0 for a simple value).
    pub fn nesting(&self) -> usize {
        match self {
            Data::Array(v) | Data::Structure(v) => {
                1 + v.iter().map(Data::nesting).max().unwrap_or(0)
            }
            _ => 0,
        }
    }
}

/// One component of a structure TypeSpecification (ISO 9506-2 §14.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructComponent {
    /// componentName.
    pub name: Option<String>,
    /// componentType.
    pub ty: TypeDescription,
}

/// TypeSpecification / TypeDescription — ISO 9506-2 §14.1. The size of the string types is an
/// Integer32 where a negative value means "variable length, at most |n|" (IEC 61850-8-1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TypeDescription {
    /// `typeName [0] ObjectName`.
    TypeName(ObjectName),
    /// `array [1]`.
    Array {
        /// packed (DEFAULT FALSE).
        packed: bool,
        /// numberOfElements.
        number_of_elements: u32,
        /// elementType.
        element_type: Box<TypeDescription>,
    },
    /// `structure [2]`.
    Structure {
        /// packed (DEFAULT FALSE).
        packed: bool,
        /// components.
        components: Vec<StructComponent>,
    },
    /// `boolean [3]`.
    Boolean,
    /// `bit-string [4]` of the given size.
    BitString(i32),
    /// `integer [5]` of the given bit width.
    Integer(u8),
    /// `unsigned [6]` of the given bit width.
    Unsigned(u8),
    /// `floating-point [7] { format-width, exponent-width }`.
    FloatingPoint {
        /// format-width (32 or 64 in IEC 61850).
        format_width: u8,
        /// exponent-width (8 or 11).
        exponent_width: u8,
    },
    /// `octet-string [9]`.
    OctetString(i32),
    /// `visible-string [10]`.
    VisibleString(i32),
    /// `generalized-time [11]`.
    GeneralizedTime,
    /// `binary-time [12]` (TRUE when the date is included).
    BinaryTime(bool),
    /// `bcd [13]`.
    Bcd(u8),
    /// `objId [15]`.
    ObjId,
    /// `mMSString [16]`.
    MmsString(i32),
    /// `utc-time [17]`.
    UtcTime,
}

impl TypeDescription {
    /// FLOAT32 as IEC 61850-8-1 maps it.
    pub const FLOAT32: TypeDescription = TypeDescription::FloatingPoint {
        format_width: 32,
        exponent_width: 8,
    };
    /// FLOAT64 as IEC 61850-8-1 maps it.
    pub const FLOAT64: TypeDescription = TypeDescription::FloatingPoint {
        format_width: 64,
        exponent_width: 11,
    };

    /// Encodes the TypeSpecification (the CHOICE itself).
    pub fn encode(&self, w: &mut Writer) {
        let p = |n| Tag::context(n, false);
        match self {
            TypeDescription::TypeName(n) => w.constructed(Tag::context(0, true), |w| n.encode(w)),
            TypeDescription::Array {
                packed,
                number_of_elements,
                element_type,
            } => w.constructed(Tag::context(1, true), |w| {
                if *packed {
                    w.boolean(p(0), true);
                }
                w.unsigned(p(1), *number_of_elements as u64);
                w.constructed(Tag::context(2, true), |w| element_type.encode(w));
            }),
            TypeDescription::Structure { packed, components } => {
                w.constructed(Tag::context(2, true), |w| {
                    if *packed {
                        w.boolean(p(0), true);
                    }
                    w.constructed(Tag::context(1, true), |w| {
                        for c in components {
                            w.constructed(Tag::SEQUENCE, |w| {
                                if let Some(n) = &c.name {
                                    w.octets(p(0), n.as_bytes());
                                }
                                w.constructed(Tag::context(1, true), |w| c.ty.encode(w));
                            });
                        }
                    });
                })
            }
            TypeDescription::Boolean => w.null(p(3)),
            TypeDescription::BitString(n) => w.integer(p(4), *n as i64),
            TypeDescription::Integer(n) => w.unsigned(p(5), *n as u64),
            TypeDescription::Unsigned(n) => w.unsigned(p(6), *n as u64),
            TypeDescription::FloatingPoint {
                format_width,
                exponent_width,
            } => w.constructed(Tag::context(7, true), |w| {
                w.unsigned(Tag::INTEGER, *format_width as u64);
                w.unsigned(Tag::INTEGER, *exponent_width as u64);
            }),
            TypeDescription::OctetString(n) => w.integer(p(9), *n as i64),
            TypeDescription::VisibleString(n) => w.integer(p(10), *n as i64),
            TypeDescription::GeneralizedTime => w.null(p(11)),
            TypeDescription::BinaryTime(b) => w.tlv(p(12), &[if *b { 0xff } else { 0 }]),
            TypeDescription::Bcd(n) => w.unsigned(p(13), *n as u64),
            TypeDescription::ObjId => w.null(p(15)),
            TypeDescription::MmsString(n) => w.integer(p(16), *n as i64),
            TypeDescription::UtcTime => w.null(p(17)),
        }
    }

    /// Decodes a TypeSpecification from its CHOICE element.
    pub fn decode(t: &Tlv<'_>, lim: &MmsLimits) -> Result<Self> {
        Self::decode_at(t, lim, 0)
    }

    fn decode_at(t: &Tlv<'_>, lim: &MmsLimits, level: usize) -> Result<Self> {
        let tag = t.tag();
        if tag.class != Class::Context {
            return Err(MmsError::InvalidValue("TypeSpecification"));
        }
        let i32_of = |t: &Tlv<'_>| -> Result<i32> {
            i32::try_from(t.as_i64()?).map_err(|_| MmsError::InvalidValue("Integer32"))
        };
        let u8_of = |t: &Tlv<'_>| -> Result<u8> { Ok(bounded(t, 255, "Unsigned8")? as u8) };
        let null = |t: &Tlv<'_>| -> Result<()> { Ok(t.as_null()?) };
        Ok(match (tag.number, tag.constructed) {
            (0, true) => TypeDescription::TypeName(ObjectName::decode_wrapped(t)?),
            (1, true) | (2, true) => {
                if level >= lim.max_nesting {
                    return Err(MmsError::NestingTooDeep(lim.max_nesting));
                }
                let mut r = t.children()?;
                let packed = match r.optional(Tag::context(0, false))? {
                    Some(p) => p.as_bool()?,
                    None => false,
                };
                if tag.number == 1 {
                    let n = crate::codec::u32_of(
                        &r.expect(Tag::context(1, false))?,
                        "numberOfElements",
                    )?;
                    let et = r.expect(Tag::context(2, true))?.single_child()?;
                    let element_type = Box::new(Self::decode_at(&et, lim, level + 1)?);
                    r.finish()?;
                    TypeDescription::Array {
                        packed,
                        number_of_elements: n,
                        element_type,
                    }
                } else {
                    let comps = r.expect(Tag::context(1, true))?;
                    r.finish()?;
                    let components = seq_of(&comps, lim, |c| {
                        if c.tag() != Tag::SEQUENCE {
                            return Err(MmsError::InvalidValue("structure component"));
                        }
                        let mut cr = c.children()?;
                        let name = match cr.optional(Tag::context(0, false))? {
                            Some(n) => Some(identifier(&n)?),
                            None => None,
                        };
                        let ct = cr.expect(Tag::context(1, true))?.single_child()?;
                        let ty = Self::decode_at(&ct, lim, level + 1)?;
                        cr.finish()?;
                        Ok(StructComponent { name, ty })
                    })?;
                    TypeDescription::Structure { packed, components }
                }
            }
            (3, false) => {
                null(t)?;
                TypeDescription::Boolean
            }
            (4, false) => TypeDescription::BitString(i32_of(t)?),
            (5, false) => TypeDescription::Integer(u8_of(t)?),
            (6, false) => TypeDescription::Unsigned(u8_of(t)?),
            (7, true) => {
                let mut r = t.children()?;
                let format_width = u8_of(&r.expect(Tag::INTEGER)?)?;
                let exponent_width = u8_of(&r.expect(Tag::INTEGER)?)?;
                r.finish()?;
                TypeDescription::FloatingPoint {
                    format_width,
                    exponent_width,
                }
            }
            (9, false) => TypeDescription::OctetString(i32_of(t)?),
            (10, false) => TypeDescription::VisibleString(i32_of(t)?),
            (11, false) => {
                null(t)?;
                TypeDescription::GeneralizedTime
            }
            (12, false) => TypeDescription::BinaryTime(t.as_bool()?),
            (13, false) => TypeDescription::Bcd(u8_of(t)?),
            (15, false) => {
                null(t)?;
                TypeDescription::ObjId
            }
            (16, false) => TypeDescription::MmsString(i32_of(t)?),
            (17, false) => {
                null(t)?;
                TypeDescription::UtcTime
            }
            _ => return Err(MmsError::Unsupported("TypeSpecification alternative")),
        })
    }

    /// A default (zero) value of this type; `None` for a type name (not resolvable here) or
    /// a value of more than [`MAX_DEFAULT_VALUE_ELEMENTS`] elements (nested arrays).
    pub fn default_value(&self) -> Option<Data> {
        let mut budget = MAX_DEFAULT_VALUE_ELEMENTS;
        self.default_within(&mut budget)
    }

    fn default_within(&self, budget: &mut usize) -> Option<Data> {
        *budget = budget.checked_sub(1)?;
        Some(match self {
            TypeDescription::TypeName(_) => return None,
            TypeDescription::Array {
                number_of_elements,
                element_type,
                ..
            } => {
                let n = *number_of_elements as usize;
                if n > *budget {
                    return None;
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(element_type.default_within(budget)?);
                }
                Data::Array(v)
            }
            TypeDescription::Structure { components, .. } => Data::Structure(
                components
                    .iter()
                    .map(|c| c.ty.default_within(budget))
                    .collect::<Option<Vec<_>>>()?,
            ),
            TypeDescription::Boolean => Data::Boolean(false),
            TypeDescription::BitString(n) => {
                Data::BitString(BitString::zeros(usize::try_from(*n).unwrap_or(0).min(4096)))
            }
            TypeDescription::Integer(_) => Data::Integer(0),
            TypeDescription::Unsigned(_) => Data::Unsigned(0),
            TypeDescription::FloatingPoint { format_width, .. } => {
                if *format_width > 32 {
                    Data::float64(0.0)
                } else {
                    Data::float32(0.0)
                }
            }
            TypeDescription::OctetString(n) => {
                Data::OctetString(vec![0; usize::try_from(*n).unwrap_or(0).min(4096)])
            }
            TypeDescription::VisibleString(_) => Data::VisibleString(String::new()),
            TypeDescription::GeneralizedTime => Data::GeneralizedTime("19700101000000Z".into()),
            TypeDescription::BinaryTime(d) => Data::BinaryTime(TimeOfDay {
                millis: 0,
                days: d.then_some(0),
            }),
            TypeDescription::Bcd(_) => Data::Bcd(0),
            TypeDescription::ObjId => Data::ObjId(secmms_ber::oid!(0, 0)),
            TypeDescription::MmsString(_) => Data::MmsString(String::new()),
            TypeDescription::UtcTime => Data::UtcTime(UtcTime::default()),
        })
    }

    /// True when `d` is a value of this type (sizes and widths checked; used by Write to
    /// answer type-inconsistent). A type name matches nothing.
    pub fn matches(&self, d: &Data) -> bool {
        fn fits_size(n: i32, len: usize) -> bool {
            if n < 0 {
                len <= n.unsigned_abs() as usize
            } else {
                len == n as usize
            }
        }
        match (self, d) {
            (
                TypeDescription::Array {
                    number_of_elements,
                    element_type,
                    ..
                },
                Data::Array(v),
            ) => {
                v.len() == *number_of_elements as usize && v.iter().all(|e| element_type.matches(e))
            }
            (TypeDescription::Structure { components, .. }, Data::Structure(v)) => {
                v.len() == components.len()
                    && components.iter().zip(v).all(|(c, e)| c.ty.matches(e))
            }
            (TypeDescription::Boolean, Data::Boolean(_)) => true,
            (TypeDescription::BitString(n), Data::BitString(b)) => fits_size(*n, b.len()),
            (TypeDescription::Integer(bits), Data::Integer(i)) => {
                *bits >= 64 || {
                    let half = 1i128 << (bits.saturating_sub(1).min(63));
                    (-half..half).contains(&(*i as i128))
                }
            }
            (TypeDescription::Unsigned(bits), Data::Unsigned(u)) => {
                *bits >= 64 || (*u as u128) < (1u128 << *bits)
            }
            (TypeDescription::FloatingPoint { format_width, .. }, Data::FloatingPoint(f)) => {
                (*format_width <= 32) == f.is_single()
            }
            (TypeDescription::OctetString(n), Data::OctetString(o)) => fits_size(*n, o.len()),
            (TypeDescription::VisibleString(n), Data::VisibleString(s)) => fits_size(*n, s.len()),
            (TypeDescription::GeneralizedTime, Data::GeneralizedTime(_)) => true,
            (TypeDescription::BinaryTime(d), Data::BinaryTime(t)) => *d == t.days.is_some(),
            (TypeDescription::Bcd(_), Data::Bcd(_)) => true,
            (TypeDescription::ObjId, Data::ObjId(_)) => true,
            (TypeDescription::MmsString(n), Data::MmsString(s)) => fits_size(*n, s.chars().count()),
            (TypeDescription::UtcTime, Data::UtcTime(_)) => true,
            _ => false,
        }
    }
}

/// AccessResult — ISO 9506-2 §14.4.1: `failure [0] IMPLICIT DataAccessError` or `success Data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessResult {
    /// The value.
    Success(Data),
    /// Why the variable could not be accessed.
    Failure(DataAccessError),
}

impl AccessResult {
    /// Encodes the result.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            AccessResult::Success(d) => d.encode(w),
            AccessResult::Failure(e) => w.integer(Tag::context(0, false), e.code()),
        }
    }
    /// Decodes one result.
    pub fn decode(t: &Tlv<'_>, lim: &MmsLimits) -> Result<Self> {
        if t.tag() == Tag::context(0, false) {
            DataAccessError::from_code(t.as_i64()?)
                .map(AccessResult::Failure)
                .ok_or(MmsError::InvalidValue("DataAccessError"))
        } else {
            Ok(AccessResult::Success(Data::decode(t, lim)?))
        }
    }
}
