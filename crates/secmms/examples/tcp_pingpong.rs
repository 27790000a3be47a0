//! The floor of one-outstanding request rates on this machine: two threads doing a bare TCP
//! ping-pong over loopback with the sizes of an MMS Read of one FLOAT32 on the wire (a 69-octet
//! request TPKT, a 37-octet response TPKT), blocking sockets, `TCP_NODELAY`, no OSI, no MMS, no
//! async runtime. A client that does nothing and a server that does nothing reach this rate; no
//! MMS server answering one request at a time can go faster with any client, so
//! `scripts/bench-peers.sh` prints it beside the 1-outstanding figures.
//!
//! ```text
//! cargo run --release -p secmms --example tcp_pingpong -- [SECONDS]
//! ```
//! Prints `round_trips_per_sec <rate>`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const REQUEST: usize = 69;
const RESPONSE: usize = 37;

fn main() -> std::io::Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut req = [0u8; REQUEST];
        let resp = [0u8; RESPONSE];
        loop {
            if s.read_exact(&mut req).is_err() {
                return Ok(());
            }
            s.write_all(&resp)?;
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
