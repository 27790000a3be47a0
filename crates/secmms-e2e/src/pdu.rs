//! SecPDU types (§12, §13.1–13.5) and their BER codec.
//!
//! The types mirror the reconstructed ASN.1 of §13.5 and are independent of the encoding: the BER
//! functions live in this module's `encode`/`decode` methods, the XML encoding of the XMPP
//! environment in [`crate::xml`]. Every signed or MACed PDU keeps the **octets as received**
//! (`tbs` / `tbp` content and the ClearToken2 content used as AAD) in the encoding it came in, so
//! verification never runs over a re-encoding (§13.4).

use secmms_ber::{BerError, Limits, Oid, Reader, Tag, Tlv, Writer};

use crate::diag::{DtDiagnostic, HandshakeDiagnostic};
use crate::limits;
use crate::time::TimeStamp;

/// Decoding failure of a SecPDU; always reported as `protocol-error` (§14.3 step 1, §14.4 step 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// BER structure error.
    #[error("BER: {0}")]
    Ber(#[from] BerError),
    /// A value that breaks a constraint of §13.5.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

type DResult<T> = Result<T, DecodeError>;

/// `AlgorithmIdentifier{}` (X.509, §8.1–8.2). `parameters` is the raw parameter TLV.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlgorithmIdentifier {
    /// The algorithm OID.
    pub algorithm: Oid,
    /// The parameters element as encoded, if present.
    pub parameters: Option<Vec<u8>>,
}

/// `Version ::= BIT STRING { v1(0) }` (§13.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// Number of unused bits in the last octet.
    pub unused: u8,
    /// The bit octets.
    pub bits: Vec<u8>,
}

impl Version {
    /// `{ v1 }`, DER `03 02 07 80`.
    pub fn v1() -> Version {
        Version {
            unused: 7,
            bits: vec![0x80],
        }
    }
    /// True when bit v1(0) is set (§14.3 step 8).
    pub fn has_v1(&self) -> bool {
        self.bits.first().is_some_and(|b| b & 0x80 != 0)
    }
}

/// `AssoID ::= NMTOKEN (PATTERN "\d{1,3}:\d{1,3}|\d{1,3}")` (§13.3.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssoId(String);

impl AssoId {
    /// Validates the pattern.
    pub fn new(s: &str) -> Option<AssoId> {
        let ok_num = |p: &str| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        let ok = match s.split_once(':') {
            Some((c, v)) => ok_num(c) && ok_num(v),
            None => ok_num(s),
        };
        ok.then(|| AssoId(s.to_string()))
    }
    /// The client-only form `"c"` (§13.3.1.1 DECISION).
    pub fn client(c: u16) -> AssoId {
        AssoId((c % 1000).to_string())
    }
    /// The full form `"c:s"`.
    pub fn pair(c: &str, s: u16) -> AssoId {
        AssoId(format!("{c}:{}", s % 1000))
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The client part (`c`).
    pub fn client_part(&self) -> &str {
        self.0.split(':').next().unwrap_or("")
    }
    /// True for the `"c:s"` form.
    pub fn is_pair(&self) -> bool {
        self.0.contains(':')
    }
}

/// `DiffieHellman` (§13.3.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiffieHellman {
    /// Group number in the 62351-4 numbering (14, 23, 28).
    pub group: i64,
    /// Public value (§13.3.1.2 DECISION encodings).
    pub public_key: Vec<u8>,
}

/// `encr-mode` of ClearToken1 (§13.3.1.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EncrMode {
    /// `aea`: authenticated-encryption algorithms.
    Aea(Vec<AlgorithmIdentifier>),
    /// `non-aea [0]`: optional encryption algorithms and ICV algorithms.
    NonAea {
        /// `encr [0]`; absent means no encryption.
        encr: Option<Vec<AlgorithmIdentifier>>,
        /// `icvAlgID [1]`.
        icv: Vec<AlgorithmIdentifier>,
    },
}

/// `ConfidentialityParms ::= BIT STRING { tlsProtected(0), applProtected(1), vpn(2) }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConfidentialityParms {
    /// tlsProtected(0).
    pub tls_protected: bool,
    /// applProtected(1).
    pub appl_protected: bool,
    /// vpn(2).
    pub vpn: bool,
}

impl ConfidentialityParms {
    fn octet(self) -> u8 {
        (self.tls_protected as u8) << 7 | (self.appl_protected as u8) << 6 | (self.vpn as u8) << 5
    }
    fn encode(self, w: &mut Writer) {
        // DER named bit list: trailing zero bits removed.
        let o = self.octet();
        if o == 0 {
            w.bit_string(Tag::BIT_STRING, 0, &[]);
        } else {
            w.bit_string(Tag::BIT_STRING, o.trailing_zeros() as u8, &[o]);
        }
    }
    fn decode(t: &Tlv<'_>) -> DResult<Self> {
        let (_, bits) = if t.content() == [0] {
            (0, &[][..])
        } else {
            t.as_bit_string()?
        };
        let o = bits.first().copied().unwrap_or(0);
        Ok(ConfidentialityParms {
            tls_protected: o & 0x80 != 0,
            appl_protected: o & 0x40 != 0,
            vpn: o & 0x20 != 0,
        })
    }
}

