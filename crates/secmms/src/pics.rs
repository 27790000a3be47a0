//! The conformance statement of IEC 62351-4 clause 17 (Tables 6–13, "PICS"), generated from the
//! running configuration: for each item, the requirement the standard states (as reconstructed in
//! the spec's §17), whether this build implements it, and whether the given configuration uses it.
//! `secmms pics` prints it as Markdown or JSON.
//!
//! Tables 12 and 13 were not captured by any public source (spec §17); secmms fills them with
//! the key-agreement and environment features it implements, marked as our reconstruction.

use serde::Serialize;

use crate::config::Config;
use crate::security::{AppMode, Encrypt};
use crate::tls::{conformance_statement, Requirement, SuiteMode};

/// Whether this build can do an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Implemented and tested.
    Yes,
    /// Not implemented by this build (the note says why).
    No,
}

/// One row of a conformance table.
#[derive(Debug, Clone, Serialize)]
pub struct PicsRow {
    /// The item (suite, algorithm, mode, …).
    pub item: String,
    /// The standard's status: `m`, `o`, `c[n]`, or `—` where the table gives none.
    pub status: String,
    /// Whether this build implements it.
    pub support: Support,
    /// Whether the configuration in force uses it.
    pub in_use: bool,
    /// Remarks (where the code is, why it is missing).
    pub note: String,
}

/// One table of clause 17.
#[derive(Debug, Clone, Serialize)]
pub struct PicsTable {
    /// Table number in IEC 62351-4:2018.
    pub number: u8,
    /// Title.
    pub title: String,
    /// Rows.
    pub rows: Vec<PicsRow>,
}

/// The whole statement.
#[derive(Debug, Clone, Serialize)]
pub struct Pics {
    /// Implementation name and version.
    pub implementation: String,
    /// What the configuration selects, in words.
    pub configuration: String,
    /// Tables 6–13.
    pub tables: Vec<PicsTable>,
}

fn row(item: &str, status: &str, support: Support, in_use: bool, note: &str) -> PicsRow {
    PicsRow {
        item: item.to_string(),
        status: status.to_string(),
        support,
        in_use,
        note: note.to_string(),
    }
}

/// Whether the E2E environment over XMPP is in this build (clause 16).
pub const XMPP_SUPPORTED: bool = true;

