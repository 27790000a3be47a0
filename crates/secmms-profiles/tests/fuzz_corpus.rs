//! Replays the `aprofile` fuzz corpus (`fuzz/corpus/aprofile/`) through the fuzz entry point,
//! so CI runs every stored input. `write_seeds` (ignored) regenerates the seed inputs.

mod common;

use std::path::PathBuf;

use common::*;
use secmms_osi::acse::Apdu;
use secmms_profiles::aprofile::build_value;
use secmms_profiles::fuzzing::aprofile_value;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/aprofile")
}

#[test]
fn replay_aprofile_corpus() {
    let dir = corpus_dir();
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_file() {
                aprofile_value(&std::fs::read(&p).unwrap());
                n += 1;
            }
        }
    }
    assert!(n > 0, "no corpus files in {}", dir.display());
}

#[test]
#[ignore = "writes seed files into fuzz/corpus/aprofile"]
fn write_seeds() {
    let ca = Ca::new("Root");
    let creds = ca.valid(client_identity(), 1);
    let v = build_value(&creds, T0).unwrap();
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("seed-value"), v.encode()).unwrap();
    std::fs::write(dir.join("seed-time"), b"20250615150640.").unwrap();
    // A complete AARQ and AARE from an authenticated association.
    let client = Side::new(
        creds,
        validator(&ca),
        secmms_profiles::PeerTable::require_a_profile(),
    );
    let server = Side::new(
        ca.valid(server_identity(), 2),
        validator(&ca),
        secmms_profiles::PeerTable::require_a_profile(),
    );
    let o = run(
        client_osi(&client, false),
        Box::new(client_hook(&client, secmms_profiles::PeerPolicy::any("s"))),
        server_osi(&server),
        Box::new(server.shared.responder(Default::default())),
    );
    let (
        secmms_osi::OsiEvent::AssociateIndication { aarq, .. },
        secmms_osi::OsiEvent::AssociateConfirm { aare, .. },
    ) = (&o.server[0], &o.client[0])
    else {
        panic!()
    };
    let lim = secmms_ber::Limits::default();
    assert!(matches!(Apdu::decode(&aarq.raw, lim), Ok(Apdu::Aarq(_))));
    std::fs::write(dir.join("seed-aarq"), &aarq.raw).unwrap();
    std::fs::write(dir.join("seed-aare"), &aare.raw).unwrap();
}
