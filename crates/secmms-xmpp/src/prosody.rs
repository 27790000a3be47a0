//! A private, throw-away Prosody server on loopback: what `secmms demo --env xmpp` runs on, and
//! what the XMPP tests and benchmarks start (Prosody 0.12 from the distribution's package).
//!
//! [`Prosody::start`] makes a temporary directory with a CA, a server certificate for
//! `localhost` and `ext.localhost` (issued with `secmms_pki::tooling`), a `prosody.cfg.lua` on a
//! free loopback port, registers the given users with `prosodyctl register`, starts
//! `prosody -F` and waits (bounded) until the port accepts connections. Dropping the value kills
//! the server and removes the directory (set `SECMMS_KEEP_PROSODY=1` to keep it for a look).
//!
//! Two virtual hosts:
//!
//! * [`PLAIN_DOMAIN`] (`localhost`): `internal_hashed` accounts, SASL PLAIN (and SCRAM) over
//!   STARTTLS, which Prosody requires.
//! * [`EXTERNAL_DOMAIN`] (`ext.localhost`): SASL EXTERNAL with a client certificate. Prosody 0.12
//!   has no client-certificate authentication of its own (its EXTERNAL is for s2s only) and the
//!   community module is in a separate package, so the harness writes a small authentication
//!   provider, `mod_auth_secmms_cert.lua`: the account is the bare JID in the certificate subject
//!   (X.520 `jid` attribute 2.5.4.105 per IEC 62351-4 §16.6, else the commonName), accepted only
//!   when the chain verified against the test CA.
//!
//! Layout follows the interop notes (shared `interop/README.md` §B.6): `run_as_root = true` when
//! running as root (CI), `-F` to stay in the foreground, s2s and HTTP off.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secmms_pki::crypto::{OsRandom, RandomSource, SigningKey};
use secmms_pki::tooling::{create_ca, issue_tls, pem, Ca, KeyType, TlsRequest, Validity};

use crate::config::{SaslMechanism, XmppConfig};

/// The virtual host with password accounts.
pub const PLAIN_DOMAIN: &str = "localhost";
/// The virtual host with certificate (SASL EXTERNAL) accounts.
pub const EXTERNAL_DOMAIN: &str = "ext.localhost";
/// How long to wait for the port to accept connections.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

const AUTH_MODULE: &str = r#"-- Written by the secmms test harness (crates/secmms-xmpp/src/prosody.rs). Private servers only.
-- SASL EXTERNAL for client connections: the account is the bare JID found in the subject of the
-- TLS client certificate (X.520 jid attribute 2.5.4.105, else commonName), and only when the
-- certificate chain verified against the configured cafile. No passwords on this host.
local new_sasl = require "util.sasl".new;
local jid_split = require "util.jid".split;
local host = module.host;
local provider = {};

function provider.test_password() return nil, "password authentication is disabled here"; end
function provider.get_password() return nil, "not available"; end
function provider.set_password() return nil, "not available"; end
function provider.user_exists() return true; end
function provider.users() return function() return nil; end; end
function provider.create_user() return nil, "not available"; end
function provider.delete_user() return nil, "not available"; end

local function identity_of(session)
	local sock = session.conn and session.conn:socket();
	if not (sock and sock.getpeercertificate) then return nil, "no TLS"; end
	local cert = sock:getpeercertificate();
	if not cert then return nil, "no client certificate"; end
	local chain_ok = sock:getpeerverification();
	if not chain_ok then return nil, "client certificate chain did not verify"; end
	local by_jid, by_cn;
	for _, entry in ipairs(cert:subject()) do
		if entry.oid == "2.5.4.105" then by_jid = entry.value; end
		if entry.oid == "2.5.4.3" then by_cn = entry.value; end
	end
	return by_jid or by_cn, "no identity in the subject";
end

function provider.get_sasl_handler(session)
	return new_sasl(host, {
		external = function(authzid)
			local identity, why = identity_of(session);
			if not identity then
				module:log("info", "SASL EXTERNAL refused: %s", why);
				return nil, nil;
			end
			local node, domain = jid_split(identity);
			if not node or domain ~= host then
				module:log("info", "SASL EXTERNAL refused: %s is not an account of %s", identity, host);
				return nil, nil;
			end
			if authzid and authzid ~= "" and authzid ~= identity then
				module:log("info", "SASL EXTERNAL refused: authzid %s differs from %s", authzid, identity);
				return nil, nil;
			end
			module:log("info", "SASL EXTERNAL accepted for %s", identity);
			return node, true;
		end,
	});
end

module:provides("auth", provider);
"#;

/// Whether `prosody` and `prosodyctl` are on the PATH.
pub fn prosody_available() -> bool {
    ["prosody", "prosodyctl"].iter().all(|p| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
    })
}

