//! Native-mode policy (§13.3.1.5, §9's configurable values) enforced by a real server over TCP:
//! each test configures both sides through `[security]` (as the TOML keys do), runs a real
//! association and checks what the client is told, what the server logged and what the client
//! logged on receiving the HandshakeSecReject (§14.5 groups 1 and 4).

use std::sync::Arc;

use secmms::security::{
    AppMode, AppSecurity, ConfParam, DhGroupName, Encrypt, EncryptionRule, SecurityConfig,
    SignatureName,
};
use secmms::Config;
use secmms_pki::event::{MemorySink, SecurityEvent, SecurityEventSink};
use secmms_tools::demo::DemoPki;

struct Outcome {
    /// The client's error, or `None` when the association was established (and released).
    error: Option<String>,
    server: Vec<SecurityEvent>,
    client: Vec<SecurityEvent>,
    /// The protection the client reports once established.
    protection: Option<String>,
    /// The typed refusal the client got, when the server refused.
    refusal: Option<secmms::client::Refusal>,
}

impl Outcome {
    fn server_has(&self, mnemonic: &str, id: &str) -> bool {
        self.server
            .iter()
            .any(|e| e.mnemonic == mnemonic && e.id.to_string() == id)
    }
    fn client_has(&self, mnemonic: &str, id: &str) -> bool {
        self.client
            .iter()
            .any(|e| e.mnemonic == mnemonic && e.id.to_string() == id)
    }
}

fn pki() -> DemoPki {
    let parent = std::env::temp_dir().join(format!("secmms-native-policy-{}", std::process::id()));
    std::fs::create_dir_all(&parent).unwrap();
    DemoPki::create(&parent).unwrap()
}

async fn run(
    server: impl FnOnce(&mut SecurityConfig),
    client: impl FnOnce(&mut SecurityConfig),
) -> Outcome {
    let pki = pki();
    let mut scfg = Config::default();
    scfg.server.listen = "127.0.0.1:0".into();
    scfg.server.worker_threads = Some(0);
    pki.apply_security(&mut scfg, true, AppMode::Native, Encrypt::Gcm);
    server(&mut scfg.security);
    scfg.validate().expect("server configuration");
    let server_events = Arc::new(MemorySink::new());
    let sink: Arc<dyn SecurityEventSink> = server_events.clone();
    let h = scfg
        .server_builder()
        .events(sink)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();

    let mut ccfg = Config::default();
    pki.apply_security(&mut ccfg, false, AppMode::Native, Encrypt::Gcm);
    client(&mut ccfg.security);
    ccfg.validate().expect("client configuration");
    let client_events = Arc::new(MemorySink::new());
    let csink: Arc<dyn SecurityEventSink> = client_events.clone();
    let security = AppSecurity::build(&ccfg.security, &ccfg.tls, &ccfg.osi, csink).unwrap();
    let (error, protection, refusal) = match ccfg
        .client_builder()
        .app_security(security.clone())
        .connect(&h.addr.to_string())
        .await
    {
        Ok(c) => {
            c.identify().await.unwrap();
            let p = c.protection().to_string();
            c.release().await.unwrap();
            (None, Some(p), None)
        }
        Err(secmms::ClientError::Rejected(r)) => {
            (Some(format!("association rejected: {r}")), None, Some(*r))
        }
        Err(e) => (Some(e.to_string()), None, None),
    };
    // The server records its events before it answers; give its task a moment to finish.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    h.shutdown();
    Outcome {
        error,
        server: server_events.events(),
        client: client_events.events(),
        protection,
        refusal,
    }
}

fn refused(o: &Outcome, diagnostic: &str) -> String {
    let e = o
        .error
        .clone()
        .unwrap_or_else(|| panic!("established, expected {diagnostic}"));
    assert!(
        e.contains("HandshakeSecReject") && e.contains(diagnostic),
        "the client is told the diagnostic: {e}"
    );
    e
}

