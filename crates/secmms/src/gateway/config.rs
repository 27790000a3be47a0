//! The gateway's configuration file (`secmms gateway --config FILE`): one `[gateway]` table with
//! its routes, checked as a whole so that `--check-config` can say every problem and where.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::security::{AppMode, Encrypt, SecurityConfig};
use crate::tls::TlsConfig;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// The `[gateway]` table.
    pub gateway: GatewayConfig,
}

/// The `[gateway]` table: where events go, shared limits, and the routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The hash-chained security log (`secmms log verify` checks it).
    pub log: Option<PathBuf>,
    /// Key of the log's HMAC chain (see `[events] log_key`).
    pub log_key: Option<PathBuf>,
    /// Syslog destination for the same events (`udp:host:port`, `tcp:…`, `unix:/dev/log`).
    pub syslog: Option<String>,
    /// Seconds to connect to the far side (TCP, TLS) and have its association confirmed.
    pub connect_timeout_secs: u64,
    /// Seconds for the whole association set-up, both sides.
    pub associate_timeout_secs: u64,
    /// Seconds without traffic after which both associations are ended (0 = never).
    pub idle_timeout_secs: u64,
    /// Most forwarded associations at once, over every route.
    pub max_associations: usize,
    /// Most TLS handshakes under way at once on the IED routes' listeners (a connection takes
    /// a place when its first octets arrive); more wait, and are refused if no place comes
    /// within `associate_timeout_secs` (0 = no limit). Like `[server] max_handshakes`.
    pub max_handshakes: usize,
    /// Most TLS handshakes started per second on the IED routes' listeners (0 = no limit).
    pub handshake_rate: u32,
    /// Most AARQs of IED routes under their application-security checks (A-profile, E2E) or
    /// waiting for them at once; an AARQ takes a place once it has arrived whole. More wait,
    /// and are aborted unchecked if no place comes before the set-up deadline (0 = no limit).
    /// Like `[server] max_security_checks`.
    pub max_security_checks: usize,
    /// Most AARQ checks started per second on IED routes (0 = no limit).
    pub security_check_rate: u32,
    /// Secured in, plain out: one entry per legacy IED.
    pub ied: Vec<IedRoute>,
    /// Plain in, secured out: one entry per legacy client listener.
    pub client: Vec<ClientRoute>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            log: None,
            log_key: None,
            syslog: None,
            connect_timeout_secs: 10,
            associate_timeout_secs: 20,
            idle_timeout_secs: 600,
            max_associations: 1000,
            max_handshakes: 64,
            handshake_rate: 1000,
            max_security_checks: 64,
            security_check_rate: 500,
            ied: Vec::new(),
            client: Vec::new(),
        }
    }
}

/// Application security of a secured side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    /// Compatibility mode (clause 11, A-profile), with TLS.
    Compat,
    /// Native mode (clauses 13–15, E2E), with TLS.
    #[default]
    Native,
}

/// `[[gateway.ied]]`: accepts secured associations and forwards them, plain, to `ied`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IedRoute {
    /// A name for events and logs (default: the IED's address).
    #[serde(default)]
    pub name: Option<String>,
    /// Where secured peers connect (TLS; 3782 is the IEC 62351-4 port).
    pub listen: String,
    /// The legacy IED, `host:port` (RFC 1006, usually 102).
    pub ied: String,
    /// Application security towards the network.
    #[serde(default)]
    pub mode: RouteMode,
    /// Native mode: `gcm`, `cbc` or `none` (ICV only).
    #[serde(default)]
    pub encrypt: Option<String>,
    /// TLS certificate and key of the gateway (PEM).
    pub tls_cert: PathBuf,
    /// TLS private key.
    pub tls_key: PathBuf,
    /// Application certificate: its 2.5.4.106 binding is the AP-title / AE-qualifier the
    /// gateway presents for this IED (Annex G.6.2).
    pub app_cert: PathBuf,
    /// Application private key.
    pub app_key: PathBuf,
    /// Trust anchors for the peers' TLS and application certificates.
    pub ca: Vec<PathBuf>,
    /// CRLs for them.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// Refuse writes to CO, SP, SG, SE, CF, DC and every other modifying service.
    #[serde(default)]
    pub read_only: bool,
    /// Diagnostics only: write the TLS secrets of this route's sessions to this file (NSS key
    /// log, mode 0600) so a capture can be decrypted; each session raises a
    /// `TLS_KEYLOG_ACTIVE` warning event.
    #[serde(default)]
    pub tls_keylog: Option<PathBuf>,
}

