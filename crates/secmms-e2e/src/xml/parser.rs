//! The pull parser over quick-xml: namespace-aware, bounded by [`XmlLimits`], keeping the exact
//! characters of the covered areas, with one reader per SecPDU component.

use super::*;

/// Which namespace an element is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// The SecPDU namespace, [`E2E_NS`].
    E2e,
    /// The namespace of the environment's own elements, as given to [`Scanner::new`].
    Outer,
    /// Any other namespace, or none.
    Other,
}

/// One step of the reader: a start tag, an end tag, character data or the end of the input.
/// Offsets are octet offsets into the text being read.
#[derive(Debug)]
pub enum Node {
    /// A start tag (an empty-element tag gives an `Open` and then a `Close`).
    Open {
        /// The local name (without prefix).
        name: String,
        /// The namespace the name resolves to.
        ns: Ns,
        /// Offset of `<`.
        start: usize,
        /// Offset just after the start tag's `>` (first content character).
        content: usize,
        /// The start tag itself binds its prefix (or the default namespace) to [`E2E_NS`].
        declares_e2e: bool,
    },
    /// An end tag.
    Close {
        /// Offset of the end tag's `<` (end of the content).
        start: usize,
        /// Offset just after the end tag.
        end: usize,
    },
    /// Character data (references resolved, CDATA sections included).
    Text {
        /// The characters.
        text: String,
        /// Offset where they begin.
        start: usize,
    },
    /// The end of the input.
    Eof,
}

pub(super) struct Parser<'a> {
    r: NsReader<&'a [u8]>,
    outer: &'a str,
    peeked: Option<Node>,
    pending_close: Option<usize>,
    depth: usize,
    elements: usize,
    lim: XmlLimits,
}

