//! The checks of a received HandshakeReq or HandshakeAcc (§14.3 steps 1–14), one routine for
//! both tokens; what differs (event group, assoID form, protected protocol, DH step,
//! selection) is named by [`Token`].

use super::*;

pub(super) fn check_att_cert(
    c: &Core,
    ac: &[u8],
    info: &PeerInfo,
    now: TimeStamp,
    def: EventDef,
) -> Result<(), Fail> {
    let holder = secmms_pki::ValidatedCert {
        public_key: info.key.clone(),
        info: secmms_pki::cert::CertInfo::parse(&info.cert).map_err(|e| {
            hfail(
                def,
                HandshakeDiagnostic::InvalidPublicKeyCertificate,
                e.to_string(),
            )
        })?,
        warnings: Vec::new(),
        fingerprint: info.fingerprint,
    };
    c.ctx
        .validator
        .validate_attribute_cert(ac, &holder, now.unix_secs())
        .map_err(|e| {
            hfail(
                def,
                HandshakeDiagnostic::InvalidAttributeCertificate,
                e.to_string(),
            )
        })
}

/// The handshake token being checked: the server checks a HandshakeReq, the client a
/// HandshakeAcc. Each names its event group (1 or 2, §14.5) and the few checks that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    /// A HandshakeReq (§13.1.3), checked by the server.
    Req,
    /// A HandshakeAcc (§13.1.4), checked by the client.
    Acc,
}

impl Token {
    fn kind(self) -> SecPduKind {
        match self {
            Token::Req => SecPduKind::HandshakeReq,
            Token::Acc => SecPduKind::HandshakeAcc,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Token::Req => "HandshakeReq",
            Token::Acc => "HandshakeAcc",
        }
    }

    fn signed_defs(self) -> SignedDefs {
        match self {
            Token::Req => SignedDefs::req(),
            Token::Acc => SignedDefs::acc(),
        }
    }

    /// The protocol-error event of this token's group.
    pub(super) fn protocol_err(self) -> EventDef {
        match self {
            Token::Req => req::PROTOCOL_ERR,
            Token::Acc => acc::PROTOCOL_ERR,
        }
    }

    fn unexp_version(self) -> EventDef {
        match self {
            Token::Req => req::UNEXP_VERSION,
            Token::Acc => acc::UNEXP_VERSION,
        }
    }

    fn inv_time(self) -> EventDef {
        match self {
            Token::Req => req::INV_TIME,
            Token::Acc => acc::INV_TIME,
        }
    }

    fn replay(self) -> EventDef {
        match self {
            Token::Req => req::REPLAY,
            Token::Acc => acc::REPLAY,
        }
    }

    /// Step 12: the HMAC algorithm, with the text of its event (the server does not support
    /// it, or the server changed the client's).
    fn hmac_not_sup(self) -> (EventDef, &'static str) {
        match self {
            Token::Req => (req::HMAC_NOT_SUP, "hmac not supported"),
            Token::Acc => (acc::HMAC_NOT_SUP, "hmac changed"),
        }
    }

    fn attcert(self) -> EventDef {
        match self {
            Token::Req => req::ATTCERT,
            Token::Acc => acc::ATTCERT,
        }
    }
}

/// What the checks of one handshake token established, for the role to act on.
pub(super) struct CheckedToken<D> {
    /// The decoded token, its signed octets as received.
    pub(super) h: Handshake,
    /// The peer's verified certificate.
    pub(super) info: PeerInfo,
    /// Step 13: the protection mode (the server's selection, or the client's check of it).
    pub(super) mode: ProtectionMode,
    /// Step 11: what the role's DH step returned.
    pub(super) dh: D,
}

