//! `secmms demo`: a server and a client in one process on loopback, each step checked and
//! reported. The demo succeeds only when every step does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use secmms_ber::Oid;
use secmms_pki::crypto::{OsRandom, SigningKey};
use secmms_pki::tooling::{
    create_ca, issue_end_entity, issue_tls, pem, Binding, Ca, EndEntityRequest, KeyType,
    TlsRequest, Validity, DEFAULT_SUBJECT_FORM,
};
use secmms_xmpp::XmppConfig;
use serde::Serialize;

use secmms::client::{Client, ClientError};
use secmms::config::Config;
use secmms::security::{AppMode, Encrypt};
use secmms::tls::TlsConfig;

/// Days the demo's throw-away certificates are valid.
const DEMO_CERT_DAYS: u32 = 2;

/// A throw-away PKI for the demo and tests, written to a fresh directory: one CA (`ca.pem`), a
/// TLS certificate per side (clause 6) and an Annex G application certificate per side bound to
/// the default AP-titles and AE-qualifiers (server 1.1.1.999.1 / 12, client 1.1.1.999 / 12).
/// The directory is removed when the value is dropped.
#[derive(Debug)]
pub struct DemoPki {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The CA certificate (PEM), the trust anchor of both sides.
    pub ca: PathBuf,
    /// Server TLS certificate and key (PEM).
    pub server_tls: (PathBuf, PathBuf),
    /// Client TLS certificate and key (PEM).
    pub client_tls: (PathBuf, PathBuf),
    /// Server application certificate and key (PEM), subject 1.1.1.999.1.12.
    pub server_app: (PathBuf, PathBuf),
    /// Client application certificate and key (PEM), subject 1.1.1.999.12.
    pub client_app: (PathBuf, PathBuf),
    /// The CA, for more certificates ([`DemoPki::issue_app`]).
    authority: Option<AppCa>,
}

impl Drop for DemoPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_key(path: &Path, key: &SigningKey) -> Result<(), String> {
    secmms::security::write_private_key(path, key).map_err(|e| format!("{}: {e}", path.display()))
}

/// A throw-away CA that writes Annex G application certificates (and TLS certificates) as PEM
/// files: the demo's PKI, and the one the tests and benchmarks use. P-256 keys, valid for two
/// days from a minute ago.
pub struct AppCa {
    ca: Ca,
    validity: Validity,
    /// The CA certificate (PEM), the trust anchor.
    pub ca_pem: PathBuf,
}

impl std::fmt::Debug for AppCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCa")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

fn tool_err(e: secmms_pki::tooling::ToolError) -> String {
    e.to_string()
}

fn write_cert(path: &Path, der: &[u8]) -> Result<(), String> {
    std::fs::write(path, pem("CERTIFICATE", der)).map_err(|e| format!("{}: {e}", path.display()))
}

impl AppCa {
    /// Creates the CA (common name `cn`) and writes its certificate to `ca_pem`.
    pub fn create(cn: &str, ca_pem: &Path) -> Result<AppCa, String> {
        let validity = Validity::days_from(secmms::events::time::unix_secs() - 60, DEMO_CERT_DAYS);
        let key = KeyType::P256.generate().map_err(tool_err)?;
        let der = create_ca(cn, &key, validity, &mut OsRandom).map_err(tool_err)?;
        write_cert(ca_pem, &der)?;
        Ok(AppCa {
            ca: Ca { cert_der: der, key },
            validity,
            ca_pem: ca_pem.to_path_buf(),
        })
    }

    /// Issues an Annex G application certificate bound to `binding` (G.6) and writes it and its
    /// key (0600) to `cert` and `key`.
    pub fn issue_app(&self, binding: Binding, cert: &Path, key: &Path) -> Result<(), String> {
        let k = KeyType::P256.generate().map_err(tool_err)?;
        let der = issue_end_entity(
            &EndEntityRequest {
                binding,
                subject_form: DEFAULT_SUBJECT_FORM,
                role: None,
                role_aor: String::new(),
                crl_url: None,
                ocsp_url: None,
                validity: self.validity,
            },
            k.pkey(),
            &self.ca,
            &mut OsRandom,
        )
        .map_err(tool_err)?;
        write_cert(cert, &der)?;
        write_key(key, &k)
    }