/// `ClearToken1` — handshake security parameters (§13.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClearToken1 {
    /// sigAlg.
    pub sig_alg: AlgorithmIdentifier,
    /// pkCert: DER end-entity certificate.
    pub pk_cert: Vec<u8>,
    /// certPath: DER PkiPath of CA certificates.
    pub cert_path: Option<Vec<u8>>,
    /// version.
    pub version: Version,
    /// assoID.
    pub asso_id: AssoId,
    /// dhKey (client: one or more; server: exactly one).
    pub dh_key: Vec<DiffieHellman>,
    /// hmac (HKDF PRF).
    pub hmac: AlgorithmIdentifier,
    /// time.
    pub time: TimeStamp,
    /// encr-mode.
    pub encr_mode: EncrMode,
    /// confParams.
    pub conf_params: ConfidentialityParms,
    /// attCert.
    pub att_cert: Option<Vec<u8>>,
}

/// `ClearToken2` — data-transfer parameters (§13.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClearToken2 {
    /// assoID.
    pub asso_id: AssoId,
    /// time.
    pub time: TimeStamp,
    /// seq (0..2³¹−1).
    pub seq: u32,
    /// iv `[0]`: AES-CBC IV or AES-GCM nonce.
    pub iv: Option<Vec<u8>>,
    /// rekey `[1]`: new client DH public value.
    pub rekey: Option<Vec<u8>>,
    /// reqRekey `[2]`.
    pub req_rekey: bool,
    /// changedKey `[3]`.
    pub changed_key: bool,
}

/// `ClearToken3` — reject, abort and release parameters (§13.3.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClearToken3 {
    /// sigAlg.
    pub sig_alg: AlgorithmIdentifier,
    /// version.
    pub version: Version,
    /// assoID, if known.
    pub asso_id: Option<AssoId>,
    /// time.
    pub time: TimeStamp,
    /// pkCert.
    pub pk_cert: Vec<u8>,
    /// certPath.
    pub cert_path: Option<Vec<u8>>,
}

/// `Signature` (§13.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    /// algo; must equal the token's sigAlg.
    pub algo: AlgorithmIdentifier,
    /// The signature value.
    pub sign: Vec<u8>,
}

/// `Authenticator` (§13.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authenticator {
    /// nonce (mandatory for GMAC).
    pub nonce: Option<Vec<u8>>,
    /// algorithm; must equal the agreed ICV algorithm.
    pub algorithm: AlgorithmIdentifier,
    /// The ICV.
    pub icv: Vec<u8>,
}

/// HandshakeReq and HandshakeAcc (§13.1.3–13.1.4): `{ pp, tbs { token1, applData }, sign }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// pp: the protected-protocol token.
    pub pp: String,
    /// tbs.token1.
    pub token1: ClearToken1,
    /// tbs.applData: the PrPDU TLV (MMS Initiate-Request/Response).
    pub appl_data: Option<Vec<u8>>,
    /// sign.
    pub sign: Signature,
    /// Content octets of `tbs` as sent or received (the signed data).
    pub tbs: Vec<u8>,
}

/// What a ClearToken3 PDU carries besides the token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token3Body {
    /// applData (ApplicationReject, ApplAbort, ReleaseReq, ReleaseRsp).
    ApplData(Option<Vec<u8>>),
    /// HandshakeDiagnostics (HandshakeSecReject, HandshakeSecAbort).
    HandshakeDiag(Option<HandshakeDiagnostic>),
    /// DtDiagnostics (DtSecAbort).
    DtDiag(Option<DtDiagnostic>),
}

/// A signed ClearToken3 PDU: `{ tbs { token3, body }, sign }` (§13.1.5–13.1.11).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token3Pdu {
    /// tbs.token3.
    pub token3: ClearToken3,
    /// tbs body.
    pub body: Token3Body,
    /// sign.
    pub sign: Signature,
    /// Content octets of `tbs` as sent or received.
    pub tbs: Vec<u8>,
    /// The diagnostic number as received when it names no value of §14.2 (the body then holds
    /// `no-reason-given`, DECISION of §14.2.1); `None` otherwise and when sending.
    pub unknown_diag: Option<i64>,
}

/// ClearTransfer and EncrTransfer (§13.2): `{ tbp { token2, applData }, auth }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transfer {
    /// tbp.token2.
    pub token2: ClearToken2,
    /// ClearTransfer: the PrPDU TLV. EncrTransfer: the Encrypted-ApplData octets.
    pub appl_data: Vec<u8>,
    /// auth.
    pub auth: Option<Authenticator>,
    /// Content octets of `tbp` as sent or received (the ICV input).
    pub tbp: Vec<u8>,
    /// Content octets of ClearToken2 as sent or received (the AEAD AAD).
    pub token2_content: Vec<u8>,
}

