//! E2E security in the XMPP operational environment (IEC 62351-4 clause 16), sans-IO: which
//! stanza carries which SecPDU (§16.2), the ENV_4 wrapper around the XML SecPDU (§16.3,
//! [`envelope`]; the SecPDU codec is [`secmms_e2e::xml`]), the checks on what arrives and the stanza errors they call for (§16.4),
//! and the group-18 security events. The XMPP connection itself and the association table live
//! in the runtime.
//!
//! ```
//! use secmms_profiles::xmpp::{placement, stanza, IqType, Placement};
//! use secmms_e2e::SecPduKind;
//! // A protected Read request travels in an iq of type get.
//! let read_request = [0xa0, 0x05, 0x02, 0x01, 0x07, 0xa4, 0x00];
//! assert_eq!(placement(SecPduKind::EncrTransfer, Some(&read_request)), Placement::Iq(IqType::Get));
//! let s = stanza(Placement::Iq(IqType::Get), "r7", "ied1@example.org/IEC", "<e2e/>");
//! assert!(s.starts_with("<iq type='get' id='r7' to='ied1@example.org/IEC'>"));
//! ```

use secmms_e2e::SecPduKind;
use secmms_pki::event::{EventId, SecurityEvent, Severity};

pub use secmms_e2e::limits::XmlLimits;

pub mod endpoint;
pub mod envelope;
pub use endpoint::{AssocKey, EndpointError, EndpointEvent, XmppEndpoint};
pub use envelope::{env_unwrap, env_wrap, EnvError, ENV_ELEMENT, ENV_NS};

/// Type of an `iq` stanza (RFC 6120 §8.2.3): the XMPP transport's, which writes the stanzas.
pub use secmms_xmpp::stream::write::IqType;

/// Which stanza carries a SecPDU (§16.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// An `iq` of this type.
    Iq(IqType),
    /// A `message` of type `normal` (no answer expected).
    Message,
}

/// DECISION (§16.2): the `type` of the `message` stanzas that carry SecPDUs.
pub const MESSAGE_TYPE: &str = "normal";

/// The stanza a SecPDU of `kind` travels in (§16.2 DECISION table). For ClearTransfer and
/// EncrTransfer it depends on the protected MMS PDU (`pr_pdu`, its BER octets before protection
/// or after decryption): a confirmed request goes in `iq get` (read-like services) or `iq set`
/// (services that change state), a confirmed response or error (and cancel responses) in
/// `iq result`, an unconfirmed PDU or a reject in a `message`.
pub fn placement(kind: SecPduKind, pr_pdu: Option<&[u8]>) -> Placement {
    use SecPduKind::*;
    match kind {
        HandshakeReq | ReleaseReq => Placement::Iq(IqType::Set),
        HandshakeAcc | ApplicationReject | HandshakeSecReject | ReleaseRsp => {
            Placement::Iq(IqType::Result)
        }
        HandshakeSecAbort | DtSecAbort | ApplAbort => Placement::Message,
        ClearTransfer | EncrTransfer => match pr_pdu.map(mms_class) {
            Some(MmsClass::ReadRequest) => Placement::Iq(IqType::Get),
            Some(MmsClass::ChangeRequest) => Placement::Iq(IqType::Set),
            Some(MmsClass::Answer) => Placement::Iq(IqType::Result),
            Some(MmsClass::Unconfirmed) | None => Placement::Message,
        },
    }
}

/// What an MMS PDU is, for the stanza mapping of §16.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MmsClass {
    /// A confirmed request of a service that only reads (status, getNameList, identify, read,
    /// getVariableAccessAttributes, getNamedVariableListAttributes, …).
    ReadRequest,
    /// A confirmed request that changes state (write, define/delete lists, …), or a cancel
    /// request or conclude request.
    ChangeRequest,
    /// A confirmed response or error, a cancel response or error, a conclude response.
    Answer,
    /// An unconfirmed PDU (InformationReport), a rejectPDU, or anything unknown.
    Unconfirmed,
}

/// ConfirmedServiceRequest tags of services that only read (ISO 9506-2): status 0,
/// getNameList 1, identify 2, read 4, getVariableAccessAttributes 6,
/// getNamedVariableListAttributes 12. Every other service is taken as changing state.
const READ_SERVICES: &[u8] = &[0, 1, 2, 4, 6, 12];

