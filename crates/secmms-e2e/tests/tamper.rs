//! Tamper detection: flipping any single bit of a sample HandshakeReq, HandshakeAcc,
//! ClearTransfer and EncrTransfer is detected (exhaustive over every bit of the PDU).

mod common;

use common::*;
use secmms_e2e::alg::IcvAlg;
use secmms_e2e::config::{E2eConfig, ModeOffer};
use secmms_e2e::doc_support::KeyType;
use secmms_e2e::pdu::SecPduKind;
use secmms_e2e::{E2eClient, E2eServer, Output};

const SEED: u64 = 4242;

fn client(cfg: &E2eConfig) -> E2eClient {
    E2eClient::new(
        ctx(cfg.clone(), client_creds(KeyType::P256)),
        TestRng::boxed(SEED),
        3,
    )
}
fn server(cfg: &E2eConfig) -> E2eServer {
    E2eServer::new(
        ctx(cfg.clone(), server_creds(KeyType::P256)),
        TestRng::boxed(SEED + 1),
        9,
    )
}

fn flips(pdu: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..pdu.len() * 8).map(move |bit| {
        let mut v = pdu.to_vec();
        v[bit / 8] ^= 1 << (bit % 8);
        v
    })
}

#[test]
fn every_bit_of_handshake_req() {
    let cfg = E2eConfig::default();
    let req = client(&cfg).handshake_req(Some(INIT_REQ), NOW).unwrap();
    assert!(server(&cfg)
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .is_ok());
    let mut n = 0;
    for v in flips(&req) {
        let r = server(&cfg).receive(SecPduKind::HandshakeReq, &v, NOW);
        assert!(r.is_err(), "undetected flip in HandshakeReq");
        n += 1;
    }
    assert_eq!(n, req.len() * 8);
}

#[test]
fn every_bit_of_handshake_acc() {
    let cfg = E2eConfig::default();
    let mut c = client(&cfg);
    let mut s = server(&cfg);
    let req = c.handshake_req(Some(INIT_REQ), NOW).unwrap();
    s.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
    let acc = s.accept(Some(INIT_RSP), NOW).unwrap();
    // The genuine Acc is accepted by a re-created client (same deterministic DH keys).
    let mut c2 = client(&cfg);
    c2.handshake_req(Some(INIT_REQ), NOW).unwrap();
    assert!(matches!(
        c2.receive(SecPduKind::HandshakeAcc, &acc, NOW),
        Ok(Output::Established { .. })
    ));
    for v in flips(&acc) {
        let mut c = client(&cfg);
        c.handshake_req(Some(INIT_REQ), NOW).unwrap();
        assert!(
            c.receive(SecPduKind::HandshakeAcc, &v, NOW).is_err(),
            "undetected flip in HandshakeAcc"
        );
    }
}

fn established(cfg: &E2eConfig) -> (E2eClient, E2eServer) {
    let mut c = client(cfg);
    let mut s = server(cfg);
    let req = c.handshake_req(Some(INIT_REQ), NOW).unwrap();
    s.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
    let acc = s.accept(Some(INIT_RSP), NOW).unwrap();
    c.receive(SecPduKind::HandshakeAcc, &acc, NOW).unwrap();
    (c, s)
}

fn transfer_case(cfg: E2eConfig, expect: SecPduKind) {
    let pr = [0xa0, 0x06, 0x02, 0x01, 0x2a, 0xa1, 0x01, 0x00];
    let (mut c, mut s) = established(&cfg);
    let (kind, pdu) = c.protect(&pr, NOW).unwrap();
    assert_eq!(kind, expect);
    assert!(matches!(s.receive(kind, &pdu, NOW), Ok(Output::Data(_))));
    for v in flips(&pdu) {
        let (mut c, mut s) = established(&cfg);
        // Deterministic: the re-created association produces the same PDU.
        assert_eq!(c.protect(&pr, NOW).unwrap().1, pdu);
        assert!(
            s.receive(kind, &v, NOW).is_err(),
            "undetected flip in {kind:?}"
        );
    }
}

#[test]
fn every_bit_of_clear_transfer() {
    transfer_case(
        E2eConfig {
            offer: ModeOffer::NonAe {
                encr: vec![],
                icv: vec![IcvAlg::HmacSha256],
            },
            ..E2eConfig::default()
        },
        SecPduKind::ClearTransfer,
    );
}

#[test]
fn every_bit_of_encr_transfer() {
    transfer_case(E2eConfig::default(), SecPduKind::EncrTransfer);
}
