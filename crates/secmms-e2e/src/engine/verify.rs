//! The checks every signed SecPDU goes through (§14.3 steps 2–6: algorithm, signature,
//! certificate, address), the handshake replay store, and the generic checks of a received
//! ClearToken3 PDU (rejects, aborts, release).

use super::*;

impl Core {
    pub(super) fn in_window(&self, t: TimeStamp, now: TimeStamp) -> bool {
        t.abs_diff_ms(now) <= self.ctx.config.time_window_ms
    }

    /// Steps 2–6 of §14.3 for a signed area: algorithm, signature, certificate, address.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn verify_signed(
        &self,
        sig_alg: &AlgorithmIdentifier,
        sign: &Signature,
        tbs: &[u8],
        pk_cert: &[u8],
        cert_path: Option<&[u8]>,
        now: TimeStamp,
        defs: &SignedDefs,
    ) -> Result<PeerInfo, Fail> {
        let alg = match alg::sig_alg_from(sig_alg) {
            Some(a) if self.ctx.config.allowed_signatures.contains(&a) => a,
            _ => {
                return Err(hfail(
                    defs.sig_alg_not_sup,
                    HandshakeDiagnostic::InvalidSignatureAlgorithm,
                    "signature algorithm not supported",
                ))
            }
        };
        if alg::sig_alg_from(&sign.algo) != Some(alg) {
            return Err(fail(
                defs.sig_alg_mismatch,
                None,
                "sigAlg differs from Signature.algo",
            ));
        }
        // Annex G.2: the application certificate is not one of this connection's TLS
        // certificates. DECISION: an error with its diagnostic, not an alarm — it is what a
        // misconfigured peer sends, and the diagnostic tells its operator what to change.
        if !self.refused_certs.is_empty()
            && self
                .refused_certs
                .contains(&secmms_pki::crypto::sha256(pk_cert))
        {
            return Err(hfail(
                defs.pkcert_error,
                HandshakeDiagnostic::InvalidPublicKeyCertificate,
                "the application certificate is a TLS certificate of this connection (Annex G.2)",
            ));
        }
        // OpenSSL when it can load the certificate, else the parsed SubjectPublicKeyInfo (the
        // Annex G.6.2 OBJECT IDENTIFIER subject form OpenSSL 3.0 refuses).
        let cert = X509::from_der(pk_cert).ok();
        let key = match &cert {
            Some(c) => c.public_key().ok(),
            None => secmms_pki::cert::public_key_of(pk_cert).ok(),
        }
        .ok_or_else(|| {
            hfail(
                defs.pkcert_error,
                HandshakeDiagnostic::InvalidPublicKeyCertificate,
                "pkCert not decodable",
            )
        })?;
        verify_sig(&key, alg, tbs, &sign.sign)
            .map_err(|_| fail(defs.inv_signature, None, "signature does not verify"))?;
        let path = match cert_path {
            Some(p) => split_pki_path(p).map_err(|_| {
                hfail(
                    defs.pkcert_error,
                    HandshakeDiagnostic::InvalidCertificationPath,
                    "certPath not decodable",
                )
            })?,
            None => Vec::new(),
        };
        let validated = match &cert {
            Some(c) => self
                .ctx
                .validator
                .validate_parsed(pk_cert, c, &key, &path, now.unix_secs()),
            None => self.ctx.validator.validate(pk_cert, &path, now.unix_secs()),
        };
        let v = validated.map_err(|e| match e {
            e if e.is_alarm() => fail(defs.pkcert_alarm, None, e.to_string()),
            CertError::Path(m) => hfail(
                defs.pkcert_error,
                HandshakeDiagnostic::InvalidCertificationPath,
                m,
            ),
            e => hfail(
                defs.pkcert_error,
                HandshakeDiagnostic::InvalidPublicKeyCertificate,
                e.to_string(),
            ),
        })?;
        if let Some(exp) = &self.expected_peer {
            if v.info.identity.as_ref() != Some(exp) {
                return Err(fail(
                    defs.addr_mismatch,
                    None,
                    "certificate subject does not match the peer address",
                ));
            }
        }
        Ok(PeerInfo {
            key: v.public_key,
            fingerprint: v.fingerprint,
            cert: pk_cert.to_vec(),
            identity: v.info.identity,
        })
    }

    pub(super) fn check_replay(
        &self,
        peer: &PeerInfo,
        time: TimeStamp,
        asso: &str,
        kind: SecPduKind,
        now: TimeStamp,
    ) -> bool {
        let k = SecPduKind::ALL.iter().position(|x| *x == kind).unwrap_or(0) as u8;
        self.ctx.replay.check_and_insert(
            peer.fingerprint,
            time,
            asso,
            k,
            now,
            self.ctx.config.time_window_ms.saturating_mul(2),
        )
    }

    /// The ten generic checks of a received ClearToken3 PDU (groups 3–7, 12, 13).
    pub(super) fn verify_token3(
        &mut self,
        group: u16,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> Result<Token3Pdu, Fail> {
        let g = |c| generic(group, c);
        let pdu = self.decode_pdu(kind, bytes).map_err(|e| {
            hfail(
                g(Generic::ProtocolErr),
                HandshakeDiagnostic::ProtocolError,
                e,
            )
        })?;
        let p = match pdu {
            SecPdu::ApplicationReject(p)
            | SecPdu::HandshakeSecReject(p)
            | SecPdu::HandshakeSecAbort(p)
            | SecPdu::DtSecAbort(p)
            | SecPdu::ApplAbort(p)
            | SecPdu::ReleaseReq(p)
            | SecPdu::ReleaseRsp(p) => p,
            _ => {
                return Err(hfail(
                    g(Generic::ProtocolErr),
                    HandshakeDiagnostic::ProtocolError,
                    "unexpected PDU",
                ))
            }
        };
        let defs = SignedDefs::generic(group);
        let t = &p.token3;
        let info = self.verify_signed(
            &t.sig_alg,
            &p.sign,
            &p.tbs,
            &t.pk_cert,
            t.cert_path.as_deref(),
            now,
            &defs,
        )?;
        if let Some(peer) = &self.peer {
            if peer.cert != info.cert {
                return Err(fail(
                    g(Generic::PkCertAlarm),
                    None,
                    "certificate differs from the handshake certificate",
                ));
            }
        }
        if let (Some(a), Some(mine)) = (&t.asso_id, &self.asso) {
            // Before HandshakeAcc the peer may only know "c".
            let ok = a == mine || (!a.is_pair() && a.as_str() == mine.client_part());
            if !ok {
                return Err(hfail(
                    g(Generic::ProtocolErr),
                    HandshakeDiagnostic::ProtocolError,
                    "assoID mismatch",
                ));
            }
        }
        if !t.version.has_v1() {
            return Err(hfail(
                g(Generic::UnexpVersion),
                HandshakeDiagnostic::UnexpectedVersion,
                "version",
            ));
        }
        if !self.in_window(t.time, now) {
            return Err(hfail(
                g(Generic::InvTime),
                HandshakeDiagnostic::InvalidTimeValue,
                "time outside window",
            ));
        }
        let asso = t
            .asso_id
            .as_ref()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        if !self.check_replay(&info, t.time, &asso, kind, now) {
            return Err(fail(g(Generic::Replay), None, "replayed PDU"));
        }
        Ok(p)
    }
}

