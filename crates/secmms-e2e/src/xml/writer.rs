//! The writer: the element builder, the covered areas (`tbs`, `tbp`, `token2` characters) the
//! engine signs or MACs, the recomputation of those areas when a PDU changes encoding, and the
//! SecPDU encoder.

use super::*;

/// Builds element text without whitespace.
pub(super) struct Out(String);

impl Out {
    pub(super) fn new() -> Out {
        Out(String::new())
    }
    pub(super) fn open(&mut self, name: &str) {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
    }
    pub(super) fn close(&mut self, name: &str) {
        // DECISION (§16.3, what XMPP servers do): an element with no content is written
        // `<name/>`, the form Prosody (and other servers that re-serialise stanzas) gives it, so
        // the signed and MACed characters reach the peer unchanged. Text is never written with
        // `<` (it is escaped), so `<name>` at the end of the buffer is this element's start tag.
        let n = self.0.len();
        let start = n.saturating_sub(name.len() + 2);
        if self.0.get(start..) == Some(&format!("<{name}>")[..]) {
            self.0.truncate(n - 1);
            self.0.push_str("/>");
            return;
        }
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }
    pub(super) fn text(&mut self, name: &str, text: &str) {
        self.open(name);
        self.0.push_str(&quick_xml::escape::escape(text));
        self.close(name);
    }
    pub(super) fn binary(&mut self, name: &str, form: BinaryForm, v: &[u8]) {
        self.open(name);
        put_binary(&mut self.0, form, v);
        self.close(name);
    }
    pub(super) fn octets(&mut self, name: &str, v: &[u8]) {
        self.binary(name, OCTET_STRING_FORM, v);
    }
    pub(super) fn alg(&mut self, name: &str, a: &AlgorithmIdentifier) {
        self.open(name);
        self.text("algorithm", &a.algorithm.to_string());
        if let Some(p) = &a.parameters {
            self.binary("parameters", OPEN_TYPE_FORM, p);
        }
        self.close(name);
    }
    pub(super) fn alg_list(&mut self, name: &str, list: &[AlgorithmIdentifier]) {
        self.open(name);
        for a in list {
            self.alg("AlgorithmIdentifier", a);
        }
        self.close(name);
    }
    pub(super) fn token1(&mut self, t: &ClearToken1) {
        self.open("token1");
        self.alg("sigAlg", &t.sig_alg);
        self.octets("pkCert", &t.pk_cert);
        if let Some(p) = &t.cert_path {
            self.octets("certPath", p);
        }
        self.text("version", &version_bits(&t.version));
        self.text("assoID", t.asso_id.as_str());
        self.open("dhKey");
        for d in &t.dh_key {
            self.open("DiffieHellman");
            self.text("dhGroup", &d.group.to_string());
            self.octets("dhPublicKey", &d.public_key);
            self.close("DiffieHellman");
        }
        self.close("dhKey");
        self.alg("hmac", &t.hmac);
        self.text("time", &t.time.to_generalized());
        self.open("encr-mode");
        match &t.encr_mode {
            EncrMode::Aea(list) => self.alg_list("aea", list),
            EncrMode::NonAea { encr, icv } => {
                self.open("non-aea");
                if let Some(e) = encr {
                    self.alg_list("encr", e);
                }
                self.alg_list("icvAlgID", icv);
                self.close("non-aea");
            }
        }
        self.close("encr-mode");
        self.text("confParams", &conf_bits(t.conf_params));
        if let Some(a) = &t.att_cert {
            self.octets("attCert", a);
        }
        self.close("token1");
    }
    pub(super) fn token3(&mut self, t: &ClearToken3) {
        self.open("token3");
        self.alg("sigAlg", &t.sig_alg);
        self.text("version", &version_bits(&t.version));
        if let Some(a) = &t.asso_id {
            self.text("assoID", a.as_str());
        }
        self.text("time", &t.time.to_generalized());
        self.octets("pkCert", &t.pk_cert);
        if let Some(p) = &t.cert_path {
            self.octets("certPath", p);
        }
        self.close("token3");
    }
    pub(super) fn signature(&mut self, s: &Signature) {
        self.open("sign");
        self.alg("algo", &s.algo);
        self.octets("sign", &s.sign);
        self.close("sign");
    }
    pub(super) fn authenticator(&mut self, a: &Authenticator) {
        self.open("auth");
        if let Some(n) = &a.nonce {
            self.octets("nonce", n);
        }
        self.alg("algorithm", &a.algorithm);
        self.octets("icv", &a.icv);
        self.close("auth");
    }
    pub(super) fn root_open(&mut self, kind: SecPduKind) {
        self.0.push('<');
        self.0.push_str(element_name(kind));
        self.0.push_str(" xmlns=\"");
        self.0.push_str(E2E_NS);
        self.0.push_str("\">");
    }
    /// `<name>` + covered characters + `</name>`.
    pub(super) fn covered(&mut self, name: &str, covered: &[u8]) -> XResult<()> {
        let s = std::str::from_utf8(covered).map_err(|_| XmlError::NotXmlForm)?;
        self.open(name);
        self.0.push_str(s);
        self.close(name);
        Ok(())
    }
}

