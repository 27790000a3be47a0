//! Unit tests of the XML encoding: lexical forms, round trips, covered areas, limits and the
//! reader offered to the environments ([`Scanner`]).

use super::*;

fn lim() -> XmlLimits {
    XmlLimits::default()
}

fn sample_token3() -> ClearToken3 {
    ClearToken3 {
        sig_alg: crate::alg::sig_alg_id(secmms_pki::SignatureAlgorithm::EcdsaSha256),
        version: Version::v1(),
        asso_id: Some(AssoId::new("1:7").unwrap_or_else(|| AssoId::client(1))),
        time: TimeStamp(1_750_000_000_123),
        pk_cert: vec![0x30, 0x03, 0x02, 0x01, 0x05],
        cert_path: None,
    }
}

fn sample_abort() -> SecPdu {
    let token3 = sample_token3();
    let body = Token3Body::DtDiag(Some(DtDiagnostic::InvalidSequenceNumber));
    let tbs = token3_tbs(&token3, &body).into_bytes();
    SecPdu::DtSecAbort(Token3Pdu {
        token3,
        body,
        sign: Signature {
            algo: crate::alg::sig_alg_id(secmms_pki::SignatureAlgorithm::EcdsaSha256),
            sign: vec![0xde, 0xad],
        },
        tbs,
        unknown_diag: None,
    })
}

#[test]
fn golden_dt_sec_abort() {
    let s = encode(&sample_abort()).unwrap();
    assert_eq!(
        s,
        concat!(
            "<DtSecAbort xmlns=\"http://www.iec.ch/62351/2018/E2E_4\"><tbs><token3>",
            "<sigAlg><algorithm>1.2.840.10045.4.3.2</algorithm></sigAlg>",
            "<version>1</version><assoID>1:7</assoID><time>20250615150640.123Z</time>",
            "<pkCert>3003020105</pkCert></token3><diag>invalid-sequence-number</diag></tbs>",
            "<sign><algo><algorithm>1.2.840.10045.4.3.2</algorithm></algo>",
            "<sign>DEAD</sign></sign></DtSecAbort>"
        )
    );
    assert_eq!(
        covered_offset(SecPduKind::DtSecAbort),
        Some(s.find("<token3>").unwrap())
    );
    assert_eq!(decode(&s, &lim()).unwrap(), sample_abort());
}

#[test]
fn covered_characters_are_kept_exactly() {
    // Prefixes, whitespace, a comment and a character reference inside tbs: the decoded
    // values are the same, the covered characters are exactly those received.
    let s = encode(&sample_abort()).unwrap();
    let odd = s
        .replace(
            "<DtSecAbort xmlns=\"http://www.iec.ch/62351/2018/E2E_4\">",
            concat!(
                "<?xml version=\"1.0\"?>\n<e:DtSecAbort xmlns:e=\"http://www.iec.ch/62351/2018/E2E_4\"",
                " xmlns=\"http://www.iec.ch/62351/2018/E2E_4\">\n "
            ),
        )
        .replace("</DtSecAbort>", "</e:DtSecAbort>\n")
        .replace("<tbs>", "<e:tbs>")
        .replace("</tbs>", "</e:tbs>")
        .replace("<token3>", "<token3 xmlns=\"http://www.iec.ch/62351/2018/E2E_4\">\n  <!-- c -->")
        .replace("<assoID>1:7", "<assoID> 1&#x3A;7 ");
    let d = decode(&odd, &lim()).unwrap();
    let start = odd.find("<e:tbs>").unwrap() + "<e:tbs>".len();
    let end = odd.find("</e:tbs>").unwrap();
    match (&d, sample_abort()) {
        (SecPdu::DtSecAbort(p), SecPdu::DtSecAbort(q)) => {
            assert_eq!(p.tbs, &odd.as_bytes()[start..end]);
            assert_eq!(p.token3, q.token3);
            assert_eq!(p.body, q.body);
            assert_eq!(p.sign, q.sign);
        }
        _ => panic!("kind"),
    }
    // Re-encoding keeps the covered characters (the signature stays valid).
    let again = encode(&d).unwrap();
    assert!(again.contains(&odd[start..end]));
}

#[test]
fn empty_elements_and_cdata() {
    let s = encode(&sample_abort())
        .unwrap()
        .replace("<sign>DEAD</sign>", "<sign><![CDATA[DE]]>AD</sign>");
    assert_eq!(decode(&s, &lim()).unwrap(), sample_abort());
    let v0 = s.replace("<version>1</version>", "<version/>");
    match decode(&v0, &lim()).unwrap() {
        SecPdu::DtSecAbort(p) => assert_eq!(p.token3.version, version_from_bits(&[])),
        _ => panic!("kind"),
    }
}