/// Builds the statement for `cfg`.
pub fn statement(cfg: &Config) -> Pics {
    use Support::{No, Yes};
    let mode = cfg.security.mode;
    let native = mode == AppMode::Native;
    let compat = mode == AppMode::Compat;
    let tls = cfg.tls.enabled;
    let enc = cfg.security.encrypt;
    let mut tables = Vec::new();

    tables.push(PicsTable {
        number: 6,
        title: "Operational environment".into(),
        rows: vec![
            row(
                "OSI (IEC 61850-8-1, ICCP)",
                "c[2]",
                Yes,
                cfg.xmpp.is_none(),
                "RFC 1006 / TP0 / session v2 / presentation / ACSE (secmms-osi); relay §15.5",
            ),
            row(
                "XMPP (IEC 61850-8-2)",
                "c[2]",
                if XMPP_SUPPORTED { Yes } else { No },
                cfg.xmpp.is_some(),
                "--env xmpp: secmms-xmpp transport, secmms_profiles::xmpp mapping, XML SecPDUs",
            ),
        ],
    });

    tables.push(PicsTable {
        number: 7,
        title: "Mode".into(),
        rows: vec![
            row(
                "Compatibility mode (A-security-profile, clause 11; OSI only)",
                "c[3]",
                Yes,
                compat,
                "secmms-profiles::aprofile; --mode compat",
            ),
            row(
                "Native mode (E2E security, clauses 12-15)",
                "c[4]",
                Yes,
                native,
                "secmms-e2e engine, secmms-profiles::native; --mode native",
            ),
        ],
    });

    let suites = conformance_statement();
    let suite_rows = |table: &str, mode_in_use: bool| -> Vec<PicsRow> {
        suites
            .iter()
            .filter(|s| s.table == table)
            .map(|s| {
                let offered = tls
                    && mode_in_use
                    && s.supported
                    && (cfg.tls.suites.is_empty()
                        || cfg.tls.suites.iter().any(|n| {
                            crate::tls::find_suite(n).is_some_and(|f| f.iana == s.suite.iana)
                        }));
                row(
                    &format!("{} (0x{:04X})", s.suite.name, s.suite.iana),
                    match s.suite.requirement {
                        Requirement::Mandatory => "m",
                        Requirement::Optional => "o",
                    },
                    if s.supported { Yes } else { No },
                    offered,
                    if s.suite.openssl.is_none() {
                        "static DH: no maintained TLS library implements it"
                    } else if !s.supported {
                        "not in the linked OpenSSL build"
                    } else {
                        ""
                    },
                )
            })
            .collect()
    };
    tables.push(PicsTable {
        number: 8,
        title: "Compatibility-mode TLS cipher suites (Table 2)".into(),
        rows: suite_rows("compat", cfg.tls.mode == SuiteMode::Compat),
    });

    tables.push(PicsTable {
        number: 9,
        title: "Encryption mode (E2E data transfer)".into(),
        rows: vec![
            row(
                "Authenticated encryption (AES-GCM)",
                "c[2]",
                Yes,
                native && enc == Encrypt::Gcm,
                "--encrypt gcm",
            ),
            row(
                "Non-AE: AES-CBC + HMAC-SHA256",
                "c[2]",
                Yes,
                native && enc == Encrypt::Cbc,
                "--encrypt cbc",
            ),
            row(
                "Non-AE: no encryption, HMAC-SHA256 ICV",
                "c[2]",
                Yes,
                native && enc == Encrypt::None,
                "--encrypt none",
            ),
        ],
    });

    tables.push(PicsTable {
        number: 10,
        title: "Native-mode TLS cipher suites (Table 3)".into(),
        rows: {
            let mut rows = suite_rows("native", true);
            rows.extend(tls13_rows(cfg));
            rows
        },
    });

    let gcm = native && enc == Encrypt::Gcm;
    let cbc = native && enc == Encrypt::Cbc;
    let hmac = native && enc != Encrypt::Gcm;
    tables.push(PicsTable {
        number: 11,
        title: "E2E cryptographic algorithms (clause 8)".into(),
        rows: vec![
            row(
                "rsaEncryption (RSA >= 2048) public keys",
                "m",
                Yes,
                native,
                "",
            ),
            row("ecPublicKey on secp256r1", "m", Yes, native, ""),
            row("ecPublicKey on brainpoolP256r1", "m", Yes, native, ""),
            row("sha256WithRSAEncryption signature", "m", Yes, native, ""),
            row("ecdsa-with-SHA256 signature", "m", Yes, native, ""),
            row(
                "aes128-CBC",
                "c[5]",
                Yes,
                cbc,
                "offered first with --encrypt cbc",
            ),
            row("aes256-CBC", "c[5]", Yes, false, "accepted as server"),
            row(
                "aes128-GCM",
                "c[6]",
                Yes,
                gcm,
                "offered first with --encrypt gcm",
            ),
            row("aes256-GCM", "c[6]", Yes, gcm, "offered second"),
            row("hmacWithSHA256 ICV", "c[7]", Yes, hmac, ""),
            row(
                "GMAC (aes128/256-GCM) ICV",
                "c[7]",
                Yes,
                false,
                "accepted as server",
            ),
        ],
    });

    tables.push(PicsTable {
        number: 12,
        title: "Key agreement and derivation (not captured; secmms reconstruction)".into(),
        rows: vec![
            row(
                "DH group 14 (MODP-2048, RFC 3526)",
                "—",
                Yes,
                false,
                "accepted as server",
            ),
            row(
                "DH group \"23\" (ECDH P-256)",
                "—",
                Yes,
                native,
                "offered by default",
            ),
            row(
                "DH group 28 (ECDH brainpoolP256r1)",
                "—",
                Yes,
                false,
                "accepted as server",
            ),
            row(
                "HKDF-SHA256 (RFC 5869) key schedule",
                "—",
                Yes,
                native,
                "spec §13.3.1.3",
            ),
            row("Key refresh (15 min - 24 h)", "—", Yes, native, ""),
        ],
    });

    tables.push(PicsTable {
        number: 13,
        title: "Environment features (not captured; secmms reconstruction)".into(),
        rows: vec![
            row(
                "OSI: SecPDUs in ACSE user-information and P-DATA (Table 4)",
                "—",
                Yes,
                native,
                "",
            ),
            row(
                "OSI: upper-layer relay (§15.5)",
                "—",
                Yes,
                false,
                "secmms relay",
            ),
            row(
                "OSI: A-profile over TLS (Table 1 row 3)",
                "—",
                Yes,
                compat && tls,
                "",
            ),
            row(
                "XMPP: iq/message stanza mapping, ENV_4 wrapper, assoID demultiplexing, release collision",
                "—",
                if XMPP_SUPPORTED { Yes } else { No },
                cfg.xmpp.is_some(),
                "secmms_profiles::xmpp",
            ),
        ],
    });

    let configuration = format!(
        "transport {}, application security {}{}",
        if tls {
            "TLS (clause 6)"
        } else {
            "plain RFC 1006"
        },
        mode.name(),
        if native {
            format!(", encryption {}", enc.name())
        } else {
            String::new()
        }
    );
    Pics {
        implementation: format!("secmms {}", env!("CARGO_PKG_VERSION")),
        configuration,
        tables,
    }
}

