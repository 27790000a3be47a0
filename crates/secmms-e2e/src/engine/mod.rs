//! The association engine (§13–14): handshake, negotiation, data transfer, key refresh, release
//! and aborts, for the client ([`E2eClient`]) and server ([`E2eServer`]) roles.
//!
//! The engine is sans-IO: it takes SecPDU octets plus the current time and returns SecPDU octets
//! to send and [`Output`]s for the protected protocol. The octets are BER (clause 15) or UTF-8
//! XML (clause 16), as [`E2eConfig::encoding`](crate::E2eConfig::encoding) says; the checks are
//! the same, and signatures, ICVs and the AAD always cover the octets as sent or received.
//! Randomness comes from the [`RandomSource`] passed in. Every exception yields a
//! [`SecurityEvent`] (queued, see [`E2eClient::poll_event`]) and, where clause 14 says so, a
//! signed reject or abort to send ([`Rejection::reply`]).
//!
//! # Layout
//!
//! * `client.rs`, `server.rs` — the two roles' public types; `common.rs` — the API they share.
//! * `handshake.rs` — the one check of a received HandshakeReq or HandshakeAcc (§14.3 steps
//!   1–14); `negotiation.rs` — offering and selecting the protection mode (§13.3.1.5).
//! * `verify.rs` — the signed-area checks every signed SecPDU goes through, and the generic
//!   checks of ClearToken3 PDUs.
//! * `record.rs` — the record layer: protecting and unprotecting transfers (§13.2, §13.4, §14.4).
//! * `rekey.rs` — key refresh bookkeeping and the engine's timers (§13.3.2).
//! * `release.rs` — release, aborts and the dispatch of every SecPDU after the handshake.
//! * `base.rs` — what both roles share (encoding, signing, events, rejecting); `error.rs` —
//!   [`E2eError`], [`Rejection`] and the internal failure type.

use std::collections::VecDeque;

use openssl::pkey::{PKey, Public};
use openssl::x509::X509;
use secmms_ber::{Limits, Reader, Tag};
use secmms_pki::cert::{split_pki_path, CertError, PeerIdentity};
use secmms_pki::crypto::{
    self, CryptoError, DhGroup, EphemeralKey, RandomSource, SignatureAlgorithm,
    GCM_DEFAULT_TAG_LEN, GCM_NONCE_LEN,
};
use secmms_pki::event::SecurityEvent;
use zeroize::Zeroizing;

use crate::alg::{self, AeAlg, EncrAlg, IcvAlg};
use crate::config::{
    group_from_number, group_number, Context, EncryptionPolicy, ModeOffer, WireEncoding,
};
use crate::diag::{Diagnostic, DtDiagnostic, HandshakeDiagnostic};
use crate::events::{self, acc, dt, generic, req, DtCheck, EventDef, Generic};
use crate::keys::{self, DirKeys, KeySet, ProtectionMode};
use crate::limits::{self, XmlLimits};
use crate::pdu::*;
use crate::time::TimeStamp;
use crate::xml;

#[macro_use]
mod common;
mod base;
mod client;
mod error;
mod handshake;
mod negotiation;
mod record;
mod rekey;
mod release;
mod server;
mod verify;

pub use client::E2eClient;
pub use error::{E2eError, Rejection};
pub use record::{open_transfer, OpenError};
pub use server::E2eServer;

use error::{dfail, fail, hfail, Fail, R};
use negotiation::{client_check_selection, offer_mode, selection_mode, server_select};
use record::check_prpdu;
use rekey::Rekey;
use verify::SignedDefs;

/// The role of an association end in the E2E handshake (clause 14): the one that sends
/// HandshakeReq or the one that answers it, whatever the transport below (over XMPP both ends are
/// clients of the XMPP server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends HandshakeReq.
    Client,
    /// Answers with HandshakeAcc.
    Server,
}

/// Association state (§13.1.1 phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Client: nothing sent yet. Server: waiting for HandshakeReq.
    Idle,
    /// Client: HandshakeReq sent.
    AwaitAcc,
    /// Server: HandshakeReq accepted by security, waiting for [`E2eServer::accept`] or
    /// [`E2eServer::appl_reject`].
    AwaitLocalAccept,
    /// Data transfer.
    Established,
    /// ReleaseReq sent.
    ReleaseSent,
    /// ReleaseReq received, waiting for [`E2eClient::release_rsp`].
    ReleaseReceived,
    /// Both ends sent ReleaseReq (release collision, spec §16.5 DECISION): each must send its
    /// ReleaseRsp and receive the peer's before the association is over. Which goes first is
    /// the environment's rule ([`Role::Client`] answers at once, the server after the
    /// client's ReleaseRsp).
    ReleaseCollision,
    /// Terminated (released, rejected or aborted).
    Closed,
}

