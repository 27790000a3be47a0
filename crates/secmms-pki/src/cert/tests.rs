use super::issue::*;
use super::*;
use crate::crypto::{Curve, SigningKey};
use openssl::pkey::PKey;
use secmms_ber::Tag;

const T0: i64 = 1_750_000_000;

#[test]
fn issue_validate_and_revoke() {
    let ca_key = SigningKey::generate_ec(Curve::P256).unwrap();
    let ca = issue(
        &CertSpec::ca("Root", T0 - 1000, T0 + 100_000),
        &ca_key,
        None,
    )
    .unwrap();
    let ee_key = SigningKey::generate_ec(Curve::BrainpoolP256r1).unwrap();
    let id = PeerIdentity::ApTitle(Oid::new(&[1, 1, 1, 999, 1, 12]).unwrap());
    let ee = issue(
        &CertSpec::end_entity(id.clone(), T0 - 10, T0 + 1000, 1),
        &ee_key,
        Some((&ca, &ca_key)),
    )
    .unwrap();
    let der = ee.to_der().unwrap();
    let info = CertInfo::parse(&der).unwrap();
    assert_eq!(info.identity, Some(id));
    assert!(info.identity_as_string);
    assert!(info.digital_signature() && info.key_agreement());
    let mut v = OpenSslValidator::new();
    assert!(matches!(v.validate(&der, &[], T0), Err(CertError::Path(_))));
    v.add_anchor(ca.clone());
    v.validate(&der, &[], T0).unwrap();
    // Expired at a later time.
    assert!(matches!(
        v.validate(&der, &[], T0 + 5000),
        Err(CertError::Path(_))
    ));
    // Revoke it.
    let mut cb = openssl::x509::X509CrlBuilder::new().unwrap();
    cb.set_issuer_name(ca.subject_name()).unwrap();
    cb.set_last_update(&openssl::asn1::Asn1Time::from_unix(T0 as _).unwrap())
        .unwrap();
    let mut rb = openssl::x509::X509RevokedBuilder::new().unwrap();
    rb.set_serial_number(ee.serial_number()).unwrap();
    rb.set_revocation_date(&openssl::asn1::Asn1Time::from_unix(T0 as _).unwrap())
        .unwrap();
    cb.add_revoked(rb.build()).unwrap();
    // AuthorityKeyIdentifier { keyIdentifier [0] } (required by the CRL builder).
    let mut aki = vec![0x30, 22, 0x80, 20];
    aki.extend_from_slice(&ca.digest(openssl::hash::MessageDigest::sha1()).unwrap());
    let obj = openssl::asn1::Asn1Object::from_str("2.5.29.35").unwrap();
    let os = openssl::asn1::Asn1OctetString::new_from_bytes(&aki).unwrap();
    cb.append_extension(openssl::x509::X509Extension::new_from_der(&obj, false, &os).unwrap())
        .unwrap();
    let obj = openssl::asn1::Asn1Object::from_str("2.5.29.20").unwrap();
    let os = openssl::asn1::Asn1OctetString::new_from_bytes(&[2, 1, 1]).unwrap();
    cb.append_extension(openssl::x509::X509Extension::new_from_der(&obj, false, &os).unwrap())
        .unwrap();
    cb.set_next_update(&openssl::asn1::Asn1Time::from_unix(T0 + 86400).unwrap())
        .unwrap();
    cb.sign(ca_key.pkey(), openssl::hash::MessageDigest::sha256())
        .unwrap();
    v.add_crl(cb.build().unwrap());
    let e = v.validate(&der, &[], T0).unwrap_err();
    assert_eq!(e, CertError::Revoked);
    assert!(e.is_alarm());
}

#[test]
fn annex_g_refuses_missing_digital_signature() {
    let k = SigningKey::generate_ec(Curve::P256).unwrap();
    let mut spec = CertSpec::end_entity(PeerIdentity::Jid("a@b".into()), T0, T0 + 10, 2);
    spec.digital_signature = false;
    let c = issue(&spec, &k, None).unwrap();
    let der = c.to_der().unwrap();
    let info = CertInfo::parse(&der).unwrap();
    assert_eq!(info.identity, Some(PeerIdentity::Jid("a@b".into())));
    assert!(matches!(
        check_annex_g(&info, &c.public_key().unwrap()),
        Err(CertError::Profile(_))
    ));
}

#[test]
fn pki_path_split() {
    let k = SigningKey::generate_ec(Curve::P256).unwrap();
    let c = issue(&CertSpec::ca("X", T0, T0 + 1), &k, None).unwrap();
    let d = c.to_der().unwrap();
    let mut w = secmms_ber::Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        w.raw(&d);
        w.raw(&d)
    });
    let v = split_pki_path(&w.finish()).unwrap();
    assert_eq!(v, vec![d.clone(), d]);
    assert!(split_pki_path(&[0x30, 0x01]).is_err());
}

#[test]
fn attribute_cert_default_check() {
    struct V;
    impl CertValidator for V {
        fn validate(&self, _: &[u8], _: &[Vec<u8>], _: i64) -> Result<ValidatedCert, CertError> {
            Err(CertError::Malformed("x"))
        }
    }
    let k = SigningKey::generate_ec(Curve::P256).unwrap();
    let vc = ValidatedCert {
        public_key: PKey::public_key_from_der(&k.pkey().public_key_to_der().unwrap()).unwrap(),
        info: CertInfo {
            version: 2,
            serial: vec![1],
            issuer_name: vec![],
            serial_negative: false,
            inner_sig_alg: vec![],
            outer_sig_alg: vec![],
            sig_alg_oid: Oid::new(&[1, 2]).unwrap(),
            has_unique_ids: false,
            key_usage: None,
            identity: None,
            identity_as_string: false,
        },
        warnings: vec![],
        fingerprint: [0; 32],
    };
    // Without an attribute authority nothing is accepted, well-formed or not.
    assert!(V.validate_attribute_cert(&[0x30, 0x00], &vc, 0).is_err());
    assert!(V.validate_attribute_cert(&[0x04, 0x00], &vc, 0).is_err());
}
