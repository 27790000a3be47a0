//! Security events of the E2E engine that no other test provoked by name: each test drives an
//! `E2eClient` / `E2eServer` into the check and asserts the mnemonic and id of the event raised.
//! The generic checks of the signed ClearToken3 PDUs (groups 3–7, 12, 13) share their base
//! mnemonics; one group is provoked per mnemonic.

mod common;

use std::sync::Arc;

use common::*;
use secmms_e2e::alg::{EncrAlg, IcvAlg};
use secmms_e2e::config::{E2eConfig, ModeOffer};
use secmms_e2e::doc_support::{KeyType, CLIENT_AP, SERVER_AP};
use secmms_e2e::pdu::*;
use secmms_e2e::{Diagnostic, DtDiagnostic as D, HandshakeDiagnostic as H, Output, Rejection};
use secmms_pki::event::Severity;

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

fn established(ccfg: E2eConfig, scfg: E2eConfig) -> Pair {
    let mut p = pair(ccfg, scfg);
    establish(&mut p, NOW);
    p
}

/// A non-AE, HMAC-only pair: data travel in ClearTransfer.
fn established_hmac() -> Pair {
    let c = non_ae(vec![], vec![IcvAlg::HmacSha256]);
    established(c.clone(), c)
}

const PR: &[u8] = &[0xa0, 0x05, 0x02, 0x01, 0x01, 0xa4, 0x00];
const INIT_ERR: &[u8] = &[0xaa, 0x00];

fn client_key() -> secmms_pki::SigningKey {
    client_creds(KeyType::P256).key
}

fn decode_transfer(kind: SecPduKind, b: &[u8]) -> Transfer {
    match SecPdu::decode(kind, b, Default::default()).unwrap() {
        SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t) => t,
        o => panic!("{o:?}"),
    }
}

/// Re-assembles a transfer after `f` changed it (the ICV is kept: the checks under test run
/// before the ICV).
fn reassemble(kind: SecPduKind, b: &[u8], f: impl FnOnce(&mut Transfer)) -> Vec<u8> {
    let mut t = decode_transfer(kind, b);
    f(&mut t);
    let enc = kind == SecPduKind::EncrTransfer;
    let content = t.token2.encode_content();
    let mut n = Transfer::assemble(t.token2.clone(), content, t.appl_data.clone(), enc);
    n.auth = t.auth;
    if enc {
        SecPdu::EncrTransfer(n).encode()
    } else {
        SecPdu::ClearTransfer(n).encode()
    }
}

/// The rejection raised `mnemonic` with catalogue id `id`.
fn assert_event(r: &Rejection, mnemonic: &str, id: &str) {
    assert_eq!(r.event.mnemonic, mnemonic, "{:?}", r.event);
    assert_eq!(r.event.id.to_string(), id, "{:?}", r.event);
    assert_eq!(r.check.mnemonic, mnemonic);
    assert_eq!(r.check.id().to_string(), id);
}

/// An alarm: the reply (if any) withholds the diagnostic.
fn assert_alarm(r: &Rejection) {
    assert_eq!(r.event.severity, Severity::Alarm, "{:?}", r.event);
    assert_eq!(r.cause, None);
    if r.reply.is_some() {
        assert_eq!(reply_diag(r), None, "alarms withhold the diagnostic");
    }
}

/// The DtSecAbort answering the rejection carries `d`.
fn assert_dt_reply(r: &Rejection, d: D) {
    assert_eq!(r.event.severity, Severity::Error, "{:?}", r.event);
    assert_eq!(r.reply.as_ref().map(|x| x.0), Some(SecPduKind::DtSecAbort));
    assert_eq!(reply_diag(r), Some(Diagnostic::Dt(d)));
}

/// A validator trusting the demo CA whose CRL revokes the certificate `cert_der`.
fn revoking_validator(cert_der: &[u8]) -> secmms_pki::OpenSslValidator {
    let f = fixture();
    let cert = openssl::x509::X509::from_der(cert_der).unwrap();
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
    v
}

/// A client whose validator finds the server's certificate revoked, and a server that accepted
/// its HandshakeReq (state AwaitLocalAccept).
fn client_distrusting_revoked_server() -> (secmms_e2e::E2eClient, secmms_e2e::E2eServer) {
    let screds = server_creds(KeyType::P256);
    let mut cctx = ctx(cfg(), client_creds(KeyType::P256));
    cctx.validator = Arc::new(revoking_validator(&screds.cert_der));
    let mut client = secmms_e2e::E2eClient::new(cctx, TestRng::boxed(5), 1);
    let mut server = secmms_e2e::E2eServer::new(ctx(cfg(), screds), TestRng::boxed(6), 7);
    let req = client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    assert!(matches!(
        server.receive(SecPduKind::HandshakeReq, &req, NOW),
        Ok(Output::HandshakeRequested { .. })
    ));
    (client, server)
}

