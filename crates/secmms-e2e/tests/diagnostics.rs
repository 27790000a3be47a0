//! Every HandshakeDiagnostics and DtDiagnostics value and every check of clause 14 provoked by a
//! named test. The tables at the top map each code / check to its test; `tables_are_complete`
//! verifies that no value is missing.

mod common;

use common::*;
use secmms_ber::Oid;
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::config::{E2eConfig, EncryptionPolicy, ModeOffer};
use secmms_e2e::doc_support::{KeyType, CLIENT_AP};
use secmms_e2e::pdu::*;
use secmms_e2e::{Diagnostic, DtDiagnostic as D, HandshakeDiagnostic as H, Output, Rejection};
use secmms_pki::crypto::DhGroup;
use secmms_pki::event::Severity;

/// HandshakeDiagnostics value → test.
pub const HANDSHAKE_TABLE: &[(H, &str)] = &[
    (H::NoReasonGiven, "hd00_no_reason_given_local_reject"),
    (H::ProtocolError, "hd01_protocol_error_garbage_req"),
    (H::ProtectedProtocolNotSupported, "hd02_pp_not_supported"),
    (
        H::InvalidSignatureAlgorithm,
        "hd03_signature_algorithm_not_allowed",
    ),
    (H::UnexpectedVersion, "hd04_unexpected_version"),
    (H::HmacAlgorithmNotSupported, "hd05_hmac_not_supported"),
    (H::EncryptionNotRequired, "hd06_encryption_not_required"),
    (H::EncryptionRequired, "hd07_encryption_required"),
    (
        H::InvalidPublicKeyCertificate,
        "hd08_invalid_certificate_profile",
    ),
    (
        H::InvalidCertificationPath,
        "hd09_invalid_certification_path",
    ),
    (H::InvalidTimeValue, "hd10_invalid_time"),
    (H::DhGroupNotSupported, "hd11_dh_group_not_supported"),
    (H::IllegalDhGroupSelected, "hd12_illegal_dh_group_selected"),
    (
        H::IcvAlgorithmsNotSupported,
        "hd13_icv_algorithms_not_supported",
    ),
    (
        H::EncryptAlgorithmsNotSupported,
        "hd14_encrypt_algorithms_not_supported",
    ),
    (
        H::AeaAlgorithmsNotSupported,
        "hd15_aea_algorithms_not_supported",
    ),
    (
        H::InvalidAttributeCertificate,
        "hd16_invalid_attribute_certificate",
    ),
    (
        H::EncrModeAeaNotSupported,
        "hd17_encr_mode_aea_not_supported",
    ),
    (H::AeIsRequired, "hd18_ae_is_required"),
    (
        H::AeaSelectButEncrypNotSupp,
        "hd19_aea_select_but_encryption_not_supported",
    ),
    (H::InvalidAeAlgorithm, "hd20_invalid_ae_algorithm"),
    (
        H::SingleAeAlgorithmRequired,
        "hd21_single_ae_algorithm_required",
    ),
    (H::AeNotUsed, "hd22_ae_not_used"),
    (
        H::InvalidEncryptionAlgorithm,
        "hd23_invalid_encryption_algorithm",
    ),
    (
        H::SingleEncryptAlgoRequired,
        "hd24_single_encrypt_algo_required",
    ),
    (H::SingleIcvAlgoRequired, "hd25_single_icv_algo_required"),
];

/// DtDiagnostics value → test.
pub const DT_TABLE: &[(D, &str)] = &[
    (D::NoReasonGiven, "dt00_no_reason_given_rekey_timeout"),
    (D::ProtocolError, "dt01_protocol_error_wrong_asso_id"),
    (D::UnexpectedVersion, "dt02_unexpected_version_release_req"),
    (D::EncryptionNotSelected, "dt03_encryption_not_selected"),
    (D::EncryptionRequired, "dt04_encryption_required"),
    (D::GmacNonceRequired, "dt05_gmac_nonce_required"),
    (D::InvalidSequenceNumber, "dt06_invalid_sequence_number"),
    (D::AesInitVectorRequired, "dt07_aes_iv_required"),
    (D::UnexpectedDhPublicKey, "dt08_unexpected_dh_public_key"),
    (D::UnexpectedChangedKeys, "dt09_unexpected_changed_keys"),
    (D::GmacInitVectorRequired, "dt10_gmac_init_vector_required"),
    (D::InvalidTimeValue, "dt11_invalid_time_stale"),
];

/// Clause 14 checks (§14.3 steps for both roles, §14.4 steps) → event id → test.
pub const CHECK_TABLE: &[(&str, &str, &str)] = &[
    (
        "14.3 step 1 (server)",
        "IEC62351-4:1.5",
        "hd01_protocol_error_garbage_req",
    ),
    (
        "14.3 step 2 (server)",
        "IEC62351-4:1.1",
        "hd03_signature_algorithm_not_allowed",
    ),
    (
        "14.3 step 3 (server)",
        "IEC62351-4:1.2",
        "alarm_sig_alg_mismatch",
    ),
    (
        "14.3 step 4 (server)",
        "IEC62351-4:1.3",
        "alarm_invalid_signature",
    ),
    (
        "14.3 step 5 error (server)",
        "IEC62351-4:1.6",
        "hd08_invalid_certificate_profile",
    ),
    (
        "14.3 step 5 alarm (server)",
        "IEC62351-4:1.7",
        "alarm_revoked_certificate",
    ),
    (
        "14.3 step 6 (server)",
        "IEC62351-4:1.8",
        "alarm_address_mismatch",
    ),
    (
        "14.3 step 7 (server)",
        "IEC62351-4:1.4",
        "hd02_pp_not_supported",
    ),
    (
        "14.3 step 8 (server)",
        "IEC62351-4:1.9",
        "hd04_unexpected_version",
    ),
    (
        "14.3 step 9 (server)",
        "IEC62351-4:1.10",
        "hd10_invalid_time",
    ),
    (
        "14.3 step 10 (server)",
        "IEC62351-4:1.11",
        "alarm_replayed_handshake_req",
    ),
    (
        "14.3 step 11 (server)",
        "IEC62351-4:1.12",
        "hd11_dh_group_not_supported",
    ),
    (
        "14.3 step 12 (server)",
        "IEC62351-4:1.13",
        "hd05_hmac_not_supported",
    ),
    (
        "14.3 step 13 (server)",
        "IEC62351-4:1.14..1.21",
        "hd06..hd19",
    ),
    (
        "14.3 step 14 (server)",
        "IEC62351-4:1.6",
        "hd16_invalid_attribute_certificate",
    ),
    (
        "14.3 step 1 (client)",
        "IEC62351-4:2.4",
        "client_protocol_error_wrong_asso",
    ),
    (
        "14.3 step 3 (client)",
        "IEC62351-4:2.2",
        "client_alarm_sig_alg_mismatch",
    ),
    (
        "14.3 step 4 (client)",
        "IEC62351-4:2.3",
        "client_alarm_invalid_signature",
    ),
    (
        "14.3 step 6 (client)",
        "IEC62351-4:2.7",
        "client_alarm_address_mismatch",
    ),
    (
        "14.3 step 8 (client)",
        "IEC62351-4:2.8",
        "client_unexpected_version",
    ),
    (
        "14.3 step 9 (client)",
        "IEC62351-4:2.9",
        "client_invalid_time",
    ),
    (
        "14.3 step 11 (client)",
        "IEC62351-4:2.11",
        "hd12_illegal_dh_group_selected",
    ),
    (
        "14.3 step 12 (client)",
        "IEC62351-4:2.12",
        "client_hmac_changed",
    ),
    (
        "14.3 step 13 (client)",
        "IEC62351-4:2.13..2.21",
        "hd20..hd25, client_encryption_*",
    ),
    (
        "14.4 step 1",
        "IEC62351-4:10.1/11.1",
        "dt01_protocol_error_wrong_asso_id",
    ),
    ("14.4 step 2", "IEC62351-4:10.2/11.2", "dt03/dt04"),
    ("14.4 step 3", "IEC62351-4:10.3", "alarm_dt_icv_algorithm"),
    ("14.4 step 4", "IEC62351-4:10.4/11.4/11.9", "dt05/dt07/dt10"),
    ("14.4 step 5", "IEC62351-4:10.5/11.5", "alarm_dt_bad_icv"),
    (
        "14.4 step 6",
        "IEC62351-4:11.6",
        "dt11_invalid_time_stale, dt11_invalid_time_reordered",
    ),
    ("14.4 step 7", "IEC62351-4:11.7", "alarm_dt_replay"),
    (
        "14.4 step 8",
        "IEC62351-4:11.8",
        "dt06_invalid_sequence_number",
    ),
    (
        "14.4 step 9",
        "IEC62351-4:11.10/11.11/11.1",
        "dt08/dt09/dt_protocol_error_client_receives_rekey",
    ),
];