/// `[[gateway.client]]`: accepts plain associations from a legacy client and forwards them,
/// secured, to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRoute {
    /// A name for events and logs (default: the listen address).
    #[serde(default)]
    pub name: Option<String>,
    /// Where the legacy client connects (plain RFC 1006).
    pub listen: String,
    /// Source networks allowed to connect (CIDR). Required unless `listen` is a loopback
    /// address: this listener lends the gateway's credentials to whoever reaches it.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The 62351-4 server or IED-side gateway, `host:port`.
    pub to: String,
    /// Application security towards it.
    #[serde(default)]
    pub mode: RouteMode,
    /// Native mode: `gcm`, `cbc` or `none`.
    #[serde(default)]
    pub encrypt: Option<String>,
    /// TLS certificate and key of the gateway (PEM).
    pub tls_cert: PathBuf,
    /// TLS private key.
    pub tls_key: PathBuf,
    /// Application certificate (its binding is the calling AP-title / AE-qualifier).
    pub app_cert: PathBuf,
    /// Application private key.
    pub app_key: PathBuf,
    /// Trust anchors for the server's TLS and application certificates.
    pub ca: Vec<PathBuf>,
    /// CRLs for them.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// The server's AP-title, checked against its application certificate.
    #[serde(default)]
    pub peer_ap_title: Option<String>,
    /// The server's AE-qualifier, checked against its application certificate.
    #[serde(default)]
    pub peer_ae_qualifier: Option<i64>,
    /// TLS server name to expect in the server's certificate (default: the host of `to`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Refuse writes from the legacy client as on a read-only IED route.
    #[serde(default)]
    pub read_only: bool,
    /// Several client routes may share one `listen`: each then names the called AP-title
    /// (and optionally AE-qualifier) of the legacy client's AARQ that selects it; one of them
    /// may leave it out and takes the rest.
    #[serde(default)]
    pub called_ap_title: Option<String>,
    /// With `called_ap_title`: the called AE-qualifier too (any when absent).
    #[serde(default)]
    pub called_ae_qualifier: Option<i64>,
    /// Diagnostics only: the TLS key log of this route's sessions (see [`IedRoute::tls_keylog`]).
    #[serde(default)]
    pub tls_keylog: Option<PathBuf>,
}

/// One problem of a configuration: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, e.g. `gateway.ied[0].app_cert` (or `line 4, column 1` for syntax errors).
    pub at: String,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

/// Why a gateway configuration cannot be used: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct GatewayConfigError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl GatewayConfigError {
    fn one(at: impl Into<String>, what: impl Into<String>) -> Self {
        GatewayConfigError {
            problems: vec![Problem {
                at: at.into(),
                what: what.into(),
            }],
        }
    }
}

/// The sections one side of a route needs (TLS, application security, the peer's titles).
#[derive(Debug, Clone, Default)]
pub struct SecuredSide {
    /// TLS, enabled.
    pub tls: TlsConfig,
    /// Compatibility or native mode with the route's credentials.
    pub security: SecurityConfig,
    /// Initiator only: the called AP-title / AE-qualifier.
    pub remote_titles: (Option<String>, Option<i64>),
}

fn encrypt_of(s: Option<&str>) -> Result<Encrypt, String> {
    match s {
        None | Some("gcm") => Ok(Encrypt::Gcm),
        Some("cbc") => Ok(Encrypt::Cbc),
        Some("none") => Ok(Encrypt::None),
        Some(o) => Err(format!("`{o}` is not gcm, cbc or none")),
    }
}

/// The credentials of a secured side, as a route gives them.
struct Creds<'a> {
    mode: RouteMode,
    encrypt: Option<&'a str>,
    tls_cert: &'a Path,
    tls_key: &'a Path,
    app_cert: &'a Path,
    app_key: &'a Path,
    ca: &'a [PathBuf],
    crl: &'a [PathBuf],
    tls_keylog: Option<&'a Path>,
}

