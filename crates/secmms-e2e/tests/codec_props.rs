//! Property tests: every SecPDU kind survives encode → decode unchanged, and the decoder never
//! panics on arbitrary or mutated input.

use proptest::prelude::*;
use secmms_ber::{Oid, Tag, Writer};
use secmms_e2e::diag::{DtDiagnostic, HandshakeDiagnostic};
use secmms_e2e::pdu::*;
use secmms_e2e::TimeStamp;

fn oid() -> impl Strategy<Value = Oid> {
    (
        0u64..3,
        0u64..40,
        proptest::collection::vec(0u64..100_000, 0..6),
    )
        .prop_map(|(a, b, rest)| {
            let mut v = vec![a, b];
            v.extend(rest);
            Oid::new(&v).unwrap()
        })
}

fn alg() -> impl Strategy<Value = AlgorithmIdentifier> {
    (
        oid(),
        prop_oneof![
            Just(None),
            Just(Some(vec![0x05, 0x00])),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|c| {
                let mut w = Writer::new();
                w.octets(Tag::OCTET_STRING, &c);
                Some(w.finish())
            })
        ],
    )
        .prop_map(|(algorithm, parameters)| AlgorithmIdentifier {
            algorithm,
            parameters,
        })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn tlv() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(0xa0u8), Just(0xa8), Just(0x8b), Just(0x04), Just(0x30)],
        bytes(40),
    )
        .prop_map(|(t, c)| {
            let mut w = Writer::new();
            let tag = match t {
                0xa0 => Tag::context(0, true),
                0xa8 => Tag::context(8, true),
                0x8b => Tag::context(11, false),
                0x04 => Tag::OCTET_STRING,
                _ => Tag::SEQUENCE,
            };
            if tag.constructed {
                // Constructed content must itself be TLVs.
                w.constructed(tag, |w| w.octets(Tag::OCTET_STRING, &c));
            } else {
                w.tlv(tag, &c);
            }
            w.finish()
        })
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        Just(Version::v1()),
        Just(Version {
            unused: 0,
            bits: vec![]
        }),
        Just(Version {
            unused: 6,
            bits: vec![0x40]
        }),
    ]
}

fn asso() -> impl Strategy<Value = AssoId> {
    (0u16..1000, proptest::option::of(0u16..1000)).prop_map(|(c, s)| match s {
        Some(s) => AssoId::pair(&c.to_string(), s),
        None => AssoId::client(c),
    })
}

fn time() -> impl Strategy<Value = TimeStamp> {
    (0i64..253_402_300_799_999).prop_map(TimeStamp)
}

fn encr_mode() -> impl Strategy<Value = EncrMode> {
    prop_oneof![
        proptest::collection::vec(alg(), 1..4).prop_map(EncrMode::Aea),
        (
            proptest::option::of(proptest::collection::vec(alg(), 1..3)),
            proptest::collection::vec(alg(), 1..3)
        )
            .prop_map(|(encr, icv)| EncrMode::NonAea { encr, icv }),
    ]
}

prop_compose! {
    fn token1()(sig_alg in alg(), pk_cert in bytes(300), cert_path in proptest::option::of(bytes(50)),
                version in version(), asso_id in asso(),
                dh in proptest::collection::vec((any::<i8>(), bytes(70)), 1..4),
                hmac in alg(), time in time(), encr_mode in encr_mode(),
                cp in (any::<bool>(), any::<bool>(), any::<bool>()),
                att_cert in proptest::option::of(bytes(40))) -> ClearToken1 {
        ClearToken1 {
            sig_alg, pk_cert, cert_path, version, asso_id,
            dh_key: dh.into_iter().map(|(g, k)| DiffieHellman { group: g as i64, public_key: k }).collect(),
            hmac, time, encr_mode,
            conf_params: ConfidentialityParms { tls_protected: cp.0, appl_protected: cp.1, vpn: cp.2 },
            att_cert,
        }
    }
}

prop_compose! {
    fn token2()(asso_id in asso(), time in time(), seq in 0u32..=i32::MAX as u32,
                iv in proptest::option::of(bytes(17)), rekey in proptest::option::of(bytes(70)),
                req_rekey in any::<bool>(), changed_key in any::<bool>()) -> ClearToken2 {
        ClearToken2 { asso_id, time, seq, iv, rekey, req_rekey, changed_key }
    }
}

prop_compose! {
    fn token3()(sig_alg in alg(), version in version(), asso_id in proptest::option::of(asso()),
                time in time(), pk_cert in bytes(300), cert_path in proptest::option::of(bytes(50))) -> ClearToken3 {
        ClearToken3 { sig_alg, version, asso_id, time, pk_cert, cert_path }
    }
}

fn signature() -> impl Strategy<Value = Signature> {
    (alg(), bytes(100)).prop_map(|(algo, sign)| Signature { algo, sign })
}

fn auth() -> impl Strategy<Value = Authenticator> {
    (proptest::option::of(bytes(16)), alg(), bytes(33)).prop_map(|(nonce, algorithm, icv)| {
        Authenticator {
            nonce,
            algorithm,
            icv,
        }
    })
}

