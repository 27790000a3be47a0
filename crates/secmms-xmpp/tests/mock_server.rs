//! The client against scripted servers on loopback: the cases a well-behaved Prosody never
//! produces (no STARTTLS, injection after `<proceed/>`, silence, a dead link, stream errors,
//! oversized stanzas, a wrong certificate name) and SASL EXTERNAL checked at the wire level.
//! These need no external program.

use std::pin::Pin;
use std::time::{Duration, Instant};

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use secmms_xmpp::ns;
use secmms_xmpp::prosody::{temp_dir, TestPki};
use secmms_xmpp::stream::write::{self, MessageType};
use secmms_xmpp::stream::{Element, StreamEvent, StreamLimits, StreamReader};
use secmms_xmpp::{SaslMechanism, StanzaKind, XmppClient, XmppConfig, XmppError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='m1' from='localhost' version='1.0'>";
const FEATURES_TLS: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
    <required/></starttls></stream:features>";
const FEATURES_BIND: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    </stream:features>";

fn features_sasl(mechs: &[&str]) -> String {
    let m: String = mechs
        .iter()
        .map(|m| format!("<mechanism>{m}</mechanism>"))
        .collect();
    format!(
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{m}</mechanisms>\
         </stream:features>"
    )
}

/// The server side of one connection: reads the client's stream with the crate's own reader.
struct Peer<S> {
    io: S,
    reader: StreamReader,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    fn new(io: S) -> Self {
        Peer {
            io,
            reader: StreamReader::new(StreamLimits::default()),
        }
    }

    async fn event(&mut self) -> StreamEvent {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(e) = self.reader.next_event() {
                return e;
            }
            let n = self.io.read(&mut buf).await.expect("mock read");
            assert!(n > 0, "client closed the connection");
            self.reader.feed(&buf[..n]).expect("client sent bad XML");
        }
    }

    async fn header(&mut self) {
        self.reader.reset();
        match self.event().await {
            StreamEvent::Header(h) => assert_eq!(h.to.as_deref(), Some("localhost")),
            other => panic!("expected a stream header, got {other:?}"),
        }
    }

    async fn element(&mut self) -> Element {
        match self.event().await {
            StreamEvent::Element(e) => e,
            other => panic!("expected an element, got {other:?}"),
        }
    }

    async fn send(&mut self, s: &str) {
        self.io.write_all(s.as_bytes()).await.expect("mock write");
        self.io.flush().await.expect("mock flush");
    }

    /// SASL (expecting `mech`, answering success), restart, bind and presence.
    async fn finish_session(&mut self, mech: &str) -> Element {
        self.send(&features_sasl(&[mech])).await;
        let auth = self.element().await;
        assert!(auth.is("auth", ns::SASL), "{}", auth.raw);
        self.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .await;
        self.header().await;
        self.send(HEADER).await;
        self.send(FEATURES_BIND).await;
        let bind = self.element().await;
        assert!(bind.is("iq", ns::CLIENT));
        let id = bind.attrs.id.clone().unwrap();
        let tree = bind.tree().unwrap();
        let res = tree
            .child("bind", ns::BIND)
            .and_then(|b| b.child("resource", ns::BIND))
            .map(|r| r.text.clone())
            .unwrap();
        self.send(&format!(
            "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>alice@localhost/{res}</jid></bind></iq>"
        ))
        .await;
        let presence = self.element().await;
        assert_eq!(presence.raw, "<presence/>");
        auth
    }
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

fn config(server: &str) -> XmppConfig {
    XmppConfig {
        server: server.to_owned(),
        jid: "alice@localhost".into(),
        password: Some("secret".into()),
        step_timeout_secs: 2,
        connect_timeout_secs: 2,
        keepalive_secs: 0,
        ..XmppConfig::default()
    }
}

fn acceptor(pki: &TestPki, cert: &std::path::Path, require_client: bool) -> SslAcceptor {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    b.set_certificate_chain_file(cert).unwrap();
    b.set_private_key_file(&pki.server_key, SslFiletype::PEM)
        .unwrap();
    b.set_ca_file(&pki.ca).unwrap();
    if require_client {
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    b.build()
}

async fn tls_accept(acc: &SslAcceptor, tcp: TcpStream) -> SslStream<TcpStream> {
    let ssl = Ssl::new(acc.context()).unwrap();
    let mut s = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut s).accept().await.expect("mock TLS accept");
    s
}

/// A plain-TCP session (only with `require_tls = false`) up to bound presence.
async fn plain_server(l: TcpListener) -> Peer<TcpStream> {
    let (tcp, _) = l.accept().await.unwrap();
    let mut p = Peer::new(tcp);
    p.header().await;
    p.send(HEADER).await;
    let auth = p.finish_session("PLAIN").await;
    let b64 = auth.tree().unwrap().text;
    let decoded = openssl::base64::decode_block(&b64).unwrap();
    assert_eq!(decoded, b"\0alice\0secret");
    p
}

#[tokio::test]
async fn a_server_without_starttls_is_refused_by_default() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut p = Peer::new(tcp);
        p.header().await;
        p.send(HEADER).await;
        p.send(&features_sasl(&["PLAIN"])).await;
        // The client must hang up without sending credentials.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), p.io.read_to_end(&mut rest)).await;
        assert!(
            !String::from_utf8_lossy(&rest).contains("<auth"),
            "credentials leaked"
        );
    });
    let e = XmppClient::connect(&config(&addr)).await.unwrap_err();
    assert!(matches!(e, XmppError::TlsNotOffered), "{e:?}");
    assert!(!e.is_retryable());
    server.await.unwrap();
}

