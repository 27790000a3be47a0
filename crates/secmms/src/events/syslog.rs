//! RFC 5424 syslog output for security events (IEC 62351-4 §6.2.9 reports through IEC 62351-14,
//! whose syslog mapping §14.5 quotes), over UDP (RFC 5426) or a local unix datagram socket.
//!
//! Message layout (one datagram per event):
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME secmms PROCID MSGID [secmms@32473 id="…" severity="…" assoc="…"] BOM MSG
//! ```
//!
//! * PRI = facility × 8 + [`Severity::syslog_severity`](secmms_pki::event::Severity::syslog_severity) (facility 13 gives the §14.5 values
//!   `<105>` alarm, `<107>` error, `<108>` warning, `<109>` notice; `<106>` incident);
//! * TIMESTAMP is RFC 3339 UTC with microseconds; HOSTNAME the configured or kernel host name
//!   (`-` if unknown); PROCID the process id; MSGID the event mnemonic (cut to 32 characters);
//! * STRUCTURED-DATA holds one element [`SD_ID`] with the event id, severity name and, when
//!   known, the association;
//! * MSG is the UTF-8 message preceded by the BOM RFC 5424 §6.4 asks for.
//!
//! With [`SyslogSink::with_log_anchor`] every message also carries `loghead="SEQ:HASH"`, the
//! current head of the tamper-evident log. Any such value is a valid anchor for
//! `secmms log verify --anchor`, so the syslog server's copy lets an auditor detect records cut
//! from the tail of the log file (see [`super::log`]).
//!
//! Sending never blocks and never fails the caller: sockets are non-blocking and a datagram
//! that cannot be sent is counted ([`SyslogSink::dropped`]) and dropped.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use secmms_pki::event::{SecurityEvent, SecurityEventSink};

use super::log::{ChainedLogSink, LogHead};
use super::time::rfc3339_utc;

/// Highest syslog facility code (local7), RFC 5424 §6.2.1.
pub const MAX_FACILITY: u8 = 23;
/// APP-NAME of every message.
pub const APP_NAME: &str = "secmms";
/// SD-ID of the structured-data element. 32473 is the private enterprise number IANA reserves
/// for documentation (RFC 5612); DECISION: kept until secmms has its own number.
pub const SD_ID: &str = "secmms@32473";
/// Largest datagram sent (octets); longer messages are cut. RFC 5426 §3.2: receivers should
/// accept 2048 octets.
pub const MAX_DATAGRAM: usize = 2048;
/// Longest MSGID, RFC 5424 §6.2.7.
pub const MAX_MSGID: usize = 32;
/// Most characters of the association copied into STRUCTURED-DATA.
pub const MAX_SD_ASSOCIATION: usize = 128;
/// Longest HOSTNAME, RFC 5424 §6.2.4.
pub const MAX_HOSTNAME: usize = 255;

/// Errors creating a syslog sink.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    /// The destination string is not `udp:HOST:PORT`, `HOST:PORT` or `unix:PATH`.
    #[error("invalid syslog destination `{0}`: use udp:HOST:PORT, HOST:PORT or unix:PATH")]
    Syntax(String),
    /// The host name did not resolve.
    #[error("syslog destination `{dest}`: {source}")]
    Resolve {
        /// The destination.
        dest: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The socket could not be created.
    #[error("syslog socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The facility is not in `0..=23`.
    #[error("syslog facility {0} is not in 0..=23")]
    Facility(u8),
}

/// Where syslog messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    /// A syslog server over UDP (RFC 5426), usually port 514.
    Udp(SocketAddr),
    /// A local unix datagram socket, usually `/dev/log`.
    Unix(PathBuf),
}

impl SyslogTarget {
    /// Checks the syntax of a destination string without resolving it.
    pub fn parse_syntax(s: &str) -> Result<(), SyslogError> {
        if let Some(p) = s.strip_prefix("unix:") {
            return if p.is_empty() {
                Err(SyslogError::Syntax(s.into()))
            } else {
                Ok(())
            };
        }
        let hp = s.strip_prefix("udp:").unwrap_or(s);
        match hp.rsplit_once(':') {
            Some((h, p))
                if !h.is_empty()
                    && p.parse::<u16>().is_ok()
                    && !h.contains('/')
                    && (!h.contains(':') || (h.starts_with('[') && h.ends_with(']'))) =>
            {
                Ok(())
            }
            _ => Err(SyslogError::Syntax(s.into())),
        }
    }

