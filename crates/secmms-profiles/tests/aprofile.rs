//! A-security-profile (IEC 62351-4 §11) over in-memory OSI associations: the happy path both
//! ways, the EXTERNAL encodings, the signature and time tolerances, and one named test per
//! failure asserting the exact ACSE outcome and the security event.

mod common;

use common::*;
use secmms_osi::acse::{AuthenticationValue, ExternalEncoding, SourceDiagnostic};
use secmms_osi::{AbortOrigin, OsiEvent, RejectReason};
use secmms_pki::crypto::SigningKey;
use secmms_pki::PeerIdentity;
use secmms_profiles::aprofile::{wrap_value, ConnectionInfo};
use secmms_profiles::events;
use secmms_profiles::policy::{PeerMatch, TransportSecurity};
use secmms_profiles::value::MmsAuthenticationValue;
use secmms_profiles::{ApplicationSecurity, PeerPolicy, PeerTable};

struct Fx {
    ca: Ca,
    client: Side,
    server: Side,
    client_key: SigningKey,
    client_cert: Vec<u8>,
}

fn fixture() -> Fx {
    let ca = Ca::new("Root");
    let cc = ca.valid(client_identity(), 1);
    let sc = ca.valid(server_identity(), 2);
    let client_key = cc.key.clone();
    let client_cert = cc.certificate.clone();
    let client = Side::new(cc, validator(&ca), PeerTable::require_a_profile());
    let server = Side::new(sc, validator(&ca), PeerTable::require_a_profile());
    Fx {
        ca,
        client,
        server,
        client_key,
        client_cert,
    }
}

fn go(fx: &Fx, f: impl FnMut(&mut secmms_osi::acse::Aarq) + Send + 'static) -> Outcome {
    go_with(fx, PeerPolicy::any("server"), ConnectionInfo::default(), f)
}

fn go_with(
    fx: &Fx,
    policy: PeerPolicy,
    server_conn: ConnectionInfo,
    f: impl FnMut(&mut secmms_osi::acse::Aarq) + Send + 'static,
) -> Outcome {
    let sisco = policy.sisco_compat;
    let hook = Tamper {
        inner: client_hook(&fx.client, policy),
        f: Box::new(f),
    };
    run(
        client_osi(&fx.client, sisco),
        Box::new(hook),
        server_osi(&fx.server),
        Box::new(fx.server.responder(server_conn)),
    )
}

/// The MMS-Authentication-value of the AARQ, for tampering.
fn value_of(aarq: &secmms_osi::acse::Aarq) -> MmsAuthenticationValue {
    let Some(AuthenticationValue::External(e)) = &aarq.calling_authentication_value else {
        panic!("no value")
    };
    MmsAuthenticationValue::decode(e.single_value().unwrap()).unwrap()
}

fn set_value(aarq: &mut secmms_osi::acse::Aarq, v: &MmsAuthenticationValue) {
    let Some(AuthenticationValue::External(e)) = &aarq.calling_authentication_value else {
        panic!("no value")
    };
    aarq.calling_authentication_value = Some(wrap_value(v, e.indirect_reference));
}

/// Asserts: the server aborted with ABRT authentication-failure(5) and sent no AARE; the
/// client saw exactly that abort; the server recorded `ev` (and nothing claiming success).
fn assert_auth_abort(o: &Outcome, server: &Side, ev: events::AEvent) {
    assert!(
        matches!(
            o.server.as_slice(),
            [
                OsiEvent::AbortIndication(secmms_osi::AbortInfo {
                    origin: AbortOrigin::LocalSecurity,
                    reason: Some(5),
                    ..
                }),
                OsiEvent::Closed
            ]
        ),
        "{:?}",
        o.server
    );
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = o.client.as_slice() else {
        panic!("{:?}", o.client)
    };
    assert_eq!(info.origin, AbortOrigin::PeerUser);
    let abrt = info.abrt.as_ref().unwrap();
    assert_eq!(abrt.source, 0, "acse-service-user");
    assert_eq!(abrt.diagnostic, Some(5), "authentication-failure");
    // No AARE travelled: only CR, CC, CN and the abort.
    assert_eq!(
        o.packets.iter().filter(|(c, _)| !c).count(),
        2,
        "CC and the abort only"
    );
    assert_eq!(
        server.mnemonics(),
        vec![ev.mnemonic],
        "server events {:?}",
        server.sink.events()
    );
    let e = &server.sink.events()[0];
    assert_eq!((e.id, e.severity), (ev.id, ev.severity));
}

