//! Issue 17, item 6, the small version of the soak under faults (docs/RELIABILITY.md, "Soak
//! under faults"): 40 native-mode associations (TLS + E2E with AES-GCM) through the test kit's
//! fault-injecting proxy in front of `secmms server`, with a fixed seed. Every association the
//! proxy did not break must complete all its reads and be released; every broken one must end,
//! on both sides, with an end of the right kind; the server's descriptors must come back to
//! their baseline and its memory within the margin. No timing is asserted.

use std::path::PathBuf;
use std::time::Duration;

use secmms_testkit::faultproxy::{FaultKind, FaultMix, FaultPlan};
use secmms_tools::soak::{run, SoakOptions};

#[test]
fn forty_associations_through_faults_end_as_their_faults_say_and_the_server_returns_to_baseline() {
    let mut o = SoakOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_secmms")));
    o.associations = 40;
    o.duration = Duration::from_secs(3);
    o.period = Duration::from_millis(100);
    o.warmup = Duration::from_secs(1);
    o.setups_at_once = 16;
    // An association moves about 10 000 octets in its set-up and 3 s of reads: triggers up
    // to 12 000 put faults in both the set-up and the transfer.
    o.plan = FaultPlan {
        trigger_octets: 0..=12_000,
        ..FaultPlan::new(17, FaultMix::even(0.12))
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(run(o)).expect("the soak runs");
    eprintln!("{}", report.table());
    assert!(
        report.passed(),
        "violations:\n{}",
        report.violations.join("\n")
    );
    for kind in [
        FaultKind::Delay,
        FaultKind::Reorder,
        FaultKind::Truncate,
        FaultKind::Reset,
        FaultKind::Kill,
    ] {
        assert!(report.fired(kind) > 0, "no {} fault fired", kind.name());
    }
}
