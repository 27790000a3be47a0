//! The server's association threads (`server.worker_threads`) and its polling window
//! (`server.busy_poll_us`): every combination serves concurrent associations completely and
//! correctly, and stopping the server ends the associations its threads run. Absent settings
//! take the daemon's tuning here (`Tuning::Daemon`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use secmms::client::{LoopStep, RequestLoop};
use secmms::{ClientError, Config, ServerHandle};
use secmms_mms::{
    ConfirmedServiceRequest, Data, ObjectName, ReadRequest, VariableAccessSpecification,
};

const ANIN: &str = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]";

async fn start(worker_threads: Option<usize>, busy_poll_us: Option<u64>) -> ServerHandle {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.worker_threads = worker_threads;
    cfg.server.busy_poll_us = busy_poll_us;
    // Absent settings take the daemon's tuning (one thread per CPU, adaptive polling).
    cfg.server_builder()
        .tuning(secmms::server::Tuning::Daemon)
        .bind()
        .await
        .expect("bind")
        .spawn()
        .expect("spawn")
}

fn read_of(name: ObjectName) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::Read(ReadRequest {
        specification_with_result: false,
        spec: VariableAccessSpecification::single(name),
    })
}

/// Reads until a deadline with every slot busy, counting answers and failures.
struct Reads {
    service: ConfirmedServiceRequest,
    until: Instant,
    ok: u64,
    failed: u64,
}

impl RequestLoop for Reads {
    fn next(&mut self, now: Instant) -> LoopStep {
        if now >= self.until {
            LoopStep::Stop
        } else {
            LoopStep::Send(self.service.clone())
        }
    }

    fn answered(
        &mut self,
        outcome: Result<secmms_mms::ConfirmedServiceResponse, ClientError>,
        _: Instant,
        _: Instant,
    ) {
        match outcome {
            Ok(secmms_mms::ConfirmedServiceResponse::Read(_)) => self.ok += 1,
            _ => self.failed += 1,
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        Some(self.until)
    }
}

/// One association: a request loop at `outstanding`, then a read and a write read back, then release.
async fn exercise(addr: String, outstanding: usize) -> u64 {
    let c = Config::default()
        .client_builder()
        .connect(&addr)
        .await
        .expect("associate");
    let name = c.resolve(ANIN).await.expect("resolve");
    let reads = Reads {
        service: read_of(name.clone()),
        until: Instant::now() + Duration::from_millis(250),
        ok: 0,
        failed: 0,
    };
    let (reads, end) = c.run_loop(outstanding, reads).await.expect("loop");
    assert_eq!(reads.failed, 0);
    assert_eq!(end.lost, 0);
    assert!(reads.ok > 0);
    assert!(matches!(
        c.read_name(&name).await.expect("read"),
        Data::FloatingPoint(_)
    ));
    c.release().await.expect("release");
    reads.ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_thread_and_polling_setting_serves_concurrent_associations() {
    for (threads, poll) in [
        (None, None),
        (Some(0), None),
        (Some(0), Some(200)),
        (Some(1), Some(0)),
        (Some(1), Some(200)),
        (Some(3), Some(0)),
        (Some(3), Some(1_000)),
    ] {
        let server = start(threads, poll).await;
        let addr = server.addr.to_string();
        let before = server.stats.requests.load(Ordering::Relaxed);
        let tasks: Vec<_> = [1, 5, 1, 16, 3]
            .into_iter()
            .map(|o| tokio::spawn(exercise(addr.clone(), o)))
            .collect();
        let mut counted = 0;
        for t in tasks {
            counted += t.await.expect("association task");
        }
        // Each association's load plus its read (resolving the name sends nothing).
        let served = server.stats.requests.load(Ordering::Relaxed) - before;
        assert_eq!(served, counted + 5, "threads {threads:?} poll {poll:?}");
        // The server counts a release when the association's task ends, just after its answer.
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while server.stats.released.load(Ordering::Relaxed) < 5 && tokio::time::Instant::now() < end
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(server.stats.released.load(Ordering::Relaxed), 5);
        assert_eq!(server.stats.failed.load(Ordering::Relaxed), 0);
        server.shutdown();
    }
}

#[tokio::test]
async fn stopping_the_server_ends_the_associations_on_its_threads() {
    for threads in [None, Some(0), Some(2)] {
        let server = start(threads, None).await;
        let c = Config::default()
            .client_builder()
            .connect(&server.addr.to_string())
            .await
            .expect("associate");
        let name = c.resolve(ANIN).await.expect("resolve");
        c.read_name(&name).await.expect("read before the stop");
        server.shutdown();
        // The association task is gone with the server (its thread, or the accept loop that
        // owned it): the connection closes.
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while !c.is_closed() && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(c.is_closed(), "threads {threads:?}");
        assert!(c.read_name(&name).await.is_err());
    }
}
