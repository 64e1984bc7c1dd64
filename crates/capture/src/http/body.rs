//! Message bodies: counting wire bytes, decoding gzip / deflate / br as the
//! bytes stream in, and keeping the first bytes of the decoded body, all
//! under caps (decompression bombs stop at the cap and are counted).

use std::io::Write;

use super::brotli_c::BrotliWriter;
use super::decompress::{Framing, Inflater};
use crate::budget::{Budget, Charge, Holder};

/// Content encodings pov decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentEncoding {
    /// No encoding (or one pov does not decode: the body is kept as is).
    Identity,
    /// gzip (and x-gzip).
    Gzip,
    /// deflate (zlib-wrapped, or raw as some servers send it).
    Deflate,
    /// Brotli.
    Br,
}

impl ContentEncoding {
    /// The encoding a `Content-Encoding` value names (the last one listed
    /// is the outermost). Unknown values are `None`.
    pub fn from_header(v: &[u8]) -> Option<ContentEncoding> {
        let last = v.rsplit(|b| *b == b',').next().unwrap_or(v);
        let t = trim(last);
        let eq = |s: &[u8]| t.eq_ignore_ascii_case(s);
        if t.is_empty() || eq(b"identity") {
            Some(ContentEncoding::Identity)
        } else if eq(b"gzip") || eq(b"x-gzip") {
            Some(ContentEncoding::Gzip)
        } else if eq(b"deflate") {
            Some(ContentEncoding::Deflate)
        } else if eq(b"br") {
            Some(ContentEncoding::Br)
        } else {
            None
        }
    }
}

/// Top-level media types whose bodies are not kept.
const SKIP_TOP: &[&str] = &["image", "video", "audio", "font"];

/// Media subtypes whose bodies are not kept.
const SKIP_SUB: &[&str] = &[
    "css",
    "javascript",
    "x-javascript",
    "ecmascript",
    "octet-stream",
    "zip",
    "gzip",
    "x-tar",
    "pdf",
    "wasm",
    "font-woff",
    "font-woff2",
    "vnd.ms-fontobject",
    "x-shockwave-flash",
];

/// Of the media types not kept, those a replay renders (it puts them in
/// place of their URLs); the others (video, audio, archives, PDFs, binary
/// downloads) it names with their size only.
const REPLAY_RENDERS: &[&str] = &[
    "image",
    "font",
    "css",
    "javascript",
    "x-javascript",
    "ecmascript",
    "font-woff",
    "font-woff2",
    "vnd.ms-fontobject",
];

/// Bytes kept of a body a replay does not render: enough to sniff a page
/// sent as `application/octet-stream`, and for a preview.
pub(crate) const REPLAY_SNIFF_BYTES: usize = 1024;

/// Whether a replay renders a body of this Content-Type that
/// [`worth_keeping`] leaves out.
pub(crate) fn replay_renders(content_type: Option<&[u8]>) -> bool {
    content_type.is_none_or(|ct| media_in(ct, REPLAY_RENDERS, REPLAY_RENDERS))
}

/// Whether a body of this Content-Type is one visitors share (an image,
/// font, style sheet or script: the same bytes for everyone).
pub(crate) fn shared_asset(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|ct| media_in(ct, REPLAY_RENDERS, REPLAY_RENDERS))
}

/// Whether a response body of this Content-Type is worth keeping: pages,
/// data and text are (error pages, error JSON, order totals live there);
/// images, media, fonts, style sheets, scripts and archives are not, and
/// keeping them would only cost memory. An absent or unreadable type is
/// kept (error pages often come without one).
pub(crate) fn worth_keeping(content_type: Option<&[u8]>) -> bool {
    content_type.is_none_or(|ct| !media_in(ct, SKIP_TOP, SKIP_SUB))
}

