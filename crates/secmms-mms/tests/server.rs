//! The server over the demo model: initiate, browse, read, write, data sets, errors.

use secmms_mms::client::{self, ClientProposal, ObjectReference};
use secmms_mms::error::error_code;
use secmms_mms::model::{Model, SharedModel};
use secmms_mms::server::{InitiateOutcome, ServerConfig, Vmd};
use secmms_mms::*;

fn setup() -> (Vmd, ServerSession) {
    let server = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let InitiateOutcome::Accepted {
        response,
        association,
    } = server.accept_initiate(&client::initiate_request_pdu(&ClientProposal::default()))
    else {
        panic!("initiate refused")
    };
    let neg = client::parse_initiate_response(&response, &ClientProposal::default()).unwrap();
    assert_eq!(neg.max_pdu_size, 65000);
    assert_eq!(neg.nesting_level, 10);
    (server, association)
}

fn call(
    a: &ServerSession,
    pdu: Vec<u8>,
    invoke: u32,
) -> Result<ConfirmedServiceResponse, client::ClientError> {
    let reply = a.handle_pdu(&pdu).expect("an answer");
    client::parse_confirmed(&reply, invoke, a.negotiated())
}

fn read1(a: &ServerSession, domain: &str, item: &str) -> AccessResult {
    let r = call(
        a,
        client::read_names_request_pdu(1, &[ObjectName::domain(domain, item)]),
        1,
    )
    .unwrap();
    client::read_results(r).unwrap().remove(0)
}

#[test]
fn initiate_negotiates_minimum() {
    let server = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let p = ClientProposal {
        max_pdu_size: 100_000,
        max_serv_outstanding_calling: 50,
        max_serv_outstanding_called: 1,
        nesting_level: 4,
    };
    let InitiateOutcome::Accepted {
        response,
        association,
    } = server.accept_initiate(&client::initiate_request_pdu(&p))
    else {
        panic!()
    };
    let n = association.negotiated();
    assert_eq!(
        (
            n.max_pdu_size,
            n.max_serv_outstanding_calling,
            n.max_serv_outstanding_called,
            n.nesting_level
        ),
        (65000, 5, 1, 4)
    );
    let MmsPdu::InitiateResponse(r) = MmsPdu::decode(&response, &MmsLimits::default()).unwrap()
    else {
        panic!()
    };
    assert_eq!(r.parameter_cbb.bytes(), &[0xF1, 0x00]);
    // Too small a PDU size is refused with initiate/max-segment-insufficient.
    let p = ClientProposal {
        max_pdu_size: 100,
        ..ClientProposal::default()
    };
    let InitiateOutcome::Refused { response, error } =
        server.accept_initiate(&client::initiate_request_pdu(&p))
    else {
        panic!()
    };
    assert_eq!(
        error.class,
        ErrorClass::Initiate(error_code::INITIATE_MAX_SEGMENT_INSUFFICIENT)
    );
    assert_eq!(response, vec![0xAA, 0x05, 0xA0, 0x03, 0x88, 0x01, 0x02]);
    assert!(matches!(
        server.accept_initiate(&[0x8b, 0x00]),
        InitiateOutcome::Invalid(_)
    ));
    assert!(matches!(
        server.accept_initiate(&[0xa8, 0x80]),
        InitiateOutcome::Invalid(_)
    ));
}

