//! Golden-byte tests against a real capture (open61850 client ⇄ iec61850-rust server); see
//! `tests/vectors/open61850-iec61850.txt` for provenance.

use secmms_ber::Limits;
use secmms_osi::acse::{AeQualifier, ApTitle, Apdu, SourceDiagnostic};
use secmms_osi::cotp::{Tpdu, TpduSize};
use secmms_osi::presentation::{oids, CpType, CpaPpdu, PdvValues, UserData};
use secmms_osi::session::Spdu;
use secmms_osi::tpkt::TpktDecoder;
use secmms_osi::{Association, OsiConfig, OsiEvent};

struct Frame {
    number: u32,
    from_client: bool,
    bytes: Vec<u8>,
}

fn frames() -> Vec<Frame> {
    include_str!("vectors/open61850-iec61850.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut p = l.split_whitespace();
            Frame {
                number: p.next().unwrap().parse().unwrap(),
                from_client: p.next().unwrap() == "c2s",
                bytes: hex::decode(p.next().unwrap()).unwrap(),
            }
        })
        .collect()
}

fn frame(n: u32) -> Vec<u8> {
    frames().into_iter().find(|f| f.number == n).unwrap().bytes
}

/// TPKT → TPDU for a frame holding exactly one TPKT.
fn tpdu(n: u32) -> Tpdu {
    let mut d = TpktDecoder::new(65_535);
    d.push(&frame(n));
    let t = d.next_tpdu().unwrap().unwrap();
    assert_eq!(d.buffered(), 0);
    Tpdu::decode(&t, 4).unwrap()
}

fn spdu(n: u32) -> Spdu {
    let Tpdu::Dt(dt) = tpdu(n) else { panic!() };
    assert!(dt.eot);
    Spdu::decode(&dt.data, 16).unwrap()
}

fn single_value(ud: &UserData, ctx: u32) -> Vec<u8> {
    let UserData::Fully(pdvs) = ud else { panic!() };
    assert_eq!(pdvs.len(), 1);
    assert_eq!(pdvs[0].context_id, ctx);
    let PdvValues::SingleAsn1Type(v) = &pdvs[0].values else {
        panic!()
    };
    v.clone()
}

/// The MMS initiate-Request (frame 8) and initiate-Response (frame 9) carried in the capture.
fn initiate_pdus() -> (Vec<u8>, Vec<u8>) {
    let Spdu::Connect(cn) = spdu(8) else { panic!() };
    let cp = CpType::decode(cn.user_data.as_ref().unwrap(), Limits::default(), 16).unwrap();
    let Apdu::Aarq(aarq) = Apdu::decode(
        &single_value(cp.user_data.as_ref().unwrap(), 1),
        Limits::default(),
    )
    .unwrap() else {
        panic!()
    };
    let Spdu::Accept(ac) = spdu(9) else { panic!() };
    let cpa = CpaPpdu::decode(ac.user_data.as_ref().unwrap(), Limits::default(), 16).unwrap();
    let Apdu::Aare(aare) = Apdu::decode(
        &single_value(cpa.user_data.as_ref().unwrap(), 1),
        Limits::default(),
    )
    .unwrap() else {
        panic!()
    };
    (
        aarq.user_information[0].single_value().unwrap().to_vec(),
        aare.user_information[0].single_value().unwrap().to_vec(),
    )
}

#[test]
fn decode_cr_cc() {
    let Tpdu::Cr(cr) = tpdu(4) else { panic!() };
    assert_eq!((cr.dst_ref, cr.src_ref, cr.class()), (0, 1, 0));
    assert_eq!(cr.tpdu_size, Some(TpduSize::S1024));
    assert_eq!(cr.calling_tsel.as_deref(), Some(&[0, 1][..]));
    assert_eq!(cr.called_tsel.as_deref(), Some(&[0, 1][..]));
    let Tpdu::Cc(cc) = tpdu(6) else { panic!() };
    assert_eq!((cc.dst_ref, cc.src_ref), (1, 1));
    assert_eq!(cc.tpdu_size, Some(TpduSize::S1024));
    assert_eq!(cc.calling_tsel, None, "iec61850-rust omits C1");
    assert_eq!(cc.called_tsel.as_deref(), Some(&[0, 1][..]));
}

