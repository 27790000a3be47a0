//! The sans-IO MMS client session against the sans-IO server, with no runtime: initiate,
//! pipelined requests up to the negotiated limit, answers matched by invokeID, errors and
//! rejects, reports, unmatched answers, conclude, and a lost association.

use secmms_mms::client::{ClientError, ClientProposal};
use secmms_mms::error::{ErrorClass, ServiceError};
use secmms_mms::model::{Model, SharedModel};
use secmms_mms::name::ObjectName;
use secmms_mms::pdu::{
    ConfirmedError, ConfirmedResponse, ConfirmedServiceRequest, ConfirmedServiceResponse,
    InformationReport, VariableAccessSpecification,
};
use secmms_mms::server::{InitiateOutcome, ServerConfig, ServerSession, Vmd};
use secmms_mms::session::{ClientEvent, ClientSession, SessionError, SessionState};
use secmms_mms::MmsPdu;

fn server() -> Vmd {
    Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    )
}

fn connect(outstanding: u16) -> (ClientSession<u32>, ServerSession) {
    let proposal = ClientProposal {
        max_serv_outstanding_calling: outstanding,
        ..ClientProposal::default()
    };
    let mut s = ClientSession::new(proposal);
    assert_eq!(s.state(), SessionState::Initiating);
    let InitiateOutcome::Accepted {
        response,
        association,
    } = server().accept_initiate(&s.initiate_request())
    else {
        panic!("initiate refused")
    };
    let n = s.handle_initiate_response(&response).unwrap();
    assert_eq!(n.max_serv_outstanding_calling, outstanding);
    assert_eq!(s.state(), SessionState::Established);
    assert_eq!(s.max_outstanding(), usize::from(outstanding));
    (s, association)
}

fn identity() -> secmms_mms::pdu::IdentifyResponse {
    secmms_mms::pdu::IdentifyResponse {
        vendor: "v".into(),
        model: "m".into(),
        revision: "1".into(),
        abstract_syntaxes: None,
    }
}

fn identify() -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::Identify
}

