//! One XMPP endpoint's E2E associations (clause 16), sans-IO: it turns MMS PDUs of the
//! application into stanzas and arriving stanzas into application events, running one E2E
//! engine (XML encoding) per association. Associations are told apart by the peer's bare JID and
//! the client part of the assoID (§16.5), so several may run between the same two JIDs.
//!
//! The runtime feeds every arriving stanza to [`XmppEndpoint::handle`] and writes every stanza
//! the endpoint returns to the XMPP connection.

use std::collections::HashMap;
use std::sync::Arc;

use secmms_e2e::pdu::SecPdu;
use secmms_e2e::{
    xml, Context, E2eClient, E2eEngine as Engine, E2eError, E2eServer, Output, SecPduKind, State,
    WireEncoding,
};
use secmms_pki::crypto::{OsRandom, RandomSource};
use secmms_pki::event::{SecurityEvent, SecurityEventSink};
use secmms_pki::PeerIdentity;

use super::{
    check_transfer_class, env_wrap, mms_class, placement, receive, stanza, IqType, MmsClass,
    Placement, StanzaError, StanzaKind, XmlLimits,
};

/// Identifies an association: the peer's bare JID and the client part of the assoID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssocKey {
    /// The peer's bare JID (`user@domain`).
    pub peer: String,
    /// The client part `c` of the assoID.
    pub client_part: String,
}

/// The bare JID of a (full) JID.
pub fn bare_jid(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

/// What the application learns from arriving stanzas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// Server: a verified HandshakeReq; answer with [`XmppEndpoint::accept`] or
    /// [`XmppEndpoint::reject`].
    AssociateIndication {
        /// The association.
        key: AssocKey,
        /// The MMS Initiate-RequestPDU.
        initiate: Vec<u8>,
    },
    /// Client: the association is established.
    Established {
        /// The association.
        key: AssocKey,
        /// The MMS Initiate-ResponsePDU.
        initiate: Vec<u8>,
    },
    /// Client: the server refused (application or security reject).
    Rejected {
        /// The association.
        key: AssocKey,
        /// Why, in words.
        reason: String,
        /// The MMS Initiate-ErrorPDU, when the application refused.
        initiate_error: Option<Vec<u8>>,
    },
    /// A protected MMS PDU.
    Data {
        /// The association.
        key: AssocKey,
        /// The MMS PDU.
        pdu: Vec<u8>,
    },
    /// The peer asks to release; answer with [`XmppEndpoint::release_response`].
    ReleaseIndication {
        /// The association.
        key: AssocKey,
        /// The MMS Conclude-RequestPDU.
        conclude: Option<Vec<u8>>,
    },
    /// The release completed.
    Released {
        /// The association.
        key: AssocKey,
    },
    /// The association ended abnormally (abort received, a check failed, stanza error).
    Aborted {
        /// The association.
        key: AssocKey,
        /// What happened.
        reason: String,
    },
}

/// Errors of the endpoint API.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// No such association (ended or never existed).
    #[error("no association {0:?}")]
    Unknown(AssocKey),
    /// The E2E engine refused the call.
    #[error(transparent)]
    Engine(#[from] E2eError),
    /// No more association numbers (999 per endpoint at once, §13.3.1.1).
    #[error("no free association number")]
    Exhausted,
    /// The engine produced something that is not UTF-8 XML (configuration error).
    #[error("the engine is not in XML mode")]
    NotXml,
    /// The E2E engine aborted the association while serving the call (for example the
    /// client's rekey timeout found by [`XmppEndpoint::send`]). The association is gone, its
    /// security events are recorded; `stanzas` (the DtSecAbort message) must still be sent.
    #[error("association {key:?} aborted: {reason}")]
    Aborted {
        /// The association that ended.
        key: AssocKey,
        /// What happened.
        reason: String,
        /// The stanzas to send to the peer.
        stanzas: Vec<String>,
    },
}