    /// Issues a TLS certificate for `localhost` / 127.0.0.1 (client and server use) and writes
    /// it and its key to `cert` and `key`.
    pub fn issue_tls(&self, common_name: &str, cert: &Path, key: &Path) -> Result<(), String> {
        let k = KeyType::P256.generate().map_err(tool_err)?;
        let der = issue_tls(
            &TlsRequest {
                common_name: common_name.to_string(),
                dns: vec!["localhost".into()],
                ips: vec![std::net::IpAddr::from([127, 0, 0, 1])],
                crl_url: None,
                ocsp_url: None,
                validity: self.validity,
            },
            k.pkey(),
            &self.ca,
            &mut OsRandom,
        )
        .map_err(tool_err)?;
        write_cert(cert, &der)?;
        write_key(key, &k)
    }
}

impl DemoPki {
    /// Creates the PKI in a new directory under `parent` (P-256 keys, valid for two days).
    pub fn create(parent: &Path) -> Result<DemoPki, String> {
        let mut rnd = [0u8; 8];
        secmms_pki::crypto::RandomSource::fill(&mut OsRandom, &mut rnd)
            .map_err(|e| e.to_string())?;
        let dir = parent.join(format!(
            "secmms-pki-{}-{}",
            std::process::id(),
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut pki = DemoPki {
            ca: dir.join("ca.pem"),
            server_tls: (
                dir.join("server-tls-cert.pem"),
                dir.join("server-tls-key.pem"),
            ),
            client_tls: (
                dir.join("client-tls-cert.pem"),
                dir.join("client-tls-key.pem"),
            ),
            server_app: (
                dir.join("server-app-cert.pem"),
                dir.join("server-app-key.pem"),
            ),
            client_app: (
                dir.join("client-app-cert.pem"),
                dir.join("client-app-key.pem"),
            ),
            dir,
            authority: None,
        };
        // On failure `pki` is dropped, which removes the directory.
        pki.fill()?;
        Ok(pki)
    }

    /// Issues one more application certificate from the demo CA, bound (Annex G.6) to
    /// `ap_title` (dotted) / `ae_qualifier`, written as `NAME-cert.pem` and `NAME-key.pem` in
    /// the directory; returns their paths.
    pub fn issue_app(
        &self,
        name: &str,
        ap_title: &str,
        ae_qualifier: u64,
    ) -> Result<(PathBuf, PathBuf), String> {
        let ca = self.authority.as_ref().ok_or("the demo CA is gone")?;
        let ap_title: Oid = ap_title
            .parse()
            .map_err(|_| format!("{ap_title}: not a dotted OID"))?;
        let cert = self.dir.join(format!("{name}-cert.pem"));
        let key = self.dir.join(format!("{name}-key.pem"));
        ca.issue_app(
            Binding::Osi {
                ap_title,
                ae_qualifier,
            },
            &cert,
            &key,
        )?;
        Ok((cert, key))
    }

    fn fill(&mut self) -> Result<(), String> {
        let ca = AppCa::create("secmms demo CA", &self.ca)?;
        for (name, (cert, key)) in [("server", &self.server_tls), ("client", &self.client_tls)] {
            ca.issue_tls(&format!("secmms demo {name}"), cert, key)?;
        }
        for (ap, (cert, key)) in [
            (&[1u64, 1, 1, 999, 1][..], &self.server_app),
            (&[1u64, 1, 1, 999][..], &self.client_app),
        ] {
            let binding = Binding::Osi {
                ap_title: Oid::new(ap).map_err(|x| format!("{x:?}"))?,
                ae_qualifier: 12,
            };
            ca.issue_app(binding, cert, key)?;
        }
        self.authority = Some(ca);
        Ok(())
    }

    /// The TLS section of one side (`server` true for the server).
    pub fn tls_config(&self, server: bool) -> TlsConfig {
        let (cert, key) = if server {
            &self.server_tls
        } else {
            &self.client_tls
        };
        TlsConfig {
            enabled: true,
            cert: Some(cert.clone()),
            key: Some(key.clone()),
            ca: vec![self.ca.clone()],
            ..TlsConfig::default()
        }
    }

    /// Sets the application security of one side in `cfg`.
    pub fn apply_security(&self, cfg: &mut Config, server: bool, mode: AppMode, encrypt: Encrypt) {
        let (cert, key) = if server {
            &self.server_app
        } else {
            &self.client_app
        };
        cfg.security.mode = mode;
        cfg.security.encrypt = encrypt;
        if mode != AppMode::Plain {
            cfg.security.app_cert = Some(cert.clone());
            cfg.security.app_key = Some(key.clone());
            cfg.security.ca = vec![self.ca.clone()];
        }
    }
}

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Application security (default: native mode).
    pub mode: AppMode,
    /// Native-mode protection (default: AES-GCM).
    pub encrypt: Encrypt,
    /// Run over TLS (default: yes).
    pub tls: bool,
    /// TLS credentials to use instead of the demo's own PKI (one certificate for both sides).
    pub tls_config: Option<TlsConfig>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            mode: AppMode::Native,
            encrypt: Encrypt::Gcm,
            tls: true,
            tls_config: None,
        }
    }
}

