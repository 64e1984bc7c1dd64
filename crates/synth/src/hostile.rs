//! Hostile captures: traffic an attacker on the internet can shape to make
//! pov spend time or memory out of proportion to the capture.
//!
//! Each [`HostileClass`] is one attack, parameterised by a count (`scale`:
//! messages, requests, pages, users, ... as the class says), so that the
//! same attack can be written at two sizes and the cost of reading them
//! compared (benches/hostile). The capture grows linearly with the scale; a
//! pov that is linear in its input takes time and memory that grow at most
//! as much.
//!
//! Frames are written as they are made, in capture-time order, so memory is
//! independent of the scale. The bytes are deterministic: a class and a
//! scale give the same file on every machine.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};

use etherparse::{IpNumber, Ipv4Header};

use crate::tcp::{ACK, Endpoint, Endpoints, FIN, MS, PSH, Pkt, RST, SYN, US, frame};
use crate::writer::{CaptureFormat, CaptureWriter};

/// One kind of hostile traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostileClass {
    /// Requests `GET / HTTP/1.1\r\n:\r\n\r\n` (an empty header name: every
    /// one malformed) back to back in segments of up to 200,000 bytes (as a
    /// capture on a host with segmentation offload shows them); scale:
    /// messages.
    MalformedBurstReq,
    /// One valid request, answered by `HTTP/1.1 200 OK\r\n:\r\n\r\n` back
    /// to back in segments of up to 200,000 bytes; scale: messages.
    MalformedBurstResp,
    /// gzip-encoded POST bodies of 256 KiB of zeros (about 300 bytes on the
    /// wire each) on three connections, never answered; scale: requests.
    GzipPending,
    /// Connections each answered with a brotli body (16 MiB window) whose
    /// first meta-block declares megabytes, of which the first 256 bytes
    /// come, and then nothing (the connections stay open); scale:
    /// connections.
    BrotliPending,
    /// Malformed requests, each in its own segment, then as many `400`
    /// answers, on one connection; scale: pairs.
    MalformedPairs,
    /// One user, one session, one page after another (2 s apart), each
    /// answered `500` with an HTML error page; scale: pages.
    FailedSession,
    /// One user, one session, pages answered `200`; scale: pages.
    LongSession,
    /// [`OPEN_SESSIONS_USERS`] users, each with a session cookie and an
    /// address of its own, asking for a page a second on one connection,
    /// all of them still at it when the capture ends: as many long
    /// sessions, built at the end of the input; scale: pages.
    OpenSessions,
    /// A page answered `500` whose style sheet has `url(x)` again and
    /// again; scale: `url(` occurrences.
    StyleUrls,
    /// Users each with a session cookie of their own, from an address of
    /// their own, one page each (10 ms apart); scale: users.
    ManyUsers,
    /// Connections opened (handshake) and never used or closed; scale:
    /// connections.
    ManyConns,
    /// Requests with 4,000 header fields each, answered; scale: requests.
    ManyHeaders,
    /// Requests whose target and Referer are 30,000 bytes long, answered;
    /// scale: requests.
    LongUrls,
    /// Requests with a Cookie header of 2,000 cookies, answered with 1,000
    /// Set-Cookie fields; scale: requests.
    ManyCookies,
    /// One chunked answer of 1-byte chunks, each with a 100-byte chunk
    /// extension; scale: chunks.
    ChunkExtensions,
    /// Answers whose gzip body inflates 1,000-fold (4 MiB of zeros in about
    /// 4 KB), up to pov's ratio cap; scale: answers.
    GzipBomb,
    /// One request body sent in 1-byte segments in reverse order, the first
    /// byte last (every piece held out of order); scale: segments.
    OutOfOrder,
    /// First IPv4 fragments of datagrams that never complete; scale:
    /// fragments.
    FragmentFlood,
    /// The same 1,460-byte segment sent again and again; scale: copies.
    Retransmissions,
    /// Requests for `/` pipelined on 64 connections within a second, then
    /// every connection reset by the server unanswered; scale: requests.
    ResetPipelines,
    /// One user requesting a page every 10 s, and connection attempts from
    /// the same address refused (SYN answered by RST) in between; scale:
    /// refused attempts.
    RefusedFlood,
    /// One user fetching images 11 s apart, each naming a Referer that is
    /// no page of the session; scale: images.
    OrphanResources,
    /// One address and User-Agent opening connections whose first request
    /// has no cookie, then the cookie on every one of them; scale:
    /// connections.
    CookielessClaims,
    /// Pages answered `200` whose 250 KB of text repeats the start of an
    /// error message (`Fatal error: ` and a few words) without ever
    /// finishing one, as a log viewer or a page echoing its query can: a
    /// test of the error-page rules' automaton; scale: pages.
    ErrorText,
    /// Pages answered `200` whose 250 KB open `<script`, `<style` and
    /// `<!--` again and again and never close them: a test of the scan that
    /// takes scripts, styles and comments out before the rules read a
    /// page; scale: pages.
    UnclosedTags,
}

