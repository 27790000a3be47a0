//! Wireshark cross-check: every PDU our client builds and our server answers is wrapped in
//! TPKT / COTP DT / session GT+DT / presentation fully-encoded-data (context 3 = MMS, as in the
//! reference §1), written with `text2pcap` and decoded by `tshark`, which must report no
//! malformed packet and no expert warning (reference §13.2–§13.3). Skips when tshark is not
//! installed, unless `CI=true`.

use secmms_mms::client::{self, ClientProposal};
use secmms_mms::model::{Model, SharedModel};
use secmms_mms::server::{InitiateOutcome, ServerConfig, Vmd};
use secmms_mms::*;
use secmms_testkit::{tshark_ready, Capture};

fn ber(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let l = content.len();
    if l < 128 {
        v.push(l as u8);
    } else if l < 256 {
        v.extend([0x81, l as u8]);
    } else {
        v.extend([0x82, (l >> 8) as u8, l as u8]);
    }
    v.extend_from_slice(content);
    v
}

fn wrap(mms: &[u8]) -> Vec<u8> {
    let mut pdv = vec![0x02, 0x01, 0x03];
    pdv.extend(ber(0xa0, mms));
    let pres = ber(0x61, &ber(0x30, &pdv));
    let mut payload = vec![0x02, 0xf0, 0x80, 0x01, 0x00, 0x01, 0x00];
    payload.extend(pres);
    let mut tpkt = vec![3, 0];
    tpkt.extend(((payload.len() + 4) as u16).to_be_bytes());
    tpkt.extend(payload);
    tpkt
}

/// (direction, MMS PDU) pairs: I = client → server, O = server → client.
fn exchange() -> Vec<(char, Vec<u8>)> {
    let server = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let init = client::initiate_request_pdu(&ClientProposal::default());
    let InitiateOutcome::Accepted {
        response,
        association: a,
    } = server.accept_initiate(&init)
    else {
        panic!("refused")
    };
    let mut out = vec![('I', init), ('O', response)];
    let n = |i: &str| ObjectName::domain("DEMOLD0", i);
    let requests = vec![
        client::identify_request_pdu(1),
        MmsPdu::ConfirmedRequest(ConfirmedRequest {
            invoke_id: 2,
            service: ConfirmedServiceRequest::Status(false),
        })
        .encode(),
        client::get_name_list_request_pdu(3, ObjectClass::DOMAIN, ObjectScope::Vmd, None),
        client::get_name_list_request_pdu(
            4,
            ObjectClass::NAMED_VARIABLE,
            ObjectScope::Domain("DEMOLD0".into()),
            None,
        ),
        client::get_name_list_request_pdu(
            5,
            ObjectClass::NAMED_VARIABLE_LIST,
            ObjectScope::Domain("DEMOLD0".into()),
            Some("A".into()),
        ),
        client::read_names_request_pdu(6, &[n("GGIO1"), n("LLN0"), n("nope")]),
        client::read_list_request_pdu(7, n("LLN0$DS1")),
        client::get_variable_access_attributes_request_pdu(8, n("GGIO1")),
        client::get_variable_access_attributes_request_pdu(9, n("LLN0$RP$urcb01")),
        client::write_request_pdu(
            10,
            n("LLN0$DC$NamPlt$vendor"),
            Data::VisibleString("acme".into()),
        ),
        client::write_request_pdu(11, n("GGIO1$MX$AnIn1$mag$f"), Data::float32(1.5)),
        client::define_list_request_pdu(
            12,
            n("LLN0$probe"),
            &[n("GGIO1$ST$Ind1"), n("GGIO1$MX$AnIn1$mag$f")],
        ),
        client::get_list_attributes_request_pdu(13, n("LLN0$probe")),
        client::delete_list_request_pdu(14, &[n("LLN0$probe")]),
        client::get_list_attributes_request_pdu(15, n("LLN0$probe")),
        vec![0xA0, 0x06, 0x02, 0x01, 0x10, 0xBF, 0x4D, 0x00],
        client::conclude_request_pdu(),
    ];
    for r in requests {
        let reply = a.handle_pdu(&r).expect("an answer");
        out.push(('I', r));
        out.push(('O', reply));
    }
    // Our own InformationReport and initiate-Error encodings.
    out.push((
        'O',
        MmsPdu::InformationReport(InformationReport {
            spec: VariableAccessSpecification::VariableListName(ObjectName::VmdSpecific(
                "RPT".into(),
            )),
            results: vec![
                AccessResult::Success(Data::VisibleString("DEMO/urcb".into())),
                AccessResult::Success(Data::BitString(BitString::zeros(10))),
                AccessResult::Success(Data::UtcTime(UtcTime {
                    seconds: 1_700_000_000,
                    fraction: 0x800000,
                    quality: 0x0a,
                })),
                AccessResult::Success(Data::BinaryTime(TimeOfDay {
                    millis: 1000,
                    days: Some(15000),
                })),
            ],
        })
        .encode(),
    ));
    out.push((
        'O',
        MmsPdu::InitiateError(ServiceError::new(ErrorClass::Initiate(2))).encode(),
    ));
    out
}

#[test]
fn tshark_decodes_our_pdus_cleanly() {
    if !tshark_ready(
        "tshark/text2pcap required in CI",
        "tshark not installed: skipped",
    ) {
        return;
    }
    let pdus = exchange();
    let packets: Vec<(bool, Vec<u8>)> =
        pdus.iter().map(|(dir, p)| (*dir == 'I', wrap(p))).collect();
    let capture = Capture::write("secmms-mms-tshark", &packets, 102);
    let tshark = capture
        .tshark()
        .options(["-o", "uat:pres_context_list:\"3\",\"1.0.9506.2.1\""]);
    let bad = tshark.problems("_ws.malformed || _ws.expert.severity >= warning");
    assert!(bad.trim().is_empty(), "tshark complaints:\n{bad}");
    let mms = tshark.run(&["-Y", "mms", "-T", "fields", "-e", "frame.number"]);
    let frames = mms.lines().count();
    assert_eq!(frames, pdus.len(), "every frame decodes as MMS");
    capture.remove();
}
