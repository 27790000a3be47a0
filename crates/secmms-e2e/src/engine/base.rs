//! What both roles share: the wire encoding of SecPDUs (BER or XML), signing the engine's own
//! PDUs, the event queue, and turning a failed check into a rejection.

use super::*;

impl Core {
    pub(super) fn new(
        role: Role,
        ctx: Context,
        rng: Box<dyn RandomSource>,
        local_num: u16,
    ) -> Core {
        Core {
            collision: (false, false),
            role,
            ctx,
            rng,
            state: State::Idle,
            local_num: local_num % 1000,
            asso: None,
            expected_peer: None,
            refused_certs: Vec::new(),
            peer: None,
            offered: Vec::new(),
            my_dh: None,
            peer_dh_public: Vec::new(),
            pending_z: None,
            req: None,
            suite: None,
            salt: [0; 32],
            keys: None,
            rekey: Rekey::None,
            old_recv: None,
            keys_since: TimeStamp(0),
            send_last: None,
            recv_last: None,
            req_rekey: false,
            events: VecDeque::new(),
            export: None,
        }
    }

    /// Key export: after each key derivation (the handshake's with `req_tbs` set, then every
    /// rekey's), queue the key-log record and the `E2E_KEYLOG_ACTIVE` warning.
    pub(super) fn export_keys(&mut self, req_tbs: Option<&[u8]>, keys: &KeySet) {
        let Some(mode) = self.suite.as_ref().map(|s| s.mode) else {
            return;
        };
        let Some(x) = self.export.as_mut() else {
            return;
        };
        if let Some(tbs) = req_tbs {
            x.handshake_id = crate::keylog::handshake_id(tbs);
            x.derived = 0;
        }
        let generation = x.derived;
        x.derived = x.derived.saturating_add(1);
        if x.queue.len() >= MAX_QUEUED_KEYS {
            x.queue.pop_front();
        }
        x.queue.push_back(crate::keylog::KeyMaterial::of(
            x.handshake_id,
            generation,
            mode,
            keys,
        ));
        let e = events::KEYLOG_ACTIVE.event(
            format!(
                "traffic keys of generation {generation} handed to the E2E key log (anyone who \
                 reads it can check and decrypt this association)"
            ),
            self.asso_str().as_deref(),
        );
        self.push_event(e);
    }

    pub(super) fn limits(&self) -> Limits {
        self.ctx.config.limits
    }

    // ------------------------------------------------------------ wire encoding (§15 / §16)

    pub(super) fn encoding(&self) -> WireEncoding {
        self.ctx.config.encoding
    }