    /// Parses `udp:HOST:PORT`, `HOST:PORT` (UDP) or `unix:PATH`, resolving the host name.
    pub fn parse(s: &str) -> Result<SyslogTarget, SyslogError> {
        Self::parse_syntax(s)?;
        if let Some(p) = s.strip_prefix("unix:") {
            return Ok(SyslogTarget::Unix(PathBuf::from(p)));
        }
        let hp = s.strip_prefix("udp:").unwrap_or(s);
        let addr = hp
            .to_socket_addrs()
            .map_err(|source| SyslogError::Resolve {
                dest: s.into(),
                source,
            })?
            .next()
            .ok_or_else(|| SyslogError::Syntax(s.into()))?;
        Ok(SyslogTarget::Udp(addr))
    }
}

enum Socket {
    Udp(UdpSocket, SocketAddr),
    Unix(UnixDatagram, PathBuf),
}

/// A [`SecurityEventSink`] sending RFC 5424 messages (see the module docs).
pub struct SyslogSink {
    socket: Socket,
    facility: u8,
    hostname: String,
    procid: String,
    dropped: AtomicU64,
    anchor: Option<Arc<ChainedLogSink>>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dest = match &self.socket {
            Socket::Udp(_, a) => format!("udp:{a}"),
            Socket::Unix(_, p) => format!("unix:{}", p.display()),
        };
        f.debug_struct("SyslogSink")
            .field("dest", &dest)
            .field("facility", &self.facility)
            .finish()
    }
}

fn printable_ascii(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if out.is_empty() {
        "-".into()
    } else {
        out
    }
}

fn kernel_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| printable_ascii(h.trim(), MAX_HOSTNAME))
        .unwrap_or_else(|_| "-".into())
}