struct Assoc {
    peer_full: String,
    engine: Engine,
    /// iq ids of the peer's requests, by MMS invokeID, to answer in an iq result.
    pending: HashMap<u32, String>,
    /// iq id of the HandshakeReq (server) or ReleaseReq to answer.
    answer_id: Option<String>,
    /// Server in a release collision: our ReleaseRsp, held until the client's arrives.
    held_release_rsp: Option<String>,
}

/// The E2E associations of one XMPP endpoint.
pub struct XmppEndpoint {
    server: bool,
    ctx: Context,
    sink: Arc<dyn SecurityEventSink>,
    limits: XmlLimits,
    assocs: HashMap<AssocKey, Assoc>,
    /// Our outgoing iq ids (requests) → the association and the full JID it went to, to route
    /// stanza errors (only from that JID).
    sent_iqs: HashMap<String, (AssocKey, String)>,
    next_num: u16,
    next_id: u64,
}

impl std::fmt::Debug for XmppEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppEndpoint")
            .field("server", &self.server)
            .field("associations", &self.assocs.len())
            .finish_non_exhaustive()
    }
}

/// Most iq ids remembered for routing stanza errors; entries leave when answered or when their
/// association ends.
pub const MAX_PENDING_IQS: usize = 65_536;
/// Most requests of one peer association awaiting our answer (the peer's outstanding requests;
/// MMS negotiates far fewer). Further requests are answered with `resource-constraint`.
pub const MAX_PENDING_PER_ASSOCIATION: usize = 1024;
/// Most associations an endpoint holds at once; a HandshakeReq beyond it is answered with
/// `service-unavailable`.
pub const MAX_ASSOCIATIONS: usize = 4096;
/// Longest iq `id` accepted from a peer (it is echoed in our answers).
pub const MAX_IQ_ID_LEN: usize = 256;

fn text(b: Vec<u8>) -> Result<String, EndpointError> {
    String::from_utf8(b).map_err(|_| EndpointError::NotXml)
}

/// The MMS invokeID of a confirmed request, response or error (first component).
fn invoke_id(pdu: &[u8]) -> Option<u32> {
    let mut r = secmms_ber::Reader::new(pdu, secmms_ber::Limits::default());
    let outer = r.read().ok()?;
    let mut c = outer.children().ok()?;
    let first = c.read().ok()?;
    first.as_u32().ok()
}

/// The originalInvokeID of a rejectPDU (`[4] { originalInvokeID [0] IMPLICIT Unsigned32
/// OPTIONAL, rejectReason CHOICE }`).
fn reject_invoke_id(pdu: &[u8]) -> Option<u32> {
    let mut r = secmms_ber::Reader::new(pdu, secmms_ber::Limits::default());
    let outer = r.read().ok()?;
    let mut c = outer.children().ok()?;
    let first = c.read().ok()?;
    (first.tag() == secmms_ber::Tag::context(0, false))
        .then(|| first.as_u32().ok())
        .flatten()
}

fn asso_client_part(pdu: &SecPdu) -> Option<String> {
    let id = match pdu {
        SecPdu::HandshakeReq(h) | SecPdu::HandshakeAcc(h) => Some(&h.token1.asso_id),
        SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t) => Some(&t.token2.asso_id),
        SecPdu::ApplicationReject(p)
        | SecPdu::HandshakeSecReject(p)
        | SecPdu::HandshakeSecAbort(p)
        | SecPdu::DtSecAbort(p)
        | SecPdu::ApplAbort(p)
        | SecPdu::ReleaseReq(p)
        | SecPdu::ReleaseRsp(p) => p.token3.asso_id.as_ref(),
    }?;
    Some(id.client_part().to_string())
}

impl XmppEndpoint {
    /// An endpoint in the client (`server = false`) or server role. The engine configuration is
    /// switched to the XML encoding.
    pub fn new(mut ctx: Context, server: bool, sink: Arc<dyn SecurityEventSink>) -> Self {
        if ctx.config.encoding != WireEncoding::Xml {
            let mut c = (*ctx.config).clone();
            c.encoding = WireEncoding::Xml;
            ctx.config = Arc::new(c);
        }
        let limits = XmlLimits::from_ber(ctx.config.limits);
        XmppEndpoint {
            server,
            ctx,
            sink,
            limits,
            assocs: HashMap::new(),
            sent_iqs: HashMap::new(),
            next_num: 1,
            next_id: 1,
        }
    }

