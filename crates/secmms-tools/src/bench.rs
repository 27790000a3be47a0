//! `secmms bench`: a load generator for any MMS server. It opens N associations, keeps M confirmed
//! Read requests outstanding on each, and reports the request rate and latency percentiles.
//! Latencies are kept in a bounded histogram, so any run length takes constant memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use secmms_mms::pdu::{ConfirmedServiceRequest, ReadRequest, VariableAccessSpecification};

use secmms::client::{Client, ClientError};
use secmms::config::Config;

use crate::histogram::Histogram;
use crate::load::{self, LoadSpec};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchParams {
    /// Server address.
    pub addr: String,
    /// Concurrent associations.
    pub associations: usize,
    /// Outstanding requests per association.
    pub outstanding: usize,
    /// Measured duration, after every association is up.
    pub duration: Duration,
    /// The variable every request reads.
    pub reference: String,
    /// Client configuration (timeouts, proposals, OSI addressing).
    pub config: Config,
}

/// Progress, reported about once a second.
#[derive(Debug, Clone, Copy)]
pub struct BenchProgress {
    /// Time since the measurement started.
    pub elapsed: Duration,
    /// Requests completed so far.
    pub requests: u64,
    /// Rate over the last interval, requests per second.
    pub rate: f64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Server address.
    pub addr: String,
    /// Associations.
    pub associations: usize,
    /// Outstanding requests per association, as asked.
    pub outstanding: usize,
    /// Outstanding requests per association actually kept: fewer than asked when the server
    /// negotiated a lower limit in the initiate exchange (the smallest over the associations).
    pub effective_outstanding: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Successful requests in the measured window.
    pub requests: u64,
    /// Failed requests (timeouts, errors, lost associations).
    pub errors: u64,
    /// Why associations ended during the run, one entry per association that did (index and
    /// reason), so a failed run says why.
    pub failed_associations: Vec<String>,
    /// Successful requests per second.
    pub requests_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Largest latency, microseconds.
    pub max_us: u64,
    /// Mean time to associate, microseconds.
    pub associate_mean_us: f64,
}

/// Errors that stop a run before it measures anything.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An association could not be established.
    #[error("association {index} failed: {source}")]
    Associate {
        /// Which association.
        index: usize,
        /// Why.
        source: ClientError,
    },
    /// The TLS client context could not be built.
    #[error("TLS: {0}")]
    Tls(#[from] secmms::tls::TlsError),
    /// The XMPP connection could not be made.
    #[error("XMPP: {0}")]
    Xmpp(secmms::xmpp::XmppEnvError),
    /// The reference does not resolve or cannot be read.
    #[error("cannot read {reference}: {source}")]
    Probe {
        /// The reference.
        reference: String,
        /// Why.
        source: ClientError,
    },
}

