//! AlternateAccess (ISO 9506-2 §14.3): selecting a component, an element or a range of elements
//! of a structured variable. Read supports component, index, index range and all elements;
//! write supports component and index. One selection per AlternateAccess is supported (nested
//! through `selectAlternateAccess`); `named` selections and several selections in one
//! AlternateAccess are answered object-access-unsupported.

use crate::data::{Data, TypeDescription};
use crate::error::DataAccessError;
use crate::limits::HARD_MAX_NESTING;
use secmms_ber::{Limits, Reader, Tag, Tlv};

type R = Result<(Data, TypeDescription), DataAccessError>;

fn ber_limits(len: usize) -> Limits {
    Limits {
        max_depth: HARD_MAX_NESTING * 4,
        max_len: len,
    }
}

/// Applies an AlternateAccess (the content octets of `alternateAccess [5]`) to a value of
/// type `ty`.
pub(crate) fn select(
    value: &Data,
    ty: &TypeDescription,
    raw: &[u8],
) -> Result<Data, DataAccessError> {
    select_at(value, ty, raw, 0).map(|(d, _)| d)
}

fn select_at(value: &Data, ty: &TypeDescription, raw: &[u8], depth: usize) -> R {
    if depth > HARD_MAX_NESTING {
        return Err(DataAccessError::ObjectAccessUnsupported);
    }
    let mut r = Reader::new(raw, ber_limits(raw.len()));
    let sel = r
        .read()
        .map_err(|_| DataAccessError::ObjectAccessUnsupported)?;
    if !r.is_empty() {
        return Err(DataAccessError::ObjectAccessUnsupported);
    }
    let t = sel.tag();
    if t == Tag::context(0, true) {
        // selectAlternateAccess { accessSelection, alternateAccess }
        let mut c = sel
            .children()
            .map_err(|_| DataAccessError::ObjectAccessUnsupported)?;
        let access = c
            .read()
            .map_err(|_| DataAccessError::ObjectAccessUnsupported)?;
        let nested = c
            .expect(Tag::SEQUENCE)
            .map_err(|_| DataAccessError::ObjectAccessUnsupported)?;
        let shifted = Tag {
            number: access.tag().number + 1,
            ..access.tag()
        };
        let (v, vt) = apply(value, ty, shifted, &access)?;
        let inner = nested.content();
        match (&v, &vt, shifted.number) {
            // A range or all elements: apply the nested access to every element.
            (Data::Array(items), TypeDescription::Array { element_type, .. }, 3 | 4) => {
                let mut out = Vec::with_capacity(items.len());
                let mut et = None;
                for i in items {
                    let (d, t) = select_at(i, element_type, inner, depth + 1)?;
                    et = Some(t);
                    out.push(d);
                }
                let n = out.len() as u32;
                let element_type = Box::new(et.unwrap_or_else(|| (**element_type).clone()));
                Ok((
                    Data::Array(out),
                    TypeDescription::Array {
                        packed: false,
                        number_of_elements: n,
                        element_type,
                    },
                ))
            }
            _ => select_at(&v, &vt, inner, depth + 1),
        }
    } else {
        apply(value, ty, t, &sel)
    }
}

