use super::{busy_poll_policy, busy_poll_window, cpus, response_group, worker_count, Workers};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn connections_poll_only_once_their_association_is_established() {
    let server = super::Server::builder()
        .limits(super::ServerConfig {
            worker_threads: Some(1),
            ..Default::default()
        })
        .listen("127.0.0.1:0")
        .tuning(super::Tuning::Daemon)
        .bind()
        .await
        .unwrap();
    let established = Arc::new(AtomicBool::new(false));
    let policy = busy_poll_policy(&server.shared, established.clone());
    server.shared.stats.established.store(1, Ordering::Relaxed);
    assert_eq!(policy(), Duration::ZERO, "still being set up");
    established.store(true, Ordering::Relaxed);
    let cpus = cpus();
    assert_eq!(policy(), busy_poll_window(None, 1, cpus));
    // Too many associations established for the CPUs: no polling.
    server
        .shared
        .stats
        .established
        .store(cpus as u64 + 1, Ordering::Relaxed);
    assert_eq!(policy(), Duration::ZERO);
}

/// A server machine on the plain demo model, with `response_group` and a client-side
/// association established with it, pumped by hand (no runtime, no socket).
mod machine {
    use super::super::*;
    use secmms_mms::client::{self as mms_client, ClientProposal};
    use secmms_mms::pdu::ConfirmedServiceResponse;
    use secmms_mms::session::{ClientEvent, ClientSession};
    use secmms_profiles::secure::Now;

    type S = ByteStream<tokio::io::DuplexStream>;

    fn shared(group: usize, outstanding: u16) -> ServerContext {
        let mut cfg = Sections::default();
        cfg.server.response_group = Some(group);
        cfg.server.max_outstanding = outstanding;
        let mms = Vmd::new(
            SharedModel::new(Model::default_demo()),
            server_options(&cfg.server),
        );
        ServerContext {
            cfg,
            mms,
            stats: Arc::default(),
            tls: None,
            security: AppSecurity::plain(),
            revocations: tokio::sync::watch::channel(0).0,
            registry: Arc::default(),
            admission: Admission::new(Limits {
                max_pending: 10,
                max_pending_per_source: 10,
                max_established: 10,
                max_per_source: 0,
            }),
            handshakes: crate::handshakes::HandshakeGate::new(
                crate::handshakes::Gated::Tls("server"),
                0,
                0,
            ),
            checks: Arc::new(crate::handshakes::HandshakeGate::new(
                crate::handshakes::Gated::Checks("server"),
                0,
                0,
            )),
            sink: Arc::new(secmms_pki::event::MemorySink::new()),
        }
    }