#[tokio::test]
async fn a_plain_stream_works_when_explicitly_allowed() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut p = plain_server(l).await;
        p.send("<message from='bob@localhost/IEC' id='m'><body>hi</body></message>")
            .await;
        let echo = p.element().await;
        assert!(echo.raw.contains("back"), "{}", echo.raw);
        p
    });
    let mut cfg = config(&addr);
    cfg.require_tls = false;
    let mut c = XmppClient::connect(&cfg).await.unwrap();
    assert_eq!(c.jid(), "alice@localhost/IEC");
    assert!(c.tls_info().is_none());
    let m = c.recv().await.unwrap();
    assert_eq!(m.kind, StanzaKind::Message);
    assert_eq!(m.from.as_deref(), Some("bob@localhost/IEC"));
    c.send(
        &write::message(
            MessageType::Normal,
            None,
            "bob@localhost/IEC",
            "<body>back</body>",
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let _p = server.await.unwrap();
}

#[tokio::test]
async fn octets_after_proceed_are_refused_as_an_injection() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut p = Peer::new(tcp);
        p.header().await;
        p.send(HEADER).await;
        p.send(FEATURES_TLS).await;
        let st = p.element().await;
        assert!(st.is("starttls", ns::TLS));
        // A man in the middle appends plaintext after <proceed/>.
        p.send(
            "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
             <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        )
        .await;
    });
    let e = XmppClient::connect(&config(&addr)).await.unwrap_err();
    assert!(matches!(e, XmppError::StartTlsInjection), "{e:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_silent_server_times_out_in_the_step() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        drop(tcp);
    });
    let mut cfg = config(&addr);
    cfg.step_timeout_secs = 1;
    let t0 = Instant::now();
    let e = XmppClient::connect(&cfg).await.unwrap_err();
    assert!(
        matches!(
            e,
            XmppError::Timeout {
                step: "stream header"
            }
        ),
        "{e:?}"
    );
    assert!(e.is_retryable());
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    server.abort();
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let (l, addr) = listener().await;
    drop(l);
    let e = XmppClient::connect(&config(&addr)).await.unwrap_err();
    assert!(matches!(e, XmppError::Connect { .. }), "{e:?}");
    assert!(e.is_retryable());
}

fn pki() -> (TestPki, std::path::PathBuf) {
    let dir = temp_dir("secmms-xmpp-mock").unwrap();
    (TestPki::new(&dir, &["localhost"]).unwrap(), dir)
}

/// STARTTLS and the TLS handshake on the server side.
async fn tls_server_start(l: &TcpListener, acc: &SslAcceptor) -> Peer<SslStream<TcpStream>> {
    let (tcp, _) = l.accept().await.unwrap();
    let mut p = Peer::new(tcp);
    p.header().await;
    p.send(HEADER).await;
    p.send(FEATURES_TLS).await;
    let st = p.element().await;
    assert!(st.is("starttls", ns::TLS));
    p.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    let tls = tls_accept(acc, p.io).await;
    let mut p = Peer::new(tls);
    p.header().await;
    p.send(HEADER).await;
    p
}

