//! The sans-IO relay splice with a fake clock and no runtime: a client, the splice and a server
//! wired together in memory. Establishment with titles and user data carried through, data both
//! ways, release, context renumbering, every tap action, no route, a refusal from the next hop,
//! an unreachable next hop, aborts and closed transports in either direction, and the
//! establishment and idle timeouts.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms_ber::Oid;
use secmms_osi::acse::{
    abort_diagnostic, associate_result, user_diagnostic, External, ExternalEncoding,
    SourceDiagnostic,
};
use secmms_osi::security::AbortRequest;
use secmms_osi::{AbortOrigin, Association, OsiConfig, OsiEvent, RejectReason};
use secmms_profiles::relay::{
    Ending, Hop, Splice, SpliceEvent, SpliceTimeouts, Tap, TapAction, TapContext,
};

const SETUP: Duration = Duration::from_secs(20);
const IDLE: Duration = Duration::from_secs(60);

fn oid(s: &str) -> Oid {
    s.parse().unwrap()
}

/// A BER TLV with `tag` and `len` content octets, so every layer sees valid encodings.
fn pdu(tag: u32, len: usize, fill: u8) -> Vec<u8> {
    let mut w = secmms_ber::Writer::new();
    w.tlv(secmms_ber::Tag::context(tag, false), &vec![fill; len]);
    w.finish()
}

struct Net {
    client: Association,
    relay: Splice,
    server: Association,
    t: Instant,
    events: Vec<SpliceEvent>,
}

impl Net {
    fn with(
        client: OsiConfig,
        relay_up: OsiConfig,
        server: OsiConfig,
        tap: Option<Arc<dyn Tap>>,
    ) -> Net {
        let t = Instant::now();
        Net {
            client: Association::initiator(client),
            relay: Splice::new(
                relay_up,
                OsiConfig::default(),
                tap,
                Arc::new(AtomicU64::new(1)),
                SpliceTimeouts {
                    associate: SETUP,
                    idle: Some(IDLE),
                },
                t,
            ),
            server: Association::responder(server),
            t,
            events: Vec::new(),
        }
    }

    fn new() -> Net {
        // The server names itself in its AARE; the relay does not, but carries the title.
        let server = OsiConfig {
            send_responding_titles: true,
            ..OsiConfig::server_default()
        };
        Net::with(
            OsiConfig::default(),
            OsiConfig::server_default(),
            server,
            None,
        )
    }

    /// Moves bytes until nothing is queued anywhere; answers `Route` by connecting the next hop.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(b) = self.client.poll_transmit() {
                self.relay.handle_input(Hop::Up, &b, self.t);
                moved = true;
            }
            while let Some(b) = self.relay.poll_transmit(Hop::Up) {
                let _ = self.client.handle_input(&b);
                moved = true;
            }
            while let Some(b) = self.relay.poll_transmit(Hop::Down) {
                let _ = self.server.handle_input(&b);
                moved = true;
            }
            while let Some(b) = self.server.poll_transmit() {
                self.relay.handle_input(Hop::Down, &b, self.t);
                moved = true;
            }
            while let Some(ev) = self.relay.poll_event() {
                if let SpliceEvent::Route { .. } = ev {
                    self.relay.connect_down().unwrap();
                    moved = true;
                }
                self.events.push(ev);
            }
            if !moved {
                return;
            }
        }
    }

    /// Associates: the server accepts with `rsp`; returns the server's indication.
    fn associate(&mut self, req: Vec<u8>, rsp: Vec<u8>) -> OsiEvent {
        self.client.connect(req).unwrap();
        self.pump();
        let ind = self.server.poll_event().expect("AARQ reached the server");
        self.server.accept(rsp).unwrap();
        self.pump();
        ind
    }
}

fn events(a: &mut Association) -> Vec<OsiEvent> {
    std::iter::from_fn(|| a.poll_event()).collect()
}

