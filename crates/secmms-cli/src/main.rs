//! `secmms` — IEC 62351-4 secure MMS: server, client, load generator and demo.
//!
//! This binary only parses arguments and presents results; all protocol work is in the `secmms`
//! runtime crate and the sans-IO crates below it.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod cert_cmd;
mod client;
mod decode;
mod demo;
mod flags;
mod gateway;
mod log_cmd;
mod pics;
mod relay;
mod server;

/// Secure MMS (IEC 62351-4) for IEC 61850 and ICCP: server, client, load generator and demo.
#[derive(Parser, Debug)]
#[command(name = "secmms", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `secmms=debug`. Also read from RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    /// Runtime worker threads: 0 = one per core, 1 = everything on one thread (no cross-thread
    /// wake-ups; lowest latency per request on small machines). The server's associations run
    /// on their own threads (`[server] worker_threads`); for `server` this sizes the rest.
    #[arg(long, global = true, default_value_t = 0, env = "SECMMS_THREADS")]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a server and a client in one process on loopback and print what happened (exit 0 only if
    /// every step succeeded).
    Demo(demo::DemoArgs),
    /// Serve an IEC 61850 model over MMS.
    ///
    /// As a daemon the server tunes itself for the machine it owns: one association thread per
    /// CPU and a short busy-poll window after each answer while CPUs are spare (`[server]
    /// worker_threads`, `busy_poll_us`; docs/PERFORMANCE.md). A program that embeds
    /// `secmms::server::Server` gets neither unless its configuration asks: its associations
    /// run on the program's own runtime.
    Server(server::ServerArgs),
    /// Talk to an MMS server: identify, browse, read, write.
    Client(client::ClientArgs),
    /// Load generator: N associations x M outstanding reads against any MMS server.
    Bench(bench::BenchArgs),
    /// Print the conformance statement (IEC 62351-4 clause 17, Tables 6-13) for a configuration:
    /// what the standard asks, what this build supports, what the configuration uses.
    Pics(pics::PicsArgs),
    /// Upper-layer relay (IEC 62351-4 §15.5): forward associations to the next hop without any
    /// E2E key, re-terminating TLS per hop.
    Relay(relay::RelayArgs),
    /// Gateway: IEC 62351-4 (TLS + compatibility or native mode) in front of IEDs and clients
    /// that lack it, forwarding MMS unchanged; one TOML file, `--check-config`, SIGHUP reloads.
    Gateway(gateway::GatewayArgs),
    /// Security-event log tools: `secmms log verify FILE [--key FILE]` checks the hash chain.
    Log(log_cmd::LogArgs),
    /// Annex G certificate tooling: `ca`, `issue`, `crl`, `check FILE [--json]`.
    Cert(cert_cmd::CertArgs),
    /// Decode MMS in a pcap/pcapng capture (any port): TPKT to MMS, A-profile authentication
    /// value verified, E2E SecPDUs (exit 0 only if everything decoded and verified).
    Decode(decode::DecodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr (a supervisor's log pipe gone) must not take the process down: the
        // subscriber would report its own write failure with eprintln!, which panics then.
        .log_internal_errors(false)
        .init();
    let mut builder = match cli.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                b.worker_threads(n);
            }
            b
        }
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Server(a) => server::run(a).await,
        Command::Client(a) => client::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Relay(a) => relay::run(a).await,
        Command::Gateway(a) => gateway::run(a).await,
        Command::Pics(a) => pics::run(a),
        Command::Log(a) => log_cmd::run(a),
        Command::Cert(a) => cert_cmd::run(a),
        Command::Decode(a) => decode::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::with_default_port;
    use secmms::config::Config;

    #[test]
    fn default_ports() {
        assert_eq!(with_default_port("127.0.0.1", 102), "127.0.0.1:102");
        assert_eq!(with_default_port("127.0.0.1:10102", 102), "127.0.0.1:10102");
        assert_eq!(with_default_port("localhost", 3782), "localhost:3782");
        assert_eq!(with_default_port("[::1]:5", 102), "[::1]:5");
    }

    #[test]
    fn tls_flags_set_the_configuration_and_port_3782() {
        let cli = Cli::try_parse_from([
            "secmms", "client", "--tls", "--cert", "c.pem", "--key", "c.key", "--ca", "ca1.pem",
            "--ca", "ca2.pem", "--crl", "ca.crl", "identify",
        ])
        .unwrap();
        let Command::Client(a) = cli.command else {
            panic!("client")
        };
        let mut cfg = Config::default();
        assert_eq!(a.tls.apply(&mut cfg).unwrap(), 3782);
        assert!(cfg.tls.enabled);
        assert_eq!(cfg.tls.ca.len(), 2);
        assert_eq!(cfg.tls.crl.len(), 1);
        assert_eq!(with_default_port(&a.connect, 3782), "127.0.0.1:3782");

        // Without --tls: plain port 102, and TLS files alone are a usage error.
        let cli = Cli::try_parse_from(["secmms", "client", "identify"]).unwrap();
        let Command::Client(a) = cli.command else {
            panic!("client")
        };
        assert_eq!(a.tls.apply(&mut Config::default()).unwrap(), 102);
        let cli =
            Cli::try_parse_from(["secmms", "bench", "--connect", "h", "--cert", "x"]).unwrap();
        let Command::Bench(a) = cli.command else {
            panic!("bench")
        };
        assert!(a.tls.apply(&mut Config::default()).is_err());
        // --tls without certificate: clear error (mutual authentication is mandatory).
        let cli = Cli::try_parse_from(["secmms", "server", "--tls"]).unwrap();
        let Command::Server(a) = cli.command else {
            panic!("server")
        };
        let e = a.tls.apply(&mut Config::default()).unwrap_err();
        assert!(format!("{e:#}").contains("certificate"), "{e:#}");
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
