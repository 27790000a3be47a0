//! Orderly release after conclude (issue "The newcomer path", item 3).
//!
//! libiec61850 concludes MMS in the data phase (conclude-RequestPDU as data, conclude-ResponsePDU
//! back) and then sends an RLRQ without user data. Our RLRE must then be bare: a second,
//! unrequested conclude-ResponsePDU is a protocol error. A peer that carries the
//! conclude-RequestPDU inside the RLRQ (as our own client does) still gets its answer in the
//! RLRE. The peers are raw sans-IO `secmms_osi::Association`s driven over TCP.

use std::time::Duration;

use secmms::{Config, ServerHandle};
use secmms_mms::client::{initiate_request_pdu, ClientProposal};
use secmms_mms::{MmsLimits, MmsPdu};
use secmms_osi::{Association, OsiConfig, OsiEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on every wait: a hang fails the test instead of blocking it.
const GUARD: Duration = Duration::from_secs(20);

async fn start() -> (ServerHandle, String) {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.worker_threads = Some(0);
    let server = cfg.server_builder().bind().await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    (server.spawn().unwrap(), addr)
}

async fn flush(stream: &mut TcpStream, assoc: &mut Association) {
    while let Some(out) = assoc.poll_transmit() {
        stream.write_all(&out).await.unwrap();
    }
}

/// Reads until the association reports an event.
async fn next_event(stream: &mut TcpStream, assoc: &mut Association) -> OsiEvent {
    let mut buf = vec![0u8; 8192];
    loop {
        flush(stream, assoc).await;
        if let Some(ev) = assoc.poll_event() {
            return ev;
        }
        let n = tokio::time::timeout(GUARD, stream.read(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        if n == 0 {
            return OsiEvent::Closed;
        }
        assoc.handle_input(&buf[..n]).unwrap();
    }
}

async fn associate(addr: &str) -> (TcpStream, Association) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut assoc = Association::initiator(OsiConfig::default());
    assoc
        .connect(initiate_request_pdu(&ClientProposal::default()))
        .unwrap();
    match next_event(&mut stream, &mut assoc).await {
        OsiEvent::AssociateConfirm { .. } => {}
        other => panic!("association failed: {other:?}"),
    }
    (stream, assoc)
}

#[tokio::test]
async fn rlre_after_data_phase_conclude_carries_no_second_conclude_response() {
    let (server, addr) = start().await;
    let (mut stream, mut assoc) = associate(&addr).await;

    // Conclude in the data phase, as libiec61850 does.
    assoc.send_data(&MmsPdu::ConcludeRequest.encode()).unwrap();
    match next_event(&mut stream, &mut assoc).await {
        OsiEvent::Data { pdu, .. } => assert_eq!(
            MmsPdu::decode(&pdu, &MmsLimits::default()).unwrap(),
            MmsPdu::ConcludeResponse
        ),
        other => panic!("expected the conclude-ResponsePDU, got {other:?}"),
    }
    // Then a bare RLRQ: the RLRE carries no MMS PDU.
    assoc.release(None).unwrap();
    match next_event(&mut stream, &mut assoc).await {
        OsiEvent::ReleaseConfirm { user_data, .. } => assert_eq!(
            user_data, None,
            "RLRE must not carry a second, unrequested conclude-ResponsePDU"
        ),
        other => panic!("expected the RLRE, got {other:?}"),
    }
    server.shutdown();
}

#[tokio::test]
async fn rlrq_carrying_conclude_is_answered_with_conclude_response() {
    let (server, addr) = start().await;
    let (mut stream, mut assoc) = associate(&addr).await;
    assoc
        .release(Some(MmsPdu::ConcludeRequest.encode()))
        .unwrap();
    match next_event(&mut stream, &mut assoc).await {
        OsiEvent::ReleaseConfirm { user_data, .. } => assert_eq!(
            MmsPdu::decode(
                &user_data.expect("conclude-ResponsePDU"),
                &MmsLimits::default()
            )
            .unwrap(),
            MmsPdu::ConcludeResponse
        ),
        other => panic!("expected the RLRE, got {other:?}"),
    }
    server.shutdown();
}

#[tokio::test]
async fn bare_rlrq_without_conclude_gets_bare_rlre() {
    let (server, addr) = start().await;
    let (mut stream, mut assoc) = associate(&addr).await;
    assoc.release(None).unwrap();
    match next_event(&mut stream, &mut assoc).await {
        OsiEvent::ReleaseConfirm { user_data, .. } => assert_eq!(user_data, None),
        other => panic!("expected the RLRE, got {other:?}"),
    }
    server.shutdown();
}
