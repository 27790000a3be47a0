//! ObjectName (ISO 9506-2 §7.5.3).

use crate::codec::{expect, finish, identifier};
use crate::error::{MmsError, Result};
use secmms_ber::{Tag, Tlv, Writer};
use std::fmt;

/// ObjectName — ISO 9506-2 §7.5.3: the scope and identifier of a named MMS object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectName {
    /// `vmd-specific [0] IMPLICIT Identifier`.
    VmdSpecific(String),
    /// `domain-specific [1] IMPLICIT SEQUENCE { domainId, itemId }`.
    DomainSpecific {
        /// domainId (for IEC 61850: IED name + LD inst).
        domain: String,
        /// itemId (for IEC 61850: `LN$FC$DO$DA…`).
        item: String,
    },
    /// `aa-specific [2] IMPLICIT Identifier` (application-association scope).
    AaSpecific(String),
}

impl ObjectName {
    /// A domain-specific name.
    pub fn domain(domain: impl Into<String>, item: impl Into<String>) -> Self {
        ObjectName::DomainSpecific {
            domain: domain.into(),
            item: item.into(),
        }
    }

    /// Encodes the name (the CHOICE itself, no outer tag).
    pub fn encode(&self, w: &mut Writer) {
        match self {
            ObjectName::VmdSpecific(s) => w.octets(Tag::context(0, false), s.as_bytes()),
            ObjectName::DomainSpecific { domain, item } => {
                w.constructed(Tag::context(1, true), |w| {
                    w.octets(Tag::VISIBLE_STRING, domain.as_bytes());
                    w.octets(Tag::VISIBLE_STRING, item.as_bytes());
                })
            }
            ObjectName::AaSpecific(s) => w.octets(Tag::context(2, false), s.as_bytes()),
        }
    }

    /// Decodes the name from its CHOICE element.
    pub fn decode(t: &Tlv<'_>) -> Result<Self> {
        let tag = t.tag();
        if tag == Tag::context(0, false) {
            Ok(ObjectName::VmdSpecific(identifier(t)?))
        } else if tag == Tag::context(2, false) {
            Ok(ObjectName::AaSpecific(identifier(t)?))
        } else if tag == Tag::context(1, true) {
            let mut r = t.children()?;
            let domain = identifier(&expect(&mut r, Tag::VISIBLE_STRING)?)?;
            let item = identifier(&expect(&mut r, Tag::VISIBLE_STRING)?)?;
            finish(&r)?;
            Ok(ObjectName::DomainSpecific { domain, item })
        } else {
            Err(MmsError::InvalidValue("ObjectName"))
        }
    }

    /// Decodes an explicitly tagged name: the only child of `t`.
    pub fn decode_wrapped(t: &Tlv<'_>) -> Result<Self> {
        Self::decode(&t.single_child()?)
    }

    /// The item or identifier part.
    pub fn item(&self) -> &str {
        match self {
            ObjectName::VmdSpecific(s) | ObjectName::AaSpecific(s) => s,
            ObjectName::DomainSpecific { item, .. } => item,
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectName::VmdSpecific(s) => write!(f, "{s}"),
            ObjectName::DomainSpecific { domain, item } => write!(f, "{domain}/{item}"),
            ObjectName::AaSpecific(s) => write!(f, "@{s}"),
        }
    }
}
