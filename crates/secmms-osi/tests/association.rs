//! In-memory associations: initiator ⇄ responder wired together, no I/O.

use secmms_osi::acse::{
    abort_diagnostic, associate_result, user_diagnostic, Aarq, AuthenticationValue, External,
    SourceDiagnostic,
};
use secmms_osi::cotp::TpduSize;
use secmms_osi::security::{
    AbortRequest, AssociateVerdict, AssociationSecurity, Rejection, Role, SecurityContext,
};
use secmms_osi::{AbortOrigin, Association, OsiConfig, OsiEvent, RejectReason, State};

/// Moves every queued byte from `a` to `b`; returns the number of octets moved.
fn pump(a: &mut Association, b: &mut Association) -> usize {
    let mut n = 0;
    while let Some(bytes) = a.poll_transmit() {
        n += bytes.len();
        b.handle_input(&bytes).unwrap();
    }
    n
}

fn events(a: &mut Association) -> Vec<OsiEvent> {
    std::iter::from_fn(|| a.poll_event()).collect()
}

/// A fake MMS PDU of `len` content octets: `[APPLICATION 8]`-like TLV so BER is valid.
fn mms_pdu(tag: u8, len: usize) -> Vec<u8> {
    let mut w = secmms_ber::Writer::new();
    let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    w.tlv(secmms_ber::Tag::context(tag as u32, false), &content);
    w.finish()
}

fn associate(client: &mut Association, server: &mut Association, req: Vec<u8>) -> Vec<OsiEvent> {
    client.connect(req).unwrap();
    pump(client, server); // CR
    pump(server, client); // CC
    pump(client, server); // CN
    events(server)
}