impl HostileClass {
    /// Every class, in the order the benchmark runs them.
    pub const ALL: [HostileClass; 25] = [
        HostileClass::MalformedBurstReq,
        HostileClass::MalformedBurstResp,
        HostileClass::GzipPending,
        HostileClass::BrotliPending,
        HostileClass::MalformedPairs,
        HostileClass::FailedSession,
        HostileClass::LongSession,
        HostileClass::OpenSessions,
        HostileClass::StyleUrls,
        HostileClass::ManyUsers,
        HostileClass::ManyConns,
        HostileClass::ManyHeaders,
        HostileClass::LongUrls,
        HostileClass::ManyCookies,
        HostileClass::ChunkExtensions,
        HostileClass::GzipBomb,
        HostileClass::OutOfOrder,
        HostileClass::FragmentFlood,
        HostileClass::Retransmissions,
        HostileClass::ResetPipelines,
        HostileClass::RefusedFlood,
        HostileClass::OrphanResources,
        HostileClass::CookielessClaims,
        HostileClass::ErrorText,
        HostileClass::UnclosedTags,
    ];

    /// The class's name on the command line (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            HostileClass::MalformedBurstReq => "malformed-burst-req",
            HostileClass::MalformedBurstResp => "malformed-burst-resp",
            HostileClass::GzipPending => "gzip-pending",
            HostileClass::BrotliPending => "brotli-pending",
            HostileClass::MalformedPairs => "malformed-pairs",
            HostileClass::FailedSession => "failed-session",
            HostileClass::LongSession => "long-session",
            HostileClass::OpenSessions => "open-sessions",
            HostileClass::StyleUrls => "style-urls",
            HostileClass::ManyUsers => "many-users",
            HostileClass::ManyConns => "many-conns",
            HostileClass::ManyHeaders => "many-headers",
            HostileClass::LongUrls => "long-urls",
            HostileClass::ManyCookies => "many-cookies",
            HostileClass::ChunkExtensions => "chunk-extensions",
            HostileClass::GzipBomb => "gzip-bomb",
            HostileClass::OutOfOrder => "out-of-order",
            HostileClass::FragmentFlood => "fragment-flood",
            HostileClass::Retransmissions => "retransmissions",
            HostileClass::ResetPipelines => "reset-pipelines",
            HostileClass::RefusedFlood => "refused-flood",
            HostileClass::OrphanResources => "orphan-resources",
            HostileClass::CookielessClaims => "cookieless-claims",
            HostileClass::ErrorText => "error-text",
            HostileClass::UnclosedTags => "unclosed-tags",
        }
    }

    /// The class named `name`.
    pub fn from_name(name: &str) -> Option<HostileClass> {
        HostileClass::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// The smaller of the two scales the benchmark runs (the larger is four
    /// times it): sized so that the capture is about 0.1 to 30 MB.
    pub fn bench_scale(self) -> u64 {
        match self {
            HostileClass::MalformedBurstReq | HostileClass::MalformedBurstResp => 5_000,
            HostileClass::GzipPending => 750,
            HostileClass::BrotliPending => 200,
            HostileClass::MalformedPairs => 10_000,
            HostileClass::FailedSession | HostileClass::LongSession => 10_000,
            HostileClass::OpenSessions => 40_000,
            HostileClass::StyleUrls => 10_000,
            HostileClass::ManyUsers => 10_000,
            HostileClass::ManyConns => 25_000,
            HostileClass::ManyHeaders => 250,
            HostileClass::LongUrls => 250,
            HostileClass::ManyCookies => 250,
            HostileClass::ChunkExtensions => 25_000,
            HostileClass::GzipBomb => 100,
            HostileClass::OutOfOrder => 20_000,
            HostileClass::FragmentFlood => 20_000,
            HostileClass::Retransmissions => 10_000,
            HostileClass::ResetPipelines => 5_000,
            HostileClass::RefusedFlood => 5_000,
            HostileClass::OrphanResources => 5_000,
            HostileClass::CookielessClaims => 5_000,
            HostileClass::ErrorText | HostileClass::UnclosedTags => 100,
        }
    }

    /// Whether the class makes a failed session that `pov replay html
    /// --failed` (and analyze's replays) would replay.
    pub fn has_failed_session(self) -> bool {
        matches!(
            self,
            HostileClass::FailedSession
                | HostileClass::StyleUrls
                | HostileClass::ResetPipelines
                | HostileClass::RefusedFlood
                | HostileClass::MalformedPairs
        )
    }
}

/// What was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostileTotals {
    /// Frames.
    pub frames: u64,
    /// Bytes of the capture file, headers included.
    pub bytes: u64,
}

