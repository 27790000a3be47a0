//! A misbehaving native-mode server over TCP (§14.3, HandshakeAcc checks of the client): its
//! HandshakeAcc selects two algorithms where exactly one must be chosen, correctly signed with
//! its own key. The real runtime client (`secmms::Client`) must refuse it with the
//! single-selection diagnostic, send the HandshakeSecAbort, and tell its caller why.
//!
//! The server is the sans-IO OSI association with the native hook, wrapped so that its AARE is
//! rewritten, driven over a blocking socket on a thread of its own.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use secmms::config::Config;
use secmms::security::{AppMode, Encrypt};
use secmms_ber::Limits;
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::pdu::{EncrMode, Handshake, SecPdu};
use secmms_e2e::TimeStamp;
use secmms_mms::model::{Model, SharedModel};
use secmms_mms::server::{InitiateOutcome, ServerConfig, Vmd};
use secmms_osi::acse::{Aare, Aarq, Abrt, Rlre, Rlrq};
use secmms_osi::security::{
    AbortRequest, AssociateVerdict, AssociationSecurity, Role, SecurityContext, Verdict,
};
use secmms_osi::{Association, OsiConfig, OsiEvent};
use secmms_pki::event::MemorySink;
use secmms_pki::tooling::Binding;
use secmms_profiles::native::wire::{self, EnvApdu, EnvValue};
use secmms_profiles::native::{NativeConfig, NativeShared, NativeState};
use secmms_profiles::{ConnectionInfo, PeerTable};

/// The native hook with the AARE's HandshakeAcc rewritten by `edit` and re-signed.
struct Rewriting {
    inner: NativeState,
    key: secmms_pki::SigningKey,
    selection: EncrMode,
}

impl AssociationSecurity for Rewriting {
    fn decorate_aarq(&mut self, c: &SecurityContext<'_>, a: &mut Aarq) -> Result<(), AbortRequest> {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.decorate_aarq(c, a)
    }
    fn check_aarq(&mut self, c: &SecurityContext<'_>, a: &Aarq) -> AssociateVerdict {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.check_aarq(c, a)
    }
    fn unsupported_application_context(&mut self, c: &SecurityContext<'_>, a: &Aarq) {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.unsupported_application_context(c, a)
    }
    fn decorate_aare(&mut self, c: &SecurityContext<'_>, a: &mut Aare) -> Result<(), AbortRequest> {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.decorate_aare(c, a)?;
        let pcid = a.user_information[0].indirect_reference.unwrap() as u32;
        let v = a.user_information[0].single_value().unwrap().to_vec();
        let EnvValue::SecPdu { kind, pdu } =
            wire::decode(EnvApdu::Aare, &v, Limits::default()).unwrap()
        else {
            panic!("no SecPDU in the AARE")
        };
        // Only an accepting AARE is rewritten.
        let SecPdu::HandshakeAcc(mut h) = SecPdu::decode(kind, &pdu, Limits::default()).unwrap()
        else {
            return Ok(());
        };
        h.token1.encr_mode = self.selection.clone();
        h.tbs = Handshake::tbs_content(&h.token1, h.appl_data.as_deref());
        h.sign.sign = self.key.sign(&h.tbs).unwrap();
        let value = wire::encode(EnvApdu::Aare, kind, SecPdu::HandshakeAcc(h).encode()).unwrap();
        a.user_information = wire::external(pcid, value);
        Ok(())
    }
    fn check_aare(&mut self, c: &SecurityContext<'_>, a: &Aare) -> Verdict {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.check_aare(c, a)
    }
    fn check_rejecting_aare(&mut self, c: &SecurityContext<'_>, a: &Aare) -> Option<Vec<u8>> {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.check_rejecting_aare(c, a)
    }
    fn decorate_rlrq(&mut self, c: &SecurityContext<'_>, r: &mut Rlrq) -> Result<(), AbortRequest> {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.decorate_rlrq(c, r)
    }
    fn check_rlrq(&mut self, c: &SecurityContext<'_>, r: &Rlrq) -> Verdict {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.check_rlrq(c, r)
    }
    fn decorate_rlre(&mut self, c: &SecurityContext<'_>, r: &mut Rlre) -> Result<(), AbortRequest> {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.decorate_rlre(c, r)
    }
    fn check_rlre(&mut self, c: &SecurityContext<'_>, r: &Rlre) -> Verdict {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.check_rlre(c, r)
    }
    fn decorate_abrt(&mut self, c: &SecurityContext<'_>, a: &mut Abrt) {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.decorate_abrt(c, a)
    }
    fn check_abrt(&mut self, c: &SecurityContext<'_>, a: &Abrt) {
        self.inner.set_now(TimeStamp(secmms_pki_now()));
        self.inner.check_abrt(c, a)
    }
}