/// Whether the media type of Content-Type `ct` (before any parameter,
/// trimmed, any case) has its top-level type in `tops` or its subtype in
/// `subs`.
fn media_in(ct: &[u8], tops: &[&str], subs: &[&str]) -> bool {
    if ct.is_ascii() {
        // The usual case, without an allocation (the same rule on bytes).
        let media = ct.split(|b| *b == b';').next().unwrap_or(&[]);
        // str::trim's whitespace (which, unlike trim_ascii's, has VT).
        let ws = |b: &u8| char::from(*b).is_whitespace();
        let start = media.iter().position(|b| !ws(b)).unwrap_or(media.len());
        let end = media.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
        let media = &media[start..end.max(start)];
        let (top, sub) = match media.iter().position(|b| *b == b'/') {
            Some(i) => (&media[..i], &media[i + 1..]),
            None => (media, &[][..]),
        };
        let is = |a: &[u8], list: &[&str]| list.iter().any(|w| a.eq_ignore_ascii_case(w.as_bytes()));
        return is(top, tops) || is(sub, subs);
    }
    let ct = String::from_utf8_lossy(ct).to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or("").trim();
    let (top, sub) = media.split_once('/').unwrap_or((media, ""));
    tops.contains(&top) || subs.contains(&sub)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !b.is_ascii_whitespace()).map(|i| i + 1).unwrap_or(start);
    &s[start..end.max(start)]
}