#[test]
fn tables_are_complete() {
    for h in H::ALL {
        assert!(HANDSHAKE_TABLE.iter().any(|(d, _)| d == h), "{h} missing");
    }
    for d in D::ALL {
        assert!(DT_TABLE.iter().any(|(x, _)| x == d), "{d} missing");
    }
    assert_eq!(HANDSHAKE_TABLE.len(), 26);
    assert_eq!(DT_TABLE.len(), 12);
}

// ------------------------------------------------------------------ helpers

fn cfg() -> E2eConfig {
    E2eConfig::default()
}

fn non_ae(encr: Vec<EncrAlg>, icv: Vec<IcvAlg>) -> E2eConfig {
    E2eConfig {
        offer: ModeOffer::NonAe { encr, icv },
        ..cfg()
    }
}

type Modify = dyn Fn(&[u8]) -> Vec<u8>;

/// Sends the (optionally modified) HandshakeReq to the server and returns the rejection.
fn server_rejects(
    ccfg: E2eConfig,
    scfg: E2eConfig,
    modify: Option<&Modify>,
    client_now: secmms_e2e::TimeStamp,
) -> Rejection {
    let mut p = pair(ccfg, scfg);
    let mut req = p.client.handshake_req(Some(INIT_REQ), client_now).unwrap();
    if let Some(m) = modify {
        req = m(&req);
    }
    rejection(p.server.receive(SecPduKind::HandshakeReq, &req, NOW))
}

fn assert_hs(r: &Rejection, diag: H, event: &str) {
    assert_eq!(r.event.id.to_string(), event, "{:?}", r.event);
    assert_eq!(r.cause, Some(Diagnostic::Handshake(diag)));
    assert_eq!(reply_diag(r), Some(Diagnostic::Handshake(diag)));
}

fn assert_alarm(r: &Rejection, event: &str) {
    assert_eq!(r.event.id.to_string(), event, "{:?}", r.event);
    assert_eq!(r.event.severity, Severity::Alarm);
    assert_eq!(reply_diag(r), None, "alarms withhold the diagnostic");
}

fn assert_dt(r: &Rejection, diag: D, event: &str) {
    assert_eq!(r.event.id.to_string(), event, "{:?}", r.event);
    assert_eq!(r.cause, Some(Diagnostic::Dt(diag)));
    assert_eq!(reply_diag(r), Some(Diagnostic::Dt(diag)));
    assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}

fn client_key() -> secmms_pki::SigningKey {
    client_creds(KeyType::P256).key
}
fn server_key() -> secmms_pki::SigningKey {
    server_creds(KeyType::P256).key
}

fn resign_req(req: &[u8], f: impl FnOnce(&mut ClearToken1)) -> Vec<u8> {
    resign_handshake(SecPduKind::HandshakeReq, req, &client_key(), f)
}

/// Runs the handshake up to the server's HandshakeAcc, lets `f` forge it, and returns the
/// client's rejection.
fn client_rejects(ccfg: E2eConfig, scfg: E2eConfig, f: impl FnOnce(&mut ClearToken1)) -> Rejection {
    let mut p = pair(ccfg, scfg);
    let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let acc = p.server.accept(Some(INIT_RSP), NOW).unwrap();
    let acc = resign_handshake(SecPduKind::HandshakeAcc, &acc, &server_key(), f);
    let r = rejection(p.client.receive(SecPduKind::HandshakeAcc, &acc, NOW));
    assert_eq!(
        r.reply.as_ref().map(|x| x.0),
        Some(SecPduKind::HandshakeSecAbort)
    );
    r
}

fn oid(a: &[u64]) -> Oid {
    Oid::new(a).unwrap()
}

// ------------------------------------------------------------------ HandshakeDiagnostics

#[test]
fn hd00_no_reason_given_local_reject() {
    let mut p = pair(cfg(), cfg());
    let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let rej = p.server.security_reject(H::NoReasonGiven, NOW).unwrap();
    let out = p
        .client
        .receive(SecPduKind::HandshakeSecReject, &rej, NOW)
        .unwrap();
    assert_eq!(
        out,
        Output::SecurityRejected {
            diagnostic: Some(H::NoReasonGiven)
        }
    );
}

#[test]
fn hd01_protocol_error_garbage_req() {
    let r = server_rejects(
        cfg(),
        cfg(),
        Some(&|_| vec![0x30, 0x03, 0x02, 0x01, 0x00]),
        NOW,
    );
    assert_hs(&r, H::ProtocolError, "IEC62351-4:1.5");
}

#[test]
fn hd02_pp_not_supported() {
    let c = E2eConfig {
        protected_protocol: "IEC61850-8-2".into(),
        ..cfg()
    };
    let r = server_rejects(c, cfg(), None, NOW);
    assert_hs(&r, H::ProtectedProtocolNotSupported, "IEC62351-4:1.4");
}

#[test]
fn hd03_signature_algorithm_not_allowed() {
    let s = E2eConfig {
        allowed_signatures: vec![secmms_pki::SignatureAlgorithm::RsaPkcs1Sha256],
        ..cfg()
    };
    let r = server_rejects(cfg(), s, None, NOW);
    assert_hs(&r, H::InvalidSignatureAlgorithm, "IEC62351-4:1.1");
}

#[test]
fn hd04_unexpected_version() {
    let r = server_rejects(
        cfg(),
        cfg(),
        Some(&|req| {
            resign_req(req, |t| {
                t.version = Version {
                    unused: 6,
                    bits: vec![0x40],
                }
            })
        }),
        NOW,
    );
    assert_hs(&r, H::UnexpectedVersion, "IEC62351-4:1.9");
}

#[test]
fn hd05_hmac_not_supported() {
    let r = server_rejects(
        cfg(),
        cfg(),
        Some(&|req| resign_req(req, |t| t.hmac.algorithm = oid(&[1, 2, 840, 113549, 2, 7]))),
        NOW,
    );
    assert_hs(&r, H::HmacAlgorithmNotSupported, "IEC62351-4:1.13");
}

#[test]
fn hd06_encryption_not_required() {
    let s = E2eConfig {
        encryption: EncryptionPolicy::Forbidden,
        ..cfg()
    };
    let r = server_rejects(
        non_ae(vec![EncrAlg::Aes128Cbc], vec![IcvAlg::HmacSha256]),
        s,
        None,
        NOW,
    );
    assert_hs(&r, H::EncryptionNotRequired, "IEC62351-4:1.21");
}

#[test]
fn hd07_encryption_required() {
    let s = E2eConfig {
        encryption: EncryptionPolicy::Required,
        ..cfg()
    };
    let r = server_rejects(non_ae(vec![], vec![IcvAlg::HmacSha256]), s, None, NOW);
    assert_hs(&r, H::EncryptionRequired, "IEC62351-4:1.18");
}

#[test]
fn hd08_invalid_certificate_profile() {
    // A client certificate without keyUsage digitalSignature (Annex G.5).
    use secmms_pki::cert::issue::{issue, CertSpec};
    use secmms_pki::cert::PeerIdentity;
    let f = fixture();
    let k = secmms_e2e::doc_support::key(KeyType::P256);
    let mut spec = CertSpec::end_entity(
        PeerIdentity::ApTitle(oid(CLIENT_AP)),
        secmms_e2e::doc_support::DEMO_NOT_BEFORE,
        secmms_e2e::doc_support::DEMO_NOT_AFTER,
        99,
    );
    spec.digital_signature = false;
    let cert = issue(&spec, &k, Some((&f.pki.ca, &f.pki.ca_key))).unwrap();
    let creds = secmms_e2e::Credentials {
        key: k,
        cert_der: cert.to_der().unwrap(),
        cert_path: None,
        att_cert: None,
    };
    let mut client = secmms_e2e::E2eClient::new(ctx(cfg(), creds), TestRng::boxed(5), 1);
    let mut server = secmms_e2e::E2eServer::new(
        ctx(cfg(), server_creds(KeyType::P256)),
        TestRng::boxed(6),
        1,
    );
    let req = client.handshake_req(None, NOW).unwrap();
    let r = rejection(server.receive(SecPduKind::HandshakeReq, &req, NOW));
    assert_hs(&r, H::InvalidPublicKeyCertificate, "IEC62351-4:1.6");
}

#[test]
fn hd09_invalid_certification_path() {
    // A client certified by another CA.
    let other = secmms_e2e::doc_support::DemoPki::new();
    let creds = other.credentials(KeyType::P256, CLIENT_AP, 5);
    let mut client = secmms_e2e::E2eClient::new(ctx(cfg(), creds), TestRng::boxed(5), 1);
    let mut server = secmms_e2e::E2eServer::new(
        ctx(cfg(), server_creds(KeyType::P256)),
        TestRng::boxed(6),
        1,
    );
    let req = client.handshake_req(None, NOW).unwrap();
    let r = rejection(server.receive(SecPduKind::HandshakeReq, &req, NOW));
    assert_hs(&r, H::InvalidCertificationPath, "IEC62351-4:1.6");
}

