//! The ENV_4 wrapper of §16.3 (Annex D): the `<e2e>` element that carries one SecPDU element
//! inside an XMPP stanza, wrapped and unwrapped without touching the SecPDU's characters.

use super::*;

/// Namespace of the environment wrapper (§16.1, Annex D): `http://www.iec.ch/62351/2018/ENV_4`.
pub const ENV_NS: &str = "http://www.iec.ch/62351/2018/ENV_4";
/// DECISION §16.3 (element names unknown): the ENV_4 wrapper element that carries exactly one
/// SecPDU element inside an XMPP stanza, `<e2e xmlns="…/ENV_4">…</e2e>`. It has no attributes:
/// the association is identified by the `assoID` inside the SecPDU (§16.5).
pub const ENV_ELEMENT: &str = "e2e";

/// Wraps one SecPDU element (as produced by [`encode`] or the engine) in the ENV_4 element of
/// §16.3: `<e2e xmlns="http://www.iec.ch/62351/2018/ENV_4">…</e2e>`. The SecPDU characters are
/// copied unchanged, so the covered areas stay intact.
pub fn env_wrap(secpdu: &str) -> String {
    let mut s = String::with_capacity(secpdu.len() + ENV_NS.len() + 24);
    s.push('<');
    s.push_str(ENV_ELEMENT);
    s.push_str(" xmlns=\"");
    s.push_str(ENV_NS);
    s.push_str("\">");
    s.push_str(secpdu);
    s.push_str("</");
    s.push_str(ENV_ELEMENT);
    s.push('>');
    s
}

/// Finds the one SecPDU element inside an ENV_4 wrapper and returns its kind and its exact
/// characters (a slice of `text`, from its `<` to the end of its end tag), ready for
/// [`decode`] or the engine. The wrapper must be `<e2e>` in [`ENV_NS`] with nothing but
/// whitespace, comments and PIs besides one child element in [`E2E_NS`]. DECISION §16.3: that
/// child must declare the E2E_4 namespace on itself (as in the §16.3 example), so that it can be
/// verified on its own. Only the wrapper is parsed here; the SecPDU is checked by [`decode`].
pub fn env_unwrap<'t>(text: &'t str, lim: &XmlLimits) -> XResult<(SecPduKind, &'t str)> {
    let wrap_lim = XmlLimits {
        max_depth: lim.max_depth.saturating_add(1),
        max_elements: lim.max_elements.saturating_add(1),
        ..*lim
    };
    let mut p = Parser::new(text, wrap_lim)?;
    p.skip_ws()?;
    match p.next()? {
        Node::Open { name, ns, .. } if name == ENV_ELEMENT && ns == Ns::Env => {}
        _ => return Err(XmlError::EnvNamespace),
    }
    p.skip_ws()?;
    let (kind, start) = match p.next()? {
        Node::Open {
            name,
            ns,
            start,
            declares_e2e,
            ..
        } => {
            let kind = kind_of(&name)
                .filter(|_| ns == Ns::E2e)
                .ok_or(XmlError::EnvContent)?;
            if !declares_e2e {
                return Err(XmlError::NamespaceNotOnSecPdu);
            }
            (kind, start)
        }
        _ => return Err(XmlError::EnvContent),
    };
    let end = p.skip_rest()?;
    p.skip_ws()?;
    match p.next()? {
        Node::Close { .. } => {}
        _ => return Err(XmlError::EnvContent),
    }
    p.finish()?;
    let inner = text.get(start..end).ok_or(XmlError::EnvContent)?;
    Ok((kind, inner))
}
