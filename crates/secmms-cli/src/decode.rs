//! `secmms decode FILE|-`: decodes MMS traffic in a pcap or pcapng capture (any port):
//! TPKT, COTP, session, presentation, ACSE with the IEC 62351-4 A-profile authentication value,
//! MMS and the E2E SecPDUs. The engine is the `secmms-decode` crate; this module parses the
//! arguments and prints.
//!
//! Exit status: 0 when every PDU decoded and every signature verified, 1 when something was
//! malformed, missing (a gap, a truncated frame) or failed verification, 2 when the capture
//! could not be read at all.

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use secmms_decode::capture::{CaptureError, CaptureReader};
use secmms_decode::decoder::{Decoder, Filter};
use secmms_decode::record::Item;
use secmms_decode::tcp::ReassemblyLimits;
use secmms_decode::tls::KeyLog;

const AFTER_HELP: &str = "\
OUTPUT
  Default: one line per PDU: frame, time, stream#direction (c>s from the side that opened the
  connection), layers, PDU, MMS service, id=invokeID, object names, [result], verification,
  !problems and (notes); events (stream-open, gap, truncated, resync, fragment, ...) on lines
  of their own. IPv4 fragments are reassembled; an incomplete or overlapping datagram is a
  \"fragment\" problem.
  -V adds the BER tree of each presentation PDU with byte offsets.
  --json: one JSON object per line. A PDU has \"type\":\"pdu\", frame, time, stream, direction,
  src, dst, offset, layers (array), pdu, service, invoke_id (number or null), objects (array),
  result, verified (true, false or null when nothing was checked), problems (array) and notes
  (array). An event has \"type\":\"event\", frame, stream, direction, event, detail, problem.

CERTIFICATES
  A-profile values and E2E handshakes are verified with the key of the certificate they carry.
  --ca FILE (repeatable) also validates that certificate: path to the anchor, validity at the
  frame's time, Annex G. Without --ca the notes say \"chain not checked\".

TLS
  --tls-keylog FILE decrypts TLS streams with the secrets of an NSS key log (SSLKEYLOGFILE, or
  what `secmms server|client --tls-keylog` writes): TLS 1.3 (AES-128-GCM, AES-256-GCM) and
  TLS 1.2 from its CLIENT_RANDOM master secrets, AES-GCM and AES-CBC suites (HMAC-SHA1/256/384,
  MAC-then-encrypt or encrypt-then-MAC), renegotiations included. A connection the key log has
  no secret for, another suite or TLS 1.0/1.1 is a problem naming why; without --tls-keylog a TLS
  stream is named, not decoded.

E2E
  E2E handshakes (HandshakeReq, HandshakeAcc) are verified with the certificate they carry.
  --e2e-keylog FILE (what `secmms server|client --e2e-keylog` writes; format in docs/DECODE.md)
  verifies the ICV of every ClearTransfer and the AEAD tag or ICV of every EncrTransfer and
  decrypts it (AES-GCM, AES-CBC + HMAC/GMAC), across rekeys; the MMS inside is decoded like
  plain MMS. An association is matched to its lines by the SHA-256 of its HandshakeReq `tbs`,
  so the capture must hold the association set-up. A transfer that does not verify is
  verified=false and a problem; without --e2e-keylog (or without a line for the association)
  the notes say what was not checked and verified stays null.

PLAINTEXT
  --write-plain OUT.pcapng writes every stream's RFC 1006 octets, TLS removed, as TCP on port 102,
  so that Wireshark's own dissectors show them. With --e2e-keylog each E2E transfer that
  verified travels as its MMS PDU on the MMS presentation context (the set-up keeps its
  handshake SecPDUs); without it E2E protection stays.

FILTER
  --filter stream=N | service=NAME | object=TEXT, comma-separated to combine.

EXIT STATUS
  0 everything decoded and verified, 1 something malformed, missing or failed verification,
  2 the capture could not be read.";

/// `secmms decode`
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP, disable_version_flag = true)]
pub struct DecodeArgs {
    /// The capture, pcap or pcapng; `-` reads standard input.
    pub file: PathBuf,
    /// Full tree of every PDU with byte offsets.
    #[arg(short = 'V', long)]
    pub verbose: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only some PDUs: `stream=N`, `service=NAME`, `object=TEXT` (comma-separated).
    #[arg(long)]
    pub filter: Option<String>,
    /// NSS key log (SSLKEYLOGFILE format) to decrypt TLS 1.3 (AES-GCM) and TLS 1.2 (AES-GCM,
    /// AES-CBC) streams.
    #[arg(long, value_name = "FILE")]
    pub tls_keylog: Option<PathBuf>,
    /// E2E key log (what `secmms server|client --e2e-keylog` writes): verifies every E2E ICV
    /// and decrypts every EncrTransfer.
    #[arg(long, value_name = "FILE")]
    pub e2e_keylog: Option<PathBuf>,
    /// Trust anchor (PEM or DER CA certificate; repeatable): A-profile and E2E handshake
    /// certificates are then also validated (path, validity, Annex G).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Write the streams' RFC 1006 octets with TLS removed to this pcapng, on port 102, for
    /// Wireshark's own dissectors (E2E protection removed from the transfers that verified
    /// with --e2e-keylog).
    #[arg(long, value_name = "OUT.pcapng")]
    pub write_plain: Option<PathBuf>,
    /// Most TCP streams followed at once.
    #[arg(long, default_value_t = secmms_decode::limits::DEFAULT_MAX_STREAMS)]
    pub max_streams: usize,
    /// No progress on standard error.
    #[arg(long)]
    pub quiet: bool,
}