/// The SecPDU kinds (§12). In BER every SecPDU is an untagged SEQUENCE, so the kind comes from
/// the environment (ACSE APDU and CHOICE alternative, §15.3–15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecPduKind {
    /// HandshakeReq.
    HandshakeReq,
    /// HandshakeAcc.
    HandshakeAcc,
    /// ApplicationReject.
    ApplicationReject,
    /// HandshakeSecReject.
    HandshakeSecReject,
    /// HandshakeSecAbort.
    HandshakeSecAbort,
    /// DtSecAbort.
    DtSecAbort,
    /// ApplAbort.
    ApplAbort,
    /// ReleaseReq.
    ReleaseReq,
    /// ReleaseRsp.
    ReleaseRsp,
    /// ClearTransfer.
    ClearTransfer,
    /// EncrTransfer.
    EncrTransfer,
}

impl SecPduKind {
    /// All kinds.
    pub const ALL: [SecPduKind; 11] = [
        SecPduKind::HandshakeReq,
        SecPduKind::HandshakeAcc,
        SecPduKind::ApplicationReject,
        SecPduKind::HandshakeSecReject,
        SecPduKind::HandshakeSecAbort,
        SecPduKind::DtSecAbort,
        SecPduKind::ApplAbort,
        SecPduKind::ReleaseReq,
        SecPduKind::ReleaseRsp,
        SecPduKind::ClearTransfer,
        SecPduKind::EncrTransfer,
    ];
}

/// One SecPDU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecPdu {
    /// HandshakeReq (§13.1.3).
    HandshakeReq(Handshake),
    /// HandshakeAcc (§13.1.4).
    HandshakeAcc(Handshake),
    /// ApplicationReject.
    ApplicationReject(Token3Pdu),
    /// HandshakeSecReject.
    HandshakeSecReject(Token3Pdu),
    /// HandshakeSecAbort.
    HandshakeSecAbort(Token3Pdu),
    /// DtSecAbort.
    DtSecAbort(Token3Pdu),
    /// ApplAbort.
    ApplAbort(Token3Pdu),
    /// ReleaseReq.
    ReleaseReq(Token3Pdu),
    /// ReleaseRsp.
    ReleaseRsp(Token3Pdu),
    /// ClearTransfer (§13.2).
    ClearTransfer(Transfer),
    /// EncrTransfer (§13.2).
    EncrTransfer(Transfer),
}

// ------------------------------------------------------------------ helpers

/// The octets a signature or ICV covers: the content octets as received, including the
/// end-of-contents octets when the element used the indefinite form (§13.4.1–13.4.2).
pub fn covered_octets<'a>(t: &Tlv<'a>) -> &'a [u8] {
    let raw = t.raw();
    if t.is_indefinite() {
        let n = t.content().len() + 2;
        &raw[raw.len().saturating_sub(n)..]
    } else {
        t.content()
    }
}

fn bounded<'a>(t: Tlv<'a>, max: usize, what: &'static str) -> DResult<Tlv<'a>> {
    if t.content().len() > max {
        Err(DecodeError::Invalid(what))
    } else {
        Ok(t)
    }
}

impl AlgorithmIdentifier {
    fn encode(&self, w: &mut Writer) {
        w.constructed(Tag::SEQUENCE, |w| {
            w.oid(Tag::OID, &self.algorithm);
            if let Some(p) = &self.parameters {
                w.raw(p);
            }
        });
    }
    fn decode(t: &Tlv<'_>) -> DResult<Self> {
        let mut r = t.children()?;
        let algorithm = r.expect(Tag::OID)?.as_oid()?;
        let parameters = if r.is_empty() {
            None
        } else {
            Some(r.read()?.raw().to_vec())
        };
        Ok(AlgorithmIdentifier {
            algorithm,
            parameters,
        })
    }
}

fn alg_list(t: &Tlv<'_>) -> DResult<Vec<AlgorithmIdentifier>> {
    let mut v = Vec::new();
    for e in t.children()? {
        if v.len() >= limits::MAX_ALGORITHMS {
            return Err(DecodeError::Invalid("algorithm list too long"));
        }
        v.push(AlgorithmIdentifier::decode(&e?.check(Tag::SEQUENCE)?)?);
    }
    if v.is_empty() {
        return Err(DecodeError::Invalid("empty algorithm list"));
    }
    Ok(v)
}

trait CheckTag<'a> {
    fn check(self, tag: Tag) -> DResult<Tlv<'a>>;
}
impl<'a> CheckTag<'a> for Tlv<'a> {
    fn check(self, tag: Tag) -> DResult<Tlv<'a>> {
        if self.tag() == tag {
            Ok(self)
        } else {
            Err(BerError::UnexpectedTag {
                expected: tag,
                found: self.tag(),
            }
            .into())
        }
    }
}