/// Asserts an AARE rejected-permanent with acse-service-user diagnostic `diag`, and event `ev`.
fn assert_rejected(o: &Outcome, server: &Side, diag: i64, ev: events::AEvent) {
    assert_eq!(o.server, vec![OsiEvent::Closed]);
    let [OsiEvent::AssociateRejected { reason, aare, .. }, OsiEvent::Closed] = o.client.as_slice()
    else {
        panic!("{:?}", o.client)
    };
    assert_eq!(
        reason,
        &RejectReason::Acse {
            result: 1,
            diagnostic: SourceDiagnostic::ServiceUser(diag)
        }
    );
    // A rejecting AARE carries no authentication-value.
    assert!(aare
        .as_ref()
        .unwrap()
        .responding_authentication_value
        .is_none());
    assert_eq!(server.mnemonics(), vec![ev.mnemonic]);
}

fn assert_accepted(o: &Outcome) -> (Box<secmms_osi::acse::Aarq>, Box<secmms_osi::acse::Aare>) {
    let [OsiEvent::AssociateIndication { aarq, .. }] = o.server.as_slice() else {
        panic!("server {:?}", o.server)
    };
    let [OsiEvent::AssociateConfirm { aare, .. }] = o.client.as_slice() else {
        panic!("client {:?}", o.client)
    };
    (aarq.clone(), aare.clone())
}

#[test]
fn happy_path_both_sides_verify() {
    let fx = fixture();
    let server_hook = fx.server.responder(ConnectionInfo::default());
    let client = fx.client.initiator_for(
        ConnectionInfo::default(),
        PeerPolicy::any("server"),
        &client_osi(&fx.client, false),
    );
    let (o, c, s) = run_with(
        client_osi(&fx.client, false),
        client,
        server_osi(&fx.server),
        server_hook,
    );
    let (aarq, aare) = assert_accepted(&o);
    let sp = s.security().authenticated_peer().unwrap();
    assert_eq!(sp.identity, Some(client_identity()));
    assert_eq!(sp.signed_over, secmms_profiles::value::SignedOver::RawTime);
    assert_eq!(sp.fingerprint, secmms_pki::crypto::sha256(&fx.client_cert));
    let cp = c.security().authenticated_peer().unwrap();
    assert_eq!(cp.identity, Some(server_identity()));
    // Each side verified the other's value.
    assert_eq!(fx.server.mnemonics(), vec!["AP_AUTHENTICATED"]);
    assert_eq!(fx.client.mnemonics(), vec!["AP_AUTHENTICATED"]);
    // Wire form (§9, §10.4, §11.1): 8A 02 07 80, 8B 08 <mechanism>, AC{A2{02 01 05 A0{A0{80 81 82}}}}.
    let mech = hex::decode("2886480001000101").unwrap();
    let find = |raw: &[u8], pat: &[u8]| raw.windows(pat.len()).any(|w| w == pat);
    assert!(find(&aarq.raw, &[0x8A, 0x02, 0x07, 0x80]));
    assert!(find(&aarq.raw, &[[0x8B, 0x08].as_slice(), &mech].concat()));
    assert!(find(&aare.raw, &[0x88, 0x02, 0x07, 0x80]));
    assert!(find(&aare.raw, &[[0x89, 0x08].as_slice(), &mech].concat()));
    // calling-authentication-value [12] EXPLICIT around external [2] (§11.3).
    let ac = aarq
        .raw
        .windows(6)
        .any(|w| w[0] == 0xAC && w[1] == 0x82 && w[4] == 0xA2);
    assert!(ac, "AC 82 LL LL A2 ...");
    assert_eq!(aarq.raw_authentication_value.as_ref().unwrap()[0], 0xA2);
    let Some(AuthenticationValue::External(e)) = &aarq.calling_authentication_value else {
        panic!()
    };
    assert_eq!(e.indirect_reference, Some(5), "pcid of mmsAuthenticationAS");
    let v = MmsAuthenticationValue::decode(e.single_value().unwrap()).unwrap();
    assert_eq!(v.certificate, fx.client_cert);
    assert_eq!(v.time, b"20250615150640Z");
    assert_eq!(v.signature.len(), 256, "RSA-2048 signature");
    // The responder mirrored the indirect-reference (§11.3 DECISION).
    let Some(AuthenticationValue::External(r)) = &aare.responding_authentication_value else {
        panic!()
    };
    assert_eq!(r.indirect_reference, Some(5));
    // responding-authentication-value [10] EXPLICIT (0xAA) around external [2].
    assert!(aare
        .raw
        .windows(6)
        .any(|w| w[0] == 0xAA && w[1] == 0x82 && w[4] == 0xA2));
}