impl Core {
    /// §14.3 steps 1–14 for a received HandshakeReq or HandshakeAcc, in the order the two
    /// roles have always run them: decoding, the assoID (a request's `c` before the signature,
    /// so that the reject carries it; an accept's `c:s` after), the signed area, the protected
    /// protocol, version, time window, replay, the role's DH step (`dh_step`, step 11), the
    /// HMAC algorithm, the protection mode and the attribute certificate.
    pub(super) fn check_handshake<D>(
        &mut self,
        token: Token,
        bytes: &[u8],
        now: TimeStamp,
        dh_step: impl FnOnce(&mut Core, &ClearToken1) -> Result<D, Fail>,
    ) -> Result<CheckedToken<D>, Fail> {
        use HandshakeDiagnostic as H;
        let h = match (token, self.decode_pdu(token.kind(), bytes)) {
            (Token::Req, Ok(SecPdu::HandshakeReq(h)))
            | (Token::Acc, Ok(SecPdu::HandshakeAcc(h))) => h,
            (_, Ok(_)) => {
                return Err(hfail(
                    token.protocol_err(),
                    H::ProtocolError,
                    format!("not a {}", token.name()),
                ))
            }
            (_, Err(e)) => return Err(hfail(token.protocol_err(), H::ProtocolError, e)),
        };
        let t = &h.token1;
        if token == Token::Req {
            // The client's "c" is known as soon as the token decodes (for the reject's assoID).
            if t.asso_id.is_pair() {
                return Err(hfail(
                    req::PROTOCOL_ERR,
                    H::ProtocolError,
                    "assoID of HandshakeReq must be \"c\"",
                ));
            }
            self.asso = Some(t.asso_id.clone());
        }
        let info = self.verify_signed(
            &t.sig_alg,
            &h.sign,
            &h.tbs,
            &t.pk_cert,
            t.cert_path.as_deref(),
            now,
            &token.signed_defs(),
        )?;
        match token {
            Token::Req => {
                if !self.ctx.config.accepted_protocols.contains(&h.pp) {
                    return Err(hfail(
                        req::PROT_NOT_SUP,
                        H::ProtectedProtocolNotSupported,
                        "pp not supported",
                    ));
                }
            }
            Token::Acc => {
                let my = self
                    .asso
                    .clone()
                    .ok_or_else(|| hfail(acc::PROTOCOL_ERR, H::ProtocolError, "no assoID"))?;
                if !t.asso_id.is_pair() || t.asso_id.client_part() != my.as_str() {
                    return Err(hfail(
                        acc::PROTOCOL_ERR,
                        H::ProtocolError,
                        "assoID is not c:s with our c",
                    ));
                }
                if h.pp != self.ctx.config.protected_protocol {
                    return Err(hfail(acc::PROTOCOL_ERR, H::ProtocolError, "pp differs"));
                }
            }
        }
        if !t.version.has_v1() {
            return Err(hfail(
                token.unexp_version(),
                H::UnexpectedVersion,
                "version",
            ));
        }
        if !self.in_window(t.time, now) {
            return Err(hfail(
                token.inv_time(),
                H::InvalidTimeValue,
                "time outside window",
            ));
        }
        if !self.check_replay(&info, t.time, t.asso_id.as_str(), token.kind(), now) {
            return Err(fail(
                token.replay(),
                None,
                format!("replayed {}", token.name()),
            ));
        }
        // Step 11: the role's DH step.
        let dh = dh_step(self, t)?;
        // Step 12: HMAC-SHA256, the one HMAC algorithm.
        if !alg::is_hmac_sha256(&t.hmac) {
            let (def, msg) = token.hmac_not_sup();
            return Err(hfail(def, H::HmacAlgorithmNotSupported, msg));
        }
        // Step 13: the protection mode.
        let mode = match token {
            Token::Req => server_select(&self.ctx.config, t)?,
            Token::Acc => client_check_selection(&self.ctx.config, &t.encr_mode)?,
        };
        // Step 14: the attribute certificate.
        if let Some(ac) = &t.att_cert {
            check_att_cert(self, ac, &info, now, token.attcert())?;
        }
        Ok(CheckedToken { h, info, mode, dh })
    }
}