// ====================================================================== covered areas

/// The characters between `<tbs>` and `</tbs>` of HandshakeReq/Acc for a token and applData
/// (what is signed in the XML encoding, §13.4.1, §16.3).
pub fn handshake_tbs(token1: &ClearToken1, appl_data: Option<&[u8]>) -> String {
    let mut o = Out::new();
    o.token1(token1);
    if let Some(a) = appl_data {
        o.binary("applData", OPEN_TYPE_FORM, a);
    }
    o.0
}

/// The characters between `<tbs>` and `</tbs>` of a ClearToken3 PDU.
pub fn token3_tbs(token3: &ClearToken3, body: &Token3Body) -> String {
    let mut o = Out::new();
    o.token3(token3);
    match body {
        Token3Body::ApplData(Some(a)) => o.binary("applData", OPEN_TYPE_FORM, a),
        Token3Body::HandshakeDiag(Some(d)) => o.text("diag", d.name()),
        Token3Body::DtDiag(Some(d)) => o.text("diag", d.name()),
        _ => {}
    }
    o.0
}

/// The characters between `<token2>` and `</token2>` (the AEAD AAD of §13.4.3 in XML).
pub fn token2_content(t: &ClearToken2) -> String {
    let mut o = Out::new();
    o.text("assoID", t.asso_id.as_str());
    o.text("time", &t.time.to_generalized());
    o.text("seq", &t.seq.to_string());
    if let Some(iv) = &t.iv {
        o.octets("iv", iv);
    }
    if let Some(k) = &t.rekey {
        o.octets("rekey", k);
    }
    if t.req_rekey {
        o.text("reqRekey", "true");
    }
    if t.changed_key {
        o.text("changedKey", "true");
    }
    o.0
}

/// Builds a transfer in XML form from a token, its content characters (see [`token2_content`])
/// and the applData: the PrPDU octets for ClearTransfer, the ciphertext when `encrypted`.
/// `auth` is left empty for the caller to compute over `tbp` (the XML counterpart of
/// [`Transfer::assemble`]).
pub fn assemble_transfer(
    token2: ClearToken2,
    token2_content: String,
    appl_data: Vec<u8>,
    encrypted: bool,
) -> Transfer {
    let mut o = Out(String::with_capacity(
        token2_content.len() + appl_data.len() * 2 + 48,
    ));
    o.open("token2");
    o.0.push_str(&token2_content);
    o.close("token2");
    if encrypted {
        o.octets("applData", &appl_data);
    } else {
        o.binary("applData", OPEN_TYPE_FORM, &appl_data);
    }
    Transfer {
        token2,
        appl_data,
        auth: None,
        tbp: o.0.into_bytes(),
        token2_content: token2_content.into_bytes(),
    }
}

/// Octet offset of the first covered character (`tbs` or `tbp` content) in the output of
/// [`encode`] for a PDU of this kind; `None` for HandshakeReq/Acc, where `pp` comes first. The
/// engine uses it to find `tbp` in what it sends.
pub fn covered_offset(kind: SecPduKind) -> Option<usize> {
    let lead = match kind {
        SecPduKind::HandshakeReq | SecPduKind::HandshakeAcc => return None,
        SecPduKind::ClearTransfer | SecPduKind::EncrTransfer => "<tbp>".len(),
        _ => "<tbs>".len(),
    };
    // `<` name ` xmlns="` namespace `">` lead
    Some(1 + element_name(kind).len() + " xmlns=\"".len() + E2E_NS.len() + "\">".len() + lead)
}