    fn machine<'a>(
        shared: &'a ServerContext,
        established: &'a AtomicBool,
        now: Now,
    ) -> ServerMachine<'a> {
        let osi = osi_config(&shared.cfg.osi, true).unwrap();
        let sa = shared.security.secure_responder(
            osi,
            &ConnectionFacts::default(),
            Timeouts::default(),
            now,
        );
        let (ticket, _) = shared
            .admission
            .admit(
                std::net::IpAddr::from([127, 0, 0, 1]),
                Stage::Accepted,
                None,
            )
            .unwrap();
        ServerMachine {
            shared,
            sa,
            ticket,
            label: "test".into(),
            established,
            counted: None,
            session: None,
            registered: None,
            commands: None,
            indication: None,
            gate: crate::handshakes::AarqHold::Open,
            setup_deadline: tokio::time::Instant::from_std(now.mono) + Duration::from_secs(10),
            associate_timeout: Duration::from_secs(10),
            idle: None,
            pdu: None,
            cpus: 2,
            turn: true,
            grouped: 0,
            group: 0,
            result: None,
        }
    }

    /// Runs `process` until idle, calling `flushed` after each `Flush` as the driver does;
    /// returns the number of flushes and every output.
    fn run(m: &mut ServerMachine<'_>, now: Now) -> (usize, Vec<u8>) {
        let mut flushes = 0;
        let mut out = Vec::new();
        loop {
            let step: Step<_, S> = Machine::<S>::process(m, now);
            match step {
                Step::Idle => break,
                Step::Flush => {
                    flushes += 1;
                    while let Some(b) = Machine::<S>::poll_transmit(m, Port::Up) {
                        out.extend(b);
                    }
                    Machine::<S>::flushed(m);
                }
                _ => panic!("unexpected step"),
            }
        }
        while let Some(b) = Machine::<S>::poll_transmit(m, Port::Up) {
            out.extend(b);
        }
        (flushes, out)
    }

    /// A plain client association established with `m`, and its MMS session.
    fn associate(
        m: &mut ServerMachine<'_>,
        outstanding: u16,
        now: Now,
    ) -> (
        secmms_profiles::secure::SecureAssociation,
        ClientSession<u32>,
    ) {
        let osi = osi_config(&Default::default(), false).unwrap();
        let mut c = AppSecurity::plain()
            .secure_initiator(osi, &ConnectionFacts::default(), Timeouts::default(), now)
            .unwrap();
        let proposal = ClientProposal {
            max_serv_outstanding_calling: outstanding,
            max_serv_outstanding_called: outstanding,
            ..Default::default()
        };
        c.connect(mms_client::initiate_request_pdu(&proposal), now)
            .unwrap();
        // CR / CC, then the AARQ / AARE.
        assert!(
            !m.established.load(Ordering::Relaxed),
            "not before the accept"
        );
        for _ in 0..4 {
            while let Some(b) = c.poll_transmit() {
                Machine::<S>::handle_input(m, Port::Up, &b, now);
            }
            let (flushes, answer) = run(m, now);
            assert_eq!(flushes, 0);
            c.handle_input(&answer, now).unwrap();
        }
        assert!(m.established.load(Ordering::Relaxed), "set at the accept");
        let negotiated = loop {
            match c.poll_event() {
                Some(SecureEvent::Established {
                    initiate_response: Some(r),
                    ..
                }) => break mms_client::parse_initiate_response(&r, &proposal).unwrap(),
                Some(_) => {}
                None => panic!("not established"),
            }
        };
        (c, ClientSession::established(proposal, negotiated))
    }

    #[test]
    fn a_burst_of_16_with_groups_of_4_is_written_in_four_flushes() {
        let now = crate::driver::now();
        let shared = shared(4, 16);
        let established = AtomicBool::new(false);
        let mut m = machine(&shared, &established, now);
        let (mut c, mut session) = associate(&mut m, 16, now);
        let name = secmms_mms::ObjectName::DomainSpecific {
            domain: "DEMOLD0".into(),
            item: "GGIO1$ST$Ind1$stVal".into(),
        };
        let mut burst = Vec::new();
        for i in 0..16 {
            let (_, pdu) = session
                .request(mms_client::read_name(name.clone()), i)
                .unwrap();
            c.send_mms(&pdu, now).unwrap();
            while let Some(b) = c.poll_transmit() {
                burst.extend(b);
            }
        }
        Machine::<S>::handle_input(&mut m, Port::Up, &burst, now);
        let (flushes, answers) = run(&mut m, now);
        assert_eq!(flushes, 4, "16 answers in groups of 4");
        c.handle_input(&answers, now).unwrap();
        let mut answered = 0;
        while let Some(ev) = c.poll_event() {
            if let SecureEvent::Mms(pdu) = ev {
                match session.handle_pdu(&pdu) {
                    ClientEvent::Answer { result, .. } => {
                        assert!(matches!(result, Ok(ConfirmedServiceResponse::Read(_))));
                        answered += 1;
                    }
                    _ => panic!("not an answer"),
                }
            }
        }
        assert_eq!(answered, 16);
        assert_eq!(shared.stats.requests.load(Ordering::Relaxed), 16);
    }

    #[test]
    fn the_whole_burst_goes_in_one_write_with_group_0() {
        let now = crate::driver::now();
        let shared = shared(0, 16);
        let established = AtomicBool::new(false);
        let mut m = machine(&shared, &established, now);
        let (mut c, mut session) = associate(&mut m, 16, now);
        let mut burst = Vec::new();
        for i in 0..8 {
            let (_, pdu) = session.request(mms_client::identify(), i).unwrap();
            c.send_mms(&pdu, now).unwrap();
            while let Some(b) = c.poll_transmit() {
                burst.extend(b);
            }
        }
        Machine::<S>::handle_input(&mut m, Port::Up, &burst, now);
        let (flushes, answers) = run(&mut m, now);
        assert_eq!(flushes, 0);
        assert!(!answers.is_empty());
    }

    #[test]
    fn an_idle_timeout_ends_the_machine_with_a_timeout() {
        let now = crate::driver::now();
        let shared = shared(0, 5);
        let established = AtomicBool::new(false);
        let mut m = machine(&shared, &established, now);
        m.sa = shared.security.secure_responder(
            osi_config(&shared.cfg.osi, true).unwrap(),
            &ConnectionFacts::default(),
            Timeouts {
                associate: Some(Duration::from_secs(10)),
                idle: None,
                release: None,
                pdu: None,
            },
            now,
        );
        let at = Machine::<S>::poll_timeout(&m).expect("the associate timer runs");
        assert_eq!(at, now.mono + Duration::from_secs(10));
        // Early: nothing happens.
        Machine::<S>::handle_timeout(&mut m, now.after(Duration::from_secs(5)));
        assert!(matches!(Machine::<S>::process(&mut m, now), Step::Idle));
        let late = now.after(Duration::from_secs(10));
        Machine::<S>::handle_timeout(&mut m, late);
        assert!(matches!(Machine::<S>::process(&mut m, late), Step::Done));
        assert!(
            matches!(m.result, Some(Err(LinkError::Timeout(t))) if t == Duration::from_secs(10))
        );
    }
}