fn describe(opts: &DemoOptions) -> String {
    let transport = if opts.tls {
        "RFC 1006 over TLS with mutual authentication (clause 6)"
    } else {
        "plain RFC 1006 (no TLS)"
    };
    let app = match opts.mode {
        AppMode::Plain => "no application-layer security".to_string(),
        AppMode::Compat => {
            "A-security-profile: signed certificate + time in the ACSE authentication value (clause 11)"
                .to_string()
        }
        AppMode::Native => format!(
            "E2E security (clauses 13-15), data transfer {}",
            match opts.encrypt {
                Encrypt::Gcm => "encrypted with AES-GCM",
                Encrypt::Cbc => "encrypted with AES-CBC + HMAC-SHA256",
                Encrypt::None => "integrity-protected with HMAC-SHA256, not encrypted",
            }
        ),
    };
    format!("{transport}; {app}")
}

/// The MMS steps of the demo on an associated client: identify, browse, read, write and read
/// back, a refused read, release (described as `release_how`).
async fn client_steps<F: FnMut(&DemoStep)>(
    rec: &mut Recorder<F>,
    client: &Client,
    release_how: &str,
) {
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
        client
            .write_str(&reference, "secmms-demo")
            .await
            .map_err(err)?;
        let v = client.read(&reference).await.map_err(err)?;
        if v.to_string().contains("secmms-demo") {
            Ok(format!("{reference} := \"secmms-demo\", read back {v}"))
        } else {
            Err(format!("unexpected value read back: {v}"))
        }
    }
    .await;
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
        .map(|_| release_how.to_string())
        .map_err(err);
    rec.record("release", t, r);
}

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

/// Runs the demo with the default options; `on_step` sees each step as it completes.
pub async fn run_demo(on_step: impl FnMut(&DemoStep)) -> DemoReport {
    run_demo_opts(DemoOptions::default(), on_step).await
}

/// Runs the demo over plain TCP without application security, or over TLS (clause 6) with the
/// given credentials when `tls` is given: the server and the client both use its certificate,
/// key and trust anchors, so the certificate must suit both roles.
pub async fn run_demo_with(tls: Option<TlsConfig>, on_step: impl FnMut(&DemoStep)) -> DemoReport {
    run_demo_opts(
        DemoOptions {
            mode: AppMode::Plain,
            tls: tls.is_some(),
            tls_config: tls,
            ..DemoOptions::default()
        },
        on_step,
    )
    .await
}

