//! Annex G certificate tooling: issued certificates pass the lint and OpenSSL, crafted bad
//! certificates are each flagged by their named finding.

use std::process::Command;

use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use secmms_ber::{Tag, Writer};
use secmms_pki::cert::{AnnexGRule, CertInfo, PeerIdentity};
use secmms_pki::crypto::{OsRandom, SigningKey};
use secmms_pki::tooling::lint::lint;
use secmms_pki::tooling::*;

const NOW: i64 = 1_760_000_000;

fn ca(kt: KeyType) -> Ca {
    let key = kt.generate().unwrap();
    let cert_der = create_ca(
        "secmms test CA",
        &key,
        Validity::days_from(NOW - 86_400, 3650),
        &mut OsRandom,
    )
    .unwrap();
    Ca { cert_der, key }
}

fn osi() -> Binding {
    Binding::Osi {
        ap_title: "1.1.1.999.1".parse().unwrap(),
        ae_qualifier: 12,
    }
}

fn ee_req(form: SubjectForm) -> EndEntityRequest {
    EndEntityRequest {
        binding: osi(),
        subject_form: form,
        role: Some(255),
        role_aor: "Outstation".into(),
        crl_url: Some("http://ca.example/ca.crl".into()),
        ocsp_url: None,
        validity: Validity::days_from(NOW - 60, 730),
    }
}

/// True when the `openssl` command runs; fails the test when it is missing and CI=true.
fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var("CI").as_deref() != Ok("true"),
        "the openssl command is required when CI=true"
    );
    ok
}

fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").args(args).output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("secmms-pki-issue-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn issued_certificates_pass_lint_and_openssl() {
    for kt in [KeyType::Rsa2048, KeyType::P256, KeyType::Bp256] {
        let ca = ca(kt);
        let key = kt.generate().unwrap();
        for form in [SubjectForm::Utf8, SubjectForm::Oid] {
            let der = issue_end_entity(&ee_req(form), key.pkey(), &ca, &mut OsRandom).unwrap();
            let r = lint(&der);
            assert!(r.compliant(), "{kt:?} {form:?}: {:?}", r.findings);
            let expect_warn: Vec<AnnexGRule> = match form {
                SubjectForm::Utf8 => vec![AnnexGRule::SubjectIdentityNotOid],
                SubjectForm::Oid => vec![],
            };
            assert_eq!(
                r.findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
                expect_warn
            );
            assert_eq!(
                r.identity,
                Some(PeerIdentity::ApTitle("1.1.1.999.1.12".parse().unwrap()))
            );
            let info = CertInfo::parse(&der).unwrap();
            assert_eq!(info.serial.len(), 16);
            assert!(info.digital_signature() && info.key_agreement());
            if have_openssl() {
                let ca_p = tmp(&format!("ca-{kt:?}.pem"));
                let ee_p = tmp(&format!("ee-{kt:?}-{form:?}.pem"));
                std::fs::write(&ca_p, pem("CERTIFICATE", &ca.cert_der)).unwrap();
                std::fs::write(&ee_p, pem("CERTIFICATE", &der)).unwrap();
                let (ok, text) =
                    openssl(&["x509", "-noout", "-text", "-in", ee_p.to_str().unwrap()]);
                let (vok, vout) = openssl(&[
                    "verify",
                    "-CAfile",
                    ca_p.to_str().unwrap(),
                    ee_p.to_str().unwrap(),
                ]);
                eprintln!("{kt:?} {form:?}: x509 ok={ok} verify ok={vok}\n{vout}\n{text}");
                if form == SubjectForm::Utf8 {
                    assert!(ok, "{text}");
                    assert!(text.contains("Version: 3"));
                    assert!(text.contains("Digital Signature, Key Agreement"), "{text}");
                    assert!(text.contains("1.1.1.999.1.12"), "{text}");
                    assert!(text.contains("http://ca.example/ca.crl"), "{text}");
                    assert!(vok, "{vout}");
                }
            }
        }
    }
}

