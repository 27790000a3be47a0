use proptest::prelude::*;

use super::*;

/// What Prosody 0.12 sends at the start of a client stream (single quotes, declaration first).
const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xml:lang='en' version='1.0' id='0f3c' from='localhost' \
    xmlns:stream='http://etherx.jabber.org/streams'>";

const FEATURES: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
    <required/></starttls></stream:features>";

const IQ: &str = "<iq type='set' id='a&amp;1' from='alice@localhost/IEC' to='bob@localhost/IEC'>\
    <e2e xmlns='http://www.iec.ch/62351/2018/ENV_4'><x:a xmlns:x='urn:x' k=\"v&lt;\">1 &#x41; \
    <![CDATA[<not-a-tag>]]></x:a><b/></e2e></iq>";

fn all_events(r: &mut StreamReader) -> Vec<StreamEvent> {
    std::iter::from_fn(|| r.next_event()).collect()
}

fn read(input: &[u8], limits: StreamLimits) -> (Vec<StreamEvent>, Option<StreamError>) {
    let mut r = StreamReader::new(limits);
    let res = r.feed(input);
    (all_events(&mut r), res.err())
}

fn read_bytewise(input: &[u8], limits: StreamLimits) -> (Vec<StreamEvent>, Option<StreamError>) {
    let mut r = StreamReader::new(limits);
    let mut events = Vec::new();
    for b in input {
        let res = r.feed(std::slice::from_ref(b));
        events.extend(all_events(&mut r));
        if let Err(e) = res {
            return (events, Some(e));
        }
    }
    (events, None)
}

fn stream(body: &str) -> String {
    format!("{HEADER}{body}")
}

fn first_error(body: &str) -> StreamError {
    let (_, err) = read(stream(body).as_bytes(), StreamLimits::default());
    err.expect("an error")
}

#[test]
fn a_prosody_like_stream_yields_header_elements_and_end() {
    let input = stream(&format!(
        "{FEATURES}\n \t{IQ}  <presence/></stream:stream>\n"
    ));
    let (events, err) = read(input.as_bytes(), StreamLimits::default());
    assert_eq!(err, None);
    assert_eq!(events.len(), 5, "{events:#?}");
    let StreamEvent::Header(h) = &events[0] else {
        panic!("header first")
    };
    assert_eq!(h.from.as_deref(), Some("localhost"));
    assert_eq!(h.id.as_deref(), Some("0f3c"));
    assert_eq!(h.version.as_deref(), Some("1.0"));
    assert_eq!(h.lang.as_deref(), Some("en"));
    assert_eq!(h.default_ns.as_deref(), Some(ns::CLIENT));
    let StreamEvent::Element(f) = &events[1] else {
        panic!()
    };
    assert!(f.is("features", ns::STREAMS));
    assert_eq!(f.raw, FEATURES);
    let tree = f.tree().unwrap();
    assert!(tree
        .child("starttls", ns::TLS)
        .and_then(|s| s.child("required", ns::TLS))
        .is_some());
    let StreamEvent::Element(iq) = &events[2] else {
        panic!()
    };
    assert_eq!(iq.raw, IQ, "the exact received text");
    assert!(iq.is("iq", ns::CLIENT));
    assert_eq!(iq.attrs.type_.as_deref(), Some("set"));
    assert_eq!(
        iq.attrs.id.as_deref(),
        Some("a&1"),
        "attribute values are unescaped"
    );
    assert_eq!(iq.attrs.from.as_deref(), Some("alice@localhost/IEC"));
    assert_eq!(iq.attrs.to.as_deref(), Some("bob@localhost/IEC"));
    let st = Stanza::from_element(iq.clone()).unwrap();
    assert_eq!(st.kind, StanzaKind::Iq);
    let children = st.children().unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].name, "e2e");
    assert_eq!(children[0].namespace, ns::IEC_ENV_4);
    assert!(children[0]
        .raw
        .starts_with("<e2e xmlns='http://www.iec.ch/62351/2018/ENV_4'>"));
    assert!(children[0].raw.ends_with("<b/></e2e>"));
    let t = st.tree().unwrap();
    let a = &t.children[0].children[0];
    assert_eq!((a.name.as_str(), a.namespace.as_str()), ("a", "urn:x"));
    assert_eq!(a.attr("k"), Some("v<"));
    assert_eq!(a.text, "1 A <not-a-tag>");
    assert!(matches!(&events[3], StreamEvent::Element(p) if p.raw == "<presence/>"));
    assert_eq!(events[4], StreamEvent::End);
}

