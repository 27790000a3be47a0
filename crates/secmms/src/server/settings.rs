//! The server's limits, timeouts and tuning settings ([`ServerConfig`], the `[server]`
//! section).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::settings::{bounds::*, check_range, SettingError};

/// Server settings: limits, timeouts and tuning (`[server]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Plain RFC 1006 uses port 102, RFC 1006 over TLS port 3782 (§6.3).
    pub listen: String,
    /// Model file: `.cid`/`.icd`/`.scd`/`.xml` (SCL) or `.toml`. The built-in demo model when absent.
    pub model: Option<PathBuf>,
    /// Most associations established at once; one more is rejected (ACSE rejected-transient)
    /// once its security checks have passed.
    pub max_associations: usize,
    /// Most connections still being set up at once (TLS handshake, association, its checks):
    /// when a new connection finds them all taken, the oldest of them is dropped to make room,
    /// so connections that never authenticate cannot keep legitimate ones out.
    pub max_pending: usize,
    /// Most connections being set up from one source address; one more from that address is
    /// refused at once.
    pub max_pending_per_source: usize,
    /// Most connections (being set up or established) from one source address; 0: no limit.
    pub max_associations_per_source: usize,
    /// Seconds a new connection has to complete the association (input does not renew it).
    pub associate_timeout_secs: u64,
    /// Seconds without any input after which an association is aborted (0 = never).
    pub idle_timeout_secs: u64,
    /// Seconds a PDU may take from its first octet to its last (a TPKT, or a TSDU over several
    /// DTs), before and after the association is established; octets arriving do not renew it,
    /// so a peer that trickles octets cannot hold the association (0 = no limit).
    pub pdu_timeout_secs: u64,
    /// Seconds a write may wait for a peer that does not read (its socket buffers full) before
    /// the association is dropped; meanwhile it is served no further input. The idle timeout
    /// bounds it too when shorter (0 = no limit of its own).
    pub write_stall_secs: u64,
    /// Most TLS handshakes under way at once (a connection takes a slot when its first octets
    /// arrive and gives it back when its handshake ends); more wait, still pending, and are
    /// refused if no slot comes within `tls.handshake_timeout_secs` (0 = no limit).
    pub max_handshakes: usize,
    /// Most TLS handshakes started per second (a token bucket of this many; 0 = no limit);
    /// above it new connections wait as for `max_handshakes`.
    pub handshake_rate: u32,
    /// Most application-security checks of an AARQ (compatibility mode: the A-profile
    /// certificate and signature; native mode: the E2E HandshakeReq, its Diffie-Hellman and
    /// signatures) under way or waiting at once. An AARQ takes a place once it has arrived
    /// whole and gives it back when its checks are done; more wait, still pending, and are
    /// refused (with an ABRT) if no place comes before the association set-up deadline
    /// (`associate_timeout_secs`). Not used in plain mode (0 = no limit).
    pub max_security_checks: usize,
    /// Most application-security checks of AARQs started per second (a token bucket of this
    /// many; 0 = no limit); above it AARQs wait as for `max_security_checks`.
    pub security_check_rate: u32,
    /// Largest MMS PDU the server accepts to negotiate.
    pub max_pdu_size: u32,
    /// Most outstanding requests the server accepts to negotiate.
    pub max_outstanding: u16,
    /// Most responses coalesced into one write when a client pipelines requests: the answers
    /// to a burst of requests read at once leave in groups of this many, so the client works on
    /// the first ones while the server prepares the rest. 0 writes a whole burst at once (the
    /// fewest system calls: best when busy associations keep every core loaded anyway). Absent
    /// (the default): adaptive: while no more associations are established than half the CPUs,
    /// groups of a quarter of the burst (at least 1); beyond that, whole bursts.
    /// docs/PERFORMANCE.md has the measurements behind the default.
    pub response_group: Option<usize>,
    /// Microseconds an established association keeps polling its socket after writing before
    /// its thread sleeps (plain TCP and TLS over TCP). A client that has just been answered
    /// often sends its next request within tens of microseconds; polling through that gap saves
    /// the kernel wake-up that otherwise dominates a one-outstanding round trip, at the price of
    /// CPU time spent polling. A peer whose last request did not come within the window is not
    /// polled for until one does (`transport::PollingTcpStream`). 0 never polls; at most
    /// [`ServerConfig::MAX_BUSY_POLL_US`]. Absent (the default): 0 for a server embedded in
    /// another program (`ServerBuilder::bind`); for `secmms server`, the daemon
    /// (`Tuning::Daemon`), adaptive: [`ServerConfig::DEFAULT_BUSY_POLL_US`] while no more
    /// associations are established than half the CPUs (never on one CPU), 0 beyond that.
    /// docs/PERFORMANCE.md has the measurements.
    pub busy_poll_us: Option<u64>,
    /// Threads dedicated to associations, each running its own single-threaded runtime, started
    /// when the server binds; a new connection goes to the one serving the fewest connections.
    /// An association then lives on one thread that owns its socket's readiness, so its input
    /// wakes no other thread. 0 runs the associations as tasks of the runtime that runs the
    /// server (for embedding in an application's runtime; with many busy associations on few
    /// CPUs its work stealing gives more throughput, see docs/PERFORMANCE.md). At most
    /// [`ServerConfig::MAX_WORKER_THREADS`]. Absent (the default): 0 for a server embedded in
    /// another program (`ServerBuilder::bind`); one per CPU for `secmms server`, the daemon
    /// (`Tuning::Daemon`).
    pub worker_threads: Option<usize>,
}