fn secured(c: Creds<'_>) -> Result<SecuredSide, (&'static str, String)> {
    let Creds {
        mode,
        encrypt,
        tls_cert,
        tls_key,
        app_cert,
        app_key,
        ca,
        crl,
        tls_keylog,
    } = c;
    let mut tls = TlsConfig {
        enabled: true,
        cert: Some(tls_cert.to_owned()),
        key: Some(tls_key.to_owned()),
        ca: ca.to_vec(),
        crl: crl.to_vec(),
        keylog_file: tls_keylog.map(Path::to_owned),
        ..TlsConfig::default()
    };
    tls.allow_plain = false;
    let mut security = SecurityConfig {
        mode: match mode {
            RouteMode::Compat => AppMode::Compat,
            RouteMode::Native => AppMode::Native,
        },
        app_cert: Some(app_cert.to_owned()),
        app_key: Some(app_key.to_owned()),
        ca: ca.to_vec(),
        crl: crl.to_vec(),
        ..SecurityConfig::default()
    };
    if mode == RouteMode::Native {
        security.encrypt = encrypt_of(encrypt).map_err(|e| ("encrypt", e))?;
    } else if encrypt.is_some() {
        return Err(("encrypt", "applies to mode = \"native\" only".into()));
    }
    Ok(SecuredSide {
        tls,
        security,
        remote_titles: (None, None),
    })
}

impl IedRoute {
    /// The name events use.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("ied {}", self.ied))
    }

    /// The secured side (responder).
    pub fn secured(&self) -> Result<SecuredSide, (&'static str, String)> {
        secured(Creds {
            mode: self.mode,
            encrypt: self.encrypt.as_deref(),
            tls_cert: &self.tls_cert,
            tls_key: &self.tls_key,
            app_cert: &self.app_cert,
            app_key: &self.app_key,
            ca: &self.ca,
            crl: &self.crl,
            tls_keylog: self.tls_keylog.as_deref(),
        })
    }
}

