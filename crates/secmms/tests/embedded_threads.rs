//! A server embedded in a program runs on that program's runtime: bound with the library's
//! default tuning on a current-thread runtime, serving an association adds no thread to the
//! process. The daemon's tuning, on the same runtime, does start its association threads (the
//! check can fail). Alone in its test binary, so no other test's threads are counted.

use secmms::server::Tuning;
use secmms::Config;

/// Threads of this process now.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: line")
}

fn config() -> Config {
    let mut cfg = Config::default();
    // Literal addresses: a name would be resolved on tokio's blocking pool (a thread).
    cfg.server.listen = "127.0.0.1:0".into();
    cfg
}

/// Binds with `tuning`, runs one association (identify, read, release) and returns how many
/// threads the process gained.
async fn serve_once(tuning: Tuning) -> usize {
    let before = threads();
    let server = config()
        .server_builder()
        .tuning(tuning)
        .bind()
        .await
        .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let handle = server.spawn().unwrap();
    let client = config().client_builder().connect(&addr).await.unwrap();
    client.identify().await.unwrap();
    client.read("DEMOLD0/LLN0.NamPlt.vendor[DC]").await.unwrap();
    client.release().await.unwrap();
    let during = threads();
    handle.shutdown();
    during - before
}

#[test]
fn an_embedded_server_adds_no_thread_and_the_daemon_does() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(serve_once(Tuning::Embedded)),
        0,
        "an embedded server must run on the caller's runtime"
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        rt.block_on(serve_once(Tuning::Daemon)),
        cpus,
        "the daemon starts one association thread per CPU"
    );
}
