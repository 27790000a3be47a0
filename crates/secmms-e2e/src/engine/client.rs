//! The client role: [`E2eClient`] builds the HandshakeReq, checks the HandshakeAcc (through
//! the shared token check) and receives the server's rejects.

use super::handshake::{CheckedToken, Token};
use super::*;

/// The client end of an E2E association.
///
/// ```
/// # use secmms_e2e::doc_support::*;
/// use secmms_e2e::{E2eClient, E2eServer, Output, SecPduKind, TimeStamp};
/// let (cctx, sctx) = demo_contexts();
/// let now = TimeStamp::from_unix_secs(1_750_000_000);
/// let mut client = E2eClient::new(cctx, Box::new(secmms_pki::crypto::OsRandom), 1);
/// let mut server = E2eServer::new(sctx, Box::new(secmms_pki::crypto::OsRandom), 7);
/// // Handshake: Initiate-Request inside HandshakeReq, Initiate-Response inside HandshakeAcc.
/// let req = client.handshake_req(Some(&[0xa8, 0x00]), now).unwrap();
/// let out = server.receive(SecPduKind::HandshakeReq, &req, now).unwrap();
/// assert!(matches!(out, Output::HandshakeRequested { .. }));
/// let acc = server.accept(Some(&[0xa9, 0x00]), now).unwrap();
/// let out = client.receive(SecPduKind::HandshakeAcc, &acc, now).unwrap();
/// assert_eq!(out, Output::Established { appl_data: Some(vec![0xa9, 0x00]) });
/// // Data transfer.
/// let (kind, pdu) = client.protect(&[0xa0, 0x03, 0x02, 0x01, 0x05], now).unwrap();
/// match server.receive(kind, &pdu, now).unwrap() {
///     Output::Data(pr) => assert_eq!(&pr[..], &[0xa0, 0x03, 0x02, 0x01, 0x05]),
///     o => panic!("{o:?}"),
/// }
/// ```
pub struct E2eClient {
    core: Core,
}

impl std::fmt::Debug for E2eClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eClient")
            .field("state", &self.core.state)
            .finish_non_exhaustive()
    }
}

impl E2eClient {
    /// A client association; `local_num` becomes the `c` of the AssoID (mod 1000).
    pub fn new(ctx: Context, rng: Box<dyn RandomSource>, local_num: u16) -> E2eClient {
        E2eClient {
            core: Core::new(Role::Client, ctx, rng, local_num),
        }
    }

    common_api!();

    /// Asks for a key refresh on the next protected PDU (a pending, unacknowledged refresh is
    /// abandoned and replaced).
    pub fn start_rekey(&mut self) {
        self.core.req_rekey = true;
    }

    /// Builds the HandshakeReq carrying `appl_data` (MMS Initiate-RequestPDU).
    pub fn handshake_req(
        &mut self,
        appl_data: Option<&[u8]>,
        now: TimeStamp,
    ) -> Result<Vec<u8>, E2eError> {
        let c = &mut self.core;
        if c.state != State::Idle {
            return Err(E2eError::State(c.state));
        }
        if let Some(a) = appl_data {
            check_prpdu(a, c.limits())?;
        }
        let cfg = c.ctx.config.clone();
        if cfg.offer_groups.is_empty() || cfg.offer_groups.len() > limits::MAX_DH_ENTRIES {
            return Err(E2eError::Config("offer_groups"));
        }
        let mut dh_key = Vec::new();
        c.offered.clear();
        for g in &cfg.offer_groups {
            let k = EphemeralKey::generate(*g, c.rng.as_mut())?;
            dh_key.push(DiffieHellman {
                group: group_number(*g),
                public_key: k.public_value().to_vec(),
            });
            c.offered.push(k);
        }
        let encr_mode = offer_mode(&cfg.offer);
        let mut conf = cfg.conf_params;
        conf.appl_protected |= match &encr_mode {
            EncrMode::Aea(_) => true,
            EncrMode::NonAea { encr, .. } => encr.is_some(),
        };
        let asso = AssoId::client(c.local_num);
        let token1 = ClearToken1 {
            sig_alg: c.sig_alg_id(),
            pk_cert: c.ctx.credentials.cert_der.clone(),
            cert_path: c.ctx.credentials.cert_path.clone(),
            version: Version::v1(),
            asso_id: asso.clone(),
            dh_key,
            hmac: alg::hmac_alg_id(),
            time: now,
            encr_mode,
            conf_params: conf,
            att_cert: c.ctx.credentials.att_cert.clone(),
        };
        let tbs = c.handshake_tbs(&token1, appl_data);
        let sign = c.sign(&tbs)?;
        let h = Handshake {
            pp: cfg.protected_protocol.clone(),
            token1,
            appl_data: appl_data.map(<[u8]>::to_vec),
            sign,
            tbs,
        };
        let bytes = c.encode_pdu(&SecPdu::HandshakeReq(h.clone()))?;
        c.asso = Some(asso);
        c.req = Some(h);
        c.state = State::AwaitAcc;
        Ok(bytes)
    }