/// Applies one selectAccess alternative (`[1]` component, `[2]` index, `[3]` indexRange,
/// `[4]` allElements).
fn apply(value: &Data, ty: &TypeDescription, tag: Tag, sel: &Tlv<'_>) -> R {
    let unsupported = DataAccessError::ObjectAccessUnsupported;
    match tag.number {
        1 => {
            let name = sel.as_str().map_err(|_| unsupported)?;
            let (TypeDescription::Structure { components, .. }, Data::Structure(fields)) =
                (ty, value)
            else {
                return Err(DataAccessError::ObjectNonExistent);
            };
            let pos = components
                .iter()
                .position(|c| c.name.as_deref() == Some(name))
                .ok_or(DataAccessError::ObjectNonExistent)?;
            let v = fields.get(pos).ok_or(DataAccessError::ObjectNonExistent)?;
            Ok((v.clone(), components[pos].ty.clone()))
        }
        2 => {
            let i = sel.as_u32().map_err(|_| unsupported)? as usize;
            let (TypeDescription::Array { element_type, .. }, Data::Array(items)) = (ty, value)
            else {
                return Err(DataAccessError::ObjectNonExistent);
            };
            let v = items.get(i).ok_or(DataAccessError::ObjectNonExistent)?;
            Ok((v.clone(), (**element_type).clone()))
        }
        3 => {
            let mut c = sel.children().map_err(|_| unsupported)?;
            let low = c
                .expect(Tag::context(0, false))
                .and_then(|t| t.as_u32())
                .map_err(|_| unsupported)? as usize;
            let n = c
                .expect(Tag::context(1, false))
                .and_then(|t| t.as_u32())
                .map_err(|_| unsupported)? as usize;
            let (
                TypeDescription::Array {
                    element_type,
                    packed,
                    ..
                },
                Data::Array(items),
            ) = (ty, value)
            else {
                return Err(DataAccessError::ObjectNonExistent);
            };
            let end = low
                .checked_add(n)
                .ok_or(DataAccessError::ObjectNonExistent)?;
            let part = items
                .get(low..end)
                .ok_or(DataAccessError::ObjectNonExistent)?;
            Ok((
                Data::Array(part.to_vec()),
                TypeDescription::Array {
                    packed: *packed,
                    number_of_elements: n as u32,
                    element_type: element_type.clone(),
                },
            ))
        }
        4 => Ok((value.clone(), ty.clone())),
        _ => Err(unsupported),
    }
}

/// Replaces the part of `value` (of type `ty`) that `raw` selects with `new` (component and
/// index selections only). `value` is left unchanged on error.
pub(crate) fn replace(
    value: &mut Data,
    ty: &TypeDescription,
    raw: &[u8],
    new: Data,
) -> Result<(), DataAccessError> {
    replace_at(value, ty, raw, new, 0)
}

fn replace_at(
    value: &mut Data,
    ty: &TypeDescription,
    raw: &[u8],
    new: Data,
    depth: usize,
) -> Result<(), DataAccessError> {
    let unsupported = DataAccessError::ObjectAccessUnsupported;
    if depth > HARD_MAX_NESTING {
        return Err(unsupported);
    }
    let mut r = Reader::new(raw, ber_limits(raw.len()));
    let sel = r.read().map_err(|_| unsupported)?;
    if !r.is_empty() {
        return Err(unsupported);
    }
    if sel.tag() == Tag::context(0, true) {
        let mut c = sel.children().map_err(|_| unsupported)?;
        let access = c.read().map_err(|_| unsupported)?;
        let nested = c.expect(Tag::SEQUENCE).map_err(|_| unsupported)?;
        let shifted = Tag {
            number: access.tag().number + 1,
            ..access.tag()
        };
        let (target, t) = locate_mut(value, ty, shifted, &access)?;
        replace_at(target, &t, nested.content(), new, depth + 1)
    } else {
        let (target, t) = locate_mut(value, ty, sel.tag(), &sel)?;
        if !t.matches(&new) {
            return Err(DataAccessError::TypeInconsistent);
        }
        *target = new;
        Ok(())
    }
}

