//! Happy paths of the engine: every group × signature algorithm, every protection mode, both
//! directions, key refresh, release, application reject and aborts.

mod common;

use common::*;
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::config::{E2eConfig, ModeOffer};
use secmms_e2e::doc_support::KeyType;
use secmms_e2e::pdu::{SecPdu, SecPduKind};
use secmms_e2e::{Diagnostic, E2eError, Output, ProtectionMode, State};
use secmms_pki::crypto::DhGroup;

const PR: &[u8] = &[0xa0, 0x05, 0x02, 0x01, 0x01, 0xa4, 0x00];

fn modes() -> Vec<(ModeOffer, ProtectionMode)> {
    vec![
        (
            ModeOffer::Ae(vec![AeAlg::Aes128Gcm]),
            ProtectionMode::Ae(AeAlg::Aes128Gcm),
        ),
        (
            ModeOffer::Ae(vec![AeAlg::Aes256Gcm]),
            ProtectionMode::Ae(AeAlg::Aes256Gcm),
        ),
        (
            ModeOffer::NonAe {
                encr: vec![],
                icv: vec![IcvAlg::HmacSha256],
            },
            ProtectionMode::NonAe {
                encr: None,
                icv: IcvAlg::HmacSha256,
            },
        ),
        (
            ModeOffer::NonAe {
                encr: vec![],
                icv: vec![IcvAlg::Gmac128],
            },
            ProtectionMode::NonAe {
                encr: None,
                icv: IcvAlg::Gmac128,
            },
        ),
        (
            ModeOffer::NonAe {
                encr: vec![EncrAlg::Aes128Cbc],
                icv: vec![IcvAlg::HmacSha256],
            },
            ProtectionMode::NonAe {
                encr: Some(EncrAlg::Aes128Cbc),
                icv: IcvAlg::HmacSha256,
            },
        ),
        (
            ModeOffer::NonAe {
                encr: vec![EncrAlg::Aes256Cbc],
                icv: vec![IcvAlg::Gmac256],
            },
            ProtectionMode::NonAe {
                encr: Some(EncrAlg::Aes256Cbc),
                icv: IcvAlg::Gmac256,
            },
        ),
    ]
}

fn exchange(p: &mut Pair, n: usize, t0: secmms_e2e::TimeStamp) {
    for i in 0..n {
        let now = t0.plus_ms((i / 2) as i64);
        let mut pr = PR.to_vec();
        pr[4] = i as u8;
        let (k, b) = p.client.protect(&pr, now).unwrap();
        match p.server.receive(k, &b, now).unwrap() {
            Output::Data(d) => assert_eq!(&d[..], &pr[..]),
            o => panic!("{o:?}"),
        }
        let (k, b) = p.server.protect(&pr, now).unwrap();
        match p.client.receive(k, &b, now).unwrap() {
            Output::Data(d) => assert_eq!(&d[..], &pr[..]),
            o => panic!("{o:?}"),
        }
    }
}

#[test]
fn every_group_and_signature_algorithm() {
    let mut seed = 100;
    for g in [
        DhGroup::Modp2048,
        DhGroup::EcdhP256,
        DhGroup::EcdhBrainpoolP256r1,
    ] {
        for kt in [KeyType::Rsa2048, KeyType::P256, KeyType::Brainpool] {
            let c = E2eConfig {
                offer_groups: vec![g],
                ..E2eConfig::default()
            };
            let mut p = pair_with(c, E2eConfig::default(), kt, kt, seed);
            seed += 1;
            establish(&mut p, NOW);
            exchange(&mut p, 3, NOW);
        }
    }
}

#[test]
fn every_protection_mode() {
    for (i, (offer, expect)) in modes().into_iter().enumerate() {
        let c = E2eConfig {
            offer,
            ..E2eConfig::default()
        };
        let mut p = pair_with(
            c,
            E2eConfig::default(),
            KeyType::P256,
            KeyType::P256,
            200 + i as u64,
        );
        establish(&mut p, NOW);
        assert_eq!(p.client.protection(), Some(expect));
        assert_eq!(p.server.protection(), Some(expect));
        let (k, _) = p.client.protect(PR, NOW).unwrap();
        assert_eq!(
            k,
            if expect.encrypted() {
                SecPduKind::EncrTransfer
            } else {
                SecPduKind::ClearTransfer
            }
        );
        // The first PDU was not delivered: use a new time so seq restarts at 0.
        let mut p2 = pair_with(
            E2eConfig {
                offer: modes()[i].0.clone(),
                ..E2eConfig::default()
            },
            E2eConfig::default(),
            KeyType::P256,
            KeyType::P256,
            300 + i as u64,
        );
        establish(&mut p2, NOW);
        exchange(&mut p2, 5, NOW);
    }
}