#[test]
fn hd10_invalid_time() {
    let r = server_rejects(cfg(), cfg(), None, NOW.plus_ms(-601_000));
    assert_hs(&r, H::InvalidTimeValue, "IEC62351-4:1.10");
    // Inside the window is fine.
    let mut p = pair(cfg(), cfg());
    let req = p.client.handshake_req(None, NOW.plus_ms(-599_000)).unwrap();
    assert!(p
        .server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .is_ok());
}

#[test]
fn hd11_dh_group_not_supported() {
    let c = E2eConfig {
        offer_groups: vec![DhGroup::EcdhBrainpoolP256r1],
        ..cfg()
    };
    let s = E2eConfig {
        accept_groups: vec![DhGroup::EcdhP256],
        ..cfg()
    };
    let r = server_rejects(c, s, None, NOW);
    assert_hs(&r, H::DhGroupNotSupported, "IEC62351-4:1.12");
}

#[test]
fn hd12_illegal_dh_group_selected() {
    let r = client_rejects(cfg(), cfg(), |t| t.dh_key[0].group = 14);
    assert_hs(&r, H::IllegalDhGroupSelected, "IEC62351-4:2.11");
}

#[test]
fn hd13_icv_algorithms_not_supported() {
    let s = E2eConfig {
        allowed_icv: vec![IcvAlg::HmacSha256],
        ..cfg()
    };
    let r = server_rejects(non_ae(vec![], vec![IcvAlg::Gmac256]), s, None, NOW);
    assert_hs(&r, H::IcvAlgorithmsNotSupported, "IEC62351-4:1.20");
}

#[test]
fn hd14_encrypt_algorithms_not_supported() {
    let s = E2eConfig {
        allowed_encr: vec![EncrAlg::Aes128Cbc],
        ..cfg()
    };
    let r = server_rejects(
        non_ae(vec![EncrAlg::Aes256Cbc], vec![IcvAlg::HmacSha256]),
        s,
        None,
        NOW,
    );
    assert_hs(&r, H::EncryptAlgorithmsNotSupported, "IEC62351-4:1.19");
}

#[test]
fn hd15_aea_algorithms_not_supported() {
    let c = E2eConfig {
        offer: ModeOffer::Ae(vec![AeAlg::Aes256Gcm]),
        ..cfg()
    };
    let s = E2eConfig {
        allowed_ae: vec![AeAlg::Aes128Gcm],
        ..cfg()
    };
    let r = server_rejects(c, s, None, NOW);
    assert_hs(&r, H::AeaAlgorithmsNotSupported, "IEC62351-4:1.16");
}

#[test]
fn hd16_invalid_attribute_certificate() {
    let mut creds = client_creds(KeyType::P256);
    creds.att_cert = Some(vec![0x04, 0x01, 0x00]);
    let mut client = secmms_e2e::E2eClient::new(ctx(cfg(), creds), TestRng::boxed(5), 1);
    let mut server = secmms_e2e::E2eServer::new(
        ctx(cfg(), server_creds(KeyType::P256)),
        TestRng::boxed(6),
        1,
    );
    let req = client.handshake_req(None, NOW).unwrap();
    let r = rejection(server.receive(SecPduKind::HandshakeReq, &req, NOW));
    assert_hs(&r, H::InvalidAttributeCertificate, "IEC62351-4:1.6");
}

#[test]
fn hd17_encr_mode_aea_not_supported() {
    let s = E2eConfig {
        allowed_ae: vec![],
        ..cfg()
    };
    let r = server_rejects(cfg(), s, None, NOW);
    assert_hs(&r, H::EncrModeAeaNotSupported, "IEC62351-4:1.14");
}

#[test]
fn hd18_ae_is_required() {
    let s = E2eConfig {
        require_ae: true,
        ..cfg()
    };
    let r = server_rejects(non_ae(vec![], vec![IcvAlg::HmacSha256]), s, None, NOW);
    assert_hs(&r, H::AeIsRequired, "IEC62351-4:1.17");
}

#[test]
fn hd19_aea_select_but_encryption_not_supported() {
    let s = E2eConfig {
        encryption: EncryptionPolicy::Forbidden,
        ..cfg()
    };
    let r = server_rejects(cfg(), s, None, NOW);
    assert_hs(&r, H::AeaSelectButEncrypNotSupp, "IEC62351-4:1.15");
}

#[test]
fn hd20_invalid_ae_algorithm() {
    let c = E2eConfig {
        offer: ModeOffer::Ae(vec![AeAlg::Aes128Gcm]),
        ..cfg()
    };
    let r = client_rejects(c, cfg(), |t| {
        t.encr_mode = EncrMode::Aea(vec![AeAlg::Aes256Gcm.id()])
    });
    assert_hs(&r, H::InvalidAeAlgorithm, "IEC62351-4:2.13");
}

#[test]
fn hd21_single_ae_algorithm_required() {
    let r = client_rejects(cfg(), cfg(), |t| {
        t.encr_mode = EncrMode::Aea(vec![AeAlg::Aes128Gcm.id(), AeAlg::Aes256Gcm.id()])
    });
    assert_hs(&r, H::SingleAeAlgorithmRequired, "IEC62351-4:2.14");
}

#[test]
fn hd22_ae_not_used() {
    let r = client_rejects(cfg(), cfg(), |t| {
        t.encr_mode = EncrMode::NonAea {
            encr: None,
            icv: vec![IcvAlg::HmacSha256.id()],
        }
    });
    assert_hs(&r, H::AeNotUsed, "IEC62351-4:2.15");
}

#[test]
fn hd23_invalid_encryption_algorithm() {
    let c = non_ae(vec![EncrAlg::Aes128Cbc], vec![IcvAlg::HmacSha256]);
    let r = client_rejects(c, cfg(), |t| {
        t.encr_mode = EncrMode::NonAea {
            encr: Some(vec![EncrAlg::Aes256Cbc.id()]),
            icv: vec![IcvAlg::HmacSha256.id()],
        }
    });
    assert_hs(&r, H::InvalidEncryptionAlgorithm, "IEC62351-4:2.16");
}

#[test]
fn hd24_single_encrypt_algo_required() {
    let c = non_ae(
        vec![EncrAlg::Aes128Cbc, EncrAlg::Aes256Cbc],
        vec![IcvAlg::HmacSha256],
    );
    let r = client_rejects(c, cfg(), |t| {
        t.encr_mode = EncrMode::NonAea {
            encr: Some(vec![EncrAlg::Aes128Cbc.id(), EncrAlg::Aes256Cbc.id()]),
            icv: vec![IcvAlg::HmacSha256.id()],
        }
    });
    assert_hs(&r, H::SingleEncryptAlgoRequired, "IEC62351-4:2.17");
}

#[test]
fn hd25_single_icv_algo_required() {
    let c = non_ae(vec![], vec![IcvAlg::HmacSha256, IcvAlg::Gmac128]);
    let r = client_rejects(c, cfg(), |t| {
        t.encr_mode = EncrMode::NonAea {
            encr: None,
            icv: vec![IcvAlg::HmacSha256.id(), IcvAlg::Gmac128.id()],
        }
    });
    assert_hs(&r, H::SingleIcvAlgoRequired, "IEC62351-4:2.19");
}

#[test]
fn client_invalid_icv_algorithm() {
    let c = non_ae(vec![], vec![IcvAlg::HmacSha256]);
    let r = client_rejects(c, cfg(), |t| {
        t.encr_mode = EncrMode::NonAea {
            encr: None,
            icv: vec![IcvAlg::Gmac128.id()],
        }
    });
    assert_hs(&r, H::IcvAlgorithmsNotSupported, "IEC62351-4:2.18");
}

#[test]
fn client_encryption_required() {
    let c = E2eConfig {
        encryption: EncryptionPolicy::Required,
        ..non_ae(vec![EncrAlg::Aes128Cbc], vec![IcvAlg::HmacSha256])
    };
    let r = client_rejects(c, cfg(), |t| {
        t.encr_mode = EncrMode::NonAea {
            encr: None,
            icv: vec![IcvAlg::HmacSha256.id()],
        }
    });
    assert_hs(&r, H::EncryptionRequired, "IEC62351-4:2.21");
}

#[test]
fn client_encryption_not_required() {
    let c = E2eConfig {
        encryption: EncryptionPolicy::Forbidden,
        ..non_ae(vec![], vec![IcvAlg::HmacSha256])
    };
    let r = client_rejects(c, cfg(), |t| {
        t.encr_mode = EncrMode::NonAea {
            encr: Some(vec![EncrAlg::Aes128Cbc.id()]),
            icv: vec![IcvAlg::HmacSha256.id()],
        }
    });
    assert_hs(&r, H::EncryptionNotRequired, "IEC62351-4:2.20");
}

