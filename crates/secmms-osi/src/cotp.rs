//! ISO 8073 / X.224 transport protocol class 0 (TP0): CR, CC, DR, DT and ER TPDUs, TPDU-size
//! negotiation, segmentation and reassembly (reference §3, Annex H).

use crate::limits::{TPDU_SIZE_CODE_ACCEPT_MAX, TPDU_SIZE_CODE_MIN};

/// TPDU code of a Connection Request (high nibble; low nibble = CDT, 0 in class 0).
pub const CODE_CR: u8 = 0xE0;
/// TPDU code of a Connection Confirm.
pub const CODE_CC: u8 = 0xD0;
/// TPDU code of a Disconnect Request.
pub const CODE_DR: u8 = 0x80;
/// TPDU code of a Data TPDU.
pub const CODE_DT: u8 = 0xF0;
/// TPDU code of a TPDU Error.
pub const CODE_ER: u8 = 0x70;
/// Parameter code: TPDU size (value = log2 of the size).
pub const PARAM_TPDU_SIZE: u8 = 0xC0;
/// Parameter code: calling transport selector.
pub const PARAM_CALLING_TSEL: u8 = 0xC1;
/// Parameter code: called transport selector.
pub const PARAM_CALLED_TSEL: u8 = 0xC2;
/// Parameter code in an ER TPDU: the bit pattern of the rejected TPDU.
pub const PARAM_INVALID_TPDU: u8 = 0xC1;
/// Parameter code in a DR TPDU: additional clearing information.
pub const PARAM_ADDITIONAL_INFO: u8 = 0xE0;
/// EOT bit of the DT TPDU's third octet.
pub const DT_EOT: u8 = 0x80;

/// DR reasons used by secmms (ISO 8073 §13.5.3; reference §3.5).
pub mod dr_reason {
    /// Reason not specified.
    pub const NOT_SPECIFIED: u8 = 0;
    /// Address (TSAP) unknown.
    pub const ADDRESS_UNKNOWN: u8 = 3;
    /// Normal disconnect initiated by the session entity.
    pub const NORMAL: u8 = 128;
    /// Connection negotiation failed (e.g. class other than 0 proposed).
    pub const NEGOTIATION_FAILED: u8 = 130;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u8 = 133;
    /// Header or parameter length invalid.
    pub const HEADER_LENGTH_INVALID: u8 = 138;
}

/// ER reject causes (ISO 8073 §13.12.3; reference §3.5).
pub mod er_cause {
    /// Reason not specified.
    pub const NOT_SPECIFIED: u8 = 0;
    /// Invalid parameter code.
    pub const INVALID_PARAMETER_CODE: u8 = 1;
    /// Invalid TPDU type.
    pub const INVALID_TPDU_TYPE: u8 = 2;
    /// Invalid parameter value.
    pub const INVALID_PARAMETER_VALUE: u8 = 3;
}

/// Errors of TP0 decoding and reassembly. [`CotpError::er_cause`] maps each to an ER cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CotpError {
    /// The TPDU is shorter than its header.
    #[error("truncated TPDU")]
    Truncated,
    /// The length indicator does not fit the TPDU or the TPDU type.
    #[error("invalid TPDU length indicator {0}")]
    BadLengthIndicator(u8),
    /// A TPDU type not used in class 0.
    #[error("TPDU type {0:#04x} not supported in class 0")]
    UnsupportedTpdu(u8),
    /// A parameter with an invalid length or value.
    #[error("invalid TPDU parameter {0:#04x}")]
    BadParameter(u8),
    /// A TPDU size code outside 7..=13.
    #[error("invalid TPDU size code {0}")]
    BadTpduSize(u8),
    /// A transport selector longer than the limit.
    #[error("transport selector of {0} octets too long")]
    SelectorTooLong(usize),
    /// A CR TPDU whose destination reference is not zero.
    #[error("CR TPDU with destination reference {0:#06x}, expected 0")]
    CrDestinationReference(u16),
    /// A DT TPDU without user data.
    #[error("DT TPDU without user data")]
    EmptyData,
    /// A reassembled TSDU over the limit (Annex H).
    #[error("TSDU exceeds the limit of {0} octets")]
    TsduTooLarge(usize),
    /// A TPDU larger than the negotiated TPDU size, or an encoding that cannot be represented.
    #[error("TPDU of {len} octets exceeds the size {max}")]
    TpduTooLarge {
        /// Octets in the TPDU.
        len: usize,
        /// Limit in force.
        max: usize,
    },
}