pub(super) fn attr_check(e: &BytesStart<'_>, pos: usize) -> XResult<bool> {
    let prefix = e.name().prefix();
    let mut declares = false;
    for a in e.attributes() {
        let a = a.map_err(|_| XmlError::Syntax(pos))?;
        match a.key.as_namespace_binding() {
            Some(decl) => {
                let same = match (decl, prefix) {
                    (PrefixDeclaration::Default, None) => true,
                    (PrefixDeclaration::Named(p), Some(q)) => p == q.as_ref(),
                    _ => false,
                };
                if same && a.value.as_ref() == E2E_NS.as_bytes() {
                    declares = true;
                }
            }
            None => return Err(XmlError::Attribute(pos)),
        }
    }
    Ok(declares)
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str, lim: XmlLimits) -> XResult<Parser<'a>> {
        Parser::with_outer(text, "", lim)
    }

    /// A parser that reports elements in `outer` (when not empty) as [`Ns::Outer`].
    pub(super) fn with_outer(text: &'a str, outer: &'a str, lim: XmlLimits) -> XResult<Parser<'a>> {
        if text.len() > lim.max_len {
            return Err(XmlError::TooLarge(text.len()));
        }
        let mut r = NsReader::from_str(text);
        let c = r.config_mut();
        c.trim_text(false);
        c.expand_empty_elements = false;
        c.check_end_names = true;
        Ok(Parser {
            r,
            outer,
            peeked: None,
            pending_close: None,
            depth: 0,
            elements: 0,
            lim,
        })
    }

    pub(super) fn read_node(&mut self) -> XResult<Node> {
        if let Some(p) = self.pending_close.take() {
            self.depth = self.depth.saturating_sub(1);
            return Ok(Node::Close { start: p, end: p });
        }
        loop {
            let before = self.r.buffer_position() as usize;
            let (ns, ev) = match self.r.read_resolved_event() {
                Ok((ns, ev)) => {
                    let ns = match ns {
                        ResolveResult::Bound(n) if n.as_ref() == E2E_NS.as_bytes() => Ns::E2e,
                        ResolveResult::Bound(n)
                            if !self.outer.is_empty() && n.as_ref() == self.outer.as_bytes() =>
                        {
                            Ns::Outer
                        }
                        _ => Ns::Other,
                    };
                    (ns, ev)
                }
                Err(_) => return Err(XmlError::Syntax(self.r.error_position() as usize)),
            };
            let after = self.r.buffer_position() as usize;
            match ev {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let declares_e2e = attr_check(e, before)?;
                    self.elements += 1;
                    if self.elements > self.lim.max_elements {
                        return Err(XmlError::TooManyElements);
                    }
                    self.depth += 1;
                    if self.depth > self.lim.max_depth {
                        return Err(XmlError::TooDeep);
                    }
                    let name = std::str::from_utf8(e.local_name().as_ref())
                        .map_err(|_| XmlError::Syntax(before))?
                        .to_string();
                    if matches!(ev, Event::Empty(_)) {
                        self.pending_close = Some(after);
                    }
                    return Ok(Node::Open {
                        name,
                        ns,
                        start: before,
                        content: after,
                        declares_e2e,
                    });
                }
                Event::End(_) => {
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Node::Close {
                        start: before,
                        end: after,
                    });
                }
                Event::Text(t) => {
                    let text = t.unescape().map_err(|_| XmlError::Syntax(before))?;
                    return Ok(Node::Text {
                        text: text.into_owned(),
                        start: before,
                    });
                }
                Event::CData(c) => {
                    let text = std::str::from_utf8(&c)
                        .map_err(|_| XmlError::Syntax(before))?
                        .to_string();
                    return Ok(Node::Text {
                        text,
                        start: before,
                    });
                }
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Decl(_) if before == 0 => continue,
                Event::Decl(_) => return Err(XmlError::Syntax(before)),
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Eof => return Ok(Node::Eof),
            }
        }
    }

    pub(super) fn peek(&mut self) -> XResult<&Node> {
        if self.peeked.is_none() {
            self.peeked = Some(self.read_node()?);
        }
        match &self.peeked {
            Some(n) => Ok(n),
            None => Err(XmlError::Syntax(0)),
        }
    }

    pub(super) fn next(&mut self) -> XResult<Node> {
        match self.peeked.take() {
            Some(n) => Ok(n),
            None => self.read_node(),
        }
    }

    /// Skips whitespace-only character data; other character data is an error.
    pub(super) fn skip_ws(&mut self) -> XResult<()> {
        loop {
            match self.peek()? {
                Node::Text { text, start } => {
                    if !text.chars().all(is_xml_ws) {
                        return Err(XmlError::UnexpectedText(*start));
                    }
                    self.next()?;
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next element must be `<name>` in E2E_4; returns the offset of its content.
    pub(super) fn open(&mut self, name: &'static str) -> XResult<usize> {
        match self.try_open(name)? {
            Some(c) => Ok(c),
            None => {
                let pos = match self.peek()? {
                    Node::Open { start, .. } | Node::Close { start, .. } => *start,
                    Node::Text { start, .. } => *start,
                    Node::Eof => 0,
                };
                Err(XmlError::Expected {
                    expected: name,
                    pos,
                })
            }
        }
    }

    /// Consumes `<name>` if it is the next element.
    pub(super) fn try_open(&mut self, want: &'static str) -> XResult<Option<usize>> {
        self.skip_ws()?;
        match self.peek()? {
            Node::Open {
                name, ns, start, ..
            } if name == want => {
                if *ns != Ns::E2e {
                    return Err(XmlError::Namespace(*start));
                }
            }
            _ => return Ok(None),
        }
        match self.next()? {
            Node::Open { content, .. } => Ok(Some(content)),
            _ => Err(XmlError::Syntax(0)),
        }
    }

    /// The next node must be the end tag of the current element; returns its offset.
    pub(super) fn close(&mut self) -> XResult<usize> {
        self.skip_ws()?;
        match self.next()? {
            Node::Close { start, .. } => Ok(start),
            Node::Open { start, .. } => Err(XmlError::UnexpectedElement(start)),
            Node::Text { start, .. } => Err(XmlError::UnexpectedText(start)),
            Node::Eof => Err(XmlError::Syntax(0)),
        }
    }

    /// Like [`Self::close`] for an extensible SEQUENCE: unknown trailing elements are skipped.
    pub(super) fn close_ext(&mut self) -> XResult<usize> {
        loop {
            self.skip_ws()?;
            if UNKNOWN_EXTENSIONS_SKIPPED && matches!(self.peek()?, Node::Open { .. }) {
                self.next()?;
                self.skip_rest()?;
            } else {
                return self.close();
            }
        }
    }

    /// Consumes everything up to the end tag of the element whose start tag was just consumed;
    /// returns the offset just after that end tag.
    pub(super) fn skip_rest(&mut self) -> XResult<usize> {
        let mut depth = 1usize;
        loop {
            match self.next()? {
                Node::Open { .. } => depth += 1,
                Node::Close { end, .. } => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(end);
                    }
                }
                Node::Text { .. } => {}
                Node::Eof => return Err(XmlError::Syntax(0)),
            }
        }
    }

    /// Character data of a simple-typed element up to its end tag (the start tag consumed).
    pub(super) fn text(&mut self) -> XResult<String> {
        let mut s = String::new();
        loop {
            match self.peek()? {
                Node::Text { .. } => {
                    if let Node::Text { text, .. } = self.next()? {
                        if s.is_empty() {
                            s = text;
                        } else {
                            s.push_str(&text);
                        }
                    }
                }
                Node::Open { start, .. } => return Err(XmlError::UnexpectedText(*start)),
                _ => break,
            }
        }
        self.close()?;
        Ok(s)
    }

    pub(super) fn leaf(&mut self, name: &'static str) -> XResult<String> {
        self.open(name)?;
        self.text()
    }

    pub(super) fn opt_leaf(&mut self, name: &'static str) -> XResult<Option<String>> {
        match self.try_open(name)? {
            Some(_) => Ok(Some(self.text()?)),
            None => Ok(None),
        }
    }

    pub(super) fn octets(&mut self, name: &'static str, max: usize) -> XResult<Vec<u8>> {
        let s = self.leaf(name)?;
        parse_binary(OCTET_STRING_FORM, &s, max, name)
    }

    pub(super) fn opt_octets(
        &mut self,
        name: &'static str,
        max: usize,
    ) -> XResult<Option<Vec<u8>>> {
        match self.opt_leaf(name)? {
            Some(s) => Ok(Some(parse_binary(OCTET_STRING_FORM, &s, max, name)?)),
            None => Ok(None),
        }
    }

    /// An open type: BER octets of exactly one element.
    pub(super) fn open_type(&mut self, s: &str, what: &'static str) -> XResult<Vec<u8>> {
        let v = parse_binary(OPEN_TYPE_FORM, s, self.lim.ber.max_len, what)?;
        check_ber_element(&v, &self.lim, what)?;
        Ok(v)
    }

    pub(super) fn opt_open_type(&mut self, name: &'static str) -> XResult<Option<Vec<u8>>> {
        match self.opt_leaf(name)? {
            Some(s) => Ok(Some(self.open_type(&s, name)?)),
            None => Ok(None),
        }
    }

    // ------------------------------------------------------------------ types

    pub(super) fn alg_body(&mut self) -> XResult<AlgorithmIdentifier> {
        let algorithm = parse_oid(&self.leaf("algorithm")?)?;
        let parameters = self.opt_open_type("parameters")?;
        self.close_ext()?;
        Ok(AlgorithmIdentifier {
            algorithm,
            parameters,
        })
    }

    pub(super) fn alg(&mut self, name: &'static str) -> XResult<AlgorithmIdentifier> {
        self.open(name)?;
        self.alg_body()
    }

    pub(super) fn alg_list(&mut self) -> XResult<Vec<AlgorithmIdentifier>> {
        let mut v = Vec::new();
        while self.try_open("AlgorithmIdentifier")?.is_some() {
            if v.len() >= limits::MAX_ALGORITHMS {
                return Err(XmlError::Invalid("algorithm list too long"));
            }
            v.push(self.alg_body()?);
        }
        self.close()?;
        if v.is_empty() {
            return Err(XmlError::Invalid("empty algorithm list"));
        }
        Ok(v)
    }

    pub(super) fn version(&mut self) -> XResult<Version> {
        let bits = parse_bits(&self.leaf("version")?, "version")?;
        Ok(version_from_bits(&bits))
    }

    pub(super) fn token1(&mut self) -> XResult<ClearToken1> {
        self.open("token1")?;
        let sig_alg = self.alg("sigAlg")?;
        let pk_cert = self.octets("pkCert", limits::MAX_CERT)?;
        let cert_path = self.opt_octets("certPath", limits::MAX_CERT_PATH)?;
        let version = self.version()?;
        let asso_id = parse_asso(&self.leaf("assoID")?)?;
        self.open("dhKey")?;
        let mut dh_key = Vec::new();
        while self.try_open("DiffieHellman")?.is_some() {
            if dh_key.len() >= limits::MAX_DH_ENTRIES {
                return Err(XmlError::Invalid("dhKey too long"));
            }
            let group = parse_i64(&self.leaf("dhGroup")?, "dhGroup")?;
            let public_key = self.octets("dhPublicKey", limits::MAX_DH_VALUE)?;
            self.close_ext()?;
            dh_key.push(DiffieHellman { group, public_key });
        }
        self.close()?;
        if dh_key.is_empty() {
            return Err(XmlError::Invalid("empty dhKey"));
        }
        let hmac = self.alg("hmac")?;
        let time = parse_time(&self.leaf("time")?)?;
        self.open("encr-mode")?;
        let encr_mode = if self.try_open("aea")?.is_some() {
            EncrMode::Aea(self.alg_list()?)
        } else if self.try_open("non-aea")?.is_some() {
            let encr = match self.try_open("encr")? {
                Some(_) => Some(self.alg_list()?),
                None => None,
            };
            self.open("icvAlgID")?;
            let icv = self.alg_list()?;
            self.close()?;
            EncrMode::NonAea { encr, icv }
        } else {
            return Err(XmlError::Invalid("encr-mode"));
        };
        self.close()?;
        let cp = parse_bits(&self.leaf("confParams")?, "confParams")?;
        let conf_params = ConfidentialityParms {
            tls_protected: cp.first().copied().unwrap_or(false),
            appl_protected: cp.get(1).copied().unwrap_or(false),
            vpn: cp.get(2).copied().unwrap_or(false),
        };
        let att_cert = self.opt_octets("attCert", limits::MAX_CERT)?;
        self.close_ext()?;
        Ok(ClearToken1 {
            sig_alg,
            pk_cert,
            cert_path,
            version,
            asso_id,
            dh_key,
            hmac,
            time,
            encr_mode,
            conf_params,
            att_cert,
        })
    }

    pub(super) fn token3(&mut self) -> XResult<ClearToken3> {
        self.open("token3")?;
        let sig_alg = self.alg("sigAlg")?;
        let version = self.version()?;
        let asso_id = match self.opt_leaf("assoID")? {
            Some(s) => Some(parse_asso(&s)?),
            None => None,
        };
        let time = parse_time(&self.leaf("time")?)?;
        let pk_cert = self.octets("pkCert", limits::MAX_CERT)?;
        let cert_path = self.opt_octets("certPath", limits::MAX_CERT_PATH)?;
        self.close_ext()?;
        Ok(ClearToken3 {
            sig_alg,
            version,
            asso_id,
            time,
            pk_cert,
            cert_path,
        })
    }

    /// The token2 element; returns the token and the range of its content.
    pub(super) fn token2(&mut self) -> XResult<(ClearToken2, Range<usize>)> {
        let start = self.open("token2")?;
        let asso_id = parse_asso(&self.leaf("assoID")?)?;
        let time = parse_time(&self.leaf("time")?)?;
        let seq = parse_i64(&self.leaf("seq")?, "seq")?;
        if !(0..=i32::MAX as i64).contains(&seq) {
            return Err(XmlError::Invalid("seq"));
        }
        let iv = self.opt_octets("iv", 64)?;
        let rekey = self.opt_octets("rekey", limits::MAX_DH_VALUE)?;
        let req_rekey = match self.opt_leaf("reqRekey")? {
            Some(s) => parse_bool(&s, "reqRekey")?,
            None => false,
        };
        let changed_key = match self.opt_leaf("changedKey")? {
            Some(s) => parse_bool(&s, "changedKey")?,
            None => false,
        };
        let end = self.close_ext()?;
        Ok((
            ClearToken2 {
                asso_id,
                time,
                seq: seq as u32,
                iv,
                rekey,
                req_rekey,
                changed_key,
            },
            start..end,
        ))
    }

    pub(super) fn signature(&mut self) -> XResult<Signature> {
        self.open("sign")?;
        let algo = self.alg("algo")?;
        let sign = self.octets("sign", 1024)?;
        self.close_ext()?;
        Ok(Signature { algo, sign })
    }

    pub(super) fn authenticator(&mut self) -> XResult<Option<Authenticator>> {
        if self.try_open("auth")?.is_none() {
            return Ok(None);
        }
        let nonce = self.opt_octets("nonce", 64)?;
        let algorithm = self.alg("algorithm")?;
        let icv = self.octets("icv", 64)?;
        self.close_ext()?;
        Ok(Some(Authenticator {
            nonce,
            algorithm,
            icv,
        }))
    }

    // ------------------------------------------------------------------ PDUs

    pub(super) fn handshake(&mut self, src: &str) -> XResult<Handshake> {
        let pp = self.leaf("pp")?;
        let pp = trim_ws(&pp);
        if pp.is_empty() || pp.len() > limits::MAX_PP || pp.chars().any(is_xml_ws) {
            return Err(XmlError::Invalid("pp"));
        }
        let pp = pp.to_string();
        let start = self.open("tbs")?;
        let token1 = self.token1()?;
        let appl_data = self.opt_open_type("applData")?;
        let end = self.close_ext()?;
        let sign = self.signature()?;
        Ok(Handshake {
            pp,
            token1,
            appl_data,
            sign,
            tbs: covered(src, start..end)?,
        })
    }

    pub(super) fn token3_pdu(&mut self, kind: SecPduKind, src: &str) -> XResult<Token3Pdu> {
        let start = self.open("tbs")?;
        let token3 = self.token3()?;
        let body = match kind {
            SecPduKind::HandshakeSecReject | SecPduKind::HandshakeSecAbort => {
                Token3Body::HandshakeDiag(match self.opt_leaf("diag")? {
                    Some(s) => Some(diag_from_name(&s, HandshakeDiagnostic::ALL)?),
                    None => None,
                })
            }
            SecPduKind::DtSecAbort => Token3Body::DtDiag(match self.opt_leaf("diag")? {
                Some(s) => Some(diag_from_name(&s, DtDiagnostic::ALL)?),
                None => None,
            }),
            SecPduKind::ApplicationReject => match self.opt_open_type("applData")? {
                Some(a) => Token3Body::ApplData(Some(a)),
                None => return Err(XmlError::Invalid("ApplicationReject without applData")),
            },
            _ => Token3Body::ApplData(self.opt_open_type("applData")?),
        };
        let end = self.close_ext()?;
        let sign = self.signature()?;
        Ok(Token3Pdu {
            token3,
            body,
            sign,
            tbs: covered(src, start..end)?,
            unknown_diag: None,
        })
    }

    pub(super) fn transfer(&mut self, encrypted: bool, src: &str) -> XResult<Transfer> {
        let start = self.open("tbp")?;
        let (token2, t2) = self.token2()?;
        let ad = self.leaf("applData")?;
        let appl_data = if encrypted {
            parse_binary(
                OCTET_STRING_FORM,
                &ad,
                limits::MAX_SECPDU,
                "Encrypted-ApplData",
            )?
        } else {
            self.open_type(&ad, "applData")?
        };
        let end = self.close_ext()?;
        let auth = self.authenticator()?;
        if !encrypted && auth.is_none() {
            return Err(XmlError::Invalid("ClearTransfer without auth"));
        }
        Ok(Transfer {
            token2,
            appl_data,
            auth,
            tbp: covered(src, start..end)?,
            token2_content: covered(src, t2)?,
        })
    }

    /// Skips whitespace, comments and PIs after the root element; then the input must end.
    pub(super) fn finish(&mut self) -> XResult<()> {
        self.skip_ws()?;
        match self.next()? {
            Node::Eof => Ok(()),
            Node::Open { start, .. } => Err(XmlError::UnexpectedElement(start)),
            Node::Close { start, .. } | Node::Text { start, .. } => Err(XmlError::Syntax(start)),
        }
    }
}

pub(super) fn covered(src: &str, r: Range<usize>) -> XResult<Vec<u8>> {
    src.get(r)
        .map(|s| s.as_bytes().to_vec())
        .ok_or(XmlError::Syntax(0))
}

/// An ENUMERATED identifier. DECISION (as for BER numbers, §14.2): a well-formed identifier
/// this implementation does not know decodes as `no-reason-given`.
pub(super) fn diag_from_name<D: Copy + DiagName>(s: &str, all: &[D]) -> XResult<D> {
    let s = trim_ws(s);
    let well_formed = s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !well_formed {
        return Err(XmlError::Invalid("diag"));
    }
    all.iter()
        .copied()
        .find(|d| d.diag_name() == s)
        .or_else(|| all.first().copied())
        .ok_or(XmlError::Invalid("diag"))
}

pub(super) trait DiagName {
    fn diag_name(self) -> &'static str;
}
impl DiagName for HandshakeDiagnostic {
    fn diag_name(self) -> &'static str {
        self.name()
    }
}
impl DiagName for DtDiagnostic {
    fn diag_name(self) -> &'static str {
        self.name()
    }
}
