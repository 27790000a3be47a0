//! The soak under faults (issue 17, item 6): N native-mode associations through a
//! fault-injecting proxy in front of `secmms server`, each checked against what the proxy did
//! to it; then the server's memory and descriptors against their baseline. Prints a table and
//! exits 1 on any violation (docs/RELIABILITY.md, "Soak under faults").
//!
//! ```text
//! cargo build --release -p secmms-cli --bin secmms
//! cargo run --release -p secmms-tools --features soak --example soak -- \
//!     [--associations 1000] [--duration-secs 60] [--period-ms 1000] [--warmup-secs 10] \
//!     [--seed 17] [--fault 0.06] [--trigger-max 20000] [--rss-margin-kib 4096] \
//!     [--secmms target/release/secmms]
//! ```
//!
//! `--fault P` gives each of the five faults (delay, reorder, truncate, reset, kill) the
//! probability P; the rest of the connections pass cleanly. `--secmms` defaults to the
//! `secmms` binary beside this example's directory (`target/release/secmms`).

use std::path::PathBuf;
use std::time::Duration;

use secmms_testkit::faultproxy::FaultMix;
use secmms_tools::soak::{run, SoakOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("secmms")))
        .unwrap_or_else(|| PathBuf::from("target/release/secmms"));
    let mut o = SoakOptions::new(beside);
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_else(|| usage(&args[i]));
        let num = |v: &str| -> u64 { v.parse().unwrap_or_else(|_| usage(v)) };
        match args[i].as_str() {
            "--associations" => o.associations = num(&value) as usize,
            "--duration-secs" => o.duration = Duration::from_secs(num(&value)),
            "--period-ms" => o.period = Duration::from_millis(num(&value)),
            "--warmup-secs" => o.warmup = Duration::from_secs(num(&value)),
            "--seed" => o.plan.seed = num(&value),
            "--fault" => {
                o.plan.mix = FaultMix::even(value.parse().unwrap_or_else(|_| usage(&value)))
            }
            "--trigger-max" => o.plan.trigger_octets = 0..=num(&value),
            "--rss-margin-kib" => o.rss_margin_kib = num(&value),
            "--secmms" => o.secmms = PathBuf::from(&value),
            other => usage(other),
        }
        i += 2;
    }
    eprintln!(
        "soak: {} associations, {:?} each (one read every {:?}), clean round {:?}, seed {}, \
         {:?}, triggers {:?} octets, server {}",
        o.associations,
        o.duration,
        o.period,
        o.warmup,
        o.plan.seed,
        o.plan.mix,
        o.plan.trigger_octets,
        o.secmms.display()
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    match rt.block_on(run(o)) {
        Ok(report) => {
            print!("{}", report.table());
            std::process::exit(if report.passed() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("soak not run: {e}");
            std::process::exit(2);
        }
    }
}

fn usage(at: &str) -> ! {
    eprintln!("soak: bad argument {at:?} (see the comment at the top of examples/soak.rs)");
    std::process::exit(2);
}