#[test]
fn configured_busy_poll_is_used_as_is() {
    assert_eq!(busy_poll_window(Some(0), 0, 8), Duration::ZERO);
    assert_eq!(
        busy_poll_window(Some(250), 100, 1),
        Duration::from_micros(250)
    );
}

#[test]
fn adaptive_busy_poll_only_while_cpus_are_spare() {
    let on = Duration::from_micros(super::ServerConfig::DEFAULT_BUSY_POLL_US);
    assert_eq!(busy_poll_window(None, 1, 2), on);
    assert_eq!(busy_poll_window(None, 4, 8), on);
    assert_eq!(busy_poll_window(None, 2, 2), Duration::ZERO);
    assert_eq!(busy_poll_window(None, 5, 8), Duration::ZERO);
    // One CPU: polling would only take it from the peer.
    assert_eq!(busy_poll_window(None, 0, 1), Duration::ZERO);
    assert_eq!(busy_poll_window(None, 1, 1), Duration::ZERO);
}

#[test]
fn worker_threads_default_to_one_per_cpu() {
    let cpus = cpus();
    assert_eq!(worker_count(None), cpus);
    assert_eq!(worker_count(Some(0)), 0);
    assert_eq!(worker_count(Some(3)), 3);
}

#[test]
fn associations_go_to_the_least_busy_thread() {
    let mut w = Workers::start(3).unwrap();
    // Equal counts: round robin.
    let picks: Vec<_> = (0..3)
        .map(|_| {
            let (_, a) = w.pick();
            a.fetch_add(1, Ordering::Relaxed);
            a
        })
        .collect();
    assert!(picks.iter().all(|a| a.load(Ordering::Relaxed) == 1));
    // One thread's association ends: the next goes there.
    picks[1].fetch_sub(1, Ordering::Relaxed);
    let (_, a) = w.pick();
    assert!(std::sync::Arc::ptr_eq(&a, &picks[1]));
}

#[test]
fn association_threads_run_tasks_and_stop_with_the_pool() {
    let mut w = Workers::start(2).unwrap();
    let (h, _) = w.pick();
    let (tx, rx) = std::sync::mpsc::channel();
    h.spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tx.send(std::thread::current().name().map(str::to_owned))
            .unwrap();
    });
    let name = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert!(name.starts_with("secmms-assoc-"), "{name}");
    // A task still running when the pool goes is dropped with its thread's runtime.
    let (h, _) = w.pick();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    h.spawn(async move {
        let _keep = tx;
        std::future::pending::<()>().await;
    });
    drop(w);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
    );
}

#[test]
fn configured_group_is_used_as_is() {
    assert_eq!(response_group(Some(0), 16, 1, 2), 0);
    assert_eq!(response_group(Some(3), 16, 100, 2), 3);
}

#[test]
fn adaptive_group_is_a_quarter_of_the_burst_while_cpus_are_spare() {
    // 2 CPUs: one established association leaves a CPU for the client.
    assert_eq!(response_group(None, 16, 1, 2), 4);
    assert_eq!(response_group(None, 5, 1, 2), 1);
    assert_eq!(response_group(None, 1, 1, 2), 1);
    assert_eq!(response_group(None, 0, 0, 1), 1);
    // 8 CPUs: up to 4 associations.
    assert_eq!(response_group(None, 32, 4, 8), 8);
}

#[test]
fn adaptive_group_is_the_whole_burst_when_cpus_are_busy() {
    assert_eq!(response_group(None, 16, 2, 2), 0);
    assert_eq!(response_group(None, 16, 5, 8), 0);
}
