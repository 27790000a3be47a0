//! Wireshark's dissectors decode every PDU type our client and server put on the wire, with no
//! malformed frame and no expert warning. The bytes are recorded from a real TCP association
//! between our client and our server (every service the client offers, successes and errors,
//! the release), turned into a pcap with `text2pcap` and read back with `tshark`.
//! A second test covers the server's answers to invalid requests (rejectPDU) and the initiate
//! refusal, which our own client never provokes. Skipped when tshark is missing, unless CI=true.

use std::sync::Arc;

use secmms::Config;
use secmms_mms::pdu::*;
use secmms_mms::ObjectName;
use secmms_testkit::{tpkts, Capture, Recording, TpktCheck, WireLog};
use tokio::net::TcpStream;

fn tshark_ready() -> bool {
    secmms_testkit::tshark_ready(
        "tshark/text2pcap are required when CI=true",
        "SKIPPED: tshark not installed (scripts/test.sh installs it)",
    )
}

/// Writes a pcap of the packets and returns (problems, full decode summary).
fn decode(name: &str, packets: &[(bool, Vec<u8>)]) -> (String, String) {
    let capture = Capture::write(&format!("secmms-tshark-{name}"), packets, 102);
    let tshark = capture.tshark();
    let problems =
        tshark.problems("(_ws.malformed || _ws.expert.severity >= warning) && !tcp.analysis");
    let brief = tshark.run(&[]);
    let verbose = tshark.run(&["-V"]);
    capture.remove();
    (problems, format!("{brief}\n{verbose}"))
}