fn primitive_octets<'a>(t: Tlv<'a>, max: usize, what: &'static str) -> DResult<&'a [u8]> {
    if t.tag().constructed {
        return Err(DecodeError::Invalid(what));
    }
    Ok(bounded(t, max, what)?.content())
}

fn decode_asso(t: Tlv<'_>) -> DResult<AssoId> {
    let s = primitive_octets(t, 7, "assoID")?;
    let s = std::str::from_utf8(s).map_err(|_| DecodeError::Invalid("assoID"))?;
    AssoId::new(s).ok_or(DecodeError::Invalid("assoID"))
}

fn decode_time(t: Tlv<'_>) -> DResult<TimeStamp> {
    let s = primitive_octets(t, 32, "time")?;
    TimeStamp::parse_generalized(s).map_err(|_| DecodeError::Invalid("time"))
}

fn decode_version(t: &Tlv<'_>) -> DResult<Version> {
    if t.tag().constructed || t.content().len() > 8 {
        return Err(DecodeError::Invalid("version"));
    }
    let (unused, bits) = if t.content() == [0] {
        (0, &[][..])
    } else {
        t.as_bit_string()?
    };
    Ok(Version {
        unused,
        bits: bits.to_vec(),
    })
}

fn encode_version(v: &Version, w: &mut Writer) {
    w.bit_string(Tag::BIT_STRING, v.unused, &v.bits);
}

fn encode_time(t: TimeStamp, w: &mut Writer) {
    w.octets(Tag::GENERALIZED_TIME, t.to_generalized().as_bytes());
}

// ------------------------------------------------------------------ tokens

impl ClearToken1 {
    /// BER encoding (a SEQUENCE TLV).
    pub fn encode(&self, w: &mut Writer) {
        w.constructed(Tag::SEQUENCE, |w| {
            self.sig_alg.encode(w);
            w.octets(Tag::OCTET_STRING, &self.pk_cert);
            if let Some(p) = &self.cert_path {
                w.octets(Tag::OCTET_STRING, p);
            }
            encode_version(&self.version, w);
            w.octets(Tag::UTF8_STRING, self.asso_id.as_str().as_bytes());
            w.constructed(Tag::SEQUENCE, |w| {
                for d in &self.dh_key {
                    w.constructed(Tag::SEQUENCE, |w| {
                        w.integer(Tag::INTEGER, d.group);
                        w.octets(Tag::OCTET_STRING, &d.public_key);
                    });
                }
            });
            self.hmac.encode(w);
            encode_time(self.time, w);
            match &self.encr_mode {
                EncrMode::Aea(list) => w.constructed(Tag::SEQUENCE, |w| {
                    for a in list {
                        a.encode(w);
                    }
                }),
                EncrMode::NonAea { encr, icv } => w.constructed(Tag::context(0, true), |w| {
                    if let Some(e) = encr {
                        w.constructed(Tag::context(0, true), |w| {
                            for a in e {
                                a.encode(w);
                            }
                        });
                    }
                    w.constructed(Tag::context(1, true), |w| {
                        for a in icv {
                            a.encode(w);
                        }
                    });
                }),
            }
            self.conf_params.encode(w);
            if let Some(a) = &self.att_cert {
                w.octets(Tag::OCTET_STRING, a);
            }
        });
    }