/// Escapes an SD-PARAM value (RFC 5424 §6.3.3: `"`, `\` and `]`).
fn sd_escape(v: &str, out: &mut String) {
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Formats one RFC 5424 message (see the module docs), cut to [`MAX_DATAGRAM`] octets at a
/// character boundary. `facility` must be at most [`MAX_FACILITY`]; `loghead`, when given, is
/// added as the `loghead` SD-PARAM.
pub fn format_rfc5424(
    event: &SecurityEvent,
    facility: u8,
    time: SystemTime,
    hostname: &str,
    procid: &str,
    loghead: Option<&LogHead>,
) -> String {
    let pri =
        u16::from(facility.min(MAX_FACILITY)) * 8 + u16::from(event.severity.syslog_severity());
    let mut s = format!(
        "<{pri}>1 {} {} {APP_NAME} {} {} [{SD_ID} id=\"",
        rfc3339_utc(time),
        printable_ascii(hostname, MAX_HOSTNAME),
        printable_ascii(procid, 128),
        printable_ascii(event.mnemonic, MAX_MSGID),
    );
    sd_escape(&event.id.to_string(), &mut s);
    s.push_str("\" severity=\"");
    s.push_str(event.severity.as_str());
    s.push('"');
    if let Some(a) = &event.association {
        s.push_str(" assoc=\"");
        // Bounded so the header and SD always fit in one datagram; only MSG is ever cut.
        let a: String = a.chars().take(MAX_SD_ASSOCIATION).collect();
        sd_escape(&a, &mut s);
        s.push('"');
    }
    if let Some(h) = loghead {
        s.push_str(&format!(" loghead=\"{h}\""));
    }
    s.push_str("] \u{feff}");
    s.push_str(&event.message);
    if s.len() > MAX_DATAGRAM {
        let mut end = MAX_DATAGRAM;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl SyslogSink {
    /// A sink sending to `target` with `facility` (0..=23; 13 "log audit" matches §14.5).
    pub fn new(target: SyslogTarget, facility: u8) -> Result<SyslogSink, SyslogError> {
        if facility > MAX_FACILITY {
            return Err(SyslogError::Facility(facility));
        }
        let socket = match target {
            SyslogTarget::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(local)?;
                s.set_nonblocking(true)?;
                Socket::Udp(s, addr)
            }
            SyslogTarget::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.set_nonblocking(true)?;
                Socket::Unix(s, path)
            }
        };
        Ok(SyslogSink {
            socket,
            facility,
            hostname: kernel_hostname(),
            procid: std::process::id().to_string(),
            dropped: AtomicU64::new(0),
            anchor: None,
        })
    }

    /// Overrides the HOSTNAME field.
    pub fn with_hostname(mut self, hostname: &str) -> Self {
        self.hostname = printable_ascii(hostname, MAX_HOSTNAME);
        self
    }

    /// Adds the head of `log` to every message (`loghead="SEQ:HASH"`), so the syslog server
    /// keeps anchors for `secmms log verify --anchor`. Put the log before this sink in a
    /// [`super::FanoutSink`] so the head already includes the event being sent.
    pub fn with_log_anchor(mut self, log: Arc<ChainedLogSink>) -> Self {
        self.anchor = Some(log);
        self
    }

    /// Number of messages that could not be sent.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl SecurityEventSink for SyslogSink {
    fn record(&self, event: &SecurityEvent) {
        let msg = format_rfc5424(
            event,
            self.facility,
            SystemTime::now(),
            &self.hostname,
            &self.procid,
            self.anchor.as_ref().and_then(|l| l.head()).as_ref(),
        );
        let r = match &self.socket {
            Socket::Udp(s, a) => s.send_to(msg.as_bytes(), a),
            Socket::Unix(s, p) => s.send_to(msg.as_bytes(), p),
        };
        if r.is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmms_pki::event::{EventId, Severity};
    use std::time::{Duration, UNIX_EPOCH};

    fn ev() -> SecurityEvent {
        SecurityEvent {
            id: EventId::e2e(1, 11),
            mnemonic: "REPLAY",
            severity: Severity::Alarm,
            message: "replayed HandshakeReq ]\"".into(),
            association: Some("as\"so]".into()),
        }
    }

    #[test]
    fn format_matches_rfc5424() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_606_633);
        let m = format_rfc5424(&ev(), 13, t, "host", "42", None);
        assert_eq!(
            m,
            "<105>1 2026-11-25T11:37:13.000000Z host secmms 42 REPLAY \
             [secmms@32473 id=\"IEC62351-4:1.11\" severity=\"alarm\" assoc=\"as\\\"so\\]\"] \
             \u{feff}replayed HandshakeReq ]\""
        );
        let mut e = ev();
        e.severity = Severity::Incident;
        e.association = None;
        e.mnemonic = "A_VERY_LONG_MNEMONIC_THAT_EXCEEDS_THIRTY_TWO";
        e.message = "x".repeat(5000);
        let m = format_rfc5424(&e, 4, t, "", "1", None);
        assert!(m.starts_with("<34>1 "), "{m}");
        assert!(m.contains(" - secmms 1 A_VERY_LONG_MNEMONIC_THAT_EXCEED ["));
        assert_eq!(m.len(), MAX_DATAGRAM);
    }

    /// Parses a message produced above into its header fields, SD and MSG.
    fn parse(m: &str) -> (u16, Vec<&str>, &str, &str) {
        let rest = m.strip_prefix('<').unwrap();
        let (pri, rest) = rest.split_once('>').unwrap();
        let mut parts = rest.splitn(7, ' ');
        let hdr: Vec<&str> = (0..6).map(|_| parts.next().unwrap()).collect();
        let rest = parts.next().unwrap();
        let (sd, msg) = rest.split_once("] \u{feff}").unwrap();
        (pri.parse().unwrap(), hdr, sd, msg)
    }

    #[test]
    fn sends_over_udp() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let target = SyslogTarget::parse(&format!("udp:{}", rx.local_addr().unwrap())).unwrap();
        let sink = SyslogSink::new(target, 13).unwrap().with_hostname("rtu-1");
        sink.record(&ev());
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        let m = std::str::from_utf8(&buf[..n]).unwrap();
        let (pri, hdr, sd, msg) = parse(m);
        assert_eq!(pri, 105);
        assert_eq!(hdr[0], "1");
        assert!(hdr[1].ends_with('Z') && hdr[1].len() == 27, "{}", hdr[1]);
        assert_eq!(hdr[2], "rtu-1");
        assert_eq!(hdr[3], "secmms");
        assert_eq!(hdr[4], std::process::id().to_string());
        assert_eq!(hdr[5], "REPLAY");
        assert!(
            sd.starts_with("[secmms@32473 id=\"IEC62351-4:1.11\""),
            "{sd}"
        );
        assert_eq!(msg, "replayed HandshakeReq ]\"");
        assert_eq!(sink.dropped(), 0);
    }

    #[test]
    fn sends_over_unix_datagram_and_never_fails() {
        let dir = std::env::temp_dir().join(format!("secmms-syslog-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let sink = SyslogSink::new(
            SyslogTarget::parse(&format!("unix:{}", path.display())).unwrap(),
            4,
        )
        .unwrap();
        sink.record(&ev());
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n])
            .unwrap()
            .starts_with("<33>1 "));
        drop(rx);
        let _ = std::fs::remove_file(&path);
        // Nobody listening: counted, not raised.
        sink.record(&ev());
        assert_eq!(sink.dropped(), 1);
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn destinations() {
        assert!(SyslogTarget::parse_syntax("udp:localhost:514").is_ok());
        assert!(SyslogTarget::parse_syntax("[::1]:514").is_ok());
        assert!(SyslogTarget::parse_syntax("unix:/dev/log").is_ok());
        assert!(SyslogTarget::parse_syntax("unix:").is_err());
        assert!(SyslogTarget::parse_syntax("localhost").is_err());
        assert!(SyslogTarget::parse_syntax("host:99999").is_err());
        assert!(matches!(
            SyslogSink::new(SyslogTarget::Unix("/x".into()), 24),
            Err(SyslogError::Facility(24))
        ));
    }
}
