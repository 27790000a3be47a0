//! Codec benchmarks: encode/decode of a Read request and a Read response (the PDUs of the
//! capture in /work/shared/vectors), plus a server round trip.
//! Run: `cargo bench -p secmms-mms --bench codec`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use secmms_mms::client::{self, ClientProposal};
use secmms_mms::model::{Model, SharedModel};
use secmms_mms::server::{ServerConfig, Vmd};
use secmms_mms::*;

fn read_request() -> MmsPdu {
    MmsPdu::ConfirmedRequest(ConfirmedRequest {
        invoke_id: 2,
        service: ConfirmedServiceRequest::Read(ReadRequest {
            specification_with_result: false,
            spec: VariableAccessSpecification::single(ObjectName::domain(
                "DEMOLD0",
                "GGIO1$MX$AnIn1$mag$f",
            )),
        }),
    })
}

fn read_response() -> MmsPdu {
    // A data set read: two structures with a float, quality and timestamp each.
    let entry = Data::Structure(vec![
        Data::Structure(vec![Data::float32(42.5)]),
        Data::BitString(BitString::zeros(13)),
        Data::UtcTime(UtcTime {
            seconds: 1_700_000_000,
            fraction: 0x800000,
            quality: 0x0a,
        }),
    ]);
    MmsPdu::ConfirmedResponse(ConfirmedResponse {
        invoke_id: 2,
        service: ConfirmedServiceResponse::Read(ReadResponse {
            spec: None,
            results: vec![
                AccessResult::Success(entry.clone()),
                AccessResult::Success(entry),
            ],
        }),
    })
}

fn bench(c: &mut Criterion) {
    let lim = MmsLimits::default();
    let req = read_request();
    let req_bytes = req.encode();
    let resp = read_response();
    let resp_bytes = resp.encode();
    c.bench_function("encode read request", |b| {
        b.iter(|| black_box(&req).encode())
    });
    c.bench_function("decode read request", |b| {
        b.iter(|| MmsPdu::decode(black_box(&req_bytes), &lim).unwrap())
    });
    c.bench_function("encode read response", |b| {
        b.iter(|| black_box(&resp).encode())
    });
    c.bench_function("decode read response", |b| {
        b.iter(|| MmsPdu::decode(black_box(&resp_bytes), &lim).unwrap())
    });
    let server = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let InitiateOutcome::Accepted { association, .. } =
        server.accept_initiate(&client::initiate_request_pdu(&ClientProposal::default()))
    else {
        return;
    };
    c.bench_function("server read round trip", |b| {
        b.iter(|| association.handle_pdu(black_box(&req_bytes)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