#[test]
fn client_offers_several_groups_server_picks_supported() {
    let c = E2eConfig {
        offer_groups: vec![DhGroup::EcdhBrainpoolP256r1, DhGroup::Modp2048],
        ..E2eConfig::default()
    };
    let s = E2eConfig {
        accept_groups: vec![DhGroup::Modp2048],
        ..E2eConfig::default()
    };
    let mut p = pair(c, s);
    establish(&mut p, NOW);
    exchange(&mut p, 2, NOW);
}

#[test]
fn asso_id_forms() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    let req = p.client.handshake_req(None, NOW).unwrap();
    assert_eq!(p.client.asso_id().unwrap().as_str(), "1");
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let acc = p.server.accept(None, NOW).unwrap();
    assert_eq!(p.server.asso_id().unwrap().as_str(), "1:7");
    p.client
        .receive(SecPduKind::HandshakeAcc, &acc, NOW)
        .unwrap();
    assert_eq!(p.client.asso_id().unwrap().as_str(), "1:7");
}

#[test]
fn rekey_cycle_client_initiated_and_timer() {
    let c = E2eConfig {
        rekey_interval_ms: 15 * 60_000,
        ..E2eConfig::default()
    };
    let mut p = pair(c, E2eConfig::default());
    establish(&mut p, NOW);
    exchange(&mut p, 2, NOW);
    for round in 1..=3i64 {
        // The timer expires: the next client PDU carries rekey.
        let t = NOW.plus_ms(round * 15 * 60_000 + 1000);
        let (k, b) = p.client.protect(PR, t).unwrap();
        let tr = match SecPdu::decode(k, &b, Default::default()).unwrap() {
            SecPdu::EncrTransfer(t) => t,
            o => panic!("{o:?}"),
        };
        assert!(tr.token2.rekey.is_some(), "round {round}");
        assert!(matches!(p.server.receive(k, &b, t), Ok(Output::Data(_))));
        // The server's next PDU uses the new keys and says so.
        let (k, b) = p.server.protect(PR, t).unwrap();
        let tr = match SecPdu::decode(k, &b, Default::default()).unwrap() {
            SecPdu::EncrTransfer(t) => t,
            o => panic!("{o:?}"),
        };
        assert!(tr.token2.changed_key);
        assert!(matches!(p.client.receive(k, &b, t), Ok(Output::Data(_))));
        exchange(&mut p, 2, t.plus_ms(1));
    }
}

#[test]
fn rekey_requested_by_server() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    establish(&mut p, NOW);
    p.server.request_rekey();
    let (k, b) = p.server.protect(PR, NOW).unwrap();
    assert!(matches!(p.client.receive(k, &b, NOW), Ok(Output::Data(_))));
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    match SecPdu::decode(k, &b, Default::default()).unwrap() {
        SecPdu::EncrTransfer(t) => assert!(t.token2.rekey.is_some()),
        o => panic!("{o:?}"),
    }
    assert!(p.server.receive(k, &b, NOW).is_ok());
    exchange(&mut p, 3, NOW.plus_ms(5));
}

#[test]
fn rekey_server_accepts_old_keys_until_switch() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    establish(&mut p, NOW);
    p.client.start_rekey();
    let (k, a) = p.client.protect(PR, NOW).unwrap();
    let (_, b) = p.client.protect(PR, NOW).unwrap(); // still old keys, seq 1
    p.server.receive(k, &a, NOW).unwrap();
    p.server.receive(k, &b, NOW).unwrap();
    let (k2, c) = p.server.protect(PR, NOW.plus_ms(1)).unwrap(); // changedKey
                                                                 // A client PDU under the old keys crossing the changedKey PDU is still accepted.
    let (_, d) = p.client.protect(PR, NOW.plus_ms(1)).unwrap();
    p.server.receive(k, &d, NOW.plus_ms(1)).unwrap();
    p.client.receive(k2, &c, NOW.plus_ms(1)).unwrap();
    exchange(&mut p, 2, NOW.plus_ms(2));
}