impl CotpError {
    /// The ER reject cause matching this error.
    pub fn er_cause(&self) -> u8 {
        match self {
            CotpError::UnsupportedTpdu(_) => er_cause::INVALID_TPDU_TYPE,
            CotpError::BadParameter(_)
            | CotpError::BadTpduSize(_)
            | CotpError::SelectorTooLong(_) => er_cause::INVALID_PARAMETER_VALUE,
            _ => er_cause::NOT_SPECIFIED,
        }
    }
}

/// A TPDU size, held as its ISO 8073 code (size = 2^code octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TpduSize(u8);

impl TpduSize {
    /// 128 octets: the size when no `C0` parameter is present.
    pub const S128: TpduSize = TpduSize(7);
    /// 1024 octets.
    pub const S1024: TpduSize = TpduSize(10);
    /// 2048 octets: the class-0 maximum.
    pub const S2048: TpduSize = TpduSize(11);
    /// 8192 octets (proposed by libiec61850).
    pub const S8192: TpduSize = TpduSize(13);

    /// A size from its code; codes 7 (128) to 13 (8192) are accepted.
    pub fn from_code(code: u8) -> Result<Self, CotpError> {
        if (TPDU_SIZE_CODE_MIN..=TPDU_SIZE_CODE_ACCEPT_MAX).contains(&code) {
            Ok(TpduSize(code))
        } else {
            Err(CotpError::BadTpduSize(code))
        }
    }
    /// The code.
    pub fn code(self) -> u8 {
        self.0
    }
    /// The size in octets.
    pub fn octets(self) -> usize {
        1usize << self.0
    }
    /// Most user octets a DT TPDU of this size carries (size − 3, reference §3.3).
    pub fn dt_payload(self) -> usize {
        self.octets() - 3
    }
}

/// CR or CC TPDU (ISO 8073 §13.3, §13.4), class 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTpdu {
    /// DST-REF (0 in a CR).
    pub dst_ref: u16,
    /// SRC-REF.
    pub src_ref: u16,
    /// Class and options octet (high nibble = class).
    pub class_options: u8,
    /// `C0` TPDU size, if present.
    pub tpdu_size: Option<TpduSize>,
    /// `C1` calling transport selector, if present.
    pub calling_tsel: Option<Vec<u8>>,
    /// `C2` called transport selector, if present.
    pub called_tsel: Option<Vec<u8>>,
}

impl ConnectTpdu {
    /// The proposed class (high nibble of the class/options octet).
    pub fn class(&self) -> u8 {
        self.class_options >> 4
    }
}

/// DR TPDU (ISO 8073 §13.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectTpdu {
    /// DST-REF.
    pub dst_ref: u16,
    /// SRC-REF.
    pub src_ref: u16,
    /// Reason ([`dr_reason`]).
    pub reason: u8,
    /// `E0` additional clearing information.
    pub additional_info: Option<Vec<u8>>,
}

/// ER TPDU (ISO 8073 §13.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorTpdu {
    /// DST-REF.
    pub dst_ref: u16,
    /// Reject cause ([`er_cause`]).
    pub cause: u8,
    /// `C1` bit pattern of the rejected TPDU.
    pub invalid_tpdu: Option<Vec<u8>>,
}