    /// Decodes a received SecPDU of the kind the environment announced. Its covered fields hold
    /// the octets (BER) or characters (XML) as received.
    pub(super) fn decode_pdu(&self, kind: SecPduKind, bytes: &[u8]) -> Result<SecPdu, String> {
        match self.encoding() {
            WireEncoding::Ber => {
                SecPdu::decode(kind, bytes, self.limits()).map_err(|e| e.to_string())
            }
            WireEncoding::Xml => {
                xml::decode_octets(kind, bytes, &XmlLimits::from_ber(self.limits()))
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Encodes a SecPDU built by this engine (its covered fields are in the configured encoding).
    pub(super) fn encode_pdu(&self, pdu: &SecPdu) -> R<Vec<u8>> {
        match self.encoding() {
            WireEncoding::Ber => Ok(pdu.encode()),
            WireEncoding::Xml => xml::encode(pdu)
                .map(String::into_bytes)
                .map_err(|_| E2eError::Config("XML encoding of a SecPDU")),
        }
    }

    /// What the signature of a HandshakeReq/Acc covers (§13.4.1, §16.3).
    pub(super) fn handshake_tbs(&self, token1: &ClearToken1, appl_data: Option<&[u8]>) -> Vec<u8> {
        match self.encoding() {
            WireEncoding::Ber => Handshake::tbs_content(token1, appl_data),
            WireEncoding::Xml => xml::handshake_tbs(token1, appl_data).into_bytes(),
        }
    }

    pub(super) fn push_event(&mut self, e: SecurityEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    pub(super) fn asso_str(&self) -> Option<String> {
        self.asso.as_ref().map(|a| a.as_str().to_string())
    }

    // ------------------------------------------------------------ signing helpers

    pub(super) fn sig_alg_id(&self) -> AlgorithmIdentifier {
        alg::sig_alg_id(self.ctx.credentials.key.algorithm())
    }

    pub(super) fn sign(&self, tbs: &[u8]) -> R<Signature> {
        Ok(Signature {
            algo: self.sig_alg_id(),
            sign: self.ctx.credentials.key.sign(tbs)?,
        })
    }

    pub(super) fn token3(&self, now: TimeStamp) -> ClearToken3 {
        ClearToken3 {
            sig_alg: self.sig_alg_id(),
            version: Version::v1(),
            asso_id: self.asso.clone(),
            time: now,
            pk_cert: self.ctx.credentials.cert_der.clone(),
            cert_path: self.ctx.credentials.cert_path.clone(),
        }
    }

    pub(super) fn build_token3_pdu(
        &self,
        kind: SecPduKind,
        body: Token3Body,
        now: TimeStamp,
    ) -> R<Vec<u8>> {
        let token3 = self.token3(now);
        let tbs = match self.encoding() {
            WireEncoding::Ber => Token3Pdu::tbs_content(&token3, &body),
            WireEncoding::Xml => xml::token3_tbs(&token3, &body).into_bytes(),
        };
        let sign = self.sign(&tbs)?;
        let p = Token3Pdu {
            token3,
            body,
            sign,
            tbs,
            unknown_diag: None,
        };
        let pdu = match kind {
            SecPduKind::ApplicationReject => SecPdu::ApplicationReject(p),
            SecPduKind::HandshakeSecReject => SecPdu::HandshakeSecReject(p),
            SecPduKind::HandshakeSecAbort => SecPdu::HandshakeSecAbort(p),
            SecPduKind::DtSecAbort => SecPdu::DtSecAbort(p),
            SecPduKind::ApplAbort => SecPdu::ApplAbort(p),
            SecPduKind::ReleaseReq => SecPdu::ReleaseReq(p),
            SecPduKind::ReleaseRsp => SecPdu::ReleaseRsp(p),
            _ => return Err(E2eError::Config("not a ClearToken3 PDU")),
        };
        self.encode_pdu(&pdu)
    }

    /// Turns a failure into a rejection, queues the event, builds the reply, closes.
    pub(super) fn reject(
        &mut self,
        f: Fail,
        reply_kind: Option<SecPduKind>,
        now: TimeStamp,
    ) -> E2eError {
        let event = f.def.event(f.msg, self.asso_str().as_deref());
        self.push_event(event.clone());
        // Diagnostics are withheld when an alarm is raised (§13.1.5, §14.1).
        let wire = if f.def.is_alarm() { None } else { f.cause };
        let reply = reply_kind.and_then(|k| {
            let body = match (k, wire) {
                (SecPduKind::DtSecAbort, Some(Diagnostic::Dt(d))) => Token3Body::DtDiag(Some(d)),
                (SecPduKind::DtSecAbort, _) => Token3Body::DtDiag(None),
                (_, Some(Diagnostic::Handshake(d))) => Token3Body::HandshakeDiag(Some(d)),
                _ => Token3Body::HandshakeDiag(None),
            };
            self.build_token3_pdu(k, body, now).ok().map(|b| (k, b))
        });
        self.state = State::Closed;
        self.keys = None;
        self.rekey = Rekey::None;
        self.old_recv = None;
        E2eError::Rejected(Box::new(Rejection {
            event,
            check: f.def,
            cause: f.cause,
            reply,
        }))
    }

    pub(super) fn close(&mut self) {
        self.state = State::Closed;
        self.keys = None;
        self.rekey = Rekey::None;
        self.old_recv = None;
        self.my_dh = None;
        self.pending_z = None;
        self.offered.clear();
    }
}
