//! The server role: [`E2eServer`] checks a HandshakeReq (through the shared token check),
//! accepts it with a HandshakeAcc or rejects it.

use super::handshake::{CheckedToken, Token};
use super::*;

/// The server end of an E2E association. See [`E2eClient`] for an example.
pub struct E2eServer {
    core: Core,
}

impl std::fmt::Debug for E2eServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eServer")
            .field("state", &self.core.state)
            .finish_non_exhaustive()
    }
}

impl E2eServer {
    /// A server association; `local_num` becomes the `s` of the AssoID (mod 1000).
    pub fn new(ctx: Context, rng: Box<dyn RandomSource>, local_num: u16) -> E2eServer {
        E2eServer {
            core: Core::new(Role::Server, ctx, rng, local_num),
        }
    }

    common_api!();

    /// Asks the client for a key refresh (`reqRekey`) on the next protected PDU.
    pub fn request_rekey(&mut self) {
        self.core.req_rekey = true;
    }

    /// Rejects a HandshakeReq that passed the security checks for a local reason outside
    /// clause 14 (for example a role-based access decision or resource limits): sends
    /// HandshakeSecReject with `diag` (usually `no-reason-given`) and closes.
    pub fn security_reject(
        &mut self,
        diag: HandshakeDiagnostic,
        now: TimeStamp,
    ) -> Result<Vec<u8>, E2eError> {
        let c = &mut self.core;
        if c.state != State::AwaitLocalAccept {
            return Err(E2eError::State(c.state));
        }
        let b = c.build_token3_pdu(
            SecPduKind::HandshakeSecReject,
            Token3Body::HandshakeDiag(Some(diag)),
            now,
        )?;
        c.close();
        Ok(b)
    }

