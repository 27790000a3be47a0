//! ISO 8327-1 / X.225 session protocol, kernel + duplex functional units, version 2
//! (reference §4, spec §10.1): CN, AC, RF, FN, DN, NF, AB, AA and GT+DT SPDUs.

use crate::limits::{CN_EXTENDED_USER_DATA_MAX, CN_USER_DATA_MAX};

/// SPDU identifiers (SI), X.225 §8.3 (reference §4.2).
pub mod si {
    /// CONNECT.
    pub const CN: u8 = 13;
    /// ACCEPT.
    pub const AC: u8 = 14;
    /// REFUSE.
    pub const RF: u8 = 12;
    /// FINISH.
    pub const FN: u8 = 9;
    /// DISCONNECT.
    pub const DN: u8 = 10;
    /// NOT FINISHED.
    pub const NF: u8 = 8;
    /// ABORT.
    pub const AB: u8 = 25;
    /// ABORT ACCEPT.
    pub const AA: u8 = 26;
    /// GIVE TOKENS (category 0) — shares its code with DATA TRANSFER.
    pub const GT: u8 = 1;
    /// DATA TRANSFER (category 2).
    pub const DT: u8 = 1;
}

/// Parameter (group) identifiers, X.225 §8.3 (reference §4.3).
pub mod pi {
    /// PGI Connection Identifier.
    pub const CONNECTION_ID: u8 = 1;
    /// PGI Connect/Accept Item.
    pub const CONNECT_ACCEPT_ITEM: u8 = 5;
    /// PI Protocol Options.
    pub const PROTOCOL_OPTIONS: u8 = 19;
    /// PI TSDU Maximum Size.
    pub const TSDU_MAX_SIZE: u8 = 21;
    /// PI Version Number.
    pub const VERSION_NUMBER: u8 = 22;
    /// PI Transport Disconnect.
    pub const TRANSPORT_DISCONNECT: u8 = 17;
    /// PI Session User Requirements.
    pub const SESSION_USER_REQUIREMENTS: u8 = 20;
    /// PI Enclosure Item.
    pub const ENCLOSURE_ITEM: u8 = 25;
    /// PI Reflect Parameter Values.
    pub const REFLECT_PARAMETER_VALUES: u8 = 49;
    /// PI Reason Code.
    pub const REASON_CODE: u8 = 50;
    /// PI Calling Session Selector.
    pub const CALLING_SSEL: u8 = 51;
    /// PI Called (CN) / Responding (AC) Session Selector.
    pub const CALLED_SSEL: u8 = 52;
    /// PI Data Overflow.
    pub const DATA_OVERFLOW: u8 = 60;
    /// PGI User Data.
    pub const USER_DATA: u8 = 193;
    /// PGI Extended User Data (CN only, version 2).
    pub const EXTENDED_USER_DATA: u8 = 194;
}

/// PI 22 Version Number bit for version 2 (the only version secmms speaks, spec §10.1).
pub const VERSION_2: u8 = 0x02;
/// PI 20 value `duplex` — the only functional unit (beside kernel) MMS uses (reference §4.3).
pub const USER_REQUIREMENTS_DUPLEX: u16 = 0x0002;
/// PI 17 value sent in an AB for a user abort: transport released + user abort + no reason
/// (`0B`, as libiec61850 and iec61850-rust send it, reference §4.6).
pub const TRANSPORT_DISCONNECT_USER_ABORT: u8 = 0x0B;
/// PI 17 value sent in an AB for a protocol error: transport released + protocol error.
pub const TRANSPORT_DISCONNECT_PROTOCOL_ERROR: u8 = 0x05;
/// PI 17 value for an implementation restriction (e.g. TSDU over the limit), transport released.
pub const TRANSPORT_DISCONNECT_RESTRICTION: u8 = 0x11;