// ------------------------------------------------------------------ other handshake checks

#[test]
fn alarm_sig_alg_mismatch() {
    let r = server_rejects(
        cfg(),
        cfg(),
        Some(&|req| {
            let mut h =
                match SecPdu::decode(SecPduKind::HandshakeReq, req, Default::default()).unwrap() {
                    SecPdu::HandshakeReq(h) => h,
                    _ => unreachable!(),
                };
            h.sign.algo =
                secmms_e2e::alg::sig_alg_id(secmms_pki::SignatureAlgorithm::RsaPkcs1Sha256);
            SecPdu::HandshakeReq(h).encode()
        }),
        NOW,
    );
    assert_alarm(&r, "IEC62351-4:1.2");
}

#[test]
fn alarm_invalid_signature() {
    let r = server_rejects(
        cfg(),
        cfg(),
        Some(&|req| {
            let mut h =
                match SecPdu::decode(SecPduKind::HandshakeReq, req, Default::default()).unwrap() {
                    SecPdu::HandshakeReq(h) => h,
                    _ => unreachable!(),
                };
            h.sign.sign = client_key().sign(b"something else").unwrap();
            SecPdu::HandshakeReq(h).encode()
        }),
        NOW,
    );
    assert_alarm(&r, "IEC62351-4:1.3");
}

#[test]
fn alarm_revoked_certificate() {
    use std::sync::Arc;
    let f = fixture();
    let creds = client_creds(KeyType::P256);
    let cert = openssl::x509::X509::from_der(&creds.cert_der).unwrap();
    let mut v = secmms_pki::OpenSslValidator::new();
    v.add_anchor(f.pki.ca.clone());
    let mut cb = openssl::x509::X509CrlBuilder::new().unwrap();
    cb.set_issuer_name(f.pki.ca.subject_name()).unwrap();
    let t = openssl::asn1::Asn1Time::from_unix(NOW.unix_secs() - 10).unwrap();
    cb.set_last_update(&t).unwrap();
    let t2 = openssl::asn1::Asn1Time::from_unix(NOW.unix_secs() + 86_400).unwrap();
    cb.set_next_update(&t2).unwrap();
    let mut rb = openssl::x509::X509RevokedBuilder::new().unwrap();
    rb.set_serial_number(cert.serial_number()).unwrap();
    rb.set_revocation_date(&t).unwrap();
    cb.add_revoked(rb.build()).unwrap();
    let mut aki = vec![0x30, 22, 0x80, 20];
    aki.extend_from_slice(
        &f.pki
            .ca
            .digest(openssl::hash::MessageDigest::sha1())
            .unwrap(),
    );
    for (o, v) in [("2.5.29.35", aki), ("2.5.29.20", vec![2, 1, 1])] {
        let obj = openssl::asn1::Asn1Object::from_str(o).unwrap();
        let os = openssl::asn1::Asn1OctetString::new_from_bytes(&v).unwrap();
        cb.append_extension(openssl::x509::X509Extension::new_from_der(&obj, false, &os).unwrap())
            .unwrap();
    }
    cb.sign(f.pki.ca_key.pkey(), openssl::hash::MessageDigest::sha256())
        .unwrap();
    v.add_crl(cb.build().unwrap());
    let mut sctx = ctx(cfg(), server_creds(KeyType::P256));
    sctx.validator = Arc::new(v);
    let mut client = secmms_e2e::E2eClient::new(ctx(cfg(), creds), TestRng::boxed(5), 1);
    let mut server = secmms_e2e::E2eServer::new(sctx, TestRng::boxed(6), 1);
    let req = client.handshake_req(None, NOW).unwrap();
    let r = rejection(server.receive(SecPduKind::HandshakeReq, &req, NOW));
    assert_alarm(&r, "IEC62351-4:1.7");
}

#[test]
fn alarm_address_mismatch() {
    let mut p = pair(cfg(), cfg());
    p.server
        .set_expected_peer(Some(secmms_pki::PeerIdentity::ApTitle(oid(&[
            1, 1, 1, 999, 1, 13,
        ]))));
    let req = p.client.handshake_req(None, NOW).unwrap();
    let r = rejection(p.server.receive(SecPduKind::HandshakeReq, &req, NOW));
    assert_alarm(&r, "IEC62351-4:1.8");
    // The right address passes.
    let mut p = pair(cfg(), cfg());
    p.server
        .set_expected_peer(Some(secmms_pki::PeerIdentity::ApTitle(oid(CLIENT_AP))));
    let req = p.client.handshake_req(None, NOW).unwrap();
    assert!(p
        .server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .is_ok());
}

#[test]
fn alarm_replayed_handshake_req() {
    let sctx = ctx(cfg(), server_creds(KeyType::P256));
    let mut client = secmms_e2e::E2eClient::new(
        ctx(cfg(), client_creds(KeyType::P256)),
        TestRng::boxed(5),
        1,
    );
    let req = client.handshake_req(None, NOW).unwrap();
    let mut s1 = secmms_e2e::E2eServer::new(sctx.clone(), TestRng::boxed(6), 1);
    assert!(s1.receive(SecPduKind::HandshakeReq, &req, NOW).is_ok());
    // Same request to a second association of the same server endpoint.
    let mut s2 = secmms_e2e::E2eServer::new(sctx, TestRng::boxed(7), 2);
    let r = rejection(s2.receive(SecPduKind::HandshakeReq, &req, NOW.plus_ms(5)));
    assert_alarm(&r, "IEC62351-4:1.11");
}

#[test]
fn client_protocol_error_wrong_asso() {
    let r = client_rejects(cfg(), cfg(), |t| t.asso_id = AssoId::new("2:7").unwrap());
    assert_hs(&r, H::ProtocolError, "IEC62351-4:2.4");
}