fn data(evs: &[OsiEvent]) -> Vec<(u32, Vec<u8>)> {
    evs.iter()
        .filter_map(|e| match e {
            OsiEvent::Data { context_id, pdu } => Some((*context_id, pdu.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn association_data_and_release_cross_the_splice_unchanged() {
    let mut n = Net::new();
    let (req, rsp) = (pdu(8, 300, 0x11), pdu(9, 200, 0x22));
    let ind = n.associate(req.clone(), rsp.clone());
    let OsiEvent::AssociateIndication { aarq, user_data } = ind else {
        panic!("{ind:?}")
    };
    assert_eq!(user_data.as_deref(), Some(&req[..]));
    // The titles are the client's, not the relay's own.
    let client_cfg = OsiConfig::default();
    assert_eq!(
        secmms_osi::acse::form2_ap_title(&aarq.calling_ap_title).cloned(),
        client_cfg.local_ap_title
    );
    assert_eq!(
        secmms_osi::acse::form2_ae_qualifier(&aarq.calling_ae_qualifier),
        client_cfg.local_ae_qualifier
    );
    assert_eq!(
        n.events[..2],
        [
            SpliceEvent::Route {
                called_ap_title: client_cfg.remote_ap_title.clone(),
                called_ae_qualifier: client_cfg.remote_ae_qualifier,
            },
            SpliceEvent::Established
        ]
    );
    assert_eq!(n.relay.number(), 1);
    let ev = events(&mut n.client);
    let [OsiEvent::AssociateConfirm { aare, user_data }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(user_data.as_deref(), Some(&rsp[..]));
    assert_eq!(
        secmms_osi::acse::form2_ap_title(&aare.responding_ap_title).cloned(),
        OsiConfig::server_default().local_ap_title
    );

    // Data both ways, several PDUs in one burst.
    let up: Vec<Vec<u8>> = (0..5).map(|i| pdu(0, 50 + i, i as u8)).collect();
    for p in &up {
        n.client.send_data(p).unwrap();
    }
    n.pump();
    let got = data(&events(&mut n.server));
    assert_eq!(got.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(), up);
    let down = pdu(1, 4000, 0x33);
    n.server.send_data(&down).unwrap();
    n.pump();
    assert_eq!(data(&events(&mut n.client))[0].1, down);
    assert_eq!(n.relay.forwarded(), 6);

    // Release: RLRQ through, RLRE back, both carrying their user data.
    n.client.release(Some(pdu(11, 3, 0x44))).unwrap();
    n.pump();
    let ev = events(&mut n.server);
    let [OsiEvent::ReleaseIndication { user_data, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(user_data.as_deref(), Some(&pdu(11, 3, 0x44)[..]));
    n.server.release_response(Some(pdu(12, 3, 0x55))).unwrap();
    n.pump();
    let ev = events(&mut n.client);
    assert!(
        matches!(ev.first(), Some(OsiEvent::ReleaseConfirm { user_data: Some(u), .. }) if u == &pdu(12, 3, 0x55)),
        "{ev:?}"
    );
    assert_eq!(n.events.last(), Some(&SpliceEvent::Ended(Ending::Released)));
    assert!(n.relay.is_done());
    assert_eq!(n.relay.poll_timeout(), None);
}

#[test]
fn presentation_contexts_are_renumbered_by_abstract_syntax() {
    let (x, y) = (oid("1.2.3.4"), oid("1.2.3.5"));
    // The client proposes X then Y; the relay accepts only Y, so Y has a different context
    // number on each hop.
    let client = OsiConfig {
        extra_abstract_syntaxes: vec![x, y.clone()],
        ..OsiConfig::default()
    };
    let relay_up = OsiConfig {
        extra_abstract_syntaxes: vec![y.clone()],
        ..OsiConfig::server_default()
    };
    let server = OsiConfig {
        extra_abstract_syntaxes: vec![y.clone()],
        ..OsiConfig::server_default()
    };
    let mut n = Net::with(client, relay_up, server, None);
    n.associate(pdu(8, 10, 1), pdu(9, 10, 2));
    events(&mut n.client);
    let up_id = n.client.context_id(&y).unwrap();
    let down_id = n.server.context_id(&y).unwrap();
    assert_ne!(up_id, down_id, "the test needs different numbers");
    assert_eq!(n.relay.up().context_id(&y), Some(up_id));
    n.client.send_data_on(up_id, &pdu(3, 7, 9)).unwrap();
    n.pump();
    assert_eq!(data(&events(&mut n.server)), vec![(down_id, pdu(3, 7, 9))]);
    n.server.send_data_on(down_id, &pdu(4, 7, 8)).unwrap();
    n.pump();
    assert_eq!(data(&events(&mut n.client)), vec![(up_id, pdu(4, 7, 8))]);
}

/// Index 0 rewritten, 1 dropped, 2 doubled, 3 aborts the destination with a diagnostic.
struct Script;

impl Tap for Script {
    fn on_data(&self, ctx: TapContext, pdu: Vec<u8>) -> Vec<TapAction> {
        assert_eq!(ctx.association, 1);
        assert!(ctx.from_initiator);
        match ctx.index {
            0 => vec![TapAction::Send(vec![0x80, 0x01, 0xFF])],
            1 => vec![],
            2 => vec![TapAction::Send(pdu.clone()), TapAction::Send(pdu)],
            _ => vec![TapAction::Abort(AbortRequest {
                diagnostic: Some(abort_diagnostic::AUTHENTICATION_FAILURE),
                user_information: Vec::new(),
            })],
        }
    }
}

#[test]
fn every_tap_action() {
    let mut n = Net::with(
        OsiConfig::default(),
        OsiConfig::server_default(),
        OsiConfig::server_default(),
        Some(Arc::new(Script)),
    );
    n.associate(pdu(8, 10, 1), pdu(9, 10, 2));
    events(&mut n.client);
    for i in 0..3u8 {
        n.client.send_data(&pdu(0, 5, i)).unwrap();
    }
    n.pump();
    let got: Vec<Vec<u8>> = data(&events(&mut n.server))
        .into_iter()
        .map(|d| d.1)
        .collect();
    assert_eq!(
        got,
        vec![vec![0x80, 0x01, 0xFF], pdu(0, 5, 2), pdu(0, 5, 2)]
    );
    assert_eq!(n.relay.forwarded(), 3);
    n.client.send_data(&pdu(0, 5, 3)).unwrap();
    n.pump();
    let ev = events(&mut n.server);
    let Some(OsiEvent::AbortIndication(info)) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        info.abrt.as_ref().unwrap().diagnostic,
        Some(abort_diagnostic::AUTHENTICATION_FAILURE)
    );
    assert!(matches!(
        events(&mut n.client).first(),
        Some(OsiEvent::AbortIndication(_))
    ));
    assert_eq!(n.events.last(), Some(&SpliceEvent::Ended(Ending::Aborted)));
}

#[test]
fn no_route_is_a_permanent_rejection() {
    let mut n = Net::new();
    n.client.connect(pdu(8, 10, 1)).unwrap();
    while let Some(b) = n.client.poll_transmit() {
        n.relay.handle_input(Hop::Up, &b, n.t);
        while let Some(b) = n.relay.poll_transmit(Hop::Up) {
            n.client.handle_input(&b).unwrap();
        }
    }
    assert!(matches!(
        n.relay.poll_event(),
        Some(SpliceEvent::Route { .. })
    ));
    assert!(n.relay.is_routing());
    n.relay.no_route();
    while let Some(b) = n.relay.poll_transmit(Hop::Up) {
        n.client.handle_input(&b).unwrap();
    }
    assert_eq!(
        n.relay.poll_event(),
        Some(SpliceEvent::Ended(Ending::Refused))
    );
    let ev = events(&mut n.client);
    let Some(OsiEvent::AssociateRejected {
        reason: RejectReason::Acse { result, diagnostic },
        ..
    }) = ev.first()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*result, associate_result::REJECTED_PERMANENT);
    assert_eq!(
        *diagnostic,
        SourceDiagnostic::ServiceUser(user_diagnostic::CALLED_AP_TITLE_NOT_RECOGNIZED)
    );
    assert!(n.relay.poll_transmit(Hop::Down).is_none());
}

#[test]
fn next_hop_refusal_goes_back_as_it_came() {
    let mut n = Net::new();
    n.client.connect(pdu(8, 10, 1)).unwrap();
    n.pump();
    assert!(matches!(
        n.server.poll_event(),
        Some(OsiEvent::AssociateIndication { .. })
    ));
    let diag = SourceDiagnostic::ServiceUser(user_diagnostic::CALLING_AP_TITLE_NOT_RECOGNIZED);
    n.server
        .reject(
            associate_result::REJECTED_TRANSIENT,
            diag,
            Some(pdu(9, 4, 7)),
        )
        .unwrap();
    n.pump();
    let ev = events(&mut n.client);
    let Some(OsiEvent::AssociateRejected {
        reason: RejectReason::Acse { result, diagnostic },
        user_data,
        ..
    }) = ev.first()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*result, associate_result::REJECTED_TRANSIENT);
    assert_eq!(*diagnostic, diag);
    assert_eq!(user_data.as_deref(), Some(&pdu(9, 4, 7)[..]));
    assert_eq!(n.events.last(), Some(&SpliceEvent::Ended(Ending::Refused)));
}

#[test]
fn unreachable_next_hop_aborts_the_previous_one() {
    let mut n = Net::new();
    n.client.connect(pdu(8, 10, 1)).unwrap();
    while let Some(b) = n.client.poll_transmit() {
        n.relay.handle_input(Hop::Up, &b, n.t);
        while let Some(b) = n.relay.poll_transmit(Hop::Up) {
            n.client.handle_input(&b).unwrap();
        }
    }
    assert!(matches!(
        n.relay.poll_event(),
        Some(SpliceEvent::Route { .. })
    ));
    n.relay
        .next_hop_failed("next hop 192.0.2.1:102: refused".into());
    assert_eq!(
        n.relay.poll_event(),
        Some(SpliceEvent::Failed(
            "next hop 192.0.2.1:102: refused".into()
        ))
    );
    while let Some(b) = n.relay.poll_transmit(Hop::Up) {
        let _ = n.client.handle_input(&b);
    }
    assert!(n.client.is_closed());
}

/// An ABRT from either end reaches the other end with its user information.
#[test]
fn aborts_cross_in_both_directions() {
    let ui = External {
        direct_reference: None,
        indirect_reference: Some(3),
        data_value_descriptor: None,
        encoding: ExternalEncoding::SingleAsn1Type(pdu(5, 6, 0x66)),
        raw: Vec::new(),
    };
    for from_client in [true, false] {
        let mut n = Net::new();
        n.associate(pdu(8, 10, 1), pdu(9, 10, 2));
        events(&mut n.client);
        let req = AbortRequest {
            diagnostic: None,
            user_information: vec![ui.clone()],
        };
        let (from, to) = if from_client {
            (&mut n.client, &mut n.server)
        } else {
            (&mut n.server, &mut n.client)
        };
        from.abort_with(req).unwrap();
        let _ = to;
        n.pump();
        let to = if from_client {
            &mut n.server
        } else {
            &mut n.client
        };
        let ev = events(to);
        let Some(OsiEvent::AbortIndication(info)) = ev.first() else {
            panic!("{ev:?}")
        };
        assert_eq!(info.origin, AbortOrigin::PeerUser);
        let got = &info.abrt.as_ref().unwrap().user_information;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].encoding, ui.encoding);
        assert_eq!(n.events.last(), Some(&SpliceEvent::Ended(Ending::Aborted)));
    }
}

#[test]
fn a_closed_transport_aborts_the_other_hop() {
    for hop in [Hop::Up, Hop::Down] {
        let mut n = Net::new();
        n.associate(pdu(8, 10, 1), pdu(9, 10, 2));
        events(&mut n.client);
        n.relay.transport_closed(hop, n.t);
        let (out, peer) = match hop {
            Hop::Up => (Hop::Down, &mut n.server),
            Hop::Down => (Hop::Up, &mut n.client),
        };
        let mut saw = false;
        while let Some(b) = n.relay.poll_transmit(out) {
            let _ = peer.handle_input(&b);
            saw = true;
        }
        assert!(saw, "{hop:?}: nothing sent to the other hop");
        assert!(matches!(
            events(peer).first(),
            Some(OsiEvent::AbortIndication(_))
        ));
        assert_eq!(
            n.relay.poll_event(),
            Some(SpliceEvent::Ended(Ending::Aborted))
        );
        assert!(n.relay.is_done());
    }
}

#[test]
fn establishment_and_idle_timeouts() {
    // No AARE from the next hop: the establishment deadline aborts both hops.
    let mut n = Net::new();
    assert_eq!(n.relay.poll_timeout(), Some(n.t + SETUP));
    n.client.connect(pdu(8, 10, 1)).unwrap();
    n.pump();
    assert!(n.relay.down().is_some());
    n.relay
        .handle_timeout(n.t + SETUP - Duration::from_millis(1));
    assert!(!n.relay.is_done(), "early wake-up does nothing");
    n.relay.handle_timeout(n.t + SETUP);
    assert_eq!(
        n.relay.poll_event(),
        Some(SpliceEvent::Failed(
            "association establishment timed out".into()
        ))
    );
    assert!(n.relay.poll_transmit(Hop::Up).is_some());
    assert!(n.relay.poll_transmit(Hop::Down).is_some());

    // Established: the idle deadline moves with traffic in either direction.
    let mut n = Net::new();
    n.associate(pdu(8, 10, 1), pdu(9, 10, 2));
    events(&mut n.client);
    assert_eq!(n.relay.poll_timeout(), Some(n.t + IDLE));
    n.t += Duration::from_secs(30);
    n.server.send_data(&pdu(0, 3, 3)).unwrap();
    n.pump();
    assert_eq!(n.relay.poll_timeout(), Some(n.t + IDLE));
    n.relay.handle_timeout(n.t + IDLE - Duration::from_secs(1));
    assert!(!n.relay.is_done());
    n.relay.handle_timeout(n.t + IDLE);
    n.pump();
    assert_eq!(
        n.events.last(),
        Some(&SpliceEvent::Failed("idle timeout".into()))
    );
    assert!(matches!(
        events(&mut n.client).last(),
        Some(OsiEvent::AbortIndication(_) | OsiEvent::Closed)
    ));
    assert!(matches!(
        events(&mut n.server).first(),
        Some(OsiEvent::AbortIndication(_))
    ));
}