/// Where decoded bytes go: counted, the first `keep` kept, stop past
/// `max` (the size cap) or `ratio_max` (the ratio cap for the wire bytes
/// fed so far).
struct Sink {
    kept: Vec<u8>,
    keep: usize,
    total: u64,
    max: u64,
    ratio_max: u64,
    hit: Option<DecodeStop>,
    /// The kept bytes' share of the memory budget.
    charge: Charge,
    /// The budget refused more kept bytes.
    cut: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.hit.is_some() {
            // Past a cap: nothing more is counted or kept (what the
            // decoder flushes as it closes included).
            return Err(std::io::Error::other("decoding stopped at a cap"));
        }
        let room = self.keep.saturating_sub(self.kept.len());
        let n = buf.len().min(room);
        if n > 0 {
            if self.charge.try_grow(n) {
                self.kept.extend_from_slice(&buf[..n]);
            } else {
                // The memory budget is full: keep no more of this body.
                self.keep = self.kept.len();
                self.cut = true;
            }
        }
        self.total += buf.len() as u64;
        if self.total > self.max {
            self.hit = Some(DecodeStop::SizeCap);
            return Err(std::io::Error::other("decoded size cap"));
        }
        if self.total > self.ratio_max {
            self.hit = Some(DecodeStop::RatioCap);
            return Err(std::io::Error::other("decoded ratio cap"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Identity(Sink),
    /// gzip, zlib or raw deflate.
    Inflate(Box<Inflater<Sink>>),
    Br(Box<BrotliWriter<Sink>>),
    /// Decoding stopped (cap, ratio or corrupt data); the sink survives.
    Stopped(Sink),
}

/// Why decoding stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeStop {
    /// More decoded bytes than `max_decoded_bytes`.
    SizeCap,
    /// Decoded/wire ratio above `max_decode_ratio` (a decompression bomb).
    RatioCap,
    /// The encoded data was not valid.
    Corrupt,
    /// Bytes of the body are missing from the capture.
    Gap,
    /// The memory budget had no room for a decompressor
    /// (`--memory-budget`): the body was counted on the wire, not decoded.
    Budget,
}

/// A body as it streams in.
pub struct BodyDecoder {
    enc: ContentEncoding,
    dec: Decoder,
    wire: u64,
    max_ratio: u64,
    /// Bytes buffered to decide between zlib and raw deflate.
    sniff: Vec<u8>,
    stop: Option<DecodeStop>,
    /// The decompressor's share of the memory budget.
    state: Charge,
}

/// What an inflate decompressor holds, as charged to the memory budget:
/// zlib-rs's state with its 32 KiB window (47,704 bytes, measured), the
/// output buffer beside it ([`super::decompress::BUF`], 32 KiB) and the
/// box around them.
const INFLATE_STATE: usize = (47 << 10) + super::decompress::BUF + std::mem::size_of::<Inflater<Sink>>();

/// What a brotli decompressor holds besides its decoder's allocations
/// (charged as they happen): its output buffer, the box around it, and
/// the box of what the allocations are charged to.
const BROTLI_WRITER: usize =
    super::decompress::BROTLI_BUF + std::mem::size_of::<BrotliWriter<Sink>>() + super::brotli_c::HELD_BYTES;

/// What is known of a finished body.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BodyInfo {
    /// Body bytes on the wire after de-chunking, before content decoding.
    pub wire_len: u64,
    /// Decoded body bytes (equal to `wire_len` without content encoding).
    pub decoded_len: u64,
    /// The first decoded bytes (up to the keep cap).
    #[serde(skip)]
    pub kept: Vec<u8>,
    /// Content encoding.
    pub encoding: Option<ContentEncoding>,
    /// Decoding stopped early, and why (then `decoded_len` counts what was
    /// decoded before the stop).
    pub decode_stop: Option<DecodeStop>,
    /// The memory budget was full: fewer bytes were kept than the keep cap
    /// allowed (`--memory-budget`).
    pub budget_cut: bool,
    /// The kept bytes' share of the memory budget, given back when the
    /// body is dropped.
    #[serde(skip)]
    pub(crate) charge: Charge,
}

impl BodyInfo {
    /// A body sent without content encoding and kept whole (for records
    /// built by hand, in tests and tools); it holds no budget charge.
    pub fn plain(kept: Vec<u8>) -> BodyInfo {
        let n = kept.len() as u64;
        BodyInfo { wire_len: n, decoded_len: n, kept, ..BodyInfo::default() }
    }
}

impl BodyDecoder {
    /// A decoder for `enc`, keeping `keep` decoded bytes, stopping past
    /// `max_decoded` decoded bytes or a decoded/wire ratio of `max_ratio`.
    pub fn new(enc: ContentEncoding, keep: usize, max_decoded: u64, max_ratio: u64) -> BodyDecoder {
        let sink = Sink {
            kept: Vec::new(),
            keep,
            total: 0,
            max: max_decoded,
            ratio_max: u64::MAX,
            hit: None,
            charge: Charge::none(),
            cut: false,
        };
        let dec = match enc {
            ContentEncoding::Identity => Decoder::Identity(sink),
            ContentEncoding::Gzip => Decoder::Inflate(Box::new(Inflater::new(Framing::Gzip, sink))),
            // Decided on the first two bytes (zlib header or raw deflate).
            ContentEncoding::Deflate => Decoder::Stopped(sink),
            ContentEncoding::Br => Decoder::Br(Box::new(BrotliWriter::new(sink))),
        };
        BodyDecoder {
            enc,
            dec,
            wire: 0,
            max_ratio: max_ratio.max(1),
            sniff: Vec::new(),
            stop: None,
            state: Charge::none(),
        }
    }

    /// Charges what the decoder holds (kept bytes, decompressor state) to
    /// `budget`. With no room for a decompressor, the body is counted on
    /// the wire and not decoded ([`DecodeStop::Budget`]).
    pub fn budgeted(mut self, budget: &Budget) -> BodyDecoder {
        if let Some(s) = self.sink_mut() {
            s.charge = budget.empty(Holder::Bodies);
        }
        let state = match &self.dec {
            Decoder::Br(_) => BROTLI_WRITER,
            _ if self.enc == ContentEncoding::Identity => 0,
            _ => INFLATE_STATE,
        };
        match budget.try_charge(Holder::Bodies, state) {
            Some(c) => {
                self.state = c;
                // What the brotli decoder allocates is charged as it
                // allocates (its ring buffer follows the stream's declared
                // sizes).
                if let Decoder::Br(d) = &mut self.dec {
                    d.charge_to(budget.empty(Holder::Bodies));
                }
            }
            None => self.halt(DecodeStop::Budget),
        }
        self
    }

