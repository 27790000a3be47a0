//! Shared fixtures of the integration tests: a throw-away PKI, deterministic randomness, and
//! helpers that forge (re-sign) PDUs to provoke client-side checks.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};

use secmms_e2e::config::{Context, Credentials, E2eConfig};
use secmms_e2e::doc_support::{DemoPki, KeyType, CLIENT_AP, SERVER_AP};
use secmms_e2e::pdu::{ClearToken1, Handshake, SecPdu, SecPduKind, Token3Body, Token3Pdu};
use secmms_e2e::replay::ReplayCache;
use secmms_e2e::{E2eClient, E2eError, E2eServer, Output, Rejection, TimeStamp};
use secmms_pki::crypto::{CryptoError, RandomSource};

/// A fixed "now" inside the demo certificates' validity.
pub const NOW: TimeStamp = TimeStamp(1_750_000_000_000);

/// Deterministic random source: SHA-256(seed ‖ counter) blocks.
pub struct TestRng {
    seed: u64,
    ctr: u64,
    buf: Vec<u8>,
}

impl TestRng {
    pub fn new(seed: u64) -> TestRng {
        TestRng {
            seed,
            ctr: 0,
            buf: Vec::new(),
        }
    }
    pub fn boxed(seed: u64) -> Box<dyn RandomSource> {
        Box::new(TestRng::new(seed))
    }
}

impl RandomSource for TestRng {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), CryptoError> {
        for b in out.iter_mut() {
            if self.buf.is_empty() {
                let mut m = self.seed.to_be_bytes().to_vec();
                m.extend_from_slice(&self.ctr.to_be_bytes());
                self.ctr += 1;
                self.buf = secmms_pki::crypto::sha256(&m).to_vec();
                self.buf.reverse();
            }
            *b = self.buf.pop().unwrap_or(0);
        }
        Ok(())
    }
}

pub struct Fixture {
    pub pki: DemoPki,
    pub client: [Credentials; 3],
    pub server: [Credentials; 3],
}

fn idx(kt: KeyType) -> usize {
    match kt {
        KeyType::P256 => 0,
        KeyType::Rsa2048 => 1,
        KeyType::Brainpool => 2,
    }
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let pki = DemoPki::new();
        let mk = |ap: &[u64], base: u8| {
            [
                pki.credentials(KeyType::P256, ap, base),
                pki.credentials(KeyType::Rsa2048, ap, base + 1),
                pki.credentials(KeyType::Brainpool, ap, base + 2),
            ]
        };
        let client = mk(CLIENT_AP, 10);
        let server = mk(SERVER_AP, 20);
        Fixture {
            pki,
            client,
            server,
        }
    })
}

pub fn client_creds(kt: KeyType) -> Credentials {
    fixture().client[idx(kt)].clone()
}
pub fn server_creds(kt: KeyType) -> Credentials {
    fixture().server[idx(kt)].clone()
}

pub fn ctx(cfg: E2eConfig, creds: Credentials) -> Context {
    Context {
        config: Arc::new(cfg),
        credentials: Arc::new(creds),
        validator: fixture().pki.validator.clone(),
        replay: Arc::new(Mutex::new(ReplayCache::new())),
    }
}

pub struct Pair {
    pub client: E2eClient,
    pub server: E2eServer,
}

pub fn pair_with(ccfg: E2eConfig, scfg: E2eConfig, ck: KeyType, sk: KeyType, seed: u64) -> Pair {
    Pair {
        client: E2eClient::new(ctx(ccfg, client_creds(ck)), TestRng::boxed(seed), 1),
        server: E2eServer::new(ctx(scfg, server_creds(sk)), TestRng::boxed(seed + 1000), 7),
    }
}

pub fn pair(ccfg: E2eConfig, scfg: E2eConfig) -> Pair {
    pair_with(ccfg, scfg, KeyType::P256, KeyType::P256, 1)
}