struct Pki {
    dir: std::path::PathBuf,
    ca: secmms_tools::demo::AppCa,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!(
        "secmms-misbehaving-native-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = secmms_tools::demo::AppCa::create("CA", &dir.join("ca.pem")).unwrap();
    for (who, ap, q) in [("server", "1.1.1.999.1", 12), ("client", "1.1.1.999.2", 13)] {
        ca.issue_app(
            Binding::Osi {
                ap_title: ap.parse().unwrap(),
                ae_qualifier: q,
            },
            &dir.join(format!("{who}-cert.pem")),
            &dir.join(format!("{who}-key.pem")),
        )
        .unwrap();
    }
    Pki { dir, ca }
}

fn config(p: &Pki, who: &str, encrypt: Encrypt) -> Config {
    let mut c = Config::default();
    c.security.mode = AppMode::Native;
    c.security.encrypt = encrypt;
    c.security.app_cert = Some(p.dir.join(format!("{who}-cert.pem")));
    c.security.app_key = Some(p.dir.join(format!("{who}-key.pem")));
    c.security.ca = vec![p.ca.ca_pem.clone()];
    c
}

/// Serves one association on `listener` with the rewriting hook; returns when it ends.
fn serve_one(listener: TcpListener, cfg: Config, selection: EncrMode) {
    let ctx = secmms::security::load_e2e_context(&cfg.security, &cfg.tls).unwrap();
    let key = ctx.credentials.key.clone();
    let shared = NativeShared::new(
        ctx,
        NativeConfig::default(),
        PeerTable::require_end_to_end(),
        Arc::new(MemorySink::new()),
    );
    let mut osi = OsiConfig::server_default();
    shared.prepare_osi_config(&mut osi, Role::Responder);
    let hook = shared.responder_state(ConnectionInfo::default());
    let mut assoc = Association::with_security(
        Role::Responder,
        osi,
        Box::new(Rewriting {
            inner: hook,
            key,
            selection,
        }),
    );
    let mms = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let (mut sock, _) = listener.accept().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(out) = assoc.poll_transmit() {
            if sock.write_all(&out).is_err() {
                return;
            }
        }
        while let Some(ev) = assoc.poll_event() {
            match ev {
                OsiEvent::AssociateIndication { user_data, .. } => {
                    match mms.accept_initiate(user_data.as_deref().unwrap_or_default()) {
                        InitiateOutcome::Accepted { response, .. } => {
                            let _ = assoc.accept(response);
                        }
                        _ => panic!("initiate refused"),
                    }
                }
                OsiEvent::Closed => return,
                _ => {}
            }
        }
        while let Some(out) = assoc.poll_transmit() {
            if sock.write_all(&out).is_err() {
                return;
            }
        }
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if assoc.handle_input(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn secmms_pki_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn refused_with(encrypt: Encrypt, selection: EncrMode, diagnostic: &str) {
    let p = pki(diagnostic);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let scfg = config(&p, "server", Encrypt::Gcm);
    let server = std::thread::spawn(move || serve_one(listener, scfg, selection));
    let ccfg = config(&p, "client", encrypt);
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        ccfg.client_builder().connect(&addr.to_string()),
    )
    .await
    .expect("the client hung");
    let Err(e) = r else {
        panic!("a HandshakeAcc selecting two algorithms was accepted")
    };
    let e = e.to_string();
    assert!(e.contains(diagnostic), "{e}");
    server.join().unwrap();
}

#[tokio::test]
async fn two_ae_algorithms_selected_is_single_ae_algorithm_required() {
    refused_with(
        Encrypt::Gcm,
        EncrMode::Aea(vec![AeAlg::Aes128Gcm.id(), AeAlg::Aes256Gcm.id()]),
        "single-ae-algorithm-required",
    )
    .await;
}

#[tokio::test]
async fn two_encryption_algorithms_selected_is_single_encrypt_algo_required() {
    refused_with(
        Encrypt::Cbc,
        EncrMode::NonAea {
            encr: Some(vec![EncrAlg::Aes128Cbc.id(), EncrAlg::Aes256Cbc.id()]),
            icv: vec![IcvAlg::HmacSha256.id()],
        },
        "single-encrypt-algo-required",
    )
    .await;
}