/// DT TPDU (ISO 8073 §13.7), class 0 (no TPDU-NR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTpdu {
    /// End of TSDU.
    pub eot: bool,
    /// User data.
    pub data: Vec<u8>,
}

/// A class-0 TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu {
    /// Connection Request.
    Cr(ConnectTpdu),
    /// Connection Confirm.
    Cc(ConnectTpdu),
    /// Disconnect Request.
    Dr(DisconnectTpdu),
    /// Data.
    Dt(DataTpdu),
    /// TPDU Error.
    Er(ErrorTpdu),
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    ((b[i] as u16) << 8) | b[i + 1] as u16
}

/// Iterates `code, length, value` parameters of a variable part.
fn params(mut var: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), CotpError>> {
    std::iter::from_fn(move || {
        if var.is_empty() {
            return None;
        }
        if var.len() < 2 {
            var = &[];
            return Some(Err(CotpError::Truncated));
        }
        let code = var[0];
        let len = var[1] as usize;
        if var.len() < 2 + len {
            var = &[];
            return Some(Err(CotpError::BadParameter(code)));
        }
        let v = &var[2..2 + len];
        var = &var[2 + len..];
        Some(Ok((code, v)))
    })
}

impl Tpdu {
    /// Decodes one TPDU (the payload of one TPKT). `max_tsel` bounds transport selectors.
    pub fn decode(buf: &[u8], max_tsel: usize) -> Result<Tpdu, CotpError> {
        let li = *buf.first().ok_or(CotpError::Truncated)?;
        let code = *buf.get(1).ok_or(CotpError::Truncated)?;
        if li == 0 || li == 255 || li as usize + 1 > buf.len() {
            return Err(CotpError::BadLengthIndicator(li));
        }
        let hdr = &buf[1..1 + li as usize];
        let rest = &buf[1 + li as usize..];
        match code & 0xF0 {
            CODE_DT => {
                if li != 2 {
                    return Err(CotpError::BadLengthIndicator(li));
                }
                if rest.is_empty() {
                    return Err(CotpError::EmptyData);
                }
                Ok(Tpdu::Dt(DataTpdu {
                    eot: hdr[1] & DT_EOT != 0,
                    data: rest.to_vec(),
                }))
            }
            CODE_CR | CODE_CC => {
                if li < 6 {
                    return Err(CotpError::BadLengthIndicator(li));
                }
                // X.224 §13.3.3: a CR's DST-REF is zero.
                if code & 0xF0 == CODE_CR && u16_at(hdr, 1) != 0 {
                    return Err(CotpError::CrDestinationReference(u16_at(hdr, 1)));
                }
                let mut t = ConnectTpdu {
                    dst_ref: u16_at(hdr, 1),
                    src_ref: u16_at(hdr, 3),
                    class_options: hdr[5],
                    tpdu_size: None,
                    calling_tsel: None,
                    called_tsel: None,
                };
                for p in params(&hdr[6..]) {
                    let (pc, v) = p?;
                    match pc {
                        PARAM_TPDU_SIZE => {
                            let [c] = v else {
                                return Err(CotpError::BadParameter(pc));
                            };
                            t.tpdu_size = Some(TpduSize::from_code(*c)?);
                        }
                        PARAM_CALLING_TSEL | PARAM_CALLED_TSEL => {
                            if v.len() > max_tsel {
                                return Err(CotpError::SelectorTooLong(v.len()));
                            }
                            if pc == PARAM_CALLING_TSEL {
                                t.calling_tsel = Some(v.to_vec());
                            } else {
                                t.called_tsel = Some(v.to_vec());
                            }
                        }
                        // Unknown and non-class-0 parameters are skipped by length (reference §3.3).
                        _ => {}
                    }
                }
                // Class 0 carries no user data in CR/CC; tolerate and ignore none.
                if !rest.is_empty() {
                    return Err(CotpError::BadLengthIndicator(li));
                }
                Ok(if code & 0xF0 == CODE_CR {
                    Tpdu::Cr(t)
                } else {
                    Tpdu::Cc(t)
                })
            }
            CODE_DR => {
                if li < 6 {
                    return Err(CotpError::BadLengthIndicator(li));
                }
                let mut t = DisconnectTpdu {
                    dst_ref: u16_at(hdr, 1),
                    src_ref: u16_at(hdr, 3),
                    reason: hdr[5],
                    additional_info: None,
                };
                for p in params(&hdr[6..]) {
                    let (pc, v) = p?;
                    if pc == PARAM_ADDITIONAL_INFO {
                        t.additional_info = Some(v.to_vec());
                    }
                }
                Ok(Tpdu::Dr(t))
            }
            CODE_ER => {
                if li < 4 {
                    return Err(CotpError::BadLengthIndicator(li));
                }
                let mut t = ErrorTpdu {
                    dst_ref: u16_at(hdr, 1),
                    cause: hdr[3],
                    invalid_tpdu: None,
                };
                for p in params(&hdr[4..]) {
                    let (pc, v) = p?;
                    if pc == PARAM_INVALID_TPDU {
                        t.invalid_tpdu = Some(v.to_vec());
                    }
                }
                Ok(Tpdu::Er(t))
            }
            _ => Err(CotpError::UnsupportedTpdu(code)),
        }
    }

