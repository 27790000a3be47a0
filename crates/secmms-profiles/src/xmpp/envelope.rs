//! The ENV_4 wrapper of §16.3 (Annex D, `xsd/ENV_4.xsd` in this crate): the `<e2e>` element that
//! carries one SecPDU element inside an XMPP stanza, wrapped and unwrapped without touching the
//! SecPDU's characters. The SecPDU element itself is the E2E_4 codec's ([`secmms_e2e::xml`]),
//! and so is the bounded reader the wrapper is read with ([`Scanner`]).

use secmms_e2e::xml::{kind_of, Node, Ns, Scanner, XmlError};
use secmms_e2e::SecPduKind;

use super::XmlLimits;

/// Namespace of the environment wrapper (§16.1, Annex D): `http://www.iec.ch/62351/2018/ENV_4`.
pub const ENV_NS: &str = secmms_xmpp::ns::IEC_ENV_4;

/// DECISION §16.3 (element names unknown): the ENV_4 wrapper element that carries exactly one
/// SecPDU element inside an XMPP stanza, `<e2e xmlns="…/ENV_4">…</e2e>`. It has no attributes:
/// the association is identified by the `assoID` inside the SecPDU (§16.5).
pub const ENV_ELEMENT: &str = "e2e";

/// Why an ENV_4 wrapper could not be unwrapped. [`super::receive`] reports
/// [`EnvError::Namespace`] as event 18.3 and every other one as 18.4/18.5.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The wrapper element is not `<e2e>` in the ENV_4 namespace (event 18.3).
    #[error("wrapper is not <e2e> in the ENV_4 namespace")]
    Namespace,
    /// The wrapper does not contain exactly one SecPDU element (events 18.4/18.5).
    #[error("the ENV_4 wrapper must contain exactly one SecPDU element")]
    Content,
    /// The wrapped SecPDU element relies on a namespace declared outside it, so it cannot be
    /// verified on its own.
    #[error("the SecPDU element must declare the E2E_4 namespace itself")]
    NamespaceNotOnSecPdu,
    /// The text is not acceptable XML for the SecPDU codec's reader (malformed, over the
    /// [`XmlLimits`], a DOCTYPE, an attribute that is not a namespace declaration, …).
    #[error(transparent)]
    Xml(#[from] XmlError),
}