/// Counts octets read, for the progress line.
struct Counting<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Runs `secmms decode`.
pub fn run(a: DecodeArgs) -> Result<ExitCode> {
    let filter = match a.filter.as_deref().map(Filter::parse).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let keylog = match &a.tls_keylog {
        None => None,
        Some(p) => {
            let parsed = std::fs::read_to_string(p)
                .map_err(|e| e.to_string())
                .and_then(|t| KeyLog::parse(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("error: key log {}: {e}", p.display());
                    return Ok(ExitCode::from(2));
                }
            }
        }
    };
    let e2e_keylog = match &a.e2e_keylog {
        None => None,
        Some(p) => {
            let parsed = std::fs::read_to_string(p)
                .map_err(|e| e.to_string())
                .and_then(|t| secmms_decode::e2e::E2eKeyLog::parse(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("error: E2E key log {}: {e}", p.display());
                    return Ok(ExitCode::from(2));
                }
            }
        }
    };
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (source, total): (Box<dyn Read>, Option<u64>) = if a.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        match std::fs::File::open(&a.file) {
            Ok(f) => {
                let len = f.metadata().ok().map(|m| m.len());
                (Box::new(f), len)
            }
            Err(e) => {
                eprintln!("error: cannot open {}: {e}", a.file.display());
                return Ok(ExitCode::from(2));
            }
        }
    };
    let source = Counting {
        inner: std::io::BufReader::with_capacity(1 << 16, source),
        count: count.clone(),
    };
    let mut reader = match CaptureReader::new(source) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}: {e}", a.file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let limits = ReassemblyLimits {
        max_streams: a.max_streams.max(1),
        ..Default::default()
    };
    let mut decoder = Decoder::new(limits, a.verbose);
    if let Some(k) = keylog {
        decoder = decoder.with_tls_keylog(k);
    }
    if let Some(k) = e2e_keylog {
        decoder = decoder.with_e2e_keylog(k);
    }
    if !a.ca.is_empty() {
        let mut v = secmms_pki::OpenSslValidator::new();
        for p in &a.ca {
            let loaded = std::fs::read(p)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    secmms_pki::tooling::pem_or_der("CERTIFICATE", &b).map_err(|e| e.to_string())
                })
                .and_then(|der| v.add_anchor_der(&der).map_err(|e| e.to_string()));
            if let Err(e) = loaded {
                eprintln!("error: trust anchor {}: {e}", p.display());
                return Ok(ExitCode::from(2));
            }
        }
        decoder =
            decoder.with_trust_anchors(secmms_decode::secure::TrustAnchors(std::sync::Arc::new(v)));
    }
    let mut plain_out = match &a.write_plain {
        None => None,
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => {
                decoder = decoder.with_plain_export();
                Some(BufWriter::new(f))
            }
            Err(e) => {
                eprintln!("error: cannot create {}: {e}", p.display());
                return Ok(ExitCode::from(2));
            }
        },
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut items = Vec::new();
    let progress = !a.quiet && total.is_some_and(|t| t > 16 << 20);
    let started = std::time::Instant::now();
    let mut last_report = started;
    let mut last_frame = 0;
    while let Some(next) = reader.next_frame() {
        match next {
            Ok(frame) => {
                last_frame = frame.number;
                decoder.frame(&frame, &mut items);
            }
            Err(e) => {
                let detail = describe(&e);
                decoder.capture_error(last_frame, detail, &mut items);
            }
        }
        emit(&mut out, &mut items, &filter, a.json, a.verbose)?;
        if let Some(w) = plain_out.as_mut() {
            w.write_all(&decoder.take_plain())?;
        }
        if progress && last_report.elapsed().as_secs() >= 2 {
            last_report = std::time::Instant::now();
            let done = count.load(std::sync::atomic::Ordering::Relaxed);
            let pct = total.map_or(0.0, |t| 100.0 * done as f64 / t.max(1) as f64);
            eprintln!("decode: {pct:.0}% ({done} octets, frame {last_frame})");
        }
    }
    decoder.finish(&mut items);
    emit(&mut out, &mut items, &filter, a.json, a.verbose)?;
    out.flush()?;
    if let Some(mut w) = plain_out {
        w.write_all(&decoder.take_plain())?;
        w.flush()?;
    }
    let s = decoder.stats();
    if !a.quiet {
        eprintln!(
            "decode: {} frames, {} TCP segments, {} streams, {} PDUs, {} octets retransmitted, \
             {} octets missing, {} problems, {:.1} s",
            s.frames,
            s.segments,
            s.streams,
            s.pdus,
            s.retransmitted,
            s.gap_octets,
            s.problems,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if s.problems > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn describe(e: &CaptureError) -> String {
    format!("capture unreadable from here on: {e}")
}

fn emit(
    out: &mut impl Write,
    items: &mut Vec<Item>,
    filter: &Filter,
    json: bool,
    verbose: bool,
) -> Result<()> {
    // One buffer for every item's text: no String per line.
    let mut buf = Vec::new();
    let mut line = String::new();
    for item in items.drain(..) {
        if !filter.matches(&item) {
            continue;
        }
        if json {
            buf.clear();
            item.write_json(&mut buf);
            buf.push(b'\n');
            out.write_all(&buf)?;
            continue;
        }
        match &item {
            Item::Pdu(p) => {
                line.clear();
                // Writing into a String cannot fail.
                let _ = p.write_line(&mut line);
                line.push('\n');
                out.write_all(line.as_bytes())?;
                if verbose {
                    for l in &p.tree {
                        writeln!(out, "        {l}")?;
                    }
                }
            }
            Item::Notice(n) => writeln!(out, "{}", n.line())?,
        }
    }
    Ok(())
}