#[test]
fn decode_cn_cp_aarq() {
    let Spdu::Connect(cn) = spdu(8) else { panic!() };
    assert_eq!(cn.protocol_options, Some(0));
    assert_eq!(cn.version, Some(2));
    assert_eq!(cn.user_requirements, Some(2));
    assert_eq!(cn.calling_ssel.as_deref(), Some(&[0, 1][..]));
    assert_eq!(cn.called_ssel.as_deref(), Some(&[0, 1][..]));
    let cp = CpType::decode(cn.user_data.as_ref().unwrap(), Limits::default(), 16).unwrap();
    assert_eq!(cp.calling_psel.as_deref(), Some(&[0, 0, 0, 1][..]));
    assert_eq!(cp.called_psel.as_deref(), Some(&[0, 0, 0, 1][..]));
    let defs: Vec<_> = cp
        .context_definitions
        .iter()
        .map(|d| (d.id, d.abstract_syntax.clone()))
        .collect();
    assert_eq!(defs, vec![(1, oids::acse_as()), (3, oids::mms_as())]);
    assert!(cp
        .context_definitions
        .iter()
        .all(|d| d.transfer_syntaxes == vec![oids::ber()]));
    let v = single_value(cp.user_data.as_ref().unwrap(), 1);
    let Apdu::Aarq(aarq) = Apdu::decode(&v, Limits::default()).unwrap() else {
        panic!()
    };
    assert_eq!(aarq.raw, v);
    assert_eq!(aarq.application_context_name, oids::mms_ac());
    assert_eq!(
        aarq.called_ap_title,
        Some(ApTitle::Form2("1.1.1.999.1".parse().unwrap()))
    );
    assert_eq!(aarq.called_ae_qualifier, Some(AeQualifier::Form2(12)));
    assert_eq!(
        aarq.calling_ap_title,
        Some(ApTitle::Form2("1.1.1.999".parse().unwrap()))
    );
    assert_eq!(aarq.calling_ae_qualifier, Some(AeQualifier::Form2(12)));
    assert_eq!(aarq.protocol_version, None);
    assert_eq!(aarq.user_information.len(), 1);
    assert_eq!(aarq.user_information[0].indirect_reference, Some(3));
    assert_eq!(
        aarq.user_information[0].single_value().unwrap()[0],
        0xA8,
        "initiate-RequestPDU"
    );
    assert!(aarq
        .raw_user_information
        .as_ref()
        .unwrap()
        .starts_with(&[0xBE, 0x2F, 0x28, 0x2D]));
    // Re-encoding the decoded AARQ gives the captured bytes.
    assert_eq!(Apdu::Aarq(aarq).encode(), v);
}

#[test]
fn decode_ac_cpa_aare() {
    let Spdu::Accept(ac) = spdu(9) else { panic!() };
    assert_eq!(ac.version, Some(2));
    assert_eq!(ac.called_ssel.as_deref(), Some(&[0, 1][..]));
    let cpa = CpaPpdu::decode(ac.user_data.as_ref().unwrap(), Limits::default(), 16).unwrap();
    assert_eq!(cpa.responding_psel.as_deref(), Some(&[0, 0, 0, 1][..]));
    assert_eq!(cpa.results.len(), 2);
    assert!(cpa
        .results
        .iter()
        .all(|r| r.result == 0 && r.transfer_syntax == Some(oids::ber())));
    let v = single_value(cpa.user_data.as_ref().unwrap(), 1);
    let Apdu::Aare(aare) = Apdu::decode(&v, Limits::default()).unwrap() else {
        panic!()
    };
    assert_eq!(aare.result, 0);
    assert_eq!(
        aare.result_source_diagnostic,
        SourceDiagnostic::ServiceUser(0)
    );
    assert_eq!(aare.user_information[0].indirect_reference, Some(3));
    assert_eq!(
        aare.user_information[0].single_value().unwrap()[0],
        0xA9,
        "initiate-ResponsePDU"
    );
    assert_eq!(Apdu::Aare(aare).encode(), v);
    // Our CPA encoder reproduces the captured CPA.
    assert_eq!(&cpa.encode(), ac.user_data.as_ref().unwrap());
    assert_eq!(Spdu::Accept(ac).encode().unwrap(), {
        let Tpdu::Dt(dt) = tpdu(9) else { panic!() };
        dt.data
    });
}

