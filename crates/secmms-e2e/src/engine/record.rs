//! The record layer (§13.2, §13.4, §14.4): protecting a PrPDU into a ClearTransfer or
//! EncrTransfer and checking a received one (ICV / AEAD, time window, sequence numbers, the
//! rekey fields), in BER or XML.

use super::*;

impl Core {
    pub(super) fn keys_for_send(&mut self) -> Option<&mut DirKeys> {
        let role = self.role;
        self.keys.as_mut().map(|k| match role {
            Role::Client => &mut k.c2s,
            Role::Server => &mut k.s2c,
        })
    }

    pub(super) fn next_send_time(&mut self, now: TimeStamp) -> (TimeStamp, u32) {
        // Sender rule (§14.4 DECISION): seq 0 at each new time value, +1 with the same time.
        let (t, s) = match self.send_last {
            Some((lt, ls)) if now <= lt => (lt, ls.saturating_add(1)),
            _ => (now, 0),
        };
        self.send_last = Some((t, s));
        (t, s)
    }

    pub(super) fn protect(&mut self, pr_pdu: &[u8], now: TimeStamp) -> R<(SecPduKind, Vec<u8>)> {
        if self.state != State::Established {
            return Err(E2eError::State(self.state));
        }
        check_prpdu(pr_pdu, self.limits())?;
        let mode = match &self.suite {
            Some(s) => s.mode,
            None => return Err(E2eError::State(self.state)),
        };
        let mut token_rekey = None;
        let mut changed_key = false;
        match self.role {
            Role::Client => {
                let pending_since = match &self.rekey {
                    Rekey::ClientPending { since, .. } if !self.req_rekey => Some(*since),
                    _ => None,
                };
                if let Some(since) = pending_since {
                    if now.abs_diff_ms(since) > self.ctx.config.rekey_timeout_ms {
                        let f = dfail(
                            events::REKEY_TIMEOUT,
                            DtDiagnostic::NoReasonGiven,
                            "no changedKey within the rekey timeout",
                        );
                        return Err(self.reject(f, Some(SecPduKind::DtSecAbort), now));
                    }
                } else if self.req_rekey
                    || now.abs_diff_ms(self.keys_since)
                        >= self.ctx.config.effective_rekey_interval_ms()
                {
                    let group = self
                        .suite
                        .as_ref()
                        .map(|s| s.group)
                        .unwrap_or(DhGroup::EcdhP256);
                    let eph = EphemeralKey::generate(group, self.rng.as_mut())?;
                    token_rekey = Some(eph);
                    self.req_rekey = false;
                }
            }
            Role::Server => {
                if matches!(self.rekey, Rekey::ServerDerived { .. }) {
                    if let Rekey::ServerDerived { keys, salt } =
                        std::mem::replace(&mut self.rekey, Rekey::None)
                    {
                        let old = self.keys.replace(keys);
                        self.salt = salt;
                        self.keys_since = now;
                        if let Some(old) = old {
                            self.old_recv = Some((
                                old.c2s,
                                Some(now.plus_ms(
                                    self.ctx.config.rekey_grace_ms.min(i64::MAX as u64) as i64,
                                )),
                            ));
                        }
                        changed_key = true;
                    }
                }
            }
        }
        let req_rekey = self.role == Role::Server && std::mem::take(&mut self.req_rekey);
        let (time, seq) = self.next_send_time(now);
        let asso = self.asso.clone().ok_or(E2eError::State(self.state))?;
        let mut token2 = ClearToken2 {
            asso_id: asso,
            time,
            seq,
            iv: None,
            rekey: token_rekey.as_ref().map(|e| e.public_value().to_vec()),
            req_rekey,
            changed_key,
        };
        let mut iv16 = [0u8; 16];
        if let ProtectionMode::NonAe { encr: Some(_), .. } = mode {
            self.rng.fill(&mut iv16)?;
            token2.iv = Some(iv16.to_vec());
        }
        let encoding = self.encoding();
        let keys = self.keys_for_send().ok_or(E2eError::State(State::Closed))?;
        let (kind, out, tbp_start, tbp_end) = match encoding {
            WireEncoding::Ber => seal_ber(mode, keys, &mut token2, &iv16, pr_pdu)?,
            WireEncoding::Xml => seal_xml(mode, keys, &mut token2, &iv16, pr_pdu)?,
        };
        if let Some(eph) = token_rekey {
            // Client: derive the next keys now; they take effect on changedKey.
            let z = eph.agree(&self.peer_dh_public)?;
            let salt = keys::next_salt(&out[tbp_start..tbp_end], &self.salt);
            let new = keys::derive(mode, &salt, &z, self.rng.as_mut())?;
            self.export_keys(None, &new);
            self.rekey = Rekey::ClientPending {
                keys: new,
                salt,
                since: now,
            };
        }
        Ok((kind, out))
    }