// ------------------------------------------------------------------ ClearTransfer (group 10)

#[test]
fn clear_transfer_outside_time_window_is_clear_inv_time_trf() {
    let mut p = established_hmac();
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    assert_eq!(k, SecPduKind::ClearTransfer);
    let r = rejection(p.server.receive(k, &b, NOW.plus_ms(601_000)));
    assert_event(&r, "CLEAR_INV_TIME_TRF", "IEC62351-4:10.6");
    assert_dt_reply(&r, D::InvalidTimeValue);
}

#[test]
fn clear_transfer_received_twice_is_clear_replay_trf() {
    let mut p = established_hmac();
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    assert_eq!(k, SecPduKind::ClearTransfer);
    assert!(matches!(p.server.receive(k, &b, NOW), Ok(Output::Data(_))));
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_event(&r, "CLEAR_REPLAY_TRF", "IEC62351-4:10.7");
    assert_alarm(&r);
    assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}

#[test]
fn clear_transfer_skipping_a_sequence_number_is_clear_inv_seq_trf() {
    let mut p = established_hmac();
    // Three PDUs with the same time: seq 0, 1, 2; the one with seq 1 is lost.
    let (k, b0) = p.client.protect(PR, NOW).unwrap();
    let _b1 = p.client.protect(PR, NOW).unwrap();
    let (_, b2) = p.client.protect(PR, NOW).unwrap();
    assert_eq!(k, SecPduKind::ClearTransfer);
    assert!(matches!(p.server.receive(k, &b0, NOW), Ok(Output::Data(_))));
    let r = rejection(p.server.receive(k, &b2, NOW));
    assert_event(&r, "CLEAR_INV_SEQ_TRF", "IEC62351-4:10.8");
    assert_dt_reply(&r, D::InvalidSequenceNumber);
}

#[test]
fn second_rekey_before_changed_key_is_clear_unexp_dh_key_trf() {
    let mut p = established_hmac();
    p.client.start_rekey();
    let (k, a) = p.client.protect(PR, NOW).unwrap();
    assert_eq!(k, SecPduKind::ClearTransfer);
    assert!(decode_transfer(k, &a).token2.rekey.is_some());
    assert!(matches!(p.server.receive(k, &a, NOW), Ok(Output::Data(_))));
    // A second rekey public value before the server signalled changedKey.
    p.client.start_rekey();
    let (k, b) = p.client.protect(PR, NOW.plus_ms(1)).unwrap();
    assert!(decode_transfer(k, &b).token2.rekey.is_some());
    let r = rejection(p.server.receive(k, &b, NOW.plus_ms(1)));
    assert_event(&r, "CLEAR_UNEXP_DH_KEY_TRF", "IEC62351-4:10.9");
    assert_dt_reply(&r, D::UnexpectedDhPublicKey);
}

// ------------------------------------------------------------------ EncrTransfer (group 11)

#[test]
fn encr_transfer_with_another_icv_algorithm_is_encr_inv_icv_algo_trf() {
    let c = non_ae(vec![EncrAlg::Aes128Cbc], vec![IcvAlg::HmacSha256]);
    let mut p = established(c.clone(), c);
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    assert_eq!(k, SecPduKind::EncrTransfer);
    let b = reassemble(k, &b, |t| {
        t.auth.as_mut().unwrap().algorithm = IcvAlg::Gmac128.id()
    });
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_event(&r, "ENCR_INV_ICV_ALGO_TRF", "IEC62351-4:11.3");
    assert_alarm(&r);
    assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}

// ------------------------------------------------------------------ HandshakeAcc (group 2)

#[test]
fn handshake_acc_with_revoked_certificate_is_pkcert_alarm_ass_acc() {
    let (mut client, mut server) = client_distrusting_revoked_server();
    let acc = server.accept(Some(INIT_RSP), NOW).unwrap();
    let r = rejection(client.receive(SecPduKind::HandshakeAcc, &acc, NOW));
    assert_event(&r, "PKCERT_ALARM_ASS_ACC", "IEC62351-4:2.6");
    assert_alarm(&r);
    assert_eq!(
        r.reply.as_ref().map(|x| x.0),
        Some(SecPduKind::HandshakeSecAbort)
    );
}