#[test]
fn sisco_compat_omits_context_and_indirect_reference_and_responder_mirrors() {
    let fx = fixture();
    let policy = PeerPolicy {
        sisco_compat: true,
        ..PeerPolicy::any("sisco")
    };
    let osi = client_osi(&fx.client, true);
    assert!(osi.extra_abstract_syntaxes.is_empty());
    let o = go_with(&fx, policy, ConnectionInfo::default(), |_| {});
    let (aarq, aare) = assert_accepted(&o);
    let Some(AuthenticationValue::External(e)) = &aarq.calling_authentication_value else {
        panic!()
    };
    assert_eq!(e.indirect_reference, None);
    assert_eq!(e.direct_reference, None);
    let Some(AuthenticationValue::External(r)) = &aare.responding_authentication_value else {
        panic!()
    };
    assert_eq!(r.indirect_reference, None, "mirrored absence");
}

#[test]
fn external_with_direct_reference_and_other_indirect_is_accepted_and_mirrored() {
    let fx = fixture();
    let o = go(&fx, |aarq| {
        if let Some(AuthenticationValue::External(e)) = &mut aarq.calling_authentication_value {
            e.direct_reference = Some("2.1.1".parse().unwrap());
            e.indirect_reference = Some(7);
        }
    });
    let (_, aare) = assert_accepted(&o);
    let Some(AuthenticationValue::External(r)) = &aare.responding_authentication_value else {
        panic!()
    };
    assert_eq!(r.indirect_reference, Some(7));
    assert!(matches!(r.encoding, ExternalEncoding::SingleAsn1Type(_)));
}

#[test]
fn no_mechanism_is_rejected_with_diagnostic_12() {
    let fx = fixture();
    let o = go(&fx, |a| a.mechanism_name = None);
    assert_rejected(&o, &fx.server, 12, events::MECHANISM_REQUIRED);
}

/// §11.1: an AARQ with A-profile authentication whose sender-acse-requirements do not select
/// the authentication functional unit is rejected with authentication-required (14).
#[test]
fn acse_requirements_without_authentication_are_rejected() {
    let fx = fixture();
    let o = go(&fx, |a| a.sender_acse_requirements = None);
    assert_rejected(&o, &fx.server, 14, events::ACSE_REQUIREMENTS_MISSING);
    let fx = fixture();
    let o = go(&fx, |a| {
        a.sender_acse_requirements = Some(secmms_osi::presentation::BitString {
            unused: 6,
            bits: vec![0x40],
        })
    });
    assert_rejected(&o, &fx.server, 14, events::ACSE_REQUIREMENTS_MISSING);
}

/// The §11.1 tolerance DECISION: the known wrong low bit is accepted with a warning, and
/// refused when the tolerance is switched off.
#[test]
fn acse_requirements_wrong_low_bit_is_tolerated_by_configuration() {
    let wrong = |a: &mut secmms_osi::acse::Aarq| {
        a.sender_acse_requirements = Some(secmms_osi::presentation::BitString {
            unused: 0,
            bits: vec![0x01],
        })
    };
    let fx = fixture();
    let o = go(&fx, wrong);
    assert_accepted(&o);
    assert_eq!(
        fx.server.mnemonics(),
        vec!["AP_ACSE_REQUIREMENTS_WRONG_BIT", "AP_AUTHENTICATED"]
    );
    assert_eq!(
        fx.server.sink.events()[0].severity,
        secmms_pki::event::Severity::Warning
    );

    let mut fx = fixture();
    let sc = fx.ca.valid(server_identity(), 2);
    let mut cfg =
        secmms_profiles::AProfileConfig::new(Some(sc), std::sync::Arc::new(validator(&fx.ca)));
    cfg.tolerate_acse_requirements_low_bit = false;
    fx.server = Side::with_config(cfg, PeerTable::require_a_profile());
    let o = go(&fx, wrong);
    assert_rejected(&o, &fx.server, 14, events::ACSE_REQUIREMENTS_MISSING);
}

#[test]
fn wrong_mechanism_is_rejected_with_diagnostic_11() {
    let fx = fixture();
    let o = go(&fx, |a| a.mechanism_name = Some("2.2.3.1".parse().unwrap()));
    assert_rejected(&o, &fx.server, 11, events::MECHANISM_UNKNOWN);
}