fn failed(steps: Vec<DemoStep>) -> DemoReport {
    DemoReport { ok: false, steps }
}

/// Runs the demo as `opts` say. When TLS or application security is on and no TLS credentials
/// are given, the demo first builds its own PKI (one CA, a TLS and an application certificate
/// per side) in a temporary directory.
pub async fn run_demo_opts(opts: DemoOptions, on_step: impl FnMut(&DemoStep)) -> DemoReport {
    let mut rec = Recorder {
        steps: Vec::new(),
        on_step,
    };
    let need_pki = opts.mode != AppMode::Plain || (opts.tls && opts.tls_config.is_none());
    let pki = if need_pki {
        let t = Instant::now();
        match DemoPki::create(&std::env::temp_dir()) {
            Ok(p) => {
                rec.record(
                    "build PKI",
                    t,
                    Ok(format!(
                        "CA, TLS and Annex G application certificates (P-256) in {}",
                        p.dir.display()
                    )),
                );
                Some(p)
            }
            Err(e) => {
                rec.record("build PKI", t, Err(e));
                return failed(rec.steps);
            }
        }
    } else {
        None
    };
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    let mut client_cfg = Config::default();
    if opts.tls {
        match (&opts.tls_config, &pki) {
            (Some(t), _) => {
                let mut t = t.clone();
                t.enabled = true;
                cfg.tls = t.clone();
                client_cfg.tls = t;
            }
            (None, Some(p)) => {
                cfg.tls = p.tls_config(true);
                client_cfg.tls = p.tls_config(false);
            }
            (None, None) => unreachable!("a PKI is built whenever TLS has no credentials"),
        }
    }
    if let Some(p) = &pki {
        p.apply_security(&mut cfg, true, opts.mode, opts.encrypt);
        p.apply_security(&mut client_cfg, false, opts.mode, opts.encrypt);
    }
    let protections = describe(&opts);

    let t = Instant::now();
    let server = match cfg.server_builder().bind().await {
        Ok(s) => s,
        Err(e) => {
            rec.record("start server", t, Err(e.to_string()));
            return failed(rec.steps);
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
            return failed(rec.steps);
        }
    };
    rec.record("start server", t, Ok(detail));
    let addr = handle.addr.to_string();

    let t = Instant::now();
    let client = match client_cfg.client_builder().connect(&addr).await {
        Ok(c) => c,
        Err(e) => {
            rec.record("associate", t, Err(err(e)));
            handle.shutdown();
            return failed(rec.steps);
        }
    };
    let n = client.negotiated();
    rec.record(
        "associate",
        t,
        Ok(format!(
            "{protections}; agreed: {}; MMS max PDU {} octets, {} outstanding, nesting {}",
            client.protection(),
            n.max_pdu_size,
            n.max_serv_outstanding_calling,
            n.nesting_level
        )),
    );

    client_steps(&mut rec, &client, "RLRQ/RLRE with MMS conclude").await;

    let t = Instant::now();
    let st = &handle.stats;
    let (assocs, failed_n) = (
        st.associations.load(std::sync::atomic::Ordering::Relaxed),
        st.failed.load(std::sync::atomic::Ordering::Relaxed),
    );
    let agreed = client.protection().to_string();
    rec.record(
        "protections in force",
        t,
        if failed_n == 0 && assocs == 1 {
            Ok(format!("{protections} (agreed in the handshake: {agreed})"))
        } else {
            Err(format!(
                "server saw {assocs} associations, {failed_n} failed"
            ))
        },
    );

    handle.shutdown();
    let ok = rec.steps.iter().all(|s| s.ok);
    DemoReport {
        ok,
        steps: rec.steps,
    }
}

