//! Integration tests against a real Prosody 0.12 on loopback (see `secmms_xmpp::prosody`).
//! Without `prosody` installed they print `SKIPPED: …` and pass, except when `CI=true`.

use std::time::{Duration, Instant};

use secmms_xmpp::ns;
use secmms_xmpp::prosody::{require_prosody, Prosody};
use secmms_xmpp::stream::write::{self, IqType, MessageType};
use secmms_xmpp::{
    ClientEvent, ReconnectPolicy, ReconnectingClient, Stanza, StanzaKind, XmppClient, XmppError,
};

const WAIT: Duration = Duration::from_secs(10);

async fn recv(c: &mut XmppClient) -> Stanza {
    match tokio::time::timeout(WAIT, c.recv()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => panic!("receive failed: {e}"),
        Err(_) => panic!("nothing received within {WAIT:?}"),
    }
}

/// The next stanza that is not presence (Prosody may route presence between the accounts).
async fn recv_non_presence(c: &mut XmppClient) -> Stanza {
    loop {
        let s = recv(c).await;
        if s.kind != StanzaKind::Presence {
            return s;
        }
    }
}

async fn connect(p: &Prosody, user: &str, pw: &str) -> XmppClient {
    let cfg = p.client_config(user, pw);
    match XmppClient::connect(&cfg).await {
        Ok(c) => c,
        Err(e) => panic!(
            "{user} cannot connect: {e}\n--- prosody log ---\n{}",
            p.log()
        ),
    }
}

fn start(users: &[(&str, &str)]) -> Prosody {
    match Prosody::start(users) {
        Ok(p) => p,
        Err(e) => panic!("prosody did not start: {e}"),
    }
}

const ENV_PAYLOAD: &str = "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\">\
    <HandshakeReq xmlns=\"http://www.iec.ch/62351/2018/E2E_4\"><pp>1.0.62351.4</pp>\
    <tbs><token1><assoID>AAECAwQFBgcICQoLDA0ODw==</assoID><time>20250615120000.000Z</time>\
    </token1><applData>qAA=</applData></tbs><sign>MEUCIQDx</sign></HandshakeReq></e2e>";