/// RF reason codes (PI 50), X.225 §8.3.5.6 (reference §4.3).
pub mod refuse_reason {
    /// Rejection by the called SS-user; the rest of the parameter is user data.
    pub const USER_REJECTION_WITH_DATA: u8 = 2;
    /// Session selector unknown.
    pub const SSEL_UNKNOWN: u8 = 129;
    /// Proposed protocol versions not supported.
    pub const VERSION_NOT_SUPPORTED: u8 = 132;
    /// Rejection by the SPM, no reason.
    pub const SPM_REJECTION: u8 = 133;
    /// Implementation restriction stated in the PICS.
    pub const IMPLEMENTATION_RESTRICTION: u8 = 134;
}

/// Errors of session decoding and encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The TSDU ended inside an SPDU header or parameter.
    #[error("truncated SPDU")]
    Truncated,
    /// A length indicator does not match the data.
    #[error("invalid SPDU length indicator")]
    BadLength,
    /// An SPDU type not supported with the kernel/duplex functional units.
    #[error("unsupported SPDU type {0}")]
    UnsupportedSpdu(u8),
    /// A parameter with an invalid value or length.
    #[error("invalid session parameter {0}")]
    BadParameter(u8),
    /// Octets after the last SPDU of the TSDU.
    #[error("unexpected octets after the SPDU")]
    Trailing,
    /// User data too large for this SPDU (CN: 10 240 octets, spec §10.1).
    #[error("session user data of {len} octets exceeds {max}")]
    UserDataTooLarge {
        /// Octets offered.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A session selector over the limit.
    #[error("session selector of {0} octets too long")]
    SelectorTooLong(usize),
}

/// Parameters of a CONNECT or ACCEPT SPDU (X.225 §8.3.1, §8.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectAccept {
    /// PGI 1 Connection Identifier, content kept raw.
    pub connection_id: Option<Vec<u8>>,
    /// PI 19 Protocol Options (inside PGI 5).
    pub protocol_options: Option<u8>,
    /// PI 21 TSDU Maximum Size (inside PGI 5).
    pub tsdu_max_size: Option<u32>,
    /// PI 22 Version Number (inside PGI 5).
    pub version: Option<u8>,
    /// PI 20 Session User Requirements.
    pub user_requirements: Option<u16>,
    /// PI 51 Calling Session Selector.
    pub calling_ssel: Option<Vec<u8>>,
    /// PI 52 Called (CN) or Responding (AC) Session Selector.
    pub called_ssel: Option<Vec<u8>>,
    /// PI 60 Data Overflow (CN).
    pub data_overflow: Option<u8>,
    /// PGI 193 User Data or PGI 194 Extended User Data (the PPDU).
    pub user_data: Option<Vec<u8>>,
}

/// Parameters of a REFUSE SPDU (X.225 §8.3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Refuse {
    /// PI 17 Transport Disconnect.
    pub transport_disconnect: Option<u8>,
    /// PI 20 Session User Requirements.
    pub user_requirements: Option<u16>,
    /// PI 22 Version Number.
    pub version: Option<u8>,
    /// PI 50 Reason Code (first octet).
    pub reason: Option<u8>,
    /// User data: the octets after the reason code when it is 2, or PGI 193.
    pub user_data: Option<Vec<u8>>,
}

/// Parameters of FINISH, DISCONNECT and NOT FINISHED SPDUs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Release {
    /// PI 17 Transport Disconnect (FN only).
    pub transport_disconnect: Option<u8>,
    /// PGI 193 User Data.
    pub user_data: Option<Vec<u8>>,
}

/// Parameters of an ABORT SPDU (X.225 §8.3.9).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Abort {
    /// PI 17 Transport Disconnect.
    pub transport_disconnect: Option<u8>,
    /// PI 49 Reflect Parameter Values.
    pub reflect: Option<Vec<u8>>,
    /// PGI 193 User Data (the ARU/ARP PPDU).
    pub user_data: Option<Vec<u8>>,
}