#[test]
fn crl_revokes_for_openssl() {
    if !have_openssl() {
        eprintln!("SKIPPED: openssl not installed");
        return;
    }
    let ca = ca(KeyType::P256);
    let key = KeyType::P256.generate().unwrap();
    let der = issue_end_entity(&ee_req(SubjectForm::Utf8), key.pkey(), &ca, &mut OsRandom).unwrap();
    let ca_p = tmp("crl-ca.pem");
    let ee_p = tmp("crl-ee.pem");
    let crl_p = tmp("crl.pem");
    std::fs::write(&ca_p, pem("CERTIFICATE", &ca.cert_der)).unwrap();
    std::fs::write(&ee_p, pem("CERTIFICATE", &der)).unwrap();
    let verify = |crl: &[u8]| {
        std::fs::write(&crl_p, pem("X509 CRL", crl)).unwrap();
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            ca_p.to_str().unwrap(),
            "-CRLfile",
            crl_p.to_str().unwrap(),
            ee_p.to_str().unwrap(),
        ])
    };
    // Empty CRL: the certificate verifies.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let empty = issue_crl(&ca, &[], 1, now - 60, now + 86_400).unwrap();
    let (ok, out) = verify(&empty);
    assert!(ok, "{out}");
    let (ok, text) = openssl(&["crl", "-noout", "-text", "-in", crl_p.to_str().unwrap()]);
    assert!(ok && text.contains("X509v3 CRL Number"), "{text}");
    // Revoked: the certificate fails.
    let serial = cert_serial(&der).unwrap();
    let revoked = issue_crl(
        &ca,
        &[RevokedEntry {
            serial,
            revoked_at: now - 30,
        }],
        2,
        now - 30,
        now + 86_400,
    )
    .unwrap();
    let (ok, out) = verify(&revoked);
    assert!(!ok && out.contains("revoked"), "{out}");
    // Our own validator agrees.
    let mut v = secmms_pki::OpenSslValidator::new();
    v.add_anchor(openssl::x509::X509::from_der(&ca.cert_der).unwrap());
    use secmms_pki::CertValidator;
    v.validate(&der, &[], now).unwrap();
    v.add_crl(openssl::x509::X509Crl::from_der(&revoked).unwrap());
    assert_eq!(
        v.validate(&der, &[], now).unwrap_err(),
        secmms_pki::CertError::Revoked
    );
}

// ------------------------------------------------------------------ crafted bad certificates

const SHA256_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
const SHA1_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 5];
const SHA384_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 12];

fn alg_id(arcs: &[u64]) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        w.oid(Tag::OID, &secmms_ber::Oid::new(arcs).unwrap());
        w.null(Tag::NULL);
    });
    w.finish()
}

fn ext(w: &mut Writer, arcs: &[u64], value: &[u8]) {
    w.constructed(Tag::SEQUENCE, |w| {
        w.oid(Tag::OID, &secmms_ber::Oid::new(arcs).unwrap());
        w.octets(Tag::OCTET_STRING, value);
    });
}

fn ku(bits: u8) -> Vec<u8> {
    let mut w = Writer::new();
    w.bit_string(Tag::BIT_STRING, bits.trailing_zeros().min(7) as u8, &[bits]);
    w.finish()
}

/// A certificate description that starts compliant; each table row changes one thing.
#[derive(Clone)]
struct Craft {
    version: Option<i64>,
    serial: Vec<u8>,
    inner_alg: &'static [u64],
    outer_alg: &'static [u64],
    sha1: bool,
    spki: Vec<u8>,
    subject: Vec<u8>,
    unique_ids: bool,
    key_usage: Option<u8>,
    extra: Vec<(Vec<u64>, Vec<u8>)>,
}

fn good(signer: &SigningKey) -> Craft {
    let ee = KeyType::Rsa2048.generate().unwrap();
    let _ = signer;
    Craft {
        version: Some(2),
        serial: vec![
            0x5a, 0x13, 0xc7, 0x02, 0x9e, 0x44, 0x4b, 0x81, 0x96, 0x20, 0xd1, 0x3f, 0x7e, 0x58,
            0xa4, 0x0b,
        ],
        inner_alg: SHA256_RSA,
        outer_alg: SHA256_RSA,
        sha1: false,
        spki: spki_der(ee.pkey()).unwrap(),
        subject: subject_name(&osi(), SubjectForm::Oid).unwrap(),
        unique_ids: false,
        key_usage: Some(0x88),
        extra: vec![],
    }
}