pub const INIT_REQ: &[u8] = &[0xa8, 0x03, 0x80, 0x01, 0x01];
pub const INIT_RSP: &[u8] = &[0xa9, 0x03, 0x80, 0x01, 0x01];

/// Runs the handshake to Established.
pub fn establish(p: &mut Pair, now: TimeStamp) {
    let req = p.client.handshake_req(Some(INIT_REQ), now).unwrap();
    let out = p
        .server
        .receive(SecPduKind::HandshakeReq, &req, now)
        .unwrap();
    assert!(matches!(out, Output::HandshakeRequested { .. }), "{out:?}");
    let acc = p.server.accept(Some(INIT_RSP), now).unwrap();
    let out = p
        .client
        .receive(SecPduKind::HandshakeAcc, &acc, now)
        .unwrap();
    assert_eq!(
        out,
        Output::Established {
            appl_data: Some(INIT_RSP.to_vec())
        }
    );
}

/// The rejection of an error, panicking otherwise.
pub fn rejection(r: Result<Output, E2eError>) -> Rejection {
    match r {
        Err(E2eError::Rejected(r)) => *r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Decodes a HandshakeReq/Acc, lets `f` change its token, re-signs with `key`, re-encodes.
pub fn resign_handshake(
    kind: SecPduKind,
    bytes: &[u8],
    key: &secmms_pki::SigningKey,
    f: impl FnOnce(&mut ClearToken1),
) -> Vec<u8> {
    let pdu = SecPdu::decode(kind, bytes, Default::default()).unwrap();
    let mut h: Handshake = match pdu {
        SecPdu::HandshakeReq(h) | SecPdu::HandshakeAcc(h) => h,
        _ => unreachable!(),
    };
    f(&mut h.token1);
    h.tbs = Handshake::tbs_content(&h.token1, h.appl_data.as_deref());
    h.sign.sign = key.sign(&h.tbs).unwrap();
    match kind {
        SecPduKind::HandshakeReq => SecPdu::HandshakeReq(h).encode(),
        _ => SecPdu::HandshakeAcc(h).encode(),
    }
}

/// Decodes a ClearToken3 PDU, lets `f` change it, re-signs, re-encodes.
pub fn resign_token3(
    kind: SecPduKind,
    bytes: &[u8],
    key: &secmms_pki::SigningKey,
    f: impl FnOnce(&mut Token3Pdu),
) -> Vec<u8> {
    let pdu = SecPdu::decode(kind, bytes, Default::default()).unwrap();
    let (mut p, wrap): (Token3Pdu, fn(Token3Pdu) -> SecPdu) = match pdu {
        SecPdu::ReleaseReq(p) => (p, SecPdu::ReleaseReq),
        SecPdu::ReleaseRsp(p) => (p, SecPdu::ReleaseRsp),
        SecPdu::ApplAbort(p) => (p, SecPdu::ApplAbort),
        SecPdu::DtSecAbort(p) => (p, SecPdu::DtSecAbort),
        _ => unreachable!(),
    };
    f(&mut p);
    p.tbs = Token3Pdu::tbs_content(&p.token3, &p.body);
    p.sign.sign = key.sign(&p.tbs).unwrap();
    wrap(p).encode()
}

/// The diagnostic carried by a reply PDU (HandshakeSecReject/Abort or DtSecAbort).
pub fn reply_diag(r: &Rejection) -> Option<secmms_e2e::Diagnostic> {
    let (kind, bytes) = r.reply.as_ref().expect("reply PDU");
    match SecPdu::decode(*kind, bytes, Default::default()).unwrap() {
        SecPdu::HandshakeSecReject(p) | SecPdu::HandshakeSecAbort(p) | SecPdu::DtSecAbort(p) => {
            match p.body {
                Token3Body::HandshakeDiag(d) => d.map(secmms_e2e::Diagnostic::Handshake),
                Token3Body::DtDiag(d) => d.map(secmms_e2e::Diagnostic::Dt),
                _ => None,
            }
        }
        other => panic!("unexpected reply {other:?}"),
    }
}