/// Per-group event definitions for the signed-area checks.
pub(super) struct SignedDefs {
    sig_alg_not_sup: EventDef,
    sig_alg_mismatch: EventDef,
    inv_signature: EventDef,
    pkcert_error: EventDef,
    pkcert_alarm: EventDef,
    addr_mismatch: EventDef,
}

impl SignedDefs {
    pub(super) fn generic(group: u16) -> SignedDefs {
        SignedDefs {
            sig_alg_not_sup: generic(group, Generic::SigAlgNotSup),
            sig_alg_mismatch: generic(group, Generic::SigAlgMismatch),
            inv_signature: generic(group, Generic::InvSignature),
            pkcert_error: generic(group, Generic::PkCertError),
            pkcert_alarm: generic(group, Generic::PkCertAlarm),
            addr_mismatch: generic(group, Generic::AddrMismatch),
        }
    }
    pub(super) fn req() -> SignedDefs {
        SignedDefs {
            sig_alg_not_sup: req::SIG_ALG_NOT_SUP,
            sig_alg_mismatch: req::SIG_ALG_MISMATCH,
            inv_signature: req::INV_SIGNATURE,
            pkcert_error: req::PKCERT_ERROR,
            pkcert_alarm: req::PKCERT_ALARM,
            addr_mismatch: req::ADDR_MISMATCH,
        }
    }
    pub(super) fn acc() -> SignedDefs {
        SignedDefs {
            sig_alg_not_sup: acc::SIG_ALG_NOT_SUP,
            sig_alg_mismatch: acc::SIG_ALG_MISMATCH,
            inv_signature: acc::INV_SIGNATURE,
            pkcert_error: acc::PKCERT_ERROR,
            pkcert_alarm: acc::PKCERT_ALARM,
            addr_mismatch: acc::ADDR_MISMATCH,
        }
    }
}

pub(super) fn verify_sig(
    key: &PKey<Public>,
    alg: SignatureAlgorithm,
    data: &[u8],
    sig: &[u8],
) -> Result<(), CryptoError> {
    crypto::verify_signature(key, alg, data, sig)
}