#[test]
fn identify_status_and_browse() {
    let (_, a) = setup();
    let ConfirmedServiceResponse::Identify(i) =
        call(&a, client::identify_request_pdu(3), 3).unwrap()
    else {
        panic!()
    };
    assert_eq!(i.vendor, "secmms");
    let ConfirmedServiceResponse::GetNameList(g) = call(
        &a,
        client::get_name_list_request_pdu(4, ObjectClass::DOMAIN, ObjectScope::Vmd, None),
        4,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(g.identifiers, vec!["DEMOLD0"]);
    assert!(!g.more_follows);
    let ConfirmedServiceResponse::GetNameList(g) = call(
        &a,
        client::get_name_list_request_pdu(
            5,
            ObjectClass::NAMED_VARIABLE,
            ObjectScope::Domain("DEMOLD0".into()),
            None,
        ),
        5,
    )
    .unwrap() else {
        panic!()
    };
    assert!(!g.more_follows);
    assert!(g.identifiers.contains(&"GGIO1$MX$AnIn1$mag$f".to_owned()));
    assert!(g.identifiers.contains(&"LLN0$RP$urcb01".to_owned()));
    let ConfirmedServiceResponse::GetNameList(g) = call(
        &a,
        client::get_name_list_request_pdu(
            6,
            ObjectClass::NAMED_VARIABLE_LIST,
            ObjectScope::Domain("DEMOLD0".into()),
            None,
        ),
        6,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(g.identifiers, vec!["LLN0$DS1"]);
    // Unknown domain.
    let e = call(
        &a,
        client::get_name_list_request_pdu(
            7,
            ObjectClass::NAMED_VARIABLE,
            ObjectScope::Domain("NOPE".into()),
            None,
        ),
        7,
    )
    .unwrap_err();
    assert!(matches!(
        e,
        client::ClientError::Service { invoke_id: 7, .. }
    ));
    let r = a.handle(ConfirmedServiceRequest::Status(false)).unwrap();
    assert!(matches!(r, ConfirmedServiceResponse::Status(_)));
}

#[test]
fn get_name_list_pages_fit_the_pdu_size() {
    let server = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let p = ClientProposal {
        max_pdu_size: 300,
        ..ClientProposal::default()
    };
    let InitiateOutcome::Accepted { association: a, .. } =
        server.accept_initiate(&client::initiate_request_pdu(&p))
    else {
        panic!()
    };
    let all = Model::default_demo()
        .domain("DEMOLD0")
        .unwrap()
        .variable_names();
    let mut got = Vec::new();
    let mut after = None;
    for invoke in 0..100 {
        let pdu = client::get_name_list_request_pdu(
            invoke,
            ObjectClass::NAMED_VARIABLE,
            ObjectScope::Domain("DEMOLD0".into()),
            after.clone(),
        );
        let reply = a.handle_pdu(&pdu).unwrap();
        assert!(reply.len() <= 300, "page of {} octets", reply.len());
        let ConfirmedServiceResponse::GetNameList(g) =
            client::parse_confirmed(&reply, invoke, a.negotiated()).unwrap()
        else {
            panic!()
        };
        after = g.identifiers.last().cloned();
        got.extend(g.identifiers);
        if !g.more_follows {
            break;
        }
    }
    assert_eq!(got, all);
}

#[test]
fn read_values_and_errors() {
    let (_, a) = setup();
    assert_eq!(
        read1(&a, "DEMOLD0", "LLN0$DC$NamPlt$vendor"),
        AccessResult::Success(Data::VisibleString("secmms".into()))
    );
    assert_eq!(
        read1(&a, "DEMOLD0", "GGIO1$MX$AnIn1$mag$f"),
        AccessResult::Success(Data::float32(0.0))
    );
    assert_eq!(
        read1(&a, "DEMOLD0", "GGIO1$MX$AnIn9"),
        AccessResult::Failure(DataAccessError::ObjectNonExistent)
    );
    assert_eq!(
        read1(&a, "NODOM", "GGIO1"),
        AccessResult::Failure(DataAccessError::ObjectNonExistent)
    );
    // Whole LN: structure of FC structures.
    let AccessResult::Success(Data::Structure(fcs)) = read1(&a, "DEMOLD0", "GGIO1") else {
        panic!()
    };
    assert_eq!(fcs.len(), 4);
    // Several variables at once, one missing.
    let r = call(
        &a,
        client::read_names_request_pdu(
            2,
            &[
                ObjectName::domain("DEMOLD0", "GGIO1$ST$Ind1$stVal"),
                ObjectName::domain("DEMOLD0", "x"),
            ],
        ),
        2,
    )
    .unwrap();
    let res = client::read_results(r).unwrap();
    assert_eq!(res[0], AccessResult::Success(Data::Boolean(false)));
    assert_eq!(
        res[1],
        AccessResult::Failure(DataAccessError::ObjectNonExistent)
    );
    // Data set read.
    let r = call(
        &a,
        client::read_list_request_pdu(3, ObjectName::domain("DEMOLD0", "LLN0$DS1")),
        3,
    )
    .unwrap();
    assert_eq!(client::read_results(r).unwrap().len(), 2);
    // Read of a missing list: confirmed-Error.
    assert!(call(
        &a,
        client::read_list_request_pdu(4, ObjectName::domain("DEMOLD0", "LLN0$NO")),
        4
    )
    .is_err());
}

#[test]
fn type_descriptions() {
    let (_, a) = setup();
    let t = client::type_of(
        call(
            &a,
            client::get_variable_access_attributes_request_pdu(
                1,
                ObjectName::domain("DEMOLD0", "GGIO1$MX$AnIn1$mag"),
            ),
            1,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        t.to_owned(),
        TypeDescription::Structure {
            packed: false,
            components: vec![StructComponent {
                name: Some("f".into()),
                ty: TypeDescription::FLOAT32
            }]
        }
    );
    let e = call(
        &a,
        client::get_variable_access_attributes_request_pdu(
            2,
            ObjectName::domain("DEMOLD0", "nope"),
        ),
        2,
    )
    .unwrap_err();
    assert_eq!(
        e,
        client::ClientError::Service {
            invoke_id: 2,
            error: ServiceError::object_undefined()
        }
    );
}

#[test]
fn writes_respect_fc_and_types() {
    let (server, a) = setup();
    let w = |item: &str, d: Data| {
        let r = call(
            &a,
            client::write_request_pdu(9, ObjectName::domain("DEMOLD0", item), d),
            9,
        )
        .unwrap();
        let ConfirmedServiceResponse::Write(v) = r else {
            panic!()
        };
        v[0]
    };
    // MX is read-only.
    assert_eq!(
        w("GGIO1$MX$AnIn1$mag$f", Data::float32(1.0)),
        WriteResult::Failure(DataAccessError::ObjectAccessDenied)
    );
    // DC is writable; a wrong type is type-inconsistent; a too long string too.
    assert_eq!(
        w("LLN0$DC$NamPlt$vendor", Data::VisibleString("acme".into())),
        WriteResult::Success
    );
    assert_eq!(
        read1(&a, "DEMOLD0", "LLN0$DC$NamPlt$vendor"),
        AccessResult::Success(Data::VisibleString("acme".into()))
    );
    assert_eq!(
        w("LLN0$DC$NamPlt$vendor", Data::Integer(3)),
        WriteResult::Failure(DataAccessError::TypeInconsistent)
    );
    assert_eq!(
        w(
            "LLN0$DC$NamPlt$vendor",
            Data::VisibleString("x".repeat(256))
        ),
        WriteResult::Failure(DataAccessError::TypeInconsistent)
    );
    assert_eq!(
        w("LLN0$DC$Nope", Data::Boolean(true)),
        WriteResult::Failure(DataAccessError::ObjectNonExistent)
    );
    // RCB attributes (RP) are writable.
    assert_eq!(
        w("LLN0$RP$urcb01$RptEna", Data::Boolean(true)),
        WriteResult::Success
    );
    // Direct control: Oper copies ctlVal to stVal.
    let oper = read1(&a, "DEMOLD0", "GGIO1$CO$SPCSO1$Oper");
    let AccessResult::Success(Data::Structure(mut f)) = oper else {
        panic!()
    };
    f[0] = Data::Boolean(true);
    assert_eq!(
        w("GGIO1$CO$SPCSO1$Oper", Data::Structure(f)),
        WriteResult::Success
    );
    assert_eq!(
        read1(&a, "DEMOLD0", "GGIO1$ST$SPCSO1$stVal"),
        AccessResult::Success(Data::Boolean(true))
    );
    // Application-side updates are visible to clients.
    assert!(server
        .model()
        .set("DEMOLD0", "GGIO1$MX$AnIn1$mag$f", Data::float32(42.5)));
    assert!(!server
        .model()
        .set("DEMOLD0", "GGIO1$MX$AnIn1$mag$f", Data::Boolean(true)));
    assert_eq!(
        read1(&a, "DEMOLD0", "GGIO1$MX$AnIn1$mag$f"),
        AccessResult::Success(Data::float32(42.5))
    );
}

#[test]
fn named_variable_lists() {
    let (server, a) = setup();
    let members = [
        ObjectName::domain("DEMOLD0", "GGIO1$ST$Ind1$stVal"),
        ObjectName::domain("DEMOLD0", "GGIO1$MX$AnIn1$mag$f"),
    ];
    let name = ObjectName::domain("DEMOLD0", "LLN0$probeDS");
    assert_eq!(
        call(
            &a,
            client::define_list_request_pdu(1, name.clone(), &members),
            1
        )
        .unwrap(),
        ConfirmedServiceResponse::DefineNamedVariableList
    );
    // Twice: object-exists.
    assert!(call(
        &a,
        client::define_list_request_pdu(2, name.clone(), &members),
        2
    )
    .is_err());
    // Undefined member.
    assert!(call(
        &a,
        client::define_list_request_pdu(
            3,
            ObjectName::domain("DEMOLD0", "LLN0$x"),
            &[ObjectName::domain("DEMOLD0", "zz")]
        ),
        3
    )
    .is_err());
    let ConfirmedServiceResponse::GetNamedVariableListAttributes(g) = call(
        &a,
        client::get_list_attributes_request_pdu(4, name.clone()),
        4,
    )
    .unwrap() else {
        panic!()
    };
    assert!(g.mms_deletable);
    assert_eq!(g.variables.len(), 2);
    let r = call(&a, client::read_list_request_pdu(5, name.clone()), 5).unwrap();
    assert_eq!(client::read_results(r).unwrap().len(), 2);
    // aa-specific list, visible only to this association.
    let aa = ObjectName::AaSpecific("@tmp".into());
    assert!(call(
        &a,
        client::define_list_request_pdu(6, aa.clone(), &members),
        6
    )
    .is_ok());
    assert!(call(&a, client::read_list_request_pdu(7, aa.clone()), 7).is_ok());
    let InitiateOutcome::Accepted { association: b, .. } =
        server.accept_initiate(&client::initiate_request_pdu(&ClientProposal::default()))
    else {
        panic!()
    };
    assert!(call(&b, client::read_list_request_pdu(7, aa.clone()), 7).is_err());
    // The configured data set cannot be deleted; the defined one can.
    let r = call(
        &a,
        client::delete_list_request_pdu(
            8,
            &[
                name.clone(),
                ObjectName::domain("DEMOLD0", "LLN0$DS1"),
                aa.clone(),
            ],
        ),
        8,
    )
    .unwrap();
    assert_eq!(
        r,
        ConfirmedServiceResponse::DeleteNamedVariableList {
            matched: 3,
            deleted: 2
        }
    );
    assert!(call(&a, client::get_list_attributes_request_pdu(9, name), 9).is_err());
}

#[test]
fn malformed_and_unsupported_pdus() {
    let (_, a) = setup();
    // fileDirectory: reject unrecognized-service with the invokeID (as libiec61850 does).
    assert_eq!(
        a.handle_pdu(&[0xA0, 0x06, 0x02, 0x01, 0x0C, 0xBF, 0x4D, 0x00])
            .unwrap(),
        vec![0xA4, 0x06, 0x80, 0x01, 0x0C, 0x81, 0x01, 0x01]
    );
    // Garbage: pdu-error.
    let r = a.handle_pdu(&[0x30, 0x00]).unwrap();
    assert_eq!(r, vec![0xA4, 0x03, 0x85, 0x01, 0x00]);
    let r = a.handle_pdu(&[0xA0, 0x03, 0x02]).unwrap();
    assert_eq!(r, vec![0xA4, 0x03, 0x85, 0x01, 0x01]);
    // A read with bad content: invalid-argument with the invoke ID.
    let r = a
        .handle_pdu(&[0xA0, 0x07, 0x02, 0x01, 0x05, 0xA4, 0x02, 0x05, 0x00])
        .unwrap();
    assert_eq!(r, vec![0xA4, 0x06, 0x80, 0x01, 0x05, 0x81, 0x01, 0x04]);
    // Conclude.
    assert!(!a.is_concluded());
    assert_eq!(a.handle_pdu(&[0x8B, 0x00]).unwrap(), vec![0x8C, 0x00]);
    assert!(a.is_concluded());
    // No answer to a reject.
    assert_eq!(a.handle_pdu(&[0xA4, 0x03, 0x85, 0x01, 0x01]), None);
}

#[test]
fn nesting_beyond_negotiated_is_rejected() {
    let server = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let p = ClientProposal {
        nesting_level: 2,
        ..ClientProposal::default()
    };
    let InitiateOutcome::Accepted { association: a, .. } =
        server.accept_initiate(&client::initiate_request_pdu(&p))
    else {
        panic!()
    };
    let deep = Data::Structure(vec![Data::Structure(vec![Data::Structure(vec![
        Data::Boolean(true),
    ])])]);
    let r = a
        .handle_pdu(&client::write_request_pdu(
            3,
            ObjectName::domain("DEMOLD0", "x"),
            deep,
        ))
        .unwrap();
    // max-recursion-exceeded
    assert_eq!(r, vec![0xA4, 0x06, 0x80, 0x01, 0x03, 0x81, 0x01, 0x08]);
}

#[test]
fn responses_larger_than_the_pdu_size_become_errors() {
    let server = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let p = ClientProposal {
        max_pdu_size: 256,
        ..ClientProposal::default()
    };
    let InitiateOutcome::Accepted { association: a, .. } =
        server.accept_initiate(&client::initiate_request_pdu(&p))
    else {
        panic!()
    };
    assert!(server.model().set(
        "DEMOLD0",
        "LLN0$DC$NamPlt$swRev",
        Data::VisibleString("v".repeat(200))
    ));
    let e = call(
        &a,
        client::read_names_request_pdu(1, &[ObjectName::domain("DEMOLD0", "LLN0")]),
        1,
    )
    .unwrap_err();
    assert_eq!(
        e,
        client::ClientError::Service {
            invoke_id: 1,
            error: ServiceError::pdu_size()
        }
    );
}

#[test]
fn references_resolve_against_a_browse() {
    let (_, a) = setup();
    let ConfirmedServiceResponse::GetNameList(g) = call(
        &a,
        client::get_name_list_request_pdu(
            1,
            ObjectClass::NAMED_VARIABLE,
            ObjectScope::Domain("DEMOLD0".into()),
            None,
        ),
        1,
    )
    .unwrap() else {
        panic!()
    };
    let r = ObjectReference::parse("DEMOLD0/GGIO1.AnIn1.mag.f")
        .unwrap()
        .resolve_fc(&g.identifiers)
        .unwrap();
    let res =
        client::read_results(call(&a, client::read_request_pdu(2, &[r]), 2).unwrap()).unwrap();
    assert_eq!(client::render(&res[0]), "0");
}

#[test]
fn concurrent_associations_share_the_model() {
    let (server, _) = setup();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = server.clone();
            std::thread::spawn(move || {
                let InitiateOutcome::Accepted { association: a, .. } =
                    s.accept_initiate(&client::initiate_request_pdu(&ClientProposal::default()))
                else {
                    panic!()
                };
                for k in 0..50u32 {
                    let v = Data::VisibleString(format!("t{i}-{k}"));
                    let r = a
                        .handle_pdu(&client::write_request_pdu(
                            k,
                            ObjectName::domain("DEMOLD0", "LLN0$DC$NamPlt$swRev"),
                            v,
                        ))
                        .unwrap();
                    assert_eq!(r[0], 0xA1);
                    let _ = a
                        .handle_pdu(&client::read_names_request_pdu(
                            k,
                            &[ObjectName::domain("DEMOLD0", "LLN0")],
                        ))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let v = server
        .model()
        .get("DEMOLD0", "LLN0$DC$NamPlt$swRev")
        .unwrap();
    assert!(matches!(v, Data::VisibleString(s) if s.ends_with("-49")));
}

#[test]
fn alternate_access_read_and_write() {
    let (_, a) = setup();
    let mut spec = VariableSpec::named(ObjectName::domain("DEMOLD0", "GGIO1$CO$SPCSO1$Oper"));
    // component "ctlNum"
    spec.alternate_access = Some(vec![0x81, 0x06, b'c', b't', b'l', b'N', b'u', b'm']);
    let w = MmsPdu::ConfirmedRequest(ConfirmedRequest {
        invoke_id: 1,
        service: ConfirmedServiceRequest::Write(WriteRequest {
            spec: VariableAccessSpecification::ListOfVariable(vec![spec.clone()]),
            data: vec![Data::Unsigned(7)],
        }),
    })
    .encode();
    let r = call(&a, w, 1).unwrap();
    assert_eq!(
        r,
        ConfirmedServiceResponse::Write(vec![WriteResult::Success])
    );
    let rd = MmsPdu::ConfirmedRequest(ConfirmedRequest {
        invoke_id: 2,
        service: ConfirmedServiceRequest::Read(ReadRequest {
            specification_with_result: false,
            spec: VariableAccessSpecification::ListOfVariable(vec![spec]),
        }),
    })
    .encode();
    let res = client::read_results(call(&a, rd, 2).unwrap()).unwrap();
    assert_eq!(res, vec![AccessResult::Success(Data::Unsigned(7))]);
    assert_eq!(
        read1(&a, "DEMOLD0", "GGIO1$CO$SPCSO1$Oper$ctlNum"),
        AccessResult::Success(Data::Unsigned(7))
    );
}