#[test]
fn feeding_byte_by_byte_gives_the_same_events() {
    let input = stream(&format!(
        "{FEATURES} {IQ}<message to='x'><body>é🚀</body></message>"
    ));
    let whole = read(input.as_bytes(), StreamLimits::default());
    let bytewise = read_bytewise(input.as_bytes(), StreamLimits::default());
    assert_eq!(whole, bytewise);
    assert_eq!(whole.0.len(), 4);
}

#[test]
fn whitespace_keepalives_are_dropped_and_not_buffered() {
    let mut r = StreamReader::new(StreamLimits::default());
    r.feed(stream("").as_bytes()).unwrap();
    let _ = all_events(&mut r);
    for _ in 0..10_000 {
        r.feed(b" \n\t\r").unwrap();
    }
    assert_eq!(r.partial_len(), 0);
    assert!(!r.has_events());
}

#[test]
fn partial_element_is_held_until_complete() {
    let mut r = StreamReader::new(StreamLimits::default());
    r.feed(stream("<iq type='get' id='1'><q xmlns='x'/>").as_bytes())
        .unwrap();
    assert!(matches!(r.next_event(), Some(StreamEvent::Header(_))));
    assert_eq!(r.next_event(), None);
    assert!(r.partial_len() > 0);
    r.feed(b"</iq>").unwrap();
    let Some(StreamEvent::Element(e)) = r.next_event() else {
        panic!()
    };
    assert_eq!(e.raw, "<iq type='get' id='1'><q xmlns='x'/></iq>");
    assert_eq!(r.partial_len(), 0);
}

#[test]
fn stanza_size_limit() {
    let limits = StreamLimits {
        max_stanza_size: 100,
        ..StreamLimits::default()
    };
    let body = format!("<message><body>{}</body></message>", "x".repeat(200));
    let (_, err) = read(stream(&body).as_bytes(), limits);
    assert_eq!(err, Some(StreamError::StanzaTooLarge { limit: 100 }));
    // Exactly at the limit is fine.
    let exact = format!("<m>{}</m>", "y".repeat(100 - 7));
    assert_eq!(exact.len(), 100);
    let (ev, err) = read(stream(&exact).as_bytes(), limits);
    assert_eq!(err, None);
    assert_eq!(ev.len(), 2);
    // An unterminated element cannot grow the buffer past the limit.
    let mut r = StreamReader::new(limits);
    r.feed(stream("<iq>").as_bytes()).unwrap();
    let mut failed = false;
    for _ in 0..1000 {
        if r.feed(b"zzzzzzzzzz").is_err() {
            failed = true;
            break;
        }
        assert!(r.partial_len() <= 100);
    }
    assert!(failed);
}

#[test]
fn header_size_limit() {
    let limits = StreamLimits {
        max_header_size: 64,
        ..StreamLimits::default()
    };
    let (_, err) = read(HEADER.as_bytes(), limits);
    assert_eq!(err, Some(StreamError::HeaderTooLarge { limit: 64 }));
}

#[test]
fn depth_limit() {
    let limits = StreamLimits {
        max_depth: 3,
        ..StreamLimits::default()
    };
    let ok = "<a><b><c/></b></a>";
    assert_eq!(read(stream(ok).as_bytes(), limits).1, None);
    let ok2 = "<a><b><c></c></b></a>";
    assert_eq!(read(stream(ok2).as_bytes(), limits).1, None);
    let deep = "<a><b><c><d/></c></b></a>";
    let (_, err) = read(stream(deep).as_bytes(), limits);
    assert_eq!(err, Some(StreamError::TooDeep { limit: 3 }));
}

#[test]
fn attribute_limit() {
    let limits = StreamLimits {
        max_attributes: 6,
        ..StreamLimits::default()
    };
    // The header has six attributes.
    let ok = "<a u='1' v='1' w='1' x='1' y='2' xmlns:z='3'/>";
    assert_eq!(read(stream(ok).as_bytes(), limits).1, None);
    let many = "<a><b t='0' u='0' v='0' w='0' x='1' y='2' xmlns='3'/></a>";
    let (_, err) = read(stream(many).as_bytes(), limits);
    assert_eq!(err, Some(StreamError::TooManyAttributes { limit: 6 }));
    let header = HEADER.replace("version='1.0'", "version='1.0' a='1'");
    let (_, err) = read(header.as_bytes(), limits);
    assert_eq!(err, Some(StreamError::TooManyAttributes { limit: 6 }));
}