#[test]
fn release_both_directions() {
    for client_first in [true, false] {
        let mut p = pair(E2eConfig::default(), E2eConfig::default());
        establish(&mut p, NOW);
        let conclude_req = [0x8b, 0x00];
        let conclude_rsp = [0x8c, 0x00];
        if client_first {
            let r = p.client.release_req(Some(&conclude_req), NOW).unwrap();
            assert_eq!(
                p.server.receive(SecPduKind::ReleaseReq, &r, NOW).unwrap(),
                Output::ReleaseRequested {
                    appl_data: Some(conclude_req.to_vec())
                }
            );
            let r = p.server.release_rsp(Some(&conclude_rsp), NOW).unwrap();
            assert_eq!(
                p.client.receive(SecPduKind::ReleaseRsp, &r, NOW).unwrap(),
                Output::Released {
                    appl_data: Some(conclude_rsp.to_vec())
                }
            );
        } else {
            let r = p.server.release_req(None, NOW).unwrap();
            p.client.receive(SecPduKind::ReleaseReq, &r, NOW).unwrap();
            let r = p.client.release_rsp(None, NOW).unwrap();
            p.server.receive(SecPduKind::ReleaseRsp, &r, NOW).unwrap();
        }
        assert_eq!(p.client.state(), State::Closed);
        assert_eq!(p.server.state(), State::Closed);
        assert!(matches!(
            p.client.protect(PR, NOW),
            Err(E2eError::State(State::Closed))
        ));
    }
}

#[test]
fn release_collision_both_orders() {
    // Both ends send ReleaseReq before seeing the other's (spec §16.5 DECISION): the client
    // answers first, the server after the client's ReleaseRsp; both end Closed, and neither
    // end sends an abort.
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    establish(&mut p, NOW);
    let from_client = p.client.release_req(Some(&[0x8b, 0x00]), NOW).unwrap();
    let from_server = p.server.release_req(None, NOW).unwrap();
    // The crossing ReleaseReqs arrive.
    assert_eq!(
        p.client
            .receive(SecPduKind::ReleaseReq, &from_server, NOW)
            .unwrap(),
        Output::ReleaseRequested { appl_data: None }
    );
    assert_eq!(p.client.state(), State::ReleaseCollision);
    assert_eq!(
        p.server
            .receive(SecPduKind::ReleaseReq, &from_client, NOW)
            .unwrap(),
        Output::ReleaseRequested {
            appl_data: Some(vec![0x8b, 0x00])
        }
    );
    assert_eq!(p.server.state(), State::ReleaseCollision);
    // Client answers at once.
    let rsp_c = p.client.release_rsp(Some(&[0x8c, 0x00]), NOW).unwrap();
    assert_eq!(p.client.state(), State::ReleaseCollision);
    // A second answer is refused.
    assert!(matches!(
        p.client.release_rsp(None, NOW),
        Err(E2eError::State(State::ReleaseCollision))
    ));
    // Server takes the client's answer, then answers.
    assert_eq!(
        p.server
            .receive(SecPduKind::ReleaseRsp, &rsp_c, NOW)
            .unwrap(),
        Output::Released {
            appl_data: Some(vec![0x8c, 0x00])
        }
    );
    assert_eq!(p.server.state(), State::ReleaseCollision);
    let rsp_s = p.server.release_rsp(None, NOW).unwrap();
    assert_eq!(p.server.state(), State::Closed);
    assert_eq!(
        p.client
            .receive(SecPduKind::ReleaseRsp, &rsp_s, NOW)
            .unwrap(),
        Output::Released { appl_data: None }
    );
    assert_eq!(p.client.state(), State::Closed);
    // A replayed ReleaseRsp after the end is refused.
    assert!(p
        .client
        .receive(SecPduKind::ReleaseRsp, &rsp_s, NOW)
        .is_err());
}

