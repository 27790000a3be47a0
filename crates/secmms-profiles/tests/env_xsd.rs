//! The ENV_4 wrapper of §16.3 against its schema, `xsd/ENV_4.xsd` (which imports the SecPDU
//! schema of `secmms-e2e`): every SecPDU of an XML-mode exchange, wrapped with `env_wrap`, is
//! validated by the real `xmllint --schema`, and a wrapper holding two SecPDUs must fail. The
//! wrapper also gives back the exact characters of every one of them, and never panics on
//! noise.
//!
//! xmllint comes from the Debian package libxml2-utils. Without it the schema test prints
//! SKIPPED, except when `CI=true`, where it fails.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use secmms_e2e::{xml, E2eClient, E2eConfig, E2eServer, SecPduKind, TimeStamp, WireEncoding};
use secmms_profiles::xmpp::{env_unwrap, env_wrap, XmlLimits};

/// A client and a server engine in XML mode.
fn xml_pair(asso: u16) -> (E2eClient, E2eServer) {
    let (mut cctx, mut sctx) = secmms_e2e::doc_support::demo_contexts();
    for ctx in [&mut cctx, &mut sctx] {
        ctx.config = Arc::new(E2eConfig {
            encoding: WireEncoding::Xml,
            ..(*ctx.config).clone()
        });
    }
    let c = E2eClient::new(cctx, Box::new(secmms_pki::crypto::OsRandom), asso);
    let s = E2eServer::new(sctx, Box::new(secmms_pki::crypto::OsRandom), 7);
    (c, s)
}

/// Every SecPDU of XML-mode exchanges: handshake, data both ways, release, an abort.
fn exchange() -> Vec<(SecPduKind, String)> {
    let now = TimeStamp::from_unix_secs(1_750_000_000);
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    let mut out = Vec::new();
    let (mut c, mut s) = xml_pair(1);
    let req = c.handshake_req(Some(&[0xa8, 0x00]), now).unwrap();
    s.receive(SecPduKind::HandshakeReq, &req, now).unwrap();
    out.push((SecPduKind::HandshakeReq, text(&req)));
    let acc = s.accept(Some(&[0xa9, 0x00]), now).unwrap();
    c.receive(SecPduKind::HandshakeAcc, &acc, now).unwrap();
    out.push((SecPduKind::HandshakeAcc, text(&acc)));
    let (k, b) = c.protect(&[0xa0, 0x03, 0x02, 0x01, 0x01], now).unwrap();
    s.receive(k, &b, now).unwrap();
    out.push((k, text(&b)));
    let (k, b) = s.protect(&[0xa1, 0x03, 0x02, 0x01, 0x01], now).unwrap();
    c.receive(k, &b, now).unwrap();
    out.push((k, text(&b)));
    let r = c.release_req(Some(&[0x8b, 0x00]), now).unwrap();
    s.receive(SecPduKind::ReleaseReq, &r, now).unwrap();
    out.push((SecPduKind::ReleaseReq, text(&r)));
    let r = s.release_rsp(None, now).unwrap();
    out.push((SecPduKind::ReleaseRsp, text(&r)));
    let (mut c, mut s) = xml_pair(2);
    let req = c.handshake_req(None, now).unwrap();
    s.receive(SecPduKind::HandshakeReq, &req, now).unwrap();
    let acc = s.accept(None, now).unwrap();
    c.receive(SecPduKind::HandshakeAcc, &acc, now).unwrap();
    let a = c.appl_abort(None, now).unwrap();
    out.push((SecPduKind::ApplAbort, text(&a)));
    out
}

#[test]
fn every_wrapped_secpdu_comes_back_unchanged() {
    let lim = XmlLimits::default();
    for (kind, secpdu) in exchange() {
        let env = env_wrap(&secpdu);
        assert_eq!(env_unwrap(&env, &lim), Ok((kind, secpdu.as_str())));
        assert_eq!(xml::decode(&secpdu, &lim).unwrap().kind(), kind);
    }
}

/// Validates the documents against ENV_4.xsd in one xmllint run (`secmms_testkit`).
fn invalid(docs: &[(String, String)], dir: &Path) -> (Vec<String>, String) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("xsd/ENV_4.xsd");
    secmms_testkit::xmllint_invalid(&schema, docs, dir)
}

#[test]
fn wrapped_secpdus_validate_against_env_4() {
    if !secmms_testkit::xmllint_ready() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("secmms-env-xsd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pdus = exchange();
    let docs: Vec<(String, String)> = pdus
        .iter()
        .enumerate()
        .map(|(i, (k, s))| (format!("{i:02}-{}", xml::element_name(*k)), env_wrap(s)))
        .collect();
    let (bad, report) = invalid(&docs, &dir);
    assert!(
        bad.is_empty(),
        "invalid against ENV_4.xsd: {bad:?}\n{report}"
    );
    let one = &pdus[0].1;
    let (bad, _) = invalid(&[("two".into(), env_wrap(&format!("{one}{one}")))], &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(bad.len(), 1, "a wrapper with two SecPDUs passed validation");
}

proptest! {
    #[test]
    fn the_wrapper_never_panics_on_noise(data in "(<[a-zA-Z:0-9]{0,8}( xmlns(:[a-z]{1,3})?=\"[^\"]{0,40}\")?/?>|</[a-zA-Z:0-9]{0,8}>|[ -~]{0,10}|&[a-z#0-9]{0,5};){0,40}") {
        let _ = env_unwrap(&data, &XmlLimits::default());
        let _ = env_unwrap(&env_wrap(&data), &XmlLimits::default());
    }
}