#[tokio::test]
async fn sasl_external_sends_an_empty_response_over_tls_with_the_client_certificate() {
    let (pki, dir) = pki();
    let (cert, key) = pki.issue_client_cert("alice@localhost").unwrap();
    let acc = acceptor(&pki, &pki.server_cert, true);
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut p = tls_server_start(&l, &acc).await;
        let peer_cn =
            p.io.ssl()
                .peer_certificate()
                .and_then(|c| {
                    c.subject_name()
                        .entries()
                        .next()
                        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
                })
                .unwrap();
        let auth = p.finish_session("EXTERNAL").await;
        (peer_cn, auth.raw)
    });
    let cfg = XmppConfig {
        sasl: SaslMechanism::External,
        password: None,
        cert: Some(cert),
        key: Some(key),
        ca: vec![pki.ca.clone()],
        ..config(&addr)
    };
    let c = XmppClient::connect(&cfg).await.unwrap();
    assert_eq!(c.jid(), "alice@localhost/IEC");
    assert!(c.tls_info().is_some());
    let (peer_cn, auth) = server.await.unwrap();
    assert_eq!(peer_cn, "alice@localhost");
    assert_eq!(
        auth,
        "<auth xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\" mechanism=\"EXTERNAL\">=</auth>"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let dir = temp_dir("secmms-xmpp-mock").unwrap();
    // A PKI whose server certificate names other.example (and 127.0.0.1), not localhost.
    let other = TestPki::new(&dir, &["other.example"]).unwrap();
    let acc = {
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        b.set_certificate_chain_file(&other.server_cert).unwrap();
        b.set_private_key_file(&other.server_key, SslFiletype::PEM)
            .unwrap();
        b.build()
    };
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut p = Peer::new(tcp);
        p.header().await;
        p.send(HEADER).await;
        p.send(FEATURES_TLS).await;
        let _ = p.element().await;
        p.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        let ssl = Ssl::new(acc.context()).unwrap();
        let mut s = SslStream::new(ssl, p.io).unwrap();
        let _ = Pin::new(&mut s).accept().await;
    });
    // Trust the other PKI's CA: the chain is fine, only the name is wrong.
    let cfg = XmppConfig {
        ca: vec![other.ca.clone()],
        ..config(&addr)
    };
    let e = XmppClient::connect(&cfg).await.unwrap_err();
    match &e {
        XmppError::Certificate { reason } => assert!(reason.contains("mismatch"), "{reason}"),
        other => panic!("expected Certificate, got {other:?}"),
    }
    let _ = server.await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_dead_link_is_detected_by_the_keepalive() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut p = plain_server(l).await;
        // Read pings but never answer them.
        let mut pings = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), p.event()).await {
                Ok(StreamEvent::Element(e)) if e.raw.contains(ns::PING) => pings += 1,
                Ok(StreamEvent::End) | Err(_) => return pings,
                Ok(_) => {}
            }
        }
    });
    let mut cfg = config(&addr);
    cfg.require_tls = false;
    cfg.keepalive_secs = 1;
    cfg.ping_timeout_secs = 1;
    let mut c = XmppClient::connect(&cfg).await.unwrap();
    let t0 = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(8), c.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            e,
            XmppError::Timeout {
                step: "keep-alive ping"
            }
        ),
        "{e:?}"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(matches!(c.recv().await, Err(XmppError::Closed)));
    assert!(matches!(
        c.send("<presence/>").await,
        Err(XmppError::Closed)
    ));
    let pings = server.await.unwrap();
    assert!(pings >= 1, "no keep-alive ping was sent");
}

#[tokio::test]
async fn a_stream_error_ends_the_link_with_its_condition() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut p = plain_server(l).await;
        p.send(
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text>\
             </stream:error></stream:stream>",
        )
        .await;
        p
    });
    let mut cfg = config(&addr);
    cfg.require_tls = false;
    let mut c = XmppClient::connect(&cfg).await.unwrap();
    let e = c.recv().await.unwrap_err();
    match &e {
        XmppError::StreamErrorReceived { condition, text } => {
            assert_eq!(condition, "conflict");
            assert_eq!(text.as_deref(), Some("Replaced by new connection"));
        }
        other => panic!("expected StreamErrorReceived, got {other:?}"),
    }
    assert!(!e.is_retryable(), "conflict must not be retried");
    assert!(matches!(c.recv().await, Err(XmppError::Closed)));
    let _p = server.await.unwrap();
}

#[tokio::test]
async fn an_oversized_stanza_from_the_server_ends_the_link() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut p = plain_server(l).await;
        p.send("<message id='small'/>").await;
        let big = format!("<message><body>{}</body></message>", "x".repeat(30_000));
        let _ = p.io.write_all(big.as_bytes()).await;
        p
    });
    let mut cfg = config(&addr);
    cfg.require_tls = false;
    cfg.max_stanza_size = 20_000;
    let mut c = XmppClient::connect(&cfg).await.unwrap();
    assert_eq!(c.recv().await.unwrap().id.as_deref(), Some("small"));
    let e = c.recv().await.unwrap_err();
    assert!(
        matches!(
            e,
            XmppError::Stream(secmms_xmpp::stream::StreamError::StanzaTooLarge { limit: 20_000 })
        ),
        "{e:?}"
    );
    let _p = server.await.unwrap();
}

