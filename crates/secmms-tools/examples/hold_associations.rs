//! Opens N associations to a server and holds them idle until stdin closes: the client side of
//! `scripts/idle-associations.py` (issue 17, item 6), which measures the server's memory per
//! idle association with the clients in another process.
//!
//! ```text
//! cargo run --release -p secmms-tools --example hold_associations -- ADDR N [CONFIG.toml]
//! ```
//!
//! CONFIG is a `secmms` TOML file (TLS, application security) for the client side. Prints
//! `held N in S s` on stdout once every association is up (or `failed ...` and exits 1).

use std::sync::Arc;
use std::time::Instant;

use secmms::Config;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: hold_associations ADDR N [CONFIG.toml]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let n: usize = args[2].parse().expect("N");
    let cfg = match args.get(3) {
        Some(p) => Config::load(std::path::Path::new(p)).expect("configuration"),
        None => Config::default(),
    };
    // One TLS context and one application-security context for every association, as a
    // product making many associations would: one AssoID counter, one session cache.
    let sink: Arc<dyn secmms_pki::event::SecurityEventSink> =
        Arc::new(secmms_pki::event::MemorySink::new());
    let security =
        secmms::security::AppSecurity::build(&cfg.security, &cfg.tls, &cfg.osi, sink.clone())
            .expect("application security");
    let mut builder = cfg
        .client_builder()
        .events(sink.clone())
        .app_security(security);
    if cfg.tls.enabled {
        let tls = secmms::tls::TlsContext::client(&cfg.tls, sink).expect("TLS context");
        builder = builder.tls_context(Arc::new(tls));
    }
    let builder = Arc::new(builder);
    // At most 64 set-ups at once: the point is the held associations, not a connect storm.
    let gate = Arc::new(Semaphore::new(64));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (addr, builder, gate) = (addr.clone(), builder.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await;
            builder.connect(&addr).await
        }));
    }
    let mut held = Vec::with_capacity(n);
    for t in tasks {
        match t.await.expect("task") {
            Ok(c) => held.push(c),
            Err(e) => {
                println!("failed after {} associations: {e}", held.len());
                std::process::exit(1);
            }
        }
    }
    println!(
        "held {} in {:.1} s",
        held.len(),
        started.elapsed().as_secs_f64()
    );
    // Hold until the parent closes our stdin.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    for c in held {
        c.abort().await;
    }
}
