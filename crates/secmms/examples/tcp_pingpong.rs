//! The floors of one-outstanding request rates on this machine: two threads doing a bare TCP
//! ping-pong over loopback with the sizes of an MMS Read of one FLOAT32 on the wire (a 69-octet
//! request TPKT, a 37-octet response TPKT), `TCP_NODELAY`, no OSI, no MMS, no async runtime. The
//! client blocks in `read` like any client that sleeps while it waits. The server either blocks
//! too (`blocking`, the default: the floor of every server that sleeps between requests) or
//! polls its non-blocking socket without sleeping (`polling`: the floor of a server that polls,
//! as ours does for `server.busy_poll_us` after each answer). A client and a server that do
//! nothing else reach these rates, so `scripts/bench-peers.sh` prints them beside the
//! 1-outstanding figures.
//!
//! ```text
//! cargo run --release -p secmms --example tcp_pingpong -- [SECONDS] [blocking|polling]
//! ```
//! Prints `round_trips_per_sec <rate>`.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const REQUEST: usize = 69;
const RESPONSE: usize = 37;

fn main() -> std::io::Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let polling = match std::env::args().nth(2).as_deref() {
        None | Some("blocking") => false,
        Some("polling") => true,
        Some(other) => {
            eprintln!("unknown server mode {other:?}: blocking or polling");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_nonblocking(polling)?;
        let mut req = [0u8; REQUEST];
        let resp = [0u8; RESPONSE];
        loop {
            let mut got = 0;
            while got < REQUEST {
                match s.read(&mut req[got..]) {
                    Ok(0) => return Ok(()),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Ok(()),
                }
            }
            let mut sent = 0;
            while sent < RESPONSE {
                match s.write(&resp[sent..]) {
                    Ok(n) => sent += n,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let req = [0u8; REQUEST];
    let mut resp = [0u8; RESPONSE];
    let run = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < run {
        c.write_all(&req)?;
        c.read_exact(&mut resp)?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(c);
    let _ = server.join();
    println!("round_trips_per_sec {rate:.0}");
    Ok(())
}