/// One session TSDU as secmms sends and receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spdu {
    /// CONNECT (CN).
    Connect(ConnectAccept),
    /// ACCEPT (AC).
    Accept(ConnectAccept),
    /// REFUSE (RF).
    Refuse(Refuse),
    /// FINISH (FN).
    Finish(Release),
    /// DISCONNECT (DN).
    Disconnect(Release),
    /// NOT FINISHED (NF).
    NotFinished(Release),
    /// ABORT (AB).
    Abort(Abort),
    /// ABORT ACCEPT (AA).
    AbortAccept,
    /// GIVE TOKENS + DATA TRANSFER with the user information (basic concatenation, §4.2).
    Data(Vec<u8>),
}

/// How a CN's user data over 512 octets is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CnUserDataMode {
    /// X.225 version 2: ≤ 512 in PGI 193, 513–10 240 in PGI 194 (spec §10.1).
    #[default]
    Standard,
    /// Always PGI 193 with a long length: accepted by open61850, not standard (reference §9.1).
    AlwaysPgi193,
}

/// One `code, LI, value` unit.
fn units(mut b: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), SessionError>> {
    std::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        match read_li(&b[1..]) {
            Ok((len, used)) if b.len() >= 1 + used + len => {
                let code = b[0];
                let v = &b[1 + used..1 + used + len];
                b = &b[1 + used + len..];
                Some(Ok((code, v)))
            }
            Ok(_) | Err(_) => {
                b = &[];
                Some(Err(SessionError::Truncated))
            }
        }
    })
}

/// Reads a length indicator: one octet 0–254, or `FF` + two octets (X.225 §8.2.5).
fn read_li(b: &[u8]) -> Result<(usize, usize), SessionError> {
    match b.first() {
        None => Err(SessionError::Truncated),
        Some(0xFF) => {
            if b.len() < 3 {
                return Err(SessionError::Truncated);
            }
            Ok((((b[1] as usize) << 8) | b[2] as usize, 3))
        }
        Some(l) => Ok((*l as usize, 1)),
    }
}

fn write_li(len: usize, out: &mut Vec<u8>) -> Result<(), SessionError> {
    if len <= 254 {
        out.push(len as u8);
    } else if len <= 0xFFFF {
        out.extend_from_slice(&[0xFF, (len >> 8) as u8, len as u8]);
    } else {
        return Err(SessionError::UserDataTooLarge { len, max: 0xFFFF });
    }
    Ok(())
}

fn unit(code: u8, v: &[u8], out: &mut Vec<u8>) -> Result<(), SessionError> {
    out.push(code);
    write_li(v.len(), out)?;
    out.extend_from_slice(v);
    Ok(())
}

fn one_octet(code: u8, v: &[u8]) -> Result<u8, SessionError> {
    match v {
        [x] => Ok(*x),
        _ => Err(SessionError::BadParameter(code)),
    }
}

fn two_octets(code: u8, v: &[u8]) -> Result<u16, SessionError> {
    match v {
        [a, b] => Ok(((*a as u16) << 8) | *b as u16),
        _ => Err(SessionError::BadParameter(code)),
    }
}