    /// Encodes the TPDU (without TPKT header).
    pub fn encode(&self) -> Result<Vec<u8>, CotpError> {
        let mut out = vec![0u8];
        let push_param = |out: &mut Vec<u8>, code: u8, v: &[u8]| -> Result<(), CotpError> {
            let l = u8::try_from(v.len()).map_err(|_| CotpError::BadParameter(code))?;
            out.push(code);
            out.push(l);
            out.extend_from_slice(v);
            Ok(())
        };
        match self {
            Tpdu::Dt(d) => {
                out.extend_from_slice(&[CODE_DT, if d.eot { DT_EOT } else { 0 }]);
                out[0] = 2;
                out.extend_from_slice(&d.data);
                return Ok(out);
            }
            Tpdu::Cr(t) | Tpdu::Cc(t) => {
                out.push(if matches!(self, Tpdu::Cr(_)) {
                    CODE_CR
                } else {
                    CODE_CC
                });
                out.extend_from_slice(&t.dst_ref.to_be_bytes());
                out.extend_from_slice(&t.src_ref.to_be_bytes());
                out.push(t.class_options);
                // Order as libiec61850 sends it: C0, C2, C1 (reference §3.3).
                if let Some(s) = t.tpdu_size {
                    push_param(&mut out, PARAM_TPDU_SIZE, &[s.code()])?;
                }
                if let Some(s) = &t.called_tsel {
                    push_param(&mut out, PARAM_CALLED_TSEL, s)?;
                }
                if let Some(s) = &t.calling_tsel {
                    push_param(&mut out, PARAM_CALLING_TSEL, s)?;
                }
            }
            Tpdu::Dr(t) => {
                out.push(CODE_DR);
                out.extend_from_slice(&t.dst_ref.to_be_bytes());
                out.extend_from_slice(&t.src_ref.to_be_bytes());
                out.push(t.reason);
                if let Some(a) = &t.additional_info {
                    push_param(&mut out, PARAM_ADDITIONAL_INFO, a)?;
                }
            }
            Tpdu::Er(t) => {
                out.push(CODE_ER);
                out.extend_from_slice(&t.dst_ref.to_be_bytes());
                out.push(t.cause);
                if let Some(a) = &t.invalid_tpdu {
                    push_param(&mut out, PARAM_INVALID_TPDU, a)?;
                }
            }
        }
        let li = out.len() - 1;
        if li > 254 {
            return Err(CotpError::TpduTooLarge { len: li, max: 254 });
        }
        out[0] = li as u8;
        Ok(out)
    }
}