#[test]
fn rejections() {
    let s = encode(&sample_abort()).unwrap();
    type Case = (String, fn(&XmlError) -> bool);
    let cases: Vec<Case> = vec![
        (s.replace(E2E_NS, "urn:other"), |e| {
            matches!(e, XmlError::Namespace(_))
        }),
        (format!("<!DOCTYPE x [<!ENTITY a 'b'>]>{s}"), |e| {
            matches!(e, XmlError::Doctype)
        }),
        (s.replace("<tbs>", "<tbs id=\"1\">"), |e| {
            matches!(e, XmlError::Attribute(_))
        }),
        (s.replace("<sign>DEAD</sign>", "<sign>DEA</sign>"), |e| {
            matches!(e, XmlError::Invalid("sign"))
        }),
        (
            s.replace("<version>1</version>", "<version>2</version>"),
            |e| matches!(e, XmlError::Invalid("version")),
        ),
        (s.replace("1:7", "1:7777"), |e| {
            matches!(e, XmlError::Invalid("assoID"))
        }),
        (s.replace("</token3>", "</token3>text"), |e| {
            matches!(e, XmlError::UnexpectedText(_))
        }),
        (format!("{s}<x/>"), |e| {
            matches!(e, XmlError::UnexpectedElement(_))
        }),
        (s.replace("DtSecAbort", "Unknown"), |e| {
            matches!(e, XmlError::UnknownSecPdu)
        }),
        (s[..s.len() - 3].to_string(), |e| {
            matches!(e, XmlError::Syntax(_))
        }),
        (
            s.replace("</sign></DtSecAbort>", "</sign><extra/></DtSecAbort>"),
            |e| matches!(e, XmlError::UnexpectedElement(_)),
        ),
    ];
    for (i, (x, ok)) in cases.iter().enumerate() {
        match decode(x, &lim()) {
            Err(e) => assert!(ok(&e), "case {i}: {e:?}"),
            Ok(_) => panic!("case {i} accepted"),
        }
    }
    assert!(matches!(
        decode_as(SecPduKind::ApplAbort, &s, &lim()),
        Err(XmlError::KindMismatch { .. })
    ));
    assert!(matches!(
        decode_octets(SecPduKind::DtSecAbort, &[0xff, 0xfe], &lim()),
        Err(XmlError::NotUtf8)
    ));
}

#[test]
fn appl_data_must_be_one_ber_element_and_diag_names_are_checked() {
    let token3 = sample_token3();
    let body = Token3Body::ApplData(Some(vec![0x84, 0x00]));
    let pdu = SecPdu::ApplAbort(Token3Pdu {
        tbs: token3_tbs(&token3, &body).into_bytes(),
        token3,
        body,
        sign: Signature {
            algo: crate::alg::hmac_alg_id(),
            sign: vec![1],
        },
        unknown_diag: None,
    });
    let s = encode(&pdu).unwrap();
    assert!(s.contains("<applData>hAA=</applData>"));
    assert_eq!(decode(&s, &lim()).unwrap(), pdu);
    // 04 05 01: the length runs past the end; 84 00 84 00: two elements.
    for bad in ["BAUB", "hACEAA=="] {
        let x = s.replace("hAA=", bad);
        assert_eq!(
            decode(&x, &lim()),
            Err(XmlError::Invalid("applData")),
            "{bad}"
        );
    }
    // Diagnostics: unknown identifiers read as no-reason-given (as unknown BER numbers do),
    // malformed ones are refused.
    let d = encode(&sample_abort()).unwrap();
    let future = d.replace("invalid-sequence-number", "some-future-value");
    match decode(&future, &lim()).unwrap() {
        SecPdu::DtSecAbort(p) => {
            assert_eq!(
                p.body,
                Token3Body::DtDiag(Some(DtDiagnostic::NoReasonGiven))
            )
        }
        _ => panic!("kind"),
    }
    let junk = d.replace("invalid-sequence-number", "7");
    assert_eq!(decode(&junk, &lim()), Err(XmlError::Invalid("diag")));
}

#[test]
fn unknown_extension_elements_are_skipped_inside_tokens() {
    let s = encode(&sample_abort())
        .unwrap()
        .replace("</token3>", "<future><a>1</a><b/></future></token3>");
    match decode(&s, &lim()).unwrap() {
        SecPdu::DtSecAbort(p) => {
            assert!(std::str::from_utf8(&p.tbs).unwrap().contains("<future>"))
        }
        _ => panic!("kind"),
    }
}

#[test]
fn limits_are_enforced() {
    let s = encode(&sample_abort()).unwrap();
    let small = XmlLimits {
        max_len: s.len() - 1,
        ..lim()
    };
    assert!(matches!(decode(&s, &small), Err(XmlError::TooLarge(_))));
    let few = XmlLimits {
        max_elements: 5,
        ..lim()
    };
    assert!(matches!(decode(&s, &few), Err(XmlError::TooManyElements)));
    let deep = s.replace(
        "</token3>",
        &format!("{}{}</token3>", "<x>".repeat(40), "</x>".repeat(40)),
    );
    assert!(matches!(decode(&deep, &lim()), Err(XmlError::TooDeep)));
    let many = s.replace("</token3>", &format!("{}</token3>", "<x/>".repeat(2000)));
    assert!(matches!(
        decode(&many, &lim()),
        Err(XmlError::TooManyElements)
    ));
}