fn with_client_cert(fx: &mut Fx, creds: secmms_profiles::Credentials) {
    fx.client = Side::new(creds, validator(&fx.ca), PeerTable::require_a_profile());
}

#[test]
fn expired_certificate_aborts() {
    let mut fx = fixture();
    let (c, _) = fx.ca.end_entity(client_identity(), T0 - 7200, T0 - 3600, 3);
    with_client_cert(&mut fx, c);
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::CERT_EXPIRED);
}

#[test]
fn not_yet_valid_certificate_aborts() {
    let mut fx = fixture();
    let (c, _) = fx.ca.end_entity(client_identity(), T0 + 3600, T0 + 7200, 3);
    with_client_cert(&mut fx, c);
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::CERT_NOT_YET_VALID);
}

#[test]
fn revoked_certificate_aborts() {
    let mut fx = fixture();
    let (c, x) = fx.ca.end_entity(client_identity(), T0 - 3600, T0 + 3600, 3);
    with_client_cert(&mut fx, c);
    let mut v = validator(&fx.ca);
    v.add_crl(fx.ca.crl_revoking(&x));
    let sc = fx.ca.valid(server_identity(), 2);
    fx.server = Side::new(sc, v, PeerTable::require_a_profile());
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::CERT_REVOKED);
    assert_eq!(
        events::CERT_REVOKED.severity,
        secmms_pki::Severity::Incident
    );
}

#[test]
fn unknown_ca_aborts() {
    let mut fx = fixture();
    let other = Ca::new("Other");
    with_client_cert(&mut fx, other.valid(client_identity(), 3));
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::CA_UNKNOWN);
}

#[test]
fn stale_time_just_over_ten_minutes_late_aborts() {
    let fx = fixture();
    fx.client.clock.set(T0 - 601);
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::TIME_STALE);
}

#[test]
fn stale_time_just_over_ten_minutes_early_aborts() {
    let fx = fixture();
    fx.client.clock.set(T0 + 601);
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::TIME_STALE);
}

#[test]
fn time_exactly_ten_minutes_off_is_accepted() {
    let fx = fixture();
    fx.client.clock.set(T0 + 600);
    fx.server.clock.set(T0);
    // The server's own value is then 600 s off for the client too: both accept.
    assert_accepted(&go(&fx, |_| {}));
    let fx = fixture();
    fx.client.clock.set(T0 - 600);
    assert_accepted(&go(&fx, |_| {}));
}

#[test]
fn replayed_time_aborts() {
    let fx = fixture();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = seen.clone();
    assert_accepted(&go(&fx, move |a| *keep.lock().unwrap() = Some(value_of(a))));
    // An attacker replays the whole value (same certificate, time and a valid signature) in a
    // new AARQ within the window. (Our own initiator never repeats a time: see
    // `aprofile::TIME_WITH_MILLISECONDS`.)
    let captured = seen.lock().unwrap().clone().unwrap();
    let o = go(&fx, move |a| set_value(a, &captured));
    assert_eq!(
        fx.server.mnemonics(),
        vec!["AP_AUTHENTICATED", "AP_TIME_REPLAYED"]
    );
    // Check the outcome with a fresh sink view: the abort is the same as every other failure.
    assert!(matches!(
        o.server.as_slice(),
        [
            OsiEvent::AbortIndication(secmms_osi::AbortInfo {
                reason: Some(5),
                ..
            }),
            OsiEvent::Closed
        ]
    ));
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = o.client.as_slice() else {
        panic!("{:?}", o.client)
    };
    assert_eq!(info.abrt.as_ref().unwrap().diagnostic, Some(5));
    // A fresh value from the same certificate is accepted.
    assert_accepted(&go(&fx, |_| {}));
}

#[test]
fn bad_signature_aborts() {
    let fx = fixture();
    let o = go(&fx, |a| {
        let mut v = value_of(a);
        v.signature[10] ^= 1;
        set_value(a, &v);
    });
    assert_auth_abort(&o, &fx.server, events::SIGNATURE_INVALID);
    // The client takes the abort as an authentication failure (§11.4 DECISION).
    assert_eq!(fx.client.mnemonics(), vec!["AP_PEER_ABORTED"]);
}

#[test]
fn forged_value_does_not_poison_the_replay_cache() {
    let fx = fixture();
    let o = go(&fx, |a| {
        let mut v = value_of(a);
        v.signature[0] ^= 0xFF;
        set_value(a, &v);
    });
    assert_auth_abort(&o, &fx.server, events::SIGNATURE_INVALID);
    assert!(fx.server.shared.replay_cache().is_empty());
    // The genuine value of the same second still gets through.
    assert_accepted(&go(&fx, |_| {}));
}

