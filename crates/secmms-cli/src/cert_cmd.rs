//! `secmms cert ...`: IEC 62351-4 Annex G certificate tooling — a CA, application certificates
//! that meet Annex G, separate TLS certificates (G.2), CRLs, and a lint (`check`) that explains
//! every Annex G finding.
//!
//! CA directory layout (`cert ca --out DIR`): `ca.pem` (certificate), `ca.key` (private key, mode
//! 0600), `crlnumber` (last CRL number issued), `revoked.txt` (one `SERIALHEX UNIXTIME` line per
//! revoked certificate).
//!
//! Exit status of `check`: 0 when compliant (warnings allowed), 1 when an Annex G rule is
//! violated, 2 when the file cannot be read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use secmms_ber::hex;
use secmms_pki::cert::FindingSeverity;
use secmms_pki::crypto::{OsRandom, SigningKey};
use secmms_pki::tooling::lint::lint;
use secmms_pki::tooling::{
    cert_serial, create_ca, issue_attribute_cert, issue_crl, issue_end_entity, issue_tls,
    issued_by, pem, pem_or_der, AttributeCertRequest, Binding, Ca, EndEntityRequest, KeyType,
    RevokedEntry, SubjectForm, TlsRequest, Validity, DEFAULT_CA_DAYS, DEFAULT_CRL_DAYS,
    DEFAULT_EE_DAYS,
};

const SUBJECT_FORM_HELP: &str = "How the 2.5.4.106 value is encoded. `oid` is the Annex G.6.2 \
syntax (and the spec's DECISION), but OpenSSL 3.0 cannot load such a certificate at all \
(`openssl x509`, `openssl verify` and OpenSSL-based validators fail; mbedTLS is reported to \
fail too; pyca/cryptography 48 loads it but cannot decode the subject). secmms itself accepts it \
as a peer's application certificate (it reads such a leaf without OpenSSL). `utf8` is the \
tolerated dotted-string form that every tool reads and that Annex G-aware peers accept with a \
warning. Default: utf8, so that issued certificates work with OpenSSL-based peers today.";

/// `secmms cert ...`
#[derive(Args, Debug)]
pub struct CertArgs {
    #[command(subcommand)]
    pub cmd: CertCommand,
}

/// Subcommands of `secmms cert`.
#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Create a self-signed CA (cA TRUE, keyCertSign + cRLSign) in a directory.
    Ca(CaArgs),
    /// Issue an Annex G application certificate (or, with --tls, a separate TLS certificate).
    Issue(Box<IssueArgs>),
    /// Issue an IEC 62351-8 attribute certificate (roles) for an application certificate, signed
    /// by an attribute authority (a CA directory); native mode sends it as attCert.
    IssueAc(IssueAcArgs),
    /// Issue or update the CA's CRL, optionally revoking certificates first.
    Crl(CrlArgs),
    /// Lint a certificate against Annex G and explain each finding (exit 0 only if compliant).
    Check(CheckArgs),
}

