//! Proptest strategies for arbitrary SecPDUs (every kind, every optional field), in BER form:
//! the covered octets are computed from the values with the BER functions of `pdu.rs`.
#![allow(dead_code)]

use proptest::prelude::*;
use secmms_ber::{Oid, Tag, Writer};
use secmms_e2e::diag::{DtDiagnostic, HandshakeDiagnostic};
use secmms_e2e::pdu::*;
use secmms_e2e::TimeStamp;

pub fn octets(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

pub fn oid() -> impl Strategy<Value = Oid> {
    (
        0u64..3,
        0u64..40,
        proptest::collection::vec(prop_oneof![0u64..200, any::<u64>()], 0..6),
    )
        .prop_map(|(first, second, tail)| {
            let mut arcs = vec![first, second];
            arcs.extend(tail);
            Oid::new(&arcs).expect("valid arcs")
        })
}

/// One BER element: a primitive or a constructed TLV with a nested OCTET STRING.
pub fn ber_element() -> impl Strategy<Value = Vec<u8>> {
    (0usize..6, octets(60)).prop_map(|(tag, content)| {
        let tag = [
            Tag::context(0, true),
            Tag::context(8, true),
            Tag::context(11, false),
            Tag::OCTET_STRING,
            Tag::SEQUENCE,
            Tag::NULL,
        ][tag];
        let mut w = Writer::new();
        if tag == Tag::NULL {
            w.null(tag);
        } else if tag.constructed {
            w.constructed(tag, |w| w.octets(Tag::OCTET_STRING, &content));
        } else {
            w.tlv(tag, &content);
        }
        w.finish()
    })
}

pub fn alg() -> impl Strategy<Value = AlgorithmIdentifier> {
    (oid(), proptest::option::of(ber_element())).prop_map(|(algorithm, parameters)| {
        AlgorithmIdentifier {
            algorithm,
            parameters,
        }
    })
}

pub fn alg_list(max: usize) -> impl Strategy<Value = Vec<AlgorithmIdentifier>> {
    proptest::collection::vec(alg(), 1..max)
}

/// Versions as the BER decoder produces them (padding bits zero).
pub fn version() -> impl Strategy<Value = Version> {
    proptest::collection::vec(any::<bool>(), 0..20).prop_map(|bits| {
        let mut v = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            if *b {
                v[i / 8] |= 0x80 >> (i % 8);
            }
        }
        Version {
            unused: (v.len() * 8 - bits.len()) as u8,
            bits: v,
        }
    })
}

pub fn asso() -> impl Strategy<Value = AssoId> {
    (0u16..1000, proptest::option::of(0u16..1000)).prop_map(|(c, s)| match s {
        Some(s) => AssoId::pair(&c.to_string(), s),
        None => AssoId::client(c),
    })
}

pub fn time() -> impl Strategy<Value = TimeStamp> {
    (TimeStamp(0).0..=TimeStamp::MAX.0).prop_map(TimeStamp)
}

pub fn encr_mode() -> impl Strategy<Value = EncrMode> {
    prop_oneof![
        alg_list(4).prop_map(EncrMode::Aea),
        (proptest::option::of(alg_list(3)), alg_list(3))
            .prop_map(|(encr, icv)| EncrMode::NonAea { encr, icv }),
    ]
}

prop_compose! {
    pub fn token1()(sig_alg in alg(), pk_cert in octets(200), cert_path in proptest::option::of(octets(60)),
                    version in version(), asso_id in asso(),
                    dh in proptest::collection::vec((any::<i64>(), octets(70)), 1..4),
                    hmac in alg(), time in time(), encr_mode in encr_mode(),
                    cp in any::<(bool, bool, bool)>(),
                    att_cert in proptest::option::of(octets(40))) -> ClearToken1 {
        ClearToken1 {
            sig_alg, pk_cert, cert_path, version, asso_id,
            dh_key: dh.into_iter().map(|(group, public_key)| DiffieHellman { group, public_key }).collect(),
            hmac, time, encr_mode,
            conf_params: ConfidentialityParms { tls_protected: cp.0, appl_protected: cp.1, vpn: cp.2 },
            att_cert,
        }
    }
}

