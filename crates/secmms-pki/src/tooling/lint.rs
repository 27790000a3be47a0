//! The Annex G lint behind `secmms cert check`: every rule of IEC 62351-4 Annex G.3–G.6 that can
//! be judged from the certificate alone, each reported as a named [`AnnexGRule`] with its clause,
//! severity and a plain-words explanation. The key, version, serial sign, algorithm and keyUsage
//! rules come from [`crate::cert::profile_findings`], the same checks the E2E engine applies.

use openssl::pkey::PKey;
use secmms_ber::{Limits, Reader, Tag, Tlv};

use super::{
    OID_AIA, OID_BASIC_CONSTRAINTS, OID_CLIENT_AUTH, OID_CRL_DP, OID_EKU, OID_IEC_USER_ROLES,
    OID_IEC_USER_ROLES_LEGACY, OID_OCSP, OID_SERVER_AUTH, SERIAL_LEN,
};
use crate::cert::MAX_CERT_LEN;
use crate::cert::{profile_findings, AnnexGRule, CertInfo, FindingSeverity, PeerIdentity};

/// Largest input the lint decodes at all (an oversize certificate is still examined up to this).
pub const LINT_MAX_INPUT: usize = 65_536;
/// Fewest serial content octets accepted as a 128-bit random value: 16, or 15 when the random
/// value happened to start with a zero octet (Annex G.4 serialNumber).
pub const MIN_SERIAL_OCTETS: usize = SERIAL_LEN - 1;
/// A run of this many identical serial octets marks a padded counter rather than a random value
/// (chance for a random 128-bit value: about 11 · 2⁻⁴⁰).
pub const SERIAL_RUN_LIMIT: usize = 6;

/// One finding of the lint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: AnnexGRule,
    /// What exactly was seen, when there is more to say than the rule.
    pub detail: Option<String>,
}

/// Result of [`lint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintReport {
    /// Size of the DER certificate in octets.
    pub size: usize,
    /// Identity found in the subject (G.6), if any.
    pub identity: Option<PeerIdentity>,
    /// Serial number as hex.
    pub serial_hex: String,
    /// Findings in rule order.
    pub findings: Vec<Finding>,
}

impl LintReport {
    /// True when no error-class finding was made (warnings allowed).
    pub fn compliant(&self) -> bool {
        !self
            .findings
            .iter()
            .any(|f| f.rule.severity() == FindingSeverity::Error)
    }
    /// True when `rule` was found.
    pub fn has(&self, rule: AnnexGRule) -> bool {
        self.findings.iter().any(|f| f.rule == rule)
    }
}

/// Parts of the certificate the extra rules look at.
struct Details<'a> {
    serial: &'a [u8],
    rdns: Vec<usize>,
    spki: &'a [u8],
    extensions: Vec<(secmms_ber::Oid, Tlv<'a>)>,
}

fn details(der: &[u8]) -> Option<Details<'_>> {
    let limits = Limits {
        max_depth: 16,
        max_len: LINT_MAX_INPUT,
    };
    let mut top = Reader::new(der, limits);
    let cert = top.expect(Tag::SEQUENCE).ok()?;
    let mut c = cert.children().ok()?;
    let tbs = c.expect(Tag::SEQUENCE).ok()?;
    let mut t = tbs.children().ok()?;
    t.optional(Tag::context(0, true)).ok()?;
    let serial = t.expect(Tag::INTEGER).ok()?;
    t.expect(Tag::SEQUENCE).ok()?;
    t.expect(Tag::SEQUENCE).ok()?;
    t.expect(Tag::SEQUENCE).ok()?;
    let subject = t.expect(Tag::SEQUENCE).ok()?;
    let spki = t.expect(Tag::SEQUENCE).ok()?;
    t.optional_any_form(Tag::context(1, false)).ok()?;
    t.optional_any_form(Tag::context(2, false)).ok()?;
    let mut rdns = Vec::new();
    for rdn in subject.children().ok()? {
        rdns.push(rdn.ok()?.children().ok()?.count());
    }
    let mut extensions = Vec::new();
    if let Some(ext) = t.optional(Tag::context(3, true)).ok()? {
        for e in ext.single_child().ok()?.children().ok()? {
            let mut er = e.ok()?.children().ok()?;
            let id = er.expect(Tag::OID).ok()?.as_oid().ok()?;
            er.optional(Tag::BOOLEAN).ok()?;
            let val = er.expect(Tag::OCTET_STRING).ok()?;
            extensions.push((id, val));
        }
    }
    Some(Details {
        serial: serial.content(),
        rdns,
        spki: spki.raw(),
        extensions,
    })
}