/// Splits a TSDU into DT TPDUs of at most `size` octets, the last with EOT (ISO 8073 §6.3).
/// An empty TSDU gives one DT with EOT and no data is not allowed in class 0, so it yields none.
pub fn segment(tsdu: &[u8], size: TpduSize) -> Vec<Vec<u8>> {
    let n = size.dt_payload();
    let chunks: Vec<&[u8]> = tsdu.chunks(n).collect();
    let last = chunks.len().saturating_sub(1);
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut dt = Vec::with_capacity(3 + c.len());
            dt.extend_from_slice(&[2, CODE_DT, if i == last { DT_EOT } else { 0 }]);
            dt.extend_from_slice(c);
            dt
        })
        .collect()
}

/// Reassembles DT TPDUs into TSDUs, bounded by a maximum TSDU size (Annex H).
#[derive(Debug, Clone)]
pub struct Reassembler {
    buf: Vec<u8>,
    max_tsdu: usize,
}

impl Reassembler {
    /// A reassembler refusing TSDUs over `max_tsdu` octets.
    pub fn new(max_tsdu: usize) -> Self {
        Reassembler {
            buf: Vec::new(),
            max_tsdu,
        }
    }
    /// Adds one DT; returns the TSDU when the DT carried EOT.
    pub fn push(&mut self, dt: DataTpdu) -> Result<Option<Vec<u8>>, CotpError> {
        if self.buf.len() + dt.data.len() > self.max_tsdu {
            self.buf = Vec::new();
            return Err(CotpError::TsduTooLarge(self.max_tsdu));
        }
        if self.buf.is_empty() && dt.eot {
            return Ok(Some(dt.data));
        }
        self.buf.extend_from_slice(&dt.data);
        if dt.eot {
            Ok(Some(std::mem::take(&mut self.buf)))
        } else {
            Ok(None)
        }
    }
    /// True when a TSDU is partly received.
    pub fn in_progress(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn libiec61850_cr_and_cc() {
        let cr = Tpdu::decode(&h("11 E0 0000 0001 00 C0 01 0D C2 02 0001 C1 02 0001"), 4).unwrap();
        let Tpdu::Cr(c) = &cr else { panic!() };
        assert_eq!(c.tpdu_size, Some(TpduSize::S8192));
        assert_eq!(c.calling_tsel.as_deref(), Some(&[0, 1][..]));
        assert_eq!(c.called_tsel.as_deref(), Some(&[0, 1][..]));
        assert_eq!(c.class(), 0);
        assert_eq!(
            cr.encode().unwrap(),
            h("11 E0 0000 0001 00 C0 01 0D C2 02 0001 C1 02 0001")
        );
        // ICCP peer: CC without TSAPs.
        let cc = Tpdu::decode(&h("09 D0 B001 1802 00 C0 01 0A"), 4).unwrap();
        assert!(matches!(
            cc,
            Tpdu::Cc(ConnectTpdu {
                src_ref: 0x1802,
                called_tsel: None,
                ..
            })
        ));
    }

    #[test]
    fn unknown_params_skipped_and_errors() {
        let t = Tpdu::decode(&h("0F E0 0000 0001 00 C6 01 00 F0 01 05 C0 01 0B"), 4).unwrap();
        assert!(matches!(
            t,
            Tpdu::Cr(ConnectTpdu {
                tpdu_size: Some(TpduSize::S2048),
                ..
            })
        ));
        assert_eq!(
            Tpdu::decode(&h("09 E0 0000 0001 00 C0 01 05"), 4),
            Err(CotpError::BadTpduSize(5))
        );
        assert_eq!(
            Tpdu::decode(&h("06 60 0000 0001 00"), 4),
            Err(CotpError::UnsupportedTpdu(0x60))
        );
        assert_eq!(Tpdu::decode(&h("02 F0 80"), 4), Err(CotpError::EmptyData));
        assert_eq!(
            Tpdu::decode(&h("0D E0 0000 0001 00 C1 05 0102030405"), 4),
            Err(CotpError::SelectorTooLong(5))
        );
    }

    #[test]
    fn dr_and_er_golden() {
        // Reference §3.5 examples.
        let dr = Tpdu::decode(&h("06 80 0001 0001 80"), 4).unwrap();
        assert_eq!(dr.encode().unwrap(), h("06 80 0001 0001 80"));
        let er = Tpdu::decode(&h("08 70 0001 02 C1 02 05 60"), 4).unwrap();
        assert!(matches!(&er, Tpdu::Er(ErrorTpdu { cause: 2, .. })));
        assert_eq!(er.encode().unwrap(), h("08 70 0001 02 C1 02 05 60"));
    }

    #[test]
    fn segmentation_2048() {
        let tsdu: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let dts = segment(&tsdu, TpduSize::S2048);
        assert_eq!(dts.len(), 3);
        assert!(dts.iter().all(|d| d.len() <= 2048));
        assert_eq!(dts[0].len(), 2048);
        let mut r = Reassembler::new(65_536);
        let mut out = None;
        for d in dts {
            let Tpdu::Dt(dt) = Tpdu::decode(&d, 4).unwrap() else {
                panic!()
            };
            out = r.push(dt).unwrap();
        }
        assert_eq!(out.unwrap(), tsdu);
        let mut r = Reassembler::new(10);
        assert!(r
            .push(DataTpdu {
                eot: false,
                data: vec![0; 8]
            })
            .unwrap()
            .is_none());
        assert_eq!(
            r.push(DataTpdu {
                eot: true,
                data: vec![0; 8]
            }),
            Err(CotpError::TsduTooLarge(10))
        );
    }

    fn arb_connect() -> impl Strategy<Value = ConnectTpdu> {
        (
            any::<u16>(),
            any::<u16>(),
            proptest::option::of(7u8..=13),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=4)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=4)),
        )
            .prop_map(|(d, s, z, a, b)| ConnectTpdu {
                dst_ref: d,
                src_ref: s,
                class_options: 0,
                tpdu_size: z.map(|c| TpduSize::from_code(c).unwrap()),
                calling_tsel: a,
                called_tsel: b,
            })
    }

    #[test]
    fn a_cr_with_a_destination_reference_is_refused() {
        let cr = ConnectTpdu {
            dst_ref: 0x1234,
            src_ref: 1,
            class_options: 0,
            tpdu_size: None,
            calling_tsel: None,
            called_tsel: None,
        };
        let b = Tpdu::Cr(cr.clone()).encode().unwrap();
        assert_eq!(
            Tpdu::decode(&b, 4),
            Err(CotpError::CrDestinationReference(0x1234))
        );
        // A CC carries the peer's reference there.
        let b = Tpdu::Cc(cr).encode().unwrap();
        assert!(Tpdu::decode(&b, 4).is_ok());
    }

    proptest! {
        #[test]
        fn roundtrip(t in prop_oneof![
            arb_connect().prop_map(|c| Tpdu::Cr(ConnectTpdu { dst_ref: 0, ..c })),
            arb_connect().prop_map(Tpdu::Cc),
            (any::<u16>(), any::<u16>(), any::<u8>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)))
                .prop_map(|(d, s, r, a)| Tpdu::Dr(DisconnectTpdu { dst_ref: d, src_ref: s, reason: r, additional_info: a })),
            (any::<u16>(), any::<u8>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)))
                .prop_map(|(d, c, a)| Tpdu::Er(ErrorTpdu { dst_ref: d, cause: c, invalid_tpdu: a })),
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 1..100))
                .prop_map(|(e, d)| Tpdu::Dt(DataTpdu { eot: e, data: d })),
        ]) {
            let b = t.encode().unwrap();
            prop_assert_eq!(Tpdu::decode(&b, 4).unwrap(), t);
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Tpdu::decode(&b, 4);
        }
    }
}