#[test]
fn pipelined_requests_up_to_the_negotiated_limit_are_answered_by_invoke_id() {
    let (mut s, a) = connect(3);
    let mut sent = Vec::new();
    for token in [10, 11, 12] {
        let (id, pdu) = s.request(identify(), token).unwrap();
        sent.push((id, pdu));
    }
    assert_eq!(s.outstanding(), 3);
    // The fourth waits for an answer: the token comes back untouched.
    let (err, token) = s.request(identify(), 13).unwrap_err();
    assert_eq!(err, SessionError::TooManyOutstanding(3));
    assert_eq!(token, 13);
    // Distinct invokeIDs, never 0.
    let mut ids: Vec<u32> = sent.iter().map(|(i, _)| *i).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&0));
    // Answers arrive out of order; each brings back its own token.
    for (k, (id, pdu)) in sent.iter().enumerate().rev() {
        let answer = a.handle_pdu(pdu).unwrap();
        match s.handle_pdu(&answer) {
            ClientEvent::Answer {
                token,
                invoke_id,
                result,
            } => {
                assert_eq!(invoke_id, *id);
                assert_eq!(token, 10 + k as u32);
                assert!(matches!(result, Ok(ConfirmedServiceResponse::Identify(_))));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(s.outstanding(), 0);
    assert!(s.request(identify(), 14).is_ok());
}

#[test]
fn errors_rejects_reports_and_strays_are_told_apart() {
    let (mut s, _a) = connect(5);
    let (id, _) = s.request(identify(), 1).unwrap();
    let error = ServiceError {
        class: ErrorClass::Access(2),
        additional_code: None,
        additional_description: None,
    };
    let pdu = MmsPdu::ConfirmedError(ConfirmedError {
        invoke_id: id,
        modifier_position: None,
        error: error.clone(),
    })
    .encode();
    match s.handle_pdu(&pdu) {
        ClientEvent::Answer {
            token: 1,
            result: Err(ClientError::Service { error: e, .. }),
            ..
        } => assert_eq!(e, error),
        other => panic!("{other:?}"),
    }
    // The same answer again names nothing outstanding.
    assert!(matches!(
        s.handle_pdu(&pdu),
        ClientEvent::Unmatched { invoke_id } if invoke_id == id
    ));
    // A confirmed response for an invokeID never used.
    let stray = MmsPdu::ConfirmedResponse(ConfirmedResponse {
        invoke_id: 4242,
        service: ConfirmedServiceResponse::Identify(identity()),
    })
    .encode();
    assert!(matches!(
        s.handle_pdu(&stray),
        ClientEvent::Unmatched { invoke_id: 4242 }
    ));
    // A report arrives unasked.
    let report = MmsPdu::InformationReport(InformationReport {
        spec: VariableAccessSpecification::VariableListName(ObjectName::VmdSpecific("RPT".into())),
        results: Vec::new(),
    })
    .encode();
    assert!(matches!(s.handle_pdu(&report), ClientEvent::Report(_)));
    // Garbage is reported, not fatal.
    assert!(matches!(
        s.handle_pdu(&[0xff, 0x00]),
        ClientEvent::Unexpected(_)
    ));
    // A conclude answer nobody asked for.
    assert!(matches!(
        s.handle_pdu(&MmsPdu::ConcludeResponse.encode()),
        ClientEvent::Unexpected(_)
    ));
}

#[test]
fn conclude_waits_for_outstanding_answers() {
    let (mut s, a) = connect(2);
    let (_, pdu) = s.request(identify(), 7).unwrap();
    assert_eq!(s.conclude(), Err(SessionError::Outstanding(1)));
    let answer = a.handle_pdu(&pdu).unwrap();
    assert!(matches!(
        s.handle_pdu(&answer),
        ClientEvent::Answer { token: 7, .. }
    ));
    let conclude = s.conclude().unwrap();
    assert_eq!(s.state(), SessionState::Concluding);
    // No new requests once concluding.
    assert!(matches!(
        s.request(identify(), 8),
        Err((SessionError::State(SessionState::Concluding), 8))
    ));
    let rsp = a.handle_pdu(&conclude).unwrap();
    assert!(matches!(s.handle_pdu(&rsp), ClientEvent::Concluded));
    assert_eq!(s.state(), SessionState::Concluded);
    assert!(a.is_concluded());
}

#[test]
fn a_lost_association_fails_every_outstanding_request() {
    let (mut s, _a) = connect(4);
    for t in 0..4 {
        s.request(identify(), t).unwrap();
    }
    let mut failed = s.fail_all();
    failed.sort_unstable();
    assert_eq!(failed, vec![0, 1, 2, 3]);
    assert_eq!(s.state(), SessionState::Failed);
    assert!(s.request(identify(), 9).is_err());
}

#[test]
fn refused_initiate_fails_the_session() {
    let mut s: ClientSession<()> = ClientSession::new(ClientProposal::default());
    let refusal = MmsPdu::InitiateError(ServiceError {
        class: ErrorClass::Initiate(1),
        additional_code: None,
        additional_description: None,
    })
    .encode();
    assert!(matches!(
        s.handle_initiate_response(&refusal),
        Err(ClientError::Refused(_))
    ));
    assert_eq!(s.state(), SessionState::Failed);
    assert!(s.request(identify(), ()).is_err());
}

/// Unsolicited PDUs out (the server side of the session): an InformationReport reaches the
/// client session as a report; it is refused to a client that did not announce the service,
/// when larger than the negotiated PDU size, and after conclude.
#[test]
fn information_reports_go_out_only_where_they_may() {
    use secmms_mms::data::{AccessResult, Data};
    use secmms_mms::server::UnsolicitedError;
    let report = |n: usize| InformationReport {
        spec: VariableAccessSpecification::VariableListName(ObjectName::DomainSpecific {
            domain: "DEMOLD0".into(),
            item: "LLN0$dataset".into(),
        }),
        results: vec![AccessResult::Success(Data::VisibleString("x".repeat(n)))],
    };
    let (mut s, a) = connect(2);
    let pdu = a.information_report(report(8)).unwrap();
    match s.handle_pdu(&pdu) {
        ClientEvent::Report(r) => assert_eq!(r, report(8)),
        other => panic!("{other:?}"),
    }
    let max = a.negotiated().max_pdu_size as usize;
    assert!(matches!(
        a.information_report(report(max)),
        Err(UnsolicitedError::TooLarge { .. })
    ));
    let conclude = s.conclude().unwrap();
    a.handle_pdu(&conclude).unwrap();
    assert_eq!(
        a.information_report(report(8)),
        Err(UnsolicitedError::Concluded)
    );

    // A client whose ServiceSupportOptions lack informationReport (bit 79).
    let mut init = secmms_mms::client::initiate_request(&ClientProposal::default());
    init.services_supported
        .set(secmms_mms::server::INFORMATION_REPORT_BIT, false);
    let InitiateOutcome::Accepted { association, .. } =
        server().accept_initiate(&MmsPdu::InitiateRequest(init).encode())
    else {
        panic!("refused")
    };
    assert_eq!(
        association.information_report(report(8)),
        Err(UnsolicitedError::NotSupportedByPeer)
    );
}

/// A live model: the application's `set` and a client's Write both reach the observers, with
/// their origin; a refused write reaches none. A report carries the values of the moment.
#[test]
fn model_changes_are_observed_and_reports_carry_current_values() {
    use secmms_mms::data::{AccessResult, Data};
    use secmms_mms::model::{Change, ChangeOrigin};
    use secmms_mms::server::{ReportContent, UnsolicitedError};
    use secmms_mms::FloatingPoint;
    use std::sync::{Arc, Mutex};

    let model = SharedModel::new(Model::default_demo());
    let seen: Arc<Mutex<Vec<Change>>> = Arc::default();
    let sink = seen.clone();
    model.observe(Arc::new(move |c: &Change| {
        sink.lock().unwrap().push(c.clone())
    }));
    let server = Vmd::new(model.clone(), ServerConfig::default());
    let mut s = ClientSession::new(ClientProposal::default());
    let InitiateOutcome::Accepted {
        response,
        association: a,
    } = server.accept_initiate(&s.initiate_request())
    else {
        panic!("refused")
    };
    s.handle_initiate_response(&response).unwrap();

    // The application feeds a live value.
    let (dom, mag) = ("DEMOLD0", "GGIO1$MX$AnIn1$mag$f");
    assert!(model.set(dom, mag, Data::FloatingPoint(FloatingPoint::from_f32(42.0))));
    assert!(!model.set(dom, mag, Data::Boolean(true)), "wrong type");
    assert!(!model.set(dom, "GGIO1$MX$Nothing", Data::Boolean(true)));
    // A client writes a description (DC is writable) and tries MX (read-only).
    let vendor = ObjectName::DomainSpecific {
        domain: dom.into(),
        item: "LLN0$DC$NamPlt$vendor".into(),
    };
    let text = Data::VisibleString("live".into());
    let (id, pdu) = s
        .request(secmms_mms::client::write(vendor.clone(), text.clone()), 1)
        .unwrap();
    let rsp = a.handle_pdu(&pdu).unwrap();
    assert!(
        matches!(s.handle_pdu(&rsp), ClientEvent::Answer { .. }),
        "{id}"
    );
    let mx = ObjectName::DomainSpecific {
        domain: dom.into(),
        item: mag.into(),
    };
    let (_, pdu) = s
        .request(
            secmms_mms::client::write(
                mx.clone(),
                Data::FloatingPoint(FloatingPoint::from_f32(0.0)),
            ),
            2,
        )
        .unwrap();
    a.handle_pdu(&pdu).unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            Change {
                domain: dom.into(),
                item: mag.into(),
                value: Data::FloatingPoint(FloatingPoint::from_f32(42.0)),
                origin: ChangeOrigin::Application,
            },
            Change {
                domain: dom.into(),
                item: "LLN0$DC$NamPlt$vendor".into(),
                value: text.clone(),
                origin: ChangeOrigin::Client,
            },
        ]
    );

    // The report reads the values of the moment; a missing variable is its access failure.
    let missing = ObjectName::DomainSpecific {
        domain: dom.into(),
        item: "GGIO1$MX$Nothing".into(),
    };
    let pdu = a
        .report(ReportContent::Variables(vec![mx, vendor, missing]))
        .unwrap();
    let ClientEvent::Report(r) = s.handle_pdu(&pdu) else {
        panic!("not a report")
    };
    assert_eq!(r.results.len(), 3);
    assert_eq!(
        r.results[0],
        AccessResult::Success(Data::FloatingPoint(FloatingPoint::from_f32(42.0)))
    );
    assert_eq!(r.results[1], AccessResult::Success(text));
    assert!(matches!(r.results[2], AccessResult::Failure(_)));
    // A list that does not exist cannot be reported.
    let nolist = ObjectName::DomainSpecific {
        domain: dom.into(),
        item: "LLN0$NoSuchDataSet".into(),
    };
    assert!(matches!(
        a.report(ReportContent::List(nolist)),
        Err(UnsolicitedError::Read(_))
    ));
}