#[tokio::test]
async fn server_requiring_encryption_refuses_a_client_offering_none() {
    let o = run(
        |s| s.encryption = EncryptionRule::Required,
        |s| s.encrypt = Encrypt::None,
    )
    .await;
    refused(&o, "encryption-required");
    // The same outcome, typed, from the wire to the caller: the AARE's ACSE result and the
    // verified HandshakeSecReject's diagnostic.
    let r = o.refusal.as_ref().expect("a typed refusal");
    assert!(
        matches!(r.reason, Some(secmms_osi::RejectReason::Acse { .. })),
        "{r:?}"
    );
    assert_eq!(
        r.e2e,
        Some(secmms_profiles::NativeDiagnostic::SecurityRejected {
            diagnostic: Some(secmms_e2e::HandshakeDiagnostic::EncryptionRequired)
        })
    );
    assert!(
        o.server_has("ENCR_NOT_REQUESTED_ASS_REQ", "IEC62351-4:1.18"),
        "{:?}",
        o.server
    );
    assert!(
        o.client_has("SEC_REJECT_ENCR_REQUIRED_RCVD", "IEC62351-4:4.18"),
        "{:?}",
        o.client
    );
    // The same server accepts a client that encrypts.
    let o = run(
        |s| s.encryption = EncryptionRule::Required,
        |s| s.encrypt = Encrypt::Cbc,
    )
    .await;
    assert_eq!(o.error, None);
    assert!(o.protection.unwrap().contains("Cbc"));
}

/// A side forbidding encryption offers none itself (`encrypt = "none"`; anything else is a
/// configuration error).
fn forbid(s: &mut SecurityConfig) {
    s.encryption = EncryptionRule::Forbidden;
    s.encrypt = Encrypt::None;
}

#[tokio::test]
async fn server_forbidding_encryption_refuses_cbc_and_gcm_offers() {
    let o = run(forbid, |s| s.encrypt = Encrypt::Cbc).await;
    refused(&o, "encryption-not-required");
    assert!(o.server_has("ENCR_NOT_REQUIRED_ASS_REQ", "IEC62351-4:1.21"));
    assert!(o.client_has("SEC_REJECT_ENCR_NOT_REQUIRED_RCVD", "IEC62351-4:4.17"));

    let o = run(forbid, |s| s.encrypt = Encrypt::Gcm).await;
    refused(&o, "aea-select-but-encryp-not-supp");
    assert!(o.server_has("AEAD_NO_ENCR_ASS_REQ", "IEC62351-4:1.15"));
    // An AMD1 diagnostic has no slot in 4.12–4.27: the local event names it.
    assert!(o
        .client
        .iter()
        .any(|e| e.mnemonic == "HANDSHAKE_SEC_REJECT_RCVD"
            && e.id.to_string() == "secmms:0.3"
            && e.message.contains("aea-select-but-encryp-not-supp")));

    let o = run(forbid, forbid).await;
    assert_eq!(o.error, None);
}

#[tokio::test]
async fn server_requiring_ae_refuses_cbc() {
    let o = run(|s| s.require_ae = true, |s| s.encrypt = Encrypt::Cbc).await;
    refused(&o, "ae-is-required");
    assert!(o.server_has("AE_REQUIRED_ASS_REQ", "IEC62351-4:1.17"));
    let o = run(|s| s.require_ae = true, |s| s.require_ae = true).await;
    assert_eq!(o.error, None);
    assert!(o.protection.unwrap().contains("Gcm"));
}

#[tokio::test]
async fn dh_groups_are_policy_on_both_sides() {
    let o = run(
        |s| s.dh_groups = vec![DhGroupName::Modp2048],
        |s| s.dh_groups = vec![DhGroupName::EcdhP256],
    )
    .await;
    refused(&o, "dhGroup-not-supported");
    assert!(o.server_has("UNSUP_DH_GROUP_ASS_REQ", "IEC62351-4:1.12"));
    assert!(o.client_has("SEC_REJECT_DH_GROUP_NOT_SUP_RCVD", "IEC62351-4:4.22"));
    for g in [DhGroupName::Modp2048, DhGroupName::EcdhBrainpoolP256r1] {
        let o = run(|s| s.dh_groups = vec![g], |s| s.dh_groups = vec![g]).await;
        assert_eq!(o.error, None, "{g:?}");
    }
}