/// Classifies an MMS PDU from its first octets (no full decode: the tag of the PDU and, for a
/// confirmed request, the tag of its service after the invokeID).
pub fn mms_class(pdu: &[u8]) -> MmsClass {
    match pdu.first() {
        Some(0xa0) => {
            // confirmed-RequestPDU: [0] { invokeID INTEGER, service CHOICE }.
            let svc = confirmed_service_tag(pdu);
            match svc {
                Some(n) if READ_SERVICES.contains(&n) => MmsClass::ReadRequest,
                Some(_) => MmsClass::ChangeRequest,
                None => MmsClass::Unconfirmed,
            }
        }
        Some(0xa1) | Some(0xa2) | Some(0x86) | Some(0xa7) | Some(0x8c) | Some(0xac) => {
            MmsClass::Answer
        }
        Some(0x85) | Some(0x8b) => MmsClass::ChangeRequest,
        _ => MmsClass::Unconfirmed,
    }
}

/// The context tag number of the service of a confirmed-RequestPDU, if it can be read.
fn confirmed_service_tag(pdu: &[u8]) -> Option<u8> {
    let mut r = secmms_ber::Reader::new(pdu, secmms_ber::Limits::default());
    let outer = r.read().ok()?;
    let mut c = outer.children().ok()?;
    let _invoke = c.read().ok()?;
    let svc = c.read().ok()?;
    let t = svc.tag();
    (t.class == secmms_ber::Class::Context && t.number <= 255).then_some(t.number as u8)
}

/// An attribute value escaped for single quotes (the XML escaper the SecPDU codec uses).
pub(crate) fn escape_attr(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// The stanza carrying `env` (an ENV_4 element, see [`env_wrap`]) to `to` (a full JID).
pub fn stanza(p: Placement, id: &str, to: &str, env: &str) -> String {
    match p {
        Placement::Iq(t) => format!(
            "<iq type='{}' id='{}' to='{}'>{env}</iq>",
            t.as_str(),
            escape_attr(id),
            escape_attr(to)
        ),
        Placement::Message => format!(
            "<message type='{MESSAGE_TYPE}' id='{}' to='{}'>{env}</message>",
            escape_attr(id),
            escape_attr(to)
        ),
    }
}

/// Stanza error conditions of §16.4 (RFC 6120 §8.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaError {
    /// `bad-request` (type modify): unknown SecPDU element or malformed XML in an iq.
    BadRequest,
    /// `feature-not-implemented` (type cancel): wrong ENV namespace.
    FeatureNotImplemented,
    /// `item-not-found` (type cancel): unknown assoID in a data-transfer iq.
    ItemNotFound,
    /// `unexpected-request` (type cancel): SecPDU not allowed in the current state.
    UnexpectedRequest,
    /// `service-unavailable` (type cancel): E2E service not offered.
    ServiceUnavailable,
    /// `resource-constraint` (type wait): too many requests outstanding.
    ResourceConstraint,
}

impl StanzaError {
    /// The defined-condition element name.
    pub fn condition(self) -> &'static str {
        match self {
            StanzaError::BadRequest => "bad-request",
            StanzaError::FeatureNotImplemented => "feature-not-implemented",
            StanzaError::ItemNotFound => "item-not-found",
            StanzaError::UnexpectedRequest => "unexpected-request",
            StanzaError::ServiceUnavailable => "service-unavailable",
            StanzaError::ResourceConstraint => "resource-constraint",
        }
    }

    /// The error `type` attribute.
    pub fn error_type(self) -> &'static str {
        match self {
            StanzaError::BadRequest => "modify",
            StanzaError::ResourceConstraint => "wait",
            _ => "cancel",
        }
    }

    /// The `iq type='error'` answering an iq with id `id` from `to`.
    pub fn reply(self, id: &str, to: &str) -> String {
        format!(
            "<iq type='error' id='{}' to='{}'><error type='{}'><{} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            escape_attr(id),
            escape_attr(to),
            self.error_type(),
            self.condition()
        )
    }
}

