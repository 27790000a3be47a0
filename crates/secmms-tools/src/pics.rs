//! The conformance statement of IEC 62351-4 clause 17 (Tables 6–13, "PICS"), generated from the
//! running configuration: for each item, the requirement the standard states (as reconstructed in
//! the spec's §17), whether this build implements it, and whether the given configuration uses it.
//! `secmms pics` prints it as Markdown or JSON.
//!
//! Tables 12 and 13 were not captured by any public source (spec §17); secmms fills them with
//! the key-agreement and environment features it implements, marked as our reconstruction.

use serde::Serialize;

use secmms::config::Config;
use secmms::security::{AppMode, Encrypt};
use secmms::tls::{conformance_statement, Requirement};

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

/// What this build contains. No Cargo feature gates these parts today, so every field is true;
/// the statement still reads them from here (never from a literal), so a build that leaves a
/// part out states it, and the test with [`Build::NONE`] shows no answer is hard-coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Build {
    /// The OSI stack (secmms-osi): RFC 1006, TP0, session, presentation, ACSE.
    pub osi: bool,
    /// The XMPP environment (secmms-xmpp and the clause 16 mapping).
    pub xmpp: bool,
    /// The A-security-profile (clause 11).
    pub aprofile: bool,
    /// The E2E engine of native mode (clauses 13–15).
    pub native_e2e: bool,
    /// The upper-layer relay (§15.5, `secmms relay`).
    pub relay: bool,
    /// The T-profile (clause 6, OpenSSL).
    pub tls: bool,
}

impl Build {
    /// This build.
    pub const THIS: Build = Build {
        osi: true,
        xmpp: true,
        aprofile: true,
        native_e2e: true,
        relay: true,
        tls: true,
    };
    /// A build without any of the parts (for tests of the derivation).
    pub const NONE: Build = Build {
        osi: false,
        xmpp: false,
        aprofile: false,
        native_e2e: false,
        relay: false,
        tls: false,
    };
}

/// What the linked OpenSSL can do, asked at run time.
#[derive(Debug, Clone)]
pub struct Library {
    /// The suites of both tables with whether the library implements them.
    pub suites: Vec<secmms::tls::SuiteSupport>,
    /// TLS 1.3 is available.
    pub tls13: bool,
    /// The brainpoolP256r1 curve is available (some distributions build OpenSSL without it).
    pub brainpool: bool,
}

impl Library {
    /// Asks the linked OpenSSL.
    pub fn probe() -> Library {
        let tls13 = openssl::ssl::SslContextBuilder::new(openssl::ssl::SslMethod::tls())
            .and_then(|mut b| b.set_min_proto_version(Some(openssl::ssl::SslVersion::TLS1_3)))
            .is_ok();
        let brainpool =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::BRAINPOOL_P256R1).is_ok();
        Library {
            suites: conformance_statement(),
            tls13,
            brainpool,
        }
    }

    /// A library that can do nothing (for tests of the derivation).
    pub fn none() -> Library {
        Library {
            suites: conformance_statement()
                .into_iter()
                .map(|mut s| {
                    s.supported = false;
                    s
                })
                .collect(),
            tls13: false,
            brainpool: false,
        }
    }
}

fn yes(b: bool) -> Support {
    if b {
        Support::Yes
    } else {
        Support::No
    }
}

/// Builds the statement for `cfg` with this build and the linked OpenSSL.
pub fn statement(cfg: &Config) -> Pics {
    statement_with(cfg, &Build::THIS, &Library::probe())
}