#[test]
fn client_alarm_sig_alg_mismatch() {
    let mut p = pair(cfg(), cfg());
    let req = p.client.handshake_req(None, NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let acc = p.server.accept(None, NOW).unwrap();
    let mut h = match SecPdu::decode(SecPduKind::HandshakeAcc, &acc, Default::default()).unwrap() {
        SecPdu::HandshakeAcc(h) => h,
        _ => unreachable!(),
    };
    h.sign.algo = secmms_e2e::alg::sig_alg_id(secmms_pki::SignatureAlgorithm::RsaPkcs1Sha256);
    let r = rejection(p.client.receive(
        SecPduKind::HandshakeAcc,
        &SecPdu::HandshakeAcc(h).encode(),
        NOW,
    ));
    assert_alarm(&r, "IEC62351-4:2.2");
}

#[test]
fn client_alarm_invalid_signature() {
    let mut p = pair(cfg(), cfg());
    let req = p.client.handshake_req(None, NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let acc = p.server.accept(None, NOW).unwrap();
    // Signed by the client's key instead of the key of pkCert.
    let acc = resign_handshake(SecPduKind::HandshakeAcc, &acc, &client_key(), |_| {});
    let r = rejection(p.client.receive(SecPduKind::HandshakeAcc, &acc, NOW));
    assert_alarm(&r, "IEC62351-4:2.3");
}

#[test]
fn client_alarm_address_mismatch() {
    let mut p = pair(cfg(), cfg());
    p.client
        .set_expected_peer(Some(secmms_pki::PeerIdentity::ApTitle(oid(CLIENT_AP))));
    let req = p.client.handshake_req(None, NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let acc = p.server.accept(None, NOW).unwrap();
    let r = rejection(p.client.receive(SecPduKind::HandshakeAcc, &acc, NOW));
    assert_alarm(&r, "IEC62351-4:2.7");
}

#[test]
fn client_unexpected_version() {
    let r = client_rejects(cfg(), cfg(), |t| {
        t.version = Version {
            unused: 0,
            bits: vec![],
        }
    });
    assert_hs(&r, H::UnexpectedVersion, "IEC62351-4:2.8");
}

#[test]
fn client_invalid_time() {
    let r = client_rejects(cfg(), cfg(), |t| t.time = NOW.plus_ms(700_000));
    assert_hs(&r, H::InvalidTimeValue, "IEC62351-4:2.9");
}

#[test]
fn client_hmac_changed() {
    let r = client_rejects(cfg(), cfg(), |t| {
        t.hmac.algorithm = oid(&[1, 2, 840, 113549, 2, 10])
    });
    assert_hs(&r, H::HmacAlgorithmNotSupported, "IEC62351-4:2.12");
}

// ------------------------------------------------------------------ DtDiagnostics

fn established(ccfg: E2eConfig, scfg: E2eConfig) -> Pair {
    let mut p = pair(ccfg, scfg);
    establish(&mut p, NOW);
    p
}

const PR: &[u8] = &[0xa0, 0x05, 0x02, 0x01, 0x01, 0xa4, 0x00];

fn decode_transfer(kind: SecPduKind, b: &[u8]) -> Transfer {
    match SecPdu::decode(kind, b, Default::default()).unwrap() {
        SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t) => t,
        _ => unreachable!(),
    }
}

/// Re-assembles a transfer after `f` changed its token (the ICV is kept, so it no longer
/// verifies: the checks under test run before the ICV).
fn reassemble(kind: SecPduKind, b: &[u8], f: impl FnOnce(&mut Transfer)) -> Vec<u8> {
    let mut t = decode_transfer(kind, b);
    f(&mut t);
    let enc = kind == SecPduKind::EncrTransfer;
    let content = t.token2.encode_content();
    let mut n = Transfer::assemble(t.token2.clone(), content, t.appl_data.clone(), enc);
    n.auth = t.auth.clone();
    if enc {
        SecPdu::EncrTransfer(n).encode()
    } else {
        SecPdu::ClearTransfer(n).encode()
    }
}

#[test]
fn dt00_no_reason_given_rekey_timeout() {
    let mut p = established(cfg(), cfg());
    p.client.start_rekey();
    p.client.protect(PR, NOW).unwrap();
    let r = match p.client.protect(PR, NOW.plus_ms(121_000)) {
        Err(secmms_e2e::E2eError::Rejected(r)) => *r,
        o => panic!("{o:?}"),
    };
    assert_dt(&r, D::NoReasonGiven, "secmms:0.2");
}

#[test]
fn dt01_protocol_error_wrong_asso_id() {
    let mut p = established(cfg(), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| t.token2.asso_id = AssoId::new("1:8").unwrap());
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_dt(&r, D::ProtocolError, "IEC62351-4:11.1");
}

#[test]
fn dt02_unexpected_version_release_req() {
    let mut p = established(cfg(), cfg());
    let rel = p.client.release_req(None, NOW).unwrap();
    let rel = resign_token3(SecPduKind::ReleaseReq, &rel, &client_key(), |p| {
        p.token3.version = Version {
            unused: 0,
            bits: vec![0x00],
        }
    });
    let r = rejection(p.server.receive(SecPduKind::ReleaseReq, &rel, NOW));
    assert_dt(&r, D::UnexpectedVersion, "IEC62351-4:12.8");
}

#[test]
fn dt03_encryption_not_selected() {
    let mut p = established(non_ae(vec![], vec![IcvAlg::HmacSha256]), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    assert_eq!(k, SecPduKind::ClearTransfer);
    let t = decode_transfer(k, &b);
    let mut e = Transfer::assemble(
        t.token2.clone(),
        t.token2_content.clone(),
        t.appl_data.clone(),
        true,
    );
    e.auth = t.auth;
    let r = rejection(p.server.receive(
        SecPduKind::EncrTransfer,
        &SecPdu::EncrTransfer(e).encode(),
        NOW,
    ));
    assert_dt(&r, D::EncryptionNotSelected, "IEC62351-4:11.2");
}

#[test]
fn dt04_encryption_required() {
    let mut p = established(cfg(), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    assert_eq!(k, SecPduKind::EncrTransfer);
    let t = decode_transfer(k, &b);
    let mut c = Transfer::assemble(
        t.token2.clone(),
        t.token2_content.clone(),
        PR.to_vec(),
        false,
    );
    c.auth = Some(Authenticator {
        nonce: None,
        algorithm: IcvAlg::HmacSha256.id(),
        icv: vec![0; 32],
    });
    let r = rejection(p.server.receive(
        SecPduKind::ClearTransfer,
        &SecPdu::ClearTransfer(c).encode(),
        NOW,
    ));
    assert_dt(&r, D::EncryptionRequired, "IEC62351-4:10.2");
}

#[test]
fn dt05_gmac_nonce_required() {
    let mut p = established(non_ae(vec![], vec![IcvAlg::Gmac128]), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| t.auth.as_mut().unwrap().nonce = None);
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_dt(&r, D::GmacNonceRequired, "IEC62351-4:10.4");
}

#[test]
fn dt06_invalid_sequence_number() {
    let mut p = established(cfg(), cfg());
    let (k, b0) = p.client.protect(PR, NOW).unwrap();
    let (_, _b1) = p.client.protect(PR, NOW).unwrap();
    let (_, b2) = p.client.protect(PR, NOW).unwrap();
    assert!(matches!(p.server.receive(k, &b0, NOW), Ok(Output::Data(_))));
    let r = rejection(p.server.receive(k, &b2, NOW));
    assert_dt(&r, D::InvalidSequenceNumber, "IEC62351-4:11.8");
}

#[test]
fn dt06_reordered_same_time_is_invalid_sequence() {
    let mut p = established(cfg(), cfg());
    let (k, _b0) = p.client.protect(PR, NOW).unwrap();
    let (_, b1) = p.client.protect(PR, NOW).unwrap();
    let r = rejection(p.server.receive(k, &b1, NOW));
    assert_dt(&r, D::InvalidSequenceNumber, "IEC62351-4:11.8");
}

#[test]
fn dt07_aes_iv_required() {
    let mut p = established(
        non_ae(vec![EncrAlg::Aes128Cbc], vec![IcvAlg::HmacSha256]),
        cfg(),
    );
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    assert_eq!(k, SecPduKind::EncrTransfer);
    let b = reassemble(k, &b, |t| t.token2.iv = None);
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_dt(&r, D::AesInitVectorRequired, "IEC62351-4:11.9");
}

#[test]
fn dt08_unexpected_dh_public_key() {
    let mut p = established(cfg(), cfg());
    p.client.start_rekey();
    let (k, a) = p.client.protect(PR, NOW).unwrap();
    assert!(decode_transfer(k, &a).token2.rekey.is_some());
    assert!(matches!(p.server.receive(k, &a, NOW), Ok(Output::Data(_))));
    // A second rekey before the server signalled changedKey.
    p.client.start_rekey();
    let (k, b) = p.client.protect(PR, NOW.plus_ms(1)).unwrap();
    assert!(decode_transfer(k, &b).token2.rekey.is_some());
    let r = rejection(p.server.receive(k, &b, NOW.plus_ms(1)));
    assert_dt(&r, D::UnexpectedDhPublicKey, "IEC62351-4:11.10");
}

#[test]
fn dt09_unexpected_changed_keys() {
    let mut p = established(cfg(), cfg());
    let (k, b) = p.server.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| t.token2.changed_key = true);
    let r = rejection(p.client.receive(k, &b, NOW));
    assert_dt(&r, D::UnexpectedChangedKeys, "IEC62351-4:11.11");
}

#[test]
fn dt_protocol_error_client_receives_rekey() {
    let mut p = established(cfg(), cfg());
    let (k, b) = p.server.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| t.token2.rekey = Some(vec![4; 65]));
    let r = rejection(p.client.receive(k, &b, NOW));
    assert_dt(&r, D::ProtocolError, "IEC62351-4:11.1");
}

#[test]
fn dt_protocol_error_auth_in_ae_mode() {
    let mut p = established(cfg(), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| {
        t.auth = Some(Authenticator {
            nonce: None,
            algorithm: IcvAlg::HmacSha256.id(),
            icv: vec![0; 32],
        })
    });
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_dt(&r, D::ProtocolError, "IEC62351-4:11.1");
}

#[test]
fn dt10_gmac_init_vector_required() {
    let mut p = established(cfg(), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| t.token2.iv = None);
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_dt(&r, D::GmacInitVectorRequired, "IEC62351-4:11.4");
}

#[test]
fn dt11_invalid_time_stale() {
    let mut p = established(cfg(), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let r = rejection(p.server.receive(k, &b, NOW.plus_ms(601_000)));
    assert_dt(&r, D::InvalidTimeValue, "IEC62351-4:11.6");
}

#[test]
fn dt11_invalid_time_reordered() {
    let mut p = established(cfg(), cfg());
    let (k, b0) = p.client.protect(PR, NOW).unwrap();
    let (_, b1) = p.client.protect(PR, NOW.plus_ms(10)).unwrap();
    assert!(p.server.receive(k, &b1, NOW.plus_ms(10)).is_ok());
    let r = rejection(p.server.receive(k, &b0, NOW.plus_ms(11)));
    assert_dt(&r, D::InvalidTimeValue, "IEC62351-4:11.6");
}

#[test]
fn alarm_dt_replay() {
    let mut p = established(cfg(), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    assert!(p.server.receive(k, &b, NOW).is_ok());
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_alarm(&r, "IEC62351-4:11.7");
    assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}

#[test]
fn alarm_dt_bad_icv() {
    let mut p = established(non_ae(vec![], vec![IcvAlg::HmacSha256]), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| t.auth.as_mut().unwrap().icv[0] ^= 1);
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_alarm(&r, "IEC62351-4:10.5");
}

#[test]
fn alarm_dt_icv_algorithm() {
    let mut p = established(non_ae(vec![], vec![IcvAlg::HmacSha256]), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| {
        t.auth.as_mut().unwrap().algorithm = IcvAlg::Gmac128.id()
    });
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_alarm(&r, "IEC62351-4:10.3");
}

#[test]
fn events_are_queued() {
    let mut p = established(cfg(), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    p.server.receive(k, &b, NOW).unwrap();
    let _ = p.server.receive(k, &b, NOW);
    let e = p.server.poll_event().unwrap();
    assert_eq!(e.id.to_string(), "IEC62351-4:11.7");
    assert_eq!(e.association.as_deref(), Some("1:7"));
}

#[test]
fn received_dt_sec_abort_events() {
    // A DtSecAbort(protocol-error) from the server raises 6.12 at the client.
    let mut p = established(cfg(), cfg());
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| t.token2.asso_id = AssoId::new("1:8").unwrap());
    let r = rejection(p.server.receive(k, &b, NOW));
    let (k, b) = r.reply.unwrap();
    match p.client.receive(k, &b, NOW).unwrap() {
        Output::Aborted { diagnostic, .. } => {
            assert_eq!(diagnostic, Some(Diagnostic::Dt(D::ProtocolError)))
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(
        p.client.poll_event().unwrap().id.to_string(),
        "IEC62351-4:6.12"
    );
}

// ------------------------------------------------------------------ more client-side checks

#[test]
fn client_signature_algorithm_not_allowed() {
    let c = E2eConfig {
        allowed_signatures: vec![secmms_pki::SignatureAlgorithm::RsaPkcs1Sha256],
        ..cfg()
    };
    let r = client_rejects(c, cfg(), |_| {});
    assert_hs(&r, H::InvalidSignatureAlgorithm, "IEC62351-4:2.1");
}

#[test]
fn client_invalid_certification_path() {
    let other = secmms_e2e::doc_support::DemoPki::new();
    let screds = other.credentials(KeyType::P256, secmms_e2e::doc_support::SERVER_AP, 5);
    let mut client = secmms_e2e::E2eClient::new(
        ctx(cfg(), client_creds(KeyType::P256)),
        TestRng::boxed(5),
        1,
    );
    // The server trusts the client's CA but presents a certificate of another CA.
    let mut sctx = ctx(cfg(), screds);
    sctx.validator = fixture().pki.validator.clone();
    let mut server = secmms_e2e::E2eServer::new(sctx, TestRng::boxed(6), 1);
    let req = client.handshake_req(None, NOW).unwrap();
    server.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
    let acc = server.accept(None, NOW).unwrap();
    let r = rejection(client.receive(SecPduKind::HandshakeAcc, &acc, NOW));
    assert_hs(&r, H::InvalidCertificationPath, "IEC62351-4:2.5");
}

#[test]
fn client_alarm_replayed_handshake_acc() {
    // Two client associations of one endpoint with the same deterministic DH keys: the second
    // one receiving the same HandshakeAcc detects the replay.
    let cctx = ctx(cfg(), client_creds(KeyType::P256));
    let mut c1 = secmms_e2e::E2eClient::new(cctx.clone(), TestRng::boxed(9), 1);
    let mut c2 = secmms_e2e::E2eClient::new(cctx, TestRng::boxed(9), 1);
    let mut s = secmms_e2e::E2eServer::new(
        ctx(cfg(), server_creds(KeyType::P256)),
        TestRng::boxed(10),
        1,
    );
    let req = c1.handshake_req(None, NOW).unwrap();
    c2.handshake_req(None, NOW).unwrap();
    s.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
    let acc = s.accept(None, NOW).unwrap();
    assert!(c1.receive(SecPduKind::HandshakeAcc, &acc, NOW).is_ok());
    let r = rejection(c2.receive(SecPduKind::HandshakeAcc, &acc, NOW));
    assert_alarm(&r, "IEC62351-4:2.10");
}

#[test]
fn client_invalid_attribute_certificate() {
    let mut screds = server_creds(KeyType::P256);
    screds.att_cert = Some(vec![0x02, 0x01, 0x00]);
    let mut client = secmms_e2e::E2eClient::new(
        ctx(cfg(), client_creds(KeyType::P256)),
        TestRng::boxed(5),
        1,
    );
    let mut server = secmms_e2e::E2eServer::new(ctx(cfg(), screds), TestRng::boxed(6), 1);
    let req = client.handshake_req(None, NOW).unwrap();
    server.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
    let acc = server.accept(None, NOW).unwrap();
    let r = rejection(client.receive(SecPduKind::HandshakeAcc, &acc, NOW));
    assert_hs(&r, H::InvalidAttributeCertificate, "IEC62351-4:2.5");
}

// ------------------------------------------------------------------ received ClearToken3 PDUs

#[test]
fn release_req_with_bad_signature_is_answered_by_dt_sec_abort() {
    let mut p = established(cfg(), cfg());
    let rel = p.client.release_req(None, NOW).unwrap();
    // Re-signed with the server's key: the signature does not match pkCert.
    let rel = resign_token3(SecPduKind::ReleaseReq, &rel, &server_key(), |_| {});
    let r = rejection(p.server.receive(SecPduKind::ReleaseReq, &rel, NOW));
    assert_alarm(&r, "IEC62351-4:12.3");
    assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}

#[test]
fn stale_release_rsp_is_rejected() {
    let mut p = established(cfg(), cfg());
    let rel = p.client.release_req(None, NOW).unwrap();
    p.server.receive(SecPduKind::ReleaseReq, &rel, NOW).unwrap();
    let rsp = p.server.release_rsp(None, NOW).unwrap();
    let r = rejection(
        p.client
            .receive(SecPduKind::ReleaseRsp, &rsp, NOW.plus_ms(601_000)),
    );
    assert_eq!(r.event.id.to_string(), "IEC62351-4:13.9");
    assert!(r.reply.is_none());
}

#[test]
fn replayed_appl_abort_is_an_alarm() {
    let sctx = ctx(cfg(), server_creds(KeyType::P256));
    let cctx = ctx(cfg(), client_creds(KeyType::P256));
    let mut c = secmms_e2e::E2eClient::new(cctx, TestRng::boxed(1), 1);
    let mut s1 = secmms_e2e::E2eServer::new(sctx.clone(), TestRng::boxed(2), 7);
    let req = c.handshake_req(None, NOW).unwrap();
    s1.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
    let acc = s1.accept(None, NOW).unwrap();
    c.receive(SecPduKind::HandshakeAcc, &acc, NOW).unwrap();
    let abort = c.appl_abort(None, NOW).unwrap();
    assert!(s1.receive(SecPduKind::ApplAbort, &abort, NOW).is_ok());
    // The same abort replayed into another association of the endpoint (same replay cache).
    let mut c2 = secmms_e2e::E2eClient::new(
        ctx(cfg(), client_creds(KeyType::P256)),
        TestRng::boxed(3),
        1,
    );
    let mut s2 = secmms_e2e::E2eServer::new(sctx, TestRng::boxed(4), 7);
    let t = NOW.plus_ms(1);
    let req = c2.handshake_req(None, t).unwrap();
    s2.receive(SecPduKind::HandshakeReq, &req, t).unwrap();
    s2.accept(None, t).unwrap();
    let r = rejection(s2.receive(SecPduKind::ApplAbort, &abort, NOW));
    assert_eq!(r.event.id.to_string(), "IEC62351-4:7.10");
    assert_eq!(r.event.severity, Severity::Alarm);
    assert!(r.reply.is_none(), "no answer to an abort");
}

// ------------------------------------------------------------------ order of the §14.4 checks

/// A non-AE (HMAC, no encryption) pair: the ICV sits in `auth`, so a test can corrupt it
/// independently of the token.
fn established_hmac() -> Pair {
    established(
        non_ae(vec![], vec![IcvAlg::HmacSha256]),
        non_ae(vec![], vec![IcvAlg::HmacSha256]),
    )
}

/// §14.4 DECISION (engine `unprotect_inner`, step 9 before step 5): the legality of the rekey
/// fields depends only on clear fields and local state, so it is checked with the structural
/// checks, before the ICV. A server PDU that carries changedKey while no rekey is pending AND has
/// a corrupted ICV is therefore reported as `unexpected-changedKeys` (an error with its
/// diagnostic), not as the BAD_ICV alarm.
#[test]
fn order_rekey_legality_before_icv_changed_key() {
    let mut p = established_hmac();
    let (k, b) = p.server.protect(PR, NOW).unwrap();
    assert_eq!(k, SecPduKind::ClearTransfer);
    let b = reassemble(k, &b, |t| {
        t.token2.changed_key = true;
        t.auth.as_mut().unwrap().icv[0] ^= 0xff;
    });
    let r = rejection(p.client.receive(k, &b, NOW));
    assert_dt(&r, D::UnexpectedChangedKeys, "IEC62351-4:10.10");
    assert_eq!(r.event.severity, Severity::Error);
    assert_eq!(r.event.mnemonic, "CLEAR_UNEXP_CHANGED_KEY_TRF");
}

/// The same DECISION for a direction violation: a `rekey` public value from the server (only the
/// client may send one) with a corrupted ICV is a protocol error with its diagnostic.
#[test]
fn order_rekey_legality_before_icv_rekey_from_server() {
    let mut p = established_hmac();
    let (k, b) = p.server.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| {
        t.token2.rekey = Some(vec![4; 65]);
        t.auth.as_mut().unwrap().icv[0] ^= 0xff;
    });
    let r = rejection(p.client.receive(k, &b, NOW));
    assert_dt(&r, D::ProtocolError, "IEC62351-4:10.1");
    assert_eq!(r.event.severity, Severity::Error);
}

/// Twin of the two tests above: the same server PDU with only the ICV corrupted (rekey fields
/// legal) gives the BAD_ICV alarm, whose DtSecAbort withholds the diagnostic.
#[test]
fn order_only_bad_icv_is_the_bad_icv_alarm() {
    let mut p = established_hmac();
    let (k, b) = p.server.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| t.auth.as_mut().unwrap().icv[0] ^= 0xff);
    let r = rejection(p.client.receive(k, &b, NOW));
    assert_alarm(&r, "IEC62351-4:10.5");
    assert_eq!(r.event.mnemonic, "CLEAR_BAD_ICV_TRF");
    assert_eq!(r.cause, None);
    assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}

// ------------------------------------------------------------------ unknown received diagnostics

/// A DtSecAbort whose diagnostic is a number outside DtDiagnostics (99) is taken as
/// `no-reason-given` (§14.2 DECISION) and the raw number is logged as
/// `UNKNOWN_DIAGNOSTIC_RCVD` (secmms:0.5).
#[test]
fn received_dt_sec_abort_with_unknown_diagnostic_number() {
    let mut p = established(cfg(), cfg());
    // A genuine DtSecAbort from the server (answer to a transfer with a wrong assoID) ...
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let b = reassemble(k, &b, |t| t.token2.asso_id = AssoId::new("1:8").unwrap());
    let (kind, abort) = rejection(p.server.receive(k, &b, NOW)).reply.unwrap();
    assert_eq!(kind, SecPduKind::DtSecAbort);
    // ... whose diagnostic ENUMERATED is rewritten to 99 and the tbs re-signed. The body is
    // encoded with a known value first; its last content octet is the one-octet ENUMERATED value.
    let mut pdu = match SecPdu::decode(kind, &abort, Default::default()).unwrap() {
        SecPdu::DtSecAbort(x) => x,
        o => panic!("{o:?}"),
    };
    let mut tbs = Token3Pdu::tbs_content(&pdu.token3, &Token3Body::DtDiag(Some(D::NoReasonGiven)));
    let n = tbs.len();
    assert_eq!(
        &tbs[n - 3..],
        &[0x0a, 0x01, 0x00],
        "ENUMERATED 0 at the end"
    );
    tbs[n - 1] = 99;
    pdu.tbs = tbs;
    pdu.sign.sign = server_key().sign(&pdu.tbs).unwrap();
    let forged = SecPdu::DtSecAbort(pdu).encode();
    match SecPdu::decode(kind, &forged, Default::default()).unwrap() {
        SecPdu::DtSecAbort(x) => assert_eq!(x.unknown_diag, Some(99)),
        o => panic!("{o:?}"),
    }
    match p.client.receive(kind, &forged, NOW).unwrap() {
        Output::Aborted { diagnostic, .. } => {
            assert_eq!(diagnostic, Some(Diagnostic::Dt(D::NoReasonGiven)))
        }
        o => panic!("{o:?}"),
    }
    let mut events = Vec::new();
    while let Some(e) = p.client.poll_event() {
        events.push(e);
    }
    let e = events
        .iter()
        .find(|e| e.id.to_string() == "secmms:0.5")
        .unwrap_or_else(|| panic!("no secmms:0.5 in {events:?}"));
    assert_eq!(e.mnemonic, "UNKNOWN_DIAGNOSTIC_RCVD");
    assert!(e.message.contains("99"), "{}", e.message);
}

/// §14.5 groups 4.12–4.27 and 5.12–5.25: every HandshakeDiagnostics value received in a signed
/// HandshakeSecReject (client side) and HandshakeSecAbort (server side) raises its event —
/// 4.(11+code) / the 5.x slot of `handshake_diag_received`, or the local `secmms:0.3` /
/// `secmms:0.4` for the values without a slot — and one without a diagnostic the alarm 4.11 / 5.11.
#[test]
fn every_received_handshake_diagnostic_raises_its_event() {
    use secmms_e2e::events::{
        handshake_diag_received, SEC_ABORT_ALARM_RCVD, SEC_REJECT_ALARM_RCVD,
    };
    let drain = |e: &mut dyn FnMut() -> Option<secmms_pki::event::SecurityEvent>| {
        let mut v = Vec::new();
        while let Some(x) = e() {
            v.push(x);
        }
        v
    };
    let mut diags: Vec<Option<H>> = H::ALL.iter().copied().map(Some).collect();
    diags.push(None);
    for d in diags {
        // A genuine HandshakeSecReject (the server serves another protocol), its diagnostic
        // replaced by `d` and signed again by the server.
        let scfg = E2eConfig {
            accepted_protocols: vec!["TASE.2".into()],
            ..cfg()
        };
        let mut p = pair(cfg(), scfg);
        let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
        let r = rejection(p.server.receive(SecPduKind::HandshakeReq, &req, NOW));
        let (kind, bytes) = r.reply.unwrap();
        assert_eq!(kind, SecPduKind::HandshakeSecReject);
        let mut pdu = match SecPdu::decode(kind, &bytes, Default::default()).unwrap() {
            SecPdu::HandshakeSecReject(x) => x,
            o => panic!("{o:?}"),
        };
        pdu.body = Token3Body::HandshakeDiag(d);
        pdu.tbs = Token3Pdu::tbs_content(&pdu.token3, &pdu.body);
        pdu.sign.sign = server_key().sign(&pdu.tbs).unwrap();
        let forged = SecPdu::HandshakeSecReject(pdu).encode();
        match p.client.receive(kind, &forged, NOW).unwrap() {
            Output::SecurityRejected { diagnostic } => assert_eq!(diagnostic, d),
            o => panic!("{o:?}"),
        }
        let want = match d {
            Some(d) => handshake_diag_received(true, d),
            None => SEC_REJECT_ALARM_RCVD,
        };
        let got = drain(&mut || p.client.poll_event());
        assert!(
            got.iter()
                .any(|e| e.id == want.id() && e.mnemonic == want.mnemonic),
            "{d:?}: {want:?} not in {got:?}"
        );

        // A genuine HandshakeSecAbort (the client refuses a HandshakeAcc naming another DH
        // group), its diagnostic replaced by `d`, signed again by the client.
        let mut p = pair(cfg(), cfg());
        let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
        p.server
            .receive(SecPduKind::HandshakeReq, &req, NOW)
            .unwrap();
        let acc = p.server.accept(Some(INIT_RSP), NOW).unwrap();
        let acc = resign_handshake(SecPduKind::HandshakeAcc, &acc, &server_key(), |t| {
            t.dh_key[0].group = 14
        });
        let r = rejection(p.client.receive(SecPduKind::HandshakeAcc, &acc, NOW));
        let (kind, bytes) = r.reply.unwrap();
        assert_eq!(kind, SecPduKind::HandshakeSecAbort);
        let mut pdu = match SecPdu::decode(kind, &bytes, Default::default()).unwrap() {
            SecPdu::HandshakeSecAbort(x) => x,
            o => panic!("{o:?}"),
        };
        pdu.body = Token3Body::HandshakeDiag(d);
        pdu.tbs = Token3Pdu::tbs_content(&pdu.token3, &pdu.body);
        pdu.sign.sign = client_key().sign(&pdu.tbs).unwrap();
        let forged = SecPdu::HandshakeSecAbort(pdu).encode();
        match p.server.receive(kind, &forged, NOW).unwrap() {
            Output::Aborted { diagnostic, .. } => {
                assert_eq!(diagnostic, d.map(Diagnostic::Handshake))
            }
            o => panic!("{o:?}"),
        }
        let want = match d {
            Some(d) => handshake_diag_received(false, d),
            None => SEC_ABORT_ALARM_RCVD,
        };
        let got = drain(&mut || p.server.poll_event());
        assert!(
            got.iter()
                .any(|e| e.id == want.id() && e.mnemonic == want.mnemonic),
            "{d:?}: {want:?} not in {got:?}"
        );
    }
}

/// The received-diagnostic slots as docs/EVENTS.md tabulates them (a known-answer table: code,
/// SecReject event, SecAbort event).
#[test]
fn received_handshake_diagnostic_slots_match_the_documented_table() {
    use secmms_e2e::events::handshake_diag_received;
    /// Code, SecReject (id, mnemonic), SecAbort (id, mnemonic) when it has a slot.
    type Row = (
        i64,
        &'static str,
        &'static str,
        Option<(&'static str, &'static str)>,
    );
    let table: [Row; 16] = [
        (
            1,
            "IEC62351-4:4.12",
            "SEC_REJECT_PROT_ERR_RCVD",
            Some(("IEC62351-4:5.12", "SEC_ABORT_PROT_ERR_RCVD")),
        ),
        (2, "IEC62351-4:4.13", "SEC_REJECT_PROT_NOT_SUP_RCVD", None),
        (
            3,
            "IEC62351-4:4.14",
            "SEC_REJECT_INV_SIG_ALGO_RCVD",
            Some(("IEC62351-4:5.13", "SEC_ABORT_INV_SIG_ALGO_RCVD")),
        ),
        (
            4,
            "IEC62351-4:4.15",
            "SEC_REJECT_UNEXP_VERSION_RCVD",
            Some(("IEC62351-4:5.14", "SEC_ABORT_UNEXP_VERSION_RCVD")),
        ),
        (
            5,
            "IEC62351-4:4.16",
            "SEC_REJECT_HMAC_NOT_SUP_RCVD",
            Some(("IEC62351-4:5.15", "SEC_ABORT_HMAC_NOT_SUP_RCVD")),
        ),
        (
            6,
            "IEC62351-4:4.17",
            "SEC_REJECT_ENCR_NOT_REQUIRED_RCVD",
            Some(("IEC62351-4:5.16", "SEC_ABORT_ENCR_NOT_REQUIRED_RCVD")),
        ),
        (
            7,
            "IEC62351-4:4.18",
            "SEC_REJECT_ENCR_REQUIRED_RCVD",
            Some(("IEC62351-4:5.17", "SEC_ABORT_ENCR_REQUIRED_RCVD")),
        ),
        (
            8,
            "IEC62351-4:4.19",
            "SEC_REJECT_INV_PKCERT_RCVD",
            Some(("IEC62351-4:5.18", "SEC_ABORT_INV_PKCERT_RCVD")),
        ),
        (
            9,
            "IEC62351-4:4.20",
            "SEC_REJECT_INV_CERT_PATH_RCVD",
            Some(("IEC62351-4:5.19", "SEC_ABORT_INV_CERT_PATH_RCVD")),
        ),
        (
            10,
            "IEC62351-4:4.21",
            "SEC_REJECT_INV_TIME_RCVD",
            Some(("IEC62351-4:5.20", "SEC_ABORT_INV_TIME_RCVD")),
        ),
        (
            11,
            "IEC62351-4:4.22",
            "SEC_REJECT_DH_GROUP_NOT_SUP_RCVD",
            None,
        ),
        (
            12,
            "IEC62351-4:4.23",
            "SEC_REJECT_ILLEGAL_DH_GROUP_RCVD",
            Some(("IEC62351-4:5.21", "SEC_ABORT_ILLEGAL_DH_GROUP_RCVD")),
        ),
        (
            13,
            "IEC62351-4:4.24",
            "SEC_REJECT_ICV_ALGO_NOT_SUP_RCVD",
            Some(("IEC62351-4:5.22", "SEC_ABORT_ICV_ALGO_NOT_SUP_RCVD")),
        ),
        (
            14,
            "IEC62351-4:4.25",
            "SEC_REJECT_ENCR_ALGO_NOT_SUP_RCVD",
            Some(("IEC62351-4:5.23", "SEC_ABORT_ENCR_ALGO_NOT_SUP_RCVD")),
        ),
        (
            15,
            "IEC62351-4:4.26",
            "SEC_REJECT_AEA_ALGO_NOT_SUP_RCVD",
            Some(("IEC62351-4:5.24", "SEC_ABORT_AEA_ALGO_NOT_SUP_RCVD")),
        ),
        (
            16,
            "IEC62351-4:4.27",
            "SEC_REJECT_INV_ATTCERT_RCVD",
            Some(("IEC62351-4:5.25", "SEC_ABORT_INV_ATTCERT_RCVD")),
        ),
    ];
    for (code, rej_id, rej_m, abort) in table {
        let d = H::from_code(code).unwrap();
        let e = handshake_diag_received(true, d);
        assert_eq!((e.id().to_string().as_str(), e.mnemonic), (rej_id, rej_m));
        let e = handshake_diag_received(false, d);
        match abort {
            Some((id, m)) => assert_eq!((e.id().to_string().as_str(), e.mnemonic), (id, m)),
            None => assert_eq!(
                (e.id().to_string().as_str(), e.mnemonic),
                ("secmms:0.4", "HANDSHAKE_SEC_ABORT_RCVD")
            ),
        }
    }
    let alarms = [
        secmms_e2e::events::SEC_REJECT_ALARM_RCVD,
        secmms_e2e::events::SEC_ABORT_ALARM_RCVD,
    ];
    assert_eq!(
        alarms.map(|e| (e.id().to_string(), e.mnemonic)),
        [
            (
                "IEC62351-4:4.11".to_string(),
                "HANDSHAKE_SEC_REJECT_ALARM_RCVD"
            ),
            (
                "IEC62351-4:5.11".to_string(),
                "HANDSHAKE_SEC_ABORT_ALARM_RCVD"
            )
        ]
    );
    for d in [H::NoReasonGiven, H::AeIsRequired, H::SingleIcvAlgoRequired] {
        let e = handshake_diag_received(true, d);
        assert_eq!(
            (e.id().to_string().as_str(), e.mnemonic),
            ("secmms:0.3", "HANDSHAKE_SEC_REJECT_RCVD")
        );
    }
}

/// §14.5 6.12–6.16: a received DtSecAbort with one of the listed diagnostics raises its event
/// (the others the local `secmms:0.1`), for a genuine DtSecAbort whose diagnostic is replaced
/// and signed again by the server.
#[test]
fn every_received_dt_diagnostic_raises_its_event() {
    let expected: [(D, &str, &str); 6] = [
        (
            D::ProtocolError,
            "IEC62351-4:6.12",
            "DT_SEC_ABORT_PROT_ERR_RCVD",
        ),
        (
            D::EncryptionNotSelected,
            "IEC62351-4:6.13",
            "DT_SEC_ABORT_ENCR_NOT_SEL_RCVD",
        ),
        (
            D::EncryptionRequired,
            "IEC62351-4:6.14",
            "DT_SEC_ABORT_ENCR_REQ_RCVD",
        ),
        (
            D::UnexpectedDhPublicKey,
            "IEC62351-4:6.15",
            "DT_SEC_ABORT_UNEXP_REKEY_RCVD",
        ),
        (
            D::UnexpectedChangedKeys,
            "IEC62351-4:6.16",
            "DT_SEC_ABORT_UNEXP_CHANGED_KEYS_RCVD",
        ),
        (D::InvalidSequenceNumber, "secmms:0.1", "DT_SEC_ABORT_RCVD"),
    ];
    for (d, id, mnemonic) in expected {
        let mut p = established(cfg(), cfg());
        let (k, b) = p.client.protect(PR, NOW).unwrap();
        let b = reassemble(k, &b, |t| t.token2.asso_id = AssoId::new("1:8").unwrap());
        let (kind, abort) = rejection(p.server.receive(k, &b, NOW)).reply.unwrap();
        let mut pdu = match SecPdu::decode(kind, &abort, Default::default()).unwrap() {
            SecPdu::DtSecAbort(x) => x,
            o => panic!("{o:?}"),
        };
        pdu.body = Token3Body::DtDiag(Some(d));
        pdu.tbs = Token3Pdu::tbs_content(&pdu.token3, &pdu.body);
        pdu.sign.sign = server_key().sign(&pdu.tbs).unwrap();
        let forged = SecPdu::DtSecAbort(pdu).encode();
        match p.client.receive(kind, &forged, NOW).unwrap() {
            Output::Aborted { diagnostic, .. } => assert_eq!(diagnostic, Some(Diagnostic::Dt(d))),
            o => panic!("{o:?}"),
        }
        let mut events = Vec::new();
        while let Some(e) = p.client.poll_event() {
            events.push(e);
        }
        assert!(
            events
                .iter()
                .any(|e| e.id.to_string() == id && e.mnemonic == mnemonic),
            "{d:?}: {id} {mnemonic} not in {events:?}"
        );
    }
}