    /// Decodes a ClearToken1 SEQUENCE.
    pub fn decode(t: &Tlv<'_>) -> DResult<Self> {
        let mut r = (*t).check(Tag::SEQUENCE)?.children()?;
        let sig_alg = AlgorithmIdentifier::decode(&r.expect(Tag::SEQUENCE)?)?;
        let pk_cert = primitive_octets(r.expect(Tag::OCTET_STRING)?, limits::MAX_CERT, "pkCert")?;
        let cert_path = match r.optional(Tag::OCTET_STRING)? {
            Some(p) => Some(primitive_octets(p, limits::MAX_CERT_PATH, "certPath")?.to_vec()),
            None => None,
        };
        let version = decode_version(&r.expect(Tag::BIT_STRING)?)?;
        let asso_id = decode_asso(r.expect(Tag::UTF8_STRING)?)?;
        let mut dh_key = Vec::new();
        for d in r.expect(Tag::SEQUENCE)?.children()? {
            if dh_key.len() >= limits::MAX_DH_ENTRIES {
                return Err(DecodeError::Invalid("dhKey too long"));
            }
            let mut dr = d?.check(Tag::SEQUENCE)?.children()?;
            let group = dr.expect(Tag::INTEGER)?.as_i64()?;
            let pk = primitive_octets(dr.expect(Tag::OCTET_STRING)?, limits::MAX_DH_VALUE, "dh")?;
            dh_key.push(DiffieHellman {
                group,
                public_key: pk.to_vec(),
            });
        }
        if dh_key.is_empty() {
            return Err(DecodeError::Invalid("empty dhKey"));
        }
        let hmac = AlgorithmIdentifier::decode(&r.expect(Tag::SEQUENCE)?)?;
        let time = decode_time(r.expect(Tag::GENERALIZED_TIME)?)?;
        let em = r.read()?;
        let encr_mode = if em.tag() == Tag::SEQUENCE {
            EncrMode::Aea(alg_list(&em)?)
        } else if em.tag() == Tag::context(0, true) {
            let mut er = em.children()?;
            let encr = match er.optional(Tag::context(0, true))? {
                Some(e) => Some(alg_list(&e)?),
                None => None,
            };
            let icv = alg_list(&er.expect(Tag::context(1, true))?)?;
            EncrMode::NonAea { encr, icv }
        } else {
            return Err(DecodeError::Invalid("encr-mode"));
        };
        let cp = r.expect(Tag::BIT_STRING)?;
        if cp.content().len() > 8 {
            return Err(DecodeError::Invalid("confParams"));
        }
        let conf_params = ConfidentialityParms::decode(&cp)?;
        let att_cert = match r.optional(Tag::OCTET_STRING)? {
            Some(a) => Some(primitive_octets(a, limits::MAX_CERT, "attCert")?.to_vec()),
            None => None,
        };
        Ok(ClearToken1 {
            sig_alg,
            pk_cert: pk_cert.to_vec(),
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
}

impl ClearToken2 {
    /// Content octets (the AAD of §13.4.3).
    pub fn encode_content(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.octets(Tag::UTF8_STRING, self.asso_id.as_str().as_bytes());
        encode_time(self.time, &mut w);
        w.integer(Tag::INTEGER, self.seq as i64);
        if let Some(iv) = &self.iv {
            w.octets(Tag::context(0, false), iv);
        }
        if let Some(k) = &self.rekey {
            w.octets(Tag::context(1, false), k);
        }
        if self.req_rekey {
            w.boolean(Tag::context(2, false), true);
        }
        if self.changed_key {
            w.boolean(Tag::context(3, false), true);
        }
        w.finish()
    }

    /// Decodes a ClearToken2 SEQUENCE.
    pub fn decode(t: &Tlv<'_>) -> DResult<Self> {
        let mut r = (*t).check(Tag::SEQUENCE)?.children()?;
        let asso_id = decode_asso(r.expect(Tag::UTF8_STRING)?)?;
        let time = decode_time(r.expect(Tag::GENERALIZED_TIME)?)?;
        let seq = r.expect(Tag::INTEGER)?.as_i64()?;
        if !(0..=i32::MAX as i64).contains(&seq) {
            return Err(DecodeError::Invalid("seq"));
        }
        let opt = |r: &mut Reader<'_>, n: u32, max: usize| -> DResult<Option<Vec<u8>>> {
            match r.optional(Tag::context(n, false))? {
                Some(t) => Ok(Some(
                    bounded(t, max, "ClearToken2 field")?.content().to_vec(),
                )),
                None => Ok(None),
            }
        };
        let iv = opt(&mut r, 0, 64)?;
        let rekey = opt(&mut r, 1, limits::MAX_DH_VALUE)?;
        let req_rekey = match r.optional(Tag::context(2, false))? {
            Some(b) => b.as_bool()?,
            None => false,
        };
        let changed_key = match r.optional(Tag::context(3, false))? {
            Some(b) => b.as_bool()?,
            None => false,
        };
        Ok(ClearToken2 {
            asso_id,
            time,
            seq: seq as u32,
            iv,
            rekey,
            req_rekey,
            changed_key,
        })
    }
}

impl ClearToken3 {
    /// BER encoding (a SEQUENCE TLV).
    pub fn encode(&self, w: &mut Writer) {
        w.constructed(Tag::SEQUENCE, |w| {
            self.sig_alg.encode(w);
            encode_version(&self.version, w);
            if let Some(a) = &self.asso_id {
                w.octets(Tag::UTF8_STRING, a.as_str().as_bytes());
            }
            encode_time(self.time, w);
            w.octets(Tag::OCTET_STRING, &self.pk_cert);
            if let Some(p) = &self.cert_path {
                w.octets(Tag::OCTET_STRING, p);
            }
        });
    }
    /// Decodes a ClearToken3 SEQUENCE.
    pub fn decode(t: &Tlv<'_>) -> DResult<Self> {
        let mut r = (*t).check(Tag::SEQUENCE)?.children()?;
        let sig_alg = AlgorithmIdentifier::decode(&r.expect(Tag::SEQUENCE)?)?;
        let version = decode_version(&r.expect(Tag::BIT_STRING)?)?;
        let asso_id = match r.optional(Tag::UTF8_STRING)? {
            Some(a) => Some(decode_asso(a)?),
            None => None,
        };
        let time = decode_time(r.expect(Tag::GENERALIZED_TIME)?)?;
        let pk_cert = primitive_octets(r.expect(Tag::OCTET_STRING)?, limits::MAX_CERT, "pkCert")?;
        let cert_path = match r.optional(Tag::OCTET_STRING)? {
            Some(p) => Some(primitive_octets(p, limits::MAX_CERT_PATH, "certPath")?.to_vec()),
            None => None,
        };
        Ok(ClearToken3 {
            sig_alg,
            version,
            asso_id,
            time,
            pk_cert: pk_cert.to_vec(),
            cert_path,
        })
    }
}

impl Signature {
    fn encode(&self, w: &mut Writer) {
        w.constructed(Tag::SEQUENCE, |w| {
            self.algo.encode(w);
            w.octets(Tag::OCTET_STRING, &self.sign);
        });
    }
    fn decode(t: &Tlv<'_>) -> DResult<Self> {
        let mut r = (*t).check(Tag::SEQUENCE)?.children()?;
        let algo = AlgorithmIdentifier::decode(&r.expect(Tag::SEQUENCE)?)?;
        let sign = primitive_octets(r.expect(Tag::OCTET_STRING)?, 1024, "signature")?.to_vec();
        Ok(Signature { algo, sign })
    }
}

impl Authenticator {
    fn encode(&self, w: &mut Writer) {
        w.constructed(Tag::SEQUENCE, |w| {
            if let Some(n) = &self.nonce {
                w.octets(Tag::OCTET_STRING, n);
            }
            self.algorithm.encode(w);
            w.octets(Tag::OCTET_STRING, &self.icv);
        });
    }
    fn decode(t: &Tlv<'_>) -> DResult<Self> {
        let mut r = (*t).check(Tag::SEQUENCE)?.children()?;
        let nonce = match r.optional(Tag::OCTET_STRING)? {
            Some(n) => Some(primitive_octets(n, 64, "nonce")?.to_vec()),
            None => None,
        };
        let algorithm = AlgorithmIdentifier::decode(&r.expect(Tag::SEQUENCE)?)?;
        let icv = primitive_octets(r.expect(Tag::OCTET_STRING)?, 64, "icv")?.to_vec();
        Ok(Authenticator {
            nonce,
            algorithm,
            icv,
        })
    }
}

// ------------------------------------------------------------------ PDUs

impl Handshake {
    /// Content octets of `tbs` for a token and applData (what is signed, §13.4.1).
    pub fn tbs_content(token1: &ClearToken1, appl_data: Option<&[u8]>) -> Vec<u8> {
        let mut w = Writer::new();
        token1.encode(&mut w);
        if let Some(a) = appl_data {
            w.raw(a);
        }
        w.finish()
    }

    fn encode(&self, w: &mut Writer) {
        w.constructed(Tag::SEQUENCE, |w| {
            w.octets(Tag::UTF8_STRING, self.pp.as_bytes());
            w.tlv(Tag::SEQUENCE, &self.tbs);
            self.sign.encode(w);
        });
    }

    fn decode(t: &Tlv<'_>) -> DResult<Self> {
        let mut r = (*t).check(Tag::SEQUENCE)?.children()?;
        let pp = primitive_octets(r.expect(Tag::UTF8_STRING)?, limits::MAX_PP, "pp")?;
        let pp = std::str::from_utf8(pp)
            .map_err(|_| DecodeError::Invalid("pp"))?
            .to_string();
        let tbs = r.expect(Tag::SEQUENCE)?;
        let sign = Signature::decode(&r.expect(Tag::SEQUENCE)?)?;
        let mut tr = tbs.children()?;
        let token1 = ClearToken1::decode(&tr.read()?)?;
        let appl_data = if tr.is_empty() {
            None
        } else {
            Some(tr.read()?.raw().to_vec())
        };
        Ok(Handshake {
            pp,
            token1,
            appl_data,
            sign,
            tbs: covered_octets(&tbs).to_vec(),
        })
    }
}

impl Token3Pdu {
    /// Content octets of `tbs` for a token and body.
    pub fn tbs_content(token3: &ClearToken3, body: &Token3Body) -> Vec<u8> {
        let mut w = Writer::new();
        token3.encode(&mut w);
        match body {
            Token3Body::ApplData(Some(a)) => w.raw(a),
            Token3Body::HandshakeDiag(Some(d)) => w.integer(Tag::ENUMERATED, d.code()),
            Token3Body::DtDiag(Some(d)) => w.integer(Tag::ENUMERATED, d.code()),
            _ => {}
        }
        w.finish()
    }

    fn encode(&self, w: &mut Writer) {
        w.constructed(Tag::SEQUENCE, |w| {
            w.tlv(Tag::SEQUENCE, &self.tbs);
            self.sign.encode(w);
        });
    }

    fn decode(kind: SecPduKind, t: &Tlv<'_>) -> DResult<Self> {
        let mut r = (*t).check(Tag::SEQUENCE)?.children()?;
        let tbs = r.expect(Tag::SEQUENCE)?;
        let sign = Signature::decode(&r.expect(Tag::SEQUENCE)?)?;
        let mut tr = tbs.children()?;
        let token3 = ClearToken3::decode(&tr.read()?)?;
        let next = if tr.is_empty() {
            None
        } else {
            Some(tr.read()?)
        };
        let diag = |n: &Tlv<'_>| -> DResult<i64> {
            let n = (*n).check(Tag::ENUMERATED)?;
            Ok(n.as_i64()?)
        };
        let mut unknown_diag = None;
        let body = match kind {
            SecPduKind::HandshakeSecReject | SecPduKind::HandshakeSecAbort => {
                Token3Body::HandshakeDiag(match next {
                    Some(n) => {
                        let code = diag(&n)?;
                        let d = HandshakeDiagnostic::from_code(code);
                        unknown_diag = d.is_none().then_some(code);
                        Some(d.unwrap_or(HandshakeDiagnostic::NoReasonGiven))
                    }
                    None => None,
                })
            }
            SecPduKind::DtSecAbort => Token3Body::DtDiag(match next {
                Some(n) => {
                    let code = diag(&n)?;
                    let d = DtDiagnostic::from_code(code);
                    unknown_diag = d.is_none().then_some(code);
                    Some(d.unwrap_or(DtDiagnostic::NoReasonGiven))
                }
                None => None,
            }),
            SecPduKind::ApplicationReject => match next {
                Some(n) => Token3Body::ApplData(Some(n.raw().to_vec())),
                None => return Err(DecodeError::Invalid("ApplicationReject without applData")),
            },
            _ => Token3Body::ApplData(next.map(|n| n.raw().to_vec())),
        };
        Ok(Token3Pdu {
            token3,
            body,
            sign,
            tbs: covered_octets(&tbs).to_vec(),
            unknown_diag,
        })
    }
}

impl Transfer {
    /// Builds a transfer from a token, its encoded content (see [`ClearToken2::encode_content`])
    /// and the applData: the PrPDU TLV for ClearTransfer, or the ciphertext when `encrypted`.
    /// `auth` is left empty for the caller to compute over `tbp`.
    pub fn assemble(
        token2: ClearToken2,
        token2_content: Vec<u8>,
        appl_data: Vec<u8>,
        encrypted: bool,
    ) -> Transfer {
        let mut w = Writer::with_capacity(token2_content.len() + appl_data.len() + 16);
        w.tlv(Tag::SEQUENCE, &token2_content);
        if encrypted {
            w.octets(Tag::OCTET_STRING, &appl_data);
        } else {
            w.raw(&appl_data);
        }
        Transfer {
            token2,
            appl_data,
            auth: None,
            tbp: w.finish(),
            token2_content,
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.constructed(Tag::SEQUENCE, |w| {
            w.tlv(Tag::SEQUENCE, &self.tbp);
            if let Some(a) = &self.auth {
                a.encode(w);
            }
        });
    }

    fn decode(encrypted: bool, t: &Tlv<'_>) -> DResult<Self> {
        Ok(TransferView::from_tlv(encrypted, t)?.to_owned())
    }

    /// A view borrowing this transfer's payload, tbp and AAD (the inverse of
    /// [`TransferView::to_owned`]).
    pub fn view(&self) -> TransferView<'_> {
        TransferView {
            token2: self.token2.clone(),
            appl_data: &self.appl_data,
            auth: self.auth.clone(),
            tbp: &self.tbp,
            token2_content: &self.token2_content,
        }
    }
}

/// A received ClearTransfer or EncrTransfer that borrows its payload, tbp and AAD from the
/// input (the engine's receive path uses it to avoid copying the PDU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferView<'a> {
    /// tbp.token2.
    pub token2: ClearToken2,
    /// ClearTransfer: the PrPDU TLV. EncrTransfer: the Encrypted-ApplData octets.
    pub appl_data: &'a [u8],
    /// auth.
    pub auth: Option<Authenticator>,
    /// Octets covered by the ICV (tbp content as received).
    pub tbp: &'a [u8],
    /// Octets of the AAD (ClearToken2 content as received).
    pub token2_content: &'a [u8],
}