#[test]
fn oversize_certificate_aborts() {
    let mut fx = fixture();
    // A real certificate made large with a 8 400-octet private extension.
    use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
    use openssl::x509::{X509Builder, X509Extension};
    let key = SigningKey::generate_rsa(2048).unwrap();
    let base = secmms_pki::cert::issue::issue(
        &secmms_pki::cert::issue::CertSpec::end_entity(client_identity(), T0 - 10, T0 + 3600, 9),
        &key,
        Some((&fx.ca.cert, &fx.ca.key)),
    )
    .unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(base.serial_number()).unwrap();
    b.set_subject_name(base.subject_name()).unwrap();
    b.set_issuer_name(fx.ca.cert.subject_name()).unwrap();
    b.set_not_before(&Asn1Time::from_unix(T0 - 10).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(T0 + 3600).unwrap())
        .unwrap();
    b.set_pubkey(key.pkey()).unwrap();
    b.append_extension(
        openssl::x509::extension::KeyUsage::new()
            .critical()
            .digital_signature()
            .key_agreement()
            .build()
            .unwrap(),
    )
    .unwrap();
    let obj = Asn1Object::from_str("1.3.6.1.4.1.99999.1").unwrap();
    let os = Asn1OctetString::new_from_bytes(
        &[0x04, 0x82, 0x20, 0xD0]
            .iter()
            .copied()
            .chain(std::iter::repeat(0x55).take(8400))
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    b.append_extension(X509Extension::new_from_der(&obj, false, &os).unwrap())
        .unwrap();
    b.sign(fx.ca.key.pkey(), openssl::hash::MessageDigest::sha256())
        .unwrap();
    let der = b.build().to_der().unwrap();
    assert!(der.len() > 8192 && der.len() < 9000, "{}", der.len());
    let c = secmms_profiles::Credentials {
        certificate: der,
        key,
    };
    // Our own side refuses such a certificate at construction...
    assert!(secmms_profiles::AProfileShared::new(
        secmms_profiles::AProfileConfig::new(
            Some(c.clone()),
            std::sync::Arc::new(validator(&fx.ca))
        ),
        PeerTable::require_a_profile(),
        replay_store(),
        std::sync::Arc::new(secmms_pki::event::MemorySink::new()),
    )
    .is_err());
    // ...so the client sends it by tampering with a valid value.
    let big = c.certificate.clone();
    let _ = &mut fx;
    let o = go(&fx, move |a| {
        let mut v = value_of(a);
        v.certificate = big.clone();
        set_value(a, &v);
    });
    assert_auth_abort(&o, &fx.server, events::CERT_TOO_LARGE);
}

#[test]
fn tls_certificate_reused_as_application_certificate_aborts() {
    let fx = fixture();
    // The transport reports the peer's TLS certificate: the same one the AARQ carries.
    let conn = ConnectionInfo {
        peer_address: None,
        peer_socket: None,
        tls: true,
        tls_certificate_fingerprints: vec![secmms_pki::crypto::sha256(&fx.client_cert)],
    };
    let o = go_with(&fx, PeerPolicy::any("server"), conn, |_| {});
    assert_auth_abort(&o, &fx.server, events::TLS_CERT_REUSED);
}

#[test]
fn own_tls_certificate_is_refused_as_application_certificate() {
    let ca = Ca::new("Root");
    let c = ca.valid(client_identity(), 1);
    let mut cfg =
        secmms_profiles::AProfileConfig::new(Some(c.clone()), std::sync::Arc::new(validator(&ca)));
    cfg.tls_certificate_fingerprints = vec![fingerprint(&c)];
    let r = secmms_profiles::AProfileShared::new(
        cfg,
        PeerTable::require_a_profile(),
        replay_store(),
        std::sync::Arc::new(secmms_pki::event::MemorySink::new()),
    );
    assert_eq!(
        r.err(),
        Some(secmms_profiles::aprofile::ProfileError::TlsCertificateReused)
    );
}

#[test]
fn certificate_subject_not_matching_calling_title_aborts() {
    let mut fx = fixture();
    let other = PeerIdentity::ApTitle("1.1.1.998.12".parse().unwrap());
    let c = fx.ca.valid(other, 3);
    with_client_cert(&mut fx, c);
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::ADDRESS_MISMATCH);
}