/// The server side of the outstanding limit (`handle_queued_pdu`): past the negotiated
/// maxServOutstandingCalling answers not yet written, a confirmed request is rejected (max-serv-outstanding-exceeded)
/// and not executed; once the runtime reports its answers sent, requests are served again.
#[test]
fn the_server_rejects_requests_past_the_negotiated_outstanding_limit() {
    use secmms_mms::client::{request_pdu, write};
    use secmms_mms::data::Data;
    use secmms_mms::error::reject_code;
    use secmms_mms::error::RejectPduType;
    let (_, a) = connect(3);
    let vendor = ObjectName::DomainSpecific {
        domain: "DEMOLD0".into(),
        item: "LLN0$DC$NamPlt$vendor".into(),
    };
    let answers: Vec<MmsPdu> = (1..=5u32)
        .map(|i| {
            // Each request writes its own value, so an executed one would show in the model.
            let pdu = request_pdu(
                i,
                write(vendor.clone(), Data::VisibleString(format!("w{i}"))),
            );
            MmsPdu::decode(&a.handle_queued_pdu(&pdu).unwrap(), &Default::default()).unwrap()
        })
        .collect();
    for (i, ans) in answers.iter().enumerate() {
        match (i < 3, ans) {
            (true, MmsPdu::ConfirmedResponse(r)) => assert_eq!(r.invoke_id, i as u32 + 1),
            (false, MmsPdu::Reject(r)) => {
                assert_eq!(r.original_invoke_id, Some(i as u32 + 1));
                assert_eq!(r.reason.pdu, RejectPduType::ConfirmedRequest);
                assert_eq!(r.reason.code, reject_code::MAX_SERV_OUTSTANDING_EXCEEDED);
            }
            other => panic!("answer {i}: {other:?}"),
        }
    }
    // The rejected writes were not executed: the third one is the last value.
    let model = a.server().model();
    assert_eq!(
        model.get("DEMOLD0", "LLN0$DC$NamPlt$vendor"),
        Some(Data::VisibleString("w3".into()))
    );
    // handle_pdu is for callers that send each answer at once: it does not count.
    let pdu = request_pdu(7, identify());
    assert!(matches!(
        MmsPdu::decode(&a.handle_pdu(&pdu).unwrap(), &Default::default()).unwrap(),
        MmsPdu::ConfirmedResponse(_)
    ));
    a.answers_sent();
    let pdu = request_pdu(6, identify());
    assert!(matches!(
        MmsPdu::decode(&a.handle_queued_pdu(&pdu).unwrap(), &Default::default()).unwrap(),
        MmsPdu::ConfirmedResponse(_)
    ));
}
