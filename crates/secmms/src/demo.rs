//! `secmms demo`: a server and a client in one process on loopback, each step checked and
//! reported. The demo succeeds only when every step does.

use std::time::Instant;

use serde::Serialize;

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::server::Server;

/// One step of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct DemoStep {
    /// What was done.
    pub name: String,
    /// Whether it did what it should.
    pub ok: bool,
    /// What happened.
    pub detail: String,
    /// How long it took, microseconds.
    pub micros: u64,
}

/// The whole demo.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// True when every step succeeded.
    pub ok: bool,
    /// The steps in order.
    pub steps: Vec<DemoStep>,
}

struct Recorder<F: FnMut(&DemoStep)> {
    steps: Vec<DemoStep>,
    on_step: F,
}

impl<F: FnMut(&DemoStep)> Recorder<F> {
    fn record(&mut self, name: &str, started: Instant, r: Result<String, String>) -> bool {
        let ok = r.is_ok();
        let step = DemoStep {
            name: name.to_string(),
            ok,
            detail: r.unwrap_or_else(|e| e),
            micros: started.elapsed().as_micros() as u64,
        };
        (self.on_step)(&step);
        self.steps.push(step);
        ok
    }
}

fn err(e: ClientError) -> String {
    e.to_string()
}

/// Runs the demo; `on_step` sees each step as it completes.
pub async fn run_demo(on_step: impl FnMut(&DemoStep)) -> DemoReport {
    run_demo_with(None, on_step).await
}

/// Runs the demo, over TLS (clause 6) when `tls` is given: the server and the client both use
/// its certificate, key and trust anchors, so the certificate must suit both roles.
pub async fn run_demo_with(
    tls: Option<crate::tls::TlsConfig>,
    on_step: impl FnMut(&DemoStep),
) -> DemoReport {
    let mut rec = Recorder {
        steps: Vec::new(),
        on_step,
    };
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    if let Some(mut t) = tls {
        t.enabled = true;
        cfg.tls = t;
    }

    let t = Instant::now();
    let server = match Server::bind(cfg.clone()).await {
        Ok(s) => s,
        Err(e) => {
            rec.record("start server", t, Err(e.to_string()));
            return DemoReport {
                ok: false,
                steps: rec.steps,
            };
        }
    };
    let detail = format!(
        "listening on {} with the {} ({} variables)",
        server
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        server.model_description(),
        server.variable_count()
    );
    let handle = match server.spawn() {
        Ok(h) => h,
        Err(e) => {
            rec.record("start server", t, Err(e.to_string()));
            return DemoReport {
                ok: false,
                steps: rec.steps,
            };
        }
    };
    rec.record("start server", t, Ok(detail));
    let addr = handle.addr.to_string();

    let t = Instant::now();
    let client = match Client::connect(&addr, &cfg).await {
        Ok(c) => c,
        Err(e) => {
            rec.record("associate", t, Err(err(e)));
            handle.shutdown();
            return DemoReport {
                ok: false,
                steps: rec.steps,
            };
        }
    };
    let n = client.negotiated();
    rec.record(
        "associate",
        t,
        Ok(if cfg.tls.enabled {
            format!(
                "RFC 1006 over TLS (mutual authentication) + OSI + MMS; max PDU {} octets, {} outstanding, nesting {}",
                n.max_pdu_size, n.max_serv_outstanding_calling, n.nesting_level
            )
        } else {
            format!(
                "plain RFC 1006 + OSI + MMS; max PDU {} octets, {} outstanding, nesting {} (no TLS, no application security)",
                n.max_pdu_size, n.max_serv_outstanding_calling, n.nesting_level
            )
        }),
    );

    let t = Instant::now();
    let r = client
        .identify()
        .await
        .map(|i| format!("{} {} {}", i.vendor, i.model, i.revision))
        .map_err(err);
    rec.record("identify", t, r);

    let t = Instant::now();
    let domains = client.domains().await;
    let ok = matches!(&domains, Ok(d) if !d.is_empty());
    let domain = domains
        .as_ref()
        .ok()
        .and_then(|d| d.first().cloned())
        .unwrap_or_default();
    let r = match domains {
        Ok(d) if ok => Ok(format!("logical devices: {}", d.join(", "))),
        Ok(_) => Err("no logical devices".to_string()),
        Err(e) => Err(err(e)),
    };
    rec.record("browse devices", t, r);

    let t = Instant::now();
    let r = match client.variables(&domain).await {
        Ok(v) if !v.is_empty() => Ok(format!(
            "{} variables in {domain}, e.g. {}",
            v.len(),
            v[v.len() / 2]
        )),
        Ok(_) => Err(format!("no variables in {domain}")),
        Err(e) => Err(err(e)),
    };
    rec.record("browse variables", t, r);

    for reference in [
        format!("{domain}/LLN0.NamPlt.vendor[DC]"),
        format!("{domain}/GGIO1.AnIn1.mag.f[MX]"),
    ] {
        let t = Instant::now();
        let r = client
            .read(&reference)
            .await
            .map(|v| format!("{reference} = {v}"))
            .map_err(err);
        rec.record("read", t, r);
    }

    let t = Instant::now();
    let reference = format!("{domain}/LLN0.NamPlt.vendor[DC]");
    let r = async {
        client.write_str(&reference, "secmms-demo").await?;
        let v = client.read(&reference).await?;
        if v.to_string().contains("secmms-demo") {
            Ok(format!("{reference} := \"secmms-demo\", read back {v}"))
        } else {
            Err(ClientError::Unexpected(format!("read back {v}")))
        }
    }
    .await
    .map_err(err);
    rec.record("write and read back", t, r);

    let t = Instant::now();
    let reference = format!("{domain}/GGIO1.NoSuch.stVal[ST]");
    let r = match client.read(&reference).await {
        Err(e) => Ok(format!("{reference} refused as expected: {e}")),
        Ok(v) => Err(format!("{reference} unexpectedly read {v}")),
    };
    rec.record("read a missing object", t, r);

    let t = Instant::now();
    let r = client
        .release()
        .await
        .map(|_| "RLRQ/RLRE with MMS conclude".to_string())
        .map_err(err);
    rec.record("release", t, r);

    handle.shutdown();
    let ok = rec.steps.iter().all(|s| s.ok);
    DemoReport {
        ok,
        steps: rec.steps,
    }
}