/// Arguments of `secmms cert ca`.
#[derive(Args, Debug)]
pub struct CaArgs {
    /// Directory to create the CA in (ca.pem, ca.key, crlnumber, revoked.txt).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Key type of the CA: rsa2048, p256 or bp256.
    #[arg(long, default_value = "p256", value_name = "TYPE")]
    pub key_type: String,
    /// Common name of the CA.
    #[arg(long, default_value = "secmms CA", value_name = "CN")]
    pub name: String,
    /// Validity in days (Annex G.4: up to 10 years in stable environments).
    #[arg(long, default_value_t = DEFAULT_CA_DAYS)]
    pub days: u32,
    /// Overwrite an existing CA in DIR.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `secmms cert issue-ac`.
#[derive(Args, Debug)]
pub struct IssueAcArgs {
    /// The attribute authority: a CA directory made by `secmms cert ca` (it may be the CA that
    /// issued the holder's certificate, or one of its own).
    #[arg(long, value_name = "DIR")]
    pub aa: PathBuf,
    /// The holder's application certificate (PEM or DER): the attribute certificate is bound to
    /// its issuer and serial number.
    #[arg(long, value_name = "PEM")]
    pub holder: PathBuf,
    /// IEC 62351-8 role (RoleId) to grant; repeat for several.
    #[arg(long = "role", value_name = "N", required = true)]
    pub roles: Vec<u32>,
    /// Area of responsibility written with the roles.
    #[arg(long, default_value = "secmms", value_name = "TEXT")]
    pub aor: String,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Output file (PEM `ATTRIBUTE CERTIFICATE`).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Arguments of `secmms cert issue`.
#[derive(Args, Debug)]
pub struct IssueArgs {
    /// The CA directory made by `secmms cert ca`.
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// OSI binding: AP-title (dotted OID); the subject becomes 2.5.4.106 = AP-title.AE-qualifier.
    #[arg(
        long,
        value_name = "OID",
        requires = "ae_qualifier",
        conflicts_with = "jid"
    )]
    pub ap_title: Option<String>,
    /// OSI binding: AE-qualifier, appended as the last arc (Annex G.6.2).
    #[arg(long, value_name = "N", requires = "ap_title")]
    pub ae_qualifier: Option<u64>,
    /// XMPP binding: bare JID in the subject's jid attribute (2.5.4.105, Annex G.6.3).
    #[arg(long, value_name = "JID")]
    pub jid: Option<String>,
    /// Key type: rsa2048, p256 or bp256.
    #[arg(long, default_value = "p256", value_name = "TYPE")]
    pub key_type: String,
    /// Output directory (cert.pem + key.pem, or tls-cert.pem + tls-key.pem with --tls).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value = "utf8", value_name = "oid|utf8", help = SUBJECT_FORM_HELP)]
    pub subject_form: String,
    /// IEC 62351-8 role (RoleId) to carry in the IECUserRoles extension (1.0.62351.8.1).
    #[arg(long, value_name = "N")]
    pub role: Option<u32>,
    /// Area of responsibility written with --role.
    #[arg(long, default_value = "secmms", value_name = "TEXT")]
    pub aor: String,
    /// CRL distribution point URL (Annex G.5; no reasons, the CA is the CRL issuer).
    #[arg(long, value_name = "URL")]
    pub crl_url: Option<String>,
    /// OCSP responder URL written in authorityInfoAccess (RFC 6960), e.g.
    /// http://127.0.0.1:8888. The CA directory keeps an OpenSSL index.txt, so
    /// `openssl ocsp -index DIR/index.txt -CA DIR/ca.pem -rsigner DIR/ca.pem -rkey DIR/ca.key
    /// -port 8888` answers for it.
    #[arg(long, value_name = "URL")]
    pub ocsp_url: Option<String>,
    /// Validity in days (Annex G.4: typically 2-3 years).
    #[arg(long, default_value_t = DEFAULT_EE_DAYS)]
    pub days: u32,
    /// Issue a TLS certificate instead (serverAuth + clientAuth, SAN): Annex G.2 requires TLS and
    /// application security to use separate certificates.
    #[arg(long)]
    pub tls: bool,
    /// TLS: subject common name (default: the first --dns, else "secmms").
    #[arg(long, value_name = "CN", requires = "tls")]
    pub cn: Option<String>,
    /// TLS: subjectAltName DNS name; repeat for several.
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub dns: Vec<String>,
    /// TLS: subjectAltName IP address; repeat for several.
    #[arg(long, value_name = "ADDR", requires = "tls")]
    pub ip: Vec<std::net::IpAddr>,
}

/// Arguments of `secmms cert crl`.
#[derive(Args, Debug)]
pub struct CrlArgs {
    /// The CA directory.
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// Certificate(s) to revoke before issuing (PEM or DER); must be issued by this CA.
    #[arg(long, value_name = "CERT", num_args = 1..)]
    pub revoke: Vec<PathBuf>,
    /// Where to write the CRL (PEM).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Days until nextUpdate.
    #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
    pub next_update_days: u32,
}

/// Arguments of `secmms cert check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The certificate (PEM or DER).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `secmms cert ...`.
pub fn run(a: CertArgs) -> Result<ExitCode> {
    match a.cmd {
        CertCommand::Ca(a) => ca(a),
        CertCommand::Issue(a) => issue(*a),
        CertCommand::IssueAc(a) => issue_ac(a),
        CertCommand::Crl(a) => crl(a),
        CertCommand::Check(a) => Ok(check(a)),
    }
}

fn now() -> i64 {
    secmms::events::time::unix_secs()
}

fn progress(msg: &str) {
    eprintln!("{msg}");
}

