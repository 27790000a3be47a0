//! Hand-written BER codec (secmms-ber / `MmsPdu`) against `rasn` derives on identical bytes:
//! decode and encode of a confirmed Read request and of its Read response (docs/PERFORMANCE.md,
//! "Hand-written BER vs rasn"). The setup first asserts that both codecs agree byte for byte.
//! Run: `cargo bench -p secmms-mms --bench rasn_compare -- --warm-up-time 1 --measurement-time 2 --noplot`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

#[path = "../tests/rasn_equivalence.rs"]
mod equivalence;

use equivalence::{check_equivalence, ours, rasn_mms};

fn bench(c: &mut Criterion) {
    let lim = secmms_mms::MmsLimits::default();
    let (req_bytes, resp_bytes) = check_equivalence();
    let cases = [
        (
            "read request",
            ours::read_request(),
            rasn_mms::read_request(),
            req_bytes,
        ),
        (
            "read response",
            ours::read_response(),
            rasn_mms::read_response(),
            resp_bytes,
        ),
    ];
    for (name, our, theirs, bytes) in &cases {
        let mut g = c.benchmark_group(*name);
        g.bench_function("decode/secmms", |b| {
            b.iter(|| secmms_mms::MmsPdu::decode(black_box(bytes), &lim).map(|_| ()))
        });
        g.bench_function("decode/rasn", |b| {
            b.iter(|| rasn::ber::decode::<rasn_mms::MmsPdu>(black_box(bytes)).map(|_| ()))
        });
        g.bench_function("encode/secmms", |b| b.iter(|| black_box(our).encode()));
        g.bench_function("encode/rasn", |b| {
            b.iter(|| rasn::ber::encode(black_box(theirs)).map(|v| v.len()))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
