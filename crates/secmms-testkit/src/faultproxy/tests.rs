//! Each fault kind on a real loopback connection: a test plays the client and the target.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const LOOPBACK: &str = "127.0.0.1:0";

/// A proxy under `plan` in front of a fresh listener; the test gets the client end and the
/// target's accepted end of one connection.
async fn connected(plan: FaultPlan) -> (FaultProxy, TcpStream, TcpStream) {
    let target = TcpListener::bind(LOOPBACK).await.unwrap();
    let proxy = FaultProxy::start(
        LOOPBACK.parse().unwrap(),
        target.local_addr().unwrap(),
        plan,
    )
    .await
    .unwrap();
    let client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (server, _) = target.accept().await.unwrap();
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (proxy, client, server)
}

/// Reads until EOF or an error; the octets and how it ended.
async fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) => return (got, Ok(())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return (got, Err(e)),
            Err(_) => panic!("no end of stream within 5 s (got {} octets)", got.len()),
        }
    }
}

async fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut v))
        .await
        .expect("in time")
        .expect("read");
    v
}

async fn only_record(proxy: &FaultProxy) -> ConnRecord {
    assert!(proxy.wait_idle(Duration::from_secs(5)).await, "still open");
    let mut r = proxy.records();
    assert_eq!(r.len(), 1);
    r.remove(0)
}

#[tokio::test]
async fn clean_passes_both_ways_unchanged_and_records_both_addresses() {
    let (proxy, mut client, mut server) = connected(FaultPlan::fixed(Fault::Clean, 0)).await;
    let (client_addr, upstream) = (client.local_addr().unwrap(), server.peer_addr().unwrap());
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let writer = {
        let data = data.clone();
        let (r, mut w) = client.into_split();
        tokio::spawn(async move {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
            r.reunite(w).unwrap()
        })
    };
    let (got, end) = read_to_end(&mut server).await;
    assert!(end.is_ok());
    assert_eq!(got, data);
    server.write_all(b"answer").await.unwrap();
    server.shutdown().await.unwrap();
    client = writer.await.unwrap();
    let (back, end) = read_to_end(&mut client).await;
    assert!(end.is_ok());
    assert_eq!(back, b"answer");
    let rec = only_record(&proxy).await;
    assert_eq!(rec.applied, None);
    assert_eq!(rec.octets, [200_000, 6]);
    assert_eq!(rec.client, client_addr);
    assert_eq!(rec.upstream, Some(upstream));
    assert_eq!(rec.ended.map(|e| e.1), Some(ConnEnd::Closed));
    assert_eq!(rec.applied_kind(), FaultKind::Clean);
}

#[tokio::test]
async fn delay_holds_chunks_of_both_directions_in_order() {
    let hold = Duration::from_millis(150);
    let plan = FaultPlan::fixed(Fault::Delay { hold, chunks: 2 }, 0);
    let (proxy, mut client, mut server) = connected(plan).await;
    let t = Instant::now();
    client.write_all(b"ping").await.unwrap();
    assert_eq!(read_exact(&mut server, 4).await, b"ping");
    assert!(t.elapsed() >= hold, "to the target after {:?}", t.elapsed());
    let t = Instant::now();
    server.write_all(b"pong").await.unwrap();
    assert_eq!(read_exact(&mut client, 4).await, b"pong");
    assert!(t.elapsed() >= hold, "to the client after {:?}", t.elapsed());
    // Two chunks delayed: the third goes at once.
    let t = Instant::now();
    client.write_all(b"more").await.unwrap();
    assert_eq!(read_exact(&mut server, 4).await, b"more");
    assert!(t.elapsed() < hold, "third chunk after {:?}", t.elapsed());
    drop((client, server));
    let rec = only_record(&proxy).await;
    let applied = rec.applied.expect("applied");
    assert_eq!(applied.effect, Effect::Held { chunks: 2 });
    assert_eq!(applied.after_octets, 0);
    assert_eq!(rec.applied_kind(), FaultKind::Delay);
}

#[tokio::test]
async fn reorder_swaps_two_consecutive_chunks_of_its_direction() {
    let mut plan = FaultPlan::fixed(
        Fault::Reorder {
            dir: Direction::ToTarget,
        },
        0,
    );
    plan.reorder_wait = Duration::from_secs(2);
    let (proxy, mut client, mut server) = connected(plan).await;
    client.write_all(b"first-").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.write_all(b"second").await.unwrap();
    assert_eq!(read_exact(&mut server, 12).await, b"secondfirst-");
    // The other direction is untouched, and so is what follows.
    server.write_all(b"back").await.unwrap();
    assert_eq!(read_exact(&mut client, 4).await, b"back");
    client.write_all(b"third").await.unwrap();
    assert_eq!(read_exact(&mut server, 5).await, b"third");
    drop((client, server));
    let rec = only_record(&proxy).await;
    let applied = rec.applied.expect("applied");
    assert_eq!(applied.effect, Effect::ChunksSwapped);
    assert_eq!(applied.dir, Direction::ToTarget);
}

#[tokio::test]
async fn reorder_swaps_the_halves_of_a_chunk_nothing_follows() {
    let mut plan = FaultPlan::fixed(
        Fault::Reorder {
            dir: Direction::ToClient,
        },
        0,
    );
    plan.reorder_wait = Duration::from_millis(50);
    let (proxy, mut client, mut server) = connected(plan).await;
    // The client's chunk is of the other direction: forwarded as it is.
    client.write_all(b"hello").await.unwrap();
    assert_eq!(read_exact(&mut server, 5).await, b"hello");
    server.write_all(b"abcdefgh").await.unwrap();
    assert_eq!(read_exact(&mut client, 8).await, b"efghabcd");
    drop((client, server));
    let rec = only_record(&proxy).await;
    let applied = rec.applied.expect("applied");
    assert_eq!(applied.effect, Effect::HalvesSwapped);
    assert_eq!(applied.after_octets, 5);
}