fn inner<'a>(val: &Tlv<'a>) -> Option<Tlv<'a>> {
    let mut r = Reader::new(val.content(), Limits::default());
    let t = r.read().ok()?;
    r.finish().ok()?;
    Some(t)
}

fn push(out: &mut Vec<Finding>, rule: AnnexGRule, detail: Option<String>) {
    if !out.iter().any(|f| f.rule == rule) {
        out.push(Finding { rule, detail });
    }
}

/// Lints a DER certificate against Annex G. Never fails: undecodable input gives
/// [`AnnexGRule::Malformed`].
pub fn lint(der: &[u8]) -> LintReport {
    let mut out = Vec::new();
    let mut report = LintReport {
        size: der.len(),
        identity: None,
        serial_hex: String::new(),
        findings: Vec::new(),
    };
    if der.len() > MAX_CERT_LEN {
        push(
            &mut out,
            AnnexGRule::TooLarge,
            Some(format!("{} octets", der.len())),
        );
    }
    let (Some(d), Ok(info)) = (
        details(der),
        CertInfo::parse_with_limit(der, LINT_MAX_INPUT),
    ) else {
        push(&mut out, AnnexGRule::Malformed, None);
        report.findings = out;
        return report;
    };
    report.identity = info.identity.clone();
    report.serial_hex = d.serial.iter().map(|b| format!("{b:02x}")).collect();
    match PKey::public_key_from_der(d.spki) {
        Ok(key) => {
            for r in profile_findings(&info, &key) {
                let detail = match r {
                    AnnexGRule::WeakOrUnsupportedKey => {
                        Some(format!("{:?}, {} bits", key.id(), key.bits()))
                    }
                    _ => None,
                };
                push(&mut out, r, detail);
            }
        }
        Err(_) => push(
            &mut out,
            AnnexGRule::WeakOrUnsupportedKey,
            Some("public key not decodable".into()),
        ),
    }
    // Serial number (G.4).
    let mag = match d.serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        s => s,
    };
    if !info.serial_negative {
        if d.serial.len() < MIN_SERIAL_OCTETS {
            push(
                &mut out,
                AnnexGRule::SerialTooShort,
                Some(format!("{} octets", d.serial.len())),
            );
        } else if d.serial.len() > SERIAL_LEN {
            push(
                &mut out,
                AnnexGRule::SerialTooLong,
                Some(format!("{} octets", d.serial.len())),
            );
        }
        let longest = mag
            .chunk_by(|a, b| a == b)
            .map(|c| c.len())
            .max()
            .unwrap_or(0);
        if d.serial.len() >= MIN_SERIAL_OCTETS && longest >= SERIAL_RUN_LIMIT {
            push(
                &mut out,
                AnnexGRule::SerialNotRandom,
                Some(format!("{longest} identical octets in a row")),
            );
        }
    }
    // Subject (G.6).
    if d.rdns.len() != 1 || d.rdns.iter().any(|n| *n != 1) {
        push(
            &mut out,
            AnnexGRule::SubjectNotSingleRdn,
            Some(format!("{} RDNs", d.rdns.len())),
        );
    }
    if info.identity.is_none() {
        push(&mut out, AnnexGRule::SubjectIdentityMissing, None);
    }
    // Extensions (G.5).
    let mut has_crl_dp = false;
    let mut has_ocsp = false;
    for (id, val) in &d.extensions {
        let a = id.arcs();
        if a == OID_CRL_DP {
            has_crl_dp = true;
            let Some(seq) = inner(val) else {
                push(
                    &mut out,
                    AnnexGRule::Malformed,
                    Some("cRLDistributionPoints".into()),
                );
                continue;
            };
            for dp in seq.children().into_iter().flatten() {
                let Ok(dp) = dp else { break };
                let mut name = false;
                for f in dp.children().into_iter().flatten().flatten() {
                    if f.tag().same_number(Tag::context(0, true)) {
                        name = true;
                    }
                    if f.tag().same_number(Tag::context(1, false)) {
                        push(&mut out, AnnexGRule::CrlDistributionPointReasons, None);
                    }
                }
                if !name {
                    push(&mut out, AnnexGRule::CrlDistributionPointNameMissing, None);
                }
            }
        } else if a == OID_AIA {
            if let Some(seq) = inner(val) {
                for ad in seq.children().into_iter().flatten().flatten() {
                    let m = ad
                        .children()
                        .ok()
                        .and_then(|mut r| r.expect(Tag::OID).ok())
                        .and_then(|o| o.as_oid().ok());
                    if m.is_some_and(|m| m.arcs() == OID_OCSP) {
                        has_ocsp = true;
                    }
                }
            }
        } else if a == OID_BASIC_CONSTRAINTS {
            let ca = inner(val)
                .and_then(|s| s.children().ok())
                .and_then(|mut r| r.optional(Tag::BOOLEAN).ok().flatten())
                .and_then(|b| b.as_bool().ok())
                .unwrap_or(false);
            if ca {
                push(&mut out, AnnexGRule::EndEntityIsCa, None);
            }
        } else if a == OID_EKU {
            let tls = inner(val)
                .and_then(|s| s.children().ok())
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|o| o.as_oid().ok())
                .any(|o| o.arcs() == OID_SERVER_AUTH || o.arcs() == OID_CLIENT_AUTH);
            if tls {
                push(&mut out, AnnexGRule::TlsPurposeOnApplicationCert, None);
            }
        } else if (a == OID_IEC_USER_ROLES || a == OID_IEC_USER_ROLES_LEGACY) && !roles_ok(val) {
            push(&mut out, AnnexGRule::RoleExtensionMalformed, None);
        }
    }
    if has_crl_dp && has_ocsp {
        push(&mut out, AnnexGRule::CrlAndOcspBoth, None);
    }
    // Report in the order of AnnexGRule::ALL.
    out.sort_by_key(|f| AnnexGRule::ALL.iter().position(|r| *r == f.rule));
    report.findings = out;
    report
}

/// IECUserRoles ::= SEQUENCE OF RoleInfo; RoleInfo starts with `userRole SEQUENCE OF RoleId`
/// (INTEGER) followed by the area of responsibility (UTF8String).
fn roles_ok(val: &Tlv<'_>) -> bool {
    let Some(seq) = inner(val) else { return false };
    if seq.tag() != Tag::SEQUENCE {
        return false;
    }
    let Ok(items) = seq.children() else {
        return false;
    };
    let mut n = 0;
    for ri in items {
        let Ok(ri) = ri else { return false };
        let Ok(mut r) = ri.children() else {
            return false;
        };
        let Ok(roles) = r.expect(Tag::SEQUENCE) else {
            return false;
        };
        let Ok(ids) = roles.children() else {
            return false;
        };
        for id in ids {
            if !id.is_ok_and(|i| i.tag() == Tag::INTEGER) {
                return false;
            }
        }
        if r.expect(Tag::UTF8_STRING).is_err() {
            return false;
        }
        n += 1;
    }
    n > 0
}