/// Wraps one SecPDU element (as produced by [`secmms_e2e::xml::encode`] or the engine) in the
/// ENV_4 element of §16.3: `<e2e xmlns="http://www.iec.ch/62351/2018/ENV_4">…</e2e>`. The
/// SecPDU characters are copied unchanged, so the covered areas stay intact.
///
/// ```
/// use secmms_profiles::xmpp::{env_unwrap, env_wrap};
/// use secmms_e2e::SecPduKind;
/// let secpdu = "<ReleaseRsp xmlns=\"http://www.iec.ch/62351/2018/E2E_4\"/>";
/// let env = env_wrap(secpdu);
/// assert_eq!(env, format!("<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\">{secpdu}</e2e>"));
/// assert_eq!(env_unwrap(&env, &Default::default()), Ok((SecPduKind::ReleaseRsp, secpdu)));
/// ```
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
/// [`secmms_e2e::xml::decode`] or the engine. The wrapper must be `<e2e>` in [`ENV_NS`] with
/// nothing but whitespace, comments and PIs besides one child element in the E2E_4 namespace.
/// DECISION §16.3: that child must declare the E2E_4 namespace on itself (as in the §16.3
/// example), so that it can be verified on its own. Only the wrapper is parsed here (the limits
/// `lim` apply to the SecPDU, with one more level and element for the wrapper); the SecPDU is
/// checked by the decoder.
pub fn env_unwrap<'t>(text: &'t str, lim: &XmlLimits) -> Result<(SecPduKind, &'t str), EnvError> {
    let wrap_lim = XmlLimits {
        max_depth: lim.max_depth.saturating_add(1),
        max_elements: lim.max_elements.saturating_add(1),
        ..*lim
    };
    let mut p = Scanner::new(text, ENV_NS, wrap_lim)?;
    p.skip_ws()?;
    match p.next_node()? {
        Node::Open { name, ns, .. } if name == ENV_ELEMENT && ns == Ns::Outer => {}
        _ => return Err(EnvError::Namespace),
    }
    p.skip_ws()?;
    let (kind, start) = match p.next_node()? {
        Node::Open {
            name,
            ns,
            start,
            declares_e2e,
            ..
        } => {
            let kind = kind_of(&name)
                .filter(|_| ns == Ns::E2e)
                .ok_or(EnvError::Content)?;
            if !declares_e2e {
                return Err(EnvError::NamespaceNotOnSecPdu);
            }
            (kind, start)
        }
        _ => return Err(EnvError::Content),
    };
    let end = p.skip_rest()?;
    p.skip_ws()?;
    match p.next_node()? {
        Node::Close { .. } => {}
        _ => return Err(EnvError::Content),
    }
    p.finish()?;
    let inner = text.get(start..end).ok_or(EnvError::Content)?;
    Ok((kind, inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmms_e2e::xml::E2E_NS;

    const ABORT: &str =
        "<DtSecAbort xmlns=\"http://www.iec.ch/62351/2018/E2E_4\"><tbs/></DtSecAbort>";

    fn lim() -> XmlLimits {
        XmlLimits::default()
    }

    #[test]
    fn env_wrapper() {
        let s = ABORT;
        let w = env_wrap(s);
        assert_eq!(env_unwrap(&w, &lim()).unwrap(), (SecPduKind::DtSecAbort, s));
        let spaced = format!("<e2e xmlns=\"{ENV_NS}\">\n  {s}\n</e2e>");
        assert_eq!(env_unwrap(&spaced, &lim()).unwrap().1, s);
        let wrong_ns = w.replace(ENV_NS, "urn:x");
        assert_eq!(env_unwrap(&wrong_ns, &lim()), Err(EnvError::Namespace));
        let two = env_wrap(&format!("{s}{s}"));
        assert_eq!(env_unwrap(&two, &lim()), Err(EnvError::Content));
        let none = env_wrap("");
        assert_eq!(env_unwrap(&none, &lim()), Err(EnvError::Content));
        let unknown = env_wrap(&s.replace("DtSecAbort", "Other"));
        assert_eq!(env_unwrap(&unknown, &lim()), Err(EnvError::Content));
        let inherited = format!(
            "<e2e xmlns=\"{ENV_NS}\" xmlns:s=\"{E2E_NS}\">{}</e2e>",
            s.replace(
                "<DtSecAbort xmlns=\"http://www.iec.ch/62351/2018/E2E_4\">",
                "<s:DtSecAbort>"
            )
            .replace("</DtSecAbort>", "</s:DtSecAbort>")
        );
        assert_eq!(
            env_unwrap(&inherited, &lim()),
            Err(EnvError::NamespaceNotOnSecPdu)
        );
    }

    #[test]
    fn the_reader_errors_and_limits_pass_through() {
        let w = env_wrap(ABORT);
        // The wrapper is one level and one element on top of the SecPDU's limits.
        let tight = XmlLimits {
            max_depth: 2,
            max_elements: 2,
            ..lim()
        };
        assert_eq!(env_unwrap(&w, &tight).unwrap().1, ABORT);
        let tighter = XmlLimits {
            max_depth: 1,
            ..tight
        };
        assert_eq!(
            env_unwrap(&w, &tighter),
            Err(EnvError::Xml(XmlError::TooDeep))
        );
        let short = XmlLimits {
            max_len: w.len() - 1,
            ..lim()
        };
        assert_eq!(
            env_unwrap(&w, &short),
            Err(EnvError::Xml(XmlError::TooLarge(w.len())))
        );
        let attr = w.replacen("<e2e ", "<e2e id=\"1\" ", 1);
        assert_eq!(
            env_unwrap(&attr, &lim()),
            Err(EnvError::Xml(XmlError::Attribute(0)))
        );
        let trailing = format!("{w}<x/>");
        assert!(matches!(
            env_unwrap(&trailing, &lim()),
            Err(EnvError::Xml(XmlError::UnexpectedElement(_)))
        ));
        // The error text is the reader's own.
        assert_eq!(
            EnvError::from(XmlError::TooDeep).to_string(),
            XmlError::TooDeep.to_string()
        );
    }
}