#[tokio::test]
async fn truncate_forwards_half_a_write_then_closes_both_sides() {
    let plan = FaultPlan::fixed(
        Fault::Truncate {
            dir: Direction::ToClient,
        },
        0,
    );
    let (proxy, mut client, mut server) = connected(plan).await;
    server.write_all(b"0123456789").await.unwrap();
    let (got, end) = read_to_end(&mut client).await;
    assert_eq!(got, b"01234");
    assert!(end.is_ok(), "{end:?}");
    let (got, end) = read_to_end(&mut server).await;
    assert!(got.is_empty());
    assert!(end.is_ok(), "{end:?}");
    let rec = only_record(&proxy).await;
    let applied = rec.applied.expect("applied");
    assert_eq!(applied.effect, Effect::Truncated { kept: 5, of: 10 });
    assert_eq!(rec.ended.map(|e| e.1), Some(ConnEnd::Fault));
}

#[tokio::test]
async fn reset_gives_both_peers_a_tcp_reset() {
    let (proxy, mut client, mut server) = connected(FaultPlan::fixed(Fault::Reset, 0)).await;
    client.write_all(b"x").await.unwrap();
    let (_, end) = read_to_end(&mut client).await;
    assert_eq!(end.unwrap_err().kind(), ErrorKind::ConnectionReset);
    let (got, end) = read_to_end(&mut server).await;
    assert!(got.is_empty());
    assert_eq!(end.unwrap_err().kind(), ErrorKind::ConnectionReset);
    let rec = only_record(&proxy).await;
    assert_eq!(rec.applied.map(|a| a.effect), Some(Effect::Reset));
}

#[tokio::test]
async fn kill_closes_both_peers_and_drops_the_chunk_in_hand() {
    let (proxy, mut client, mut server) = connected(FaultPlan::fixed(Fault::Kill, 0)).await;
    client.write_all(b"lost").await.unwrap();
    let (got, end) = read_to_end(&mut client).await;
    assert!(got.is_empty() && end.is_ok(), "{end:?}");
    let (got, end) = read_to_end(&mut server).await;
    assert!(got.is_empty() && end.is_ok(), "{end:?}");
    let rec = only_record(&proxy).await;
    assert_eq!(rec.applied.map(|a| a.effect), Some(Effect::Killed));
    assert_eq!(rec.octets, [4, 0]);
}

#[tokio::test]
async fn a_fault_waits_for_its_trigger_octets() {
    let (proxy, mut client, mut server) = connected(FaultPlan::fixed(Fault::Kill, 10)).await;
    client.write_all(b"1234").await.unwrap();
    assert_eq!(read_exact(&mut server, 4).await, b"1234");
    server.write_all(b"5678").await.unwrap();
    assert_eq!(read_exact(&mut client, 4).await, b"5678");
    // 8 octets so far; this chunk reaches 12 and is the one killed.
    client.write_all(b"9abc").await.unwrap();
    let (got, _) = read_to_end(&mut server).await;
    assert!(got.is_empty());
    let rec = only_record(&proxy).await;
    assert_eq!(rec.applied.map(|a| a.after_octets), Some(8));
}

#[tokio::test]
async fn the_target_unreachable_resets_the_client() {
    // A port nobody listens on: bind, note, release.
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind(LOOPBACK).unwrap();
        l.local_addr().unwrap()
    };
    let proxy = FaultProxy::start(
        LOOPBACK.parse().unwrap(),
        dead,
        FaultPlan::fixed(Fault::Clean, 0),
    )
    .await
    .unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (_, end) = read_to_end(&mut client).await;
    assert!(end.is_err() || end.is_ok());
    let rec = only_record(&proxy).await;
    assert_eq!(rec.upstream, None);
    assert_eq!(rec.ended.map(|e| e.1), Some(ConnEnd::NoTarget));
}

#[test]
fn the_plan_is_seeded_and_follows_its_mix() {
    let plan = FaultPlan::new(7, FaultMix::even(0.1));
    let again = FaultPlan::new(7, FaultMix::even(0.1));
    let other = FaultPlan::new(8, FaultMix::even(0.1));
    let draws: Vec<_> = (0..10_000).map(|i| plan.choose(i)).collect();
    assert_eq!(
        draws,
        (0..10_000).map(|i| again.choose(i)).collect::<Vec<_>>()
    );
    assert_ne!(
        draws,
        (0..10_000).map(|i| other.choose(i)).collect::<Vec<_>>()
    );
    let mut counts = std::collections::BTreeMap::new();
    for (f, trigger) in &draws {
        *counts.entry(f.kind()).or_insert(0u32) += 1;
        assert!(plan.trigger_octets.contains(trigger));
        if let Fault::Delay { hold, chunks } = f {
            assert!(plan.delay_hold.contains(hold));
            assert_eq!(*chunks, plan.delay_chunks);
        }
    }
    for kind in FaultKind::ALL {
        let n = counts.get(&kind).copied().unwrap_or(0);
        let expected = if kind == FaultKind::Clean {
            5_000
        } else {
            1_000
        };
        assert!(
            n.abs_diff(expected) < expected / 5,
            "{kind:?}: {n} of 10 000"
        );
    }
    // Both directions are drawn for the directed faults.
    let dirs: std::collections::BTreeSet<_> =
        draws.iter().filter_map(|(f, _)| f.direction()).collect();
    assert_eq!(dirs.len(), 2);
}