#[test]
fn decode_data_frames() {
    for n in [10, 11, 12, 13] {
        let Spdu::Data(d) = spdu(n) else { panic!() };
        let ud = UserData::decode(&d, Limits::default()).unwrap();
        let v = single_value(&ud, 3);
        assert_eq!(
            v[0],
            if n % 2 == 0 { 0xA0 } else { 0xA1 },
            "confirmed request/response"
        );
        assert_eq!(ud.encode(), d);
    }
}

#[test]
fn our_initiator_reproduces_the_client_bytes() {
    let (req, resp) = initiate_pdus();
    let mut client = Association::initiator(OsiConfig {
        tpdu_size: TpduSize::S1024, // open61850 proposes 1024
        ..OsiConfig::default()
    });
    client.connect(req).unwrap();
    assert_eq!(client.poll_transmit().unwrap(), frame(4), "CR");
    client.handle_input(&frame(6)).unwrap();
    assert_eq!(
        client.poll_transmit().unwrap(),
        frame(8),
        "CN + CP + AARQ, byte for byte"
    );
    client.handle_input(&frame(9)).unwrap();
    let ev = client.poll_event().unwrap();
    let OsiEvent::AssociateConfirm { user_data, .. } = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(user_data.unwrap(), resp);
    // A data PDU is wrapped exactly like the capture.
    let Spdu::Data(d) = spdu(10) else { panic!() };
    let mms = single_value(&UserData::decode(&d, Limits::default()).unwrap(), 3);
    client.send_data(&mms).unwrap();
    assert_eq!(client.poll_transmit().unwrap(), frame(10));
    client.handle_input(&frame(11)).unwrap();
    assert!(matches!(
        client.poll_event(),
        Some(OsiEvent::Data { context_id: 3, .. })
    ));
}

#[test]
fn our_responder_accepts_the_client_and_answers_like_the_server() {
    let (req, resp) = initiate_pdus();
    let mut server = Association::responder(OsiConfig::server_default());
    // Feed the client's bytes in small pieces (TCP gives no framing guarantees).
    for chunk in frame(4).chunks(3) {
        server.handle_input(chunk).unwrap();
    }
    let cc = server.poll_transmit().unwrap();
    let mut d = TpktDecoder::new(65_535);
    d.push(&cc);
    let Tpdu::Cc(cc) = Tpdu::decode(&d.next_tpdu().unwrap().unwrap(), 4).unwrap() else {
        panic!()
    };
    assert_eq!(
        cc.tpdu_size,
        Some(TpduSize::S1024),
        "granted what was proposed (≤ 2048)"
    );
    assert_eq!(cc.dst_ref, 1);
    server.handle_input(&frame(8)).unwrap();
    let ev = server.poll_event().unwrap();
    let OsiEvent::AssociateIndication { user_data, .. } = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(user_data.unwrap(), req);
    server.accept(resp).unwrap();
    assert_eq!(
        server.poll_transmit().unwrap(),
        frame(9),
        "AC + CPA + AARE, byte for byte"
    );
    server.handle_input(&frame(10)).unwrap();
    assert!(matches!(
        server.poll_event(),
        Some(OsiEvent::Data { context_id: 3, .. })
    ));
}

#[test]
fn whole_capture_stream_direction_replay() {
    // Every client→server byte of the capture, concatenated, is accepted by our responder.
    let client_stream: Vec<u8> = frames()
        .iter()
        .filter(|f| f.from_client)
        .flat_map(|f| f.bytes.clone())
        .collect();
    let mut server = Association::responder(OsiConfig::server_default());
    server.handle_input(&client_stream[..22]).unwrap(); // CR
    server.handle_input(&client_stream[22..22 + 187]).unwrap(); // CN
    assert!(matches!(
        server.poll_event(),
        Some(OsiEvent::AssociateIndication { .. })
    ));
    server.accept(initiate_pdus().1).unwrap();
    server.handle_input(&client_stream[22 + 187..]).unwrap();
    let data: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
    assert_eq!(data.len(), 2);
    assert!(!server.is_closed());
}
