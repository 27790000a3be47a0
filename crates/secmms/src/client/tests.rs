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
        looping: None,
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

/// A request loop for the tests: Identify until `deadline`, counting answers and failures.
struct Counting {
    deadline: Instant,
    answered: u64,
    failed: u64,
    timeouts: u64,
}

impl RequestLoop for Counting {
    fn next(&mut self, now: Instant) -> LoopStep {
        if now >= self.deadline {
            LoopStep::Stop
        } else {
            LoopStep::Send(mms_client::identify())
        }
    }

    fn answered(
        &mut self,
        outcome: Result<ConfirmedServiceResponse, ClientError>,
        _sent: Instant,
        _now: Instant,
    ) {
        match outcome {
            Ok(_) => self.answered += 1,
            Err(ClientError::Timeout(_)) => self.timeouts += 1,
            Err(_) => self.failed += 1,
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        Some(self.deadline)
    }
}

type LoopAnswer = oneshot::Receiver<Result<(Counting, LoopEnd), ClientError>>;

fn start_loop(m: &mut ClientMachine, now: Now, outstanding: u32, secs: u64) -> LoopAnswer {
    let (reply, answer) = oneshot::channel();
    let permits = Arc::new(Semaphore::new(outstanding as usize))
        .try_acquire_many_owned(outstanding)
        .unwrap();
    let run = Box::new(Typed {
        inner: Counting {
            deadline: now.mono + Duration::from_secs(secs),
            answered: 0,
            failed: 0,
            timeouts: 0,
        },
        reply,
    });
    let cmd = Cmd::Loop {
        run,
        outstanding: outstanding as usize,
        permits,
    };
    Machine::<S>::handle_cmd(m, Some(cmd), now);
    answer
}

#[test]
fn a_loop_keeps_its_requests_in_flight_and_its_deadlines_come_out_of_poll_timeout() {
    let now = driver::now();
    let (mut m, mut peer, _tx) = established(now);
    let mut answer = start_loop(&mut m, now, 2, 10);
    assert!(matches!(Machine::<S>::process(&mut m, now), Step::Idle));
    assert_eq!(
        Machine::<S>::poll_timeout(&m),
        Some(now.mono + Duration::from_secs(2)),
        "the oldest request's timeout comes before the loop's deadline"
    );
    // Two in flight; each answer sends the next one, in the same turn.
    let t1 = now.after(Duration::from_millis(3));
    assert_eq!(peer.take(&mut m, t1, false), 2);
    assert!(matches!(Machine::<S>::process(&mut m, t1), Step::Idle));
    // The requests now in flight left at t1: their timeout moved on with them.
    assert_eq!(
        Machine::<S>::poll_timeout(&m),
        Some(t1.mono + Duration::from_secs(2))
    );
    // The peer stops answering: each request is a timeout for the loop once two seconds
    // pass, and two more leave.
    assert!(peer.take(&mut m, t1, true) >= 1);
    let t2 = t1.after(Duration::from_secs(2));
    Machine::<S>::handle_timeout(&mut m, t2);
    assert!(matches!(Machine::<S>::process(&mut m, t2), Step::Idle));
    assert!(peer.take(&mut m, t2, true) >= 1);
    let t3 = now.after(Duration::from_secs(9));
    Machine::<S>::handle_timeout(&mut m, t3);
    assert!(matches!(Machine::<S>::process(&mut m, t3), Step::Idle));
    assert!(peer.take(&mut m, t3, true) >= 1);
    // Those left at t3 would be late after the loop's deadline; but with both slots busy the
    // loop is not asked (and does not wake the machine) until one frees.
    let end = now.after(Duration::from_secs(10));
    assert_eq!(
        Machine::<S>::poll_timeout(&m),
        Some(t3.mono + Duration::from_secs(2))
    );
    Machine::<S>::handle_timeout(&mut m, end);
    assert!(matches!(Machine::<S>::process(&mut m, end), Step::Idle));
    assert!(
        answer.try_recv().is_err(),
        "the loop still waits for its last two"
    );
    assert_eq!(
        Machine::<S>::poll_timeout(&m),
        Some(t3.mono + Duration::from_secs(2)),
        "then the late answers' deadline"
    );
    let late = t3.after(Duration::from_secs(2));
    Machine::<S>::handle_timeout(&mut m, late);
    assert!(matches!(Machine::<S>::process(&mut m, late), Step::Idle));
    let (l, end) = answer.try_recv().unwrap().unwrap();
    assert_eq!(end, LoopEnd::default());
    assert_eq!(l.answered, 2);
    assert_eq!(l.timeouts, 6, "three rounds of two never answered");
    assert_eq!(l.failed, 0);
    assert!(Machine::<S>::poll_timeout(&m).is_none());
}

#[test]
fn a_loop_whose_caller_left_stops_and_a_second_loop_is_refused() {
    let now = driver::now();
    let (mut m, mut peer, _tx) = established(now);
    let answer = start_loop(&mut m, now, 2, 100);
    assert!(matches!(Machine::<S>::process(&mut m, now), Step::Idle));
    let mut second = start_loop(&mut m, now, 1, 1);
    assert!(matches!(
        second.try_recv(),
        Ok(Err(ClientError::Usage(UsageError::LoopRunning)))
    ));
    // The caller drops its future: the answers still come in, nothing new leaves.
    drop(answer);
    let t1 = now.after(Duration::from_millis(3));
    assert_eq!(peer.take(&mut m, t1, false), 2);
    assert!(matches!(Machine::<S>::process(&mut m, t1), Step::Idle));
    assert_eq!(
        peer.take(&mut m, t1, false),
        0,
        "no new request after the caller left"
    );
    assert!(m.looping.is_none());
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