#[test]
fn base64_and_hex_lexical_rules() {
    for v in [
        &b""[..],
        b"a",
        b"ab",
        b"abc",
        b"abcd",
        &[0xff, 0x00, 0x7f, 0x80],
    ] {
        let mut s = String::new();
        put_base64(&mut s, v);
        assert_eq!(parse_base64(&s, 100, "x").unwrap(), v);
        let spaced: String = s.chars().flat_map(|c| [c, ' ']).collect();
        assert_eq!(parse_base64(&spaced, 100, "x").unwrap(), v);
        let mut h = String::new();
        put_binary(&mut h, BinaryForm::HexBinary, v);
        assert_eq!(h, h.to_uppercase());
        let lower = h.to_lowercase();
        assert_eq!(
            parse_binary(BinaryForm::HexBinary, &lower, 100, "x").unwrap(),
            v
        );
    }
    assert_eq!(parse_base64("YQ==", 10, "x").unwrap(), b"a");
    assert!(parse_base64("YR==", 10, "x").is_err()); // non-zero unused bits
    assert!(parse_base64("YQ=", 10, "x").is_err());
    assert!(parse_base64("Y=Q=", 10, "x").is_err());
    assert!(parse_base64("YQ==YQ==", 10, "x").is_err());
    assert!(parse_binary(BinaryForm::HexBinary, "0G", 10, "x").is_err());
    assert!(parse_binary(BinaryForm::HexBinary, "0011", 1, "x").is_err());
    assert_eq!(
        parse_binary(BinaryForm::HexBinary, " 0011\n", 2, "x").unwrap(),
        [0, 0x11]
    );
}

#[test]
fn oid_and_bits() {
    assert_eq!(parse_oid("1.2.840").unwrap().to_string(), "1.2.840");
    for bad in [
        "",
        "1",
        "1.",
        "1.02",
        "+1.2",
        "1.2.x",
        "3.1",
        "1.40",
        "2.18446744073709551615",
    ] {
        assert!(parse_oid(bad).is_err(), "{bad}");
    }
    assert_eq!(version_bits(&Version::v1()), "1");
    assert_eq!(version_from_bits(&[true]), Version::v1());
    for cp in 0..8u8 {
        let c = ConfidentialityParms {
            tls_protected: cp & 1 != 0,
            appl_protected: cp & 2 != 0,
            vpn: cp & 4 != 0,
        };
        let b = parse_bits(&conf_bits(c), "c").unwrap();
        assert_eq!(b.first().copied().unwrap_or(false), c.tls_protected);
        assert_eq!(b.get(1).copied().unwrap_or(false), c.appl_protected);
        assert_eq!(b.get(2).copied().unwrap_or(false), c.vpn);
        assert!(!b.last().is_some_and(|x| !x), "trailing zero in {:?}", b);
    }
}

#[test]
fn scanner_reads_a_secpdu_inside_foreign_xml() {
    let s = encode(&sample_abort()).unwrap();
    let text =
        format!("<?xml version=\"1.0\"?><w:box xmlns:w=\"urn:box\">\n {s} <!-- c --></w:box>");
    let mut sc = Scanner::new(&text, "urn:box", lim()).unwrap();
    match sc.next_node().unwrap() {
        Node::Open { name, ns, .. } => assert_eq!((name.as_str(), ns), ("box", Ns::Outer)),
        n => panic!("{n:?}"),
    }
    sc.skip_ws().unwrap();
    let start = match sc.next_node().unwrap() {
        Node::Open {
            name,
            ns: Ns::E2e,
            declares_e2e: true,
            start,
            ..
        } if name == "DtSecAbort" => start,
        n => panic!("{n:?}"),
    };
    let end = sc.skip_rest().unwrap();
    assert_eq!(&text[start..end], s);
    sc.skip_ws().unwrap();
    assert!(matches!(sc.next_node().unwrap(), Node::Close { .. }));
    sc.finish().unwrap();
    // Without an outer namespace the same element is just another namespace.
    let mut sc = Scanner::new(&text, "", lim()).unwrap();
    assert!(matches!(
        sc.next_node().unwrap(),
        Node::Open { ns: Ns::Other, .. }
    ));
    // The decoder's rules hold for the outer elements too.
    let attr = "<w:box xmlns:w=\"urn:box\" a=\"1\"/>";
    let mut sc = Scanner::new(attr, "urn:box", lim()).unwrap();
    assert_eq!(sc.next_node().unwrap_err(), XmlError::Attribute(0));
    let small = XmlLimits {
        max_len: 10,
        ..lim()
    };
    assert!(matches!(
        Scanner::new(&text, "urn:box", small),
        Err(XmlError::TooLarge(_))
    ));
    let mut sc = Scanner::new("<a/><b/>", "", lim()).unwrap();
    sc.next_node().unwrap();
    sc.skip_rest().unwrap();
    assert_eq!(sc.finish(), Err(XmlError::UnexpectedElement(4)));
}