/// Capture time of the first frame: 2026-11-02T02:00:00Z.
const T0: i64 = 1_793_584_800 * 1_000_000_000;
const SERVER_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x10, 0x00, 0x01];
const CLIENT_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x01, 0x00, 0xfe];
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const HOST: &str = "shop.example.com";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";
/// An Ethernet MSS.
const MSS: usize = 1460;
/// Users of [`HostileClass::OpenSessions`]: twice the sessions pov built
/// together at the end of the input before `FINISH_TXS`.
pub const OPEN_SESSIONS_USERS: u64 = 512;

/// The `n`th client address (10.x.y.z, never .0 or .255).
fn client_ip(n: u64) -> IpAddr {
    let n = n % (1 << 22);
    IpAddr::V4(Ipv4Addr::new(10, (n >> 14) as u8, ((n >> 6) & 0xff) as u8, 1 + (n & 0x3f) as u8))
}

/// The most TCP payload `tcp::frame` puts in one IPv4 packet.
const MAX_IP_PAYLOAD: usize = 65_495;
/// A segment as large as a host with segmentation offload captures it
/// (larger than an IPv4 packet; see [`Flow::pkt`]), within the snapshot
/// length.
const TSO_SEG: usize = 200_000;

/// The IPv4 header checksum of `h` (its checksum field zero).
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Frames to the capture, counted.
struct Out<W: Write> {
    w: CaptureWriter<W>,
}

impl<W: Write> Out<W> {
    fn raw(&mut self, ts: i64, frame: &[u8]) -> io::Result<()> {
        self.w.write(ts, frame)
    }
}

/// One TCP connection written packet by packet; offsets count stream bytes
/// of each side.
struct Flow {
    ends: Endpoints,
    c_next: u64,
    s_next: u64,
    ids: [u16; 2],
}

impl Flow {
    fn new(client_ip: IpAddr, client_port: u16, n: u64) -> Flow {
        let client = Endpoint { mac: CLIENT_MAC, ip: client_ip, port: client_port };
        let server = Endpoint { mac: SERVER_MAC, ip: IpAddr::V4(SERVER), port: 80 };
        // Fixed but distinct initial sequence numbers.
        let cisn = (n as u32).wrapping_mul(0x9e37_79b9) ^ 0x1234_5678;
        let sisn = (n as u32).wrapping_mul(0x85eb_ca6b) ^ 0x8765_4321;
        Flow {
            ends: Endpoints { client, server, vlan: None, cisn, sisn, ip_id: [1, 1] },
            c_next: 0,
            s_next: 0,
            ids: [1, 1],
        }
    }

    /// One packet at an explicit stream offset (nothing advances).
    fn pkt<W: Write>(
        &mut self,
        out: &mut Out<W>,
        ts: i64,
        from_client: bool,
        flags: u8,
        off: u64,
        payload: &[u8],
    ) -> io::Result<()> {
        let ack_off = if from_client { self.s_next } else { self.c_next };
        let p = Pkt {
            ts,
            from_client,
            flags,
            off,
            ack_off,
            win: if from_client { 2048 } else { 502 },
            payload: payload.to_vec(),
            retransmission: false,
            capture_duplicate: false,
            lost: false,
        };
        let side = usize::from(!from_client);
        let id = self.ids[side];
        self.ids[side] = id.wrapping_add(1);
        if payload.len() <= MAX_IP_PAYLOAD {
            return out.raw(ts, &frame(&self.ends, &p, id));
        }
        // Larger than one IPv4 packet can say: as a capture on a host with
        // segmentation offload shows it, the IPv4 total length 0 and the
        // segment running to the end of the frame.
        let mut f = frame(&self.ends, &Pkt { payload: Vec::new(), ..p }, id);
        if f.len() < 34 {
            return Err(io::Error::other("hostile: could not build a frame"));
        }
        f[16..18].copy_from_slice(&[0, 0]);
        f[24..26].copy_from_slice(&[0, 0]);
        let sum = ipv4_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(payload);
        out.raw(ts, &f)
    }

    /// SYN, SYN-ACK, ACK from `t`; returns the time after.
    fn open<W: Write>(&mut self, out: &mut Out<W>, t: i64) -> io::Result<i64> {
        self.pkt(out, t, true, SYN, 0, &[])?;
        self.pkt(out, t + 20 * US, false, SYN | ACK, 0, &[])?;
        self.pkt(out, t + 40 * US, true, ACK, 0, &[])?;
        Ok(t + 50 * US)
    }

    /// `data` from one side in segments of at most `seg` bytes, 5 µs apart;
    /// the other side acknowledges the lot. Returns the time after.
    fn send<W: Write>(
        &mut self,
        out: &mut Out<W>,
        t: i64,
        from_client: bool,
        data: &[u8],
        seg: usize,
    ) -> io::Result<i64> {
        let mut t = t;
        for piece in data.chunks(seg.max(1)) {
            let off = if from_client { self.c_next } else { self.s_next };
            self.pkt(out, t, from_client, ACK | PSH, off, piece)?;
            if from_client {
                self.c_next += piece.len() as u64;
            } else {
                self.s_next += piece.len() as u64;
            }
            t += 5 * US;
        }
        let off = if from_client { self.s_next } else { self.c_next };
        self.pkt(out, t, !from_client, ACK, off, &[])?;
        Ok(t + 5 * US)
    }