impl Spdu {
    /// Decodes one session TSDU. `max_ssel` bounds session selectors.
    pub fn decode(tsdu: &[u8], max_ssel: usize) -> Result<Spdu, SessionError> {
        let code = *tsdu.first().ok_or(SessionError::Truncated)?;
        let (li, used) = read_li(&tsdu[1..])?;
        let start = 1 + used;
        let end = start.checked_add(li).ok_or(SessionError::BadLength)?;
        if end > tsdu.len() {
            return Err(SessionError::BadLength);
        }
        let params = &tsdu[start..end];
        let after = &tsdu[end..];
        if code == si::GT {
            // GT (category 0) then DT (category 2) carrying the user information.
            for u in units(params) {
                u?;
            }
            let dcode = *after.first().ok_or(SessionError::Truncated)?;
            if dcode != si::DT {
                return Err(SessionError::UnsupportedSpdu(dcode));
            }
            let (dli, dused) = read_li(&after[1..])?;
            let dstart = 1 + dused;
            let dend = dstart.checked_add(dli).ok_or(SessionError::BadLength)?;
            if dend > after.len() {
                return Err(SessionError::BadLength);
            }
            for u in units(&after[dstart..dend]) {
                u?;
            }
            return Ok(Spdu::Data(after[dend..].to_vec()));
        }
        if !after.is_empty() {
            return Err(SessionError::Trailing);
        }
        match code {
            si::CN | si::AC => {
                let mut c = ConnectAccept::default();
                for u in units(params) {
                    let (pc, v) = u?;
                    match pc {
                        pi::CONNECTION_ID => c.connection_id = Some(v.to_vec()),
                        pi::CONNECT_ACCEPT_ITEM => {
                            for iu in units(v) {
                                let (ic, iv) = iu?;
                                match ic {
                                    pi::PROTOCOL_OPTIONS => {
                                        c.protocol_options = Some(one_octet(ic, iv)?)
                                    }
                                    pi::VERSION_NUMBER => c.version = Some(one_octet(ic, iv)?),
                                    pi::TSDU_MAX_SIZE => {
                                        let [a, b, d, e] = iv else {
                                            return Err(SessionError::BadParameter(ic));
                                        };
                                        c.tsdu_max_size =
                                            Some(u32::from_be_bytes([*a, *b, *d, *e]));
                                    }
                                    _ => {}
                                }
                            }
                        }
                        pi::SESSION_USER_REQUIREMENTS => {
                            c.user_requirements = Some(two_octets(pc, v)?)
                        }
                        pi::CALLING_SSEL | pi::CALLED_SSEL => {
                            if v.len() > max_ssel {
                                return Err(SessionError::SelectorTooLong(v.len()));
                            }
                            if pc == pi::CALLING_SSEL {
                                c.calling_ssel = Some(v.to_vec());
                            } else {
                                c.called_ssel = Some(v.to_vec());
                            }
                        }
                        pi::DATA_OVERFLOW => c.data_overflow = Some(one_octet(pc, v)?),
                        pi::USER_DATA => c.user_data = Some(v.to_vec()),
                        pi::EXTENDED_USER_DATA if code == si::CN => c.user_data = Some(v.to_vec()),
                        _ => {}
                    }
                }
                Ok(if code == si::CN {
                    Spdu::Connect(c)
                } else {
                    Spdu::Accept(c)
                })
            }
            si::RF => {
                let mut r = Refuse::default();
                for u in units(params) {
                    let (pc, v) = u?;
                    match pc {
                        pi::TRANSPORT_DISCONNECT => {
                            r.transport_disconnect = Some(one_octet(pc, v)?)
                        }
                        pi::SESSION_USER_REQUIREMENTS => {
                            r.user_requirements = Some(two_octets(pc, v)?)
                        }
                        pi::VERSION_NUMBER => r.version = Some(one_octet(pc, v)?),
                        pi::REASON_CODE => {
                            let (first, rest) =
                                v.split_first().ok_or(SessionError::BadParameter(pc))?;
                            r.reason = Some(*first);
                            if !rest.is_empty() {
                                r.user_data = Some(rest.to_vec());
                            }
                        }
                        pi::USER_DATA => r.user_data = Some(v.to_vec()),
                        _ => {}
                    }
                }
                Ok(Spdu::Refuse(r))
            }
            si::FN | si::DN | si::NF => {
                let mut r = Release::default();
                for u in units(params) {
                    let (pc, v) = u?;
                    match pc {
                        pi::TRANSPORT_DISCONNECT => {
                            r.transport_disconnect = Some(one_octet(pc, v)?)
                        }
                        pi::USER_DATA => r.user_data = Some(v.to_vec()),
                        _ => {}
                    }
                }
                Ok(match code {
                    si::FN => Spdu::Finish(r),
                    si::DN => Spdu::Disconnect(r),
                    _ => Spdu::NotFinished(r),
                })
            }
            si::AB => {
                let mut a = Abort::default();
                for u in units(params) {
                    let (pc, v) = u?;
                    match pc {
                        pi::TRANSPORT_DISCONNECT => {
                            a.transport_disconnect = Some(one_octet(pc, v)?)
                        }
                        pi::REFLECT_PARAMETER_VALUES => a.reflect = Some(v.to_vec()),
                        pi::USER_DATA => a.user_data = Some(v.to_vec()),
                        _ => {}
                    }
                }
                Ok(Spdu::Abort(a))
            }
            si::AA => Ok(Spdu::AbortAccept),
            other => Err(SessionError::UnsupportedSpdu(other)),
        }
    }