/// Group of the XMPP-environment events (spec §16.2, IEC 62351-14 group 18).
pub const GROUP_XMPP_ENVIRONMENT: u16 = 18;

/// One group-18 event definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XmppEvent {
    /// Catalogue id (`IEC62351-4:18.n`).
    pub id: EventId,
    /// Mnemonic.
    pub mnemonic: &'static str,
    /// Severity (DECISION: error; the catalogue's severities were not captured).
    pub severity: Severity,
}

impl XmppEvent {
    /// Builds the event with `message` about association `asso`.
    pub fn event(&self, message: impl Into<String>, asso: Option<&str>) -> SecurityEvent {
        SecurityEvent {
            id: self.id,
            mnemonic: self.mnemonic,
            severity: self.severity,
            message: message.into(),
            association: asso.map(str::to_string),
        }
    }
}

const fn ev(n: u16, mnemonic: &'static str) -> XmppEvent {
    XmppEvent {
        id: EventId::e2e(GROUP_XMPP_ENVIRONMENT, n),
        mnemonic,
        severity: Severity::Error,
    }
}

/// 18.1 — a SecPDU that must travel in an iq arrived otherwise.
pub const XMPP_IQ_MISSING: XmppEvent = ev(1, "XMPP_IQ_MISSING");
/// 18.2 — a SecPDU that must travel in a message arrived otherwise.
pub const XMPP_MSG_MISSING: XmppEvent = ev(2, "XMPP_MSG_MISSING");
/// 18.3 — the environment element is not in the ENV_4 namespace.
pub const XMPP_ENV_NS_INV: XmppEvent = ev(3, "XMPP_ENV_NS_INV");
/// 18.4 — an iq carries an unknown or malformed SecPDU.
pub const XMPP_UNKNOWN_IQ_SECPDU: XmppEvent = ev(4, "XMPP_UNKNOW_IQ_SECPDU");
/// 18.5 — a message carries an unknown or malformed SecPDU.
pub const XMPP_UNKNOWN_MSG_SECPDU: XmppEvent = ev(5, "XMPP_UNKNOW_MSG_SECPDU");
/// 18.6 — the stanza `type` does not fit the SecPDU.
pub const XMPP_INVTYPE_SPEC: XmppEvent = ev(6, "XMPP_INVTYPE_SPEC");

/// Every group-18 event (for documentation and the id-uniqueness test).
pub const ALL: [XmppEvent; 6] = [
    XMPP_IQ_MISSING,
    XMPP_MSG_MISSING,
    XMPP_ENV_NS_INV,
    XMPP_UNKNOWN_IQ_SECPDU,
    XMPP_UNKNOWN_MSG_SECPDU,
    XMPP_INVTYPE_SPEC,
];

/// The stanza kinds that can carry a SecPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    /// `<iq>` with its type attribute.
    Iq(IqType),
    /// `<message>` (any type).
    Message,
}

/// Why an arriving stanza was not accepted as a SecPDU carrier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", .event.mnemonic, .detail)]
pub struct EnvFailure {
    /// The group-18 event to raise.
    pub event: XmppEvent,
    /// The stanza error to answer with (iq get/set only; §16.4: messages are never answered).
    pub reply: Option<StanzaError>,
    /// What was wrong.
    pub detail: String,
}

/// A SecPDU taken out of a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<'t> {
    /// Its kind (from the element name).
    pub kind: SecPduKind,
    /// Its XML text (the E2E_4 element, as it arrived), for the engine.
    pub secpdu: &'t str,
}