    /// FIN from the client, FIN from the server, last ACK.
    fn close<W: Write>(&mut self, out: &mut Out<W>, t: i64) -> io::Result<i64> {
        let (c, s) = (self.c_next, self.s_next);
        self.pkt(out, t, true, FIN | ACK, c, &[])?;
        self.c_next += 1;
        self.pkt(out, t + 20 * US, false, FIN | ACK, s, &[])?;
        self.s_next += 1;
        let c = self.c_next;
        self.pkt(out, t + 40 * US, true, ACK, c, &[])?;
        Ok(t + 50 * US)
    }

    /// A RST from the server.
    fn server_rst<W: Write>(&mut self, out: &mut Out<W>, t: i64) -> io::Result<i64> {
        let s = self.s_next;
        self.pkt(out, t, false, RST | ACK, s, &[])?;
        Ok(t + 5 * US)
    }
}

fn request(method: &str, target: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {UA}\r\n");
    for (k, v) in extra {
        r.push_str(k);
        r.push_str(": ");
        r.push_str(v);
        r.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut b = r.into_bytes();
    b.extend_from_slice(body);
    b
}

fn response(status: u16, reason: &str, ctype: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n");
    for (k, v) in extra {
        r.push_str(k);
        r.push_str(": ");
        r.push_str(v);
        r.push_str("\r\n");
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut b = r.into_bytes();
    b.extend_from_slice(body);
    b
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// 4 MiB of noise as brotli at a 16 MiB window: its first meta-block
/// declares megabytes, and a decoder sizes its ring buffer from that
/// before they arrive (the body of [`HostileClass::BrotliPending`]).
pub fn brotli_declaring_megabytes() -> Vec<u8> {
    let mut rng = crate::rng::Rng::new(0xb207);
    let noise: Vec<u8> = (0..4 << 20).map(|_| rng.next_u32() as u8).collect();
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 4, 24);
        let _ = w.write_all(&noise);
    }
    out
}

const PAGE_ACCEPT: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
const ERROR_PAGE: &[u8] =
    b"<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>";
const OK_PAGE: &[u8] = b"<html><head><title>Shop</title></head><body><h1>Welcome</h1><p>Products</p></body></html>";

/// The page of [`HostileClass::ErrorText`]: about 250 KB (within pov's
/// default body cap) of `Fatal error: ` each followed by up to 50 words,
/// ASCII and not, that never make ` in FILE on line N`.
fn error_text_page() -> Vec<u8> {
    const WORDS: [&str; 8] = ["ab", "é", "ß", "ж", "中", " on", " in", "x"];
    let mut page = b"<html><body><pre>".to_vec();
    let mut seed: u32 = 1;
    let mut next = || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 16) as usize
    };
    while page.len() < 250_000 {
        page.extend_from_slice(b"Fatal error: ");
        for _ in 0..next() % 51 {
            page.extend_from_slice(WORDS[next() % WORDS.len()].as_bytes());
        }
    }
    page.extend_from_slice(b"</pre></body></html>");
    page
}

/// The page of [`HostileClass::UnclosedTags`]: about 250 KB (within pov's
/// default body cap) of `<script `, `<style>` and `<!-- ` in turn, each
/// followed by a few letters, none ever closed.
fn unclosed_page() -> Vec<u8> {
    const OPENINGS: [&str; 3] = ["<script ", "<style>", "<!-- "];
    let mut page = b"<html><body>".to_vec();
    let mut i = 0;
    while page.len() < 250_000 {
        page.extend_from_slice(OPENINGS[i % OPENINGS.len()].as_bytes());
        page.extend_from_slice(b"x y z ");
        i += 1;
    }
    page.extend_from_slice(b"</body></html>");
    page
}