#[tokio::test]
async fn iq_and_message_round_trips_between_two_clients() {
    if !require_prosody("iq_and_message_round_trips_between_two_clients") {
        return;
    }
    let p = start(&[("alice", "alicepw"), ("bob", "bobpw")]);
    let mut alice = connect(&p, "alice", "alicepw").await;
    let mut bob = connect(&p, "bob", "bobpw").await;
    assert_eq!(alice.jid(), "alice@localhost/IEC");
    assert_eq!(bob.jid(), "bob@localhost/IEC");
    let tls = alice.tls_info().expect("TLS is negotiated");
    assert!(
        tls.version == "TLSv1.3" || tls.version == "TLSv1.2",
        "{tls:?}"
    );

    // iq set alice → bob, carrying the ENV_4 wrapper with nested content.
    let iq = write::iq(IqType::Set, "h1", Some(bob.jid()), ENV_PAYLOAD).unwrap();
    alice.send(&iq).await.unwrap();
    let got = recv_non_presence(&mut bob).await;
    assert_eq!(got.kind, StanzaKind::Iq);
    assert_eq!(got.type_.as_deref(), Some("set"));
    assert_eq!(got.id.as_deref(), Some("h1"));
    assert_eq!(got.from.as_deref(), Some(alice.jid()));
    let children = got.children().unwrap();
    assert_eq!(children.len(), 1, "{}", got.raw);
    assert_eq!(children[0].name, "e2e");
    assert_eq!(children[0].namespace, ns::IEC_ENV_4);
    // Prosody re-serialises: attribute values come back in single quotes; nothing else in this
    // payload changes (see how_prosody_reserialises_payloads and the README).
    assert_eq!(children[0].raw, ENV_PAYLOAD.replace('"', "'"));
    let tree = got.tree().unwrap();
    let hs = &tree.children[0].children[0];
    assert_eq!(
        (hs.name.as_str(), hs.namespace.as_str()),
        ("HandshakeReq", ns::IEC_E2E_4)
    );

    // The answer: iq result with the same id.
    let answer = write::iq(IqType::Result, "h1", got.from.as_deref(), "").unwrap();
    bob.send(&answer).await.unwrap();
    let back = recv_non_presence(&mut alice).await;
    assert_eq!(back.kind, StanzaKind::Iq);
    assert_eq!(back.type_.as_deref(), Some("result"));
    assert_eq!(back.id.as_deref(), Some("h1"));
    assert_eq!(back.from.as_deref(), Some(bob.jid()));

    // A message (no response expected, §16.2) both ways.
    let m = write::message(MessageType::Normal, Some("m1"), bob.jid(), ENV_PAYLOAD).unwrap();
    alice.send(&m).await.unwrap();
    let got = recv_non_presence(&mut bob).await;
    assert_eq!(got.kind, StanzaKind::Message);
    assert_eq!(got.type_.as_deref(), Some("normal"));
    assert_eq!(got.id.as_deref(), Some("m1"));
    assert_eq!(
        got.children().unwrap()[0].raw,
        ENV_PAYLOAD.replace('"', "'")
    );
    let m = write::message(MessageType::Normal, None, alice.jid(), "<body>ok</body>").unwrap();
    bob.send(&m).await.unwrap();
    let got = recv_non_presence(&mut alice).await;
    assert_eq!(got.kind, StanzaKind::Message);
    assert_eq!(got.tree().unwrap().children[0].text, "ok");

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test]
async fn iq_to_a_missing_resource_returns_the_servers_stanza_error() {
    if !require_prosody("iq_to_a_missing_resource_returns_the_servers_stanza_error") {
        return;
    }
    let p = start(&[("alice", "alicepw"), ("bob", "bobpw")]);
    let mut alice = connect(&p, "alice", "alicepw").await;
    let iq = write::iq(IqType::Set, "x1", Some("bob@localhost/IEC"), ENV_PAYLOAD).unwrap();
    alice.send(&iq).await.unwrap();
    let err = recv_non_presence(&mut alice).await;
    assert_eq!(err.kind, StanzaKind::Iq);
    assert_eq!(err.type_.as_deref(), Some("error"), "{}", err.raw);
    assert_eq!(err.id.as_deref(), Some("x1"));
    assert_eq!(err.from.as_deref(), Some("bob@localhost/IEC"));
    let tree = err.tree().unwrap();
    let error = tree.child("error", ns::CLIENT).expect("an <error/> child");
    let cond: Vec<&str> = error
        .children
        .iter()
        .filter(|c| c.namespace == ns::STANZAS)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cond, ["service-unavailable"], "{}", err.raw);
    assert_eq!(error.attr("type"), Some("cancel"));

    // An account that does not exist at all: also an error, same id.
    let iq = write::iq(
        IqType::Get,
        "x2",
        Some("nobody@localhost/IEC"),
        "<q xmlns='urn:x'/>",
    )
    .unwrap();
    alice.send(&iq).await.unwrap();
    let err = recv_non_presence(&mut alice).await;
    assert_eq!(err.type_.as_deref(), Some("error"), "{}", err.raw);
    assert_eq!(err.id.as_deref(), Some("x2"));
    println!("iq to a non-existent account: {}", err.raw);
}