/// For a test that needs Prosody: `true` when it is installed; otherwise prints
/// `SKIPPED: <test>: …` and returns `false` — or panics when `CI=true`, where a missing peer is
/// a failure.
pub fn require_prosody(test: &str) -> bool {
    if prosody_available() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: prosody is not installed, and CI=true requires it (apt-get install prosody)"
        );
    }
    println!("SKIPPED: {test}: prosody is not installed (apt-get install prosody)");
    false
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn write_key(path: &Path, key: &SigningKey) -> Result<(), String> {
    let pem = key
        .pkey()
        .private_key_to_pem_pkcs8()
        .map_err(|e| e.to_string())?;
    std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn lua_str(s: &Path) -> String {
    let s = s.display().to_string();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A throw-away PKI in a directory: a P-256 CA, a server certificate, and client
/// certificates on demand. Used by [`Prosody`] and by mock-server tests.
#[derive(Debug)]
pub struct TestPki {
    /// Where the files are.
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub server_cert: PathBuf,
    /// The server key (PEM, PKCS#8).
    pub server_key: PathBuf,
    ca_key: Ca,
}

impl TestPki {
    /// Creates the CA and a server certificate for `dns` (plus 127.0.0.1) in `dir`.
    pub fn new(dir: &Path, dns: &[&str]) -> Result<TestPki, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let e = |e: secmms_pki::tooling::ToolError| e.to_string();
        let validity = Validity::days_from(unix_now() - 300, 2);
        let ca_key = KeyType::P256.generate().map_err(e)?;
        let ca_der =
            create_ca("secmms xmpp test CA", &ca_key, validity, &mut OsRandom).map_err(e)?;
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, pem("CERTIFICATE", &ca_der)).map_err(|x| x.to_string())?;
        let ca_key = Ca {
            cert_der: ca_der,
            key: ca_key,
        };
        let server_key = KeyType::P256.generate().map_err(e)?;
        let server_der = issue_tls(
            &TlsRequest {
                common_name: dns.first().copied().unwrap_or("localhost").into(),
                dns: dns.iter().map(|d| (*d).to_owned()).collect(),
                ips: vec![IpAddr::from(Ipv4Addr::LOCALHOST)],
                crl_url: None,
                ocsp_url: None,
                validity,
            },
            server_key.pkey(),
            &ca_key,
            &mut OsRandom,
        )
        .map_err(e)?;
        let server_cert = dir.join("server.crt");
        let server_key_path = dir.join("server.key");
        std::fs::write(&server_cert, pem("CERTIFICATE", &server_der)).map_err(|x| x.to_string())?;
        write_key(&server_key_path, &server_key)?;
        Ok(TestPki {
            dir: dir.to_owned(),
            ca,
            server_cert,
            server_key: server_key_path,
            ca_key,
        })
    }

    /// Issues a TLS client certificate whose commonName is `name` (a bare JID for SASL
    /// EXTERNAL) and returns `(cert, key)` paths.
    pub fn issue_client_cert(&self, name: &str) -> Result<(PathBuf, PathBuf), String> {
        let e = |e: secmms_pki::tooling::ToolError| e.to_string();
        let k = KeyType::P256.generate().map_err(e)?;
        let der = issue_tls(
            &TlsRequest {
                common_name: name.into(),
                dns: Vec::new(),
                ips: Vec::new(),
                crl_url: None,
                ocsp_url: None,
                validity: Validity::days_from(unix_now() - 300, 2),
            },
            k.pkey(),
            &self.ca_key,
            &mut OsRandom,
        )
        .map_err(e)?;
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let cert = self.dir.join(format!("client-{safe}.crt"));
        let key = self.dir.join(format!("client-{safe}.key"));
        std::fs::write(&cert, pem("CERTIFICATE", &der)).map_err(|x| x.to_string())?;
        write_key(&key, &k)?;
        Ok((cert, key))
    }

    /// A CA certificate (PEM path) unrelated to this PKI, for trust-failure tests.
    pub fn unrelated_ca(&self) -> Result<PathBuf, String> {
        let e = |e: secmms_pki::tooling::ToolError| e.to_string();
        let k = KeyType::P256.generate().map_err(e)?;
        let der = create_ca(
            "unrelated CA",
            &k,
            Validity::days_from(unix_now() - 300, 2),
            &mut OsRandom,
        )
        .map_err(e)?;
        let p = self.dir.join("unrelated-ca.pem");
        std::fs::write(&p, pem("CERTIFICATE", &der)).map_err(|x| x.to_string())?;
        Ok(p)
    }
}

