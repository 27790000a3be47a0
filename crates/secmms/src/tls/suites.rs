//! The cipher-suite tables of clause 6 (§6.3.4.2 compatibility, §6.3.4.3 native), what the
//! linked OpenSSL supports of them, and the conformance statement built from both.

use super::*;

/// Whether the table of clause 6 makes a suite mandatory or optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Requirement {
    /// "m" in the table.
    Mandatory,
    /// "o" in the table.
    Optional,
}

/// One cipher suite of the clause 6 tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CipherSuite {
    /// IANA code point.
    pub iana: u16,
    /// IANA name.
    pub name: &'static str,
    /// OpenSSL's name, `None` when no maintained library implements it (static DH).
    pub openssl: Option<&'static str>,
    /// Status in the table.
    pub requirement: Requirement,
}

pub(super) const fn suite(
    iana: u16,
    name: &'static str,
    openssl: Option<&'static str>,
    requirement: Requirement,
) -> CipherSuite {
    CipherSuite {
        iana,
        name,
        openssl,
        requirement,
    }
}

/// Table 3 — native-mode suites (§6.3.4.3; code points corrected per the spec), followed by the
/// optional suites the spec's DECISION adds for interop (0xC02C, 0xC023).
pub const NATIVE_SUITES: &[CipherSuite] = &[
    suite(
        0x003C,
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        Some("AES128-SHA256"),
        Requirement::Mandatory,
    ),
    suite(
        0x00A0,
        "TLS_DH_RSA_WITH_AES_128_GCM_SHA256",
        None,
        Requirement::Mandatory,
    ),
    suite(
        0x009E,
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        Some("DHE-RSA-AES128-GCM-SHA256"),
        Requirement::Mandatory,
    ),
    suite(
        0xC02B,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Some("ECDHE-ECDSA-AES128-GCM-SHA256"),
        Requirement::Mandatory,
    ),
    suite(
        0x00A1,
        "TLS_DH_RSA_WITH_AES_256_GCM_SHA384",
        None,
        Requirement::Optional,
    ),
    suite(
        0xC02F,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Some("ECDHE-RSA-AES128-GCM-SHA256"),
        Requirement::Optional,
    ),
    suite(
        0xC030,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Some("ECDHE-RSA-AES256-GCM-SHA384"),
        Requirement::Optional,
    ),
    suite(
        0xC02C,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Some("ECDHE-ECDSA-AES256-GCM-SHA384"),
        Requirement::Optional,
    ),
    suite(
        0xC023,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        Some("ECDHE-ECDSA-AES128-SHA256"),
        Requirement::Optional,
    ),
];

/// Table 2 — compatibility-mode suites (§6.3.4.2, the 2007 set without RC4). Most are static DH
/// or 3DES, which current OpenSSL builds do not provide; compatibility mode offers these where
/// the library has them, plus the native table.
pub const COMPAT_SUITES: &[CipherSuite] = &[
    suite(
        0x0036,
        "TLS_DH_DSS_WITH_AES_256_CBC_SHA",
        None,
        Requirement::Mandatory,
    ),
    suite(
        0x000A,
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        Some("DES-CBC3-SHA"),
        Requirement::Optional,
    ),
    suite(
        0x000D,
        "TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA",
        None,
        Requirement::Optional,
    ),
    suite(
        0x0010,
        "TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA",
        None,
        Requirement::Optional,
    ),
    suite(
        0x0013,
        "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
        Some("DHE-DSS-DES-CBC3-SHA"),
        Requirement::Optional,
    ),
    suite(
        0x0016,
        "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
        Some("DHE-RSA-DES-CBC3-SHA"),
        Requirement::Optional,
    ),
    suite(
        0x0030,
        "TLS_DH_DSS_WITH_AES_128_CBC_SHA",
        None,
        Requirement::Optional,
    ),
];

/// Name fragments of suites that are never offered nor accepted (§6.3.4: no RC4, NULL,
/// anonymous or export suites).
pub const FORBIDDEN_SUITE_MARKERS: &[&str] = &["RC4", "NULL", "anon", "EXPORT", "_DH_anon_"];

/// Which table of clause 6 the suite policy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuiteMode {
    /// Native mode: Table 3 (§6.3.4.3).
    #[default]
    Native,
    /// Compatibility mode: Table 2 (§6.3.4.2) plus Table 3.
    Compat,
}

impl SuiteMode {
    /// The suites of this mode, in offer order.
    pub fn table(self) -> Vec<&'static CipherSuite> {
        match self {
            SuiteMode::Native => NATIVE_SUITES.iter().collect(),
            SuiteMode::Compat => NATIVE_SUITES.iter().chain(COMPAT_SUITES.iter()).collect(),
        }
    }
}

/// Finds a suite of either table by IANA name, OpenSSL name or hex code point (`0x009E`).
pub fn find_suite(name: &str) -> Option<&'static CipherSuite> {
    let code = name
        .strip_prefix("0x")
        .or_else(|| name.strip_prefix("0X"))
        .and_then(|h| u16::from_str_radix(h, 16).ok());
    NATIVE_SUITES
        .iter()
        .chain(COMPAT_SUITES.iter())
        .find(|s| s.name == name || s.openssl == Some(name) || Some(s.iana) == code)
}

/// Whether the linked OpenSSL implements a suite (false for static DH and for suites the build
/// leaves out, e.g. 3DES in OpenSSL 3 default builds).
pub fn library_supports(s: &CipherSuite) -> bool {
    let Some(name) = s.openssl else { return false };
    let Ok(mut b) = SslContextBuilder::new(SslMethod::tls()) else {
        return false;
    };
    b.set_cipher_list(&format!("{name}:@SECLEVEL=0")).is_ok()
}

/// One line of the conformance statement (PICS) for the clause 6 suite tables.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteSupport {
    /// The suite.
    pub suite: CipherSuite,
    /// The table it comes from: `native` (Table 3) or `compat` (Table 2).
    pub table: &'static str,
    /// Whether secmms offers and accepts it with the linked OpenSSL.
    pub supported: bool,
}

/// The suite part of the conformance statement: every suite of both tables and whether it is
/// supported (static DH never is: no maintained library implements it).
pub fn conformance_statement() -> Vec<SuiteSupport> {
    let rows = NATIVE_SUITES
        .iter()
        .map(|s| ("native", s))
        .chain(COMPAT_SUITES.iter().map(|s| ("compat", s)));
    rows.map(|(table, s)| SuiteSupport {
        suite: *s,
        table,
        supported: library_supports(s),
    })
    .collect()
}