    /// Feeds body bytes (de-chunked) as they arrive.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.wire += bytes.len() as u64;
        // An identity body (most bytes of large answers) goes to its sink
        // as `feed` would send it, without its look at every decoder.
        // (Stopped, it is no longer `Identity`.)
        if let Decoder::Identity(s) = &mut self.dec {
            if s.write(bytes).is_err() {
                let why = s.hit;
                self.halt(why.unwrap_or(DecodeStop::Corrupt));
            }
            return;
        }
        if self.enc == ContentEncoding::Deflate && self.sniff.len() < 2 && self.stop.is_none() {
            let take = (2 - self.sniff.len()).min(bytes.len());
            self.sniff.extend_from_slice(&bytes[..take]);
            if self.sniff.len() < 2 {
                return;
            }
            let Decoder::Stopped(sink) = std::mem::replace(&mut self.dec, Decoder::Stopped(empty_sink())) else {
                return;
            };
            // A zlib header: CMF with method 8, and (CMF*256+FLG) % 31 == 0.
            let zlib =
                self.sniff[0] & 0x0F == 8 && (u16::from(self.sniff[0]) * 256 + u16::from(self.sniff[1])) % 31 == 0;
            let framing = if zlib { Framing::Zlib } else { Framing::Raw };
            self.dec = Decoder::Inflate(Box::new(Inflater::new(framing, sink)));
            let sniffed = std::mem::take(&mut self.sniff);
            self.feed(&sniffed);
            self.sniff = sniffed;
            self.feed(&bytes[take..]);
            return;
        }
        self.feed(bytes);
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.stop.is_some() || bytes.is_empty() {
            return;
        }
        // The ratio cap applies while decoding (a small input can inflate
        // enormously in one call), with a floor so small bodies never trip.
        let ratio_max = if self.enc == ContentEncoding::Identity {
            u64::MAX
        } else {
            self.wire.saturating_mul(self.max_ratio).max(1 << 20)
        };
        if let Some(s) = self.sink_mut() {
            s.ratio_max = ratio_max;
        }
        let res = match &mut self.dec {
            Decoder::Identity(s) => s.write_all(bytes),
            Decoder::Inflate(d) => d.write_all(bytes),
            Decoder::Br(d) => d.write_all(bytes),
            Decoder::Stopped(_) => Ok(()),
        };
        if res.is_err() {
            let refused = matches!(&self.dec, Decoder::Br(d) if d.refused());
            let why = self.sink_mut().and_then(|s| s.hit);
            self.halt(why.unwrap_or(if refused { DecodeStop::Budget } else { DecodeStop::Corrupt }));
        }
    }

    fn sink_mut(&mut self) -> Option<&mut Sink> {
        match &mut self.dec {
            Decoder::Identity(s) | Decoder::Stopped(s) => Some(s),
            Decoder::Inflate(d) => Some(d.get_mut()),
            Decoder::Br(d) => Some(d.get_mut()),
        }
    }

    /// Stops decoding (keeps what was decoded).
    fn halt(&mut self, why: DecodeStop) {
        if self.stop.is_none() {
            self.stop = Some(why);
        }
        let dec = std::mem::replace(&mut self.dec, Decoder::Stopped(empty_sink()));
        self.dec = Decoder::Stopped(into_sink(dec));
    }

    /// Bytes of the body are missing: counted on the wire, decoding of an
    /// encoded body cannot go on (an identity body just continues).
    pub fn gap(&mut self, len: u64) {
        self.wire += len;
        if self.enc != ContentEncoding::Identity {
            self.halt(DecodeStop::Gap);
        }
    }

