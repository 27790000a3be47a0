//! The client machine pumped by hand against a plain server association: no runtime, no
//! socket, a clock that only moves when the test moves it.

use super::*;
use secmms_mms::model::{Model, SharedModel};
use secmms_mms::server::{InitiateOutcome, ServerConfig as VmdConfig, Vmd};

type S = ByteStream<tokio::io::DuplexStream>;

struct Peer {
    sa: SecureAssociation,
    vmd: Vmd,
    session: Option<secmms_mms::server::ServerSession>,
}

impl Peer {
    fn new(now: Now) -> Peer {
        let cfg = Sections::default();
        let sa = AppSecurity::plain().secure_responder(
            osi_config(&cfg.osi, true).unwrap(),
            &ConnectionFacts::default(),
            Timeouts::default(),
            now,
        );
        let vmd = Vmd::new(
            SharedModel::new(Model::default_demo()),
            VmdConfig {
                max_serv_outstanding: 8,
                ..Default::default()
            },
        );
        Peer {
            sa,
            vmd,
            session: None,
        }
    }

    /// Takes what the client sent and answers as a server does, unless `mute`; returns
    /// the number of MMS requests taken (mute: of writes dropped).
    fn take(&mut self, m: &mut ClientMachine, now: Now, mute: bool) -> usize {
        let mut n = 0;
        while let Some(b) = Machine::<S>::poll_transmit(m, Port::Up) {
            if mute {
                n += 1;
            } else {
                self.sa.handle_input(&b, now).unwrap();
            }
        }
        while let Some(ev) = self.sa.poll_event() {
            match ev {
                SecureEvent::AssociateIndication { initiate, .. } => {
                    match self.vmd.accept_initiate(&initiate.unwrap()) {
                        InitiateOutcome::Accepted {
                            response,
                            association,
                        } => {
                            self.sa.accept(response, now).unwrap();
                            self.session = Some(association);
                        }
                        _ => panic!("refused"),
                    }
                }
                SecureEvent::Mms(pdu) => {
                    n += 1;
                    if let Some(r) = self.session.as_ref().unwrap().handle_queued_pdu(&pdu) {
                        self.sa.send_mms(&r, now).unwrap();
                    }
                }
                _ => {}
            }
        }
        if let Some(s) = &self.session {
            s.answers_sent();
        }
        while let Some(b) = self.sa.poll_transmit() {
            Machine::<S>::handle_input(m, Port::Up, &b, now);
        }
        n
    }
}

type Setup = oneshot::Receiver<Result<(Negotiated, String), ClientError>>;

fn machine(now: Now) -> (ClientMachine, mpsc::Sender<Cmd>, Setup) {
    let cfg = Sections::default();
    let mut sa = AppSecurity::plain()
        .secure_initiator(
            osi_config(&cfg.osi, false).unwrap(),
            &ConnectionFacts::default(),
            Timeouts {
                associate: Some(Duration::from_secs(10)),
                idle: None,
                release: Some(RELEASE_TIMEOUT),
                pdu: None,
            },
            now,
        )
        .unwrap();
    let proposal = ClientProposal {
        max_serv_outstanding_calling: 8,
        max_serv_outstanding_called: 8,
        ..Default::default()
    };
    sa.connect(mms_client::initiate_request_pdu(&proposal), now)
        .unwrap();
    let (tx, rx) = mpsc::channel(16);
    let (setup, setup_rx) = oneshot::channel();
    let m = ClientMachine {
        sa,
        proposal,
        setup: Some(setup),
        called: String::new(),
        associate_timeout: Duration::from_secs(10),
        rx: Some(rx),
        reports: mpsc::channel(4).0,
        session: None,
        releasing: None,
        load: None,
        request_timeout: Duration::from_secs(2),
        result: None,
    };
    (m, tx, setup_rx)
}

fn established(now: Now) -> (ClientMachine, Peer, mpsc::Sender<Cmd>) {
    let (mut m, tx, mut setup) = machine(now);
    let mut peer = Peer::new(now);
    // CR / CC, then the AARQ / AARE.
    for _ in 0..4 {
        assert!(matches!(Machine::<S>::process(&mut m, now), Step::Idle));
        peer.take(&mut m, now, false);
    }
    assert!(matches!(Machine::<S>::process(&mut m, now), Step::Idle));
    let (negotiated, _) = setup.try_recv().unwrap().unwrap();
    assert_eq!(negotiated.max_serv_outstanding_calling, 8);
    (m, peer, tx)
}