/// Runs the load and returns the report. `progress` is called about once a second.
pub async fn run(
    p: BenchParams,
    mut progress: impl FnMut(BenchProgress) + Send,
) -> Result<BenchReport, BenchError> {
    let sink = std::sync::Arc::new(secmms::tls::TracingSink);
    let mut builder = p.config.client_builder().events(sink.clone());
    // One TLS client context for every association (resumption works across them).
    if p.config.tls.enabled {
        let ip = p.addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
        let tls_cfg = builder
            .tls_config_for(ip)
            .map_err(|source| BenchError::Associate { index: 0, source })?;
        let ctx = secmms::tls::TlsContext::client(&tls_cfg, sink.clone())?;
        builder = builder.tls_context(std::sync::Arc::new(ctx));
    }
    // One application-security context (credentials, replay cache) for every association.
    let security = secmms::security::AppSecurity::build(
        &p.config.security,
        &p.config.tls,
        &p.config.osi,
        sink,
    )
    .map_err(|e| BenchError::Associate {
        index: 0,
        source: secmms::client::ClientError::Security(e),
    })?;
    let builder = builder.app_security(security);
    // Over XMPP: one connection, every association on it (clause 16).
    let xmpp = match (&p.config.xmpp, &p.config.client.xmpp_peer) {
        (Some(_), Some(peer)) => Some((
            secmms::xmpp::XmppConnection::connect(
                &p.config.xmpp_settings(),
                std::sync::Arc::new(secmms::tls::TracingSink),
            )
            .await
            .map_err(BenchError::Xmpp)?,
            peer.clone(),
        )),
        _ => None,
    };
    // Associate everything first, a bounded number at a time.
    let mut clients = Vec::with_capacity(p.associations);
    let mut assoc_hist = Histogram::new();
    let mut set = tokio::task::JoinSet::new();
    let parallel = 32;
    let mut next = 0;
    let mut results: Vec<Option<Client>> = (0..p.associations).map(|_| None).collect();
    while next < p.associations || !set.is_empty() {
        while next < p.associations && set.len() < parallel {
            let (addr, builder, i) = (p.addr.clone(), builder.clone(), next);
            let xmpp = xmpp.clone();
            set.spawn(async move {
                let t = Instant::now();
                let r = match &xmpp {
                    Some((conn, peer)) => conn.associate(peer).await,
                    None => builder.connect(&addr).await,
                };
                (i, r, t.elapsed())
            });
            next += 1;
        }
        if let Some(Ok((i, r, d))) = set.join_next().await {
            match r {
                Ok(c) => {
                    assoc_hist.record(d);
                    results[i] = Some(c);
                }
                Err(source) => return Err(BenchError::Associate { index: i, source }),
            }
        }
    }
    clients.extend(results.into_iter().flatten());
    // Resolve the reference once (this may browse) so every request is a plain Read.
    let target = clients[0]
        .resolve(&p.reference)
        .await
        .map_err(|source| BenchError::Probe {
            reference: p.reference.clone(),
            source,
        })?;
    clients[0]
        .read_name(&target)
        .await
        .map_err(|source| BenchError::Probe {
            reference: p.reference.clone(),
            source,
        })?;

    let effective_outstanding = clients
        .iter()
        .map(|c| {
            p.outstanding.min(usize::from(
                c.negotiated().max_serv_outstanding_calling.max(1),
            ))
        })
        .min()
        .unwrap_or(p.outstanding);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    let start = Instant::now();
    let read = ConfirmedServiceRequest::Read(ReadRequest {
        specification_with_result: false,
        spec: VariableAccessSpecification::single(target.clone()),
    });
    for c in &clients {
        if c.runs_loops() {
            // The association task keeps the requests in flight itself (Client::run_loop).
            let spec = LoadSpec {
                service: read.clone(),
                outstanding: p.outstanding,
                duration: p.duration,
                completed: done.clone(),
            };
            let c = c.clone();
            workers.spawn(async move {
                match load::run(&c, spec).await {
                    Ok(o) => (o.latency, o.errors),
                    Err(e) => {
                        tracing::warn!("load not run: {e}");
                        (Histogram::new(), 1)
                    }
                }
            });
            continue;
        }
        for _ in 0..p.outstanding {
            let (c, stop, done, target) = (c.clone(), stop.clone(), done.clone(), target.clone());
            workers.spawn(async move {
                let mut h = Histogram::new();
                let mut errors = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match c.read_name(&target).await {
                        Ok(_) => {
                            h.record(t.elapsed());
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors += 1;
                            if c.is_closed() {
                                break;
                            }
                        }
                    }
                }
                (h, errors)
            });
        }
    }
    let mut last = (Instant::now(), 0u64);
    while start.elapsed() < p.duration {
        let left = p.duration.saturating_sub(start.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        let n = done.load(Ordering::Relaxed);
        let dt = last.0.elapsed().as_secs_f64().max(1e-9);
        progress(BenchProgress {
            elapsed: start.elapsed(),
            requests: n,
            rate: (n - last.1) as f64 / dt,
        });
        last = (Instant::now(), n);
    }
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::new();
    let mut errors = 0;
    while let Some(r) = workers.join_next().await {
        if let Ok((h, e)) = r {
            hist.merge(&h);
            errors += e;
        } else {
            errors += 1;
        }
    }
    // Every request counted was answered by now: the window ends when the last one was.
    let seconds = start.elapsed().as_secs_f64();
    let failed_associations: Vec<String> = clients
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_closed())
        .map(|(i, c)| {
            format!(
                "association {i}: {}",
                c.end_reason()
                    .unwrap_or_else(|| "ended (no reason recorded)".into())
            )
        })
        .collect();
    for c in clients {
        let _ = c.release().await;
    }
    let requests = hist.count();
    Ok(BenchReport {
        addr: p.addr,
        associations: p.associations,
        outstanding: p.outstanding,
        effective_outstanding,
        seconds,
        requests,
        errors,
        failed_associations,
        requests_per_sec: requests as f64 / seconds,
        p50_us: hist.quantile_us(0.50),
        p99_us: hist.quantile_us(0.99),
        mean_us: hist.mean_us(),
        max_us: hist.max_us(),
        associate_mean_us: assoc_hist.mean_us(),
    })
}