impl<'a> TransferView<'a> {
    /// Decodes a whole ClearTransfer (`encrypted = false`) or EncrTransfer PDU.
    pub fn decode(encrypted: bool, bytes: &'a [u8], limits: Limits) -> DResult<Self> {
        if bytes.len() > limits::MAX_SECPDU {
            return Err(DecodeError::Invalid("SecPDU too long"));
        }
        let mut r = Reader::new(bytes, limits);
        let t = r.read()?;
        r.finish()?;
        Self::from_tlv(encrypted, &t)
    }

    fn from_tlv(encrypted: bool, t: &Tlv<'a>) -> DResult<Self> {
        let mut r = (*t).check(Tag::SEQUENCE)?.children()?;
        let tbp = r.expect(Tag::SEQUENCE)?;
        let auth = match r.optional(Tag::SEQUENCE)? {
            Some(a) => Some(Authenticator::decode(&a)?),
            None => None,
        };
        if !encrypted && auth.is_none() {
            return Err(DecodeError::Invalid("ClearTransfer without auth"));
        }
        let mut tr = tbp.children()?;
        let t2 = tr.read()?;
        let token2 = ClearToken2::decode(&t2)?;
        let ad = tr.read()?;
        let appl_data = if encrypted {
            primitive_octets(
                ad.check(Tag::OCTET_STRING)?,
                usize::MAX,
                "Encrypted-ApplData",
            )?
        } else {
            ad.raw()
        };
        Ok(TransferView {
            token2,
            appl_data,
            auth,
            tbp: covered_octets(&tbp),
            token2_content: covered_octets(&t2),
        })
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Transfer {
        Transfer {
            token2: self.token2.clone(),
            appl_data: self.appl_data.to_vec(),
            auth: self.auth.clone(),
            tbp: self.tbp.to_vec(),
            token2_content: self.token2_content.to_vec(),
        }
    }
}

/// Number of octets of a TLV with `content` content octets and a one-octet tag.
pub fn tlv_len(content: usize) -> usize {
    let l = if content < 0x80 {
        1
    } else {
        1 + (usize::BITS as usize / 8 - content.leading_zeros() as usize / 8)
    };
    1 + l + content
}

/// Appends a one-octet tag and a definite length.
pub fn put_header(out: &mut Vec<u8>, tag: Tag, len: usize) {
    tag.encode(out);
    secmms_ber::encode_len(len, out);
}

impl Authenticator {
    /// The BER encoding (a SEQUENCE TLV).
    pub fn to_ber(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.finish()
    }
}

impl SecPdu {
    /// The kind of this PDU.
    pub fn kind(&self) -> SecPduKind {
        match self {
            SecPdu::HandshakeReq(_) => SecPduKind::HandshakeReq,
            SecPdu::HandshakeAcc(_) => SecPduKind::HandshakeAcc,
            SecPdu::ApplicationReject(_) => SecPduKind::ApplicationReject,
            SecPdu::HandshakeSecReject(_) => SecPduKind::HandshakeSecReject,
            SecPdu::HandshakeSecAbort(_) => SecPduKind::HandshakeSecAbort,
            SecPdu::DtSecAbort(_) => SecPduKind::DtSecAbort,
            SecPdu::ApplAbort(_) => SecPduKind::ApplAbort,
            SecPdu::ReleaseReq(_) => SecPduKind::ReleaseReq,
            SecPdu::ReleaseRsp(_) => SecPduKind::ReleaseRsp,
            SecPdu::ClearTransfer(_) => SecPduKind::ClearTransfer,
            SecPdu::EncrTransfer(_) => SecPduKind::EncrTransfer,
        }
    }