    /// Encodes with the standard CN user-data rule.
    pub fn encode(&self) -> Result<Vec<u8>, SessionError> {
        self.encode_with(CnUserDataMode::Standard)
    }

    /// Encodes the TSDU. Parameters are written in the order libiec61850 uses (reference §4.4).
    pub fn encode_with(&self, mode: CnUserDataMode) -> Result<Vec<u8>, SessionError> {
        let mut p = Vec::new();
        let code = match self {
            Spdu::Data(d) => {
                let mut out = Vec::with_capacity(4 + d.len());
                out.extend_from_slice(&[si::GT, 0, si::DT, 0]);
                out.extend_from_slice(d);
                return Ok(out);
            }
            Spdu::AbortAccept => return Ok(vec![si::AA, 0]),
            Spdu::Connect(c) | Spdu::Accept(c) => {
                let is_cn = matches!(self, Spdu::Connect(_));
                if let Some(v) = &c.connection_id {
                    unit(pi::CONNECTION_ID, v, &mut p)?;
                }
                let mut item = Vec::new();
                if let Some(o) = c.protocol_options {
                    unit(pi::PROTOCOL_OPTIONS, &[o], &mut item)?;
                }
                if let Some(t) = c.tsdu_max_size {
                    unit(pi::TSDU_MAX_SIZE, &t.to_be_bytes(), &mut item)?;
                }
                if let Some(v) = c.version {
                    unit(pi::VERSION_NUMBER, &[v], &mut item)?;
                }
                if !item.is_empty() {
                    unit(pi::CONNECT_ACCEPT_ITEM, &item, &mut p)?;
                }
                if let Some(r) = c.user_requirements {
                    unit(pi::SESSION_USER_REQUIREMENTS, &r.to_be_bytes(), &mut p)?;
                }
                if let Some(s) = &c.calling_ssel {
                    unit(pi::CALLING_SSEL, s, &mut p)?;
                }
                if let Some(s) = &c.called_ssel {
                    unit(pi::CALLED_SSEL, s, &mut p)?;
                }
                if let Some(o) = c.data_overflow {
                    unit(pi::DATA_OVERFLOW, &[o], &mut p)?;
                }
                if let Some(d) = &c.user_data {
                    if is_cn {
                        if d.len() > CN_EXTENDED_USER_DATA_MAX {
                            return Err(SessionError::UserDataTooLarge {
                                len: d.len(),
                                max: CN_EXTENDED_USER_DATA_MAX,
                            });
                        }
                        let pgi = if d.len() <= CN_USER_DATA_MAX
                            || mode == CnUserDataMode::AlwaysPgi193
                        {
                            pi::USER_DATA
                        } else {
                            pi::EXTENDED_USER_DATA
                        };
                        unit(pgi, d, &mut p)?;
                    } else {
                        unit(pi::USER_DATA, d, &mut p)?;
                    }
                }
                if is_cn {
                    si::CN
                } else {
                    si::AC
                }
            }
            Spdu::Refuse(r) => {
                if let Some(t) = r.transport_disconnect {
                    unit(pi::TRANSPORT_DISCONNECT, &[t], &mut p)?;
                }
                if let Some(u) = r.user_requirements {
                    unit(pi::SESSION_USER_REQUIREMENTS, &u.to_be_bytes(), &mut p)?;
                }
                if let Some(v) = r.version {
                    unit(pi::VERSION_NUMBER, &[v], &mut p)?;
                }
                match (r.reason, &r.user_data) {
                    (Some(reason), Some(d))
                        if reason == refuse_reason::USER_REJECTION_WITH_DATA =>
                    {
                        let mut v = vec![reason];
                        v.extend_from_slice(d);
                        unit(pi::REASON_CODE, &v, &mut p)?;
                    }
                    (reason, data) => {
                        if let Some(reason) = reason {
                            unit(pi::REASON_CODE, &[reason], &mut p)?;
                        }
                        if let Some(d) = data {
                            unit(pi::USER_DATA, d, &mut p)?;
                        }
                    }
                }
                si::RF
            }
            Spdu::Finish(r) | Spdu::Disconnect(r) | Spdu::NotFinished(r) => {
                if let Some(t) = r.transport_disconnect {
                    unit(pi::TRANSPORT_DISCONNECT, &[t], &mut p)?;
                }
                if let Some(d) = &r.user_data {
                    unit(pi::USER_DATA, d, &mut p)?;
                }
                match self {
                    Spdu::Finish(_) => si::FN,
                    Spdu::Disconnect(_) => si::DN,
                    _ => si::NF,
                }
            }
            Spdu::Abort(a) => {
                if let Some(t) = a.transport_disconnect {
                    unit(pi::TRANSPORT_DISCONNECT, &[t], &mut p)?;
                }
                if let Some(r) = &a.reflect {
                    unit(pi::REFLECT_PARAMETER_VALUES, r, &mut p)?;
                }
                if let Some(d) = &a.user_data {
                    unit(pi::USER_DATA, d, &mut p)?;
                }
                si::AB
            }
        };
        let mut out = Vec::with_capacity(p.len() + 4);
        out.push(code);
        write_li(p.len(), &mut out)?;
        out.extend_from_slice(&p);
        Ok(out)
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
    fn cn_like_libiec61850() {
        let c = ConnectAccept {
            protocol_options: Some(0),
            version: Some(VERSION_2),
            user_requirements: Some(USER_REQUIREMENTS_DUPLEX),
            calling_ssel: Some(vec![0, 1]),
            called_ssel: Some(vec![0, 1]),
            user_data: Some(vec![0x31, 0x00]),
            ..Default::default()
        };
        let b = Spdu::Connect(c.clone()).encode().unwrap();
        assert_eq!(
            b,
            h("0D 18 05 06 13 01 00 16 01 02 14 02 00 02 33 02 00 01 34 02 00 01 C1 02 31 00")
        );
        assert_eq!(Spdu::decode(&b, 16).unwrap(), Spdu::Connect(c));
    }

    #[test]
    fn cn_extended_user_data() {
        let big = vec![0xAB; 9000];
        let c = ConnectAccept {
            version: Some(VERSION_2),
            user_data: Some(big.clone()),
            ..Default::default()
        };
        let b = Spdu::Connect(c.clone()).encode().unwrap();
        assert_eq!(&b[..4], &[0x0D, 0xFF, 0x23, 0x31]);
        assert_eq!(&b[9..13], &[0xC2, 0xFF, 0x23, 0x28]);
        assert_eq!(Spdu::decode(&b, 16).unwrap(), Spdu::Connect(c.clone()));
        let b2 = Spdu::Connect(c)
            .encode_with(CnUserDataMode::AlwaysPgi193)
            .unwrap();
        assert_eq!(b2[9], 0xC1);
        let too_big = ConnectAccept {
            user_data: Some(vec![0; 10_241]),
            ..Default::default()
        };
        assert!(matches!(
            Spdu::Connect(too_big).encode(),
            Err(SessionError::UserDataTooLarge { .. })
        ));
    }

    #[test]
    fn reference_other_spdus() {
        // §4.6 rows.
        let fin = h("09 10 C1 0E 61 0C 30 0A 02 01 01 A0 05 62 03 80 01 00");
        let Spdu::Finish(r) = Spdu::decode(&fin, 16).unwrap() else {
            panic!()
        };
        assert_eq!(r.user_data.as_ref().unwrap().len(), 14);
        assert_eq!(Spdu::Finish(r).encode().unwrap(), fin);
        let ab = h("19 15 11 01 0B C1 10 A0 0E 61 0C 30 0A 02 01 01 A0 05 64 03 80 01 00");
        let s = Spdu::decode(&ab, 16).unwrap();
        assert!(matches!(
            &s,
            Spdu::Abort(Abort {
                transport_disconnect: Some(0x0B),
                ..
            })
        ));
        assert_eq!(s.encode().unwrap(), ab);
        let rf = h("0C 08 32 06 02 30 03 8A 01 03");
        let s = Spdu::decode(&rf, 16).unwrap();
        assert_eq!(
            s,
            Spdu::Refuse(Refuse {
                reason: Some(2),
                user_data: Some(h("30 03 8A 01 03")),
                ..Default::default()
            })
        );
        assert_eq!(s.encode().unwrap(), rf);
        assert_eq!(Spdu::decode(&h("1A 00"), 16).unwrap(), Spdu::AbortAccept);
        assert_eq!(
            Spdu::decode(&h("01 00 01 00 A0 03"), 16).unwrap(),
            Spdu::Data(h("A0 03"))
        );
        // AC without PI 52 (open61850).
        let ac = h("0E 0E 05 06 13 01 00 16 01 02 14 02 00 02 C1 00");
        assert!(matches!(
            Spdu::decode(&ac, 16).unwrap(),
            Spdu::Accept(ConnectAccept {
                called_ssel: None,
                ..
            })
        ));
    }

    #[test]
    fn errors() {
        assert_eq!(Spdu::decode(&[], 16), Err(SessionError::Truncated));
        assert_eq!(
            Spdu::decode(&h("0D 05 05 06"), 16),
            Err(SessionError::BadLength)
        );
        assert_eq!(
            Spdu::decode(&h("02 00"), 16),
            Err(SessionError::UnsupportedSpdu(2))
        );
        assert_eq!(
            Spdu::decode(&h("01 00 05 00"), 16),
            Err(SessionError::UnsupportedSpdu(5))
        );
        assert_eq!(
            Spdu::decode(&h("1A 00 00"), 16),
            Err(SessionError::Trailing)
        );
        assert_eq!(
            Spdu::decode(&h("0D 04 33 02 00 01"), 1),
            Err(SessionError::SelectorTooLong(2))
        );
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    fn arb_ca() -> impl Strategy<Value = ConnectAccept> {
        (
            proptest::option::of(bytes(10)),
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(bytes(16)),
            proptest::option::of(bytes(16)),
            proptest::option::of(bytes(2000)),
        )
            .prop_map(|(ci, po, ts, v, ur, a, b, ud)| ConnectAccept {
                connection_id: ci,
                protocol_options: po,
                tsdu_max_size: ts,
                version: v,
                user_requirements: ur,
                calling_ssel: a,
                called_ssel: b,
                data_overflow: None,
                user_data: ud,
            })
    }

    proptest! {
        #[test]
        fn roundtrip(s in prop_oneof![
            arb_ca().prop_map(Spdu::Connect),
            arb_ca().prop_map(Spdu::Accept),
            (proptest::option::of(any::<u8>()), proptest::option::of(bytes(300)))
                .prop_map(|(t, d)| Spdu::Finish(Release { transport_disconnect: t, user_data: d })),
            proptest::option::of(bytes(300)).prop_map(|d| Spdu::Disconnect(Release { transport_disconnect: None, user_data: d })),
            (proptest::option::of(any::<u8>()), proptest::option::of(bytes(9)), proptest::option::of(bytes(300)))
                .prop_map(|(t, r, d)| Spdu::Abort(Abort { transport_disconnect: t, reflect: r, user_data: d })),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..300)).prop_map(|d| Spdu::Refuse(Refuse { reason: Some(2), user_data: d, ..Default::default() })),
            bytes(500).prop_map(Spdu::Data),
            Just(Spdu::AbortAccept),
        ]) {
            let b = s.encode().unwrap();
            prop_assert_eq!(Spdu::decode(&b, 16).unwrap(), s);
        }

        #[test]
        fn decode_never_panics(b in bytes(80)) {
            let _ = Spdu::decode(&b, 16);
        }
    }
}