/// Takes the SecPDU out of the ENV_4 element `env` (the raw text of the stanza's child) that
/// arrived in a stanza of kind `kind`, and checks the stanza fits it (§16.2, §16.4). The MMS
/// class of a transfer is only known after decryption: check it with [`check_transfer_class`].
pub fn receive<'t>(
    kind: StanzaKind,
    env: &'t str,
    limits: &XmlLimits,
) -> Result<Received<'t>, EnvFailure> {
    let in_iq = matches!(kind, StanzaKind::Iq(_));
    let answerable = matches!(kind, StanzaKind::Iq(IqType::Get | IqType::Set));
    let fail = |event: XmppEvent, err: Option<StanzaError>, detail: String| EnvFailure {
        event,
        reply: if answerable { err } else { None },
        detail,
    };
    let (pdu_kind, secpdu) = env_unwrap(env, limits).map_err(|e| match e {
        EnvError::Namespace => fail(
            XMPP_ENV_NS_INV,
            Some(StanzaError::FeatureNotImplemented),
            e.to_string(),
        ),
        e => fail(
            if in_iq {
                XMPP_UNKNOWN_IQ_SECPDU
            } else {
                XMPP_UNKNOWN_MSG_SECPDU
            },
            Some(StanzaError::BadRequest),
            e.to_string(),
        ),
    })?;
    let want = placement(pdu_kind, None);
    let ok = match (want, kind) {
        (Placement::Message, StanzaKind::Message) => true,
        (Placement::Message, StanzaKind::Iq(_)) => {
            // Transfers carry requests and answers in iqs; their class is checked after
            // decryption.
            matches!(
                pdu_kind,
                SecPduKind::ClearTransfer | SecPduKind::EncrTransfer
            )
        }
        (Placement::Iq(t), StanzaKind::Iq(u)) => t == u,
        (Placement::Iq(_), StanzaKind::Message) => false,
    };
    if !ok {
        let event = match (want, kind) {
            (Placement::Iq(_), StanzaKind::Message) => XMPP_IQ_MISSING,
            (Placement::Message, StanzaKind::Iq(_)) => XMPP_MSG_MISSING,
            _ => XMPP_INVTYPE_SPEC,
        };
        return Err(fail(
            event,
            Some(StanzaError::BadRequest),
            format!("{pdu_kind:?} in {kind:?}"),
        ));
    }
    Ok(Received {
        kind: pdu_kind,
        secpdu,
    })
}

/// After a transfer was verified (and decrypted): whether the stanza that carried it fits the
/// protected MMS PDU (§16.2). A mismatch is [`XMPP_INVTYPE_SPEC`] (or 18.1/18.2).
pub fn check_transfer_class(kind: StanzaKind, pr_pdu: &[u8]) -> Result<(), EnvFailure> {
    let want = placement(SecPduKind::EncrTransfer, Some(pr_pdu));
    let (ok, event) = match (want, kind) {
        (Placement::Message, StanzaKind::Message) => (true, XMPP_INVTYPE_SPEC),
        (Placement::Iq(t), StanzaKind::Iq(u)) => (t == u, XMPP_INVTYPE_SPEC),
        (Placement::Iq(_), StanzaKind::Message) => (false, XMPP_IQ_MISSING),
        (Placement::Message, StanzaKind::Iq(_)) => (false, XMPP_MSG_MISSING),
    };
    if ok {
        Ok(())
    } else {
        Err(EnvFailure {
            event,
            reply: None,
            detail: format!("protected MMS PDU belongs in {want:?}, arrived in {kind:?}"),
        })
    }
}

/// What a side does when a ReleaseReq crosses its own (§16.5 release collision DECISION,
/// mirroring X.227): the association initiator answers at once; the responder first waits for
/// the initiator's ReleaseRsp, then answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollisionStep {
    /// Send ReleaseRsp now.
    AnswerNow,
    /// Wait for the peer's ReleaseRsp, then send ours.
    AnswerAfterPeer,
}