prop_compose! {
    pub fn token2()(asso_id in asso(), time in time(), seq in 0u32..=i32::MAX as u32,
                    iv in proptest::option::of(octets(17)), rekey in proptest::option::of(octets(70)),
                    req_rekey in any::<bool>(), changed_key in any::<bool>()) -> ClearToken2 {
        ClearToken2 { asso_id, time, seq, iv, rekey, req_rekey, changed_key }
    }
}

prop_compose! {
    pub fn token3()(sig_alg in alg(), version in version(), asso_id in proptest::option::of(asso()),
                    time in time(), pk_cert in octets(200), cert_path in proptest::option::of(octets(60))) -> ClearToken3 {
        ClearToken3 { sig_alg, version, asso_id, time, pk_cert, cert_path }
    }
}

pub fn signature() -> impl Strategy<Value = Signature> {
    (alg(), octets(100)).prop_map(|(algo, sign)| Signature { algo, sign })
}

pub fn authenticator() -> impl Strategy<Value = Authenticator> {
    (proptest::option::of(octets(16)), alg(), octets(33)).prop_map(|(nonce, algorithm, icv)| {
        Authenticator {
            nonce,
            algorithm,
            icv,
        }
    })
}

pub fn handshake() -> impl Strategy<Value = Handshake> {
    (
        "[A-Za-z0-9._:-]{1,24}",
        token1(),
        proptest::option::of(ber_element()),
        signature(),
    )
        .prop_map(|(pp, token1, appl_data, sign)| Handshake {
            tbs: Handshake::tbs_content(&token1, appl_data.as_deref()),
            pp,
            token1,
            appl_data,
            sign,
        })
}

pub fn token3_pdu(kind: SecPduKind) -> impl Strategy<Value = Token3Pdu> {
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
        SecPduKind::ApplicationReject => ber_element()
            .prop_map(|a| Token3Body::ApplData(Some(a)))
            .boxed(),
        _ => proptest::option::of(ber_element())
            .prop_map(Token3Body::ApplData)
            .boxed(),
    };
    (token3(), body, signature()).prop_map(|(token3, body, sign)| Token3Pdu {
        tbs: Token3Pdu::tbs_content(&token3, &body),
        token3,
        body,
        sign,
        unknown_diag: None,
    })
}

pub fn transfer(encrypted: bool) -> impl Strategy<Value = Transfer> {
    let appl = if encrypted {
        octets(120).boxed()
    } else {
        ber_element().boxed()
    };
    let auth = if encrypted {
        proptest::option::of(authenticator()).boxed()
    } else {
        authenticator().prop_map(Some).boxed()
    };
    (token2(), appl, auth).prop_map(move |(token2, appl, auth)| {
        let content = token2.encode_content();
        let mut t = Transfer::assemble(token2, content, appl, encrypted);
        t.auth = auth;
        t
    })
}

/// A SecPDU of the given kind.
pub fn pdu_of(kind: SecPduKind) -> BoxedStrategy<SecPdu> {
    match kind {
        SecPduKind::HandshakeReq => handshake().prop_map(SecPdu::HandshakeReq).boxed(),
        SecPduKind::HandshakeAcc => handshake().prop_map(SecPdu::HandshakeAcc).boxed(),
        SecPduKind::ClearTransfer => transfer(false).prop_map(SecPdu::ClearTransfer).boxed(),
        SecPduKind::EncrTransfer => transfer(true).prop_map(SecPdu::EncrTransfer).boxed(),
        k => {
            let wrap: fn(Token3Pdu) -> SecPdu = match k {
                SecPduKind::ApplicationReject => SecPdu::ApplicationReject,
                SecPduKind::HandshakeSecReject => SecPdu::HandshakeSecReject,
                SecPduKind::HandshakeSecAbort => SecPdu::HandshakeSecAbort,
                SecPduKind::DtSecAbort => SecPdu::DtSecAbort,
                SecPduKind::ApplAbort => SecPdu::ApplAbort,
                SecPduKind::ReleaseReq => SecPdu::ReleaseReq,
                _ => SecPdu::ReleaseRsp,
            };
            token3_pdu(k).prop_map(wrap).boxed()
        }
    }
}

/// Any SecPDU (the kind drawn uniformly).
pub fn any_pdu() -> impl Strategy<Value = SecPdu> {
    proptest::sample::select(SecPduKind::ALL.to_vec()).prop_flat_map(pdu_of)
}