fn build(c: &Craft, signer: &SigningKey) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        if let Some(v) = c.version {
            w.constructed(Tag::context(0, true), |w| w.integer(Tag::INTEGER, v));
        }
        w.tlv(Tag::INTEGER, &c.serial);
        w.raw(&alg_id(c.inner_alg));
        w.raw(&common_name("crafted CA"));
        w.constructed(Tag::SEQUENCE, |w| {
            w.octets(Tag::UTC_TIME, b"250101000000Z");
            w.octets(Tag::UTC_TIME, b"270101000000Z");
        });
        w.raw(&c.subject);
        w.raw(&c.spki);
        if c.unique_ids {
            w.bit_string(Tag::context(1, false), 0, &[1, 2, 3]);
            w.bit_string(Tag::context(2, false), 0, &[4, 5, 6]);
        }
        if c.key_usage.is_some() || !c.extra.is_empty() {
            w.constructed(Tag::context(3, true), |w| {
                w.constructed(Tag::SEQUENCE, |w| {
                    if let Some(k) = c.key_usage {
                        ext(w, &[2, 5, 29, 15], &ku(k));
                    }
                    for (id, v) in &c.extra {
                        ext(w, id, v);
                    }
                })
            });
        }
    });
    let tbs = w.finish();
    let md = if c.sha1 {
        MessageDigest::sha1()
    } else {
        MessageDigest::sha256()
    };
    let mut s = Signer::new(md, signer.pkey()).unwrap();
    s.update(&tbs).unwrap();
    let sig = s.sign_to_vec().unwrap();
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        w.raw(&tbs);
        w.raw(&alg_id(c.outer_alg));
        w.bit_string(Tag::BIT_STRING, 0, &sig);
    });
    w.finish()
}

fn seq(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, f);
    w.finish()
}

fn crl_dp_with(fields: impl Fn(&mut Writer)) -> Vec<u8> {
    seq(|w| w.constructed(Tag::SEQUENCE, fields))
}

fn dp_name(w: &mut Writer) {
    w.constructed(Tag::context(0, true), |w| {
        w.constructed(Tag::context(0, true), |w| {
            w.octets(Tag::context(6, false), b"http://ca.example/ca.crl")
        })
    });
}