// ------------------------------------------------------------------ signed ClearToken3 PDUs

/// x.1: an ApplicationReject signed with ECDSA reaching a client that allows only RSA (3.1).
#[test]
fn application_reject_with_unsupported_signature_is_signature_algo_not_sup() {
    let c = E2eConfig {
        allowed_signatures: vec![secmms_pki::SignatureAlgorithm::RsaPkcs1Sha256],
        ..cfg()
    };
    let mut p = pair(c, cfg());
    let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let rej = p.server.appl_reject(INIT_ERR, NOW).unwrap();
    let r = rejection(p.client.receive(SecPduKind::ApplicationReject, &rej, NOW));
    assert_event(&r, "SIGNATURE_ALGO_NOT_SUP", "IEC62351-4:3.1");
    assert_eq!(
        r.cause,
        Some(Diagnostic::Handshake(H::InvalidSignatureAlgorithm))
    );
    assert!(r.reply.is_none(), "no answer to a reject");
}

/// x.2: a ReleaseReq whose Signature.algo differs from sigAlg (12.2).
#[test]
fn release_req_with_mismatching_signature_algorithm_is_signature_algo_mismatch() {
    let mut p = established(cfg(), cfg());
    let rel = p.client.release_req(None, NOW).unwrap();
    let rel = resign_token3(SecPduKind::ReleaseReq, &rel, &client_key(), |p| {
        p.sign.algo = secmms_e2e::alg::sig_alg_id(secmms_pki::SignatureAlgorithm::RsaPkcs1Sha256)
    });
    let r = rejection(p.server.receive(SecPduKind::ReleaseReq, &rel, NOW));
    assert_event(&r, "SIGNATURE_ALGO_MISMATCH", "IEC62351-4:12.2");
    assert_alarm(&r);
    assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}

/// x.4: a ReleaseReq naming another association (12.4).
#[test]
fn release_req_with_wrong_asso_id_is_protocol_err() {
    let mut p = established(cfg(), cfg());
    let rel = p.client.release_req(None, NOW).unwrap();
    let rel = resign_token3(SecPduKind::ReleaseReq, &rel, &client_key(), |p| {
        p.token3.asso_id = Some(AssoId::new("1:8").unwrap())
    });
    let r = rejection(p.server.receive(SecPduKind::ReleaseReq, &rel, NOW));
    assert_event(&r, "PROTOCOL_ERR", "IEC62351-4:12.4");
    assert_dt_reply(&r, D::ProtocolError);
}

/// x.5: a HandshakeSecReject signed with a certificate of another CA (4.5).
#[test]
fn sec_reject_with_untrusted_certificate_is_pkcert_error() {
    let other = secmms_e2e::doc_support::DemoPki::new();
    let mut sctx = ctx(cfg(), other.credentials(KeyType::P256, SERVER_AP, 5));
    sctx.validator = fixture().pki.validator.clone();
    let mut server = secmms_e2e::E2eServer::new(sctx, TestRng::boxed(6), 7);
    let mut client = secmms_e2e::E2eClient::new(
        ctx(cfg(), client_creds(KeyType::P256)),
        TestRng::boxed(5),
        1,
    );
    let req = client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    server.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
    let rej = server.security_reject(H::NoReasonGiven, NOW).unwrap();
    let r = rejection(client.receive(SecPduKind::HandshakeSecReject, &rej, NOW));
    assert_event(&r, "PKCERT_ERROR", "IEC62351-4:4.5");
    assert_eq!(
        r.cause,
        Some(Diagnostic::Handshake(H::InvalidCertificationPath))
    );
    assert!(r.reply.is_none(), "no answer to a reject");
}

/// x.6: a HandshakeSecReject signed with a revoked certificate (4.6).
#[test]
fn sec_reject_with_revoked_certificate_is_pkcert_alarm() {
    let (mut client, mut server) = client_distrusting_revoked_server();
    let rej = server.security_reject(H::NoReasonGiven, NOW).unwrap();
    let r = rejection(client.receive(SecPduKind::HandshakeSecReject, &rej, NOW));
    assert_event(&r, "PKCERT_ALARM", "IEC62351-4:4.6");
    assert_alarm(&r);
    assert!(r.reply.is_none(), "no answer to a reject");
}