#[test]
fn a_release_without_rlre_ends_at_the_release_timeout() {
    let now = driver::now();
    let (mut m, mut peer, _tx) = established(now);
    let (reply, mut released) = oneshot::channel();
    assert!(!Machine::<S>::handle_cmd(
        &mut m,
        Some(Cmd::Release { reply }),
        now
    ));
    assert!(
        Machine::<S>::commands(&mut m).is_none(),
        "no command is taken while releasing"
    );
    // The RLRQ leaves; the peer never answers.
    assert!(peer.take(&mut m, now, true) >= 1);
    assert_eq!(
        Machine::<S>::poll_timeout(&m),
        Some(now.mono + RELEASE_TIMEOUT)
    );
    let early = now.after(RELEASE_TIMEOUT / 2);
    Machine::<S>::handle_timeout(&mut m, early);
    assert!(matches!(Machine::<S>::process(&mut m, early), Step::Idle));
    assert!(released.try_recv().is_err(), "not yet");
    let late = now.after(RELEASE_TIMEOUT);
    Machine::<S>::handle_timeout(&mut m, late);
    assert!(matches!(Machine::<S>::process(&mut m, late), Step::Done));
    assert!(matches!(released.try_recv(), Ok(Ok(()))));
    assert!(matches!(m.result, Some(Ok(()))));
}

#[test]
fn a_request_is_answered_through_the_session() {
    let now = driver::now();
    let (mut m, mut peer, _tx) = established(now);
    let (reply, mut answer) = oneshot::channel();
    let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
    let cmd = Cmd::Request {
        service: mms_client::identify(),
        reply,
        permit,
    };
    assert!(Machine::<S>::handle_cmd(&mut m, Some(cmd), now));
    assert_eq!(peer.take(&mut m, now, false), 1);
    assert!(matches!(Machine::<S>::process(&mut m, now), Step::Idle));
    assert!(matches!(
        answer.try_recv(),
        Ok(Ok(ConfirmedServiceResponse::Identify(_)))
    ));
}

#[test]
fn a_load_keeps_its_requests_in_flight_and_its_deadlines_come_out_of_poll_timeout() {
    let now = driver::now();
    let (mut m, mut peer, _tx) = established(now);
    let (reply, mut outcome) = oneshot::channel();
    let permits = Arc::new(Semaphore::new(2))
        .try_acquire_many_owned(2)
        .unwrap();
    let spec = LoadSpec {
        service: mms_client::identify(),
        outstanding: 2,
        duration: Duration::from_secs(10),
        completed: Arc::default(),
    };
    let completed = spec.completed.clone();
    Machine::<S>::handle_cmd(
        &mut m,
        Some(Cmd::Load {
            spec,
            reply,
            permits,
        }),
        now,
    );
    assert!(matches!(Machine::<S>::process(&mut m, now), Step::Idle));
    assert_eq!(
        Machine::<S>::poll_timeout(&m),
        Some(now.mono + Duration::from_secs(10)),
        "the load's deadline"
    );
    // Two in flight; each answer sends the next one, in the same turn.
    let t1 = now.after(Duration::from_millis(3));
    assert_eq!(peer.take(&mut m, t1, false), 2);
    assert!(matches!(Machine::<S>::process(&mut m, t1), Step::Idle));
    assert_eq!(completed.load(Ordering::Relaxed), 2);
    // The deadline passes with two more in flight, which the peer never answers.
    let end = now.after(Duration::from_secs(10));
    assert!(peer.take(&mut m, end, true) >= 1);
    Machine::<S>::handle_timeout(&mut m, end);
    assert!(matches!(Machine::<S>::process(&mut m, end), Step::Idle));
    assert_eq!(
        Machine::<S>::poll_timeout(&m),
        Some(now.mono + Duration::from_secs(12)),
        "then the late answers' deadline"
    );
    assert!(outcome.try_recv().is_err());
    let late = now.after(Duration::from_secs(12));
    Machine::<S>::handle_timeout(&mut m, late);
    assert!(matches!(Machine::<S>::process(&mut m, late), Step::Idle));
    let o = outcome.try_recv().unwrap().unwrap();
    assert_eq!(o.errors, 2, "the two never answered");
    assert_eq!(o.latency.count(), 2);
    assert!(Machine::<S>::poll_timeout(&m).is_none());
}

#[test]
fn a_closed_connection_during_the_set_up_is_a_clear_error() {
    let now = driver::now();
    let (mut m, _tx, mut setup) = machine(now);
    assert!(matches!(Machine::<S>::process(&mut m, now), Step::Idle));
    Machine::<S>::transport_closed(&mut m, Port::Up, None, now);
    assert!(matches!(Machine::<S>::process(&mut m, now), Step::Done));
    assert!(matches!(
        setup.try_recv(),
        Ok(Err(ClientError::Link(LinkError::Closed)))
    ));
}
