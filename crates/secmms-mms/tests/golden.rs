//! Golden bytes: MMS PDUs from the capture `/work/shared/vectors/open61850-client-to-iec61850-server.pcapng`
//! (frames 8–13: an open61850 client and the PyPI `iec61850` server, extracted with
//! `tshark -r … -Y 'frame.number==N' -T fields -e tcp.payload`, MMS part after the
//! presentation header) and from the reference `08-osi-mms-reference.md` §7 (libiec61850
//! captures, marked ✔ there).

use secmms_mms::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(s).unwrap()
}

fn round_trip(h: &str) -> MmsPdu {
    let b = hex(h);
    let pdu = MmsPdu::decode(&b, &MmsLimits::default()).unwrap();
    assert_eq!(pdu.encode(), b, "re-encoding of {h}");
    pdu
}

#[test]
fn capture_initiate_request() {
    // Frame 8 (open61850 client).
    let pdu = round_trip(
        "a826800300fde881010582010583010aa416800101810305f100820c03ee1c00000408000079ef18",
    );
    let MmsPdu::InitiateRequest(p) = pdu else {
        panic!()
    };
    assert_eq!(p.local_detail, Some(65000));
    assert_eq!(p.max_serv_outstanding_calling, 5);
    assert_eq!(p.max_serv_outstanding_called, 5);
    assert_eq!(p.data_structure_nesting_level, Some(10));
    assert_eq!(p.version, 1);
    assert_eq!(p.parameter_cbb.len(), 11);
    assert_eq!(p.services_supported.len(), 85);
    // status, getNameList, identify, read, write, GVAA, defineNVL, getNVLA, deleteNVL
    for bit in [0, 1, 2, 4, 5, 6, 11, 12, 13, 83, 84] {
        assert!(p.services_supported.get(bit), "bit {bit}");
    }
    assert!(!p.services_supported.get(3));
}

#[test]
fn capture_initiate_response() {
    // Frame 9 (iec61850-rust server).
    let pdu = round_trip(
        "a926800300fde881010582010583010aa416800101810305f100820c036e1c000000000000400110",
    );
    let MmsPdu::InitiateResponse(p) = pdu else {
        panic!()
    };
    assert_eq!(p.local_detail, Some(65000));
    assert!(!p.services_supported.get(0)); // no status
    assert!(p.services_supported.get(1));
}

#[test]
fn capture_read_request_and_responses() {
    // Frames 10/11: read LLN0$DC$NamPlt$vendor -> visible-string "secmms".
    let pdu = round_trip(
        "a02f020101a42aa128a0263024a022a1201a0744454d4f4c44301a154c4c4e30244443244e616d506c742476656e646f72",
    );
    let MmsPdu::ConfirmedRequest(ConfirmedRequest {
        invoke_id: 1,
        service: ConfirmedServiceRequest::Read(r),
    }) = pdu
    else {
        panic!()
    };
    assert!(!r.specification_with_result);
    assert_eq!(
        r.spec,
        VariableAccessSpecification::single(ObjectName::domain("DEMOLD0", "LLN0$DC$NamPlt$vendor"))
    );
    let pdu = round_trip("a10f020101a40aa1088a067365636d6d73");
    assert_eq!(
        pdu,
        MmsPdu::ConfirmedResponse(ConfirmedResponse {
            invoke_id: 1,
            service: ConfirmedServiceResponse::Read(ReadResponse {
                spec: None,
                results: vec![AccessResult::Success(Data::VisibleString("secmms".into()))],
            }),
        })
    );
    // Frames 12/13: read GGIO1$MX$AnIn1$mag$f -> floating-point 42.5.
    round_trip("a02e020102a429a127a0253023a021a11f1a0744454d4f4c44301a144747494f31244d5824416e496e31246d61672466");
    let pdu = round_trip("a10e020102a409a107870508422a0000");
    let MmsPdu::ConfirmedResponse(ConfirmedResponse {
        service: ConfirmedServiceResponse::Read(r),
        ..
    }) = pdu
    else {
        panic!()
    };
    assert_eq!(r.results, vec![AccessResult::Success(Data::float32(42.5))]);
}