impl ServerConfig {
    /// The adaptive polling window of [`ServerConfig::busy_poll_us`], microseconds.
    pub const DEFAULT_BUSY_POLL_US: u64 = 100;
    /// Largest [`ServerConfig::busy_poll_us`] accepted (10 ms: polling is for gaps of
    /// microseconds; longer windows only burn CPU time).
    pub const MAX_BUSY_POLL_US: u64 = 10_000;
    /// Largest [`ServerConfig::worker_threads`] accepted.
    pub const MAX_WORKER_THREADS: usize = 1024;

    /// Checks every value against its range ([`crate::settings::bounds`]).
    pub fn validate(&self) -> Result<(), SettingError> {
        let s = self;
        let checks: [(&'static str, u64, (u64, u64)); 17] = [
            (
                "server.max_security_checks",
                s.max_security_checks as u64,
                (0, ASSOCIATIONS.1),
            ),
            (
                "server.security_check_rate",
                u64::from(s.security_check_rate),
                (0, 1_000_000),
            ),
            (
                "server.max_handshakes",
                s.max_handshakes as u64,
                (0, ASSOCIATIONS.1),
            ),
            (
                "server.handshake_rate",
                u64::from(s.handshake_rate),
                (0, 1_000_000),
            ),
            (
                "server.max_associations",
                s.max_associations as u64,
                ASSOCIATIONS,
            ),
            ("server.max_pending", s.max_pending as u64, ASSOCIATIONS),
            (
                "server.max_pending_per_source",
                s.max_pending_per_source as u64,
                ASSOCIATIONS,
            ),
            (
                "server.max_associations_per_source",
                s.max_associations_per_source as u64,
                (0, ASSOCIATIONS.1),
            ),
            ("server.pdu_timeout_secs", s.pdu_timeout_secs, IDLE_SECS),
            ("server.write_stall_secs", s.write_stall_secs, IDLE_SECS),
            (
                "server.associate_timeout_secs",
                s.associate_timeout_secs,
                TIMEOUT_SECS,
            ),
            ("server.idle_timeout_secs", s.idle_timeout_secs, IDLE_SECS),
            ("server.max_pdu_size", u64::from(s.max_pdu_size), PDU_SIZE),
            (
                "server.max_outstanding",
                u64::from(s.max_outstanding),
                OUTSTANDING,
            ),
            (
                "server.response_group",
                s.response_group.unwrap_or(0) as u64,
                RESPONSE_GROUP,
            ),
            (
                "server.busy_poll_us",
                s.busy_poll_us.unwrap_or(0),
                (0, ServerConfig::MAX_BUSY_POLL_US),
            ),
            (
                "server.worker_threads",
                s.worker_threads.unwrap_or(0) as u64,
                (0, ServerConfig::MAX_WORKER_THREADS as u64),
            ),
        ];
        for (field, value, range) in checks {
            check_range(field, value, range)?;
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:102".into(),
            model: None,
            max_associations: 1000,
            max_pending: 256,
            max_pending_per_source: 128,
            max_associations_per_source: 0,
            associate_timeout_secs: 10,
            idle_timeout_secs: 600,
            pdu_timeout_secs: 30,
            write_stall_secs: 30,
            max_handshakes: 64,
            handshake_rate: 1000,
            max_security_checks: 64,
            security_check_rate: 500,
            max_pdu_size: 65_000,
            max_outstanding: 16,
            response_group: None,
            busy_poll_us: None,
            worker_threads: None,
        }
    }
}