#[test]
fn restricted_xml_is_refused() {
    assert_eq!(first_error("<a><!-- c --></a>"), StreamError::Comment);
    assert_eq!(first_error("<!-- c -->"), StreamError::Comment);
    assert_eq!(
        first_error("<a><?pi x?></a>"),
        StreamError::ProcessingInstruction
    );
    assert_eq!(
        first_error("<?xml version='1.0'?>"),
        StreamError::ProcessingInstruction
    );
    assert_eq!(first_error("<a><!DOCTYPE a></a>"), StreamError::Doctype);
    let (_, err) = read(
        b"<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]><stream:stream/>",
        StreamLimits::default(),
    );
    assert_eq!(err, Some(StreamError::Doctype));
    // Undeclared (hence external or custom) entities are refused; the predefined five and
    // character references are fine.
    assert!(matches!(
        first_error("<a>&x;</a>"),
        StreamError::NotWellFormed(_)
    ));
    assert!(matches!(
        first_error("<a b='&x;'/>"),
        StreamError::NotWellFormed(_)
    ));
    assert_eq!(
        read(
            stream("<a b='&lt;&gt;&amp;&quot;&apos;&#65;&#x42;'/>").as_bytes(),
            StreamLimits::default()
        )
        .1,
        None
    );
}

#[test]
fn malformed_input_is_refused() {
    for (body, what) in [
        ("<a></b>", "mismatched end"),
        ("<a b='1' b='2'/>", "duplicate attribute"),
        ("<a b=1/>", "unquoted attribute"),
        ("<a b='<'/>", "< in attribute"),
        ("<a <b/>", "< in tag"),
        ("< a/>", "space after <"),
        ("<1a/>", "digit name"),
        ("<a></a/>", "bad end tag"),
        ("<![CDATA[x]]>", "CDATA at stream level"),
        ("<a><!x></a>", "bad markup declaration"),
        ("</stream:strea>", "wrong close tag"),
    ] {
        let (_, err) = read(stream(body).as_bytes(), StreamLimits::default());
        assert!(err.is_some(), "{what}: {body} was accepted");
    }
    assert_eq!(first_error("hello"), StreamError::TextAtStreamLevel);
    assert!(matches!(first_error("<p:a/>"), StreamError::UnboundPrefix(p) if p == "p"));
    assert!(matches!(first_error("<a p:b='1'/>"), StreamError::UnboundPrefix(p) if p == "p"));
    let mut bad = stream("<a>").into_bytes();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(b"</a>");
    assert_eq!(
        read(&bad, StreamLimits::default()).1,
        Some(StreamError::InvalidUtf8)
    );
}

#[test]
fn bad_stream_headers() {
    for h in [
        "<stream xmlns='http://etherx.jabber.org/streams'/>",
        "<stream:stream xmlns:stream='urn:other'>",
        "<foo xmlns='http://etherx.jabber.org/streams'>",
    ] {
        let (_, err) = read(h.as_bytes(), StreamLimits::default());
        assert!(
            matches!(err, Some(StreamError::BadStreamHeader(_))),
            "{h}: {err:?}"
        );
    }
    let (_, err) = read(b"<s:stream>", StreamLimits::default());
    assert!(matches!(err, Some(StreamError::UnboundPrefix(_))));
    let (_, err) = read(b"junk<stream:stream>", StreamLimits::default());
    assert!(matches!(err, Some(StreamError::NotWellFormed(_))));
    let (_, err) = read(
        b"<?xml version='1.0' encoding='ISO-8859-1'?>",
        StreamLimits::default(),
    );
    assert!(matches!(err, Some(StreamError::BadDeclaration(_))));
    let (_, err) = read(b"<?xml version='1.1'?>", StreamLimits::default());
    assert!(matches!(err, Some(StreamError::BadDeclaration(_))));
    let (_, err) = read(b" <?xml version='1.0'?>", StreamLimits::default());
    assert_eq!(err, Some(StreamError::ProcessingInstruction));
    // A byte order mark and whitespace may precede the header.
    let mut bom = b"\xEF\xBB\xBF\n".to_vec();
    bom.extend_from_slice(
        HEADER
            .trim_start_matches("<?xml version='1.0'?>")
            .as_bytes(),
    );
    assert_eq!(read(&bom, StreamLimits::default()).1, None);
    // A different prefix for the streams namespace works, and so does the close tag with it.
    let (ev, err) = read(
        b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>\
          <s:features/></s:stream >",
        StreamLimits::default(),
    );
    assert_eq!(err, None);
    assert!(matches!(&ev[1], StreamEvent::Element(e) if e.is("features", ns::STREAMS)));
    assert_eq!(ev[2], StreamEvent::End);
}