/// Builds the statement for `cfg`, `build` and `lib`. "Supported" is what this build, this
/// library and this configuration would accept or offer; "in use" is what the configuration
/// offers or prefers as initiator.
pub fn statement_with(cfg: &Config, build: &Build, lib: &Library) -> Pics {
    use secmms::security::e2e_config;
    use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
    use secmms_e2e::{EncryptionPolicy, ModeOffer};
    use secmms_pki::{DhGroup, SignatureAlgorithm};

    let mode = cfg.security.mode;
    let xmpp_cfg = cfg.xmpp.is_some();
    let osi = build.osi && !xmpp_cfg;
    let native = build.native_e2e && mode == AppMode::Native;
    let compat = build.aprofile && mode == AppMode::Compat && osi;
    let xmpp = build.xmpp && xmpp_cfg && native;
    let tls = build.tls && cfg.tls.enabled;
    let enc = cfg.security.encrypt;
    let e2e = e2e_config(&cfg.security);
    let offer_ae = matches!(&e2e.offer, ModeOffer::Ae(_));
    let offered_encr: &[EncrAlg] = match &e2e.offer {
        ModeOffer::NonAe { encr, .. } => encr,
        ModeOffer::Ae(_) => &[],
    };
    let offered_ae: &[AeAlg] = match &e2e.offer {
        ModeOffer::Ae(a) => a,
        ModeOffer::NonAe { .. } => &[],
    };
    // What native mode accepts under its policy (§13.3.1.5).
    let ae_ok =
        native && !e2e.allowed_ae.is_empty() && e2e.encryption != EncryptionPolicy::Forbidden;
    let cbc_ok = native
        && !e2e.allowed_encr.is_empty()
        && !e2e.require_ae
        && e2e.encryption != EncryptionPolicy::Forbidden;
    let clear_ok = native && !e2e.require_ae && e2e.encryption != EncryptionPolicy::Required;
    let hmac_ok = (cbc_ok || clear_ok) && e2e.allowed_icv.contains(&IcvAlg::HmacSha256);
    let gmac_ok = (cbc_ok || clear_ok)
        && (e2e.allowed_icv.contains(&IcvAlg::Gmac128)
            || e2e.allowed_icv.contains(&IcvAlg::Gmac256));
    let sig = |a: SignatureAlgorithm| native && e2e.allowed_signatures.contains(&a);
    let group_ok = |g: DhGroup| {
        native
            && (e2e.accept_groups.contains(&g) || e2e.offer_groups.contains(&g))
            && (g != DhGroup::EcdhBrainpoolP256r1 || lib.brainpool)
    };
    let group_offered = |g: DhGroup| native && e2e.offer_groups.first() == Some(&g);
    let mut tables = Vec::new();

    tables.push(PicsTable {
        number: 6,
        title: "Operational environment".into(),
        rows: vec![
            row(
                "OSI (IEC 61850-8-1, ICCP)",
                "c[2]",
                yes(osi),
                osi,
                "RFC 1006 / TP0 / session v2 / presentation / ACSE (secmms-osi); relay §15.5",
            ),
            row(
                "XMPP (IEC 61850-8-2)",
                "c[2]",
                yes(xmpp),
                xmpp,
                "an [xmpp] section and --mode native: secmms-xmpp transport, \
                 secmms_profiles::xmpp mapping, XML SecPDUs",
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
                yes(compat),
                compat,
                "secmms-profiles::aprofile; --mode compat",
            ),
            row(
                "Native mode (E2E security, clauses 12-15)",
                "c[4]",
                yes(native),
                native,
                "secmms-e2e engine, secmms-profiles::native; --mode native",
            ),
        ],
    });

    let offered = cfg.tls.offered_suites().unwrap_or_default();
    let suite_rows = |table: &str| -> Vec<PicsRow> {
        lib.suites
            .iter()
            .filter(|s| s.table == table)
            .map(|s| {
                let on = tls && s.supported && offered.iter().any(|o| o.iana == s.suite.iana);
                row(
                    &format!("{} (0x{:04X})", s.suite.name, s.suite.iana),
                    match s.suite.requirement {
                        Requirement::Mandatory => "m",
                        Requirement::Optional => "o",
                    },
                    yes(on),
                    on,
                    if s.suite.openssl.is_none() {
                        "static DH: no maintained TLS library implements it"
                    } else if !s.supported {
                        "not in the linked OpenSSL build"
                    } else if !tls {
                        "TLS is off in this configuration (--tls)"
                    } else if !on {
                        "not in tls.suites / the tls.mode table"
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
        rows: suite_rows("compat"),
    });

    tables.push(PicsTable {
        number: 9,
        title: "Encryption mode (E2E data transfer)".into(),
        rows: vec![
            row(
                "Authenticated encryption (AES-GCM)",
                "c[2]",
                yes(ae_ok),
                native && offer_ae,
                "--encrypt gcm; [security] encryption, require_ae",
            ),
            row(
                "Non-AE: AES-CBC + HMAC-SHA256",
                "c[2]",
                yes(cbc_ok),
                native && enc == Encrypt::Cbc,
                "--encrypt cbc",
            ),
            row(
                "Non-AE: no encryption, HMAC-SHA256 ICV",
                "c[2]",
                yes(clear_ok),
                native && enc == Encrypt::None,
                "--encrypt none",
            ),
        ],
    });

    tables.push(PicsTable {
        number: 10,
        title: "Native-mode TLS cipher suites (Table 3)".into(),
        rows: {
            let mut rows = suite_rows("native");
            rows.extend(tls13_rows(cfg, tls && lib.tls13));
            rows
        },
    });

    tables.push(PicsTable {
        number: 11,
        title: "E2E cryptographic algorithms (clause 8)".into(),
        rows: vec![
            row(
                "rsaEncryption (RSA >= 2048) public keys",
                "m",
                yes(sig(SignatureAlgorithm::RsaPkcs1Sha256)),
                sig(SignatureAlgorithm::RsaPkcs1Sha256),
                "[security] signatures",
            ),
            row(
                "ecPublicKey on secp256r1",
                "m",
                yes(sig(SignatureAlgorithm::EcdsaSha256)),
                sig(SignatureAlgorithm::EcdsaSha256),
                "",
            ),
            row(
                "ecPublicKey on brainpoolP256r1",
                "m",
                yes(sig(SignatureAlgorithm::EcdsaSha256) && lib.brainpool),
                sig(SignatureAlgorithm::EcdsaSha256) && lib.brainpool,
                if lib.brainpool {
                    ""
                } else {
                    "the linked OpenSSL has no brainpool curves"
                },
            ),
            row(
                "sha256WithRSAEncryption signature",
                "m",
                yes(sig(SignatureAlgorithm::RsaPkcs1Sha256)),
                sig(SignatureAlgorithm::RsaPkcs1Sha256),
                "",
            ),
            row(
                "ecdsa-with-SHA256 signature",
                "m",
                yes(sig(SignatureAlgorithm::EcdsaSha256)),
                sig(SignatureAlgorithm::EcdsaSha256),
                "",
            ),
            row(
                "aes128-CBC",
                "c[5]",
                yes(cbc_ok && e2e.allowed_encr.contains(&EncrAlg::Aes128Cbc)),
                native && offered_encr.contains(&EncrAlg::Aes128Cbc),
                "offered first with --encrypt cbc",
            ),
            row(
                "aes256-CBC",
                "c[5]",
                yes(cbc_ok && e2e.allowed_encr.contains(&EncrAlg::Aes256Cbc)),
                native && offered_encr.contains(&EncrAlg::Aes256Cbc),
                "offered second with --encrypt cbc",
            ),
            row(
                "aes128-GCM",
                "c[6]",
                yes(ae_ok && e2e.allowed_ae.contains(&AeAlg::Aes128Gcm)),
                native && offered_ae.contains(&AeAlg::Aes128Gcm),
                "offered first with --encrypt gcm",
            ),
            row(
                "aes256-GCM",
                "c[6]",
                yes(ae_ok && e2e.allowed_ae.contains(&AeAlg::Aes256Gcm)),
                native && offered_ae.contains(&AeAlg::Aes256Gcm),
                "offered second",
            ),
            row(
                "hmacWithSHA256 ICV",
                "c[7]",
                yes(hmac_ok),
                native && !offer_ae,
                "",
            ),
            row(
                "GMAC (aes128/256-GCM) ICV",
                "c[7]",
                yes(gmac_ok),
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
                yes(group_ok(DhGroup::Modp2048)),
                group_offered(DhGroup::Modp2048),
                "[security] dh_groups",
            ),
            row(
                "DH group \"23\" (ECDH P-256)",
                "—",
                yes(group_ok(DhGroup::EcdhP256)),
                group_offered(DhGroup::EcdhP256),
                "offered by default",
            ),
            row(
                "DH group 28 (ECDH brainpoolP256r1)",
                "—",
                yes(group_ok(DhGroup::EcdhBrainpoolP256r1)),
                group_offered(DhGroup::EcdhBrainpoolP256r1),
                "",
            ),
            row(
                "HKDF-SHA256 (RFC 5869) key schedule",
                "—",
                yes(native),
                native,
                "spec §13.3.1.3",
            ),
            row(
                "Key refresh (15 min - 24 h)",
                "—",
                yes(native),
                native,
                &format!(
                    "every {} s ([security] rekey_interval_secs)",
                    e2e.effective_rekey_interval_ms() / 1000
                ),
            ),
        ],
    });

    let relay_in_use = cfg.relay.to.is_some() || !cfg.relay.routes.is_empty();
    let app_ocsp =
        cfg.security.ocsp_check.unwrap_or(cfg.tls.ocsp_check) != secmms::ocsp::OcspCheck::Off;
    tables.push(PicsTable {
        number: 13,
        title: "Environment features (not captured; secmms reconstruction)".into(),
        rows: vec![
            row(
                "OSI: SecPDUs in ACSE user-information and P-DATA (Table 4)",
                "—",
                yes(native && osi),
                native && osi,
                "",
            ),
            row(
                "OSI: upper-layer relay (§15.5)",
                "—",
                yes(build.relay && build.osi),
                build.relay && build.osi && relay_in_use,
                "secmms relay; [relay] to / routes",
            ),
            row(
                "OSI: A-profile over TLS (Table 1 row 3)",
                "—",
                yes(compat && tls),
                compat && tls,
                "",
            ),
            row(
                "XMPP: iq/message stanza mapping, ENV_4 wrapper, assoID demultiplexing, release collision",
                "—",
                yes(xmpp),
                xmpp,
                "secmms_profiles::xmpp",
            ),
            row(
                "Annex G.2: TLS and application certificates kept apart",
                "—",
                yes((compat || native) && cfg.security.separate_certificates),
                (compat || native) && cfg.security.separate_certificates,
                "[security] separate_certificates",
            ),
            row(
                "OCSP lookups of the peers' TLS certificates (§6.2.8, RFC 6960)",
                "—",
                yes(tls && cfg.tls.ocsp_check != secmms::ocsp::OcspCheck::Off),
                tls && cfg.tls.ocsp_check != secmms::ocsp::OcspCheck::Off,
                "[tls] ocsp_check soft-fail | hard-fail, ocsp_responder; --ocsp-check",
            ),
            row(
                "OCSP lookups of the peers' application certificates (§6.2.8; server side)",
                "—",
                yes((compat || native) && app_ocsp),
                (compat || native) && app_ocsp,
                "[security] ocsp_check (default: [tls] ocsp_check), ocsp_responder",
            ),
            row(
                "Attribute certificates (attCert, §13.3.1.6): validated against attribute authorities",
                "—",
                yes(native && !cfg.security.attribute_authorities.is_empty()),
                native && !cfg.security.attribute_authorities.is_empty(),
                "[security] attribute_authorities (--attribute-authority); without one every \
                 attCert is refused with invalid-attribute-certificate",
            ),
            row(
                "Attribute certificate presented (attCert in our handshake)",
                "—",
                yes(native && cfg.security.attribute_certificate.is_some()),
                native && cfg.security.attribute_certificate.is_some(),
                "[security] attribute_certificate (--attribute-cert); secmms cert issue-ac",
            ),
            row(
                "CRLs for TLS and application certificates (§6.2.8)",
                "—",
                yes(!cfg.tls.crl.is_empty() || !cfg.security.crl.is_empty()),
                !cfg.tls.crl.is_empty() || !cfg.security.crl.is_empty(),
                "--crl; [tls] crl, [security] crl",
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
            format!(
                ", encryption {} (policy {:?}{})",
                enc.name(),
                cfg.security.encryption,
                if cfg.security.require_ae {
                    ", AE required"
                } else {
                    ""
                }
            )
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
/// TLS 1.2; the 62351-4 tables list TLS 1.2 suites only). `available`: TLS is on and the library
/// has TLS 1.3.
fn tls13_rows(cfg: &Config, available: bool) -> Vec<PicsRow> {
    let on = available && cfg.tls.tls13;
    let refresh = match cfg.tls.tls13_key_refresh {
        secmms::tls::Tls13KeyRefresh::KeyUpdate => "KeyUpdate",
        secmms::tls::Tls13KeyRefresh::NewAssociation => "a new association",
    };
    let tickets = on && cfg.tls.tls13_tickets > 0;
    vec![
        row(
            "TLS 1.3 (RFC 8446): TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384",
            "o (DECISION)",
            yes(on),
            on,
            "IEC 62351-3 Ed.2 permits TLS 1.3; TLS 1.2 stays mandatory; tls.tls13",
        ),
        row(
            "TLS 1.3 session tickets sent by the server",
            "o (DECISION)",
            yes(tickets),
            tickets,
            &format!(
                "tls.tls13_tickets = {} (default 0: libiec61850's client drops a server that \
                 sends tickets; a resumed session is re-checked against the CRLs)",
                cfg.tls.tls13_tickets
            ),
        ),
        row(
            "TLS 1.3 key refresh",
            "o (DECISION)",
            yes(on),
            on,
            &format!("tls.tls13_key_refresh: {refresh} (default KeyUpdate)"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmms::security::{DhGroupName, EncryptionRule};

    /// The row of table `n` whose item starts with `item`: (supported, in use).
    fn at(p: &Pics, n: u8, item: &str) -> (bool, bool) {
        let r = p
            .tables
            .iter()
            .find(|t| t.number == n)
            .unwrap()
            .rows
            .iter()
            .find(|r| r.item.starts_with(item))
            .unwrap_or_else(|| panic!("table {n}: no {item}"));
        (r.support == Support::Yes, r.in_use)
    }

    fn native() -> Config {
        let mut cfg = Config::default();
        cfg.security.mode = AppMode::Native;
        cfg
    }

    #[test]
    fn no_answer_is_hard_coded() {
        // Without the parts in the build and with a library that can do nothing, no row says
        // yes, whatever the configuration asks for.
        let mut cfg = native();
        cfg.tls.enabled = true;
        cfg.tls.tls13 = true;
        cfg.xmpp = Some(Default::default());
        cfg.relay.to = Some("127.0.0.1:102".into());
        let p = statement_with(&cfg, &Build::NONE, &Library::none());
        for t in &p.tables {
            for r in &t.rows {
                assert!(
                    r.support == Support::No && !r.in_use,
                    "table {}: {}",
                    t.number,
                    r.item
                );
            }
        }
        assert_eq!(
            p.tables.iter().map(|t| t.number).collect::<Vec<_>>(),
            (6..=13).collect::<Vec<_>>()
        );
    }

    #[test]
    fn answers_follow_the_configuration() {
        // Plain TCP, plain mode: OSI only; no mode, suite or E2E algorithm.
        let plain = Config::default();
        let p = statement(&plain);
        assert_eq!(at(&p, 6, "OSI"), (true, true));
        assert_eq!(at(&p, 6, "XMPP"), (false, false));
        assert_eq!(at(&p, 7, "Native mode"), (false, false));
        assert_eq!(
            at(&p, 10, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            (false, false)
        );
        assert_eq!(at(&p, 9, "Authenticated encryption"), (false, false));
        assert_eq!(at(&p, 12, "DH group 14"), (false, false));

        // TLS on: the native suites; a suites list narrows them.
        let mut tls = Config::default();
        tls.tls.enabled = true;
        let p = statement(&tls);
        assert_eq!(
            at(&p, 10, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            (true, true)
        );
        assert!(!at(&p, 10, "TLS_DH_RSA_WITH_AES_128_GCM_SHA256").0);
        tls.tls.suites = vec!["0xC02F".into()];
        let p = statement(&tls);
        assert!(!at(&p, 10, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256").0);
        assert!(at(&p, 10, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").0);
        // TLS 1.3 tickets follow tls13_tickets.
        tls.tls.tls13 = true;
        assert!(!at(&statement(&tls), 10, "TLS 1.3 session tickets").0);
        tls.tls.tls13_tickets = 2;
        assert_eq!(
            at(&statement(&tls), 10, "TLS 1.3 session tickets"),
            (true, true)
        );

        // Native mode: every encryption mode by default...
        let mut n = native();
        let p = statement(&n);
        assert_eq!(at(&p, 7, "Native mode"), (true, true));
        assert_eq!(at(&p, 9, "Authenticated encryption"), (true, true));
        assert_eq!(at(&p, 9, "Non-AE: no encryption"), (true, false));
        assert_eq!(at(&p, 12, "DH group 14"), (true, false));
        assert_eq!(at(&p, 12, "DH group \"23\""), (true, true));
        // ...encryption required removes the clear mode, require_ae the CBC one...
        n.security.encryption = EncryptionRule::Required;
        n.security.require_ae = true;
        let p = statement(&n);
        assert!(!at(&p, 9, "Non-AE: no encryption").0);
        assert!(!at(&p, 9, "Non-AE: AES-CBC").0);
        assert!(!at(&p, 11, "aes128-CBC").0);
        assert!(!at(&p, 11, "hmacWithSHA256 ICV").0);
        // ...and dh_groups the groups.
        let mut n = native();
        n.security.dh_groups = vec![DhGroupName::Modp2048];
        n.security.encrypt = Encrypt::Cbc;
        let p = statement(&n);
        assert_eq!(at(&p, 12, "DH group 14"), (true, true));
        assert_eq!(at(&p, 12, "DH group \"23\""), (false, false));
        assert_eq!(at(&p, 11, "aes256-CBC"), (true, true));
        assert_eq!(at(&p, 9, "Non-AE: AES-CBC"), (true, true));

        // Attribute certificates: accepted only with an authority configured.
        let mut a = native();
        assert_eq!(
            at(&statement(&a), 13, "Attribute certificates"),
            (false, false)
        );
        a.security.attribute_authorities = vec!["aa.pem".into()];
        a.security.attribute_certificate = Some("roles.pem".into());
        assert_eq!(
            at(&statement(&a), 13, "Attribute certificates"),
            (true, true)
        );
        assert_eq!(
            at(&statement(&a), 13, "Attribute certificate presented"),
            (true, true)
        );
        let app_ocsp = "OCSP lookups of the peers' application";
        assert_eq!(at(&statement(&a), 13, app_ocsp), (false, false));
        a.security.ocsp_check = Some(secmms::ocsp::OcspCheck::SoftFail);
        assert_eq!(at(&statement(&a), 13, app_ocsp), (true, true));

        // XMPP: an [xmpp] section in native mode.
        n.xmpp = Some(Default::default());
        let p = statement(&n);
        assert_eq!(at(&p, 6, "XMPP"), (true, true));
        assert_eq!(at(&p, 6, "OSI"), (false, false));
        assert!(p.to_markdown().contains("## Table 13"));
        assert!(serde_json::to_string(&p).unwrap().contains("\"number\":13"));
    }
}