    pub(super) fn unprotect(
        &mut self,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> R<Output> {
        match self.unprotect_inner(kind, bytes, now) {
            Ok(o) => Ok(o),
            Err(f) => Err(self.reject(f, Some(SecPduKind::DtSecAbort), now)),
        }
    }

    pub(super) fn unprotect_inner(
        &mut self,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> Result<Output, Fail> {
        let encrypted = kind == SecPduKind::EncrTransfer;
        let ev = |c| dt(encrypted, c);
        let perr = |m: &str| dfail(ev(DtCheck::ProtocolErr), DtDiagnostic::ProtocolError, m);
        // Step 1: well-formed, assoID known.
        let xml_transfer: Transfer;
        let t = match self.encoding() {
            WireEncoding::Ber => match TransferView::decode(encrypted, bytes, self.limits()) {
                Ok(t) => t,
                Err(e) => return Err(perr(&e.to_string())),
            },
            WireEncoding::Xml => {
                xml_transfer =
                    match xml::decode_octets(kind, bytes, &XmlLimits::from_ber(self.limits())) {
                        Ok(SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t)) => t,
                        Ok(_) => return Err(perr("not a transfer")),
                        Err(e) => return Err(perr(&e.to_string())),
                    };
                xml_transfer.view()
            }
        };
        if Some(&t.token2.asso_id) != self.asso.as_ref() {
            return Err(perr("unknown assoID"));
        }
        let mode = match &self.suite {
            Some(s) => s.mode,
            None => return Err(perr("no suite")),
        };
        // Step 2: PDU kind matches the agreed mode.
        if encrypted != mode.encrypted() {
            return Err(if encrypted {
                dfail(
                    ev(DtCheck::WrongKind),
                    DtDiagnostic::EncryptionNotSelected,
                    "EncrTransfer without agreed encryption",
                )
            } else {
                dfail(
                    ev(DtCheck::WrongKind),
                    DtDiagnostic::EncryptionRequired,
                    "ClearTransfer although encryption was agreed",
                )
            });
        }
        // Steps 3–4: algorithm and nonce / IV presence.
        match mode {
            ProtectionMode::Ae(_) => {
                if t.auth.is_some() {
                    return Err(perr("auth present in AE mode"));
                }
                if t.token2.iv.as_ref().map(Vec::len) != Some(GCM_NONCE_LEN) {
                    return Err(dfail(
                        ev(DtCheck::Nonce),
                        DtDiagnostic::GmacInitVectorRequired,
                        "GCM nonce missing",
                    ));
                }
            }
            ProtectionMode::NonAe { encr, icv } => {
                let auth = t.auth.as_ref().ok_or_else(|| perr("auth missing"))?;
                if IcvAlg::from_id(&auth.algorithm) != Some(icv) {
                    return Err(fail(
                        ev(DtCheck::IcvAlg),
                        None,
                        "ICV algorithm differs from the agreed one",
                    ));
                }
                if icv.is_gmac() && auth.nonce.as_ref().map(Vec::len) != Some(GCM_NONCE_LEN) {
                    return Err(dfail(
                        ev(DtCheck::Nonce),
                        DtDiagnostic::GmacNonceRequired,
                        "GMAC nonce missing",
                    ));
                }
                if encr.is_some() && t.token2.iv.as_ref().map(Vec::len) != Some(16) {
                    return Err(dfail(
                        ev(DtCheck::AesIv),
                        DtDiagnostic::AesInitVectorRequired,
                        "AES-CBC IV missing",
                    ));
                }
            }
        }
        let role = self.role;
        let changed = t.token2.changed_key;
        // Step 9: rekey fields. DECISION (§14.4): their legality depends only on clear fields and
        // local state, so they are checked with the structural checks, before the ICV. Nothing is
        // lost: anyone able to alter a PDU can already force a BAD_ICV abort.
        match role {
            Role::Client => {
                if t.token2.rekey.is_some() {
                    return Err(perr("client received rekey"));
                }
                if changed && !matches!(self.rekey, Rekey::ClientPending { .. }) {
                    return Err(dfail(
                        ev(DtCheck::UnexpChanged),
                        DtDiagnostic::UnexpectedChangedKeys,
                        "changedKey without pending rekey",
                    ));
                }
            }
            Role::Server => {
                if t.token2.changed_key || t.token2.req_rekey {
                    return Err(perr("server received changedKey or reqRekey"));
                }
                if t.token2.rekey.is_some() && matches!(self.rekey, Rekey::ServerDerived { .. }) {
                    return Err(dfail(
                        ev(DtCheck::UnexpDh),
                        DtDiagnostic::UnexpectedDhPublicKey,
                        "second rekey before changedKey",
                    ));
                }
            }
        }
        // Step 5: ICV / AEAD, choosing the key per the rekey state.
        let use_pending =
            role == Role::Client && changed && matches!(self.rekey, Rekey::ClientPending { .. });
        let plain: Option<Zeroizing<Vec<u8>>>;
        let mut used_old = false;
        {
            fn recv_of(role: Role, k: &mut KeySet) -> &mut DirKeys {
                match role {
                    Role::Client => &mut k.s2c,
                    Role::Server => &mut k.c2s,
                }
            }
            let primary: Option<&mut DirKeys> = if use_pending {
                match &mut self.rekey {
                    Rekey::ClientPending { keys, .. } => Some(recv_of(role, keys)),
                    _ => None,
                }
            } else {
                self.keys.as_mut().map(|k| recv_of(role, k))
            };
            let primary = primary.ok_or_else(|| perr("no keys"))?;
            match open(mode, primary, &t) {
                Ok(p) => plain = p,
                Err(()) => {
                    let old_ok = match &mut self.old_recv {
                        Some((old, deadline)) if deadline.map_or(true, |d| now <= d) => {
                            open(mode, old, &t).ok()
                        }
                        _ => None,
                    };
                    match old_ok {
                        Some(p) => {
                            plain = p;
                            used_old = true;
                        }
                        None => {
                            return Err(fail(
                                ev(DtCheck::BadIcv),
                                None,
                                "ICV / AEAD verification failed",
                            ))
                        }
                    }
                }
            }
        }
        // Step 6: time window and monotonic time.
        let time = t.token2.time;
        let seq = t.token2.seq;
        if !self.in_window(time, now) || self.recv_last.is_some_and(|(lt, _)| time < lt) {
            return Err(dfail(
                ev(DtCheck::InvTime),
                DtDiagnostic::InvalidTimeValue,
                "time outside window or older than the last PDU",
            ));
        }
        // Steps 7–8: replay and sequence rule.
        match self.recv_last {
            Some((lt, ls)) if lt == time => {
                if seq <= ls {
                    return Err(fail(
                        ev(DtCheck::Replay),
                        None,
                        "(time, seq) already accepted",
                    ));
                }
                if seq != ls.saturating_add(1) {
                    return Err(dfail(
                        ev(DtCheck::Seq),
                        DtDiagnostic::InvalidSequenceNumber,
                        "seq is not previous + 1",
                    ));
                }
            }
            _ => {
                if seq != 0 {
                    return Err(dfail(
                        ev(DtCheck::Seq),
                        DtDiagnostic::InvalidSequenceNumber,
                        "seq is not 0 for a new time",
                    ));
                }
            }
        }
        let plain = match plain {
            // Move the plaintext out of its Zeroizing wrapper (leaving an empty vector behind):
            // it is handed to the protected protocol, not kept.
            Some(mut p) => std::mem::take(&mut *p),
            None => t.appl_data.to_vec(),
        };
        if encrypted && check_prpdu(&plain, self.limits()).is_err() {
            return Err(perr("decrypted applData is not one PrPDU"));
        }
        // Accepted: update state.
        self.recv_last = Some((time, seq));
        match role {
            Role::Client => {
                if t.token2.req_rekey {
                    self.req_rekey = true;
                }
                if use_pending {
                    if let Rekey::ClientPending { keys, salt, .. } =
                        std::mem::replace(&mut self.rekey, Rekey::None)
                    {
                        self.keys = Some(keys);
                        self.salt = salt;
                        self.keys_since = now;
                    }
                }
            }
            Role::Server => {
                if !used_old && self.old_recv.as_ref().is_some_and(|(_, d)| d.is_some()) {
                    self.old_recv = None;
                }
                if let Some(y) = &t.token2.rekey {
                    let group = self
                        .suite
                        .as_ref()
                        .map(|s| s.group)
                        .ok_or_else(|| perr("no suite"))?;
                    let eph = self.my_dh.as_ref().ok_or_else(|| perr("no DH key"))?;
                    let z = eph
                        .agree(y)
                        .map_err(|_| perr("invalid rekey public value"))?;
                    let _ = group;
                    let salt = keys::next_salt(t.tbp, &self.salt);
                    let new = keys::derive(mode, &salt, &z, self.rng.as_mut())
                        .map_err(|e| perr(&e.to_string()))?;
                    self.export_keys(None, &new);
                    // Old receive keys stay valid until the first PDU under the new ones.
                    self.rekey = Rekey::ServerDerived { keys: new, salt };
                }
            }
        }
        Ok(Output::Data(plain))
    }
}

/// A PrPDU must be exactly one BER element (the open type of applData, §13.5).
pub(super) fn check_prpdu(pr: &[u8], limits: Limits) -> R<()> {
    if pr.len() > limits::MAX_PRPDU {
        return Err(E2eError::InvalidPrPdu);
    }
    let mut r = Reader::new(pr, limits);
    r.read().map_err(|_| E2eError::InvalidPrPdu)?;
    r.finish().map_err(|_| E2eError::InvalidPrPdu)
}

/// Seals a PrPDU into a BER ClearTransfer or EncrTransfer (§13.2, §13.4); returns the kind, the
/// PDU and the range of the `tbp` content octets in it.
pub(super) fn seal_ber(
    mode: ProtectionMode,
    keys: &mut DirKeys,
    token2: &mut ClearToken2,
    iv16: &[u8; 16],
    pr_pdu: &[u8],
) -> R<(SecPduKind, Vec<u8>, usize, usize)> {
    // The PDU is assembled in one buffer: headers first (all lengths are known in advance),
    // then the payload is encrypted or copied in place, then the ICV is computed over the
    // tbp octets inside that buffer.
    let seq_tag = Tag::SEQUENCE;
    Ok(match mode {
        ProtectionMode::Ae(_) => {
            let nonce = keys.next_nonce()?;
            token2.iv = Some(nonce.to_vec());
            let aad = token2.encode_content();
            let ct_len = pr_pdu.len() + GCM_DEFAULT_TAG_LEN;
            let tbp_len = tlv_len(aad.len()) + tlv_len(ct_len);
            // Slack for the cipher's block of look-ahead output.
            let mut out = Vec::with_capacity(tlv_len(tlv_len(tbp_len)) + 2 * crypto::AES_BLOCK);
            put_header(&mut out, seq_tag, tlv_len(tbp_len));
            put_header(&mut out, seq_tag, tbp_len);
            let start = out.len();
            put_header(&mut out, seq_tag, aad.len());
            out.extend_from_slice(&aad);
            put_header(&mut out, Tag::OCTET_STRING, ct_len);
            keys.gcm_sealer()?
                .seal_into(&nonce, &aad, pr_pdu, GCM_DEFAULT_TAG_LEN, &mut out)?;
            (SecPduKind::EncrTransfer, out, start, start + tbp_len)
        }
        ProtectionMode::NonAe { encr, icv } => {
            let aad = token2.encode_content();
            let payload_len = match encr {
                Some(_) => tlv_len(crypto::cbc_ciphertext_len(pr_pdu.len())),
                None => pr_pdu.len(),
            };
            let tbp_len = tlv_len(aad.len()) + payload_len;
            let nonce = if icv.is_gmac() {
                Some(keys.next_nonce()?)
            } else {
                None
            };
            let icv_len = if icv.is_gmac() {
                GCM_DEFAULT_TAG_LEN
            } else {
                crypto::SHA256_LEN
            };
            let mut auth = Authenticator {
                nonce: nonce.map(|n| n.to_vec()),
                algorithm: icv.id(),
                icv: vec![0; icv_len],
            };
            let auth_len = auth.to_ber().len();
            let mut out =
                Vec::with_capacity(tlv_len(tlv_len(tbp_len) + auth_len) + 2 * crypto::AES_BLOCK);
            put_header(&mut out, seq_tag, tlv_len(tbp_len) + auth_len);
            put_header(&mut out, seq_tag, tbp_len);
            let start = out.len();
            put_header(&mut out, seq_tag, aad.len());
            out.extend_from_slice(&aad);
            match encr {
                Some(_) => {
                    put_header(
                        &mut out,
                        Tag::OCTET_STRING,
                        crypto::cbc_ciphertext_len(pr_pdu.len()),
                    );
                    match keys.cbc() {
                        Some(c) => c.encrypt_into(iv16, pr_pdu, &mut out)?,
                        None => crypto::cbc_encrypt_into(&keys.enc, iv16, pr_pdu, &mut out)?,
                    }
                }
                None => out.extend_from_slice(pr_pdu),
            }
            let end = out.len();
            if end - start != tbp_len {
                return Err(E2eError::Config("tbp length mismatch"));
            }
            auth.icv = icv_tag(icv, keys, nonce.as_ref(), &out[start..end])?;
            let a = auth.to_ber();
            if a.len() != auth_len {
                return Err(E2eError::Config("auth length mismatch"));
            }
            out.extend_from_slice(&a);
            let kind = if encr.is_some() {
                SecPduKind::EncrTransfer
            } else {
                SecPduKind::ClearTransfer
            };
            (kind, out, start, end)
        }
    })
}

/// Seals a PrPDU into an XML ClearTransfer or EncrTransfer (§16.3): the AAD is the characters
/// between `<token2>` and `</token2>`, the ICV covers those between `<tbp>` and `</tbp>`, and
/// the plaintext is the PrPDU's BER octets ([`xml::OPEN_TYPE_FORM`] DECISION). Returns the
/// kind, the UTF-8 PDU and the range of the `tbp` characters in it.
pub(super) fn seal_xml(
    mode: ProtectionMode,
    keys: &mut DirKeys,
    token2: &mut ClearToken2,
    iv16: &[u8; 16],
    pr_pdu: &[u8],
) -> R<(SecPduKind, Vec<u8>, usize, usize)> {
    let (kind, t) = match mode {
        ProtectionMode::Ae(_) => {
            let nonce = keys.next_nonce()?;
            token2.iv = Some(nonce.to_vec());
            let aad = xml::token2_content(token2);
            let mut ct =
                Vec::with_capacity(pr_pdu.len() + GCM_DEFAULT_TAG_LEN + 2 * crypto::AES_BLOCK);
            keys.gcm_sealer()?.seal_into(
                &nonce,
                aad.as_bytes(),
                pr_pdu,
                GCM_DEFAULT_TAG_LEN,
                &mut ct,
            )?;
            let t = xml::assemble_transfer(token2.clone(), aad, ct, true);
            (SecPduKind::EncrTransfer, t)
        }
        ProtectionMode::NonAe { encr, icv } => {
            let aad = xml::token2_content(token2);
            let payload = match encr {
                Some(_) => {
                    let mut ct = Vec::with_capacity(
                        crypto::cbc_ciphertext_len(pr_pdu.len()) + 2 * crypto::AES_BLOCK,
                    );
                    match keys.cbc() {
                        Some(c) => c.encrypt_into(iv16, pr_pdu, &mut ct)?,
                        None => crypto::cbc_encrypt_into(&keys.enc, iv16, pr_pdu, &mut ct)?,
                    }
                    ct
                }
                None => pr_pdu.to_vec(),
            };
            let mut t = xml::assemble_transfer(token2.clone(), aad, payload, encr.is_some());
            let nonce = if icv.is_gmac() {
                Some(keys.next_nonce()?)
            } else {
                None
            };
            let tag = icv_tag(icv, keys, nonce.as_ref(), &t.tbp)?;
            t.auth = Some(Authenticator {
                nonce: nonce.map(|n| n.to_vec()),
                algorithm: icv.id(),
                icv: tag,
            });
            let kind = if encr.is_some() {
                SecPduKind::EncrTransfer
            } else {
                SecPduKind::ClearTransfer
            };
            (kind, t)
        }
    };
    let start = xml::covered_offset(kind).ok_or(E2eError::Config("tbp offset"))?;
    let end = start + t.tbp.len();
    let tbp = t.tbp.clone();
    let pdu = if kind == SecPduKind::EncrTransfer {
        SecPdu::EncrTransfer(t)
    } else {
        SecPdu::ClearTransfer(t)
    };
    let out = xml::encode(&pdu)
        .map_err(|_| E2eError::Config("XML encoding of a transfer"))?
        .into_bytes();
    if out.get(start..end) != Some(&tbp[..]) {
        return Err(E2eError::Config("tbp offset mismatch"));
    }
    Ok((kind, out, start, end))
}

/// The ICV over `data` with one direction's ICV key (§13.4.2).
pub(super) fn icv_tag(
    icv: IcvAlg,
    keys: &mut DirKeys,
    nonce: Option<&[u8; GCM_NONCE_LEN]>,
    data: &[u8],
) -> R<Vec<u8>> {
    Ok(match (icv, nonce) {
        (IcvAlg::HmacSha256, _) => match keys.hmac() {
            // The keyed context of this key (no per-PDU key set-up and digest fetch).
            Some(h) => h.tag(data)?.to_vec(),
            None => crypto::hmac_sha256(&keys.icv, data)?.to_vec(),
        },
        (_, Some(n)) => match keys.gmac() {
            // The keyed context of this key (no per-PDU cipher set-up).
            Some(g) => {
                let mut tag = vec![0; GCM_DEFAULT_TAG_LEN];
                g.tag_into(n, data, &mut tag)?;
                tag
            }
            None => crypto::gmac(&keys.icv, n, data, GCM_DEFAULT_TAG_LEN)?,
        },
        (_, None) => return Err(E2eError::Config("GMAC without nonce")),
    })
}

/// Verifies (ICV or AEAD tag over the octets as received) and decrypts a received
/// ClearTransfer or EncrTransfer with one direction's keys: `Ok(None)` for a clear transfer
/// that verified (its PrPDU is [`TransferView::appl_data`]), `Ok(Some(plaintext))` for an
/// EncrTransfer, `Err(OpenError)` when it does not verify or decrypt. Only the cryptographic
/// check of §14.4 step 5: the structural, time and sequence checks are the engine's. This is
/// what a passive observer holding the keys (`secmms decode --e2e-keylog`) runs.
pub fn open_transfer(
    mode: ProtectionMode,
    k: &mut DirKeys,
    t: &TransferView<'_>,
) -> Result<Option<Zeroizing<Vec<u8>>>, OpenError> {
    open(mode, k, t).map_err(|()| OpenError)
}

/// A transfer did not verify or decrypt with the keys given ([`open_transfer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ICV / AEAD verification or decryption failed")]
pub struct OpenError;

/// Verifies and decrypts a transfer with one direction's keys. `Ok(None)` = clear, verified.
pub(super) fn open(
    mode: ProtectionMode,
    k: &mut DirKeys,
    t: &TransferView<'_>,
) -> Result<Option<Zeroizing<Vec<u8>>>, ()> {
    match mode {
        ProtectionMode::Ae(_) => {
            let nonce = t.token2.iv.as_deref().ok_or(())?;
            k.gcm_opener()
                .map_err(|_| ())?
                .open(nonce, t.token2_content, t.appl_data, GCM_DEFAULT_TAG_LEN)
                .map(Some)
                .map_err(|_| ())
        }
        ProtectionMode::NonAe { encr, icv } => {
            let auth = t.auth.as_ref().ok_or(())?;
            match icv {
                IcvAlg::HmacSha256 => match k.hmac() {
                    Some(h) => h.verify(t.tbp, &auth.icv).map_err(|_| ())?,
                    None => crypto::hmac_sha256_verify(&k.icv, t.tbp, &auth.icv).map_err(|_| ())?,
                },
                _ => {
                    let n = auth.nonce.as_deref().ok_or(())?;
                    match k.gmac() {
                        // The keyed context of this key (no per-PDU cipher set-up).
                        Some(g) => g.verify(n, t.tbp, &auth.icv).map_err(|_| ())?,
                        None => crypto::gmac_verify(&k.icv, n, t.tbp, &auth.icv).map_err(|_| ())?,
                    }
                }
            }
            match encr {
                None => Ok(None),
                Some(_) => {
                    let iv = t.token2.iv.as_deref().ok_or(())?;
                    let pt = match k.cbc() {
                        Some(c) => c.decrypt(iv, t.appl_data),
                        None => crypto::cbc_decrypt(&k.enc, iv, t.appl_data),
                    };
                    pt.map(Some).map_err(|_| ())
                }
            }
        }
    }
}