/// The XMPP server the XMPP demo runs through.
#[derive(Debug, Clone, Default)]
pub enum DemoXmppServer {
    /// A throw-away Prosody on loopback with two accounts of its own (needs the `prosody`
    /// package).
    #[default]
    Private,
    /// A reachable server where two accounts exist: the MMS server logs in with `server`, the
    /// client with `client` (each names the server address, the JID, the password and the trust
    /// anchors of the server's TLS certificate).
    External {
        /// The MMS server's account.
        server: Box<XmppConfig>,
        /// The MMS client's account.
        client: Box<XmppConfig>,
    },
}

/// Runs the demo over XMPP (clause 16) through a throw-away Prosody on loopback
/// ([`DemoXmppServer::Private`]); see [`run_demo_xmpp_on`].
pub async fn run_demo_xmpp(encrypt: Encrypt, on_step: impl FnMut(&DemoStep)) -> DemoReport {
    run_demo_xmpp_on(DemoXmppServer::Private, encrypt, on_step).await
}

/// Runs the demo over XMPP (clause 16) through `server`: a PKI with Annex G application
/// certificates bound to the two JIDs (G.6.3), an MMS server and a client in native mode with
/// `encrypt`, browse, read, write and release end to end across the XMPP server.
pub async fn run_demo_xmpp_on(
    server: DemoXmppServer,
    encrypt: Encrypt,
    on_step: impl FnMut(&DemoStep),
) -> DemoReport {
    use secmms_xmpp::prosody::{prosody_available, Prosody};
    let mut rec = Recorder {
        steps: Vec::new(),
        on_step,
    };
    let t = Instant::now();
    // A private server lives as long as the demo (dropping it stops Prosody); an external one
    // needs a temporary directory for the application PKI.
    let mut private: Option<Prosody> = None;
    let mut scratch: Option<TempDir> = None;
    let (xs, xc, pki_dir) = match server {
        DemoXmppServer::Private => {
            if !prosody_available() {
                rec.record(
                    "start XMPP server",
                    t,
                    Err("the XMPP demo runs a private Prosody on loopback: install it (apt-get install prosody), name a reachable server (--xmpp-server), or use the OSI demo".into()),
                );
                return failed(rec.steps);
            }
            let prosody = match Prosody::start(&[("ied1", "demo-ied1"), ("scada", "demo-scada")]) {
                Ok(p) => p,
                Err(e) => {
                    rec.record("start XMPP server", t, Err(e));
                    return failed(rec.steps);
                }
            };
            rec.record(
                "start XMPP server",
                t,
                Ok(format!(
                    "Prosody on {} (STARTTLS required, SASL PLAIN), accounts ied1@localhost and scada@localhost",
                    prosody.server()
                )),
            );
            let xs = prosody.client_config("ied1", "demo-ied1");
            let xc = prosody.client_config("scada", "demo-scada");
            let dir = prosody.dir.join("app");
            private = Some(prosody);
            (xs, xc, dir)
        }
        DemoXmppServer::External { server, client } => {
            let dir = match TempDir::new("secmms-xmpp-demo") {
                Ok(d) => d,
                Err(e) => {
                    rec.record("use XMPP server", t, Err(e));
                    return failed(rec.steps);
                }
            };
            let pki_dir = dir.path().to_path_buf();
            scratch = Some(dir);
            rec.record(
                "use XMPP server",
                t,
                Ok(format!(
                    "{} (STARTTLS required), accounts {} and {}",
                    server.server, server.jid, client.jid
                )),
            );
            (*server, *client, pki_dir)
        }
    };

    let t = Instant::now();
    let pki = match XmppDemoPki::create(&pki_dir, &xs.jid, &xc.jid) {
        Ok(p) => p,
        Err(e) => {
            rec.record("build PKI", t, Err(e));
            return failed(rec.steps);
        }
    };
    rec.record(
        "build PKI",
        t,
        Ok("application CA and Annex G certificates bound to the JIDs (2.5.4.105)".into()),
    );
    let side = |x: XmppConfig, cert: &(PathBuf, PathBuf)| {
        let mut c = Config {
            xmpp: Some(x),
            ..Config::default()
        };
        c.security.mode = AppMode::Native;
        c.security.encrypt = encrypt;
        c.security.app_cert = Some(cert.0.clone());
        c.security.app_key = Some(cert.1.clone());
        c.security.ca = vec![pki.ca.clone()];
        c
    };
    let scfg = side(xs, &pki.server);
    let ccfg = side(xc, &pki.client);

    let t = Instant::now();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
    let server = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        secmms::xmpp::serve_config(&scfg.xmpp_settings(), move |jid| {
            if let Some(r) = ready.take() {
                let _ = r.send(jid.to_string());
            }
        })
        .await
    });
    let server_jid = match tokio::time::timeout(std::time::Duration::from_secs(10), ready_rx).await
    {
        Ok(Ok(j)) => j,
        _ => {
            let why = if server.is_finished() {
                match server.await {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the server stopped".into(),
                }
            } else {
                "the server did not come up within 10 s".into()
            };
            rec.record("start MMS server", t, Err(why));
            return failed(rec.steps);
        }
    };
    rec.record(
        "start MMS server",
        t,
        Ok(format!("serving the built-in demo model as {server_jid}")),
    );

    let t = Instant::now();
    let sink = std::sync::Arc::new(secmms::tls::TracingSink);
    let client = match secmms::xmpp::XmppConnection::connect(&ccfg.xmpp_settings(), sink).await {
        Ok(conn) => match conn.associate(&server_jid).await {
            Ok(c) => Ok((conn, c)),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    let (conn, client) = match client {
        Ok(x) => x,
        Err(e) => {
            rec.record("associate", t, Err(e));
            server.abort();
            return failed(rec.steps);
        }
    };
    let protections = format!(
        "XMPP with STARTTLS to the server (clause 6.4), E2E security end to end across it (clause 16), data {}",
        match encrypt {
            Encrypt::Gcm => "encrypted with AES-GCM",
            Encrypt::Cbc => "encrypted with AES-CBC + HMAC-SHA256",
            Encrypt::None => "integrity-protected with HMAC-SHA256, not encrypted",
        }
    );
    rec.record(
        "associate",
        t,
        Ok(format!(
            "{} → {server_jid}: HandshakeReq/HandshakeAcc in iq set/result; {protections}",
            conn.jid()
        )),
    );
    client_steps(&mut rec, &client, "ReleaseReq/ReleaseRsp in iq set/result").await;
    let t = Instant::now();
    rec.record("protections in force", t, Ok(protections));
    // Close our side first so that stopping Prosody is not reported as a lost connection.
    drop(client);
    drop(conn);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    server.abort();
    drop(private);
    drop(scratch);
    let ok = rec.steps.iter().all(|s| s.ok);
    DemoReport {
        ok,
        steps: rec.steps,
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<TempDir, String> {
        secmms_xmpp::prosody::temp_dir(prefix).map(TempDir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Application certificates for the XMPP demo: a CA and one JID-bound certificate per side.
struct XmppDemoPki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

impl XmppDemoPki {
    /// Certificates bound to the bare forms of `server_jid` and `client_jid`.
    fn create(dir: &Path, server_jid: &str, client_jid: &str) -> Result<XmppDemoPki, String> {
        let bare = |j: &str| j.split('/').next().unwrap_or(j).to_string();
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let ca = AppCa::create("secmms XMPP demo CA", &dir.join("app-ca.pem"))?;
        let issue = |jid: &str, name: &str| -> Result<(PathBuf, PathBuf), String> {
            let (c, k) = (
                dir.join(format!("{name}-cert.pem")),
                dir.join(format!("{name}-key.pem")),
            );
            ca.issue_app(Binding::Jid(jid.into()), &c, &k)?;
            Ok((c, k))
        };
        let server = issue(&bare(server_jid), "server")?;
        let client = issue(&bare(client_jid), "client")?;
        Ok(XmppDemoPki {
            ca: ca.ca_pem.clone(),
            server,
            client,
        })
    }
}
