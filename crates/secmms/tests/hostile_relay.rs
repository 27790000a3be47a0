//! A hostile relay (IEC 62351-4 §15.5: intermediaries "must not alter" E2E content): a test
//! double built on `secmms::relay::Tap` that flips bytes, replays, reorders, drops, swaps PDUs
//! between two associations and injects a forged abort. Each attack on the victim association is
//! detected by the end systems with the diagnostic the standard names, and a second association
//! through the same relay carries on untouched.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secmms::config::Config;
use secmms::relay::{Relay, Tap, TapAction, TapContext};
use secmms::security::{AppMode, AppSecurity, Encrypt};
use secmms::{Client, ServerHandle};
use secmms_e2e::pdu::{ClearToken3, SecPdu, SecPduKind, Signature, Token3Body, Token3Pdu};
use secmms_e2e::{DtDiagnostic, TimeStamp};
use secmms_osi::security::AbortRequest;
use secmms_pki::event::MemorySink;
use secmms_profiles::native::wire::{self, EnvApdu};
use secmms_tools::demo::DemoPki;

/// The association the tap attacks (numbered by the relay in order of establishment).
const VICTIM: u64 = 1;
/// The client→server P-DATA index at which the attack happens (the first ones pass).
const AT: u64 = 2;
/// Reads the bystander makes while the victim is attacked.
const BYSTANDER_READS: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Attack {
    Flip,
    Replay,
    Reorder,
    Drop,
    Swap,
    ForgedAbort,
}

struct Hostile {
    attack: Attack,
    held: Mutex<Option<Vec<u8>>>,
    /// The last client→server PDU of another association (for the swap).
    other: Mutex<Option<Vec<u8>>>,
    /// The client's application certificate (public: it travels in every handshake).
    client_cert: Vec<u8>,
    fired: Mutex<bool>,
}