impl ClientRoute {
    /// The name events use.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("client {}", self.listen))
    }

    /// The secured side (initiator).
    pub fn secured(&self) -> Result<SecuredSide, (&'static str, String)> {
        let mut s = secured(Creds {
            mode: self.mode,
            encrypt: self.encrypt.as_deref(),
            tls_cert: &self.tls_cert,
            tls_key: &self.tls_key,
            app_cert: &self.app_cert,
            app_key: &self.app_key,
            ca: &self.ca,
            crl: &self.crl,
            tls_keylog: self.tls_keylog.as_deref(),
        })?;
        s.tls.server_name = self.server_name.clone().or_else(|| {
            self.to
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']').to_string())
        });
        s.remote_titles = (self.peer_ap_title.clone(), self.peer_ae_qualifier);
        Ok(s)
    }

    /// The parsed allow list.
    pub fn allowed(&self) -> Result<Vec<IpNet>, String> {
        self.allow
            .iter()
            .map(|a| {
                a.parse::<IpNet>()
                    .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{a}` is not a CIDR network or an address"))
            })
            .collect()
    }
}

fn check_addr(at: &str, s: &str, out: &mut Vec<Problem>) -> Option<SocketAddr> {
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            out.push(Problem {
                at: at.into(),
                what: format!("`{s}` is not an address:port (e.g. 0.0.0.0:3782)"),
            });
            None
        }
    }
}

fn check_hostport(at: &str, s: &str, out: &mut Vec<Problem>) {
    let ok = s
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
    if !ok {
        out.push(Problem {
            at: at.into(),
            what: format!("`{s}` is not host:port"),
        });
    }
}

fn check_file(at: String, p: &Path, out: &mut Vec<Problem>) {
    if let Err(e) = std::fs::metadata(p) {
        out.push(Problem {
            at,
            what: format!("cannot read {}: {e}", p.display()),
        });
    }
}

/// The files of a secured side: present, and at least one trust anchor.
fn check_credentials(
    at: &dyn Fn(&str) -> String,
    [tls_cert, tls_key, app_cert, app_key]: [&PathBuf; 4],
    ca: &[PathBuf],
    crl: &[PathBuf],
    out: &mut Vec<Problem>,
) {
    if ca.is_empty() {
        out.push(Problem {
            at: at("ca"),
            what: "at least one trust anchor is needed".into(),
        });
    }
    for (k, p) in [
        ("tls_cert", tls_cert),
        ("tls_key", tls_key),
        ("app_cert", app_cert),
        ("app_key", app_key),
    ] {
        check_file(at(k), p, out);
    }
    for (list, files) in [("ca", ca), ("crl", crl)] {
        for (j, p) in files.iter().enumerate() {
            check_file(format!("{}[{j}]", at(list)), p, out);
        }
    }
}

impl GatewayFile {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<GatewayFile, GatewayConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            GatewayConfigError::one(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        Self::from_toml(&text)
    }

    /// Parses and checks TOML text (paths relative to the working directory).
    pub fn from_toml(text: &str) -> Result<GatewayFile, GatewayConfigError> {
        let file: GatewayFile = toml::from_str(text).map_err(|e| {
            let at = match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}")
                }
                None => "the file".into(),
            };
            GatewayConfigError::one(at, e.message().to_string())
        })?;
        file.check()?;
        Ok(file)
    }

    /// Every check that needs no credentials loaded: addresses, modes, allow lists, files
    /// present, duplicate listeners. Loading certificates and keys (and their bindings) is
    /// done by [`super::Gateway::bind`], which reports those problems the same way.
    pub fn check(&self) -> Result<(), GatewayConfigError> {
        let g = &self.gateway;
        let mut out = Vec::new();
        if g.ied.is_empty() && g.client.is_empty() {
            out.push(Problem {
                at: "gateway".into(),
                what: "no route: add [[gateway.ied]] or [[gateway.client]]".into(),
            });
        }
        if g.max_associations == 0 {
            out.push(Problem {
                at: "gateway.max_associations".into(),
                what: "must be at least 1".into(),
            });
        }
        for (name, v) in [
            ("max_handshakes", g.max_handshakes as u64),
            ("handshake_rate", u64::from(g.handshake_rate)),
            ("max_security_checks", g.max_security_checks as u64),
            ("security_check_rate", u64::from(g.security_check_rate)),
        ] {
            if v > 1_000_000 {
                out.push(Problem {
                    at: format!("gateway.{name}"),
                    what: format!("{v} is outside 0..=1000000"),
                });
            }
        }
        for (name, v) in [
            ("connect_timeout_secs", g.connect_timeout_secs),
            ("associate_timeout_secs", g.associate_timeout_secs),
        ] {
            if v == 0 || v > 3600 {
                out.push(Problem {
                    at: format!("gateway.{name}"),
                    what: format!("{v} is outside 1..=3600"),
                });
            }
        }
        if g.idle_timeout_secs > 30 * 86_400 {
            out.push(Problem {
                at: "gateway.idle_timeout_secs".into(),
                what: "at most 30 days".into(),
            });
        }
        // (address, where, selector: None for IED routes, Some(called titles) for client routes)
        type Selector = Option<(Option<String>, Option<i64>)>;
        let mut listens: Vec<(SocketAddr, String, Selector)> = Vec::new();
        for (i, r) in g.ied.iter().enumerate() {
            let at = |k: &str| format!("gateway.ied[{i}].{k}");
            if let Some(a) = check_addr(&at("listen"), &r.listen, &mut out) {
                listens.push((a, at("listen"), None));
            }
            check_hostport(&at("ied"), &r.ied, &mut out);
            if let Err((k, e)) = r.secured() {
                out.push(Problem { at: at(k), what: e });
            }
            check_credentials(
                &at,
                [&r.tls_cert, &r.tls_key, &r.app_cert, &r.app_key],
                &r.ca,
                &r.crl,
                &mut out,
            );
        }
        for (i, r) in g.client.iter().enumerate() {
            let at = |k: &str| format!("gateway.client[{i}].{k}");
            let listen = check_addr(&at("listen"), &r.listen, &mut out);
            if let Some(a) = listen {
                listens.push((
                    a,
                    at("listen"),
                    Some((r.called_ap_title.clone(), r.called_ae_qualifier)),
                ));
            }
            if let Some(t) = &r.called_ap_title {
                if t.parse::<secmms_ber::Oid>().is_err() {
                    out.push(Problem {
                        at: at("called_ap_title"),
                        what: format!("`{t}` is not a dotted OID"),
                    });
                }
            } else if r.called_ae_qualifier.is_some() {
                out.push(Problem {
                    at: at("called_ae_qualifier"),
                    what: "needs called_ap_title".into(),
                });
            }
            check_hostport(&at("to"), &r.to, &mut out);
            match r.allowed() {
                Err(e) => out.push(Problem {
                    at: at("allow"),
                    what: e,
                }),
                Ok(nets) => {
                    if nets.is_empty() && listen.is_some_and(|a| !a.ip().is_loopback()) {
                        out.push(Problem {
                            at: at("allow"),
                            what: format!(
                                "required: {} is not a loopback address, and this listener \
                                 lends the gateway's credentials to whoever reaches it",
                                r.listen
                            ),
                        });
                    }
                }
            }
            if let Err((k, e)) = r.secured() {
                out.push(Problem { at: at(k), what: e });
            }
            if let Some(t) = &r.peer_ap_title {
                if t.parse::<secmms_ber::Oid>().is_err() {
                    out.push(Problem {
                        at: at("peer_ap_title"),
                        what: format!("`{t}` is not a dotted OID"),
                    });
                }
            }
            check_credentials(
                &at,
                [&r.tls_cert, &r.tls_key, &r.app_cert, &r.app_key],
                &r.ca,
                &r.crl,
                &mut out,
            );
        }
        // The listen port selects the route; routes of one kind may share a listener when the
        // called AP-title tells them apart (port 0, "any free port", is never shared).
        for (k, (a, at, sel)) in listens.iter().enumerate() {
            for (b, at2, sel2) in &listens[..k] {
                if a != b || a.port() == 0 {
                    continue;
                }
                let what = match (sel, sel2) {
                    (Some(x), Some(y)) if x != y => continue,
                    (Some(_), Some(_)) => format!(
                        "{a} is also {at2} with the same called_ap_title / called_ae_qualifier"
                    ),
                    // IED routes are told apart by their application certificates' bindings
                    // (checked when the certificates are read).
                    (None, None) => continue,
                    _ => format!(
                        "{a} is also {at2}: a listener is shared by IED routes only (told apart \
                         by their app_cert bindings) or by client routes only (told apart by \
                         called_ap_title)"
                    ),
                };
                out.push(Problem {
                    at: at.clone(),
                    what,
                });
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(GatewayConfigError { problems: out })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, "x").unwrap();
        p.display().to_string()
    }

    fn example(dir: &Path) -> String {
        let f = |n| touch(dir, n);
        format!(
            r#"
[gateway]
log = "gateway.log"

[[gateway.ied]]
listen = "0.0.0.0:3782"
ied = "10.0.0.5:102"
mode = "native"
encrypt = "gcm"
tls_cert = "{}"
tls_key = "{}"
app_cert = "{}"
app_key = "{}"
ca = ["{}"]
read_only = false

[[gateway.client]]
listen = "127.0.0.1:10102"
allow = ["127.0.0.0/8"]
to = "gw-ied.example:3782"
mode = "native"
encrypt = "gcm"
tls_cert = "{}"
tls_key = "{}"
app_cert = "{}"
app_key = "{}"
ca = ["{}"]
peer_ap_title = "1.1.1.999.1"
peer_ae_qualifier = 12
"#,
            f("gw-tls.pem"),
            f("gw-tls.key"),
            f("gw-app.pem"),
            f("gw-app.key"),
            f("ca.pem"),
            f("gw2-tls.pem"),
            f("gw2-tls.key"),
            f("gw2-app.pem"),
            f("gw2-app.key"),
            f("ca.pem"),
        )
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("secmms-gwcfg-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_documented_form_is_accepted() {
        let d = dir("ok");
        let f = GatewayFile::from_toml(&example(&d)).unwrap();
        assert_eq!(f.gateway.ied.len(), 1);
        assert_eq!(f.gateway.client.len(), 1);
        let c = f.gateway.client[0].secured().unwrap();
        assert_eq!(c.tls.server_name.as_deref(), Some("gw-ied.example"));
        assert_eq!(c.remote_titles, (Some("1.1.1.999.1".into()), Some(12)));
        assert_eq!(
            f.gateway.ied[0].secured().unwrap().security.mode,
            AppMode::Native
        );
    }

    #[test]
    fn problems_say_where() {
        let d = dir("bad");
        let text = example(&d)
            .replace("allow = [\"127.0.0.0/8\"]", "allow = [\"127.0.0.0/33\"]")
            .replace("ied = \"10.0.0.5:102\"", "ied = \"10.0.0.5\"")
            .replace("encrypt = \"gcm\"\ntls_cert", "encrypt = \"xts\"\ntls_cert");
        let e = GatewayFile::from_toml(&text).unwrap_err();
        let at: Vec<&str> = e.problems.iter().map(|p| p.at.as_str()).collect();
        assert!(at.contains(&"gateway.ied[0].ied"), "{e}");
        assert!(at.contains(&"gateway.ied[0].encrypt"), "{e}");
        assert!(at.contains(&"gateway.client[0].allow"), "{e}");
        // A missing file names its key.
        let text = example(&d).replace(
            &d.join("gw-app.key").display().to_string(),
            "/nonexistent/k",
        );
        let e = GatewayFile::from_toml(&text).unwrap_err();
        assert_eq!(e.problems[0].at, "gateway.ied[0].app_key", "{e}");
        // Syntax errors give the line.
        let e = GatewayFile::from_toml("[gateway]\nlog = \n").unwrap_err();
        assert!(e.problems[0].at.starts_with("line 2"), "{e}");
        // An unknown key is refused.
        let e = GatewayFile::from_toml("[gateway]\nlisten = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
    }

    #[test]
    fn a_client_listener_off_loopback_needs_an_allow_list() {
        let d = dir("allow");
        let text = example(&d)
            .replace("listen = \"127.0.0.1:10102\"", "listen = \"0.0.0.0:10102\"")
            .replace("allow = [\"127.0.0.0/8\"]\n", "");
        let e = GatewayFile::from_toml(&text).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].at, "gateway.client[0].allow");
        assert!(e.problems[0].what.contains("lends"), "{e}");
        // On loopback it may be left out.
        let text = example(&d).replace("allow = [\"127.0.0.0/8\"]\n", "");
        GatewayFile::from_toml(&text).unwrap();
    }

    #[test]
    fn routes_share_listeners_only_with_routes_of_their_kind() {
        let d = dir("shared");
        let base = example(&d);
        let ied_block = base
            .split("[[gateway.client]]")
            .next()
            .unwrap()
            .split("[[gateway.ied]]")
            .nth(1)
            .unwrap()
            .to_string();
        // IED routes may share one (their certificates' bindings tell them apart, checked when
        // the certificates are read: `Gateway::check`).
        GatewayFile::from_toml(&format!("{base}\n[[gateway.ied]]{ied_block}")).unwrap();
        let other = ied_block.replace("0.0.0.0:3782", "0.0.0.0:3783");
        GatewayFile::from_toml(&format!("{base}\n[[gateway.ied]]{other}")).unwrap();
        // An IED route and a client route may not.
        let mixed = base.replace("127.0.0.1:10102", "0.0.0.0:3782");
        let e = GatewayFile::from_toml(&mixed).unwrap_err();
        assert_eq!(e.problems[0].at, "gateway.client[0].listen", "{e}");
        assert!(e.problems[0].what.contains("IED routes only"), "{e}");
        // Client routes may share one when the called AP-title tells them apart.
        let client_block = base.split("[[gateway.client]]").nth(1).unwrap().to_string();
        let sel = |t: &str| format!("{client_block}called_ap_title = \"{t}\"\n");
        let two = format!(
            "{base}called_ap_title = \"1.1.1.999.1\"\n\n[[gateway.client]]{}",
            sel("1.1.1.999.2")
        );
        GatewayFile::from_toml(&two).unwrap();
        let same = format!(
            "{base}called_ap_title = \"1.1.1.999.1\"\n\n[[gateway.client]]{}",
            sel("1.1.1.999.1")
        );
        let e = GatewayFile::from_toml(&same).unwrap_err();
        assert_eq!(e.problems[0].at, "gateway.client[1].listen", "{e}");
        assert!(e.problems[0].what.contains("same called_ap_title"), "{e}");
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    /// The file form docs/GATEWAY.md shows an operator is the schema (files aside).
    #[test]
    fn the_form_in_docs_gateway_md_parses() {
        let doc = include_str!("../../../../docs/GATEWAY.md");
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a toml block in docs/GATEWAY.md");
        let f: GatewayFile = toml::from_str(block).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.gateway.ied.len(), 1);
        assert_eq!(f.gateway.client.len(), 1);
        assert_eq!(f.gateway.client[0].peer_ae_qualifier, Some(12));
        assert_eq!(
            f.gateway.ied[0].secured().unwrap().security.mode,
            AppMode::Native
        );
    }
}