impl Pics {
    /// The statement as Markdown tables.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "# IEC 62351-4:2018 conformance statement\n\nImplementation: {}  \nConfiguration: {}\n\nStatus as in the standard (m mandatory, o optional, c[n] conditional); \"supported\" is this build, \"in use\" is the configuration above.\n",
            self.implementation, self.configuration
        );
        for t in &self.tables {
            out.push_str(&format!(
                "\n## Table {} — {}\n\n| item | status | supported | in use | note |\n|---|---|---|---|---|\n",
                t.number, t.title
            ));
            for r in &t.rows {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    r.item,
                    r.status,
                    match r.support {
                        Support::Yes => "yes",
                        Support::No => "**no**",
                    },
                    if r.in_use { "yes" } else { "" },
                    r.note
                ));
            }
        }
        out
    }
}

/// The TLS 1.3 rows (§6.2 DECISION: IEC 62351-3 Ed.2 permits TLS 1.3 beside the mandatory
/// TLS 1.2; the 62351-4 tables list TLS 1.2 suites only).
fn tls13_rows(cfg: &Config) -> Vec<PicsRow> {
    let on = cfg.tls.enabled && cfg.tls.tls13;
    let refresh = match cfg.tls.tls13_key_refresh {
        crate::tls::Tls13KeyRefresh::KeyUpdate => "KeyUpdate",
        crate::tls::Tls13KeyRefresh::NewAssociation => "a new association",
    };
    vec![
        row(
            "TLS 1.3 (RFC 8446): TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384",
            "o (DECISION)",
            Support::Yes,
            on,
            "IEC 62351-3 Ed.2 permits TLS 1.3; TLS 1.2 stays mandatory; tls.tls13",
        ),
        row(
            "TLS 1.3 session tickets sent by the server",
            "o (DECISION)",
            Support::Yes,
            on && cfg.tls.tls13_tickets > 0,
            &format!(
                "tls.tls13_tickets = {} (default 0: libiec61850's client drops a server that \
                 sends tickets; a resumed session is re-checked against the CRLs)",
                cfg.tls.tls13_tickets
            ),
        ),
        row(
            "TLS 1.3 key refresh",
            "o (DECISION)",
            Support::Yes,
            on,
            &format!("tls.tls13_key_refresh: {refresh} (default KeyUpdate)"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_6_to_13_follow_the_configuration() {
        let mut cfg = Config::default();
        let p = statement(&cfg);
        assert_eq!(
            p.tables.iter().map(|t| t.number).collect::<Vec<_>>(),
            (6..=13).collect::<Vec<_>>()
        );
        // Plain configuration: no mode, no suite in use.
        assert!(p.tables[1].rows.iter().all(|r| !r.in_use));
        cfg.security.mode = AppMode::Native;
        cfg.security.encrypt = Encrypt::Cbc;
        cfg.tls.enabled = true;
        let p = statement(&cfg);
        assert!(p.tables[1].rows[1].in_use && !p.tables[1].rows[0].in_use);
        let t9 = &p.tables[3];
        assert!(t9.rows[1].in_use && !t9.rows[0].in_use);
        // Native suites offered over TLS include the mandatory ECDHE-ECDSA GCM suite; static DH
        // is never supported.
        let t10 = &p.tables[4];
        assert!(t10
            .rows
            .iter()
            .any(|r| r.item.contains("0xC02B") && r.in_use && r.support == Support::Yes));
        assert!(t10
            .rows
            .iter()
            .any(|r| r.item.contains("0x00A0") && r.support == Support::No));
        let md = p.to_markdown();
        assert!(md.contains("## Table 10") && md.contains("**no**"));
        // TLS 1.3 is a DECISION row: in use with TLS 1.3 on, no tickets by default.
        let tls13 = |p: &Pics, what: &str| {
            p.tables[4]
                .rows
                .iter()
                .find(|r| r.item.starts_with(what))
                .map(|r| (r.in_use, r.status.clone()))
                .unwrap()
        };
        assert_eq!(
            tls13(&p, "TLS 1.3 (RFC 8446)"),
            (true, "o (DECISION)".into())
        );
        assert!(!tls13(&p, "TLS 1.3 session tickets").0);
        let mut with_tickets = cfg.clone();
        with_tickets.tls.tls13_tickets = 2;
        assert!(tls13(&statement(&with_tickets), "TLS 1.3 session tickets").0);
        // XMPP is in this build; in use only with an [xmpp] section.
        assert!(p.tables[0].rows[1].support == Support::Yes && !p.tables[0].rows[1].in_use);
        cfg.xmpp = Some(Default::default());
        let p = statement(&cfg);
        assert!(p.tables[0].rows[1].in_use && !p.tables[0].rows[0].in_use);
        assert!(serde_json::to_string(&p).unwrap().contains("\"number\":13"));
    }
}