#[tokio::test]
async fn server_pings_are_answered_and_not_passed_on() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut p = plain_server(l).await;
        // Whitespace keep-alives around the ping are ignored.
        p.send(" \n<iq type='get' id='s1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>\t ")
            .await;
        let pong = p.element().await;
        p.send("<message id='after-ping'/>").await;
        pong
    });
    let mut cfg = config(&addr);
    cfg.require_tls = false;
    let mut c = XmppClient::connect(&cfg).await.unwrap();
    let first = c.recv().await.unwrap();
    assert_eq!(first.id.as_deref(), Some("after-ping"));
    let pong = server.await.unwrap();
    assert_eq!(pong.raw, "<iq type=\"result\" id=\"s1\" to=\"localhost\"/>");
}

#[tokio::test]
async fn send_accepts_only_single_stanzas() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move { plain_server(l).await });
    let mut cfg = config(&addr);
    cfg.require_tls = false;
    let c = XmppClient::connect(&cfg).await.unwrap();
    for bad in [
        "</stream:stream>",
        "<message/></stream:stream>",
        "<message/><message/>",
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AA==</auth>",
        "<message>",
        "<message><!-- x --></message>",
    ] {
        let r = c.send(bad).await;
        assert!(matches!(r, Err(XmppError::BadStanza(_))), "{bad}: {r:?}");
    }
    c.send("<message to='bob@localhost'/>").await.unwrap();
    let mut p = server.await.unwrap();
    assert_eq!(p.element().await.raw, "<message to='bob@localhost'/>");
}

#[tokio::test]
async fn close_ends_both_streams() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut p = plain_server(l).await;
        assert_eq!(p.event().await, StreamEvent::End);
        p.send("</stream:stream>").await;
    });
    let mut cfg = config(&addr);
    cfg.require_tls = false;
    let c = XmppClient::connect(&cfg).await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), c.close())
        .await
        .unwrap()
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn stanzas_before_malformed_xml_are_delivered_then_the_error() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut p = plain_server(l).await;
        p.send("<message id='ok'/><message><!DOCTYPE x></message>")
            .await;
        p
    });
    let mut cfg = config(&addr);
    cfg.require_tls = false;
    let mut c = XmppClient::connect(&cfg).await.unwrap();
    assert_eq!(c.recv().await.unwrap().id.as_deref(), Some("ok"));
    let e = c.recv().await.unwrap_err();
    assert!(
        matches!(
            e,
            XmppError::Stream(secmms_xmpp::stream::StreamError::Doctype)
        ),
        "{e:?}"
    );
    assert!(matches!(c.recv().await, Err(XmppError::Closed)));
    let _p = server.await.unwrap();
}

/// A slow application is not a dead link: while the receive queue is full the reader stops
/// reading, and the keep-alive must not count that silence against the server.
#[tokio::test]
async fn a_slow_consumer_does_not_trip_the_keepalive() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut p = plain_server(l).await;
        for i in 0..400 {
            p.send(&format!("<message id='m{i}'/>")).await;
        }
        // Answer pings from now on.
        loop {
            match tokio::time::timeout(Duration::from_secs(6), p.event()).await {
                Ok(StreamEvent::Element(e)) if e.raw.contains(ns::PING) => {
                    let id = e.attrs.id.clone().unwrap_or_default();
                    p.send(&format!("<iq type='result' id='{id}'/>")).await;
                }
                Ok(StreamEvent::Element(_)) => {}
                _ => return,
            }
        }
    });
    let mut cfg = config(&addr);
    cfg.require_tls = false;
    cfg.keepalive_secs = 1;
    cfg.ping_timeout_secs = 1;
    let mut c = XmppClient::connect(&cfg).await.unwrap();
    // Take nothing for longer than keep-alive + ping timeout while 400 stanzas wait.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    for i in 0..400 {
        let s = tokio::time::timeout(Duration::from_secs(5), c.recv())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("stanza {i}: {e:?}"));
        assert_eq!(s.id, Some(format!("m{i}")));
    }
    drop(c);
    let _ = server.await;
}

#[tokio::test]
async fn configuration_errors_come_before_any_traffic() {
    let (l, addr) = listener().await;
    let cfg = XmppConfig {
        ca: vec!["/nonexistent/ca.pem".into()],
        ..config(&addr)
    };
    let e = XmppClient::connect(&cfg).await.unwrap_err();
    assert!(matches!(e, XmppError::Config { field: "ca", .. }), "{e:?}");
    assert!(!e.is_retryable());
    // Nobody connected.
    let accepted = tokio::time::timeout(Duration::from_millis(200), l.accept()).await;
    assert!(accepted.is_err());
    let cfg = XmppConfig {
        sasl: SaslMechanism::External,
        ..config(&addr)
    };
    assert!(matches!(
        XmppClient::connect(&cfg).await,
        Err(XmppError::Config { field: "cert", .. })
    ));
}