impl Hostile {
    fn forged_abort(&self, pdu: &[u8], context_id: i64) -> AbortRequest {
        // A DtSecAbort that claims to come from the client: its real certificate and the
        // association's assoID (both readable on the path), but the forger has no private key.
        let asso_id = secmms_e2e::pdu::TransferView::decode(
            true,
            pdu,
            secmms_e2e::limits::default_ber_limits(),
        )
        .ok()
        .map(|v| v.to_owned().token2.asso_id);
        let sig_alg =
            secmms_e2e::alg::sig_alg_id(secmms_pki::crypto::SignatureAlgorithm::EcdsaSha256);
        let token3 = ClearToken3 {
            sig_alg: sig_alg.clone(),
            version: secmms_e2e::pdu::Version::v1(),
            asso_id,
            time: TimeStamp(now_ms()),
            pk_cert: self.client_cert.clone(),
            cert_path: None,
        };
        let body = Token3Body::DtDiag(Some(DtDiagnostic::ProtocolError));
        let tbs = Token3Pdu::tbs_content(&token3, &body);
        let forged = SecPdu::DtSecAbort(Token3Pdu {
            token3,
            body,
            sign: Signature {
                algo: sig_alg,
                // A plausible-looking ECDSA signature that no key made.
                sign: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
            },
            tbs,
            unknown_diag: None,
        })
        .encode();
        let value = wire::encode(EnvApdu::Abrt, SecPduKind::DtSecAbort, forged).unwrap();
        AbortRequest {
            diagnostic: None,
            user_information: wire::external(context_id as u32, value),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Tap for Hostile {
    fn on_data(&self, ctx: TapContext, pdu: Vec<u8>) -> Vec<TapAction> {
        if ctx.association != VICTIM {
            if ctx.from_initiator {
                *self.other.lock().unwrap() = Some(pdu.clone());
            }
            return vec![TapAction::Send(pdu)];
        }
        if !ctx.from_initiator || ctx.index < AT {
            return vec![TapAction::Send(pdu)];
        }
        let first = {
            let mut f = self.fired.lock().unwrap();
            let first = !*f;
            *f = true;
            first
        };
        match self.attack {
            Attack::Flip if first => {
                let mut p = pdu;
                let n = p.len();
                p[n - 5] ^= 0x40;
                vec![TapAction::Send(p)]
            }
            Attack::Replay if first => vec![TapAction::Send(pdu.clone()), TapAction::Send(pdu)],
            Attack::Reorder => {
                let mut held = self.held.lock().unwrap();
                match held.take() {
                    None if ctx.index == AT => {
                        *held = Some(pdu);
                        vec![]
                    }
                    Some(h) => vec![TapAction::Send(pdu), TapAction::Send(h)],
                    None => vec![TapAction::Send(pdu)],
                }
            }
            Attack::Drop if first => vec![],
            Attack::Swap if first => {
                let other = self.other.lock().unwrap().clone().expect("a bystander PDU");
                vec![TapAction::Send(other)]
            }
            Attack::ForgedAbort if first => {
                // The context id the victim's data uses on this hop (the relay renumbers it).
                vec![TapAction::Abort(self.forged_abort(&pdu, 5))]
            }
            _ => vec![TapAction::Send(pdu)],
        }
    }
}

struct Setup {
    _pki: DemoPki,
    server: ServerHandle,
    server_events: Arc<MemorySink>,
    relay: secmms::relay::RelayHandle,
    client_cfg: Config,
}

async fn setup(attack: Attack, encrypt: Encrypt) -> (Setup, Arc<Hostile>) {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    pki.apply_security(&mut cfg, true, AppMode::Native, encrypt);
    let server_events = Arc::new(MemorySink::new());
    let server = cfg
        .server_builder()
        .events(server_events.clone())
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let cert_pem = std::fs::read(&pki.client_app.0).unwrap();
    let client_cert = openssl::x509::X509::from_pem(&cert_pem)
        .unwrap()
        .to_der()
        .unwrap();
    let tap = Arc::new(Hostile {
        attack,
        held: Mutex::new(None),
        other: Mutex::new(None),
        client_cert,
        fired: Mutex::new(false),
    });
    let mut rc = Config::default();
    rc.relay.listen = "127.0.0.1:0".into();
    rc.relay.to = Some(server.addr.to_string());
    let relay = Relay::bind(rc.relay_settings())
        .await
        .unwrap()
        .with_tap(tap.clone())
        .spawn()
        .unwrap();
    let mut client_cfg = Config::default();
    client_cfg.client.request_timeout_secs = 2;
    pki.apply_security(&mut client_cfg, false, AppMode::Native, encrypt);
    (
        Setup {
            _pki: pki,
            server,
            server_events,
            relay,
            client_cfg,
        },
        tap,
    )
}

async fn connect(s: &Setup) -> (Client, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    let sec = AppSecurity::build(
        &s.client_cfg.security,
        &s.client_cfg.tls,
        &s.client_cfg.osi,
        sink.clone(),
    )
    .unwrap();
    let c = s
        .client_cfg
        .client_builder()
        .app_security(sec.clone())
        .connect(&s.relay.addr.to_string())
        .await
        .unwrap();
    (c, sink)
}

fn names(sink: &MemorySink) -> Vec<&'static str> {
    sink.events().iter().map(|e| e.mnemonic).collect()
}

const REF: &str = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]";

/// Runs one attack; returns (victim error, server events, victim client events).
async fn attack(
    attack: Attack,
    encrypt: Encrypt,
) -> (String, Vec<&'static str>, Vec<&'static str>) {
    let (s, _tap) = setup(attack, encrypt).await;
    let (victim, victim_events) = connect(&s).await;
    let (bystander, _) = connect(&s).await;
    let name = victim.resolve(REF).await.unwrap();
    let bname = bystander.resolve(REF).await.unwrap();
    // The bystander's traffic runs alongside the attack.
    let by = tokio::spawn(async move {
        for _ in 0..BYSTANDER_READS {
            bystander.read_name(&bname).await?;
        }
        bystander.release().await?;
        Ok::<_, secmms::ClientError>(())
    });
    // Swap needs a bystander PDU captured before the victim's attacked PDU.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The victim reads in pairs (two requests in flight, leaving together) until it fails.
    let mut err = None;
    for _ in 0..20 {
        let (a, b) = tokio::join!(victim.read_name(&name), victim.read_name(&name));
        if let Err(e) = a.and(b) {
            err = Some(e.to_string());
            break;
        }
    }
    by.await
        .unwrap()
        .expect("the bystander association is untouched");
    let err = err.expect("the attack was noticed by the victim");
    // Give the server task a moment to record its events.
    for _ in 0..100 {
        if s.server.stats.failed.load(Ordering::Relaxed) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (server, client) = (names(&s.server_events), names(&victim_events));
    eprintln!("{attack:?}/{encrypt:?}: victim error `{err}`; server events {server:?}; victim events {client:?}");
    (err, server, client)
}

#[tokio::test]
async fn flipped_byte_is_a_bad_icv() {
    let (_, server, client) = attack(Attack::Flip, Encrypt::Gcm).await;
    assert!(server.contains(&"ENCR_BAD_ICV_TRF"), "{server:?}");
    // The server's DtSecAbort reached the victim through the relay.
    assert!(
        client.iter().any(|m| m.starts_with("DT_SEC_ABORT")),
        "{client:?}"
    );
    let (_, server, _) = attack(Attack::Flip, Encrypt::None).await;
    assert!(server.contains(&"CLEAR_BAD_ICV_TRF"), "{server:?}");
}

#[tokio::test]
async fn replayed_pdu_is_a_replay() {
    let (_, server, client) = attack(Attack::Replay, Encrypt::Gcm).await;
    assert!(server.contains(&"ENCR_REPLAY_TRF"), "{server:?}");
    assert!(
        client.iter().any(|m| m.starts_with("DT_SEC_ABORT")),
        "{client:?}"
    );
}

#[tokio::test]
async fn reordered_pdus_break_the_time_and_sequence_rules() {
    let (_, server, client) = attack(Attack::Reorder, Encrypt::Gcm).await;
    assert!(
        server.contains(&"ENCR_INV_SEQ_TRF") || server.contains(&"ENCR_INV_TIME_TRF"),
        "{server:?}"
    );
    // The victim records why the server aborted (a diagnostic outside the captured catalogue).
    assert!(client.contains(&"DT_SEC_ABORT_RCVD"), "{client:?}");
}

#[tokio::test]
async fn dropped_request_times_out_at_the_victim() {
    // E2E's sequence rule (spec §14.4 DECISION: seq restarts at 0 for each new time value)
    // cannot see a drop followed by a PDU with a later time; what notices it is the MMS client,
    // whose request is never answered.
    // When the next PDU carries the same time value as the dropped one, the sequence rule does
    // see the gap (its seq is not 0): either outcome is a detection.
    let (err, server, _) = attack(Attack::Drop, Encrypt::Gcm).await;
    let timed_out =
        err.contains("no response within") && !server.iter().any(|m| m.ends_with("_TRF"));
    let seq_gap = server.contains(&"ENCR_INV_SEQ_TRF");
    assert!(timed_out || seq_gap, "{err} / {server:?}");
}

#[tokio::test]
async fn pdu_of_another_association_is_refused() {
    // Its assoID is not this association's (§14.4 step 1): protocol error, and the server's
    // DtSecAbort tells the victim so.
    let (_, server, client) = attack(Attack::Swap, Encrypt::Gcm).await;
    assert!(server.contains(&"ENCR_DATA_PROT_ERROR_TRF"), "{server:?}");
    assert!(client.contains(&"DT_SEC_ABORT_PROT_ERR_RCVD"), "{client:?}");
}

#[tokio::test]
async fn forged_abort_is_not_taken_for_the_peer() {
    let (err, server, _) = attack(Attack::ForgedAbort, Encrypt::Gcm).await;
    assert!(!err.is_empty());
    // The server saw an abort whose signature does not verify: an alarm, not a clean abort by
    // the client.
    assert!(
        server
            .iter()
            .any(|m| m.contains("SIGNATURE") || m.contains("ALARM")),
        "{server:?}"
    );
}