#[test]
fn crafted_bad_certificates_are_flagged() {
    let signer = KeyType::Rsa2048.generate().unwrap();
    let base = good(&signer);
    let ok = lint(&build(&base, &signer));
    assert!(ok.findings.is_empty(), "{:?}", ok.findings);

    let rsa1024 = {
        let k = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
        spki_der(&k).unwrap()
    };
    let ocsp = seq(|w| {
        w.constructed(Tag::SEQUENCE, |w| {
            w.oid(Tag::OID, &"1.3.6.1.5.5.7.48.1".parse().unwrap());
            w.octets(Tag::context(6, false), b"http://ocsp.example/");
        })
    });
    let two_rdns = {
        let mut w = Writer::new();
        w.constructed(Tag::SEQUENCE, |w| {
            for v in [&b"a"[..], b"b"] {
                w.constructed(Tag::SET, |w| {
                    w.constructed(Tag::SEQUENCE, |w| {
                        w.oid(Tag::OID, &"2.5.4.3".parse().unwrap());
                        w.octets(Tag::UTF8_STRING, v);
                    })
                });
            }
            w.constructed(Tag::SET, |w| {
                w.constructed(Tag::SEQUENCE, |w| {
                    w.oid(Tag::OID, &"2.5.4.106".parse().unwrap());
                    w.oid(Tag::OID, &"1.1.1.999.1.12".parse().unwrap());
                })
            });
        });
        w.finish()
    };

    type Edit = Box<dyn Fn(&mut Craft)>;
    let rows: Vec<(&str, AnnexGRule, Edit)> = vec![
        ("v1", AnnexGRule::NotV3, Box::new(|c| c.version = None)),
        ("v2", AnnexGRule::NotV3, Box::new(|c| c.version = Some(1))),
        (
            "negative serial",
            AnnexGRule::SerialNegative,
            Box::new(|c| c.serial[0] = 0x9a),
        ),
        (
            "short serial",
            AnnexGRule::SerialTooShort,
            Box::new(|c| c.serial = vec![0x01, 0x02]),
        ),
        (
            "sequential serial",
            AnnexGRule::SerialNotRandom,
            Box::new(|c| c.serial = vec![0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a]),
        ),
        (
            "17-octet serial",
            AnnexGRule::SerialTooLong,
            Box::new(|c| {
                c.serial.insert(0, 0x33);
            }),
        ),
        (
            "SHA-1",
            AnnexGRule::WeakSignatureAlgorithm,
            Box::new(|c| {
                c.sha1 = true;
                c.inner_alg = SHA1_RSA;
                c.outer_alg = SHA1_RSA;
            }),
        ),
        (
            "outer/inner mismatch",
            AnnexGRule::SignatureAlgorithmMismatch,
            Box::new(|c| c.outer_alg = SHA384_RSA),
        ),
        (
            "RSA-1024",
            AnnexGRule::WeakOrUnsupportedKey,
            Box::new(move |c| c.spki = rsa1024.clone()),
        ),
        (
            "unique IDs",
            AnnexGRule::UniqueIdsPresent,
            Box::new(|c| c.unique_ids = true),
        ),
        (
            "no keyUsage",
            AnnexGRule::KeyUsageMissing,
            Box::new(|c| c.key_usage = None),
        ),
        (
            "no digitalSignature",
            AnnexGRule::DigitalSignatureMissing,
            Box::new(|c| c.key_usage = Some(0x08)),
        ),
        (
            "no keyAgreement",
            AnnexGRule::KeyAgreementMissing,
            Box::new(|c| c.key_usage = Some(0x80)),
        ),
        (
            "subject as UTF8String",
            AnnexGRule::SubjectIdentityNotOid,
            Box::new(|c| c.subject = subject_name(&osi(), SubjectForm::Utf8).unwrap()),
        ),
        (
            "subject without identity",
            AnnexGRule::SubjectIdentityMissing,
            Box::new(|c| c.subject = common_name("device")),
        ),
        (
            "multi-RDN subject",
            AnnexGRule::SubjectNotSingleRdn,
            Box::new(move |c| c.subject = two_rdns.clone()),
        ),
        (
            "CRL DP with reasons",
            AnnexGRule::CrlDistributionPointReasons,
            Box::new(|c| {
                c.extra.push((
                    vec![2, 5, 29, 31],
                    crl_dp_with(|w| {
                        dp_name(w);
                        w.bit_string(Tag::context(1, false), 1, &[0x60]);
                    }),
                ))
            }),
        ),
        (
            "CRL DP without distributionPoint",
            AnnexGRule::CrlDistributionPointNameMissing,
            Box::new(|c| {
                c.extra.push((
                    vec![2, 5, 29, 31],
                    crl_dp_with(|w| {
                        w.constructed(Tag::context(2, true), |w| {
                            w.constructed(Tag::context(4, true), |w| {
                                w.raw(&common_name("other CRL issuer"))
                            })
                        })
                    }),
                ))
            }),
        ),
        (
            "CRL DP and OCSP",
            AnnexGRule::CrlAndOcspBoth,
            Box::new(move |c| {
                c.extra
                    .push((vec![2, 5, 29, 31], crl_distribution_points("http://x/")));
                c.extra
                    .push((vec![1, 3, 6, 1, 5, 5, 7, 1, 1], ocsp.clone()));
            }),
        ),
        (
            "oversize",
            AnnexGRule::TooLarge,
            Box::new(|c| c.extra.push((vec![1, 2, 3, 4], vec![0x04; 8200]))),
        ),
        (
            "CA certificate",
            AnnexGRule::EndEntityIsCa,
            Box::new(|c| {
                c.extra
                    .push((vec![2, 5, 29, 19], seq(|w| w.boolean(Tag::BOOLEAN, true))))
            }),
        ),
        (
            "TLS purposes",
            AnnexGRule::TlsPurposeOnApplicationCert,
            Box::new(|c| {
                c.extra.push((
                    vec![2, 5, 29, 37],
                    seq(|w| w.oid(Tag::OID, &"1.3.6.1.5.5.7.3.1".parse().unwrap())),
                ))
            }),
        ),
        (
            "bad IECUserRoles",
            AnnexGRule::RoleExtensionMalformed,
            Box::new(|c| {
                c.extra
                    .push((vec![1, 0, 62351, 8, 1], seq(|w| w.integer(Tag::INTEGER, 5))))
            }),
        ),
    ];
    let mut covered = vec![AnnexGRule::Malformed];
    for (what, rule, edit) in &rows {
        let mut c = base.clone();
        edit(&mut c);
        let r = lint(&build(&c, &signer));
        assert!(
            r.has(*rule),
            "{what}: expected {}, got {:?}",
            rule.name(),
            r.findings
        );
        let expect_ok = rule.severity() == secmms_pki::cert::FindingSeverity::Warning;
        assert_eq!(r.compliant(), expect_ok, "{what}: {:?}", r.findings);
        covered.push(*rule);
    }
    // Undecodable input.
    let r = lint(&[0x30, 0x03, 0x02, 0x01]);
    assert!(r.has(AnnexGRule::Malformed) && !r.compliant());
    // Every rule is exercised by a row and explained.
    for rule in AnnexGRule::ALL {
        assert!(covered.contains(rule), "no crafted row for {}", rule.name());
        assert!(rule.explanation().len() > 40);
    }
    let mut names: Vec<_> = AnnexGRule::ALL.iter().map(|r| r.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), AnnexGRule::ALL.len());
}

