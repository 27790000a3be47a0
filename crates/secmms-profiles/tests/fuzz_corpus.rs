//! Replays the `aprofile` and `native_env` fuzz corpora (`fuzz/corpus/aprofile/`,
//! `fuzz/corpus/native_env/`) through their fuzz entry points, so CI runs every stored input.
//! `write_seeds` and `write_native_env_seeds` (ignored) regenerate the seed inputs.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::*;
use secmms_ber::Limits;
use secmms_e2e::alg::{AeAlg, IcvAlg};
use secmms_e2e::{E2eConfig, ModeOffer, SecPduKind, TimeStamp};
use secmms_osi::acse::{Apdu, External};
use secmms_osi::security::Role;
use secmms_osi::{Association, OsiConfig, OsiEvent};
use secmms_profiles::aprofile::build_value;
use secmms_profiles::fuzzing::{aprofile_value, native_env};
use secmms_profiles::native::wire::{self, EnvApdu, EnvValue, OsiDiagnostic};
use secmms_profiles::native::{NativeConfig, NativeShared, NativeState};

fn corpus_dir() -> PathBuf {
    corpus("aprofile")
}

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn replay_aprofile_corpus() {
    let dir = corpus_dir();
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_file() {
                aprofile_value(&std::fs::read(&p).unwrap());
                n += 1;
            }
        }
    }
    assert!(n > 0, "no corpus files in {}", dir.display());
}

#[test]
#[ignore = "writes seed files into fuzz/corpus/aprofile"]
fn write_seeds() {
    let ca = Ca::new("Root");
    let creds = ca.valid(client_identity(), 1);
    let v = build_value(&creds, T0).unwrap();
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("seed-value"), v.encode()).unwrap();
    std::fs::write(dir.join("seed-time"), b"20250615150640.").unwrap();
    // A complete AARQ and AARE from an authenticated association.
    let client = Side::new(
        creds,
        validator(&ca),
        secmms_profiles::PeerTable::require_a_profile(),
    );
    let server = Side::new(
        ca.valid(server_identity(), 2),
        validator(&ca),
        secmms_profiles::PeerTable::require_a_profile(),
    );
    let o = run(
        client_osi(&client, false),
        Box::new(client_hook(&client, secmms_profiles::PeerPolicy::any("s"))),
        server_osi(&server),
        Box::new(server.responder(Default::default())),
    );
    let (
        secmms_osi::OsiEvent::AssociateIndication { aarq, .. },
        secmms_osi::OsiEvent::AssociateConfirm { aare, .. },
    ) = (&o.server[0], &o.client[0])
    else {
        panic!()
    };
    let lim = secmms_ber::Limits::default();
    assert!(matches!(Apdu::decode(&aarq.raw, lim), Ok(Apdu::Aarq(_))));
    std::fs::write(dir.join("seed-aarq"), &aarq.raw).unwrap();
    std::fs::write(dir.join("seed-aare"), &aare.raw).unwrap();
}

// ------------------------------------------------------------------ native_env

/// The APDU selected by the first octet of a `native_env` input (the order of
/// `secmms_profiles::fuzzing::native_env`).
const ENV_APDUS: [EnvApdu; 5] = [
    EnvApdu::Aarq,
    EnvApdu::Aare,
    EnvApdu::Abrt,
    EnvApdu::Rlrq,
    EnvApdu::Rlre,
];

fn env_selector(apdu: EnvApdu) -> u8 {
    ENV_APDUS.iter().position(|a| *a == apdu).unwrap() as u8
}

/// What a seed file holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seed {
    /// A SecPDU in the user-information of the APDU the first octet selects.
    Env(SecPduKind),
    /// `AssoAbort.osiDiag` with this number.
    OsiDiag(i64),
    /// A P-DATA value (the first octet selects no APDU that matters).
    Transfer(SecPduKind),
}