/// Writes a private key PEM readable by the owner only (0600), never printing it.
fn write_private(path: &Path, key: &SigningKey) -> Result<()> {
    secmms::security::write_private_key(path, key)
        .with_context(|| format!("writing the private key {}", path.display()))
}

fn key_type(s: &str) -> Result<KeyType> {
    s.parse::<KeyType>().map_err(|e| anyhow::anyhow!("{e}"))
}

fn generate(kt: KeyType, s: &str) -> Result<SigningKey> {
    progress(&format!("generating a {s} key..."));
    kt.generate().map_err(|e| anyhow::anyhow!("{e}"))
}

fn ca(a: CaArgs) -> Result<ExitCode> {
    let kt = key_type(&a.key_type)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let key_p = a.out.join("ca.key");
    if key_p.exists() && !a.force {
        bail!(
            "{} already holds a CA (use --force to replace it)",
            a.out.display()
        );
    }
    let key = generate(kt, &a.key_type)?;
    progress("signing the CA certificate...");
    let der = create_ca(
        &a.name,
        &key,
        Validity::days_from(now(), a.days),
        &mut OsRandom,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    write_private(&key_p, &key)?;
    std::fs::write(a.out.join("ca.pem"), pem("CERTIFICATE", &der))?;
    std::fs::write(a.out.join("crlnumber"), "0\n")?;
    std::fs::write(a.out.join("revoked.txt"), "")?;
    std::fs::write(a.out.join(INDEX), "")?;
    std::fs::write(a.out.join(format!("{INDEX}.attr")), "unique_subject = no\n")?;
    println!(
        "CA \"{}\" ({}, {} days) in {}: ca.pem, ca.key (0600)",
        a.name,
        a.key_type,
        a.days,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn load_ca(dir: &Path) -> Result<Ca> {
    let cert = std::fs::read(dir.join("ca.pem"))
        .with_context(|| format!("reading {}/ca.pem", dir.display()))?;
    let cert_der = pem_or_der("CERTIFICATE", &cert).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = std::fs::read(dir.join("ca.key"))
        .with_context(|| format!("reading {}/ca.key", dir.display()))?;
    let key = SigningKey::from_pem(&key).map_err(|e| anyhow::anyhow!("CA key: {e}"))?;
    Ok(Ca { cert_der, key })
}

fn issue_ac(a: IssueAcArgs) -> Result<ExitCode> {
    let aa = load_ca(&a.aa)?;
    let holder =
        std::fs::read(&a.holder).with_context(|| format!("reading {}", a.holder.display()))?;
    let holder = pem_or_der("CERTIFICATE", &holder)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.holder.display()))?;
    let der = issue_attribute_cert(
        &AttributeCertRequest {
            holder_cert: holder,
            roles: a.roles.clone(),
            aor: a.aor.clone(),
            validity: Validity::days_from(now(), a.days),
        },
        &aa,
        &mut OsRandom,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&a.out, pem("ATTRIBUTE CERTIFICATE", &der))
        .with_context(|| format!("writing {}", a.out.display()))?;
    let roles: Vec<String> = a.roles.iter().map(u32::to_string).collect();
    println!(
        "attribute certificate (roles {}, {} days, {} octets) for {} in {}",
        roles.join(", "),
        a.days,
        der.len(),
        a.holder.display(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn issue(a: IssueArgs) -> Result<ExitCode> {
    let kt = key_type(&a.key_type)?;
    let ca = load_ca(&a.ca)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let validity = Validity::days_from(now(), a.days);
    if a.tls {
        if a.ap_title.is_some() || a.jid.is_some() || a.role.is_some() {
            bail!("--tls issues a TLS certificate: --ap-title, --jid and --role belong to the application certificate (Annex G.2)");
        }
        let cn =
            a.cn.clone()
                .or_else(|| a.dns.first().cloned())
                .unwrap_or_else(|| "secmms".into());
        let key = generate(kt, &a.key_type)?;
        progress("signing the TLS certificate...");
        let der = issue_tls(
            &TlsRequest {
                common_name: cn.clone(),
                dns: a.dns.clone(),
                ips: a.ip.clone(),
                crl_url: a.crl_url.clone(),
                ocsp_url: a.ocsp_url.clone(),
                validity,
            },
            key.pkey(),
            &ca,
            &mut OsRandom,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        write_private(&a.out.join("tls-key.pem"), &key)?;
        std::fs::write(a.out.join("tls-cert.pem"), pem("CERTIFICATE", &der))?;
        index_add(&a.ca, &der, validity)?;
        println!(
            "TLS certificate CN={cn} ({}, serial {}) in {}: tls-cert.pem, tls-key.pem (0600)",
            a.key_type,
            hex::encode(&cert_serial(&der).map_err(|e| anyhow::anyhow!("{e}"))?),
            a.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let binding = match (&a.ap_title, a.ae_qualifier, &a.jid) {
        (Some(ap), Some(q), None) => Binding::Osi {
            ap_title: ap
                .parse()
                .map_err(|_| anyhow::anyhow!("--ap-title {ap:?} is not a dotted OID"))?,
            ae_qualifier: q,
        },
        (None, None, Some(j)) => Binding::Jid(j.clone()),
        _ => bail!("give --ap-title OID --ae-qualifier N (OSI) or --jid JID (XMPP), or --tls"),
    };
    let form: SubjectForm = a.subject_form.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = generate(kt, &a.key_type)?;
    progress("signing the application certificate...");
    let req = EndEntityRequest {
        binding: binding.clone(),
        subject_form: form,
        role: a.role,
        role_aor: a.aor.clone(),
        crl_url: a.crl_url.clone(),
        ocsp_url: a.ocsp_url.clone(),
        validity,
    };
    let der = issue_end_entity(&req, key.pkey(), &ca, &mut OsRandom)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    write_private(&a.out.join("key.pem"), &key)?;
    std::fs::write(a.out.join("cert.pem"), pem("CERTIFICATE", &der))?;
    index_add(&a.ca, &der, validity)?;
    let report = lint(&der);
    let subject = match binding.identity().map_err(|e| anyhow::anyhow!("{e}"))? {
        secmms_pki::PeerIdentity::ApTitle(o) => format!("2.5.4.106={o}"),
        secmms_pki::PeerIdentity::Jid(j) => format!("2.5.4.105={j}"),
    };
    println!(
        "application certificate {subject} ({}, serial {}, {} octets) in {}: cert.pem, key.pem (0600)",
        a.key_type,
        report.serial_hex,
        der.len(),
        a.out.display()
    );
    if form == SubjectForm::Oid {
        println!("note: OID subject form: OpenSSL-based tools cannot load this certificate");
    }
    Ok(ExitCode::SUCCESS)
}

/// The CA's certificate database in OpenSSL's `index.txt` format (read by `openssl ocsp -index`):
/// one line per issued certificate, `V` (valid) or `R` (revoked, with its time).
const INDEX: &str = "index.txt";

/// Records an issued certificate in the CA's index.txt.
fn index_add(ca_dir: &Path, der: &[u8], validity: Validity) -> Result<()> {
    use std::io::Write;
    let serial = cert_serial(der).map_err(|e| anyhow::anyhow!("{e}"))?;
    let serial_hex = hex::encode(&serial).to_ascii_uppercase();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ca_dir.join(INDEX))
        .with_context(|| format!("opening {}/{INDEX}", ca_dir.display()))?;
    // The subject column is for people; OCSP looks certificates up by serial.
    writeln!(
        f,
        "V\t{}\t\t{serial_hex}\tunknown\t/CN=secmms {serial_hex}",
        secmms_pki::tooling::index_time(validity.not_after)
    )?;
    Ok(())
}

/// Marks the revoked serials `R` in the CA's index.txt (lines of other tools are kept).
fn index_revoke(ca_dir: &Path, revoked: &[RevokedEntry]) -> Result<()> {
    let p = ca_dir.join(INDEX);
    let Ok(text) = std::fs::read_to_string(&p) else {
        return Ok(());
    };
    let mut out = String::new();
    for line in text.lines() {
        let mut f: Vec<String> = line.split('\t').map(str::to_string).collect();
        if f.len() >= 6 && f[0] == "V" {
            if let Some(r) = revoked
                .iter()
                .find(|r| hex::encode(&r.serial).eq_ignore_ascii_case(&f[3]))
            {
                f[0] = "R".into();
                f[2] = secmms_pki::tooling::index_time(r.revoked_at);
            }
        }
        out.push_str(&f.join("\t"));
        out.push('\n');
    }
    std::fs::write(&p, out).with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

fn crl(a: CrlArgs) -> Result<ExitCode> {
    let ca = load_ca(&a.ca)?;
    let index_p = a.ca.join("revoked.txt");
    let index = std::fs::read_to_string(&index_p).unwrap_or_default();
    let mut revoked = Vec::new();
    for (n, line) in index.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        // A serial number: hex, not empty.
        let serial = parts.next().and_then(hex::decode).filter(|v| !v.is_empty());
        let at = parts.next().and_then(|t| t.parse::<i64>().ok());
        match (serial, at) {
            (Some(serial), Some(revoked_at)) => revoked.push(RevokedEntry { serial, revoked_at }),
            _ => bail!("{}:{}: bad line {line:?}", index_p.display(), n + 1),
        }
    }
    let t = now();
    let mut added = 0;
    for f in &a.revoke {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let der = pem_or_der("CERTIFICATE", &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !issued_by(&der, &ca.cert_der).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))? {
            bail!("{} was not issued by this CA", f.display());
        }
        let serial = cert_serial(&der).map_err(|e| anyhow::anyhow!("{e}"))?;
        if revoked.iter().any(|r| r.serial == serial) {
            progress(&format!("{}: already revoked", f.display()));
            continue;
        }
        progress(&format!("revoking serial {}", hex::encode(&serial)));
        revoked.push(RevokedEntry {
            serial,
            revoked_at: t,
        });
        added += 1;
    }
    let num_p = a.ca.join("crlnumber");
    let last: u64 = std::fs::read_to_string(&num_p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let number = last.saturating_add(1);
    let next = t.saturating_add(i64::from(a.next_update_days.max(1)) * 86_400);
    progress("signing the CRL...");
    let der = issue_crl(&ca, &revoked, number, t, next).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(&a.out, pem("X509 CRL", &der))
        .with_context(|| format!("writing {}", a.out.display()))?;
    let mut idx = String::new();
    for r in &revoked {
        idx.push_str(&format!("{} {}\n", hex::encode(&r.serial), r.revoked_at));
    }
    std::fs::write(&index_p, idx)?;
    index_revoke(&a.ca, &revoked)?;
    std::fs::write(&num_p, format!("{number}\n"))?;
    println!(
        "CRL number {number} with {} revoked certificate(s) ({added} new), next update in {} day(s): {}",
        revoked.len(),
        a.next_update_days.max(1),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn check(a: CheckArgs) -> ExitCode {
    let file = a.file.display().to_string();
    let der = match std::fs::read(&a.file)
        .map_err(|e| e.to_string())
        .and_then(|b| pem_or_der("CERTIFICATE", &b).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({ "file": file, "compliant": false, "error": e })
                );
            } else {
                eprintln!("error: {file}: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let r = lint(&der);
    let sev = |s: FindingSeverity| match s {
        FindingSeverity::Error => "error",
        FindingSeverity::Warning => "warning",
    };
    if a.json {
        let identity = r.identity.as_ref().map(|i| match i {
            secmms_pki::PeerIdentity::ApTitle(o) => {
                serde_json::json!({ "objectIdentifier": o.to_string() })
            }
            secmms_pki::PeerIdentity::Jid(j) => serde_json::json!({ "jid": j }),
        });
        let findings: Vec<_> = r
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "rule": f.rule.name(),
                    "clause": f.rule.clause(),
                    "severity": sev(f.rule.severity()),
                    "message": f.rule.message(),
                    "detail": f.detail,
                    "explanation": f.rule.explanation(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "file": file,
                "compliant": r.compliant(),
                "size": r.size,
                "serial": r.serial_hex,
                "identity": identity,
                "findings": findings,
            })
        );
    } else {
        let verdict = if r.compliant() {
            "complies with IEC 62351-4 Annex G"
        } else {
            "does NOT comply with IEC 62351-4 Annex G"
        };
        let w = r
            .findings
            .iter()
            .filter(|f| f.rule.severity() == FindingSeverity::Warning)
            .count();
        println!(
            "{file}: {verdict} ({} error(s), {w} warning(s))",
            r.findings.len() - w
        );
        for f in &r.findings {
            let detail = f
                .detail
                .as_ref()
                .map(|d| format!(" [{d}]"))
                .unwrap_or_default();
            println!(
                "  {:<7} {} ({}): {}{detail}",
                sev(f.rule.severity()).to_uppercase(),
                f.rule.name(),
                f.rule.clause(),
                f.rule.message()
            );
            println!("          {}", f.rule.explanation());
        }
    }
    if r.compliant() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