fn vendor() -> ObjectName {
    ObjectName::domain("DEMOLD0", "LLN0$DC$NamPlt$vendor")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_every_pdu_of_a_live_association() {
    if !tshark_ready() {
        return;
    }
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    let server = cfg.server_builder().bind().await.unwrap().spawn().unwrap();
    let log: WireLog = Arc::default();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let client = cfg
        .client_builder()
        .associate(Recording::new(tcp, log.clone()))
        .await
        .unwrap();

    client.identify().await.unwrap();
    client
        .request(ConfirmedServiceRequest::Status(false))
        .await
        .unwrap();
    assert_eq!(client.domains().await.unwrap(), vec!["DEMOLD0"]);
    assert!(client.variables("DEMOLD0").await.unwrap().len() > 40);
    client
        .request(ConfirmedServiceRequest::GetVariableAccessAttributes(
            ObjectName::domain("DEMOLD0", "GGIO1$MX$AnIn1"),
        ))
        .await
        .unwrap();
    client.read_name(&vendor()).await.unwrap();
    // A structure (a whole data object) and a failed read.
    client
        .read_name(&ObjectName::domain("DEMOLD0", "GGIO1$ST$Ind1"))
        .await
        .unwrap();
    assert!(client
        .read_name(&ObjectName::domain("DEMOLD0", "GGIO1$ST$Nope"))
        .await
        .is_err());
    client
        .write_str("DEMOLD0/LLN0.NamPlt.vendor[DC]", "tshark")
        .await
        .unwrap();
    assert!(client
        .write_str("DEMOLD0/GGIO1.AnIn1.mag.f[MX]", "1.5")
        .await
        .is_err());
    // Named variable lists: define, list, read through, delete.
    let list = ObjectName::domain("DEMOLD0", "LLN0$secmmsList");
    client
        .request(ConfirmedServiceRequest::DefineNamedVariableList(
            DefineNamedVariableListRequest {
                name: list.clone(),
                variables: vec![
                    VariableSpec::named(vendor()),
                    VariableSpec::named(ObjectName::domain("DEMOLD0", "GGIO1$MX$AnIn1$mag$f")),
                ],
            },
        ))
        .await
        .unwrap();
    client
        .request(ConfirmedServiceRequest::GetNamedVariableListAttributes(
            list.clone(),
        ))
        .await
        .unwrap();
    client
        .request(ConfirmedServiceRequest::Read(ReadRequest {
            specification_with_result: true,
            spec: VariableAccessSpecification::VariableListName(list.clone()),
        }))
        .await
        .unwrap();
    client
        .request(ConfirmedServiceRequest::GetNameList(GetNameListRequest {
            object_class: ObjectClass::NAMED_VARIABLE_LIST,
            scope: ObjectScope::Domain("DEMOLD0".into()),
            continue_after: None,
        }))
        .await
        .unwrap();
    client
        .request(ConfirmedServiceRequest::DeleteNamedVariableList(
            DeleteNamedVariableListRequest {
                scope: delete_scope::SPECIFIC,
                names: Some(vec![list]),
                domain: None,
            },
        ))
        .await
        .unwrap();
    // A confirmed-ErrorPDU: attributes of an object that does not exist.
    assert!(client
        .request(ConfirmedServiceRequest::GetVariableAccessAttributes(
            ObjectName::domain("DEMOLD0", "NOPE")
        ))
        .await
        .is_err());
    client.release().await.unwrap();
    server.shutdown();

    let packets = tpkts(&log.lock().unwrap(), TpktCheck::Lenient);
    let (problems, summary) = decode("live", &packets);
    assert!(
        problems.trim().is_empty(),
        "tshark reports problems:\n{problems}"
    );
    for needle in [
        "CR TPDU",
        "CC TPDU",
        "initiate-RequestPDU",
        "initiate-ResponsePDU",
        "identify",
        "status",
        "getNameList",
        "getVariableAccessAttributes",
        "read",
        "write",
        "defineNamedVariableList",
        "getNamedVariableListAttributes",
        "deleteNamedVariableList",
        "confirmed-ErrorPDU",
        "conclude-RequestPDU",
        "conclude-ResponsePDU",
        "rlrq",
        "rlre",
        "object-non-existent",
    ] {
        assert!(
            summary.contains(needle),
            "{needle} not decoded in:\n{summary}"
        );
    }
}

#[test]
fn tshark_decodes_reject_and_initiate_error() {
    if !tshark_ready() {
        return;
    }
    use secmms_mms::model::{Model, SharedModel};
    use secmms_mms::server::{InitiateOutcome, ServerConfig, Vmd};
    use secmms_osi::{Association, OsiConfig, OsiEvent};

    let mms = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let mut c = Association::initiator(OsiConfig::default());
    let mut s = Association::responder(OsiConfig::server_default());
    let mut pk = Vec::new();
    let pump = |from_client: bool,
                a: &mut Association,
                b: &mut Association,
                pk: &mut Vec<(bool, Vec<u8>)>| {
        while let Some(bytes) = a.poll_transmit() {
            b.handle_input(&bytes).unwrap();
            pk.push((from_client, bytes));
        }
    };
    c.connect(secmms_mms::client::initiate_request_pdu(&Default::default()))
        .unwrap();
    pump(true, &mut c, &mut s, &mut pk);
    pump(false, &mut s, &mut c, &mut pk);
    pump(true, &mut c, &mut s, &mut pk);
    let Some(OsiEvent::AssociateIndication { user_data, .. }) = s.poll_event() else {
        panic!("no AARQ")
    };
    let InitiateOutcome::Accepted {
        response,
        association,
    } = mms.accept_initiate(&user_data.unwrap())
    else {
        panic!("initiate refused")
    };
    s.accept(response).unwrap();
    pump(false, &mut s, &mut c, &mut pk);
    // A confirmed request with an unknown service tag: the server answers with a rejectPDU.
    let bogus = [0xA0, 0x06, 0x02, 0x01, 0x07, 0xBF, 0x7F, 0x00];
    c.send_data(&bogus).unwrap();
    pump(true, &mut c, &mut s, &mut pk);
    let pdu = match s.poll_event() {
        Some(OsiEvent::Data { pdu, .. }) => pdu,
        other => panic!("expected data, got {other:?}"),
    };
    let answer = association
        .handle_pdu(&pdu)
        .expect("the server answers an invalid request");
    assert!(matches!(
        MmsPdu::decode(&answer, &Default::default()),
        Ok(MmsPdu::Reject(_))
    ));
    s.send_data(&answer).unwrap();
    pump(false, &mut s, &mut c, &mut pk);
    let (problems, summary) = decode("reject", &tpkts(&pk, TpktCheck::Lenient));
    // The request we made invalid on purpose is expected to be flagged; the answer must not be.
    let flagged: Vec<&str> = problems.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        flagged.len() <= 1,
        "tshark flags more than our deliberately invalid request:\n{problems}"
    );
    assert!(summary.contains("rejectPDU"), "{summary}");

    // An initiate-ErrorPDU in a rejecting AARE: propose a PDU size below the minimum.
    let err = MmsPdu::InitiateError(secmms_mms::ServiceError::new(
        secmms_mms::ErrorClass::Initiate(1),
    ))
    .encode();
    let mut c = Association::initiator(OsiConfig::default());
    let mut s = Association::responder(OsiConfig::server_default());
    let mut pk = Vec::new();
    c.connect(secmms_mms::client::initiate_request_pdu(&Default::default()))
        .unwrap();
    pump(true, &mut c, &mut s, &mut pk);
    pump(false, &mut s, &mut c, &mut pk);
    pump(true, &mut c, &mut s, &mut pk);
    s.reject(
        1,
        secmms_osi::acse::SourceDiagnostic::ServiceUser(1),
        Some(err),
    )
    .unwrap();
    while let Some(bytes) = s.poll_transmit() {
        pk.push((false, bytes));
    }
    let (problems, summary) = decode("refuse", &tpkts(&pk, TpktCheck::Lenient));
    assert!(
        problems.trim().is_empty(),
        "tshark reports problems:\n{problems}"
    );
    assert!(summary.contains("initiate-ErrorPDU"), "{summary}");
}