fn handshake() -> impl Strategy<Value = Handshake> {
    (
        "[A-Za-z0-9.:_-]{1,20}",
        token1(),
        proptest::option::of(tlv()),
        signature(),
    )
        .prop_map(|(pp, token1, appl_data, sign)| {
            let tbs = Handshake::tbs_content(&token1, appl_data.as_deref());
            Handshake {
                pp,
                token1,
                appl_data,
                sign,
                tbs,
            }
        })
}

fn token3_pdu(kind: SecPduKind) -> impl Strategy<Value = Token3Pdu> {
    let body: BoxedStrategy<Token3Body> = match kind {
        SecPduKind::HandshakeSecReject | SecPduKind::HandshakeSecAbort => {
            proptest::option::of(proptest::sample::select(HandshakeDiagnostic::ALL.to_vec()))
                .prop_map(Token3Body::HandshakeDiag)
                .boxed()
        }
        SecPduKind::DtSecAbort => {
            proptest::option::of(proptest::sample::select(DtDiagnostic::ALL.to_vec()))
                .prop_map(Token3Body::DtDiag)
                .boxed()
        }
        SecPduKind::ApplicationReject => tlv().prop_map(|t| Token3Body::ApplData(Some(t))).boxed(),
        _ => proptest::option::of(tlv())
            .prop_map(Token3Body::ApplData)
            .boxed(),
    };
    (token3(), body, signature()).prop_map(|(token3, body, sign)| {
        let tbs = Token3Pdu::tbs_content(&token3, &body);
        Token3Pdu {
            token3,
            body,
            sign,
            tbs,
            unknown_diag: None,
        }
    })
}

fn transfer(encrypted: bool) -> impl Strategy<Value = Transfer> {
    let appl = if encrypted {
        bytes(100).boxed()
    } else {
        tlv().boxed()
    };
    let a = if encrypted {
        proptest::option::of(auth()).boxed()
    } else {
        auth().prop_map(Some).boxed()
    };
    (token2(), appl, a).prop_map(move |(t2, appl, auth)| {
        let c = t2.encode_content();
        let mut t = Transfer::assemble(t2, c, appl, encrypted);
        t.auth = auth;
        t
    })
}

fn any_pdu() -> impl Strategy<Value = SecPdu> {
    prop_oneof![
        handshake().prop_map(SecPdu::HandshakeReq),
        handshake().prop_map(SecPdu::HandshakeAcc),
        token3_pdu(SecPduKind::ApplicationReject).prop_map(SecPdu::ApplicationReject),
        token3_pdu(SecPduKind::HandshakeSecReject).prop_map(SecPdu::HandshakeSecReject),
        token3_pdu(SecPduKind::HandshakeSecAbort).prop_map(SecPdu::HandshakeSecAbort),
        token3_pdu(SecPduKind::DtSecAbort).prop_map(SecPdu::DtSecAbort),
        token3_pdu(SecPduKind::ApplAbort).prop_map(SecPdu::ApplAbort),
        token3_pdu(SecPduKind::ReleaseReq).prop_map(SecPdu::ReleaseReq),
        token3_pdu(SecPduKind::ReleaseRsp).prop_map(SecPdu::ReleaseRsp),
        transfer(false).prop_map(SecPdu::ClearTransfer),
        transfer(true).prop_map(SecPdu::EncrTransfer),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_secpdu_round_trips(pdu in any_pdu()) {
        let bytes = pdu.encode();
        let back = SecPdu::decode(pdu.kind(), &bytes, Default::default()).unwrap();
        prop_assert_eq!(&back, &pdu);
        prop_assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn decoder_never_panics(kind in 0usize..11, data in bytes(600)) {
        let _ = SecPdu::decode(SecPduKind::ALL[kind], &data, Default::default());
    }

    #[test]
    fn mutated_pdus_never_panic(pdu in any_pdu(), pos in any::<usize>(), val in any::<u8>()) {
        let mut b = pdu.encode();
        let i = pos % b.len();
        b[i] = val;
        for k in SecPduKind::ALL {
            let _ = SecPdu::decode(k, &b, Default::default());
        }
    }
}

#[test]
fn golden_clear_token2_encoding() {
    // DER of ClearToken2 per the §13.5 DECISION tags.
    let t = ClearToken2 {
        asso_id: AssoId::new("1:7").unwrap(),
        time: TimeStamp::parse_generalized(b"20250615120000.5Z").unwrap(),
        seq: 2,
        iv: Some(vec![0xaa; 2]),
        rekey: None,
        req_rekey: true,
        changed_key: false,
    };
    let expect = hex::decode(concat!(
        "0c03313a37",
        "18113230323530363135313230303030",
        "2e355a",
        "020102",
        "8002aaaa",
        "8201ff"
    ))
    .unwrap();
    assert_eq!(t.encode_content(), expect);
}

#[test]
fn golden_version_and_conf_params() {
    let t = ClearToken3 {
        sig_alg: secmms_e2e::alg::sig_alg_id(secmms_pki::SignatureAlgorithm::EcdsaSha256),
        version: Version::v1(),
        asso_id: None,
        time: TimeStamp(0),
        pk_cert: vec![],
        cert_path: None,
    };
    let mut w = Writer::new();
    t.encode(&mut w);
    let b = w.finish();
    // sigAlg ecdsa-with-SHA256 without parameters, then version {v1} = 03 02 07 80.
    assert_eq!(
        hex::encode(&b),
        "3023300a06082a8648ce3d04030203020780180f31393730303130313030303030305a0400"
    );
}