#[test]
fn missing_value_with_mechanism_aborts() {
    let fx = fixture();
    let o = go(&fx, |a| a.calling_authentication_value = None);
    assert_auth_abort(&o, &fx.server, events::VALUE_MALFORMED);
}

#[test]
fn signature_fallback_variants_are_accepted_and_logged() {
    for variant in 1..3 {
        let fx = fixture();
        let key = fx.client_key.clone();
        let o = go(&fx, move |a| {
            let mut v = value_of(a);
            let data = v.signed_variants()[variant].1.clone();
            v.signature = key.sign(&data).unwrap();
            set_value(a, &v);
        });
        assert_accepted(&o);
        assert_eq!(
            fx.server.mnemonics(),
            vec!["AP_SIGNATURE_FALLBACK", "AP_AUTHENTICATED"],
            "variant {variant}"
        );
        assert!(fx.server.sink.events()[0]
            .message
            .contains(["ContextTlv", "UniversalTlv"][variant - 1]));
    }
}

#[test]
fn lenient_time_forms_are_accepted() {
    for t in [
        "20250615150640.",
        "20250615150640",
        "20250615150640.25Z",
        "20250615150640,5",
    ] {
        let fx = fixture();
        let key = fx.client_key.clone();
        let o = go(&fx, move |a| {
            let mut v = value_of(a);
            v.time = t.as_bytes().to_vec();
            v.signature = key.sign(&v.time).unwrap();
            set_value(a, &v);
        });
        assert_accepted(&o);
        assert_eq!(fx.server.mnemonics(), vec!["AP_AUTHENTICATED"], "{t}");
    }
    // Not a GeneralizedTime at all.
    let fx = fixture();
    let key = fx.client_key.clone();
    let o = go(&fx, move |a| {
        let mut v = value_of(a);
        v.time = b"yesterday noon".to_vec();
        v.signature = key.sign(&v.time).unwrap();
        set_value(a, &v);
    });
    assert_auth_abort(&o, &fx.server, events::TIME_INVALID);
}

#[test]
fn every_authentication_failure_looks_the_same_on_the_wire() {
    // Bad signature and stale time: the abort PDUs the client receives are byte-identical.
    let fx = fixture();
    let a = go(&fx, |a| {
        let mut v = value_of(a);
        v.signature[3] ^= 1;
        set_value(a, &v);
    });
    let fx = fixture();
    fx.client.clock.set(T0 + 3600);
    let b = go(&fx, |_| {});
    let last = |o: &Outcome| o.packets.iter().rev().find(|(c, _)| !c).unwrap().1.clone();
    assert_eq!(last(&a), last(&b));
}

#[test]
fn client_aborts_on_bad_server_value() {
    let mut fx = fixture();
    let (sc, _) = fx.ca.end_entity(server_identity(), T0 - 7200, T0 - 3600, 5);
    fx.server = Side::new(sc, validator(&fx.ca), PeerTable::require_a_profile());
    let o = go(&fx, |_| {});
    // The server accepted (the client's value is fine) and sent its AARE...
    assert!(matches!(o.server[0], OsiEvent::AssociateIndication { .. }));
    // ...the client refused the server's expired certificate with ABRT authentication-failure.
    assert!(
        matches!(
            o.client.as_slice(),
            [
                OsiEvent::AbortIndication(secmms_osi::AbortInfo {
                    origin: AbortOrigin::LocalSecurity,
                    reason: Some(5),
                    ..
                }),
                OsiEvent::Closed
            ]
        ),
        "{:?}",
        o.client
    );
    assert_eq!(fx.client.mnemonics(), vec!["AP_CERT_EXPIRED"]);
    let Some(OsiEvent::AbortIndication(info)) = o.server.get(1) else {
        panic!("{:?}", o.server)
    };
    assert_eq!(info.abrt.as_ref().unwrap().diagnostic, Some(5));
}

#[test]
fn client_aborts_when_aare_lacks_mechanism() {
    // A responder without the A-profile (NoSecurity) answers with a plain AARE.
    let fx = fixture();
    let o = run(
        client_osi(&fx.client, false),
        Box::new(client_hook(&fx.client, PeerPolicy::any("server"))),
        server_osi(&fx.server),
        Box::new(secmms_osi::NoSecurity),
    );
    assert!(matches!(
        o.client.as_slice(),
        [
            OsiEvent::AbortIndication(secmms_osi::AbortInfo {
                reason: Some(4),
                ..
            }),
            OsiEvent::Closed
        ]
    ));
    assert_eq!(fx.client.mnemonics(), vec!["AP_MECHANISM_REQUIRED"]);
}