#[test]
fn engine_check_uses_the_same_rules() {
    // check_annex_g keeps its messages: the first error rule refuses, warnings are returned.
    let signer = KeyType::Rsa2048.generate().unwrap();
    let mut c = good(&signer);
    c.key_usage = Some(0x80);
    c.subject = subject_name(&osi(), SubjectForm::Utf8).unwrap();
    let der = build(&c, &signer);
    let info = CertInfo::parse(&der).unwrap();
    let key = openssl::pkey::PKey::public_key_from_der(&c.spki).unwrap();
    let w = secmms_pki::cert::check_annex_g(&info, &key).unwrap();
    assert_eq!(
        w,
        vec![
            AnnexGRule::KeyAgreementMissing.message().to_string(),
            AnnexGRule::SubjectIdentityNotOid.message().to_string()
        ]
    );
    c.version = None;
    let info = CertInfo::parse(&build(&c, &signer)).unwrap();
    assert_eq!(
        secmms_pki::cert::check_annex_g(&info, &key).unwrap_err(),
        secmms_pki::CertError::Profile("version is not v3")
    );
}

#[test]
fn oid_form_is_not_readable_by_openssl() {
    // Documents the known limitation behind DEFAULT_SUBJECT_FORM.
    let ca = ca(KeyType::P256);
    let key = KeyType::P256.generate().unwrap();
    let der = issue_end_entity(&ee_req(SubjectForm::Oid), key.pkey(), &ca, &mut OsRandom).unwrap();
    assert!(openssl::x509::X509::from_der(&der).is_err());
    assert_eq!(DEFAULT_SUBJECT_FORM, SubjectForm::Utf8);
    let der = issue_end_entity(&ee_req(SubjectForm::Utf8), key.pkey(), &ca, &mut OsRandom).unwrap();
    assert!(openssl::x509::X509::from_der(&der).is_ok());
}