    /// Receives a SecPDU from the server (HandshakeAcc, ApplicationReject, HandshakeSecReject,
    /// transfers, release and aborts).
    pub fn receive(
        &mut self,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> Result<Output, E2eError> {
        let c = &mut self.core;
        if c.state == State::AwaitAcc {
            match kind {
                SecPduKind::HandshakeAcc => {
                    return match self.check_acc(bytes, now) {
                        Ok(o) => Ok(o),
                        Err(f) => {
                            Err(self
                                .core
                                .reject(f, Some(SecPduKind::HandshakeSecAbort), now))
                        }
                    }
                }
                SecPduKind::ApplicationReject | SecPduKind::HandshakeSecReject => {
                    let group = if kind == SecPduKind::ApplicationReject {
                        3
                    } else {
                        4
                    };
                    let p = c
                        .verify_token3(group, kind, bytes, now)
                        .map_err(|f| c.reject(f, None, now))?;
                    c.close();
                    c.record_unknown_diag(kind, p.unknown_diag);
                    return Ok(match p.body {
                        Token3Body::HandshakeDiag(d) => {
                            let (def, text) = match d {
                                None => (
                                    events::SEC_REJECT_ALARM_RCVD,
                                    "HandshakeSecReject received without diagnostic".to_string(),
                                ),
                                Some(d) => (
                                    events::handshake_diag_received(true, d),
                                    format!(
                                        "HandshakeSecReject received with diagnostic {}",
                                        d.name()
                                    ),
                                ),
                            };
                            let e = def.event(text, c.asso_str().as_deref());
                            c.push_event(e);
                            Output::SecurityRejected { diagnostic: d }
                        }
                        Token3Body::ApplData(a) => Output::ApplicationRejected { appl_data: a },
                        Token3Body::DtDiag(_) => Output::SecurityRejected { diagnostic: None },
                    });
                }
                _ => {}
            }
        }
        c.receive_common(kind, bytes, now)
    }

    fn check_acc(&mut self, bytes: &[u8], now: TimeStamp) -> Result<Output, Fail> {
        use HandshakeDiagnostic as H;
        let c = &mut self.core;
        let checked = c.check_handshake(Token::Acc, bytes, now, |c, t| {
            // Step 11: exactly one DH entry in a group we offered.
            match t.dh_key.as_slice() {
                [d] => {
                    let idx = c
                        .offered
                        .iter()
                        .position(|k| group_number(k.group()) == d.group)
                        .ok_or_else(|| {
                            hfail(
                                acc::INV_DH_GROUP,
                                H::IllegalDhGroupSelected,
                                "DH group not offered",
                            )
                        })?;
                    Ok((idx, d.public_key.clone()))
                }
                _ => Err(hfail(
                    acc::INV_DH_GROUP,
                    H::IllegalDhGroupSelected,
                    "not exactly one DH entry",
                )),
            }
        })?;
        let CheckedToken {
            h,
            info,
            mode,
            dh: (idx, dh_public),
        } = checked;
        let eph = c.offered.swap_remove(idx);
        let z = eph.agree(&dh_public).map_err(|_| {
            hfail(
                acc::PROTOCOL_ERR,
                H::ProtocolError,
                "invalid server DH value",
            )
        })?;
        let req_tbs = c.req.as_ref().map(|r| r.tbs.clone()).unwrap_or_default();
        c.salt = keys::initial_salt(&req_tbs, &h.tbs);
        let ks = keys::derive(mode, &c.salt, &z, c.rng.as_mut())
            .map_err(|e| hfail(acc::PROTOCOL_ERR, H::ProtocolError, e.to_string()))?;
        c.peer_dh_public = dh_public;
        c.suite = Some(Suite {
            group: eph.group(),
            mode,
        });
        c.asso = Some(h.token1.asso_id.clone());
        c.export_keys(Some(&req_tbs), &ks);
        c.keys = Some(ks);
        c.offered.clear();
        c.my_dh = None;
        c.peer = Some(info);
        c.keys_since = now;
        c.state = State::Established;
        Ok(Output::Established {
            appl_data: h.appl_data,
        })
    }
}