    /// The associations open now.
    pub fn associations(&self) -> Vec<AssocKey> {
        let mut v: Vec<_> = self.assocs.keys().cloned().collect();
        v.sort();
        v
    }

    fn new_id(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}{}", self.next_id);
        self.next_id += 1;
        id
    }

    fn rng(&self) -> Box<dyn RandomSource> {
        Box::new(OsRandom)
    }

    fn flush_events(&self, a: &mut Assoc) {
        for e in a.engine.take_events() {
            self.sink.record(&e);
        }
    }

    fn remember_iq(&mut self, id: &str, key: &AssocKey, to: &str) {
        if self.sent_iqs.len() < MAX_PENDING_IQS {
            self.sent_iqs
                .insert(id.to_string(), (key.clone(), to.to_string()));
        }
    }

    /// Forgets what belongs to an association that ended.
    fn forget(&mut self, key: &AssocKey) {
        self.sent_iqs.retain(|_, (k, _)| k != key);
    }

    fn remove_assoc(&mut self, key: &AssocKey) -> Option<Assoc> {
        self.forget(key);
        self.assocs.remove(key)
    }

    /// An association (already out of the table) whose engine failed: records the engine's
    /// events and returns the reply SecPDU (DtSecAbort, …) as a stanza, if the failure has one.
    fn engine_abort(&mut self, key: &AssocKey, mut a: Assoc, e: &E2eError) -> Vec<String> {
        self.forget(key);
        self.flush_events(&mut a);
        let mut out = Vec::new();
        if let Some((k, pdu)) = e.rejection().and_then(|r| r.reply.clone()) {
            if let Ok(t) = String::from_utf8(pdu) {
                let id = self.new_id("a");
                out.push(stanza(placement(k, None), &id, &a.peer_full, &env_wrap(&t)));
            }
        }
        out
    }

    /// Client: opens an association with `peer` (a full JID) carrying the MMS
    /// Initiate-RequestPDU; returns its key and the stanza to send.
    pub fn associate(
        &mut self,
        peer: &str,
        initiate: &[u8],
        now: secmms_e2e::TimeStamp,
    ) -> Result<(AssocKey, Vec<String>), EndpointError> {
        // A free client number for this peer (1..=999).
        let bare = bare_jid(peer).to_string();
        let mut num = None;
        for _ in 0..999 {
            let n = self.next_num;
            self.next_num = if self.next_num >= 999 {
                1
            } else {
                self.next_num + 1
            };
            let key = AssocKey {
                peer: bare.clone(),
                client_part: n.to_string(),
            };
            if !self.assocs.contains_key(&key) {
                num = Some(n);
                break;
            }
        }
        let n = num.ok_or(EndpointError::Exhausted)?;
        let mut c = E2eClient::new(self.ctx.clone(), self.rng(), n);
        c.set_expected_peer(Some(PeerIdentity::Jid(bare.clone())));
        let req = text(c.handshake_req(Some(initiate), now)?)?;
        let key = AssocKey {
            peer: bare,
            client_part: c
                .asso_id()
                .map(|a| a.client_part().to_string())
                .unwrap_or_else(|| n.to_string()),
        };
        let id = self.new_id("h");
        let out = stanza(
            placement(SecPduKind::HandshakeReq, None),
            &id,
            peer,
            &env_wrap(&req),
        );
        self.remember_iq(&id, &key, peer);
        let mut a = Assoc {
            peer_full: peer.to_string(),
            engine: Engine::Client(c),
            pending: HashMap::new(),
            answer_id: None,
            held_release_rsp: None,
        };
        self.flush_events(&mut a);
        self.assocs.insert(key.clone(), a);
        Ok((key, vec![out]))
    }

    fn with<'s>(&'s mut self, key: &AssocKey) -> Result<&'s mut Assoc, EndpointError> {
        self.assocs
            .get_mut(key)
            .ok_or_else(|| EndpointError::Unknown(key.clone()))
    }

    /// Server: accepts the indicated association with the MMS Initiate-ResponsePDU.
    pub fn accept(
        &mut self,
        key: &AssocKey,
        initiate: &[u8],
        now: secmms_e2e::TimeStamp,
    ) -> Result<Vec<String>, EndpointError> {
        let a = self.with(key)?;
        let Engine::Server(s) = &mut a.engine else {
            return Err(E2eError::State(a.engine.state()).into());
        };
        let acc = text(s.accept(Some(initiate), now)?)?;
        let id = a.answer_id.take().unwrap_or_default();
        let out = stanza(
            Placement::Iq(IqType::Result),
            &id,
            &a.peer_full,
            &env_wrap(&acc),
        );
        let mut a = self
            .assocs
            .remove(key)
            .ok_or_else(|| EndpointError::Unknown(key.clone()))?;
        self.flush_events(&mut a);
        self.assocs.insert(key.clone(), a);
        Ok(vec![out])
    }

    /// The peer's application certificate (DER) once its HandshakeReq or HandshakeAcc verified.
    pub fn peer_certificate(&self, key: &AssocKey) -> Option<Vec<u8>> {
        let a = self.assocs.get(key)?;
        a.engine.peer_certificate()
    }

    /// Server: refuses the indicated association for a reason outside clause 14 (the runtime's
    /// OCSP lookup of the peer's certificate): a HandshakeSecReject with `diag` in the iq
    /// result, and `event` recorded.
    pub fn security_reject(
        &mut self,
        key: &AssocKey,
        diag: secmms_e2e::HandshakeDiagnostic,
        event: SecurityEvent,
        now: secmms_e2e::TimeStamp,
    ) -> Result<Vec<String>, EndpointError> {
        let out = self.refuse(key, now, |s, now| s.security_reject(diag, now))?;
        self.sink.record(&event);
        Ok(out)
    }

    /// Server: refuses the indicated association with the MMS Initiate-ErrorPDU
    /// (ApplicationReject).
    pub fn reject(
        &mut self,
        key: &AssocKey,
        initiate_error: &[u8],
        now: secmms_e2e::TimeStamp,
    ) -> Result<Vec<String>, EndpointError> {
        self.refuse(key, now, |s, now| s.appl_reject(initiate_error, now))
    }

    /// Ends the indicated server association with the refusing SecPDU `build` makes, sent in
    /// the iq result answering its HandshakeReq.
    fn refuse(
        &mut self,
        key: &AssocKey,
        now: secmms_e2e::TimeStamp,
        build: impl FnOnce(&mut E2eServer, secmms_e2e::TimeStamp) -> Result<Vec<u8>, E2eError>,
    ) -> Result<Vec<String>, EndpointError> {
        let mut a = self
            .remove_assoc(key)
            .ok_or_else(|| EndpointError::Unknown(key.clone()))?;
        let Engine::Server(s) = &mut a.engine else {
            return Err(E2eError::State(a.engine.state()).into());
        };
        let rej = text(build(s, now)?)?;
        let id = a.answer_id.take().unwrap_or_default();
        self.flush_events(&mut a);
        Ok(vec![stanza(
            Placement::Iq(IqType::Result),
            &id,
            &a.peer_full,
            &env_wrap(&rej),
        )])
    }

    /// Sends one MMS PDU on an established association: a request in a new iq get/set, a
    /// response or error in the iq result answering its request, an unconfirmed PDU in a
    /// message.
    pub fn send(
        &mut self,
        key: &AssocKey,
        pdu: &[u8],
        now: secmms_e2e::TimeStamp,
    ) -> Result<Vec<String>, EndpointError> {
        let id_new = self.new_id("d");
        let a = self.with(key)?;
        let (kind, secpdu) = match a.engine.protect(pdu, now) {
            Ok(x) => x,
            // The engine ended the association (the rekey timeout runs lazily here too): the
            // DtSecAbort goes out, the events are recorded, the association is gone.
            Err(e @ E2eError::Rejected(_)) => {
                let a = self
                    .assocs
                    .remove(key)
                    .ok_or_else(|| EndpointError::Unknown(key.clone()))?;
                let stanzas = self.engine_abort(key, a, &e);
                return Err(EndpointError::Aborted {
                    key: key.clone(),
                    reason: e.to_string(),
                    stanzas,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let env = env_wrap(&text(secpdu)?);
        let p = placement(kind, Some(pdu));
        let (id, remember) = match (p, mms_class(pdu)) {
            (Placement::Iq(IqType::Result), MmsClass::Answer) => {
                let id = invoke_id(pdu)
                    .and_then(|i| a.pending.remove(&i))
                    .unwrap_or_else(|| id_new.clone());
                (id, false)
            }
            (Placement::Iq(_), _) => (id_new, true),
            (Placement::Message, _) => (id_new, false),
        };
        let mut extra = Vec::new();
        // A rejectPDU travels in a message (§16.2); the iq that carried the rejected request
        // still needs its answer (RFC 6120 §8.2.3): an empty result.
        if pdu.first() == Some(&0xa4) {
            if let Some(iq) = reject_invoke_id(pdu).and_then(|i| a.pending.remove(&i)) {
                extra.push(format!(
                    "<iq type='result' id='{}' to='{}'/>",
                    super::escape_attr(&iq),
                    super::escape_attr(&a.peer_full)
                ));
            }
        }
        let out = stanza(p, &id, &a.peer_full, &env);
        let peer_full = a.peer_full.clone();
        let mut a = self
            .assocs
            .remove(key)
            .ok_or_else(|| EndpointError::Unknown(key.clone()))?;
        self.flush_events(&mut a);
        self.assocs.insert(key.clone(), a);
        if remember {
            self.remember_iq(&id, key, &peer_full);
        }
        let mut v = vec![out];
        v.extend(extra);
        Ok(v)
    }

    /// Requests release (ReleaseReq with the MMS Conclude-RequestPDU) in an iq set.
    pub fn release(
        &mut self,
        key: &AssocKey,
        conclude: Option<&[u8]>,
        now: secmms_e2e::TimeStamp,
    ) -> Result<Vec<String>, EndpointError> {
        let id = self.new_id("r");
        let a = self.with(key)?;
        let req = text(a.engine.release_req(conclude, now)?)?;
        let out = stanza(
            Placement::Iq(IqType::Set),
            &id,
            &a.peer_full,
            &env_wrap(&req),
        );
        let peer_full = a.peer_full.clone();
        self.remember_iq(&id, key, &peer_full);
        Ok(vec![out])
    }

    /// Answers the peer's ReleaseReq (ReleaseRsp with the MMS Conclude-ResponsePDU). In a
    /// release collision the server holds its answer until the client's ReleaseRsp arrived
    /// (§16.5 DECISION).
    pub fn release_response(
        &mut self,
        key: &AssocKey,
        conclude: Option<&[u8]>,
        now: secmms_e2e::TimeStamp,
    ) -> Result<Vec<String>, EndpointError> {
        let server = self.server;
        let a = self.with(key)?;
        let in_collision = a.engine.state() == State::ReleaseCollision;
        let rsp = text(a.engine.release_rsp(conclude, now)?)?;
        let id = a.answer_id.take().unwrap_or_default();
        let out = stanza(
            Placement::Iq(IqType::Result),
            &id,
            &a.peer_full,
            &env_wrap(&rsp),
        );
        let closed = a.engine.state() == State::Closed;
        let held = if in_collision && server && !closed {
            a.held_release_rsp = Some(out);
            Vec::new()
        } else {
            vec![out]
        };
        if closed {
            if let Some(mut a) = self.remove_assoc(key) {
                self.flush_events(&mut a);
            }
        }
        Ok(held)
    }

    /// Aborts the association (ApplAbort in a message).
    pub fn abort(
        &mut self,
        key: &AssocKey,
        now: secmms_e2e::TimeStamp,
    ) -> Result<Vec<String>, EndpointError> {
        let id = self.new_id("a");
        let mut a = self
            .remove_assoc(key)
            .ok_or_else(|| EndpointError::Unknown(key.clone()))?;
        let ab = text(a.engine.appl_abort(None, now)?)?;
        self.flush_events(&mut a);
        Ok(vec![stanza(
            Placement::Message,
            &id,
            &a.peer_full,
            &env_wrap(&ab),
        )])
    }

    /// The peer (or the XMPP link) went away: its associations end locally (§16.5), with no
    /// stanza sent. `peer` a bare JID: every association with that account; a full JID (a
    /// resource's presence became unavailable): those running with that resource only; `None`
    /// (the link dropped): all.
    pub fn drop_peer(&mut self, peer: Option<&str>) -> Vec<EndpointEvent> {
        let keys: Vec<_> = self
            .assocs
            .iter()
            .filter(|(k, a)| match peer {
                None => true,
                Some(p) if p.contains('/') => a.peer_full == p,
                Some(p) => k.peer == p,
            })
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .map(|key| {
                self.remove_assoc(&key);
                EndpointEvent::Aborted {
                    key,
                    reason: "XMPP link or peer presence lost".into(),
                }
            })
            .collect()
    }

    /// When [`Self::handle_timeout`] should next run: the earliest timer of any association's
    /// engine (client rekey timeout, server old-key grace period), if one is running.
    pub fn next_timeout(&self) -> Option<secmms_e2e::TimeStamp> {
        self.assocs
            .values()
            .filter_map(|a| a.engine.next_timeout())
            .min()
    }

    /// Runs the engines' timers that are due at `now`, as the OSI runtime does through
    /// `SecureAssociation::handle_timeout`. A client whose rekey went unanswered past
    /// `rekey_timeout_ms` (§13.3.2) aborts: the DtSecAbort message is returned to send, the
    /// `E2E_REKEY_TIMEOUT` event is recorded and the association ends with
    /// [`EndpointEvent::Aborted`].
    pub fn handle_timeout(
        &mut self,
        now: secmms_e2e::TimeStamp,
    ) -> (Vec<String>, Vec<EndpointEvent>) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut due: Vec<AssocKey> = self
            .assocs
            .iter()
            .filter(|(_, a)| a.engine.next_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        due.sort();
        for key in due {
            let Some(mut a) = self.assocs.remove(&key) else {
                continue;
            };
            match a.engine.handle_timeout(now) {
                Ok(()) => {
                    self.flush_events(&mut a);
                    self.assocs.insert(key, a);
                }
                Err(e) => {
                    out.extend(self.engine_abort(&key, a, &e));
                    events.push(EndpointEvent::Aborted {
                        key,
                        reason: e.to_string(),
                    });
                }
            }
        }
        (out, events)
    }

    /// Handles one arriving stanza: `kind` and `id` from its top element, `from` the sender's
    /// full JID, `env` the raw text of its ENV_4 child (if any), `error` when it is a stanza
    /// error (`iq type='error'`). Returns the stanzas to send and the events for the
    /// application.
    pub fn handle(
        &mut self,
        kind: StanzaKind,
        id: &str,
        from: &str,
        env: Option<&str>,
        now: secmms_e2e::TimeStamp,
    ) -> (Vec<String>, Vec<EndpointEvent>) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        if id.len() > MAX_IQ_ID_LEN {
            self.sink.record(&super::XMPP_UNKNOWN_IQ_SECPDU.event(
                format!("iq id of {} characters ignored", id.len()),
                Some(from),
            ));
            return (out, events);
        }
        if matches!(kind, StanzaKind::Iq(IqType::Error | IqType::Result)) {
            // Only the entity the iq went to may answer it (a guessed id from anyone else
            // must not end an association).
            let ours = matches!(self.sent_iqs.get(id), Some((_, to)) if to == from);
            if ours {
                if let Some((key, _)) = self.sent_iqs.remove(id) {
                    if kind == StanzaKind::Iq(IqType::Error) {
                        self.remove_assoc(&key);
                        events.push(EndpointEvent::Aborted {
                            key,
                            reason: format!("stanza error from {from}"),
                        });
                        return (out, events);
                    }
                }
            } else if kind == StanzaKind::Iq(IqType::Error) {
                self.sink.record(&super::XMPP_INVTYPE_SPEC.event(
                    format!("stanza error for an iq we did not send to {from}"),
                    Some(from),
                ));
                return (out, events);
            }
        }
        let answerable = matches!(kind, StanzaKind::Iq(IqType::Get | IqType::Set));
        let Some(env) = env else {
            if answerable {
                out.push(StanzaError::ServiceUnavailable.reply(id, from));
            }
            return (out, events);
        };
        let r = match receive(kind, env, &self.limits) {
            Ok(r) => r,
            Err(f) => {
                self.sink
                    .record(&f.event.event(f.detail.clone(), Some(from)));
                if let Some(e) = f.reply {
                    out.push(e.reply(id, from));
                }
                return (out, events);
            }
        };
        let part = xml::decode_as(r.kind, r.secpdu, &self.limits)
            .ok()
            .and_then(|p| asso_client_part(&p));
        let Some(part) = part else {
            self.sink.record(
                &super::XMPP_UNKNOWN_IQ_SECPDU
                    .event("SecPDU without a readable assoID", Some(from)),
            );
            if answerable {
                out.push(StanzaError::BadRequest.reply(id, from));
            }
            return (out, events);
        };
        // "007" and "7" name the same association number.
        let part = part.parse::<u16>().map(|n| n.to_string()).unwrap_or(part);
        let key = AssocKey {
            peer: bare_jid(from).to_string(),
            client_part: part,
        };
        if r.kind == SecPduKind::HandshakeReq {
            if !self.server {
                self.sink.record(
                    &super::XMPP_UNKNOWN_IQ_SECPDU
                        .event("HandshakeReq sent to a client endpoint", Some(from)),
                );
                out.push(StanzaError::UnexpectedRequest.reply(id, from));
                return (out, events);
            }
            if !self.assocs.contains_key(&key) && self.assocs.len() >= MAX_ASSOCIATIONS {
                out.push(StanzaError::ServiceUnavailable.reply(id, from));
                return (out, events);
            }
            let num = self.next_num;
            self.next_num = if self.next_num >= 999 {
                1
            } else {
                self.next_num + 1
            };
            let mut s = E2eServer::new(self.ctx.clone(), self.rng(), num);
            s.set_expected_peer(Some(PeerIdentity::Jid(key.peer.clone())));
            let mut a = Assoc {
                peer_full: from.to_string(),
                engine: Engine::Server(s),
                pending: HashMap::new(),
                answer_id: Some(id.to_string()),
                held_release_rsp: None,
            };
            match a.engine.receive(r.kind, r.secpdu.as_bytes(), now) {
                Ok(Output::HandshakeRequested { appl_data, .. }) => {
                    self.flush_events(&mut a);
                    // A verified handshake under the key of an older association (the client
                    // restarted and reused its number): the old one is over (§16.5).
                    if self.remove_assoc(&key).is_some() {
                        events.push(EndpointEvent::Aborted {
                            key: key.clone(),
                            reason: "replaced by a new handshake from the same peer".into(),
                        });
                    }
                    self.assocs.insert(key.clone(), a);
                    events.push(EndpointEvent::AssociateIndication {
                        key,
                        initiate: appl_data.unwrap_or_default(),
                    });
                }
                Ok(_) => {
                    self.flush_events(&mut a);
                    out.push(StanzaError::BadRequest.reply(id, from));
                }
                Err(e) => {
                    self.flush_events(&mut a);
                    let reply = e
                        .rejection()
                        .and_then(|r| r.reply.clone())
                        .and_then(|(k, pdu)| {
                            String::from_utf8(pdu)
                                .ok()
                                .map(|t| stanza(placement(k, None), id, from, &env_wrap(&t)))
                        });
                    // Every iq set gets exactly one answer (RFC 6120 §8.2.3).
                    out.push(reply.unwrap_or_else(|| StanzaError::BadRequest.reply(id, from)));
                }
            }
            return (out, events);
        }
        let Some(mut a) = self.assocs.remove(&key) else {
            self.sink.record(&super::XMPP_UNKNOWN_IQ_SECPDU.event(
                format!(
                    "{:?} for no association of {from} (assoID {})",
                    r.kind, key.client_part
                ),
                Some(from),
            ));
            if answerable {
                out.push(StanzaError::ItemNotFound.reply(id, from));
            }
            return (out, events);
        };
        let result = a.engine.receive(r.kind, r.secpdu.as_bytes(), now);
        self.flush_events(&mut a);
        match result {
            Ok(Output::Established { appl_data }) => {
                events.push(EndpointEvent::Established {
                    key: key.clone(),
                    initiate: appl_data.unwrap_or_default(),
                });
            }
            Ok(Output::ApplicationRejected { appl_data }) => {
                self.forget(&key);
                events.push(EndpointEvent::Rejected {
                    key,
                    reason: "application reject".into(),
                    initiate_error: appl_data,
                });
                return (out, events);
            }
            Ok(Output::SecurityRejected { diagnostic }) => {
                self.forget(&key);
                events.push(EndpointEvent::Rejected {
                    key,
                    reason: format!(
                        "security reject (HandshakeSecReject): {}",
                        diagnostic.map_or("no diagnostic (the peer raised an alarm)", |d| d.name())
                    ),
                    initiate_error: None,
                });
                return (out, events);
            }
            Ok(Output::Data(pdu)) => {
                if let Err(f) = check_transfer_class(kind, &pdu) {
                    self.sink.record(&f.event.event(f.detail, Some(from)));
                }
                if answerable && mms_class(&pdu) != MmsClass::Unconfirmed {
                    if !self.server {
                        // A client serves no requests.
                        out.push(StanzaError::ServiceUnavailable.reply(id, from));
                        self.assocs.insert(key, a);
                        return (out, events);
                    }
                    if a.pending.len() >= MAX_PENDING_PER_ASSOCIATION {
                        out.push(StanzaError::ResourceConstraint.reply(id, from));
                        self.assocs.insert(key, a);
                        return (out, events);
                    }
                    if let Some(i) = invoke_id(&pdu) {
                        a.pending.insert(i, id.to_string());
                    }
                }
                events.push(EndpointEvent::Data {
                    key: key.clone(),
                    pdu,
                });
            }
            Ok(Output::ReleaseRequested { appl_data }) => {
                a.answer_id = Some(id.to_string());
                events.push(EndpointEvent::ReleaseIndication {
                    key: key.clone(),
                    conclude: appl_data,
                });
            }
            Ok(Output::Released { .. }) => {
                if let Some(held) = a.held_release_rsp.take() {
                    out.push(held);
                }
                if a.engine.state() == State::Closed {
                    self.forget(&key);
                    events.push(EndpointEvent::Released { key });
                    return (out, events);
                }
            }
            Ok(Output::Aborted {
                kind, diagnostic, ..
            }) => {
                events.push(EndpointEvent::Aborted {
                    key,
                    reason: format!("{kind:?} received ({diagnostic:?})"),
                });
                return (out, events);
            }
            Ok(Output::HandshakeRequested { .. }) => {}
            Err(e) => {
                if let Some((k, pdu)) = e.rejection().and_then(|r| r.reply.clone()) {
                    if let Ok(t) = String::from_utf8(pdu) {
                        let rid = self.new_id("a");
                        out.push(stanza(
                            placement(k, None),
                            &rid,
                            &a.peer_full,
                            &env_wrap(&t),
                        ));
                    }
                }
                if answerable {
                    out.push(StanzaError::BadRequest.reply(id, from));
                }
                self.forget(&key);
                events.push(EndpointEvent::Aborted {
                    key,
                    reason: e.to_string(),
                });
                return (out, events);
            }
        }
        if a.engine.state() == State::Closed {
            self.forget(&key);
            return (out, events);
        }
        self.assocs.insert(key, a);
        (out, events)
    }
}