#[test]
fn jid_binding_and_tls_certificate() {
    let ca = ca(KeyType::P256);
    let key = KeyType::P256.generate().unwrap();
    let mut req = ee_req(SubjectForm::Oid);
    req.binding = Binding::Jid("ied1@substation.example".into());
    req.role = None;
    let der = issue_end_entity(&req, key.pkey(), &ca, &mut OsRandom).unwrap();
    let r = lint(&der);
    assert!(r.compliant() && r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(
        r.identity,
        Some(PeerIdentity::Jid("ied1@substation.example".into()))
    );
    let tls = issue_tls(
        &TlsRequest {
            common_name: "ied1".into(),
            dns: vec!["ied1.example".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            crl_url: None,
            ocsp_url: None,
            validity: Validity::days_from(NOW, 365),
        },
        key.pkey(),
        &ca,
        &mut OsRandom,
    )
    .unwrap();
    let x = openssl::x509::X509::from_der(&tls).unwrap();
    let san = x.subject_alt_names().unwrap();
    assert_eq!(san.iter().next().unwrap().dnsname(), Some("ied1.example"));
    // A TLS certificate is not an application certificate (G.2).
    let r = lint(&tls);
    assert!(r.has(AnnexGRule::TlsPurposeOnApplicationCert));
    assert!(r.has(AnnexGRule::SubjectIdentityMissing));
}

/// Annex G.6.2's OBJECT IDENTIFIER subject form through [`OpenSslValidator`]: OpenSSL cannot
/// load the leaf, so it is parsed in Rust, its signature checked with OpenSSL over the received
/// TBS octets and the chain above it validated by OpenSSL's store. Good, expired, not yet valid,
/// revoked, foreign-CA and tampered certificates get the answers the UTF8 form gets.
#[test]
fn oid_form_is_validated_without_openssl_loading_the_leaf() {
    use secmms_pki::cert::{CertValidator, OpenSslValidator};
    use secmms_pki::CertError;
    let ca = ca(KeyType::P256);
    let key = KeyType::P256.generate().unwrap();
    let der = issue_end_entity(&ee_req(SubjectForm::Oid), key.pkey(), &ca, &mut OsRandom).unwrap();
    assert!(openssl::x509::X509::from_der(&der).is_err());
    let mut v = OpenSslValidator::new();
    v.add_anchor_der(&ca.cert_der).unwrap();

    let ok = v.validate(&der, &[], NOW).unwrap();
    assert_eq!(
        ok.info.identity,
        Some(PeerIdentity::ApTitle("1.1.1.999.1.12".parse().unwrap()))
    );
    assert_eq!(
        ok.public_key.public_key_to_der().unwrap(),
        key.pkey().public_key_to_der().unwrap()
    );
    assert_eq!(
        secmms_pki::cert::public_key_of(&der)
            .unwrap()
            .public_key_to_der()
            .unwrap(),
        key.pkey().public_key_to_der().unwrap()
    );

    // Validity period.
    let e = v.validate(&der, &[], NOW + 800 * 86_400).unwrap_err();
    assert_eq!(e, CertError::Path("certificate has expired".into()));
    let e = v.validate(&der, &[], NOW - 3_600).unwrap_err();
    assert_eq!(e, CertError::Path("certificate is not yet valid".into()));

    // Another CA: no issuer.
    let other = ca_with_name("another CA");
    let mut w = OpenSslValidator::new();
    w.add_anchor_der(&other.cert_der).unwrap();
    assert!(matches!(
        w.validate(&der, &[], NOW),
        Err(CertError::Path(_))
    ));

    // A changed octet in the TBS: the signature no longer verifies, so no issuer is found.
    let mut bad = der.clone();
    let i = bad.len() / 2;
    bad[i] ^= 0x01;
    assert!(v.validate(&bad, &[], NOW).is_err());

    // Revoked by the CA's CRL.
    let serial = cert_serial(&der).unwrap();
    let crl = issue_crl(
        &ca,
        &[RevokedEntry {
            serial,
            revoked_at: NOW - 30,
        }],
        2,
        NOW - 30,
        NOW + 86_400,
    )
    .unwrap();
    let mut r = v.clone();
    r.add_crl(openssl::x509::X509Crl::from_der(&crl).unwrap());
    assert_eq!(r.validate(&der, &[], NOW).unwrap_err(), CertError::Revoked);
    // A CRL of the same CA that does not list it changes nothing.
    let empty = issue_crl(&ca, &[], 3, NOW - 30, NOW + 86_400).unwrap();
    let mut r = v.clone();
    r.add_crl(openssl::x509::X509Crl::from_der(&empty).unwrap());
    assert!(r.validate(&der, &[], NOW).is_ok());
}

fn ca_with_name(name: &str) -> Ca {
    let key = KeyType::P256.generate().unwrap();
    let cert_der = create_ca(
        name,
        &key,
        Validity::days_from(NOW - 86_400, 3650),
        &mut OsRandom,
    )
    .unwrap();
    Ca { cert_der, key }
}