    /// Ends the body.
    pub fn finish(mut self) -> BodyInfo {
        let enc = self.enc;
        let stop = self.stop;
        let dec = std::mem::replace(&mut self.dec, Decoder::Stopped(empty_sink()));
        let (sink, err) = match dec {
            Decoder::Identity(s) | Decoder::Stopped(s) => (s, None),
            Decoder::Inflate(mut d) => {
                let (s, bad) = close(&mut d);
                (s, bad.then_some(DecodeStop::Corrupt))
            }
            Decoder::Br(mut d) => {
                let _ = d.flush();
                match d.into_inner() {
                    Ok(s) => (s, None),
                    Err((s, true)) => (s, Some(DecodeStop::Budget)),
                    Err((s, false)) => (s, Some(DecodeStop::Corrupt)),
                }
            }
        };
        let stop = stop.or(err);
        BodyInfo {
            wire_len: self.wire,
            decoded_len: if enc == ContentEncoding::Identity { self.wire } else { sink.total },
            kept: sink.kept,
            encoding: Some(enc),
            decode_stop: stop,
            budget_cut: sink.cut,
            charge: sink.charge,
        }
    }
}

fn empty_sink() -> Sink {
    Sink { kept: Vec::new(), keep: 0, total: 0, max: 0, ratio_max: 0, hit: None, charge: Charge::none(), cut: false }
}

fn into_sink(d: Decoder) -> Sink {
    match d {
        Decoder::Identity(s) | Decoder::Stopped(s) => s,
        Decoder::Inflate(mut d) => close(&mut d).0,
        Decoder::Br(d) => d.into_inner().unwrap_or_else(|(s, _)| s),
    }
}

