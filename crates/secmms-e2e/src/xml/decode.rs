//! The decoder entry points: a SecPDU from its XML text, of an expected kind, or from octets
//! that must be UTF-8.

use super::*;

/// Decodes one SecPDU element (the kind is given by its name). Its covered fields hold the
/// characters exactly as received.
pub fn decode(text: &str, lim: &XmlLimits) -> XResult<SecPdu> {
    let mut p = Parser::new(text, *lim)?;
    p.skip_ws()?;
    let kind = match p.next()? {
        Node::Open {
            name, ns, start, ..
        } => {
            let kind = kind_of(&name).ok_or(XmlError::UnknownSecPdu)?;
            if ns != Ns::E2e {
                return Err(XmlError::Namespace(start));
            }
            kind
        }
        _ => return Err(XmlError::UnknownSecPdu),
    };
    let pdu = match kind {
        SecPduKind::HandshakeReq => SecPdu::HandshakeReq(p.handshake(text)?),
        SecPduKind::HandshakeAcc => SecPdu::HandshakeAcc(p.handshake(text)?),
        SecPduKind::ClearTransfer => SecPdu::ClearTransfer(p.transfer(false, text)?),
        SecPduKind::EncrTransfer => SecPdu::EncrTransfer(p.transfer(true, text)?),
        k => {
            let t = p.token3_pdu(k, text)?;
            match k {
                SecPduKind::ApplicationReject => SecPdu::ApplicationReject(t),
                SecPduKind::HandshakeSecReject => SecPdu::HandshakeSecReject(t),
                SecPduKind::HandshakeSecAbort => SecPdu::HandshakeSecAbort(t),
                SecPduKind::DtSecAbort => SecPdu::DtSecAbort(t),
                SecPduKind::ApplAbort => SecPdu::ApplAbort(t),
                SecPduKind::ReleaseReq => SecPdu::ReleaseReq(t),
                _ => SecPdu::ReleaseRsp(t),
            }
        }
    };
    p.close()?;
    p.finish()?;
    Ok(pdu)
}

/// [`decode`] for a kind announced by the environment (a different root element is
/// [`XmlError::KindMismatch`]).
pub fn decode_as(kind: SecPduKind, text: &str, lim: &XmlLimits) -> XResult<SecPdu> {
    let pdu = decode(text, lim)?;
    if pdu.kind() != kind {
        return Err(XmlError::KindMismatch {
            expected: kind,
            found: pdu.kind(),
        });
    }
    Ok(pdu)
}

/// [`decode_as`] over octets (the engine's input); they must be UTF-8.
pub fn decode_octets(kind: SecPduKind, bytes: &[u8], lim: &XmlLimits) -> XResult<SecPdu> {
    if bytes.len() > lim.max_len {
        return Err(XmlError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    decode_as(kind, text, lim)
}