#[test]
fn large_aarq_data_release() {
    let mut client = Association::initiator(OsiConfig::default());
    let mut server = Association::responder(OsiConfig::server_default());
    let big = mms_pdu(8, 9_000);
    let ev = associate(&mut client, &mut server, big.clone());
    assert_eq!(client.tpdu_size(), TpduSize::S2048);
    assert_eq!(server.tpdu_size(), TpduSize::S2048);
    let [OsiEvent::AssociateIndication { aarq, user_data }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(user_data.as_deref(), Some(&big[..]));
    assert!(!aarq.raw.is_empty());
    assert_eq!(server.state(), State::AwaitingAcceptDecision);

    let resp = mms_pdu(9, 3_000);
    server.accept(resp.clone()).unwrap();
    let moved = pump(&mut server, &mut client);
    assert!(moved > 2048, "AC must be segmented");
    let ev = events(&mut client);
    let [OsiEvent::AssociateConfirm { user_data, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(user_data.as_deref(), Some(&resp[..]));
    assert_eq!(client.state(), State::Associated);
    assert_eq!(server.state(), State::Associated);

    // Data both ways, including a PDU spanning several DT TPDUs.
    for len in [1, 200, 5_000, 40_000] {
        let p = mms_pdu(0, len);
        client.send_data(&p).unwrap();
        pump(&mut client, &mut server);
        assert_eq!(
            events(&mut server),
            vec![OsiEvent::Data {
                context_id: 3,
                pdu: p.clone()
            }]
        );
        server.send_data(&p).unwrap();
        pump(&mut server, &mut client);
        assert_eq!(
            events(&mut client),
            vec![OsiEvent::Data {
                context_id: 3,
                pdu: p
            }]
        );
    }

    client.release(None).unwrap();
    assert_eq!(client.state(), State::AwaitingRlre);
    pump(&mut client, &mut server);
    let ev = events(&mut server);
    assert!(matches!(
        ev.as_slice(),
        [OsiEvent::ReleaseIndication {
            user_data: None,
            ..
        }]
    ));
    server.release_response(None).unwrap();
    assert!(server.is_closed());
    pump(&mut server, &mut client);
    let ev = events(&mut client);
    assert!(
        matches!(
            ev.as_slice(),
            [OsiEvent::ReleaseConfirm { .. }, OsiEvent::Closed]
        ),
        "{ev:?}"
    );
    assert!(client.is_closed());
    assert_eq!(events(&mut server), vec![OsiEvent::Closed]);
}

#[test]
fn abort_from_client() {
    let mut client = Association::initiator(OsiConfig::default());
    let mut server = Association::responder(OsiConfig::server_default());
    associate(&mut client, &mut server, mms_pdu(8, 10));
    server.accept(mms_pdu(9, 10)).unwrap();
    pump(&mut server, &mut client);
    events(&mut client);
    client.abort().unwrap();
    assert!(client.is_closed());
    let bytes = client.poll_transmit().unwrap();
    // TPKT + DT + AB SPDU with PI 17 = 0B (reference §4.6).
    assert_eq!(&bytes[7..12], &[0x19, 0x15, 0x11, 0x01, 0x0B]);
    server.handle_input(&bytes).unwrap();
    let ev = events(&mut server);
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(info.origin, AbortOrigin::PeerUser);
    assert_eq!(info.abrt.as_ref().unwrap().source, 0);
    assert!(server.is_closed());
}

#[test]
fn server_rejects_and_unknown_context() {
    let mut client = Association::initiator(OsiConfig {
        extra_abstract_syntaxes: vec!["1.2.3.4".parse().unwrap()],
        ..OsiConfig::default()
    });
    let mut server = Association::responder(OsiConfig::server_default());
    let ev = associate(&mut client, &mut server, mms_pdu(8, 10));
    assert!(matches!(
        ev.as_slice(),
        [OsiEvent::AssociateIndication { .. }]
    ));
    // The extra context was provider-rejected, ACSE and MMS accepted.
    let acc: Vec<bool> = server.contexts().iter().map(|c| c.accepted).collect();
    assert_eq!(acc, vec![true, true, false]);
    server
        .reject(
            associate_result::REJECTED_PERMANENT,
            SourceDiagnostic::ServiceUser(user_diagnostic::NO_REASON_GIVEN),
            Some(vec![0xAA, 0x00]),
        )
        .unwrap();
    pump(&mut server, &mut client);
    let ev = events(&mut client);
    let [OsiEvent::AssociateRejected {
        reason, user_data, ..
    }, OsiEvent::Closed] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        reason,
        &RejectReason::Acse {
            result: 1,
            diagnostic: SourceDiagnostic::ServiceUser(1)
        }
    );
    assert_eq!(user_data.as_deref(), Some(&[0xAA, 0x00][..]));
}

/// A toy A-profile: the client adds a password authentication-value; the server rejects any AARQ
/// whose value is not "secret" and aborts on "abort".
struct ToyAuth;

impl AssociationSecurity for ToyAuth {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        assert_eq!(ctx.role, Role::Initiator);
        aarq.sender_acse_requirements = Some(secmms_osi::acse::requirements_authentication());
        aarq.mechanism_name = Some("2.2.3.1".parse().unwrap());
        aarq.calling_authentication_value = Some(AuthenticationValue::External(External {
            direct_reference: Some("1.2.3".parse().unwrap()),
            indirect_reference: None,
            data_value_descriptor: None,
            encoding: secmms_osi::acse::ExternalEncoding::SingleAsn1Type(
                b"\x04\x06secret".to_vec(),
            ),
            raw: Vec::new(),
        }));
        Ok(())
    }
    fn check_aarq(&mut self, _ctx: &SecurityContext<'_>, aarq: &Aarq) -> AssociateVerdict {
        let raw = aarq.raw_authentication_value.clone().unwrap_or_default();
        if raw.windows(6).any(|w| w == b"secret") {
            AssociateVerdict::ACCEPT
        } else if raw.windows(5).any(|w| w == b"abort") {
            AssociateVerdict::Abort(AbortRequest {
                diagnostic: Some(abort_diagnostic::AUTHENTICATION_FAILURE),
                user_information: Vec::new(),
            })
        } else {
            AssociateVerdict::Reject(Rejection {
                result: associate_result::REJECTED_PERMANENT,
                diagnostic: SourceDiagnostic::ServiceUser(user_diagnostic::AUTHENTICATION_FAILURE),
                user_information: Vec::new(),
            })
        }
    }
}

struct WrongPassword;
impl AssociationSecurity for WrongPassword {
    fn decorate_aarq(
        &mut self,
        _: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        aarq.mechanism_name = Some("2.2.3.1".parse().unwrap());
        aarq.calling_authentication_value =
            Some(AuthenticationValue::Charstring(b"wrong".to_vec()));
        Ok(())
    }
}

#[test]
fn security_hook_adds_value_and_rejects() {
    // Accepted: the server's hook saw the authentication-value the client's hook added.
    let mut client =
        Association::with_security(Role::Initiator, OsiConfig::default(), Box::new(ToyAuth));
    let mut server = Association::with_security(
        Role::Responder,
        OsiConfig::server_default(),
        Box::new(ToyAuth),
    );
    let ev = associate(&mut client, &mut server, mms_pdu(8, 10));
    let [OsiEvent::AssociateIndication { aarq, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let Some(AuthenticationValue::External(ext)) = &aarq.calling_authentication_value else {
        panic!()
    };
    assert!(!ext.raw.is_empty());
    assert_eq!(
        aarq.sender_acse_requirements.as_ref().unwrap().bits,
        vec![0x80]
    );

    // Rejected: AARE authentication-failure travels back in RF + CPR.
    let mut client = Association::with_security(
        Role::Initiator,
        OsiConfig::default(),
        Box::new(WrongPassword),
    );
    let mut server = Association::with_security(
        Role::Responder,
        OsiConfig::server_default(),
        Box::new(ToyAuth),
    );
    let ev = associate(&mut client, &mut server, mms_pdu(8, 10));
    assert_eq!(ev, vec![OsiEvent::Closed]);
    pump(&mut server, &mut client);
    let ev = events(&mut client);
    assert!(
        matches!(
            ev.as_slice(),
            [
                OsiEvent::AssociateRejected {
                    reason: RejectReason::Acse {
                        result: 1,
                        diagnostic: SourceDiagnostic::ServiceUser(13)
                    },
                    ..
                },
                OsiEvent::Closed
            ]
        ),
        "{ev:?}"
    );
}

struct AbortPassword;
impl AssociationSecurity for AbortPassword {
    fn decorate_aarq(
        &mut self,
        _: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        aarq.calling_authentication_value =
            Some(AuthenticationValue::Charstring(b"abort".to_vec()));
        Ok(())
    }
}

#[test]
fn security_hook_aborts() {
    let mut client = Association::with_security(
        Role::Initiator,
        OsiConfig::default(),
        Box::new(AbortPassword),
    );
    let mut server = Association::with_security(
        Role::Responder,
        OsiConfig::server_default(),
        Box::new(ToyAuth),
    );
    let ev = associate(&mut client, &mut server, mms_pdu(8, 10));
    assert!(
        matches!(
            ev.as_slice(),
            [
                OsiEvent::AbortIndication(secmms_osi::AbortInfo {
                    origin: AbortOrigin::LocalSecurity,
                    reason: Some(5),
                    ..
                }),
                OsiEvent::Closed
            ]
        ),
        "{ev:?}"
    );
    pump(&mut server, &mut client);
    let ev = events(&mut client);
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(info.origin, AbortOrigin::PeerUser);
    assert_eq!(info.abrt.as_ref().unwrap().diagnostic, Some(5));
}

#[test]
fn garbage_gets_a_reaction() {
    // Responder: a bad CR → DR.
    let mut server = Association::responder(OsiConfig::server_default());
    server
        .handle_input(&[3, 0, 0, 9, 4, 0xE0, 0, 0, 0])
        .unwrap();
    let out = server.poll_transmit().unwrap();
    assert_eq!(out[5], 0x80, "DR expected: {out:02x?}");
    assert!(server.is_closed());
    // A class-2 CR → DR 130.
    let mut server = Association::responder(OsiConfig::server_default());
    server
        .handle_input(&hex::decode("0300000b06e00000000120").unwrap())
        .unwrap();
    let out = server.poll_transmit().unwrap();
    assert_eq!(&out[5..], &[0x80, 0, 1, 0, 1, 130]);
    // Data phase: an unknown TPDU → ER.
    let mut client = Association::initiator(OsiConfig::default());
    let mut server = Association::responder(OsiConfig::server_default());
    associate(&mut client, &mut server, mms_pdu(8, 10));
    server
        .handle_input(&hex::decode("0300000706600000").unwrap())
        .unwrap();
    let out = server.poll_transmit().unwrap();
    assert_eq!(out[5], 0x70, "ER expected: {out:02x?}");
    assert!(matches!(
        events(&mut server).as_slice(),
        [OsiEvent::ProtocolError(_), OsiEvent::Closed]
    ));
    // Data phase: a bad SPDU → AB.
    let mut client = Association::initiator(OsiConfig::default());
    let mut server = Association::responder(OsiConfig::server_default());
    associate(&mut client, &mut server, mms_pdu(8, 10));
    server.accept(vec![0xA9, 0]).unwrap();
    pump(&mut server, &mut client);
    server
        .handle_input(&hex::decode("0300000902f0800500").unwrap())
        .unwrap();
    let out = server.poll_transmit().unwrap();
    assert_eq!(out[7], 0x19, "AB expected: {out:02x?}");
    // Data phase: bad presentation data → AB + ARP.
    let mut client = Association::initiator(OsiConfig::default());
    let mut server = Association::responder(OsiConfig::server_default());
    associate(&mut client, &mut server, mms_pdu(8, 10));
    server.accept(vec![0xA9, 0]).unwrap();
    pump(&mut server, &mut client);
    server
        .handle_input(&hex::decode("0300000d02f080010001003003020101").unwrap())
        .unwrap();
    let out = server.poll_transmit().unwrap();
    assert_eq!(&out[7..13], &[0x19, 0x0D, 0x11, 0x01, 0x09, 0xC1]);
}

use secmms_osi::cotp::{ConnectTpdu, Tpdu};
use secmms_osi::session::{ConnectAccept, Spdu};

/// Decodes the TPDUs in a transmit buffer.
fn tpdus(bytes: &[u8]) -> Vec<Tpdu> {
    let mut d = secmms_osi::tpkt::TpktDecoder::new(65_535);
    d.push(bytes);
    std::iter::from_fn(|| d.next_tpdu().unwrap())
        .map(|t| Tpdu::decode(&t, 4).unwrap())
        .collect()
}

fn one(bytes: &[u8]) -> Tpdu {
    let mut v = tpdus(bytes);
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn cr_bytes(size: Option<u8>, called_tsel: &[u8]) -> Vec<u8> {
    let t = Tpdu::Cr(ConnectTpdu {
        dst_ref: 0,
        src_ref: 7,
        class_options: 0,
        tpdu_size: size.map(|c| TpduSize::from_code(c).unwrap()),
        calling_tsel: Some(vec![0, 1]),
        called_tsel: Some(called_tsel.to_vec()),
    });
    secmms_osi::tpkt::encode(&t.encode().unwrap()).unwrap()
}

#[test]
fn tpdu_size_negotiation() {
    // libiec61850 proposes 8192: we grant our maximum, 2048.
    let mut server = Association::responder(OsiConfig::server_default());
    server.handle_input(&cr_bytes(Some(13), &[0, 1])).unwrap();
    let Tpdu::Cc(cc) = one(&server.poll_transmit().unwrap()) else {
        panic!()
    };
    assert_eq!(cc.tpdu_size, Some(TpduSize::S2048));
    assert_eq!(cc.dst_ref, 7);
    // No C0: 128 octets.
    let mut server = Association::responder(OsiConfig::server_default());
    server.handle_input(&cr_bytes(None, &[0, 1])).unwrap();
    let Tpdu::Cc(cc) = one(&server.poll_transmit().unwrap()) else {
        panic!()
    };
    assert_eq!(cc.tpdu_size, Some(TpduSize::S128));
    assert_eq!(server.tpdu_size(), TpduSize::S128);
    // A client that proposed 8192 and got 128: the CN is cut into 125-octet DTs.
    let mut client = Association::initiator(OsiConfig {
        tpdu_size: TpduSize::S8192,
        ..OsiConfig::default()
    });
    client.connect(mms_pdu(8, 600)).unwrap();
    client.poll_transmit();
    let cc = Tpdu::Cc(ConnectTpdu {
        dst_ref: 1,
        src_ref: 1,
        class_options: 0,
        tpdu_size: None,
        calling_tsel: None,
        called_tsel: None,
    });
    client
        .handle_input(&secmms_osi::tpkt::encode(&cc.encode().unwrap()).unwrap())
        .unwrap();
    let dts = tpdus(&client.poll_transmit().unwrap());
    assert!(dts.len() > 5);
    for (i, t) in dts.iter().enumerate() {
        let Tpdu::Dt(d) = t else { panic!() };
        assert!(d.data.len() <= 125);
        assert_eq!(d.eot, i == dts.len() - 1);
    }
}

#[test]
fn selector_and_version_checks() {
    // Wrong called TSEL → DR reason 3.
    let mut server = Association::responder(OsiConfig::server_default());
    server.handle_input(&cr_bytes(Some(11), &[0, 9])).unwrap();
    let Tpdu::Dr(dr) = one(&server.poll_transmit().unwrap()) else {
        panic!()
    };
    assert_eq!(dr.reason, 3);
    assert!(server.is_closed());

    // Wrong called SSEL → RF 129; wrong PSEL → RF + CPR (called-presentation-address-unknown).
    for (cfg, expect_reason) in [
        (
            OsiConfig {
                remote_ssel: Some(vec![0, 9]),
                ..OsiConfig::default()
            },
            RejectReason::Session(Some(129)),
        ),
        (
            OsiConfig {
                remote_psel: Some(vec![9]),
                ..OsiConfig::default()
            },
            RejectReason::Presentation(Some(3)),
        ),
    ] {
        let mut client = Association::initiator(cfg);
        let mut server = Association::responder(OsiConfig::server_default());
        let ev = associate(&mut client, &mut server, mms_pdu(8, 10));
        assert!(
            matches!(
                ev.as_slice(),
                [OsiEvent::ProtocolError(_), OsiEvent::Closed]
            ),
            "{ev:?}"
        );
        pump(&mut server, &mut client);
        let ev = events(&mut client);
        let [OsiEvent::AssociateRejected { reason, .. }, OsiEvent::Closed] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(reason, &expect_reason);
    }

    // Selector checks can be turned off.
    let mut client = Association::initiator(OsiConfig {
        remote_ssel: Some(vec![0, 9]),
        ..OsiConfig::default()
    });
    let mut server = Association::responder(OsiConfig {
        check_selectors: false,
        ..OsiConfig::server_default()
    });
    let ev = associate(&mut client, &mut server, mms_pdu(8, 10));
    assert!(matches!(
        ev.as_slice(),
        [OsiEvent::AssociateIndication { .. }]
    ));

    // A version-1-only CN → RF 132.
    let mut server = Association::responder(OsiConfig::server_default());
    server.handle_input(&cr_bytes(Some(11), &[0, 1])).unwrap();
    server.poll_transmit();
    let cn = Spdu::Connect(ConnectAccept {
        version: Some(1),
        user_data: Some(vec![0x31, 0x00]),
        ..Default::default()
    })
    .encode()
    .unwrap();
    let mut dt = vec![2, 0xF0, 0x80];
    dt.extend(cn);
    server
        .handle_input(&secmms_osi::tpkt::encode(&dt).unwrap())
        .unwrap();
    let out = server.poll_transmit().unwrap();
    assert_eq!(&out[7..], &[0x0C, 0x03, 0x32, 0x01, 132]);
}

#[test]
fn rejected_aare_inside_ac_and_provider_abort() {
    // "AC + CPA + AARE(rejected)" (reference §5.8): build it with the public codecs.
    use secmms_osi::acse::{Aare, Apdu};
    use secmms_osi::presentation::{oids, CpaPpdu, UserData};
    let mut client = Association::initiator(OsiConfig::default());
    let mut server = Association::responder(OsiConfig::server_default());
    associate(&mut client, &mut server, mms_pdu(8, 10));
    let aare = Aare::new(
        oids::mms_ac(),
        associate_result::REJECTED_TRANSIENT,
        SourceDiagnostic::ServiceProvider(1),
    );
    let cpa = CpaPpdu {
        user_data: Some(UserData::single(1, Apdu::Aare(aare).encode())),
        ..Default::default()
    };
    let ac = Spdu::Accept(ConnectAccept {
        version: Some(2),
        user_data: Some(cpa.encode()),
        ..Default::default()
    })
    .encode()
    .unwrap();
    let mut dt = vec![2, 0xF0, 0x80];
    dt.extend(ac);
    client
        .handle_input(&secmms_osi::tpkt::encode(&dt).unwrap())
        .unwrap();
    let ev = events(&mut client);
    assert!(
        matches!(
            ev.as_slice(),
            [
                OsiEvent::AssociateRejected {
                    reason: RejectReason::Acse {
                        result: 2,
                        diagnostic: SourceDiagnostic::ServiceProvider(1)
                    },
                    aare: Some(_),
                    ..
                },
                OsiEvent::Closed
            ]
        ),
        "{ev:?}"
    );

    // The server answers a garbage P-DATA with AB + ARP; the client reports a provider abort.
    let mut client = Association::initiator(OsiConfig::default());
    let mut server = Association::responder(OsiConfig::server_default());
    associate(&mut client, &mut server, mms_pdu(8, 10));
    server.accept(vec![0xA9, 0]).unwrap();
    pump(&mut server, &mut client);
    events(&mut client);
    server
        .handle_input(&hex::decode("0300000d02f080010001003003020101").unwrap())
        .unwrap();
    pump(&mut server, &mut client);
    let ev = events(&mut client);
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(info.origin, AbortOrigin::PeerProvider);
    assert_eq!(info.reason, Some(1));
    assert_eq!(info.event, Some(7));
}

#[test]
fn api_misuse_and_transport_loss() {
    let mut client = Association::initiator(OsiConfig::default());
    assert!(client.send_data(&[0x8B, 0]).is_err());
    assert!(client.release(None).is_err());
    assert!(client.accept(vec![]).is_err());
    let mut server = Association::responder(OsiConfig::server_default());
    assert!(server.connect(vec![]).is_err());
    client.connect(mms_pdu(8, 1)).unwrap();
    assert!(client.connect(mms_pdu(8, 1)).is_err());
    client.transport_closed();
    assert!(matches!(
        events(&mut client).as_slice(),
        [
            OsiEvent::AssociateRejected {
                reason: RejectReason::Transport(_),
                ..
            },
            OsiEvent::Closed
        ]
    ));
    // Input after close is ignored.
    client.handle_input(&[1, 2, 3]).unwrap();
    assert!(client.poll_transmit().is_none());

    let mut client = Association::initiator(OsiConfig::default());
    let mut server = Association::responder(OsiConfig::server_default());
    associate(&mut client, &mut server, mms_pdu(8, 1));
    server.accept(vec![0xA9, 0]).unwrap();
    pump(&mut server, &mut client);
    events(&mut client);
    // Sending on ACSE or on an unknown context is refused.
    assert!(client.send_data_on(1, &[5, 0]).is_err());
    assert!(client.send_data_on(9, &[5, 0]).is_err());
    server.transport_closed();
    let ev = events(&mut server);
    assert!(matches!(
        ev.as_slice(),
        [
            OsiEvent::AbortIndication(secmms_osi::AbortInfo {
                origin: AbortOrigin::PeerTransport,
                ..
            }),
            OsiEvent::Closed
        ]
    ));
}

#[test]
fn tsdu_limit_enforced() {
    let mut client = Association::initiator(OsiConfig::default());
    let mut cfg = OsiConfig::server_default();
    cfg.limits.max_tsdu = 4_000;
    let mut server = Association::responder(cfg);
    associate(&mut client, &mut server, mms_pdu(8, 1));
    server.accept(vec![0xA9, 0]).unwrap();
    pump(&mut server, &mut client);
    client.send_data(&mms_pdu(0, 5_000)).unwrap();
    pump(&mut client, &mut server);
    let ev = events(&mut server);
    assert!(
        matches!(
            ev.as_slice(),
            [
                OsiEvent::ProtocolError(secmms_osi::OsiError::Cotp(_)),
                OsiEvent::Closed
            ]
        ),
        "{ev:?}"
    );
    let out = server.poll_transmit().unwrap();
    assert_eq!(
        &out[7..12],
        &[0x19, 0x03, 0x11, 0x01, 0x11],
        "AB, implementation restriction"
    );
}

#[test]
fn fn_answering_fn_is_tolerated() {
    // iec61850-rust answers our FN with `09 02 C1 00` (reference §9 item 10).
    let mut client = Association::initiator(OsiConfig::default());
    let mut server = Association::responder(OsiConfig::server_default());
    associate(&mut client, &mut server, mms_pdu(8, 1));
    server.accept(vec![0xA9, 0]).unwrap();
    pump(&mut server, &mut client);
    events(&mut client);
    client.release(None).unwrap();
    client.poll_transmit();
    client
        .handle_input(&hex::decode("0300000b02f08009 02c100".replace(' ', "")).unwrap())
        .unwrap();
    let ev = events(&mut client);
    assert!(
        matches!(
            ev.as_slice(),
            [OsiEvent::ReleaseConfirm { .. }, OsiEvent::Closed]
        ),
        "{ev:?}"
    );
}

/// Runs a whole scenario, corrupting chunk `which` at `pos` with `xor`; returns both machines.
fn tampered_run(
    which: usize,
    pos: usize,
    xor: u8,
) -> (Association, Association, Vec<OsiEvent>, Vec<OsiEvent>) {
    let mut c = Association::initiator(OsiConfig::default());
    let mut s = Association::responder(OsiConfig::server_default());
    let (mut ce, mut se) = (Vec::new(), Vec::new());
    let mut n = 0usize;
    let mut step = |from: &mut Association, to: &mut Association, ev: &mut Vec<OsiEvent>| {
        while let Some(mut b) = from.poll_transmit() {
            if n == which {
                let i = pos % b.len();
                b[i] ^= xor;
            }
            n += 1;
            to.handle_input(&b).unwrap();
        }
        ev.extend(std::iter::from_fn(|| to.poll_event()));
    };
    let _ = c.connect(mms_pdu(8, 700));
    step(&mut c, &mut s, &mut se);
    step(&mut s, &mut c, &mut ce);
    step(&mut c, &mut s, &mut se);
    let _ = s.accept(mms_pdu(9, 100));
    step(&mut s, &mut c, &mut ce);
    let _ = c.send_data(&mms_pdu(0, 3000));
    step(&mut c, &mut s, &mut se);
    let _ = s.send_data(&mms_pdu(1, 50));
    step(&mut s, &mut c, &mut ce);
    let _ = c.release(None);
    step(&mut c, &mut s, &mut se);
    let _ = s.release_response(None);
    step(&mut s, &mut c, &mut ce);
    // Events raised by API calls on a side are collected here.
    ce.extend(std::iter::from_fn(|| c.poll_event()));
    se.extend(std::iter::from_fn(|| s.poll_event()));
    (c, s, ce, se)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
    /// Any single corrupted byte anywhere in an association: no panic, and a side that reports
    /// a protocol error is closed (never stuck).
    #[test]
    fn corrupted_byte_never_panics_or_sticks(which in 0usize..12, pos in 0usize..4000, xor in 1u8..=255) {
        let (c, s, ce, se) = tampered_run(which, pos, xor);
        for (m, ev) in [(&c, &ce), (&s, &se)] {
            if ev.iter().any(|e| matches!(e, OsiEvent::ProtocolError(_))) {
                proptest::prop_assert!(m.is_closed());
            }
            let closed = ev.iter().filter(|e| matches!(e, OsiEvent::Closed)).count();
            proptest::prop_assert!(closed <= 1);
            proptest::prop_assert_eq!(closed == 1, m.is_closed());
        }
    }
}

#[test]
fn untampered_scenario_completes() {
    let (c, s, ce, se) = tampered_run(usize::MAX, 0, 0);
    assert!(c.is_closed() && s.is_closed());
    assert!(matches!(ce.last(), Some(OsiEvent::Closed)));
    assert!(se
        .iter()
        .any(|e| matches!(e, OsiEvent::ReleaseIndication { .. })));
}

#[test]
fn oversized_connect_refused() {
    // A CN with 10 241 octets of user data (beyond the CONNECT budget) → RF 134.
    let mut server = Association::responder(OsiConfig::server_default());
    server.handle_input(&cr_bytes(Some(11), &[0, 1])).unwrap();
    server.poll_transmit();
    let cn = Spdu::Connect(ConnectAccept {
        version: Some(2),
        user_data: Some(vec![0; 10_241]),
        ..Default::default()
    })
    .encode_with(secmms_osi::session::CnUserDataMode::AlwaysPgi193);
    assert!(cn.is_err(), "our encoder refuses it too");
    // Build it by hand: CN, LI, PGI 193 with a long LI.
    let mut tsdu = vec![
        0x0D, 0xFF, 0x28, 0x0A, 0x05, 0x03, 0x16, 0x01, 0x02, 0xC1, 0xFF, 0x28, 0x01,
    ];
    tsdu.extend(vec![0u8; 10_241]);
    let mut bytes = Vec::new();
    for dt in secmms_osi::cotp::segment(&tsdu, TpduSize::S2048) {
        bytes.extend(secmms_osi::tpkt::encode(&dt).unwrap());
    }
    server.handle_input(&bytes).unwrap();
    let out = server.poll_transmit().unwrap();
    assert_eq!(&out[7..], &[0x0C, 0x03, 0x32, 0x01, 134]);
    assert!(server.is_closed());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// The copy-saving data path emits exactly the bytes of the generic encoders.
    #[test]
    fn data_path_equals_generic_encoding(len in 0usize..20_000, size in 7u8..=11) {
        use secmms_osi::presentation::UserData;
        let mut client = Association::initiator(OsiConfig { tpdu_size: TpduSize::from_code(size).unwrap(), ..OsiConfig::default() });
        let mut server = Association::responder(OsiConfig::server_default());
        associate(&mut client, &mut server, mms_pdu(8, 1));
        server.accept(vec![0xA9, 0]).unwrap();
        pump(&mut server, &mut client);
        let pdu = mms_pdu(0, len);
        client.send_data(&pdu).unwrap();
        let got = client.poll_transmit().unwrap();
        let tsdu = Spdu::Data(UserData::single(3, pdu.clone()).encode()).encode().unwrap();
        let mut want = Vec::new();
        for dt in secmms_osi::cotp::segment(&tsdu, client.tpdu_size()) {
            want.extend(secmms_osi::tpkt::encode(&dt).unwrap());
        }
        proptest::prop_assert_eq!(&got, &want);
        server.handle_input(&got).unwrap();
        proptest::prop_assert_eq!(server.poll_event(), Some(OsiEvent::Data { context_id: 3, pdu }));
    }
}

/// A hook held by value (`with_hook`) behaves exactly as the same hook boxed (the CONNECT
/// carrying the AARQ it decorated is the same octets), and its owner reaches it between calls.
#[test]
fn concrete_and_boxed_hooks_give_the_same_bytes() {
    /// CR → CC → CN: the octets of the CN carrying the AARQ.
    fn cn_of<H: AssociationSecurity>(c: &mut Association<H>) -> Vec<u8> {
        let mut server = Association::responder(OsiConfig::server_default());
        c.connect(mms_pdu(0xA8, 20)).unwrap();
        while let Some(b) = c.poll_transmit() {
            server.handle_input(&b).unwrap();
        }
        while let Some(b) = server.poll_transmit() {
            c.handle_input(&b).unwrap();
        }
        std::iter::from_fn(|| c.poll_transmit()).flatten().collect()
    }
    let cfg = OsiConfig::default();
    let mut boxed = Association::with_security(Role::Initiator, cfg.clone(), Box::new(ToyAuth));
    let mut concrete = Association::with_hook(Role::Initiator, cfg, ToyAuth);
    let b = cn_of(&mut boxed);
    let c = cn_of(&mut concrete);
    // The hook's mechanism-name (2.2.3.1) is in the AARQ.
    assert!(
        b.windows(3).any(|w| w == [0x52, 0x03, 0x01]),
        "no AARQ in {b:02x?}"
    );
    assert_eq!(b, c);
    let _hook: &mut ToyAuth = concrete.security_mut();
}

/// Counts the release checks and, when `refuse` is set, aborts on the peer's RLRQ.
#[derive(Default)]
struct ReleaseWatch {
    rlrq_checks: std::sync::Arc<std::sync::atomic::AtomicU32>,
    refuse: bool,
}

impl AssociationSecurity for ReleaseWatch {
    fn check_rlrq(
        &mut self,
        _ctx: &SecurityContext<'_>,
        _rlrq: &secmms_osi::acse::Rlrq,
    ) -> secmms_osi::security::Verdict {
        self.rlrq_checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.refuse {
            secmms_osi::security::Verdict::Abort(AbortRequest {
                diagnostic: Some(abort_diagnostic::AUTHENTICATION_FAILURE),
                user_information: Vec::new(),
            })
        } else {
            secmms_osi::security::Verdict::Accept { user_data: None }
        }
    }
}

/// Both ends release at once (each FN meets the other's FN): the peer's RLRQ still goes through
/// the security hook, the release ends for both when it passes, and a refused one aborts.
#[test]
fn release_collision_checks_the_peers_rlrq() {
    for refuse in [false, true] {
        let checks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut client = Association::with_security(
            Role::Initiator,
            OsiConfig::default(),
            Box::new(ReleaseWatch {
                rlrq_checks: checks.clone(),
                refuse,
            }),
        );
        let mut server = Association::responder(OsiConfig::server_default());
        associate(&mut client, &mut server, mms_pdu(8, 10));
        server.accept(mms_pdu(9, 10)).unwrap();
        pump(&mut server, &mut client);
        events(&mut client);
        client.release(Some(mms_pdu(11, 2))).unwrap();
        server.release(Some(mms_pdu(11, 2))).unwrap();
        // Cross the two FNs.
        let to_server = client.poll_transmit().unwrap();
        let to_client = server.poll_transmit().unwrap();
        client.handle_input(&to_client).unwrap();
        server.handle_input(&to_server).unwrap();
        assert_eq!(
            checks.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "refuse={refuse}"
        );
        let ev = events(&mut client);
        if refuse {
            assert!(
                matches!(ev.first(), Some(OsiEvent::AbortIndication(_))),
                "{ev:?}"
            );
            // The ABRT is queued; the server, whose own check passed, had already ended its
            // release when the FNs crossed.
            assert!(client.poll_transmit().is_some(), "ABRT queued");
            let ev = events(&mut server);
            assert!(
                matches!(ev.first(), Some(OsiEvent::ReleaseConfirm { .. })),
                "{ev:?}"
            );
        } else {
            let [OsiEvent::ReleaseConfirm { user_data, .. }, OsiEvent::Closed] = ev.as_slice()
            else {
                panic!("{ev:?}")
            };
            // The peer's RLRQ is not an answer: no confirm data.
            assert_eq!(user_data, &None);
            let ev = events(&mut server);
            assert!(
                matches!(ev.first(), Some(OsiEvent::ReleaseConfirm { .. })),
                "{ev:?}"
            );
        }
        assert!(client.is_closed());
    }
}