#[test]
fn reference_pdus() {
    // §7.6 table (libiec61850).
    round_trip("a00602010180 0100");
    let s = round_trip("a10b020101a006800100810100");
    assert!(matches!(
        s,
        MmsPdu::ConfirmedResponse(ConfirmedResponse {
            service: ConfirmedServiceResponse::Status(StatusResponse {
                logical: 0,
                physical: 0,
                ..
            }),
            ..
        })
    ));
    round_trip("a0050201028200");
    // identify response: "MZ", "basic io", "1.4.2"
    let id = round_trip("a11a020102a215 80024d5a 81086261736963 20696f 8205312e342e32");
    let MmsPdu::ConfirmedResponse(ConfirmedResponse {
        service: ConfirmedServiceResponse::Identify(i),
        ..
    }) = id
    else {
        panic!()
    };
    assert_eq!(
        (i.vendor.as_str(), i.model.as_str(), i.revision.as_str()),
        ("MZ", "basic io", "1.4.2")
    );
    // getNameList domains
    round_trip("a00e020103a109a003800109a1028000");
    let gnl = round_trip("a11d020103a118a0131a1173696d706c65494f47656e65726963494f810100");
    assert!(matches!(
        gnl,
        MmsPdu::ConfirmedResponse(ConfirmedResponse {
            service: ConfirmedServiceResponse::GetNameList(GetNameListResponse {
                more_follows: false,
                ..
            }),
            ..
        })
    ));
    // getNameList variables of a domain (iec61850-rust)
    round_trip("a01f020102a11aa003800100a1138111 73696d706c65494f47656e65726963494f");
    // GVAA response: structure { f: floating-point(32, 8) }
    let gvaa = round_trip("a11d020104 a618800100a213a211a10f300d800166a108a706020120020108");
    let MmsPdu::ConfirmedResponse(ConfirmedResponse {
        service: ConfirmedServiceResponse::GetVariableAccessAttributes(g),
        ..
    }) = gvaa
    else {
        panic!()
    };
    assert_eq!(
        g.type_description,
        TypeDescription::Structure {
            packed: false,
            components: vec![StructComponent {
                name: Some("f".into()),
                ty: TypeDescription::FLOAT32
            }],
        }
    );
    // write failure object-access-denied; write success; defineNVL response
    round_trip("a108020106a503800103");
    round_trip("a107020107a5028100");
    round_trip("a1050201088b00");
    // deleteNVL response
    round_trip("a10b02010bad06800101810101");
    // reject: invoke 12, confirmed-request unrecognized-service
    let rj = round_trip("a406800 10c810101");
    assert_eq!(
        rj,
        MmsPdu::Reject(RejectPdu {
            original_invoke_id: Some(12),
            reason: RejectReason {
                pdu: RejectPduType::ConfirmedRequest,
                code: 1
            },
        })
    );
    // read of a missing variable: failure object-non-existent
    let miss = round_trip("a10a02010da405a103800 10a");
    let MmsPdu::ConfirmedResponse(ConfirmedResponse {
        service: ConfirmedServiceResponse::Read(r),
        ..
    }) = miss
    else {
        panic!()
    };
    assert_eq!(
        r.results,
        vec![AccessResult::Failure(DataAccessError::ObjectNonExistent)]
    );
    // conclude
    assert_eq!(round_trip("8b00"), MmsPdu::ConcludeRequest);
    assert_eq!(round_trip("8c00"), MmsPdu::ConcludeResponse);
    // confirmed-Error: definition/object-undefined and access/object-non-existent
    let e = round_trip("a20a800109a205a003820101");
    assert!(matches!(
        e,
        MmsPdu::ConfirmedError(ConfirmedError {
            invoke_id: 9,
            error: ServiceError {
                class: ErrorClass::Definition(1),
                ..
            },
            ..
        })
    ));
    round_trip("a20a800109a205a003870102");
    // initiate-Error initiate/other
    assert_eq!(
        round_trip("aa05a003880100"),
        MmsPdu::InitiateError(ServiceError::new(ErrorClass::Initiate(0)))
    );
    // The ICCP pair's initiate-Request (32000 octets, 20/20, nesting 4).
    round_trip("a82580027d00810114820114830104a416800101810305fb00820c036e1d000000000064000198");
    // Read NVL response with quality, utc-time and a float (libiec61850).
    let nvl = round_trip(
        "a135020 10aa430a12ea212830100840303 0000 9108 0000000000000000 a218a207870508 3f64262b 840303 0000 9108 6b061e6bf3333380",
    );
    let MmsPdu::ConfirmedResponse(ConfirmedResponse {
        service: ConfirmedServiceResponse::Read(r),
        ..
    }) = nvl
    else {
        panic!()
    };
    let AccessResult::Success(Data::Structure(v)) = &r.results[1] else {
        panic!()
    };
    assert_eq!(
        v[2],
        Data::UtcTime(UtcTime {
            seconds: 0x6b061e6b,
            fraction: 0xf33333,
            quality: 0x80
        })
    );
    // InformationReport of an IEC 61850 report (libiec61850), decodes; boolean 00 re-encodes.
    let ir = hex("a366a064a1058003525054a05b8a074576656e7473318403067880860101 8c06050b30d83d34 8a1d73696d706c65494f47656e65726963494f2f4c4c4e30244576656e7473 860101 840204f0 830100830100830100830100 840202088402020884020208840202 08");
    let pdu = MmsPdu::decode(&ir, &MmsLimits::default()).unwrap();
    let MmsPdu::InformationReport(rep) = &pdu else {
        panic!()
    };
    assert_eq!(
        rep.spec,
        VariableAccessSpecification::VariableListName(ObjectName::VmdSpecific("RPT".into()))
    );
    assert_eq!(rep.results.len(), 15);
    assert_eq!(pdu.encode(), ir);
}

#[test]
fn boolean_true_forms_are_both_accepted() {
    for b in ["a10a020105a405a103830101", "a10a020105a405a1038301ff"] {
        let pdu = MmsPdu::decode(&hex(b), &MmsLimits::default()).unwrap();
        let MmsPdu::ConfirmedResponse(ConfirmedResponse {
            service: ConfirmedServiceResponse::Read(r),
            ..
        }) = pdu
        else {
            panic!()
        };
        assert_eq!(r.results, vec![AccessResult::Success(Data::Boolean(true))]);
    }
    assert_eq!(
        Data::Boolean(true).to_ber(),
        vec![0x83, 0x01, data::BOOLEAN_TRUE_OCTET]
    );
}

#[test]
fn invoke_ids_above_127() {
    let p = MmsPdu::ConfirmedRequest(ConfirmedRequest {
        invoke_id: 128,
        service: ConfirmedServiceRequest::Identify,
    });
    assert_eq!(p.encode(), hex("a006020200808200"));
    let p = MmsPdu::ConfirmedRequest(ConfirmedRequest {
        invoke_id: 4431,
        service: ConfirmedServiceRequest::Identify,
    });
    assert_eq!(p.encode(), hex("a0060202114f8200"));
}