/// The same PDU with its covered octets (`tbs`, `tbp`, `token2_content`) recomputed as the
/// canonical XML characters of its values.
pub fn to_xml_form(pdu: &SecPdu) -> SecPdu {
    recompute(pdu, true)
}

/// The same PDU with its covered octets recomputed as BER content octets (so that
/// [`SecPdu::encode`] produces the BER encoding of its values).
pub fn to_ber_form(pdu: &SecPdu) -> SecPdu {
    recompute(pdu, false)
}

pub(super) fn recompute(pdu: &SecPdu, xml: bool) -> SecPdu {
    let hs = |h: &Handshake| Handshake {
        tbs: if xml {
            handshake_tbs(&h.token1, h.appl_data.as_deref()).into_bytes()
        } else {
            Handshake::tbs_content(&h.token1, h.appl_data.as_deref())
        },
        ..h.clone()
    };
    let t3 = |p: &Token3Pdu| Token3Pdu {
        tbs: if xml {
            token3_tbs(&p.token3, &p.body).into_bytes()
        } else {
            Token3Pdu::tbs_content(&p.token3, &p.body)
        },
        ..p.clone()
    };
    let tr = |t: &Transfer, encrypted: bool| {
        let mut n = if xml {
            assemble_transfer(
                t.token2.clone(),
                token2_content(&t.token2),
                t.appl_data.clone(),
                encrypted,
            )
        } else {
            Transfer::assemble(
                t.token2.clone(),
                t.token2.encode_content(),
                t.appl_data.clone(),
                encrypted,
            )
        };
        n.auth = t.auth.clone();
        n
    };
    match pdu {
        SecPdu::HandshakeReq(h) => SecPdu::HandshakeReq(hs(h)),
        SecPdu::HandshakeAcc(h) => SecPdu::HandshakeAcc(hs(h)),
        SecPdu::ApplicationReject(p) => SecPdu::ApplicationReject(t3(p)),
        SecPdu::HandshakeSecReject(p) => SecPdu::HandshakeSecReject(t3(p)),
        SecPdu::HandshakeSecAbort(p) => SecPdu::HandshakeSecAbort(t3(p)),
        SecPdu::DtSecAbort(p) => SecPdu::DtSecAbort(t3(p)),
        SecPdu::ApplAbort(p) => SecPdu::ApplAbort(t3(p)),
        SecPdu::ReleaseReq(p) => SecPdu::ReleaseReq(t3(p)),
        SecPdu::ReleaseRsp(p) => SecPdu::ReleaseRsp(t3(p)),
        SecPdu::ClearTransfer(t) => SecPdu::ClearTransfer(tr(t, false)),
        SecPdu::EncrTransfer(t) => SecPdu::EncrTransfer(tr(t, true)),
    }
}

// ====================================================================== encoder

/// XML encoding of a SecPDU in XML form. The covered areas are emitted verbatim from the stored
/// `tbs` / `tbp` characters (see the module documentation); a PDU whose covered octets are BER
/// gives [`XmlError::NotXmlForm`] (convert it with [`to_xml_form`]).
pub fn encode(pdu: &SecPdu) -> XResult<String> {
    let kind = pdu.kind();
    let mut o = Out(String::with_capacity(256));
    o.root_open(kind);
    match pdu {
        SecPdu::HandshakeReq(h) | SecPdu::HandshakeAcc(h) => {
            o.text("pp", &h.pp);
            o.covered("tbs", &h.tbs)?;
            o.signature(&h.sign);
        }
        SecPdu::ApplicationReject(p)
        | SecPdu::HandshakeSecReject(p)
        | SecPdu::HandshakeSecAbort(p)
        | SecPdu::DtSecAbort(p)
        | SecPdu::ApplAbort(p)
        | SecPdu::ReleaseReq(p)
        | SecPdu::ReleaseRsp(p) => {
            o.covered("tbs", &p.tbs)?;
            o.signature(&p.sign);
        }
        SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t) => {
            o.covered("tbp", &t.tbp)?;
            if let Some(a) = &t.auth {
                o.authenticator(a);
            }
        }
    }
    o.close(element_name(kind));
    Ok(o.0)
}