    /// Receives a SecPDU from the client. A HandshakeReq that fails a check yields
    /// [`E2eError::Rejected`] whose reply is the HandshakeSecReject to send.
    pub fn receive(
        &mut self,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> Result<Output, E2eError> {
        if self.core.state == State::Idle {
            if kind != SecPduKind::HandshakeReq {
                let f = hfail(
                    req::PROTOCOL_ERR,
                    HandshakeDiagnostic::ProtocolError,
                    "expected HandshakeReq",
                );
                return Err(self
                    .core
                    .reject(f, Some(SecPduKind::HandshakeSecReject), now));
            }
            return match self.check_req(bytes, now) {
                Ok(o) => Ok(o),
                Err(f) => Err(self
                    .core
                    .reject(f, Some(SecPduKind::HandshakeSecReject), now)),
            };
        }
        if self.core.state == State::AwaitLocalAccept {
            if matches!(kind, SecPduKind::HandshakeSecAbort | SecPduKind::ApplAbort) {
                return self.core.receive_common(kind, bytes, now);
            }
            return Err(E2eError::State(self.core.state));
        }
        self.core.receive_common(kind, bytes, now)
    }

    fn check_req(&mut self, bytes: &[u8], now: TimeStamp) -> Result<Output, Fail> {
        use HandshakeDiagnostic as H;
        let c = &mut self.core;
        let checked = c.check_handshake(Token::Req, bytes, now, |c, t| {
            // Step 11: first offered group we support (client preference order).
            let cfg = &c.ctx.config;
            let (group, d) = t
                .dh_key
                .iter()
                .find_map(|d| {
                    group_from_number(d.group, cfg.accept_group19_alias)
                        .filter(|g| cfg.accept_groups.contains(g))
                        .map(|g| (g, d))
                })
                .ok_or_else(|| {
                    hfail(
                        req::UNSUP_DH_GROUP,
                        H::DhGroupNotSupported,
                        "no offered DH group supported",
                    )
                })?;
            // The server's ephemeral key and Z are computed now: the agreement validates the
            // client's value (§13.3.1.2) once, and `accept` only signs.
            let eph = EphemeralKey::generate(group, c.rng.as_mut())
                .map_err(|e| hfail(req::PROTOCOL_ERR, H::ProtocolError, e.to_string()))?;
            let z = eph.agree(&d.public_key).map_err(|_| {
                hfail(
                    req::PROTOCOL_ERR,
                    H::ProtocolError,
                    "invalid client DH value",
                )
            })?;
            Ok((group, d.public_key.clone(), eph, z))
        })?;
        let CheckedToken {
            h,
            info,
            mode,
            dh: (group, dh_public, eph, z),
        } = checked;
        c.peer_dh_public = dh_public;
        c.my_dh = Some(eph);
        c.pending_z = Some(z);
        c.suite = Some(Suite { group, mode });
        let peer = info.identity.clone();
        c.peer = Some(info);
        let appl = h.appl_data.clone();
        c.req = Some(h);
        c.state = State::AwaitLocalAccept;
        Ok(Output::HandshakeRequested {
            appl_data: appl,
            peer,
        })
    }

    /// Accepts the association: builds the HandshakeAcc carrying `appl_data` (MMS
    /// Initiate-ResponsePDU) and derives the keys.
    pub fn accept(
        &mut self,
        appl_data: Option<&[u8]>,
        now: TimeStamp,
    ) -> Result<Vec<u8>, E2eError> {
        let c = &mut self.core;
        if c.state != State::AwaitLocalAccept {
            return Err(E2eError::State(c.state));
        }
        if let Some(a) = appl_data {
            check_prpdu(a, c.limits())?;
        }
        let (group, mode) = match &c.suite {
            Some(s) => (s.group, s.mode),
            None => return Err(E2eError::State(c.state)),
        };
        let (eph, z) = match (c.my_dh.take(), c.pending_z.take()) {
            (Some(e), Some(z)) if e.group() == group => (e, z),
            _ => return Err(E2eError::State(c.state)),
        };
        let client_part = c
            .asso
            .as_ref()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let asso = AssoId::pair(&client_part, c.local_num);
        let req_group = c
            .req
            .as_ref()
            .and_then(|r| {
                r.token1
                    .dh_key
                    .iter()
                    .find(|d| d.public_key == c.peer_dh_public)
                    .map(|d| d.group)
            })
            .unwrap_or(group_number(group));
        let mut conf = c.ctx.config.conf_params;
        conf.appl_protected |= mode.encrypted();
        let token1 = ClearToken1 {
            sig_alg: c.sig_alg_id(),
            pk_cert: c.ctx.credentials.cert_der.clone(),
            cert_path: c.ctx.credentials.cert_path.clone(),
            version: Version::v1(),
            asso_id: asso.clone(),
            dh_key: vec![DiffieHellman {
                group: req_group,
                public_key: eph.public_value().to_vec(),
            }],
            hmac: alg::hmac_alg_id(),
            time: now,
            encr_mode: selection_mode(mode),
            conf_params: conf,
            att_cert: c.ctx.credentials.att_cert.clone(),
        };
        let tbs = c.handshake_tbs(&token1, appl_data);
        let sign = c.sign(&tbs)?;
        let req_tbs = c.req.as_ref().map(|r| r.tbs.clone()).unwrap_or_default();
        c.salt = keys::initial_salt(&req_tbs, &tbs);
        let ks = keys::derive(mode, &c.salt, &z, c.rng.as_mut())?;
        c.asso = Some(asso.clone());
        c.export_keys(Some(&req_tbs), &ks);
        c.keys = Some(ks);
        // The HandshakeAcc names the protected protocol the request asked for (one of ours).
        let pp = match &c.req {
            Some(r) => r.pp.clone(),
            None => c.ctx.config.protected_protocol.clone(),
        };
        let h = Handshake {
            pp,
            token1,
            appl_data: appl_data.map(<[u8]>::to_vec),
            sign,
            tbs,
        };
        c.my_dh = Some(eph);
        c.asso = Some(asso);
        c.keys_since = now;
        c.state = State::Established;
        c.encode_pdu(&SecPdu::HandshakeAcc(h))
    }

    /// Rejects the association on behalf of the protected protocol: ApplicationReject carrying
    /// `appl_data` (MMS Initiate-ErrorPDU).
    pub fn appl_reject(&mut self, appl_data: &[u8], now: TimeStamp) -> Result<Vec<u8>, E2eError> {
        let c = &mut self.core;
        if c.state != State::AwaitLocalAccept {
            return Err(E2eError::State(c.state));
        }
        check_prpdu(appl_data, c.limits())?;
        let b = c.build_token3_pdu(
            SecPduKind::ApplicationReject,
            Token3Body::ApplData(Some(appl_data.to_vec())),
            now,
        )?;
        c.close();
        Ok(b)
    }
}