#[tokio::test]
async fn signature_types_protected_protocol_and_conf_params() {
    // The demo certificates are ECDSA: a server accepting RSA signatures only refuses them.
    let o = run(|s| s.signatures = vec![SignatureName::RsaSha256], |_| {}).await;
    refused(&o, "invalid-signatureAlgorithm");
    assert!(o.server_has("SIGNATURE_ALGO_NOT_SUP_ASS_REQ", "IEC62351-4:1.1"));
    assert!(o.client_has("SEC_REJECT_INV_SIG_ALGO_RCVD", "IEC62351-4:4.14"));

    // A pp token the server does not serve.
    let o = run(
        |s| s.protected_protocol = Some("IEC60870-5-104".into()),
        |_| {},
    )
    .await;
    refused(&o, "protected-protocol-not-supported");
    assert!(o.server_has("PROTECTED_PROT_NOT_SUP_REQ", "IEC62351-4:1.4"));
    assert!(o.client_has("SEC_REJECT_PROT_NOT_SUP_RCVD", "IEC62351-4:4.13"));

    // Both sides naming another pp, confParams and a rekey interval still associate.
    let o = run(
        |s| {
            s.accepted_protocols = vec!["IEC61850-8-1".into(), "TASE.2".into()];
            s.rekey_interval_secs = 900;
        },
        |s| {
            s.protected_protocol = Some("TASE.2".into());
            s.conf_params = vec![ConfParam::TlsProtected, ConfParam::Vpn];
            s.signatures = vec![SignatureName::EcdsaSha256];
        },
    )
    .await;
    assert_eq!(o.error, None);
}

#[test]
fn policy_keys_are_toml_and_contradictions_are_refused() {
    let c = Config::from_toml(
        r#"[security]
encryption = "required"
require_ae = true
dh_groups = ["modp2048", "ecdh-brainpool-p256r1"]
signatures = ["rsa-sha256"]
rekey_interval_secs = 1800
conf_params = ["tls-protected"]
protected_protocol = "TASE.2"
accepted_protocols = ["TASE.2", "IEC61850-8-1"]
"#,
    )
    .unwrap();
    let e2e = secmms::security::e2e_config(&c.security);
    assert_eq!(e2e.encryption, secmms_e2e::EncryptionPolicy::Required);
    assert!(e2e.require_ae);
    assert_eq!(e2e.rekey_interval_ms, 1_800_000);
    assert_eq!(e2e.protected_protocol, "TASE.2");
    assert_eq!(e2e.accepted_protocols.len(), 2);
    assert!(e2e.conf_params.tls_protected && !e2e.conf_params.vpn);
    assert_eq!(e2e.offer_groups.len(), 2);
    assert_eq!(e2e.allowed_signatures.len(), 1);

    for (text, field) in [
        (
            "encryption = \"required\"\nencrypt = \"none\"",
            "security.encryption",
        ),
        ("encryption = \"forbidden\"", "security.encryption"),
        (
            "require_ae = true\nencrypt = \"cbc\"",
            "security.require_ae",
        ),
        ("rekey_interval_secs = 60", "security.rekey_interval_secs"),
        (
            "rekey_interval_secs = 90000",
            "security.rekey_interval_secs",
        ),
        ("dh_groups = [\"ffdhe2048\"]", "dh_groups"),
    ] {
        let e = Config::from_toml(&format!("[security]\n{text}"))
            .expect_err(text)
            .to_string();
        assert!(e.contains(field), "{text}: {e}");
    }
}