#[test]
fn release_collision_tampered_release_req_aborts() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    establish(&mut p, NOW);
    let _ = p.client.release_req(None, NOW).unwrap();
    let mut from_server = p.server.release_req(None, NOW).unwrap();
    let n = from_server.len();
    from_server[n - 3] ^= 1;
    let r = rejection(p.client.receive(SecPduKind::ReleaseReq, &from_server, NOW));
    assert_eq!(r.reply.as_ref().map(|x| x.0), Some(SecPduKind::DtSecAbort));
    assert_eq!(p.client.state(), State::Closed);
}

#[test]
fn application_reject() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let err = [0xaa, 0x03, 0x80, 0x01, 0x02];
    let rej = p.server.appl_reject(&err, NOW).unwrap();
    assert_eq!(
        p.client
            .receive(SecPduKind::ApplicationReject, &rej, NOW)
            .unwrap(),
        Output::ApplicationRejected {
            appl_data: Some(err.to_vec())
        }
    );
    assert_eq!(p.client.state(), State::Closed);
}

#[test]
fn security_reject_reaches_client() {
    let c = E2eConfig {
        protected_protocol: "other".into(),
        ..E2eConfig::default()
    };
    let mut p = pair(c, E2eConfig::default());
    let req = p.client.handshake_req(None, NOW).unwrap();
    let r = rejection(p.server.receive(SecPduKind::HandshakeReq, &req, NOW));
    let (k, b) = r.reply.unwrap();
    assert_eq!(k, SecPduKind::HandshakeSecReject);
    assert_eq!(
        p.client.receive(k, &b, NOW).unwrap(),
        Output::SecurityRejected {
            diagnostic: Some(secmms_e2e::HandshakeDiagnostic::ProtectedProtocolNotSupported)
        }
    );
}