#[tokio::test]
async fn wrong_password_is_a_typed_sasl_failure() {
    if !require_prosody("wrong_password_is_a_typed_sasl_failure") {
        return;
    }
    let p = start(&[("alice", "alicepw")]);
    let cfg = p.client_config("alice", "not-the-password");
    let e = XmppClient::connect(&cfg).await.expect_err("must fail");
    match &e {
        XmppError::SaslFailed { condition, .. } => assert_eq!(condition, "not-authorized"),
        other => panic!("expected SaslFailed, got {other:?}"),
    }
    assert!(!e.is_retryable());
    // Unknown user: the same answer (no account enumeration).
    let cfg = p.client_config("mallory", "x");
    assert!(matches!(
        XmppClient::connect(&cfg).await,
        Err(XmppError::SaslFailed { .. })
    ));
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    if !require_prosody("a_server_certificate_from_an_unknown_ca_is_refused") {
        return;
    }
    let p = start(&[("alice", "alicepw")]);
    let mut cfg = p.client_config("alice", "alicepw");
    cfg.ca = vec![p.pki.unrelated_ca().unwrap()];
    let e = XmppClient::connect(&cfg).await.expect_err("must fail");
    match &e {
        XmppError::Certificate { reason } => {
            assert!(reason.contains("local issuer"), "{reason}")
        }
        other => panic!("expected Certificate, got {other:?}"),
    }
    assert!(!e.is_retryable());
    // With the right anchor the same configuration works.
    cfg.ca = vec![p.ca.clone()];
    XmppClient::connect(&cfg).await.unwrap();
}