// ---- §5.1 peer policy

fn server_with_table(fx: &mut Fx, table: PeerTable) {
    let sc = fx.ca.valid(server_identity(), 2);
    fx.server = Side::new(sc, validator(&fx.ca), table);
}

#[test]
fn policy_unknown_peer_is_rejected() {
    let mut fx = fixture();
    let row = PeerPolicy {
        matcher: PeerMatch {
            ap_title: Some("1.2.3".parse().unwrap()),
            ..PeerMatch::default()
        },
        ..PeerPolicy::any("someone else")
    };
    server_with_table(
        &mut fx,
        PeerTable {
            peers: vec![row],
            default: None,
        },
    );
    let o = go(&fx, |_| {});
    assert_rejected(&o, &fx.server, 1, events::POLICY_REFUSED);
}

#[test]
fn policy_secure_transport_required_refuses_plain_tcp() {
    let mut fx = fixture();
    let row = PeerPolicy {
        transport: TransportSecurity::Secure,
        ..PeerPolicy::any("tls only")
    };
    server_with_table(
        &mut fx,
        PeerTable {
            peers: vec![row.clone()],
            default: None,
        },
    );
    let o = go(&fx, |_| {});
    assert_rejected(&o, &fx.server, 1, events::POLICY_REFUSED);
    // Over TLS the same peer is accepted.
    let conn = ConnectionInfo {
        tls: true,
        ..ConnectionInfo::default()
    };
    let o = go_with(&fx, PeerPolicy::any("server"), conn, |_| {});
    assert_accepted(&o);
}

#[test]
fn policy_non_secure_transport_refuses_tls() {
    let mut fx = fixture();
    let row = PeerPolicy {
        transport: TransportSecurity::NonSecure,
        ..PeerPolicy::any("plain only")
    };
    server_with_table(
        &mut fx,
        PeerTable {
            peers: vec![row],
            default: None,
        },
    );
    let conn = ConnectionInfo {
        tls: true,
        ..ConnectionInfo::default()
    };
    let o = go_with(&fx, PeerPolicy::any("server"), conn, |_| {});
    assert_rejected(&o, &fx.server, 1, events::POLICY_REFUSED);
}

#[test]
fn policy_end_to_end_secure_is_refused_by_the_a_profile() {
    let mut fx = fixture();
    let row = PeerPolicy {
        application: ApplicationSecurity::EndToEndSecure,
        ..PeerPolicy::any("e2e")
    };
    server_with_table(
        &mut fx,
        PeerTable {
            peers: vec![row],
            default: None,
        },
    );
    let o = go(&fx, |_| {});
    assert_rejected(&o, &fx.server, 1, events::POLICY_REFUSED);
}

#[test]
fn policy_non_secure_application_accepts_plain_aarq_and_answers_plainly() {
    let mut fx = fixture();
    let row = PeerPolicy {
        application: ApplicationSecurity::NonSecure,
        ..PeerPolicy::any("legacy")
    };
    server_with_table(
        &mut fx,
        PeerTable {
            peers: vec![row.clone()],
            default: None,
        },
    );
    let o = go_with(&fx, row, ConnectionInfo::default(), |_| {});
    let (aarq, aare) = assert_accepted(&o);
    assert!(aarq.mechanism_name.is_none() && aare.mechanism_name.is_none());
    assert!(aare.responding_authentication_value.is_none());
    assert!(fx.server.mnemonics().is_empty());
}

#[test]
fn policy_configured_certificate_subject_is_enforced() {
    let mut fx = fixture();
    let row = PeerPolicy {
        certificate_subject: Some(PeerIdentity::ApTitle("1.9.9.9".parse().unwrap())),
        ..PeerPolicy::any("pinned")
    };
    server_with_table(
        &mut fx,
        PeerTable {
            peers: vec![row],
            default: None,
        },
    );
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::ADDRESS_MISMATCH);
}

#[test]
fn policy_matches_on_address() {
    let mut fx = fixture();
    let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let row = PeerPolicy {
        matcher: PeerMatch {
            address: Some(ip),
            ..PeerMatch::default()
        },
        ..PeerPolicy::any("by address")
    };
    server_with_table(
        &mut fx,
        PeerTable {
            peers: vec![row],
            default: None,
        },
    );
    let conn = ConnectionInfo {
        peer_address: Some(ip),
        ..ConnectionInfo::default()
    };
    assert_accepted(&go_with(&fx, PeerPolicy::any("server"), conn, |_| {}));
    fx.server.clock.set(T0 + 5);
    fx.client.clock.set(T0 + 5);
    let conn = ConnectionInfo {
        peer_address: Some("192.0.2.8".parse().unwrap()),
        ..ConnectionInfo::default()
    };
    let o = go_with(&fx, PeerPolicy::any("server"), conn, |_| {});
    assert!(matches!(
        o.client.as_slice(),
        [OsiEvent::AssociateRejected { .. }, OsiEvent::Closed]
    ));
}