/// x.6 as well: a ReleaseReq carrying (and signed with) another valid certificate than the one
/// of the handshake (12.6).
#[test]
fn release_req_with_another_certificate_is_pkcert_alarm() {
    let mut p = established(cfg(), cfg());
    let rel = p.client.release_req(None, NOW).unwrap();
    let other = server_creds(KeyType::P256);
    let rel = resign_token3(SecPduKind::ReleaseReq, &rel, &other.key, |p| {
        p.token3.pk_cert = other.cert_der.clone()
    });
    let r = rejection(p.server.receive(SecPduKind::ReleaseReq, &rel, NOW));
    assert_event(&r, "PKCERT_ALARM", "IEC62351-4:12.6");
    assert_alarm(&r);
    assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}

/// x.7: an ApplicationReject from a server whose certificate does not bind to the address the
/// client expects (3.7).
#[test]
fn application_reject_from_unexpected_address_is_addr_mismatch() {
    let mut p = pair(cfg(), cfg());
    // The client expects its peer at an address the server's certificate does not name.
    p.client
        .set_expected_peer(Some(secmms_pki::PeerIdentity::ApTitle(
            secmms_ber::Oid::new(CLIENT_AP).unwrap(),
        )));
    let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let rej = p.server.appl_reject(INIT_ERR, NOW).unwrap();
    let r = rejection(p.client.receive(SecPduKind::ApplicationReject, &rej, NOW));
    assert_event(&r, "ADDR_MISMATCH", "IEC62351-4:3.7");
    assert_alarm(&r);
    assert!(r.reply.is_none(), "no answer to a reject");
}

/// x.8: an ApplAbort without the v1 bit (7.8).
#[test]
fn appl_abort_with_unexpected_version_is_unexp_version() {
    let mut p = established(cfg(), cfg());
    let abort = p.client.appl_abort(None, NOW).unwrap();
    let abort = resign_token3(SecPduKind::ApplAbort, &abort, &client_key(), |p| {
        p.token3.version = Version {
            unused: 0,
            bits: vec![0x00],
        }
    });
    let r = rejection(p.server.receive(SecPduKind::ApplAbort, &abort, NOW));
    assert_event(&r, "UNEXP_VERSION", "IEC62351-4:7.8");
    assert_eq!(r.cause, Some(Diagnostic::Handshake(H::UnexpectedVersion)));
    assert!(r.reply.is_none(), "no answer to an abort");
}

/// x.9: a ReleaseReq received after the time window (12.9).
#[test]
fn stale_release_req_is_inv_time() {
    let mut p = established(cfg(), cfg());
    let rel = p.client.release_req(None, NOW).unwrap();
    let r = rejection(
        p.server
            .receive(SecPduKind::ReleaseReq, &rel, NOW.plus_ms(601_000)),
    );
    assert_event(&r, "INV_TIME", "IEC62351-4:12.9");
    assert_dt_reply(&r, D::InvalidTimeValue);
}

/// x.10: a ReleaseReq replayed into another association of the same server endpoint (12.10).
#[test]
fn replayed_release_req_is_replay_detec() {
    let sctx = ctx(cfg(), server_creds(KeyType::P256));
    let mut c1 = secmms_e2e::E2eClient::new(
        ctx(cfg(), client_creds(KeyType::P256)),
        TestRng::boxed(1),
        1,
    );
    let mut s1 = secmms_e2e::E2eServer::new(sctx.clone(), TestRng::boxed(2), 7);
    let req = c1.handshake_req(None, NOW).unwrap();
    s1.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
    let acc = s1.accept(None, NOW).unwrap();
    c1.receive(SecPduKind::HandshakeAcc, &acc, NOW).unwrap();
    let rel = c1.release_req(None, NOW).unwrap();
    assert!(matches!(
        s1.receive(SecPduKind::ReleaseReq, &rel, NOW),
        Ok(Output::ReleaseRequested { .. })
    ));
    // A second association "1:7" of the endpoint (same replay cache) receives the same PDU.
    let mut c2 = secmms_e2e::E2eClient::new(
        ctx(cfg(), client_creds(KeyType::P256)),
        TestRng::boxed(3),
        1,
    );
    let mut s2 = secmms_e2e::E2eServer::new(sctx, TestRng::boxed(4), 7);
    let t = NOW.plus_ms(1);
    let req = c2.handshake_req(None, t).unwrap();
    s2.receive(SecPduKind::HandshakeReq, &req, t).unwrap();
    let acc = s2.accept(None, t).unwrap();
    c2.receive(SecPduKind::HandshakeAcc, &acc, t).unwrap();
    let r = rejection(s2.receive(SecPduKind::ReleaseReq, &rel, t));
    assert_event(&r, "REPLAY_DETEC", "IEC62351-4:12.10");
    assert_alarm(&r);
    assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}