/// The release-collision rule for the association initiator (`true`) or responder.
pub fn release_collision(initiator: bool) -> CollisionStep {
    if initiator {
        CollisionStep::AnswerNow
    } else {
        CollisionStep::AnswerAfterPeer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmms_e2e::pdu::SecPduKind::*;

    #[test]
    fn placement_follows_the_table() {
        assert_eq!(placement(HandshakeReq, None), Placement::Iq(IqType::Set));
        assert_eq!(placement(HandshakeAcc, None), Placement::Iq(IqType::Result));
        assert_eq!(
            placement(HandshakeSecReject, None),
            Placement::Iq(IqType::Result)
        );
        assert_eq!(placement(ReleaseReq, None), Placement::Iq(IqType::Set));
        assert_eq!(placement(ReleaseRsp, None), Placement::Iq(IqType::Result));
        for k in [HandshakeSecAbort, DtSecAbort, ApplAbort] {
            assert_eq!(placement(k, None), Placement::Message);
        }
        // Read request (service read [4]) → get; write [5] → set; response → result.
        let read = [0xa0, 0x05, 0x02, 0x01, 0x07, 0xa4, 0x00];
        let write = [0xa0, 0x05, 0x02, 0x01, 0x07, 0xa5, 0x00];
        let identify = [0xa0, 0x05, 0x02, 0x01, 0x07, 0x82, 0x00];
        let response = [0xa1, 0x05, 0x02, 0x01, 0x07, 0xa4, 0x00];
        let error = [0xa2, 0x03, 0x80, 0x01, 0x07];
        let report = [0xa3, 0x02, 0xa0, 0x00];
        let reject = [0xa4, 0x00];
        assert_eq!(
            placement(EncrTransfer, Some(&read)),
            Placement::Iq(IqType::Get)
        );
        assert_eq!(
            placement(ClearTransfer, Some(&identify)),
            Placement::Iq(IqType::Get)
        );
        assert_eq!(
            placement(EncrTransfer, Some(&write)),
            Placement::Iq(IqType::Set)
        );
        assert_eq!(
            placement(EncrTransfer, Some(&response)),
            Placement::Iq(IqType::Result)
        );
        assert_eq!(
            placement(EncrTransfer, Some(&error)),
            Placement::Iq(IqType::Result)
        );
        assert_eq!(placement(EncrTransfer, Some(&report)), Placement::Message);
        assert_eq!(placement(EncrTransfer, Some(&reject)), Placement::Message);
        assert_eq!(placement(EncrTransfer, Some(&[])), Placement::Message);
        assert_eq!(
            placement(EncrTransfer, Some(&[0xa0, 0xff])),
            Placement::Message
        );
    }

    #[test]
    fn stanzas_are_built_and_escaped() {
        let s = stanza(Placement::Message, "a'1", "x@y/IEC", "<e2e/>");
        assert_eq!(
            s,
            "<message type='normal' id='a&apos;1' to='x@y/IEC'><e2e/></message>"
        );
        let e = StanzaError::ItemNotFound.reply("q1", "a@b/c");
        assert!(e.contains("type='error'") && e.contains("<item-not-found "));
        assert!(e.contains("<error type='cancel'>"));
        assert_eq!(StanzaError::BadRequest.error_type(), "modify");
    }

    #[test]
    fn wrong_namespace_and_garbage_are_refused_with_their_events() {
        let lim = XmlLimits::default();
        let e = receive(
            StanzaKind::Iq(IqType::Set),
            "<e2e xmlns='urn:other'><HandshakeReq/></e2e>",
            &lim,
        )
        .unwrap_err();
        assert_eq!(e.event, XMPP_ENV_NS_INV);
        assert_eq!(e.event.mnemonic, "XMPP_ENV_NS_INV");
        assert_eq!(e.reply, Some(StanzaError::FeatureNotImplemented));
        let e = receive(StanzaKind::Iq(IqType::Get), "<e2e xmlns='http://www.iec.ch/62351/2018/ENV_4'><Nonsense xmlns='http://www.iec.ch/62351/2018/E2E_4'/></e2e>", &lim).unwrap_err();
        assert_eq!(e.event, XMPP_UNKNOWN_IQ_SECPDU);
        assert_eq!(e.reply, Some(StanzaError::BadRequest));
        // The same in a message: event 18.5 and never a stanza error.
        let e = receive(StanzaKind::Message, "<e2e xmlns='http://www.iec.ch/62351/2018/ENV_4'><Nonsense xmlns='http://www.iec.ch/62351/2018/E2E_4'/></e2e>", &lim).unwrap_err();
        assert_eq!(e.event, XMPP_UNKNOWN_MSG_SECPDU);
        assert_eq!(e.event.mnemonic, "XMPP_UNKNOW_MSG_SECPDU");
        assert_eq!(e.reply, None);
        // A result iq is never answered with an error either.
        let e = receive(StanzaKind::Iq(IqType::Result), "<garbage", &lim).unwrap_err();
        assert_eq!(e.reply, None);
    }

    #[test]
    fn transfer_class_is_checked_after_decryption() {
        let read = [0xa0, 0x05, 0x02, 0x01, 0x07, 0xa4, 0x00];
        assert!(check_transfer_class(StanzaKind::Iq(IqType::Get), &read).is_ok());
        let e = check_transfer_class(StanzaKind::Iq(IqType::Set), &read).unwrap_err();
        assert_eq!(e.event, XMPP_INVTYPE_SPEC);
        let e = check_transfer_class(StanzaKind::Message, &read).unwrap_err();
        assert_eq!(e.event, XMPP_IQ_MISSING);
        let report = [0xa3, 0x02, 0xa0, 0x00];
        let e = check_transfer_class(StanzaKind::Iq(IqType::Result), &report).unwrap_err();
        assert_eq!(e.event, XMPP_MSG_MISSING);
        assert_eq!(e.event.mnemonic, "XMPP_MSG_MISSING");
    }

    #[test]
    fn real_secpdus_come_out_of_their_stanzas() {
        use secmms_e2e::{E2eClient, E2eServer, Output, TimeStamp, WireEncoding};
        use std::sync::Arc;
        let (mut cctx, mut sctx) = secmms_e2e::doc_support::demo_contexts();
        for ctx in [&mut cctx, &mut sctx] {
            let mut c = (*ctx.config).clone();
            c.encoding = WireEncoding::Xml;
            ctx.config = Arc::new(c);
        }
        let now = TimeStamp::from_unix_secs(1_750_000_000);
        let mut client = E2eClient::new(cctx, Box::new(secmms_pki::crypto::OsRandom), 1);
        let mut server = E2eServer::new(sctx, Box::new(secmms_pki::crypto::OsRandom), 7);
        let lim = XmlLimits::default();
        let req = client.handshake_req(Some(&[0xa8, 0x00]), now).unwrap();
        let env = env_wrap(std::str::from_utf8(&req).unwrap());
        let st = stanza(
            placement(HandshakeReq, None),
            "h1",
            "ied@example.org/IEC",
            &env,
        );
        assert!(st.starts_with("<iq type='set'"));
        let r = receive(StanzaKind::Iq(IqType::Set), &env, &lim).unwrap();
        assert_eq!(r.kind, HandshakeReq);
        let out = server.receive(r.kind, r.secpdu.as_bytes(), now).unwrap();
        assert!(matches!(out, Output::HandshakeRequested { .. }));
        // The same HandshakeReq in a message, or in an iq of type get: refused.
        let e = receive(StanzaKind::Message, &env, &lim).unwrap_err();
        assert_eq!(e.event, XMPP_IQ_MISSING);
        let e = receive(StanzaKind::Iq(IqType::Get), &env, &lim).unwrap_err();
        assert_eq!(e.event, XMPP_INVTYPE_SPEC);
        assert_eq!(e.reply, Some(StanzaError::BadRequest));
        // HandshakeAcc in an iq result, then a protected read request in an iq get.
        let acc = server.accept(Some(&[0xa9, 0x00]), now).unwrap();
        let env = env_wrap(std::str::from_utf8(&acc).unwrap());
        let r = receive(StanzaKind::Iq(IqType::Result), &env, &lim).unwrap();
        client.receive(r.kind, r.secpdu.as_bytes(), now).unwrap();
        let read = [0xa0, 0x05, 0x02, 0x01, 0x07, 0xa4, 0x00];
        let (kind, pdu) = client.protect(&read, now).unwrap();
        assert_eq!(placement(kind, Some(&read)), Placement::Iq(IqType::Get));
        let env = env_wrap(std::str::from_utf8(&pdu).unwrap());
        let r = receive(StanzaKind::Iq(IqType::Get), &env, &lim).unwrap();
        match server.receive(r.kind, r.secpdu.as_bytes(), now).unwrap() {
            Output::Data(p) => {
                assert_eq!(&p[..], &read[..]);
                assert!(check_transfer_class(StanzaKind::Iq(IqType::Get), &p).is_ok());
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn collision_rule() {
        assert_eq!(release_collision(true), CollisionStep::AnswerNow);
        assert_eq!(release_collision(false), CollisionStep::AnswerAfterPeer);
    }
}