#[test]
fn handshake_sec_abort_reaches_server() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    let req = p.client.handshake_req(None, NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let acc = p.server.accept(None, NOW).unwrap();
    let acc = resign_handshake(
        SecPduKind::HandshakeAcc,
        &acc,
        &server_creds(KeyType::P256).key,
        |t| t.dh_key[0].group = 28,
    );
    let r = rejection(p.client.receive(SecPduKind::HandshakeAcc, &acc, NOW));
    let (k, b) = r.reply.unwrap();
    assert_eq!(k, SecPduKind::HandshakeSecAbort);
    match p.server.receive(k, &b, NOW).unwrap() {
        Output::Aborted {
            kind, diagnostic, ..
        } => {
            assert_eq!(kind, SecPduKind::HandshakeSecAbort);
            assert_eq!(
                diagnostic,
                Some(Diagnostic::Handshake(
                    secmms_e2e::HandshakeDiagnostic::IllegalDhGroupSelected
                ))
            );
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn dt_sec_abort_and_appl_abort_reach_peer() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    establish(&mut p, NOW);
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    p.server.receive(k, &b, NOW).unwrap();
    let r = rejection(p.server.receive(k, &b, NOW)); // replay → DtSecAbort without diag
    let (k, b) = r.reply.unwrap();
    match p.client.receive(k, &b, NOW).unwrap() {
        Output::Aborted {
            kind, diagnostic, ..
        } => {
            assert_eq!(kind, SecPduKind::DtSecAbort);
            assert_eq!(diagnostic, None);
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(
        p.client.poll_event().unwrap().id.to_string(),
        "IEC62351-4:6.11"
    );

    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    establish(&mut p, NOW);
    let a = p.client.appl_abort(Some(&[0x84, 0x00]), NOW).unwrap();
    match p.server.receive(SecPduKind::ApplAbort, &a, NOW).unwrap() {
        Output::Aborted {
            kind, appl_data, ..
        } => {
            assert_eq!(kind, SecPduKind::ApplAbort);
            assert_eq!(appl_data, Some(vec![0x84, 0x00]));
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn wrong_state_and_bad_prpdu() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    assert!(matches!(
        p.client.protect(PR, NOW),
        Err(E2eError::State(State::Idle))
    ));
    assert!(matches!(
        p.client.handshake_req(Some(&[0xa8, 0x05]), NOW),
        Err(E2eError::InvalidPrPdu)
    ));
    establish(&mut p, NOW);
    assert!(matches!(
        p.client.protect(&[0xa0, 0x00, 0x00], NOW),
        Err(E2eError::InvalidPrPdu)
    ));
    // A HandshakeReq during data transfer is a protocol error answered by DtSecAbort.
    let r = rejection(
        p.server
            .receive(SecPduKind::HandshakeReq, &[0x30, 0x00], NOW),
    );
    assert_eq!(r.reply.unwrap().0, SecPduKind::DtSecAbort);
}

#[test]
fn indefinite_length_tbp_is_verified_over_received_octets() {
    // Re-encode a ClearTransfer's outer SEQUENCE and tbp with indefinite lengths: the ICV was
    // computed over the definite tbp content, so the receiver (which covers the EOC octets as
    // §13.4.2 says) must reject it — and must not crash.
    let c = E2eConfig {
        offer: ModeOffer::NonAe {
            encr: vec![],
            icv: vec![IcvAlg::HmacSha256],
        },
        ..E2eConfig::default()
    };
    let mut p = pair(c, E2eConfig::default());
    establish(&mut p, NOW);
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    let t = match SecPdu::decode(k, &b, Default::default()).unwrap() {
        SecPdu::ClearTransfer(t) => t,
        _ => unreachable!(),
    };
    let mut auth = secmms_ber::Writer::new();
    auth.constructed(secmms_ber::Tag::SEQUENCE, |w| {
        w.octets(secmms_ber::Tag::OCTET_STRING, &[0; 1]);
    });
    let mut v = vec![0x30, 0x80, 0x30, 0x80];
    v.extend_from_slice(&t.tbp);
    v.extend_from_slice(&[0, 0]);
    // Original auth element.
    let full = secmms_ber::Reader::new(&b, Default::default())
        .read()
        .unwrap();
    let mut r = full.children().unwrap();
    r.read().unwrap();
    v.extend_from_slice(r.read().unwrap().raw());
    v.extend_from_slice(&[0, 0]);
    let dec = SecPdu::decode(k, &v, Default::default()).unwrap();
    match dec {
        SecPdu::ClearTransfer(d) => {
            assert_eq!(d.tbp.len(), t.tbp.len() + 2);
            assert!(d.tbp.ends_with(&[0, 0]));
        }
        _ => unreachable!(),
    }
    let r = rejection(p.server.receive(k, &v, NOW));
    assert_eq!(r.event.id.to_string(), "IEC62351-4:10.5");
}

#[test]
fn rekey_timeout_fires_from_handle_timeout() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    establish(&mut p, NOW);
    assert_eq!(p.client.next_timeout(), None);
    p.client.start_rekey();
    p.client.protect(PR, NOW).unwrap();
    let due = p.client.next_timeout().unwrap();
    assert_eq!(due, NOW.plus_ms(120_001));
    assert!(p.client.handle_timeout(NOW.plus_ms(60_000)).is_ok());
    match p.client.handle_timeout(due) {
        Err(E2eError::Rejected(r)) => {
            assert_eq!(r.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
            assert_eq!(r.event.mnemonic, "E2E_REKEY_TIMEOUT");
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(p.client.state(), State::Closed);
}

#[test]
fn server_grace_period_ends() {
    let mut p = pair(E2eConfig::default(), E2eConfig::default());
    establish(&mut p, NOW);
    p.client.start_rekey();
    let (k, a) = p.client.protect(PR, NOW).unwrap();
    p.server.receive(k, &a, NOW).unwrap();
    let (_, _changed) = p.server.protect(PR, NOW).unwrap();
    let due = p.server.next_timeout().unwrap();
    assert_eq!(due, NOW.plus_ms(60_001));
    // A late PDU under the old keys after the grace period is a bad ICV.
    let (_, late) = p.client.protect(PR, NOW.plus_ms(61_000)).unwrap();
    p.server.handle_timeout(due).unwrap();
    assert_eq!(p.server.next_timeout(), None);
    let r = rejection(p.server.receive(k, &late, NOW.plus_ms(61_000)));
    assert_eq!(r.event.id.to_string(), "IEC62351-4:11.5");
}