/// An inflate decoder's sink once its stream is closed, and whether it
/// ended in error. A stream that stops short (a gap, a cap, corrupt or cut
/// data) keeps what was decoded before: what the decoder still buffers is
/// flushed to the sink first.
fn close(d: &mut Inflater<Sink>) -> (Sink, bool) {
    let finished = d.try_finish();
    if finished.is_err() {
        let _ = d.flush();
    }
    (std::mem::replace(d.get_mut(), empty_sink()), finished.is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Making a decoder and starting a body allocates no more than the
    /// body is charged for it: an inflate state with its window and
    /// output buffer (three framings), a brotli decoder as it allocates.
    /// (On a fresh thread: no state is kept from an earlier body.)
    #[test]
    fn a_decoder_is_charged_at_least_what_it_allocates() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | b'a').collect();
        for (enc, stream) in encoded(&data, 22) {
            std::thread::spawn(move || {
                let budget = Budget::new(64 << 20);
                let before = crate::counting::held();
                let mut d = BodyDecoder::new(enc, 0, 1 << 30, 1000).budgeted(&budget);
                d.push(&stream[..200]);
                let held = crate::counting::held() - before;
                let charged = budget.held(Holder::Bodies) as isize;
                assert!(held > 40_000, "{enc:?}: {held} bytes held");
                assert!(charged >= held, "{enc:?}: {held} bytes held, {charged} charged");
                drop(d);
            })
            .join()
            .unwrap();
        }
    }

    /// The budget is charged what the brotli decoder holds, not a fixed
    /// guess: 16 bytes of such a stream hold megabytes, all given back
    /// when the body ends (but its kept bytes, which the body keeps).
    #[test]
    fn a_brotli_body_is_charged_what_its_decoder_holds() {
        // The body of the hostile class `brotli-pending`: 4 MiB of noise
        // at a 16 MiB window, its first meta-block declaring megabytes.
        let enc = pov_synth::hostile::brotli_declaring_megabytes();
        let budget = Budget::new(64 << 20);
        let mut d = BodyDecoder::new(ContentEncoding::Br, 1024, 1 << 30, 1000).budgeted(&budget);
        d.push(&enc[..16]);
        let held = budget.held(Holder::Bodies);
        assert!(held >= 4 << 20, "16 bytes in, {held} bytes charged");
        let info = d.finish();
        assert_eq!(info.decode_stop, Some(DecodeStop::Corrupt), "a cut stream");
        assert_eq!(budget.held(Holder::Bodies), info.kept.len(), "only the kept bytes stay charged");
        drop(info);
        assert_eq!(budget.held(Holder::Bodies), 0);
        // The whole stream decodes in that budget.
        let mut d = BodyDecoder::new(ContentEncoding::Br, 1024, 1 << 30, 1000).budgeted(&budget);
        d.push(&enc);
        let info = d.finish();
        assert_eq!((info.decoded_len, info.decode_stop), (4 << 20, None));
        assert_eq!(budget.report().refusals(), 0);
    }

    /// A brotli body whose decoder would hold more than the budget has
    /// room for stops as refused by the budget (counted), holding no more.
    #[test]
    fn a_brotli_body_the_budget_cannot_hold_stops_for_the_budget() {
        // The body of the hostile class `brotli-pending`: 4 MiB of noise
        // at a 16 MiB window, its first meta-block declaring megabytes.
        let enc = pov_synth::hostile::brotli_declaring_megabytes();
        let budget = Budget::new(1 << 20);
        let mut d = BodyDecoder::new(ContentEncoding::Br, 1024, 1 << 30, 1000).budgeted(&budget);
        d.push(&enc[..16]);
        d.push(&enc[16..4096]);
        let info = d.finish();
        assert_eq!(info.decode_stop, Some(DecodeStop::Budget));
        let report = budget.report();
        assert!(report.peak_bytes <= 1 << 20, "peak {}", report.peak_bytes);
        assert!(report.refusals() >= 1);
        drop(info);
        assert_eq!(budget.held(Holder::Bodies), 0);
        // Without a budget the same body is decoded as far as it goes.
        let mut d = BodyDecoder::new(ContentEncoding::Br, 1024, 1 << 30, 1000);
        d.push(&enc[..4096]);
        let info = d.finish();
        assert_eq!(info.decode_stop, Some(DecodeStop::Corrupt));
        assert!(info.decoded_len > 3000, "{}", info.decoded_len);
    }

    #[test]
    fn keeps_pages_data_and_unknown_types_only() {
        for kept in [
            None,
            Some("text/html; charset=utf-8"),
            Some("application/json"),
            Some("application/problem+json"),
            Some("text/plain"),
            Some("application/xml"),
            Some(""),
            Some("text/css\u{b}x"),
        ] {
            assert!(worth_keeping(kept.map(str::as_bytes)), "{kept:?}");
        }
        for skipped in [
            "image/png",
            "IMAGE/JPEG",
            "text/css",
            "application/javascript; charset=utf-8",
            "font/woff2",
            "video/mp4",
            "application/octet-stream",
            "\u{b} Text/CSS \t; charset=x",
            "image",
            "\u{a0}image/png",
        ] {
            assert!(!worth_keeping(Some(skipped.as_bytes())), "{skipped}");
        }
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// `data` encoded four ways: gzip, zlib and raw deflate (each as
    /// `Content-Encoding: deflate` may be), brotli at a 2^`window` window.
    fn encoded(data: &[u8], window: u32) -> [(ContentEncoding, Vec<u8>); 4] {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        r.write_all(data).unwrap();
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, window);
            w.write_all(data).unwrap();
        }
        [
            (ContentEncoding::Gzip, gz(data)),
            (ContentEncoding::Deflate, z.finish().unwrap()),
            (ContentEncoding::Deflate, r.finish().unwrap()),
            (ContentEncoding::Br, br),
        ]
    }

    #[test]
    fn encodings_decode_in_pieces() {
        let body = b"hello world, hello world, hello world".repeat(100);
        for (enc, data) in encoded(&body, 20).into_iter().chain([(ContentEncoding::Identity, body.clone())]) {
            let mut d = BodyDecoder::new(enc, 16, 1 << 30, 1000);
            for piece in data.chunks(7) {
                d.push(piece);
            }
            let info = d.finish();
            assert_eq!(info.wire_len, data.len() as u64, "{enc:?}");
            assert_eq!(info.decoded_len, body.len() as u64, "{enc:?}");
            assert_eq!(info.kept, &body[..16], "{enc:?}");
            assert_eq!(info.decode_stop, None, "{enc:?}");
        }
    }

    #[test]
    fn bombs_and_garbage_stop_at_the_caps() {
        let zeros = vec![0u8; 50 << 20];
        let bomb = gz(&zeros);
        let mut d = BodyDecoder::new(ContentEncoding::Gzip, 0, 1 << 40, 100);
        d.push(&bomb);
        let info = d.finish();
        assert_eq!(info.decode_stop, Some(DecodeStop::RatioCap));
        assert!(info.decoded_len <= (bomb.len() as u64 * 100).max(1 << 20) + (64 << 10));
        // Counted up to the cap (not lost when the decoder closes).
        assert!(info.decoded_len > (bomb.len() as u64 * 100).max(1 << 20), "{}", info.decoded_len);
        let mut d = BodyDecoder::new(ContentEncoding::Gzip, 0, 1 << 20, 1 << 20);
        d.push(&bomb);
        let info = d.finish();
        assert_eq!(info.decode_stop, Some(DecodeStop::SizeCap));
        let mut d = BodyDecoder::new(ContentEncoding::Gzip, 8, 1 << 20, 100);
        d.push(b"this is not gzip at all");
        assert_eq!(d.finish().decode_stop, Some(DecodeStop::Corrupt));
        assert_eq!(ContentEncoding::from_header(b" x-gzip "), Some(ContentEncoding::Gzip));
        assert_eq!(ContentEncoding::from_header(b"gzip, br"), Some(ContentEncoding::Br));
        assert_eq!(ContentEncoding::from_header(b"compress"), None);
    }

    /// A compressed body that stops short keeps what was decoded before:
    /// cut by a gap in the capture, by its end, or by the size cap.
    #[test]
    fn a_compressed_body_cut_short_keeps_what_was_decoded() {
        let page: Vec<u8> = b"<html><title>Error 500</title><p>Try again later</p></html>\n".repeat(4000);
        let zlib = |raw: bool| {
            let mut out = Vec::new();
            if raw {
                let mut e = flate2::write::DeflateEncoder::new(&mut out, flate2::Compression::default());
                e.write_all(&page).unwrap();
                e.finish().unwrap();
            } else {
                let mut e = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::default());
                e.write_all(&page).unwrap();
                e.finish().unwrap();
            }
            out
        };
        for (enc, wire) in [
            (ContentEncoding::Gzip, gz(&page)),
            (ContentEncoding::Deflate, zlib(false)),
            (ContentEncoding::Deflate, zlib(true)),
        ] {
            for (how, stop) in [("gap", DecodeStop::Gap), ("end", DecodeStop::Corrupt)] {
                let mut d = BodyDecoder::new(enc, 64 << 10, 1 << 30, 1000);
                d.push(&wire[..wire.len() / 2]);
                if how == "gap" {
                    d.gap(100);
                }
                let info = d.finish();
                assert_eq!(info.decode_stop, Some(stop), "{enc:?} {how}");
                assert!(
                    info.decoded_len > 10_000 && info.decoded_len < page.len() as u64,
                    "{enc:?} {how}: {}",
                    info.decoded_len
                );
                assert_eq!(info.kept.len() as u64, info.decoded_len.min(64 << 10), "{enc:?} {how}");
                assert_eq!(info.kept[..], page[..info.kept.len()], "{enc:?} {how}: the page's first bytes");
            }
            let mut d = BodyDecoder::new(enc, 64 << 10, 1 << 30, 1000);
            d.push(&wire);
            let info = d.finish();
            assert_eq!((info.decode_stop, info.decoded_len), (None, page.len() as u64), "{enc:?} whole");
        }
        // Past the size cap: counted up to where it stopped, first bytes kept.
        let mut d = BodyDecoder::new(ContentEncoding::Gzip, 1024, 100_000, 1000);
        d.push(&gz(&page));
        let info = d.finish();
        assert_eq!(info.decode_stop, Some(DecodeStop::SizeCap));
        assert!(info.decoded_len > 100_000, "{}", info.decoded_len);
        assert_eq!(info.kept[..], page[..1024]);
    }
}