    /// BER encoding. Signed and MACed areas are emitted from the stored `tbs` / `tbp` octets.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            SecPdu::HandshakeReq(h) | SecPdu::HandshakeAcc(h) => h.encode(&mut w),
            SecPdu::ApplicationReject(p)
            | SecPdu::HandshakeSecReject(p)
            | SecPdu::HandshakeSecAbort(p)
            | SecPdu::DtSecAbort(p)
            | SecPdu::ApplAbort(p)
            | SecPdu::ReleaseReq(p)
            | SecPdu::ReleaseRsp(p) => p.encode(&mut w),
            SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t) => t.encode(&mut w),
        }
        w.finish()
    }

    /// Decodes one SecPDU of the given kind; the whole input must be consumed.
    pub fn decode(kind: SecPduKind, bytes: &[u8], limits: Limits) -> DResult<SecPdu> {
        if bytes.len() > limits::MAX_SECPDU {
            return Err(DecodeError::Invalid("SecPDU too long"));
        }
        let mut r = Reader::new(bytes, limits);
        let t = r.read()?;
        r.finish()?;
        Ok(match kind {
            SecPduKind::HandshakeReq => SecPdu::HandshakeReq(Handshake::decode(&t)?),
            SecPduKind::HandshakeAcc => SecPdu::HandshakeAcc(Handshake::decode(&t)?),
            SecPduKind::ClearTransfer => SecPdu::ClearTransfer(Transfer::decode(false, &t)?),
            SecPduKind::EncrTransfer => SecPdu::EncrTransfer(Transfer::decode(true, &t)?),
            k => {
                let p = Token3Pdu::decode(k, &t)?;
                match k {
                    SecPduKind::ApplicationReject => SecPdu::ApplicationReject(p),
                    SecPduKind::HandshakeSecReject => SecPdu::HandshakeSecReject(p),
                    SecPduKind::HandshakeSecAbort => SecPdu::HandshakeSecAbort(p),
                    SecPduKind::DtSecAbort => SecPdu::DtSecAbort(p),
                    SecPduKind::ApplAbort => SecPdu::ApplAbort(p),
                    SecPduKind::ReleaseReq => SecPdu::ReleaseReq(p),
                    _ => SecPdu::ReleaseRsp(p),
                }
            }
        })
    }
}
