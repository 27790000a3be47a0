//! Property tests of the Annex G tooling: issued identities round-trip through the parser and the
//! lint, serials and times survive OpenSSL's reading, and the lint never panics on mutated or
//! random input.

use proptest::prelude::*;
use secmms_pki::cert::PeerIdentity;
use secmms_pki::crypto::{OsRandom, RandomSource, SigningKey};
use secmms_pki::tooling::lint::lint;
use secmms_pki::tooling::*;
use std::sync::OnceLock;

fn fixture() -> &'static (Ca, SigningKey, Vec<u8>) {
    static F: OnceLock<(Ca, SigningKey, Vec<u8>)> = OnceLock::new();
    F.get_or_init(|| {
        let key = KeyType::P256.generate().unwrap();
        let cert_der = create_ca(
            "prop CA",
            &key,
            Validity::days_from(1_700_000_000, 3650),
            &mut OsRandom,
        )
        .unwrap();
        let ca = Ca { cert_der, key };
        let ee = KeyType::P256.generate().unwrap();
        let req = EndEntityRequest {
            binding: Binding::Osi {
                ap_title: "1.1.1.999.1".parse().unwrap(),
                ae_qualifier: 12,
            },
            subject_form: SubjectForm::Oid,
            role: Some(7),
            role_aor: "x".into(),
            crl_url: Some("http://ca/ca.crl".into()),
            ocsp_url: None,
            validity: Validity::days_from(1_700_000_000, 730),
        };
        let der = issue_end_entity(&req, ee.pkey(), &ca, &mut OsRandom).unwrap();
        (ca, ee, der)
    })
}

/// Deterministic random source for serial draws.
struct Seq(u64);
impl RandomSource for Seq {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), secmms_pki::CryptoError> {
        for b in buf {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 56) as u8;
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn osi_identity_round_trips(
        tail in proptest::collection::vec(0u64..1_000_000_000, 0..6),
        q in any::<u64>(),
        oid_form in any::<bool>(),
        role in proptest::option::of(any::<u32>()),
    ) {
        let (ca, ee, _) = fixture();
        let mut arcs = vec![1u64, 3];
        arcs.extend(tail);
        let ap: secmms_ber::Oid = secmms_ber::Oid::new(&arcs).unwrap();
        let form = if oid_form { SubjectForm::Oid } else { SubjectForm::Utf8 };
        let req = EndEntityRequest {
            binding: Binding::Osi { ap_title: ap.clone(), ae_qualifier: q },
            subject_form: form,
            role,
            role_aor: "aor".into(),
            crl_url: None,
            ocsp_url: None,
            validity: Validity::days_from(1_700_000_000, 30),
        };
        let der = issue_end_entity(&req, ee.pkey(), ca, &mut OsRandom).unwrap();
        let r = lint(&der);
        prop_assert!(r.compliant(), "{:?}", r.findings);
        arcs.push(q);
        prop_assert_eq!(r.identity, Some(PeerIdentity::ApTitle(secmms_ber::Oid::new(&arcs).unwrap())));
        prop_assert!(issued_by(&der, &ca.cert_der).unwrap());
    }

    #[test]
    fn jid_round_trips(local in "[a-z0-9]{1,12}", domain in "[a-z]{1,10}\\.[a-z]{2,5}") {
        let (ca, ee, _) = fixture();
        let jid = format!("{local}@{domain}");
        let req = EndEntityRequest {
            binding: Binding::Jid(jid.clone()),
            subject_form: DEFAULT_SUBJECT_FORM,
            role: None,
            role_aor: String::new(),
            crl_url: None,
            ocsp_url: None,
            validity: Validity::days_from(1_700_000_000, 30),
        };
        let der = issue_end_entity(&req, ee.pkey(), ca, &mut OsRandom).unwrap();
        let r = lint(&der);
        prop_assert!(r.compliant() && r.findings.is_empty(), "{:?}", r.findings);
        prop_assert_eq!(r.identity, Some(PeerIdentity::Jid(jid)));
    }

    #[test]
    fn serial_and_validity_read_back_by_openssl(seed in any::<u64>(), start in 0i64..4_000_000_000, days in 1u32..40_000) {
        let (ca, ee, _) = fixture();
        let mut rng = Seq(seed);
        let s = random_serial(&mut rng).unwrap();
        prop_assert!(s[0] != 0 && s[0] < 0x80);
        let v = Validity::days_from(start, days);
        let req = EndEntityRequest {
            binding: Binding::Jid("a@b.c".into()),
            subject_form: SubjectForm::Utf8,
            role: None,
            role_aor: String::new(),
            crl_url: None,
            ocsp_url: None,
            validity: v,
        };
        let der = issue_end_entity(&req, ee.pkey(), ca, &mut rng).unwrap();
        let x = openssl::x509::X509::from_der(&der).unwrap();
        let epoch = openssl::asn1::Asn1Time::from_unix(0).unwrap();
        let secs = |t: &openssl::asn1::Asn1TimeRef| {
            let d = epoch.diff(t).unwrap();
            i64::from(d.days) * 86_400 + i64::from(d.secs)
        };
        prop_assert_eq!(secs(x.not_before()), v.not_before);
        prop_assert_eq!(secs(x.not_after()), v.not_after);
        let bn = x.serial_number().to_bn().unwrap().to_vec();
        prop_assert_eq!(bn.len(), 16);
        prop_assert_eq!(cert_serial(&der).unwrap(), bn);
    }

    #[test]
    fn lint_never_panics_on_mutations(pos in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let (_, _, der) = fixture();
        let mut m = der.clone();
        let i = pos % m.len();
        m[i] = byte;
        let _ = lint(&m);
        let _ = lint(&m[..cut % m.len()]);
    }

    #[test]
    fn lint_never_panics_on_random(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let r = lint(&bytes);
        if !bytes.is_empty() && bytes[0] != 0x30 {
            prop_assert!(!r.compliant());
        }
    }
}