/// The seeds `write_native_env_seeds` generates: real values from in-memory native associations.
const NATIVE_SEEDS: [(&str, Seed); 9] = [
    (
        "seed-aarq-handshakereq",
        Seed::Env(SecPduKind::HandshakeReq),
    ),
    (
        "seed-aare-handshakeacc",
        Seed::Env(SecPduKind::HandshakeAcc),
    ),
    (
        "seed-aare-handshakesecreject",
        Seed::Env(SecPduKind::HandshakeSecReject),
    ),
    ("seed-abrt-applabort", Seed::Env(SecPduKind::ApplAbort)),
    ("seed-abrt-osidiag", Seed::OsiDiag(2)),
    ("seed-rlrq-releasereq", Seed::Env(SecPduKind::ReleaseReq)),
    ("seed-rlre-releasersp", Seed::Env(SecPduKind::ReleaseRsp)),
    ("seed-pdata-encr", Seed::Transfer(SecPduKind::EncrTransfer)),
    (
        "seed-pdata-clear",
        Seed::Transfer(SecPduKind::ClearTransfer),
    ),
];

/// What the environment codec makes of a `native_env` input.
fn seed_of(data: &[u8], transfer: bool) -> Result<Seed, String> {
    let limits = Limits::default();
    let (&k, value) = data.split_first().ok_or("empty")?;
    if transfer {
        return wire::transfer_kind(value, limits)
            .map(Seed::Transfer)
            .ok_or_else(|| "not a transfer".to_string());
    }
    let apdu = ENV_APDUS[usize::from(k) % ENV_APDUS.len()];
    match wire::decode(apdu, value, limits) {
        Ok(EnvValue::SecPdu { kind, .. }) => Ok(Seed::Env(kind)),
        Ok(EnvValue::OsiDiag(n)) => Ok(Seed::OsiDiag(n)),
        Err(e) => Err(format!("{apdu:?}: {e}")),
    }
}

