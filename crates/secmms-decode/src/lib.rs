//! Sans-IO decoder of captured MMS traffic for secmms (issue 16, first slice): the `secmms
//! decode` engine.
//!
//! A capture goes through five stages, each in its own module:
//!
//! | module | what |
//! |---|---|
//! | [`capture`] | pcap and pcapng files (several interfaces and timestamp resolutions) |
//! | [`link`] | Ethernet (802.1Q), Linux cooked v1/v2, BSD loopback, raw IP → IPv4/IPv6 → TCP |
//! | [`defrag`] | IPv4 and IPv6 fragment reassembly, bounded |
//! | [`tcp`] | TCP reassembly in both directions, bounded, with gaps reported |
//! | [`tls`] | TLS 1.3 (AES-GCM) and TLS 1.2 (AES-GCM, AES-CBC) decryption from an NSS key log |
//! | [`osi`] | TPKT (with resynchronisation), COTP, session, presentation, ACSE, MMS, E2E |
//! | [`mms`], [`secure`], [`tree`] | MMS summary, A-profile and E2E checks, the `-V` tree |
//! | [`e2e`] | E2E transfers verified and decrypted with an E2E key log, across rekeys |
//! | [`decoder`] | the pipeline and `--filter` |
//! | [`record`] | what is reported, as text and JSON |
//! | [`synth`] | writing captures (tests, plaintext export) |
//!
//! With a key log ([`tls::KeyLog`], [`decoder::Decoder::with_tls_keylog`]) a stream that starts
//! with a TLS record is decrypted first: TLS 1.3 with the AES-GCM suites, TLS 1.2 with the
//! AES-GCM and AES-CBC suites ([`tls::tls12::Suite12`]), renegotiations included; its PDUs name
//! `tls` as their outer layer. Without one, a TLS stream is reported (`"event":"tls"`) and passed
//! over.
//!
//! Every stage has limits ([`limits`]) and typed errors; nothing panics on any input. TCP is
//! followed on any port: a stream whose octets frame as TPKT + COTP is decoded whatever its
//! ports.
//!
//! # Output
//!
//! One item per PDU ([`record::PduRecord`]) and one per notable event ([`record::Notice`]).
//! In JSON (`--json`) every item is one object on one line:
//!
//! | field | PDU (`"type":"pdu"`) |
//! |---|---|
//! | `frame` | number of the frame that completed the PDU (1-based, as Wireshark counts) |
//! | `time` | its capture time, `"seconds.nanoseconds"` since the Unix epoch, or `null` |
//! | `stream` | TCP stream number from 0, as Wireshark's `tcp.stream` |
//! | `direction` | `"c>s"` from the side that opened the connection, else `"s>c"` |
//! | `src`, `dst` | `address:port` |
//! | `offset` | stream offset of the PDU's first TPKT in its direction |
//! | `layers` | array, outermost first, of `tls`, `tpkt`, `cotp`, `ses`, `pres`, `acse`, `aprofile`, `mms`, `e2e` |
//! | `pdu` | innermost PDU, e.g. `CR`, `AARE`, `confirmed-RequestPDU`, `ClearTransfer/confirmed-RequestPDU` |
//! | `service` | MMS service name (`read`, `getNameList`, `informationReport`, …) or `null` |
//! | `invoke_id` | MMS invokeID (number) or `null` |
//! | `objects` | array of object names, `"domain/item"` or `"item"` |
//! | `result` | outcome (`"success"`, `"failure: object-non-existent"`, `"accepted"`, …) or `null` |
//! | `verified` | `true` every signature and ICV checked verified, `false` one failed, `null` nothing was checked |
//! | `problems` | array of what was malformed or failed; non-empty means exit status 1 |
//! | `notes` | array of remarks: assumed presentation contexts, what could not be checked |
//!
//! An event (`"type":"event"`) has `frame`, `stream` and `direction` (or `null`), `event`
//! (`stream-open`, `gap`, `truncated`, `resync`, `resync-failed`, `not-rfc1006`, `link-error`,
//! `fragment`, `tls`, `capture-error`, `malformed`, `evicted`), `detail` and `problem` (true
//! when it counts for exit status 1).
//!
//! # What is verified
//!
//! An A-profile authentication value (IEC 62351-4 §11): certificate parsed and valid at the
//! frame's time, `time` within 10 minutes of it, signature verified with the certificate's key.
//! An E2E HandshakeReq/HandshakeAcc: signature over the received `tbs` with the key of its
//! `pkCert`. Certificate chains are validated only with trust anchors
//! ([`decoder::Decoder::with_trust_anchors`]). E2E ICVs and EncrTransfer plaintext need the
//! traffic keys a capture does not carry: with an E2E key log
//! ([`decoder::Decoder::with_e2e_keylog`], format in [`secmms_e2e::keylog`] and
//! docs/DECODE.md) every ClearTransfer ICV is verified and every EncrTransfer verified and
//! decrypted ([`e2e`]); without one the notes say what was not checked.
//!
//! ```
//! use secmms_decode::{capture::CaptureReader, decoder::Decoder, tcp::ReassemblyLimits};
//! // A pcap header (little-endian, microseconds, Ethernet) and no packets.
//! let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
//! file.extend_from_slice(&[0; 8]);
//! file.extend_from_slice(&65535u32.to_le_bytes());
//! file.extend_from_slice(&1u32.to_le_bytes());
//! let mut reader = CaptureReader::new(std::io::Cursor::new(file)).unwrap();
//! let mut decoder = Decoder::new(ReassemblyLimits::default(), false);
//! let mut items = Vec::new();
//! while let Some(frame) = reader.next_frame() {
//!     decoder.frame(&frame.unwrap(), &mut items);
//! }
//! decoder.finish(&mut items);
//! assert!(items.is_empty());
//! ```
// The only `unsafe` code is the private `tls::prf` module (OpenSSL's TLS 1.2 PRF setters).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod capture;
pub mod decoder;
pub mod defrag;
pub mod e2e;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod link;
pub mod mms;
pub mod osi;
pub mod record;
pub mod secure;
pub mod synth;
pub mod tcp;
pub mod tls;
pub mod tree;