/// Writes `class` at `scale` as a capture in `format` to `out`.
pub fn generate_hostile<W: Write>(
    class: HostileClass,
    scale: u64,
    format: CaptureFormat,
    out: W,
) -> io::Result<(W, HostileTotals)> {
    let mut o = Out { w: CaptureWriter::new(out, format)? };
    let n = scale;
    let t = T0;
    match class {
        HostileClass::MalformedBurstReq => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let t = f.open(&mut o, t)?;
            let data = b"GET / HTTP/1.1\r\n:\r\n\r\n".repeat(n as usize);
            let t = f.send(&mut o, t, true, &data, TSO_SEG)?;
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::MalformedBurstResp => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let t = f.open(&mut o, t)?;
            let t = f.send(&mut o, t, true, &request("GET", "/", &[PAGE_ACCEPT], b""), MSS)?;
            let data = b"HTTP/1.1 200 OK\r\n:\r\n\r\n".repeat(n as usize);
            let t = f.send(&mut o, t + 10 * MS, false, &data, TSO_SEG)?;
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::GzipPending => {
            let body = gzip(&vec![0u8; 256 << 10]);
            let req = request("POST", "/upload", &[("Content-Encoding", "gzip")], &body);
            let mut flows: Vec<Flow> = (0..3).map(|i| Flow::new(client_ip(1), 40_000 + i as u16, i)).collect();
            let mut t = t;
            for f in flows.iter_mut() {
                t = f.open(&mut o, t)?;
            }
            for i in 0..n {
                let f = &mut flows[(i % 3) as usize];
                t = f.send(&mut o, t + 100 * US, true, &req, MSS)?;
            }
        }
        HostileClass::BrotliPending => {
            let body = brotli_declaring_megabytes();
            let resp = response(200, "OK", "text/html", &[("Content-Encoding", "br")], &body);
            let cut = resp.len() - body.len() + 256;
            let req = request("GET", "/", &[PAGE_ACCEPT, ("Accept-Encoding", "br")], b"");
            let mut t = t;
            for i in 0..n {
                let mut f = Flow::new(client_ip(1), 20_000 + (i % 40_000) as u16, i);
                t = f.open(&mut o, t + 100 * US)?;
                t = f.send(&mut o, t, true, &req, MSS)?;
                t = f.send(&mut o, t + MS, false, &resp[..cut], MSS)?;
            }
        }
        HostileClass::MalformedPairs => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let mut t = f.open(&mut o, t)?;
            for _ in 0..n {
                t = f.send(&mut o, t, true, b"GET / HTTP/1.1\r\n:\r\n\r\n", MSS)?;
            }
            let resp = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
            for _ in 0..n {
                t = f.send(&mut o, t, false, resp, MSS)?;
            }
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::FailedSession | HostileClass::LongSession => {
            let failed = class == HostileClass::FailedSession;
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let mut t = f.open(&mut o, t)?;
            for i in 0..n {
                let target = format!("/product/{i}");
                let req = request("GET", &target, &[PAGE_ACCEPT, ("Cookie", "sid=hostile-session-1")], b"");
                let at = T0 + (i as i64) * 2_000 * MS;
                let t1 = f.send(&mut o, at.max(t), true, &req, MSS)?;
                let resp = if failed {
                    response(500, "Internal Server Error", "text/html", &[], ERROR_PAGE)
                } else {
                    response(200, "OK", "text/html", &[], OK_PAGE)
                };
                t = f.send(&mut o, t1 + 2 * MS, false, &resp, MSS)?;
            }
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::OpenSessions => {
            // All connections open first; then a round a second: every
            // user's request, then every answer (frames in time order).
            let users = OPEN_SESSIONS_USERS;
            let mut flows: Vec<Flow> = (0..users).map(|u| Flow::new(client_ip(u), 40_000, u)).collect();
            let mut t = t;
            for f in &mut flows {
                t = f.open(&mut o, t + 100 * US)?;
            }
            let cookies: Vec<String> = (0..users).map(|u| format!("sid=open-{u:04}")).collect();
            let resp = response(200, "OK", "text/html", &[], OK_PAGE);
            for i in 0..n.div_ceil(users) {
                t = t.max(T0 + (1 + i as i64) * 1_000 * MS);
                // (The last round may be short.)
                let round = (n - i * users).min(users) as usize;
                for (f, cookie) in flows.iter_mut().zip(&cookies).take(round) {
                    let req = request("GET", &format!("/product/{i}"), &[PAGE_ACCEPT, ("Cookie", cookie)], b"");
                    t = f.send(&mut o, t, true, &req, MSS)?;
                }
                t += 2 * MS;
                for f in flows.iter_mut().take(round) {
                    t = f.send(&mut o, t, false, &resp, MSS)?;
                }
            }
        }
        HostileClass::StyleUrls => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let t = f.open(&mut o, t)?;
            let cookie = ("Cookie", "sid=hostile-style");
            let t = f.send(&mut o, t, true, &request("GET", "/", &[PAGE_ACCEPT, cookie], b""), MSS)?;
            let page: &[u8] = b"<html><head><link rel=\"stylesheet\" href=\"/s.css\"></head><body>Internal Server Error</body></html>";
            let t = f.send(
                &mut o,
                t + 2 * MS,
                false,
                &response(500, "Internal Server Error", "text/html", &[], page),
                MSS,
            )?;
            let css_req = request(
                "GET",
                "/s.css",
                &[("Accept", "text/css,*/*;q=0.1"), ("Referer", "http://shop.example.com/"), cookie],
                b"",
            );
            let t = f.send(&mut o, t + MS, true, &css_req, MSS)?;
            let css = b"url(x)".repeat(n as usize);
            let t = f.send(&mut o, t + 2 * MS, false, &response(200, "OK", "text/css", &[], &css), MSS)?;
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::ManyUsers => {
            for i in 0..n {
                let mut f = Flow::new(client_ip(i), 40_000 + (i % 20_000) as u16, i);
                let at = T0 + (i as i64) * 10 * MS;
                let t = f.open(&mut o, at)?;
                let cookie = format!("sid=user-{i:08}");
                let t = f.send(&mut o, t, true, &request("GET", "/", &[PAGE_ACCEPT, ("Cookie", &cookie)], b""), MSS)?;
                let t = f.send(&mut o, t + 2 * MS, false, &response(200, "OK", "text/html", &[], OK_PAGE), MSS)?;
                f.close(&mut o, t + MS)?;
            }
        }
        HostileClass::ManyConns => {
            for i in 0..n {
                let mut f = Flow::new(client_ip(i / 50_000), 10_000 + (i % 50_000) as u16, i);
                f.open(&mut o, T0 + (i as i64) * 100 * US)?;
            }
        }
        HostileClass::ManyHeaders => {
            let mut extra: Vec<(String, String)> = Vec::with_capacity(4000);
            for i in 0..4000 {
                extra.push((format!("X-{i}"), "v".into()));
            }
            let refs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let mut t = f.open(&mut o, t)?;
            let req = request("GET", "/", &refs, b"");
            let resp = response(200, "OK", "text/html", &refs, OK_PAGE);
            for _ in 0..n {
                t = f.send(&mut o, t + MS, true, &req, MSS)?;
                t = f.send(&mut o, t + MS, false, &resp, MSS)?;
            }
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::LongUrls => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let mut t = f.open(&mut o, t)?;
            let cookie = ("Cookie", "sid=hostile-urls");
            for i in 0..n {
                let target = format!("/search?q={i}-{}", "a".repeat(30_000));
                let referer = format!("http://{HOST}/r{i}?{}", "b".repeat(30_000));
                let req = request("GET", &target, &[PAGE_ACCEPT, cookie, ("Referer", &referer)], b"");
                t = f.send(&mut o, t + 100 * MS, true, &req, MSS)?;
                t = f.send(&mut o, t + MS, false, &response(200, "OK", "text/html", &[], OK_PAGE), MSS)?;
            }
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::ManyCookies => {
            let jar: Vec<String> = (0..2000).map(|i| format!("c{i}=v{i}")).collect();
            let jar = jar.join("; ");
            let sets: Vec<(String, String)> =
                (0..1000).map(|i| ("Set-Cookie".to_string(), format!("s{i}=v{i}; Path=/"))).collect();
            let sets: Vec<(&str, &str)> = sets.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let mut t = f.open(&mut o, t)?;
            let req = request("GET", "/", &[PAGE_ACCEPT, ("Cookie", &jar)], b"");
            let resp = response(200, "OK", "text/html", &sets, OK_PAGE);
            for _ in 0..n {
                t = f.send(&mut o, t + 100 * MS, true, &req, MSS)?;
                t = f.send(&mut o, t + MS, false, &resp, MSS)?;
            }
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::ChunkExtensions => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let t = f.open(&mut o, t)?;
            let t = f.send(&mut o, t, true, &request("GET", "/", &[PAGE_ACCEPT], b""), MSS)?;
            let mut body = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let ext = format!(";{}=1", "e".repeat(96));
            for _ in 0..n {
                body.extend_from_slice(b"1");
                body.extend_from_slice(ext.as_bytes());
                body.extend_from_slice(b"\r\nx\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
            let t = f.send(&mut o, t + 2 * MS, false, &body, MSS)?;
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::GzipBomb => {
            let bomb = gzip(&vec![0u8; 4 << 20]);
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let mut t = f.open(&mut o, t)?;
            let req = request("GET", "/data", &[("Accept-Encoding", "gzip")], b"");
            let resp = response(200, "OK", "text/html", &[("Content-Encoding", "gzip")], &bomb);
            for _ in 0..n {
                t = f.send(&mut o, t + MS, true, &req, MSS)?;
                t = f.send(&mut o, t + MS, false, &resp, MSS)?;
            }
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::OutOfOrder => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let t = f.open(&mut o, t)?;
            let req = request("POST", "/upload", &[], &vec![b'z'; n as usize]);
            // The head is sent whole after the body: the body's bytes are
            // all held until it comes.
            let head_len = req.len() - n as usize;
            let mut t = t;
            for k in (head_len..req.len()).rev() {
                f.pkt(&mut o, t, true, ACK | PSH, k as u64, &req[k..k + 1])?;
                t += 2 * US;
            }
            f.pkt(&mut o, t, true, ACK | PSH, 0, &req[..head_len])?;
            f.c_next = req.len() as u64;
            let t = f.send(&mut o, t + MS, false, &response(200, "OK", "text/html", &[], OK_PAGE), MSS)?;
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::FragmentFlood => {
            for i in 0..n {
                let payload = [0x5au8; 512];
                let src = match client_ip(i / 65_536) {
                    IpAddr::V4(a) => a.octets(),
                    IpAddr::V6(_) => [10, 0, 0, 1],
                };
                let mut ip =
                    Ipv4Header::new(payload.len() as u16, 64, IpNumber::TCP, src, SERVER.octets()).unwrap_or_default();
                ip.identification = (i % 65_536) as u16;
                ip.more_fragments = true;
                let mut fr = Vec::with_capacity(14 + 20 + payload.len());
                fr.extend_from_slice(&SERVER_MAC);
                fr.extend_from_slice(&CLIENT_MAC);
                fr.extend_from_slice(&[0x08, 0x00]);
                ip.write(&mut fr).map_err(io::Error::other)?;
                fr.extend_from_slice(&payload);
                o.raw(T0 + (i as i64) * 20 * US, &fr)?;
            }
        }
        HostileClass::Retransmissions => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let t = f.open(&mut o, t)?;
            let mut req = request("POST", "/upload", &[], &vec![b'r'; 4 * MSS]);
            req.truncate(MSS);
            let mut t = t;
            for _ in 0..n {
                f.pkt(&mut o, t, true, ACK, 0, &req)?;
                t += 10 * US;
            }
            f.c_next = req.len() as u64;
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::ResetPipelines => {
            let conns = 64u64;
            let mut flows: Vec<Flow> = (0..conns).map(|i| Flow::new(client_ip(1), 40_000 + i as u16, i)).collect();
            let mut t = t;
            for f in flows.iter_mut() {
                t = f.open(&mut o, t)?;
            }
            let req = request("GET", "/", &[PAGE_ACCEPT, ("Cookie", "sid=hostile-reset")], b"");
            for i in 0..n {
                let f = &mut flows[(i % conns) as usize];
                let at = T0 + (i as i64) * (1_000 * MS) / (n as i64).max(1);
                t = f.send(&mut o, at.max(t), true, &req, MSS)?;
            }
            for f in flows.iter_mut() {
                t = f.server_rst(&mut o, t + 10 * US)?;
            }
        }
        HostileClass::RefusedFlood => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let mut t = f.open(&mut o, t)?;
            let pages = n / 10 + 1;
            let mut refused = 0u64;
            for i in 0..pages {
                let at = T0 + (i as i64) * 10_000 * MS;
                let req = request("GET", &format!("/p/{i}"), &[PAGE_ACCEPT, ("Cookie", "sid=hostile-refused")], b"");
                t = f.send(&mut o, at.max(t), true, &req, MSS)?;
                t = f.send(&mut o, t + MS, false, &response(200, "OK", "text/html", &[], OK_PAGE), MSS)?;
                // Ten refused attempts in the next seconds.
                for k in 0..10 {
                    if refused == n {
                        break;
                    }
                    let mut g = Flow::new(client_ip(1), 41_000 + (refused % 20_000) as u16, 1_000_000 + refused);
                    let at = t + (k as i64 + 1) * 500 * MS;
                    g.pkt(&mut o, at, true, SYN, 0, &[])?;
                    g.pkt(&mut o, at + 20 * US, false, RST | ACK, 0, &[])?;
                    refused += 1;
                }
            }
            f.close(&mut o, T0 + (pages as i64) * 10_000 * MS)?;
        }
        HostileClass::OrphanResources => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let mut t = f.open(&mut o, t)?;
            let png = b"\x89PNG\r\n\x1a\n";
            for i in 0..n {
                let at = T0 + (i as i64) * 11_000 * MS;
                let req = request(
                    "GET",
                    &format!("/img/{i}.png"),
                    &[
                        ("Accept", "image/avif,image/webp,*/*"),
                        ("Referer", "http://shop.example.com/nowhere"),
                        ("Cookie", "sid=hostile-orphans"),
                    ],
                    b"",
                );
                t = f.send(&mut o, at.max(t), true, &req, MSS)?;
                t = f.send(&mut o, t + MS, false, &response(200, "OK", "image/png", &[], png), MSS)?;
            }
            f.close(&mut o, t + 100 * MS)?;
        }
        HostileClass::CookielessClaims => {
            let mut flows: Vec<Flow> =
                (0..n).map(|i| Flow::new(client_ip(1), 10_000 + (i % 50_000) as u16, i)).collect();
            let mut t = t;
            for (i, f) in flows.iter_mut().enumerate() {
                t = f.open(&mut o, t)?;
                let req = request("GET", &format!("/a/{i}.js"), &[("Accept", "*/*")], b"");
                t = f.send(&mut o, t, true, &req, MSS)?;
                t = f.send(&mut o, t + 100 * US, false, &response(200, "OK", "text/javascript", &[], b"1"), MSS)?;
            }
            for (i, f) in flows.iter_mut().enumerate() {
                let req = request("GET", &format!("/b/{i}.js"), &[("Accept", "*/*"), ("Cookie", "sid=late")], b"");
                t = f.send(&mut o, t + 100 * US, true, &req, MSS)?;
                t = f.send(&mut o, t + 100 * US, false, &response(200, "OK", "text/javascript", &[], b"1"), MSS)?;
            }
        }
        HostileClass::ErrorText | HostileClass::UnclosedTags => {
            let mut f = Flow::new(client_ip(1), 40_000, 1);
            let mut t = f.open(&mut o, t)?;
            let page = if class == HostileClass::ErrorText { error_text_page() } else { unclosed_page() };
            let resp = response(200, "OK", "text/html; charset=utf-8", &[], &page);
            for i in 0..n {
                let req = request("GET", &format!("/log/{i}"), &[PAGE_ACCEPT, ("Cookie", "sid=hostile-text")], b"");
                t = f.send(&mut o, t + 100 * MS, true, &req, MSS)?;
                t = f.send(&mut o, t + MS, false, &resp, MSS)?;
            }
            f.close(&mut o, t + 100 * MS)?;
        }
    }
    let totals = HostileTotals { frames: o.w.frames(), bytes: o.w.bytes() };
    Ok((o.w.finish()?, totals))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8]) -> Vec<(i64, usize)> {
        // Classic pcap, microseconds: 24-byte header, then records.
        let mut out = Vec::new();
        let mut at = 24;
        while at + 16 <= bytes.len() {
            let secs = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as i64;
            let us = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as i64;
            let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            out.push((secs * 1_000_000 + us, len));
            at += 16 + len;
        }
        assert_eq!(at, bytes.len());
        out
    }

    #[test]
    fn every_class_grows_linearly_in_time_order_and_is_deterministic() {
        for c in HostileClass::ALL {
            assert_eq!(HostileClass::from_name(c.name()), Some(c));
            let small = (c.bench_scale() / 10).max(4);
            let (a, ta) = generate_hostile(c, small, CaptureFormat::Pcap, Vec::new()).unwrap();
            let (b, tb) = generate_hostile(c, small * 4, CaptureFormat::Pcap, Vec::new()).unwrap();
            let (a2, _) = generate_hostile(c, small, CaptureFormat::Pcap, Vec::new()).unwrap();
            assert_eq!(a, a2, "{}", c.name());
            assert_eq!(ta.bytes, a.len() as u64);
            let fa = frames(&a);
            let fb = frames(&b);
            assert_eq!(fa.len() as u64, ta.frames);
            assert_eq!(fb.len() as u64, tb.frames);
            assert!(fa.windows(2).all(|w| w[0].0 <= w[1].0), "{} out of order", c.name());
            assert!(fb.windows(2).all(|w| w[0].0 <= w[1].0), "{} out of order", c.name());
            // Four times the scale: between 2.5 and 4.5 times the bytes
            // (fixed parts such as a handshake make small captures
            // relatively larger).
            let r = tb.bytes as f64 / ta.bytes as f64;
            assert!((2.5..=4.5).contains(&r), "{}: {r}", c.name());
            assert!(fb.iter().all(|(_, len)| *len <= TSO_SEG + 54), "{}", c.name());
        }
    }

    #[test]
    fn a_malformed_burst_is_one_big_segment_of_repeated_messages() {
        let (b, _) = generate_hostile(HostileClass::MalformedBurstReq, 5000, CaptureFormat::Pcap, Vec::new()).unwrap();
        let f = frames(&b);
        let msg = b"GET / HTTP/1.1\r\n:\r\n\r\n";
        // Handshake, one segment of 105,000 bytes, the ACK, close.
        let big: Vec<usize> = f.iter().map(|x| x.1).filter(|l| *l > 1000).collect();
        assert_eq!(big, vec![5000 * msg.len() + 54]);
        // Its IPv4 total length is 0 (offload), its header checksum right.
        let rec = 24 + f.iter().take_while(|x| x.1 <= 1000).map(|x| 16 + x.1).sum::<usize>();
        let ip = &b[rec + 16 + 14..rec + 16 + 34];
        assert_eq!(&ip[2..4], &[0, 0]);
        assert_eq!(ipv4_checksum(ip), 0);
        // The two payloads (records of more than 1,000 bytes, less their
        // pcap, Ethernet, IPv4 and TCP headers) make the stream.
        let mut stream = Vec::new();
        let mut at = 24;
        while at + 16 <= b.len() {
            let len = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
            if len > 1000 {
                stream.extend_from_slice(&b[at + 16 + 54..at + 16 + len]);
            }
            at += 16 + len;
        }
        assert_eq!(stream, msg.repeat(5000));
    }
}