#[test]
fn replay_native_env_corpus() {
    let dir = corpus("native_env");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            native_env(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    assert!(
        n >= NATIVE_SEEDS.len(),
        "only {n} files in {}",
        dir.display()
    );
    // The seeds are real values and decode as what they are named after.
    for (name, expected) in NATIVE_SEEDS {
        let data = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = seed_of(&data, matches!(expected, Seed::Transfer(_)));
        assert_eq!(got, Ok(expected), "{name}");
    }
}

/// One side of a native-mode association in memory (clock fixed at `T0`).
fn native_side(ca: &Ca, creds: secmms_profiles::Credentials, offer: ModeOffer) -> NativeShared {
    let ctx = secmms_e2e::Context {
        config: Arc::new(E2eConfig {
            offer,
            ..E2eConfig::default()
        }),
        credentials: Arc::new(secmms_e2e::Credentials {
            key: creds.key,
            cert_der: creds.certificate,
            cert_path: None,
            att_cert: None,
        }),
        validator: Arc::new(validator(ca)),
        replay: Arc::new(Mutex::new(secmms_e2e::replay::ReplayCache::new())),
    };
    NativeShared::new(
        ctx,
        NativeConfig::default(),
        secmms_profiles::PeerTable::require_end_to_end(),
        Arc::new(secmms_pki::event::MemorySink::new()),
    )
}

/// Client and server associations with the native hooks, and their data channels.
struct NativePair {
    c: Association<NativeState>,
    s: Association<NativeState>,
}

impl NativePair {
    /// Protects and queues one MMS PDU from the client.
    fn client_sends(&mut self, pdu: &[u8]) {
        let (pcid, bytes) = self.c.security_mut().protect(pdu).unwrap();
        self.c.send_data_on(pcid, &bytes).unwrap();
    }

    fn new(client: &NativeShared, server: &NativeShared) -> NativePair {
        let mut cosi = OsiConfig::default();
        client.prepare_osi_config(&mut cosi, Role::Initiator);
        let mut sosi = OsiConfig::server_default();
        server.prepare_osi_config(&mut sosi, Role::Responder);
        let policy = secmms_profiles::PeerTable::require_end_to_end()
            .default
            .unwrap();
        let id = secmms_profiles::aprofile::identity_of(
            cosi.remote_ap_title.as_ref(),
            cosi.remote_ae_qualifier,
        );
        let mut chook = client.initiator_state(Default::default(), policy, id);
        let mut shook = server.responder_state(Default::default());
        // A fixed time for the whole exchange.
        chook.set_now(TimeStamp(T0 * 1000));
        shook.set_now(TimeStamp(T0 * 1000));
        NativePair {
            c: Association::with_hook(Role::Initiator, cosi, chook),
            s: Association::with_hook(Role::Responder, sosi, shook),
        }
    }

    /// Moves every queued TPKT both ways until neither side has anything to send.
    fn pump(&mut self) {
        let mut log = Vec::new();
        loop {
            let before = log.len();
            pump(&mut self.c, &mut self.s, &mut log, true);
            pump(&mut self.s, &mut self.c, &mut log, false);
            if log.len() == before {
                break;
            }
        }
    }

    /// CR/CC/AARQ; returns the events of both sides once the server answered (accepting when it
    /// was asked to decide).
    fn associate(&mut self) -> (Vec<OsiEvent>, Vec<OsiEvent>) {
        self.c.connect(hex::decode(INIT_REQ).unwrap()).unwrap();
        self.pump();
        let sev = events(&mut self.s);
        if matches!(sev.as_slice(), [OsiEvent::AssociateIndication { .. }]) {
            self.s.accept(hex::decode(INIT_RSP).unwrap()).unwrap();
            self.pump();
        }
        (sev, events(&mut self.c))
    }
}

/// The `single-ASN1-type` value of the one EXTERNAL of an APDU's user-information (pcid 5 is
/// e2eSecurityAS in the default presentation contexts).
fn env_value(ui: &[External]) -> Vec<u8> {
    wire::user_information_value(ui, Some(5)).unwrap().to_vec()
}

#[test]
#[ignore = "writes seed files into fuzz/corpus/native_env"]
fn write_native_env_seeds() {
    let ca = Ca::new("Root");
    let client = native_side(
        &ca,
        ca.valid(client_identity(), 1),
        ModeOffer::Ae(vec![AeAlg::Aes128Gcm]),
    );
    let server = native_side(
        &ca,
        ca.valid(server_identity(), 2),
        ModeOffer::Ae(vec![AeAlg::Aes128Gcm]),
    );
    let mut seeds: Vec<(&str, EnvApdu, Vec<u8>)> = Vec::new();

    // AES-GCM: handshake, one EncrTransfer, release.
    let mut p = NativePair::new(&client, &server);
    let (sev, cev) = p.associate();
    let [OsiEvent::AssociateIndication { aarq, .. }] = sev.as_slice() else {
        panic!("{sev:?}")
    };
    let [OsiEvent::AssociateConfirm { aare, .. }] = cev.as_slice() else {
        panic!("{cev:?}")
    };
    seeds.push((
        "aarq-handshakereq",
        EnvApdu::Aarq,
        env_value(&aarq.user_information),
    ));
    seeds.push((
        "aare-handshakeacc",
        EnvApdu::Aare,
        env_value(&aare.user_information),
    ));
    p.client_sends(&[0xA0, 0x03, 0x02, 0x01, 0x01]);
    p.pump();
    let sev = events(&mut p.s);
    let [OsiEvent::Data { context_id, pdu }] = sev.as_slice() else {
        panic!("{sev:?}")
    };
    assert!(p
        .s
        .security_mut()
        .unprotect(*context_id, pdu)
        .unwrap()
        .is_some());
    seeds.push(("pdata-encr", EnvApdu::Aarq, pdu.clone()));
    p.c.release(Some(vec![0x8B, 0x00])).unwrap();
    p.pump();
    let sev = events(&mut p.s);
    let [OsiEvent::ReleaseIndication { rlrq, .. }] = sev.as_slice() else {
        panic!("{sev:?}")
    };
    seeds.push((
        "rlrq-releasereq",
        EnvApdu::Rlrq,
        env_value(&rlrq.user_information),
    ));
    p.s.release_response(Some(vec![0x8C, 0x00])).unwrap();
    p.pump();
    let cev = events(&mut p.c);
    let Some(OsiEvent::ReleaseConfirm { rlre, .. }) = cev.first() else {
        panic!("{cev:?}")
    };
    seeds.push((
        "rlre-releasersp",
        EnvApdu::Rlre,
        env_value(&rlre.user_information),
    ));

    // HMAC only: one ClearTransfer, then the client aborts (ApplAbort).
    let hmac = ModeOffer::NonAe {
        encr: vec![],
        icv: vec![IcvAlg::HmacSha256],
    };
    let client = native_side(&ca, ca.valid(client_identity(), 3), hmac);
    let mut p = NativePair::new(&client, &server);
    let (_, cev) = p.associate();
    assert!(matches!(
        cev.as_slice(),
        [OsiEvent::AssociateConfirm { .. }]
    ));
    p.client_sends(&[0xA0, 0x03, 0x02, 0x01, 0x02]);
    p.pump();
    let sev = events(&mut p.s);
    let [OsiEvent::Data { pdu, .. }] = sev.as_slice() else {
        panic!("{sev:?}")
    };
    seeds.push(("pdata-clear", EnvApdu::Aarq, pdu.clone()));
    p.c.abort().unwrap();
    p.pump();
    let sev = events(&mut p.s);
    let Some(OsiEvent::AbortIndication(info)) = sev.first() else {
        panic!("{sev:?}")
    };
    seeds.push((
        "abrt-applabort",
        EnvApdu::Abrt,
        env_value(&info.abrt.as_ref().unwrap().user_information),
    ));
    seeds.push((
        "abrt-osidiag",
        EnvApdu::Abrt,
        wire::encode_osi_diag(OsiDiagnostic::InvalidPci),
    ));

    // A client certificate from another CA: AARE carrying HandshakeSecReject.
    let other = Ca::new("Other");
    let stranger = native_side(
        &ca,
        other.valid(client_identity(), 4),
        ModeOffer::Ae(vec![AeAlg::Aes128Gcm]),
    );
    let mut p = NativePair::new(&stranger, &server);
    let (_, cev) = p.associate();
    let Some(OsiEvent::AssociateRejected {
        aare: Some(aare), ..
    }) = cev.first()
    else {
        panic!("{cev:?}")
    };
    seeds.push((
        "aare-handshakesecreject",
        EnvApdu::Aare,
        env_value(&aare.user_information),
    ));

    let dir = corpus("native_env");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(seeds.len(), NATIVE_SEEDS.len());
    for (name, apdu, value) in seeds {
        let name = format!("seed-{name}");
        let mut data = vec![env_selector(apdu)];
        data.extend(value);
        let expected = NATIVE_SEEDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("{name} is not in NATIVE_SEEDS"));
        assert_eq!(
            seed_of(&data, matches!(expected, Seed::Transfer(_))),
            Ok(expected),
            "{name}"
        );
        eprintln!("{name}: {} octets, {expected:?}", data.len());
        native_env(&data);
        std::fs::write(dir.join(name), data).unwrap();
    }
}

/// The clause 16 environment checks over every XML SecPDU of the e2e_xml corpus (wrapped or
/// not) under each stanza kind, and over the native_env corpus as raw octets.
#[test]
fn replay_xmpp_env_over_the_xml_and_native_corpora() {
    let mut n = 0;
    for name in ["xmpp_env", "e2e_xml", "native_env"] {
        for e in std::fs::read_dir(corpus(name)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let data = std::fs::read(&p).unwrap();
                for sel in 0u8..5 {
                    let mut v = vec![sel];
                    v.extend_from_slice(&data);
                    secmms_profiles::fuzzing::xmpp_env(&v);
                }
                n += 1;
            }
        }
    }
    assert!(n > 40, "{n}");
}