/// What a received SecPDU means for the protected protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Server: a valid HandshakeReq; `appl_data` is the PrPDU (MMS Initiate-Request). Answer
    /// with [`E2eServer::accept`] or [`E2eServer::appl_reject`].
    HandshakeRequested {
        /// applData.
        appl_data: Option<Vec<u8>>,
        /// The peer's certificate identity (Annex G.6).
        peer: Option<PeerIdentity>,
    },
    /// Client: the association is established; `appl_data` is the PrPDU (Initiate-Response).
    Established {
        /// applData.
        appl_data: Option<Vec<u8>>,
    },
    /// Client: the server's protected protocol rejected the association.
    ApplicationRejected {
        /// applData (Initiate-Error).
        appl_data: Option<Vec<u8>>,
    },
    /// Client: the server's security rejected the HandshakeReq.
    SecurityRejected {
        /// The diagnostic, absent when the server raised an alarm.
        diagnostic: Option<HandshakeDiagnostic>,
    },
    /// A protected PrPDU (decrypted if it was encrypted). It is application data, handed over
    /// without a copy; key material is what the engine zeroizes.
    Data(Vec<u8>),
    /// The peer asks to release; answer with `release_rsp`.
    ReleaseRequested {
        /// applData (Conclude-Request).
        appl_data: Option<Vec<u8>>,
    },
    /// The release completed.
    Released {
        /// applData (Conclude-Response).
        appl_data: Option<Vec<u8>>,
    },
    /// The peer aborted.
    Aborted {
        /// HandshakeSecAbort, DtSecAbort or ApplAbort.
        kind: SecPduKind,
        /// The diagnostic, if any.
        diagnostic: Option<Diagnostic>,
        /// applData of an ApplAbort.
        appl_data: Option<Vec<u8>>,
    },
}

struct PeerInfo {
    key: PKey<Public>,
    fingerprint: [u8; 32],
    cert: Vec<u8>,
    identity: Option<PeerIdentity>,
}

struct Suite {
    group: DhGroup,
    mode: ProtectionMode,
}

/// The shared core of both roles.
struct Core {
    /// Release collision: (our ReleaseRsp sent, the peer's ReleaseRsp received).
    collision: (bool, bool),
    role: Role,
    ctx: Context,
    rng: Box<dyn RandomSource>,
    state: State,
    local_num: u16,
    asso: Option<AssoId>,
    expected_peer: Option<PeerIdentity>,
    /// SHA-256 fingerprints of certificates the peer may not sign with (Annex G.2: the TLS
    /// certificates of this connection).
    refused_certs: Vec<[u8; 32]>,
    peer: Option<PeerInfo>,
    offered: Vec<EphemeralKey>,
    my_dh: Option<EphemeralKey>,
    peer_dh_public: Vec<u8>,
    /// Server: Z computed when the HandshakeReq was accepted by security.
    pending_z: Option<Zeroizing<Vec<u8>>>,
    req: Option<Handshake>,
    suite: Option<Suite>,
    salt: [u8; 32],
    keys: Option<KeySet>,
    rekey: Rekey,
    /// Server: the previous receive key with the grace deadline (None = until first new PDU).
    old_recv: Option<(DirKeys, Option<TimeStamp>)>,
    keys_since: TimeStamp,
    send_last: Option<(TimeStamp, u32)>,
    recv_last: Option<(TimeStamp, u32)>,
    req_rekey: bool,
    events: VecDeque<SecurityEvent>,
    /// Key export for the key log ([`crate::keylog`]): off unless the owner asked for it.
    export: Option<KeyExport>,
}

/// The key-export state of one association.
#[derive(Default)]
struct KeyExport {
    /// [`crate::keylog::handshake_id`], set at the handshake's key derivation.
    handshake_id: [u8; 32],
    /// Key generations derived so far.
    derived: u32,
    /// Material not yet polled.
    queue: VecDeque<crate::keylog::KeyMaterial>,
}

/// Most key-log records kept before the oldest are dropped (an owner that never polls).
const MAX_QUEUED_KEYS: usize = 16;

/// Most events kept in the queue before the oldest are dropped.
const MAX_QUEUED_EVENTS: usize = 1024;