#[test]
fn initiator_refuses_transport_not_meeting_policy() {
    let fx = fixture();
    let policy = PeerPolicy {
        transport: TransportSecurity::Secure,
        ..PeerPolicy::any("tls only")
    };
    let mut c = secmms_osi::Association::with_security(
        secmms_osi::Role::Initiator,
        client_osi(&fx.client, false),
        Box::new(client_hook(&fx.client, policy)),
    );
    let mut s = secmms_osi::Association::with_security(
        secmms_osi::Role::Responder,
        server_osi(&fx.server),
        Box::new(fx.server.responder(ConnectionInfo::default())),
    );
    let mut log = Vec::new();
    // The hook runs when the AARQ is built: connect() itself refuses.
    let r = c.connect(hex::decode(INIT_REQ).unwrap());
    assert!(
        matches!(r, Err(secmms_osi::OsiError::SecurityAbort(ref a)) if a.diagnostic == Some(1)),
        "{r:?}"
    );
    pump(&mut c, &mut s, &mut log, true);
    assert!(events(&mut s)
        .iter()
        .all(|e| !matches!(e, OsiEvent::AssociateIndication { .. })));
    assert_eq!(fx.client.mnemonics(), vec!["AP_POLICY_REFUSED"]);
}

/// §11.4 step 2, any other certificate failure: a certificate outside the Annex G profile
/// (no digitalSignature in keyUsage) is an authentication failure with `AP_CERT_INVALID`.
#[test]
fn certificate_outside_the_annex_g_profile_aborts() {
    use secmms_pki::cert::issue::{issue, CertSpec};
    let mut fx = fixture();
    let key = SigningKey::generate_rsa(2048).unwrap();
    let mut spec = CertSpec::end_entity(client_identity(), T0 - 3600, T0 + 3600, 3);
    spec.digital_signature = false;
    let cert = issue(&spec, &key, Some((&fx.ca.cert, &fx.ca.key))).unwrap();
    with_client_cert(
        &mut fx,
        secmms_profiles::Credentials {
            certificate: cert.to_der().unwrap(),
            key,
        },
    );
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::CERT_INVALID);
}

/// The replay cache fails closed: when it is full of live entries, a new association is
/// refused (`AP_REPLAY_CACHE_FULL`) rather than let in unchecked.
#[test]
fn full_replay_cache_refuses_the_association() {
    let fx = fixture();
    let cache = fx.server.shared.replay_cache();
    for i in 0..secmms_profiles::limits::MAX_REPLAY_ENTRIES {
        let key = secmms_pki::crypto::sha256(&i.to_be_bytes());
        assert_ne!(
            cache.insert(&key, b"20260101000000Z", T0, 600),
            secmms_profiles::aprofile::ReplayCheck::Full
        );
    }
    let o = go(&fx, |_| {});
    assert_auth_abort(&o, &fx.server, events::REPLAY_CACHE_FULL);
}

/// A side without its own credentials cannot build the authentication value: the AARQ is not
/// sent, the connect fails with the local abort, and `AP_LOCAL_FAILURE` says why.
#[test]
fn missing_own_credentials_is_a_local_failure() {
    use secmms_osi::security::Role;
    let fx = fixture();
    let bare = Side::with_config(
        secmms_profiles::aprofile::AProfileConfig::new(
            None,
            std::sync::Arc::new(validator(&fx.ca)),
        ),
        PeerTable::require_a_profile(),
    );
    let mut c = secmms_osi::Association::with_security(
        Role::Initiator,
        client_osi(&bare, false),
        Box::new(client_hook(&bare, PeerPolicy::any("server"))),
    );
    let r = c.connect(hex::decode(INIT_REQ).unwrap());
    assert!(
        matches!(r, Err(secmms_osi::OsiError::SecurityAbort(_))),
        "{r:?}"
    );
    let raised = bare.sink.events();
    assert!(
        raised
            .iter()
            .any(|e| e.mnemonic == "AP_LOCAL_FAILURE"
                && e.message.contains("no A-profile credentials")),
        "{raised:?}"
    );
}