fn locate_mut<'d>(
    value: &'d mut Data,
    ty: &TypeDescription,
    tag: Tag,
    sel: &Tlv<'_>,
) -> Result<(&'d mut Data, TypeDescription), DataAccessError> {
    let unsupported = DataAccessError::ObjectAccessUnsupported;
    match (tag.number, ty, value) {
        (1, TypeDescription::Structure { components, .. }, Data::Structure(fields)) => {
            let name = sel.as_str().map_err(|_| unsupported)?;
            let pos = components
                .iter()
                .position(|c| c.name.as_deref() == Some(name))
                .ok_or(DataAccessError::ObjectNonExistent)?;
            let f = fields
                .get_mut(pos)
                .ok_or(DataAccessError::ObjectNonExistent)?;
            Ok((f, components[pos].ty.clone()))
        }
        (2, TypeDescription::Array { element_type, .. }, Data::Array(items)) => {
            let i = sel.as_u32().map_err(|_| unsupported)? as usize;
            let e = items.get_mut(i).ok_or(DataAccessError::ObjectNonExistent)?;
            Ok((e, (**element_type).clone()))
        }
        (1 | 2, _, _) => Err(DataAccessError::ObjectNonExistent),
        _ => Err(unsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::StructComponent;

    #[test]
    fn component_index_and_range() {
        let elem = TypeDescription::Structure {
            packed: false,
            components: vec![
                StructComponent {
                    name: Some("a".into()),
                    ty: TypeDescription::Integer(8),
                },
                StructComponent {
                    name: Some("b".into()),
                    ty: TypeDescription::Boolean,
                },
            ],
        };
        let ty = TypeDescription::Array {
            packed: false,
            number_of_elements: 3,
            element_type: Box::new(elem),
        };
        let v = Data::Array(
            (0..3)
                .map(|i| Data::Structure(vec![Data::Integer(i), Data::Boolean(i == 1)]))
                .collect(),
        );
        // index 1
        assert_eq!(
            select(&v, &ty, &[0x82, 0x01, 0x01]),
            Ok(Data::Structure(vec![Data::Integer(1), Data::Boolean(true)]))
        );
        // selectAlternateAccess { index 2, { component "a" } }
        assert_eq!(
            select(
                &v,
                &ty,
                &[0xA0, 0x08, 0x81, 0x01, 0x02, 0x30, 0x03, 0x81, 0x01, b'a']
            ),
            Ok(Data::Integer(2))
        );
        // indexRange 1..3
        assert_eq!(
            select(&v, &ty, &[0xA3, 0x06, 0x80, 0x01, 0x01, 0x81, 0x01, 0x02]),
            Ok(Data::Array(v_items(&v)[1..3].to_vec()))
        );
        // out of range
        assert_eq!(
            select(&v, &ty, &[0x82, 0x01, 0x09]),
            Err(DataAccessError::ObjectNonExistent)
        );
        // all elements, then component b
        assert_eq!(
            select(
                &v,
                &ty,
                &[0xA0, 0x07, 0x83, 0x00, 0x30, 0x03, 0x81, 0x01, b'b']
            ),
            Ok(Data::Array(vec![
                Data::Boolean(false),
                Data::Boolean(true),
                Data::Boolean(false)
            ]))
        );
        assert!(select(&v, &ty, &[0xff]).is_err());
        // Write element 2, component b; then a whole element; type errors leave v alone.
        let mut w = v.clone();
        replace(
            &mut w,
            &ty,
            &[0xA0, 0x08, 0x81, 0x01, 0x02, 0x30, 0x03, 0x81, 0x01, b'b'],
            Data::Boolean(true),
        )
        .unwrap();
        assert_eq!(
            select(&w, &ty, &[0x82, 0x01, 0x02]),
            Ok(Data::Structure(vec![Data::Integer(2), Data::Boolean(true)]))
        );
        assert_eq!(
            replace(&mut w, &ty, &[0x82, 0x01, 0x00], Data::Boolean(true)),
            Err(DataAccessError::TypeInconsistent)
        );
        assert_eq!(
            replace(
                &mut w,
                &ty,
                &[0xA3, 0x06, 0x80, 0x01, 0x01, 0x81, 0x01, 0x02],
                Data::Boolean(true)
            ),
            Err(DataAccessError::ObjectAccessUnsupported)
        );
        assert_eq!(
            replace(&mut w, &ty, &[0x82, 0x01, 0x07], Data::Boolean(true)),
            Err(DataAccessError::ObjectNonExistent)
        );
    }

    fn v_items(d: &Data) -> Vec<Data> {
        match d {
            Data::Array(v) => v.clone(),
            _ => vec![],
        }
    }
}