#[test]
fn data_after_the_end_and_failed_state() {
    let (ev, err) = read(
        stream("</stream:stream>  <a/>").as_bytes(),
        StreamLimits::default(),
    );
    assert_eq!(ev.last(), Some(&StreamEvent::End));
    assert_eq!(err, Some(StreamError::DataAfterEnd));
    let mut r = StreamReader::new(StreamLimits::default());
    assert!(r.feed(b"<<").is_err());
    let again = r.feed(HEADER.as_bytes());
    assert!(again.is_err(), "a failed reader stays failed");
    r.reset();
    r.feed(HEADER.as_bytes()).unwrap();
    assert!(matches!(r.next_event(), Some(StreamEvent::Header(_))));
}

#[test]
fn stream_error_conditions() {
    assert_eq!(
        StreamError::StanzaTooLarge { limit: 1 }.condition(),
        "policy-violation"
    );
    assert_eq!(StreamError::Doctype.condition(), "restricted-xml");
    assert_eq!(
        StreamError::TextAtStreamLevel.condition(),
        "not-well-formed"
    );
}

#[test]
fn outgoing_check() {
    let lim = StreamLimits::default();
    let ok =
        "<iq type='set' id='1' to='b@l/IEC'><e2e xmlns='http://www.iec.ch/62351/2018/ENV_4'/></iq>";
    let st = check_outgoing(ok, &lim).unwrap();
    assert_eq!(st.kind, StanzaKind::Iq);
    for bad in [
        "",
        "<iq/><iq/>",
        "<iq/></stream:stream>",
        "<iq>",
        "<iq></iq></stream:stream><stream:stream>",
        "</stream:stream>",
        "<stream:features/>",
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        "<message xmlns='urn:other'/>",
        "<iq><!-- x --></iq>",
        "text<iq/>",
    ] {
        assert!(check_outgoing(bad, &lim).is_err(), "{bad:?} accepted");
    }
    let big = format!("<message><body>{}</body></message>", "x".repeat(300));
    let small = StreamLimits {
        max_stanza_size: 100,
        ..lim
    };
    assert!(check_outgoing(&big, &small).is_err());
}

#[test]
fn element_namespace_comes_from_the_header() {
    let s = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns:db='jabber:server:dialback'><db:result/><message/>";
    let (ev, err) = read(s.as_bytes(), StreamLimits::default());
    assert_eq!(err, None);
    assert!(matches!(&ev[1], StreamEvent::Element(e) if e.is("result", "jabber:server:dialback")));
    assert!(matches!(&ev[2], StreamEvent::Element(e) if e.is("message", "jabber:server")));
    let StreamEvent::Element(e) = &ev[2] else {
        panic!()
    };
    assert!(Stanza::from_element(e.clone()).is_ok());
}

fn stream_strategy() -> impl Strategy<Value = String> {
    let stanza = prop_oneof![
        Just(IQ.to_string()),
        Just(FEATURES.to_string()),
        Just("<presence/>".to_string()),
        Just("<message to='a&amp;b'><body>x &lt; y</body></message>".to_string()),
        Just(" \n".to_string()),
        Just("<a><![CDATA[]]]]></a>".to_string()),
    ];
    prop::collection::vec(stanza, 0..8).prop_map(|v| stream(&v.concat()))
}

proptest! {
    #[test]
    fn split_anywhere_gives_the_same_result(s in stream_strategy(), cuts in prop::collection::vec(0usize..2000, 0..12)) {
        let bytes = s.as_bytes();
        let whole = read(bytes, StreamLimits::default());
        prop_assert_eq!(&whole.1, &None);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut r = StreamReader::new(StreamLimits::default());
        let mut events = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().chain(std::iter::once(bytes.len())) {
            r.feed(&bytes[at..c]).unwrap();
            events.extend(all_events(&mut r));
            at = c;
        }
        prop_assert_eq!(events, whole.0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        crate::fuzzing::xmpp_stream(&data);
        let mut with_header = HEADER.as_bytes().to_vec();
        with_header.extend_from_slice(&data);
        crate::fuzzing::xmpp_stream(&with_header);
    }

    #[test]
    fn mutated_streams_never_panic(s in stream_strategy(), pos in any::<usize>(), b in any::<u8>()) {
        let mut bytes = s.into_bytes();
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = b;
        }
        let mut input = vec![3u8];
        input.extend_from_slice(&bytes);
        crate::fuzzing::xmpp_stream(&input);
    }
}
