//! Builds a capture of one A-profile association request (IEC 62351-4 §11): CR, then CN + CP +
//! AARQ carrying an MMS-Authentication-value signed with a fresh P-256 key, then the MMS
//! initiate. `tamper` may change the authentication value before it is wrapped.
//! Shared by the secmms-decode and secmms-cli tests (included with `#[path]`).
#![allow(dead_code)] // each including test uses a part

use std::net::Ipv4Addr;

use secmms_decode::synth::{PcapFile, TcpFlow, LINKTYPE_ETHERNET};
use secmms_osi::acse::{Aarq, Apdu, External};
use secmms_osi::cotp::{ConnectTpdu, DataTpdu, Tpdu};
use secmms_osi::presentation::{oids, ContextDefinition, CpType, UserData};
use secmms_osi::session::{ConnectAccept, Spdu};
use secmms_pki::crypto::{Curve, OsRandom, SigningKey};
use secmms_pki::tooling::{create_ca, Validity};
use secmms_profiles::aprofile::{mechanism_name, wrap_value};
use secmms_profiles::value::{format_time, MmsAuthenticationValue};

/// Capture time of the frames, Unix seconds.
pub const NOW: i64 = 1_780_000_000;

/// The MMS initiate-RequestPDU of the golden capture (open61850 client).
pub const INITIATE: &str =
    "a826800300fde881010582010583010aa416800101810305f100820c03ee1c00000408000079ef18";

fn tpkt(tpdu: &Tpdu) -> Vec<u8> {
    secmms_osi::tpkt::encode(&tpdu.encode().unwrap()).unwrap()
}

/// The capture (classic pcap bytes), signed by a fresh self-signed certificate.
pub fn aarq_capture(tamper: impl FnOnce(&mut MmsAuthenticationValue)) -> Vec<u8> {
    let key = SigningKey::generate_ec(Curve::P256).unwrap();
    let cert = create_ca(
        "decode test",
        &key,
        Validity::days_from(NOW - 3600, 2),
        &mut OsRandom,
    )
    .unwrap();
    aarq_capture_with(cert, &key, tamper)
}

/// The capture, signed with `key` whose certificate is `cert`.
pub fn aarq_capture_with(
    cert: Vec<u8>,
    key: &SigningKey,
    tamper: impl FnOnce(&mut MmsAuthenticationValue),
) -> Vec<u8> {
    let time = format_time(NOW - 5).into_bytes();
    let signature = key.sign(&time).unwrap();
    let mut value = MmsAuthenticationValue {
        certificate: cert,
        time,
        signature,
        time_tlv: Vec::new(),
    };
    tamper(&mut value);
    let mut aarq = Aarq::new(oids::mms_ac());
    aarq.sender_acse_requirements = Some(secmms_osi::acse::requirements_authentication());
    aarq.mechanism_name = Some(mechanism_name());
    aarq.calling_authentication_value = Some(wrap_value(&value, Some(3)));
    aarq.user_information = vec![External::single(3, hex::decode(INITIATE).unwrap())];
    let cp = CpType {
        calling_psel: Some(vec![0, 0, 0, 1]),
        called_psel: Some(vec![0, 0, 0, 1]),
        context_definitions: vec![
            ContextDefinition {
                id: 1,
                abstract_syntax: oids::acse_as(),
                transfer_syntaxes: vec![oids::ber()],
            },
            ContextDefinition {
                id: 3,
                abstract_syntax: oids::mms_as(),
                transfer_syntaxes: vec![oids::ber()],
            },
        ],
        user_data: Some(UserData::single(1, Apdu::Aarq(aarq).encode())),
        ..Default::default()
    };
    let cn = Spdu::Connect(ConnectAccept {
        protocol_options: Some(0),
        version: Some(2),
        user_requirements: Some(2),
        calling_ssel: Some(vec![0, 1]),
        called_ssel: Some(vec![0, 1]),
        user_data: Some(cp.encode()),
        ..Default::default()
    })
    .encode()
    .unwrap();
    let cr = Tpdu::Cr(ConnectTpdu {
        dst_ref: 0,
        src_ref: 1,
        class_options: 0,
        tpdu_size: None,
        calling_tsel: Some(vec![0, 1]),
        called_tsel: Some(vec![0, 1]),
    });
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut flow = TcpFlow::new(
        (Ipv4Addr::new(10, 9, 0, 1), 51000),
        (Ipv4Addr::new(10, 9, 0, 2), 102),
        NOW as u64 * 1_000_000_000,
    );
    flow.handshake(&mut file).unwrap();
    flow.send(&mut file, true, &tpkt(&cr)).unwrap();
    flow.send(
        &mut file,
        true,
        &tpkt(&Tpdu::Dt(DataTpdu {
            eot: true,
            data: cn,
        })),
    )
    .unwrap();
    file.bytes().to_vec()
}