/// A fresh, unique directory under the system temp dir.
pub fn temp_dir(prefix: &str) -> Result<PathBuf, String> {
    let mut rnd = [0u8; 6];
    OsRandom.fill(&mut rnd).map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// A running Prosody for one test.
#[derive(Debug)]
pub struct Prosody {
    /// The temporary directory.
    pub dir: PathBuf,
    /// The client port on 127.0.0.1.
    pub port: u16,
    /// The test CA (trust anchor of the server certificate), PEM.
    pub ca: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
    /// The PKI (CA, server certificate; issues client certificates).
    pub pki: TestPki,
    child: Option<Child>,
}

impl Prosody {
    /// Creates the directory, certificates and configuration, registers `users`
    /// (`(name, password)` on [`PLAIN_DOMAIN`]) and starts the server.
    pub fn start(users: &[(&str, &str)]) -> Result<Prosody, String> {
        let dir = temp_dir("secmms-prosody")?;
        for d in ["data", "plugins"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
        }
        let pki = TestPki::new(&dir.join("certs"), &[PLAIN_DOMAIN, EXTERNAL_DOMAIN])?;
        let ca = pki.ca.clone();
        let crt = pki.server_cert.clone();
        let key = pki.server_key.clone();
        std::fs::write(dir.join("plugins/mod_auth_secmms_cert.lua"), AUTH_MODULE)
            .map_err(|x| x.to_string())?;
        let port = free_port()?;
        let config = dir.join("prosody.cfg.lua");
        let ssl = format!(
            "ssl = {{ certificate = {}; key = {}; }}",
            lua_str(&crt),
            lua_str(&key)
        );
        let cfg = format!(
            r#"-- secmms private server (crates/secmms-xmpp/src/prosody.rs)
{root}pidfile = {pid}
data_path = {data}
plugin_paths = {{ {plugins} }}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = {log} }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping" }}
modules_disabled = {{ "s2s", "offline" }}
allow_registration = false
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
authentication = "internal_hashed"
storage = "internal"
{ssl}

VirtualHost "{plain}"
    {ssl}

VirtualHost "{ext}"
    authentication = "secmms_cert"
    {ssl}
    c2s_ssl = {{ verify = {{ "peer", "client_once" }}; cafile = {ca}; }}
"#,
            root = if running_as_root() {
                "run_as_root = true\n"
            } else {
                ""
            },
            pid = lua_str(&dir.join("prosody.pid")),
            data = lua_str(&dir.join("data")),
            plugins = lua_str(&dir.join("plugins")),
            log = lua_str(&dir.join("prosody.log")),
            port = port,
            ssl = ssl,
            plain = PLAIN_DOMAIN,
            ext = EXTERNAL_DOMAIN,
            ca = lua_str(&ca),
        );
        std::fs::write(&config, cfg).map_err(|x| x.to_string())?;
        let mut p = Prosody {
            dir,
            port,
            ca,
            config,
            pki,
            child: None,
        };
        for (user, pw) in users {
            p.register(user, pw)?;
        }
        p.launch()?;
        Ok(p)
    }

    /// Registers `user@localhost` with `password` (works while the server runs, too).
    pub fn register(&self, user: &str, password: &str) -> Result<(), String> {
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(&self.config)
            .args(["register", user, PLAIN_DOMAIN, password])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("prosodyctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "prosodyctl register {user} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    fn launch(&mut self) -> Result<(), String> {
        let out = std::fs::File::create(self.dir.join("prosody.out")).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("prosody")
            .arg("-F")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("prosody: {e}"))?;
        self.child = Some(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let t0 = Instant::now();
        while t0.elapsed() < STARTUP_TIMEOUT {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "prosody exited with {status} during startup:\n{}",
                        self.log()
                    ));
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!(
            "prosody did not listen on {addr} within {STARTUP_TIMEOUT:?}:\n{}",
            self.log()
        ))
    }

    /// Stops the server (kill, then wait for it).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops and starts the server again on the same port with the same accounts.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.launch()
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `127.0.0.1:port`.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client configuration for `user@localhost` with SASL PLAIN, trusting the test CA, and
    /// tight timeouts for tests.
    pub fn client_config(&self, user: &str, password: &str) -> XmppConfig {
        XmppConfig {
            server: self.server(),
            jid: format!("{user}@{PLAIN_DOMAIN}"),
            password: Some(password.into()),
            ca: vec![self.ca.clone()],
            step_timeout_secs: 5,
            connect_timeout_secs: 5,
            ..XmppConfig::default()
        }
    }

    /// A client configuration for SASL EXTERNAL as `user@ext.localhost` with a fresh
    /// certificate from the test CA.
    pub fn external_config(&self, user: &str) -> Result<XmppConfig, String> {
        let jid = format!("{user}@{EXTERNAL_DOMAIN}");
        let (cert, key) = self.pki.issue_client_cert(&jid)?;
        Ok(XmppConfig {
            server: self.server(),
            jid,
            sasl: SaslMechanism::External,
            cert: Some(cert),
            key: Some(key),
            ca: vec![self.ca.clone()],
            step_timeout_secs: 5,
            connect_timeout_secs: 5,
            ..XmppConfig::default()
        })
    }

    /// The server's log so far (log file and console output).
    pub fn log(&self) -> String {
        let mut s = String::new();
        for f in ["prosody.out", "prosody.log"] {
            if let Ok(mut file) = std::fs::File::open(self.dir.join(f)) {
                let _ = file.read_to_string(&mut s);
            }
        }
        s
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("SECMMS_KEEP_PROSODY").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("prosody test directory kept: {}", self.dir.display());
        }
    }
}
