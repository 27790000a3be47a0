//! Attribute certificates (§13.3.1.6): what `secmms cert issue-ac` issues is accepted by the
//! validator for its holder, and each way of being wrong is refused with its reason.

use openssl::x509::X509;
use secmms_pki::acert::{self, Holder};
use secmms_pki::cert::{CertError, CertInfo, CertValidator, OpenSslValidator, ValidatedCert};
use secmms_pki::crypto::{Curve, OsRandom, SigningKey};
use secmms_pki::tooling::{
    create_ca, issue_attribute_cert, issue_end_entity, AttributeCertRequest, Binding, Ca,
    EndEntityRequest, SubjectForm, Validity,
};

const NOW: i64 = 1_780_000_000;
const DAY: i64 = 86_400;

fn ca(name: &str) -> Ca {
    let key = SigningKey::generate_ec(Curve::P256).unwrap();
    let cert_der = create_ca(
        name,
        &key,
        Validity::days_from(NOW - DAY, 3650),
        &mut OsRandom,
    )
    .unwrap();
    Ca { cert_der, key }
}

fn entity(ca: &Ca, q: u64) -> Vec<u8> {
    let key = SigningKey::generate_ec(Curve::P256).unwrap();
    issue_end_entity(
        &EndEntityRequest {
            binding: Binding::Osi {
                ap_title: "1.1.1.999.1".parse().unwrap(),
                ae_qualifier: q,
            },
            subject_form: SubjectForm::Utf8,
            role: None,
            role_aor: String::new(),
            crl_url: None,
            ocsp_url: None,
            validity: Validity::days_from(NOW - DAY, 365),
        },
        key.pkey(),
        ca,
        &mut OsRandom,
    )
    .unwrap()
}

fn ac(aa: &Ca, holder: &[u8], from: i64, days: u32) -> Vec<u8> {
    issue_attribute_cert(
        &AttributeCertRequest {
            holder_cert: holder.to_vec(),
            roles: vec![2, 7],
            aor: "substation-1".into(),
            validity: Validity::days_from(from, days),
        },
        aa,
        &mut OsRandom,
    )
    .unwrap()
}

fn holder_of(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let i = CertInfo::parse(der).unwrap();
    (i.issuer_name, i.serial)
}

fn check(der: &[u8], holder_cert: &[u8], aas: &[&Ca], now: i64) -> Result<Vec<u64>, String> {
    let (issuer, serial) = holder_of(holder_cert);
    let aas: Vec<X509> = aas
        .iter()
        .map(|c| X509::from_der(&c.cert_der).unwrap())
        .collect();
    acert::validate(
        der,
        Holder {
            issuer: &issuer,
            serial: &serial,
        },
        &aas,
        now,
    )
    .map(|a| a.roles)
    .map_err(|e| match e {
        CertError::AttributeCert(m) => m,
        other => panic!("not an attribute-certificate error: {other}"),
    })
}

#[test]
fn issued_attribute_certificate_validates_for_its_holder() {
    let (ca, aa) = (ca("entity CA"), ca("attribute authority"));
    let holder = entity(&ca, 12);
    let der = ac(&aa, &holder, NOW - 60, 30);
    assert_eq!(check(&der, &holder, &[&aa], NOW), Ok(vec![2, 7]));
    let parsed = acert::parse(&der).unwrap();
    assert_eq!(parsed.attributes, 1);
    assert!(parsed.not_before.ends_with('Z') && parsed.not_before.len() == 15);
}

#[test]
fn each_defect_is_refused_with_its_reason() {
    let (ca, aa, other_aa) = (ca("entity CA"), ca("attribute authority"), ca("other AA"));
    let holder = entity(&ca, 12);
    let stranger = entity(&ca, 13);
    let der = ac(&aa, &holder, NOW - 60, 30);

    let e = check(&der, &stranger, &[&aa], NOW).unwrap_err();
    assert!(e.contains("holder"), "{e}");
    let e = check(&der, &holder, &[&other_aa], NOW).unwrap_err();
    assert!(e.contains("not a configured attribute authority"), "{e}");
    let e = check(&der, &holder, &[], NOW).unwrap_err();
    assert!(e.contains("no attribute authority"), "{e}");
    let e = check(&der, &holder, &[&aa], NOW + 31 * DAY).unwrap_err();
    assert!(e.contains("expired"), "{e}");
    let e = check(&der, &holder, &[&aa], NOW - DAY).unwrap_err();
    assert!(e.contains("not valid before"), "{e}");

    // A forged authority: same name, other key.
    let forged = Ca {
        cert_der: aa.cert_der.clone(),
        key: SigningKey::generate_ec(Curve::P256).unwrap(),
    };
    let der_forged = ac(&forged, &holder, NOW - 60, 30);
    let e = check(&der_forged, &holder, &[&aa], NOW).unwrap_err();
    assert!(e.contains("signature"), "{e}");

    // One flipped octet in the signed part.
    let mut tampered = der.clone();
    let i = tampered.len() / 3;
    tampered[i] ^= 0x01;
    assert!(check(&tampered, &holder, &[&aa], NOW).is_err());

    // Not an attribute certificate at all.
    for junk in [
        &[0x30, 0x00][..],
        &[0x04, 0x00],
        &holder[..],
        &der[..der.len() - 1],
    ] {
        assert!(check(junk, &holder, &[&aa], NOW).is_err());
    }
}

#[test]
fn validator_uses_its_attribute_authorities() {
    let (ca, aa) = (ca("entity CA"), ca("attribute authority"));
    let holder_der = entity(&ca, 12);
    let der = ac(&aa, &holder_der, NOW - 60, 30);
    let mut v = OpenSslValidator::new();
    v.add_anchor_der(&ca.cert_der).unwrap();
    let holder: ValidatedCert = v.validate(&holder_der, &[], NOW).unwrap();
    assert!(matches!(
        v.validate_attribute_cert(&der, &holder, NOW),
        Err(CertError::AttributeCert(_))
    ));
    v.add_attribute_authority(X509::from_der(&aa.cert_der).unwrap());
    v.validate_attribute_cert(&der, &holder, NOW).unwrap();
}

#[test]
fn every_truncation_and_bit_flip_is_refused_without_panic() {
    let (ca, aa) = (ca("entity CA"), ca("attribute authority"));
    let holder = entity(&ca, 12);
    let der = ac(&aa, &holder, NOW - 60, 30);
    for n in 0..der.len() {
        assert!(check(&der[..n], &holder, &[&aa], NOW).is_err());
    }
    for i in 0..der.len() {
        let mut d = der.clone();
        d[i] ^= 0x80;
        assert!(
            check(&d, &holder, &[&aa], NOW).is_err(),
            "flip at {i} accepted"
        );
    }
}