#[tokio::test]
async fn sasl_external_with_a_client_certificate() {
    if !require_prosody("sasl_external_with_a_client_certificate") {
        return;
    }
    let p = start(&[]);
    let cfg = p.external_config("carol").unwrap();
    let c = match XmppClient::connect(&cfg).await {
        Ok(c) => c,
        Err(e) => panic!("EXTERNAL failed: {e}\n{}", p.log()),
    };
    assert_eq!(c.jid(), "carol@ext.localhost/IEC");
    // A certificate naming an account of another domain is refused by the server.
    let mut bad = cfg.clone();
    let (cert, key) = p.pki.issue_client_cert("carol@localhost").unwrap();
    bad.cert = Some(cert);
    bad.key = Some(key);
    match XmppClient::connect(&bad).await {
        Err(XmppError::SaslFailed { condition, .. }) => assert_eq!(condition, "not-authorized"),
        other => panic!("expected SaslFailed, got {other:?}"),
    }
    // A certificate for the right account from a CA the server does not trust is refused too
    // (the TLS handshake succeeds: Prosody asks for a certificate but does not insist).
    let stranger_dir = secmms_xmpp::prosody::temp_dir("secmms-xmpp-stranger").unwrap();
    let stranger = secmms_xmpp::prosody::TestPki::new(&stranger_dir, &["localhost"]).unwrap();
    let (cert, key) = stranger.issue_client_cert("carol@ext.localhost").unwrap();
    let mut untrusted = cfg.clone();
    untrusted.cert = Some(cert);
    untrusted.key = Some(key);
    match XmppClient::connect(&untrusted).await {
        Err(XmppError::SaslFailed { condition, .. }) => assert_eq!(condition, "not-authorized"),
        other => panic!("expected SaslFailed, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(stranger_dir);
    // PLAIN is not offered on the certificate-only host.
    let mut plain = cfg.clone();
    plain.sasl = secmms_xmpp::SaslMechanism::Plain;
    plain.password = Some("x".into());
    match XmppClient::connect(&plain).await {
        Err(XmppError::MechanismNotOffered { offered, .. }) => {
            assert_eq!(offered, ["EXTERNAL"])
        }
        other => panic!("expected MechanismNotOffered, got {other:?}"),
    }
}

#[tokio::test]
async fn reconnects_after_the_server_restarts() {
    if !require_prosody("reconnects_after_the_server_restarts") {
        return;
    }
    let mut p = start(&[("alice", "alicepw"), ("bob", "bobpw")]);
    let mut cfg = p.client_config("alice", "alicepw");
    cfg.reconnect = ReconnectPolicy {
        initial_delay_ms: 100,
        max_delay_ms: 800,
        multiplier: 2,
        max_attempts: 30,
    };
    let mut alice = ReconnectingClient::connect(cfg).await.unwrap();
    assert_eq!(alice.jid(), Some("alice@localhost/IEC"));

    p.restart().unwrap();
    let t0 = Instant::now();
    let ev = next_link_event(&mut alice).await;
    assert!(matches!(ev, Ok(ClientEvent::Disconnected(_))), "{ev:?}");
    assert!(!alice.is_connected());
    assert!(matches!(
        alice.send("<presence/>").await,
        Err(XmppError::Closed)
    ));
    let ev = next_link_event(&mut alice).await;
    match ev {
        Ok(ClientEvent::Reconnected { jid }) => assert_eq!(jid, "alice@localhost/IEC"),
        other => panic!("expected Reconnected, got {other:?}"),
    }
    println!("reconnected {:?} after the restart", t0.elapsed());

    // The new session carries stanzas.
    let bob = connect(&p, "bob", "bobpw").await;
    let m = write::message(
        MessageType::Normal,
        Some("after"),
        "alice@localhost/IEC",
        ENV_PAYLOAD,
    )
    .unwrap();
    bob.send(&m).await.unwrap();
    let got = loop {
        match tokio::time::timeout(WAIT, alice.next_event())
            .await
            .unwrap()
        {
            Ok(ClientEvent::Stanza(s)) if s.kind == StanzaKind::Message => break s,
            Ok(ClientEvent::Stanza(_)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(got.id.as_deref(), Some("after"));
    let _ = bob.close().await;
}

/// The next event that is not a presence stanza.
async fn next_link_event(c: &mut ReconnectingClient) -> Result<ClientEvent, XmppError> {
    loop {
        match tokio::time::timeout(WAIT, c.next_event()).await {
            Err(_) => panic!("no event within {WAIT:?}"),
            Ok(Ok(ClientEvent::Stanza(s))) if s.kind == StanzaKind::Presence => continue,
            Ok(other) => return other,
        }
    }
}

/// A loopback TCP relay in front of Prosody whose connections can be cut.
struct Relay {
    port: u16,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let c2 = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                let target = target.clone();
                let t = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                c2.lock().unwrap().push(t.abort_handle());
            }
        });
        Relay {
            port,
            conns,
            accept,
        }
    }

    /// Drops every relayed connection (both TCP connections close).
    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn reconnects_after_the_tcp_connection_is_cut() {
    if !require_prosody("reconnects_after_the_tcp_connection_is_cut") {
        return;
    }
    let p = start(&[("alice", "alicepw"), ("bob", "bobpw")]);
    let relay = Relay::start(p.server()).await;
    let mut cfg = p.client_config("alice", "alicepw");
    cfg.server = format!("127.0.0.1:{}", relay.port);
    cfg.reconnect = ReconnectPolicy {
        initial_delay_ms: 100,
        max_delay_ms: 400,
        multiplier: 2,
        max_attempts: 5,
    };
    let mut alice = ReconnectingClient::connect(cfg).await.unwrap();
    let mut bob = connect(&p, "bob", "bobpw").await;
    for round in 0..2 {
        relay.cut();
        match next_link_event(&mut alice).await {
            Ok(ClientEvent::Disconnected(e)) => {
                assert!(e.is_retryable(), "{e:?}");
                println!("round {round}: link lost: {e}");
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        match next_link_event(&mut alice).await {
            Ok(ClientEvent::Reconnected { jid }) => assert_eq!(jid, "alice@localhost/IEC"),
            other => panic!("expected Reconnected, got {other:?}"),
        }
        // Traffic flows on the new session, in both directions.
        let iq = write::iq(
            IqType::Get,
            &format!("r{round}"),
            Some(bob.jid()),
            "<q xmlns='urn:x'/>",
        )
        .unwrap();
        alice.send(&iq).await.unwrap();
        let got = recv_non_presence(&mut bob).await;
        assert_eq!(got.id.as_deref(), Some(format!("r{round}").as_str()));
        let answer = write::iq(
            IqType::Result,
            &format!("r{round}"),
            got.from.as_deref(),
            "",
        )
        .unwrap();
        bob.send(&answer).await.unwrap();
        match next_link_event(&mut alice).await {
            Ok(ClientEvent::Stanza(s)) => {
                assert_eq!(s.type_.as_deref(), Some("result"));
                assert_eq!(s.id.as_deref(), Some(format!("r{round}").as_str()));
            }
            other => panic!("expected the result, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn reconnection_gives_up_within_the_policy() {
    if !require_prosody("reconnection_gives_up_within_the_policy") {
        return;
    }
    let mut p = start(&[("alice", "alicepw")]);
    let mut cfg = p.client_config("alice", "alicepw");
    cfg.reconnect = ReconnectPolicy {
        initial_delay_ms: 50,
        max_delay_ms: 200,
        multiplier: 2,
        max_attempts: 4,
    };
    let mut alice = ReconnectingClient::connect(cfg).await.unwrap();
    p.stop();
    let ev = next_link_event(&mut alice).await;
    assert!(matches!(ev, Ok(ClientEvent::Disconnected(_))), "{ev:?}");
    let t0 = Instant::now();
    match next_link_event(&mut alice).await {
        Err(XmppError::GaveUp { attempts, last }) => {
            assert_eq!(attempts, 4);
            assert!(matches!(*last, XmppError::Connect { .. }), "{last:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    // Waits 50 + 100 + 200 + 200 ms (plus connection attempts that fail at once).
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(550), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(matches!(alice.next_event().await, Err(XmppError::Closed)));
}

#[tokio::test]
async fn keepalive_pings_keep_an_idle_link_up() {
    if !require_prosody("keepalive_pings_keep_an_idle_link_up") {
        return;
    }
    let p = start(&[("alice", "alicepw"), ("bob", "bobpw")]);
    let mut cfg = p.client_config("alice", "alicepw");
    cfg.keepalive_secs = 1;
    cfg.ping_timeout_secs = 2;
    let mut alice = XmppClient::connect(&cfg).await.unwrap();
    let bob = connect(&p, "bob", "bobpw").await;
    // Idle for longer than keep-alive + ping timeout: only the pings' answers flow, and they are
    // not passed on.
    let idle = tokio::time::timeout(Duration::from_millis(4500), async {
        loop {
            let s = alice.recv().await;
            match s {
                Ok(s) if s.kind == StanzaKind::Presence => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(idle.is_err(), "nothing but presence may arrive: {idle:?}");
    let m = write::message(
        MessageType::Normal,
        Some("k"),
        alice.jid(),
        "<body>x</body>",
    )
    .unwrap();
    bob.send(&m).await.unwrap();
    assert_eq!(recv_non_presence(&mut alice).await.id.as_deref(), Some("k"));
}

/// Sends each probe payload inside an iq from alice to bob and reports how the text of the
/// first child arrives. The expectations below are what Prosody 0.12.3 does; see the crate
/// README, "What Prosody does to the XML".
#[tokio::test]
async fn how_prosody_reserialises_payloads() {
    if !require_prosody("how_prosody_reserialises_payloads") {
        return;
    }
    let p = start(&[("alice", "alicepw"), ("bob", "bobpw")]);
    let alice = connect(&p, "alice", "alicepw").await;
    let mut bob = connect(&p, "bob", "bobpw").await;
    let probes: &[(&str, &str)] = &[
        ("double quotes, default namespaces", ENV_PAYLOAD),
        (
            "single quotes",
            "<e2e xmlns='http://www.iec.ch/62351/2018/ENV_4'><a b='1'/></e2e>",
        ),
        (
            "empty element forms",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"><empty></empty><short/><sp /></e2e>",
        ),
        (
            "whitespace between elements and inside tags",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\">\n  <a  b=\"1\"  >\n    <c/>\n  </a >\n</e2e>",
        ),
        (
            "prefixed namespace",
            "<env:e2e xmlns:env=\"http://www.iec.ch/62351/2018/ENV_4\"><env:x/></env:e2e>",
        ),
        (
            "character and entity references in text",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"><t>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;\"'&gt;</t></e2e>",
        ),
        (
            "references in attribute values",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"><u a=\"&quot;'&lt;&gt;&#9;&#10;x\"/></e2e>",
        ),
        (
            "CDATA section",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"><t><![CDATA[<x>&]]></t></e2e>",
        ),
        (
            "attribute order",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"><a z=\"1\" a=\"2\" m=\"3\"/></e2e>",
        ),
        (
            "non-ASCII text",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"><t>é🚀&#xE9;</t></e2e>",
        ),
        (
            "redundant namespace declaration",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"><a xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"/></e2e>",
        ),
        (
            "xml:lang and a prefixed attribute",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\" xml:lang=\"en\"><a xmlns:q=\"urn:q\" q:x=\"1\"/></e2e>",
        ),
        (
            "CR LF line ends",
            "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\">\r\n<t>a\r\nb</t></e2e>",
        ),
    ];
    let mut report = String::new();
    let mut received = Vec::new();
    for (i, (what, payload)) in probes.iter().enumerate() {
        let id = format!("p{i}");
        let iq = write::iq(IqType::Set, &id, Some(bob.jid()), payload).unwrap();
        alice.send(&iq).await.unwrap();
        let got = recv_non_presence(&mut bob).await;
        assert_eq!(got.id.as_deref(), Some(id.as_str()));
        let child = got.children().unwrap()[0].raw.to_owned();
        let same = child == *payload;
        report.push_str(&format!(
            "{what}: {}\n  sent: {payload:?}\n  got:  {child:?}\n",
            if same { "unchanged" } else { "CHANGED" }
        ));
        received.push((*what, (*payload).to_owned(), child, got.raw.clone()));
    }
    println!("{report}");
    let first = &received[0];
    println!("a whole received iq: {}", first.3);
    for (what, sent, got, _) in &received {
        let expected = expected_after_prosody(what, sent);
        assert_eq!(sort_attributes(got), sort_attributes(&expected), "{what}");
    }
}

/// What Prosody 0.12.3 delivers for each probe (measured; see the README). Attribute order is
/// not part of it: Prosody writes attributes in Lua table order, which changes between runs.
fn expected_after_prosody(what: &str, sent: &str) -> String {
    let e2e = "<e2e xmlns='http://www.iec.ch/62351/2018/ENV_4'>";
    let s = match what {
        "double quotes, default namespaces" => return sent.replace('"', "'"),
        "single quotes" => sent,
        "empty element forms" => "<empty/><short/><sp/></e2e>",
        "whitespace between elements and inside tags" => "\n  <a b='1'>\n    <c/>\n  </a>\n</e2e>",
        "prefixed namespace" => "<x/></e2e>",
        "character and entity references in text" => {
            "<t>&lt;&gt;&amp;&quot;&apos;AB&quot;&apos;&gt;</t></e2e>"
        }
        // Tab and line feed come back as raw characters, which the next parser normalises to
        // spaces (XML 1.0 §3.3.3): the value itself changes.
        "references in attribute values" => "<u a='&quot;&apos;&lt;&gt;\t\nx'/></e2e>",
        "CDATA section" => "<t>&lt;x&gt;&amp;</t></e2e>",
        "attribute order" => "<a z='1' a='2' m='3'/></e2e>",
        "non-ASCII text" => "<t>é🚀é</t></e2e>",
        "redundant namespace declaration" => "<a/></e2e>",
        "xml:lang and a prefixed attribute" => {
            return "<e2e xmlns='http://www.iec.ch/62351/2018/ENV_4' xml:lang='en'>\
                    <a xmlns:ns1='urn:q' ns1:x='1'/></e2e>"
                .to_owned()
        }
        "CR LF line ends" => "\n<t>a\nb</t></e2e>",
        _ => panic!("no expectation for {what}"),
    };
    if s == sent {
        return s.to_owned();
    }
    format!("{e2e}{s}")
}

/// Sorts the attributes of every start tag, so that texts differing only in attribute order
/// compare equal. Quotes and everything else are kept.
fn sort_attributes(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let mut end = 0;
        let mut quote = None;
        for (j, c) in rest.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('/') {
            out.push_str(&format!("<{tag}>"));
            continue;
        }
        let (tag, empty) = match tag.strip_suffix('/') {
            Some(t) => (t, true),
            None => (tag, false),
        };
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut quote = None;
        for c in tag.chars() {
            match (quote, c) {
                (None, ' ' | '\t' | '\n' | '\r') => {
                    if !cur.is_empty() {
                        parts.push(std::mem::take(&mut cur));
                    }
                    continue;
                }
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                _ => {}
            }
            cur.push(c);
        }
        if !cur.is_empty() {
            parts.push(cur);
        }
        let name = parts.remove(0);
        parts.sort();
        out.push('<');
        out.push_str(&name);
        for p in parts {
            out.push(' ');
            out.push_str(&p);
        }
        out.push_str(if empty { "/>" } else { ">" });
    }
    out.push_str(rest);
    out
}

#[test]
fn attribute_sorting_helper() {
    assert_eq!(
        sort_attributes("<a z='1' a=\"x y\"/><b>t</b>"),
        "<a a=\"x y\" z='1'/><b>t</b>"
    );
}

/// A genuine IEC 62351-4 HandshakeReq (XML encoding) goes through Prosody inside an iq; the
/// receiving E2E server verifies its signature over the characters as received, and the
/// HandshakeAcc comes back the same way.
#[tokio::test]
async fn a_signed_secpdu_survives_prosody() {
    if !require_prosody("a_signed_secpdu_survives_prosody") {
        return;
    }
    use secmms_e2e::{E2eClient, E2eConfig, E2eServer, Output, TimeStamp, WireEncoding};
    use secmms_profiles::xmpp::{env_unwrap, env_wrap};
    use std::sync::Arc;
    let p = start(&[("alice", "alicepw"), ("bob", "bobpw")]);
    let mut alice = connect(&p, "alice", "alicepw").await;
    let mut bob = connect(&p, "bob", "bobpw").await;

    let (mut cctx, mut sctx) = secmms_e2e::doc_support::demo_contexts();
    for ctx in [&mut cctx, &mut sctx] {
        ctx.config = Arc::new(E2eConfig {
            encoding: WireEncoding::Xml,
            ..(*ctx.config).clone()
        });
    }
    let now = TimeStamp::from_unix_secs(1_750_000_000);
    let mut client = E2eClient::new(cctx, Box::new(secmms_pki::crypto::OsRandom), 1);
    let mut server = E2eServer::new(sctx, Box::new(secmms_pki::crypto::OsRandom), 7);

    let req = client.handshake_req(Some(&[0xa8, 0x00]), now).unwrap();
    let payload = env_wrap(std::str::from_utf8(&req).unwrap());
    alice
        .send(&write::iq(IqType::Set, "hs1", Some(bob.jid()), &payload).unwrap())
        .await
        .unwrap();
    let got = recv_non_presence(&mut bob).await;
    let children = got.children().unwrap();
    let (kind, secpdu) = env_unwrap(children[0].raw, &Default::default()).unwrap();
    let out = server.receive(kind, secpdu.as_bytes(), now).unwrap();
    assert!(matches!(out, Output::HandshakeRequested { .. }), "{out:?}");

    let acc = server.accept(Some(&[0xa9, 0x00]), now).unwrap();
    let payload = env_wrap(std::str::from_utf8(&acc).unwrap());
    bob.send(&write::iq(IqType::Result, "hs1", got.from.as_deref(), &payload).unwrap())
        .await
        .unwrap();
    let back = recv_non_presence(&mut alice).await;
    assert_eq!(back.id.as_deref(), Some("hs1"));
    assert_eq!(back.type_.as_deref(), Some("result"));
    let children = back.children().unwrap();
    let (kind, secpdu) = env_unwrap(children[0].raw, &Default::default()).unwrap();
    let out = client.receive(kind, secpdu.as_bytes(), now).unwrap();
    assert!(matches!(out, Output::Established { .. }), "{out:?}");
    // What changed on the way: only the quotes of the namespace declarations.
    assert_ne!(secpdu.as_bytes(), &acc[..]);
    assert_eq!(secpdu, std::str::from_utf8(&acc).unwrap().replace('"', "'"));
}
