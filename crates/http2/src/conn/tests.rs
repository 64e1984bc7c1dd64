//! Connections on hand-built frames: every frame type, padding,
//! CONTINUATION, caps, resets, GOAWAY, push, closes and loss.

use super::*;
use crate::KeepRule;
use crate::frame::{ACK, END_HEADERS, END_STREAM, PADDED, PRIORITY};

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIO: u8 = 2;
const RST: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW: u8 = 8;
const CONT: u8 = 9;

fn ch(b: &[u8]) -> Chunk<'_> {
    Chunk { bytes: b, first_ts: 0, last_ts: 0, first_frame: 0, last_frame: 0 }
}

fn fr(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK literal without indexing, new name (RFC 7541 6.2.2).
fn lit(out: &mut Vec<u8>, n: &str, v: &str) {
    out.push(0);
    out.push(n.len() as u8);
    out.extend_from_slice(n.as_bytes());
    out.push(v.len() as u8);
    out.extend_from_slice(v.as_bytes());
}

/// HPACK literal with incremental indexing, new name (6.2.1).
fn lit_idx(out: &mut Vec<u8>, n: &str, v: &str) {
    out.push(0x40);
    out.push(n.len() as u8);
    out.extend_from_slice(n.as_bytes());
    out.push(v.len() as u8);
    out.extend_from_slice(v.as_bytes());
}

fn request(method: &str, path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    lit(&mut b, ":method", method);
    b.push(0x86); // :scheme http
    lit(&mut b, ":path", path);
    lit(&mut b, ":authority", "shop.test");
    lit(&mut b, "user-agent", "t/1");
    b
}

fn status(code: u16) -> Vec<u8> {
    let mut b = Vec::new();
    lit(&mut b, ":status", &code.to_string());
    lit(&mut b, "content-type", "text/html");
    b
}

fn settings_frame() -> Vec<u8> {
    fr(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100, 0, 4, 0, 0, 0xff, 0xff])
}

/// Steps of a conversation.
enum Step {
    C(Vec<u8>),
    S(Vec<u8>),
    CGap(u64),
    SGap(u64),
}
use Step::*;

fn client_start() -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(settings_frame());
    v
}

/// Runs steps (each at its own time, 1 ms apart, frame number = step)
/// and closes with FIN; returns the transactions by stream id.
fn run_with(cfg: H2Config, start: Start, steps: &[Step]) -> (Vec<H2Transaction>, H2Stats) {
    let mut c = H2Conn::new(cfg, start);
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let t = i as i64 * 1_000_000;
        let n = i as u64;
        match s {
            C(b) => {
                c.data(Side::Client, &Chunk { bytes: b, first_ts: t, last_ts: t + 500, first_frame: n, last_frame: n })
            }
            S(b) => {
                c.data(Side::Server, &Chunk { bytes: b, first_ts: t, last_ts: t + 500, first_frame: n, last_frame: n })
            }
            CGap(n) => c.gap(Side::Client, *n, t),
            SGap(n) => c.gap(Side::Server, *n, t),
        }
        out.extend(c.take());
    }
    c.close(CloseHow::Fin, steps.len() as i64 * 1_000_000);
    out.extend(c.take());
    out.sort_by_key(|t| t.stream);
    (out, c.stats().clone())
}

fn run(steps: &[Step]) -> (Vec<H2Transaction>, H2Stats) {
    run_with(H2Config::default(), Start::Preface, steps)
}

/// (stream, method, path, status, response body, outcome)
/// (stream, method, path, status, response body octets, outcome)
type Row = (u32, Option<String>, Option<String>, Option<u16>, u64, Outcome);

fn summary(txs: &[H2Transaction]) -> Vec<Row> {
    txs.iter()
        .map(|t| {
            (
                t.stream,
                t.method.clone(),
                t.path.as_ref().map(|p| String::from_utf8_lossy(p).into_owned()),
                t.status,
                t.response_body.wire_bytes,
                t.outcome,
            )
        })
        .collect()
}

fn row(stream: u32, method: Option<&str>, path: Option<&str>, status: Option<u16>, body: u64, o: Outcome) -> Row {
    (stream, method.map(str::to_string), path.map(str::to_string), status, body, o)
}

/// Two requests on streams 1 and 3, answered 200 (10 + 5 octets) and 404.
fn two_requests() -> Vec<u8> {
    let mut c = client_start();
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS, 1, &request("GET", "/a")));
    c.extend(fr(HEADERS, END_HEADERS, 3, &request("POST", "/cart")));
    c.extend(fr(DATA, END_STREAM, 3, b"qty=2"));
    c
}

fn two_responses() -> Vec<u8> {
    let mut s = settings_frame();
    s.extend(fr(SETTINGS, ACK, 0, &[]));
    s.extend(fr(HEADERS, END_HEADERS, 1, &status(200)));
    s.extend(fr(DATA, 0, 1, b"0123456789"));
    s.extend(fr(HEADERS, END_HEADERS | END_STREAM, 3, &status(404)));
    s.extend(fr(DATA, END_STREAM, 1, b"abcde"));
    s
}

#[test]
fn two_streams_complete() {
    let (txs, st) = run(&[C(two_requests()), S(two_responses())]);
    assert_eq!(
        summary(&txs),
        vec![
            row(1, Some("GET"), Some("/a"), Some(200), 15, Outcome::Complete),
            row(3, Some("POST"), Some("/cart"), Some(404), 0, Outcome::Complete),
        ]
    );
    let t = &txs[0];
    assert_eq!(t.authority.as_deref(), Some("shop.test"));
    assert_eq!(t.scheme.as_deref(), Some("http"));
    assert_eq!(t.request_headers.get("user-agent"), Some(&b"t/1"[..]));
    assert_eq!(t.response_headers.get("content-type"), Some(&b"text/html"[..]));
    assert_eq!(t.response_body.kept, b"0123456789abcde");
    assert_eq!(t.response_body.frames, 2);
    assert_eq!(txs[1].request_body.wire_bytes, 5);
    assert_eq!(txs[1].request_body.kept, b"qty=2");
    // Times: request in step 0, response in step 1 (1 ms later).
    assert_eq!(t.timing.req_start, Some(0));
    assert_eq!(t.timing.req_end, Some(500));
    assert_eq!(t.timing.resp_start, Some(1_000_000));
    assert_eq!(t.timing.resp_end, Some(1_000_500));
    assert_eq!(t.resp_frames, Some(FrameSpan { first: 1, last: 1 }));
    assert_eq!(t.version(), "2");
    assert_eq!(st.frames[..5], [3, 4, 0, 0, 3]);
    assert_eq!(st.outcome(Outcome::Complete), 2);
}

#[test]
fn every_split_point_gives_the_same_transactions() {
    let (whole, _) = run(&[C(two_requests()), S(two_responses())]);
    let c = two_requests();
    let s = two_responses();
    for cut in 0..=c.len().max(s.len()) {
        let (cc, ss) = (cut.min(c.len()), cut.min(s.len()));
        let (txs, st) = run(&[C(c[..cc].to_vec()), C(c[cc..].to_vec()), S(s[..ss].to_vec()), S(s[ss..].to_vec())]);
        assert_eq!(summary(&txs), summary(&whole), "cut at {cut}");
        assert_eq!(txs[0].response_body.kept, b"0123456789abcde");
        assert_eq!(st.outcome(Outcome::Complete), 2);
    }
    // And one byte at a time.
    let mut steps: Vec<Step> = c.iter().map(|b| C(vec![*b])).collect();
    steps.extend(s.iter().map(|b| S(vec![*b])));
    assert_eq!(summary(&run(&steps).0), summary(&whole));
}

#[test]
fn padding_and_priority() {
    let mut c = client_start();
    // HEADERS with 3 octets of padding and a priority block.
    let mut p = vec![3, 0x80, 0, 0, 0, 15];
    p.extend(request("GET", "/p"));
    p.extend([0, 0, 0]);
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS | PADDED | PRIORITY, 1, &p));
    c.extend(fr(PRIO, 0, 1, &[0, 0, 0, 0, 7]));
    let mut s = fr(HEADERS, END_HEADERS, 1, &status(200));
    // DATA with 4 octets of padding: 6 of content.
    s.extend(fr(DATA, PADDED, 1, &[4, b'h', b'e', b'l', b'l', b'o', b'!', 0, 0, 0, 0]));
    // DATA with only padding (pad length 0 of a 1-octet payload), END_STREAM.
    s.extend(fr(DATA, PADDED | END_STREAM, 1, &[0]));
    let (txs, st) = run(&[C(c), S(s)]);
    assert_eq!(summary(&txs), vec![row(1, Some("GET"), Some("/p"), Some(200), 6, Outcome::Complete)]);
    assert_eq!(txs[0].response_body.kept, b"hello!");
    assert_eq!(st.bad_padding, 0);
    assert_eq!(st.frames[2], 1);

    // Padding longer than the payload: counted, the stream is malformed.
    let mut c = client_start();
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS, 1, &request("GET", "/q")));
    let mut s = fr(HEADERS, END_HEADERS, 1, &status(200));
    s.extend(fr(DATA, PADDED | END_STREAM, 1, &[9, b'x', 0]));
    let (txs, st) = run(&[C(c), S(s)]);
    assert_eq!(st.bad_padding, 1);
    assert_eq!(txs[0].outcome, Outcome::Malformed);
    assert!(txs[0].anomalies.contains(&Anomaly::BadPadding));
}

#[test]
fn continuation_sequences() {
    let block = request("GET", "/continued/path");
    let (a, rest) = block.split_at(5);
    let (b, c2) = rest.split_at(9);
    let mut c = client_start();
    c.extend(fr(HEADERS, END_STREAM, 1, a));
    c.extend(fr(CONT, 0, 1, b));
    c.extend(fr(CONT, END_HEADERS, 1, c2));
    let s = [fr(HEADERS, END_HEADERS | END_STREAM, 1, &status(204))].concat();
    let (txs, st) = run(&[C(c), S(s)]);
    assert_eq!(summary(&txs), vec![row(1, Some("GET"), Some("/continued/path"), Some(204), 0, Outcome::Complete)]);
    assert_eq!(st.frames[9], 2);
    assert_eq!(st.continuation_errors, 0);

    // A PING between HEADERS and its CONTINUATION breaks the block: the
    // stream is malformed and later blocks of the client are not decoded.
    let mut c = client_start();
    c.extend(fr(HEADERS, END_STREAM, 1, a));
    c.extend(fr(PING, 0, 0, &[0; 8]));
    c.extend(fr(CONT, END_HEADERS, 1, rest));
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS, 3, &request("GET", "/next")));
    let mut s = fr(HEADERS, END_HEADERS | END_STREAM, 1, &status(200));
    s.extend(fr(HEADERS, END_HEADERS | END_STREAM, 3, &status(200)));
    let (txs, st) = run(&[C(c), S(s)]);
    assert_eq!(st.continuation_errors, 2, "the break, then the orphan CONTINUATION");
    assert_eq!(st.hpack_desyncs, 1);
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].outcome, Outcome::Malformed);
    assert_eq!((txs[1].stream, txs[1].method.as_deref(), txs[1].status), (3, None, Some(200)));
    assert_eq!(txs[1].outcome, Outcome::Malformed);
    assert!(txs[1].anomalies.contains(&Anomaly::HpackDesync));
}

#[test]
fn oversized_and_unknown_frames() {
    let cfg = H2Config { max_frame_buffer: 1024, ..H2Config::default() };
    let mut c = client_start();
    // An unknown frame type with 40 octets, a 16 MiB - 1 PING-typed frame
    // header announced but only 3000 of its octets sent before the end:
    // never buffered beyond the cap.
    c.extend(fr(0xfa, 0xff, 0, &[7; 40]));
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS, 1, &request("GET", "/u")));
    let mut big = vec![0xff, 0xff, 0xff, 6, 0, 0, 0, 0, 0];
    big.extend(vec![0u8; 3000]);
    c.extend(big);
    let mut conn = H2Conn::new(cfg.clone(), Start::Preface);
    conn.data(Side::Client, &ch(&c));
    conn.data(Side::Server, &ch(&fr(HEADERS, END_HEADERS | END_STREAM, 1, &status(200))));
    let st = conn.stats().clone();
    assert_eq!((st.unknown_frames, st.frames[10], st.oversized_frames), (1, 1, 1));
    assert_eq!(st.frames_over_max_frame_size, 1);
    assert!(conn.dirs[0].buf.capacity() <= 1024, "buffered {}", conn.dirs[0].buf.capacity());
    let txs = conn.take();
    assert_eq!(summary(&txs), vec![row(1, Some("GET"), Some("/u"), Some(200), 0, Outcome::Complete)]);
    conn.close(CloseHow::Fin, 1);
    assert_eq!(conn.stats().truncated_frames, 1);

    // A HEADERS frame over the cap: the block is lost, not decoded, and
    // the stream is a capture gap.
    let mut c = client_start();
    let mut huge = request("GET", "/h");
    lit(&mut huge, "x-pad", &"p".repeat(100));
    for _ in 0..12 {
        lit(&mut huge, "x-pad", &"p".repeat(100));
    }
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS, 1, &huge));
    let (txs, st) = run_with(cfg, Start::Preface, &[C(c), S(fr(HEADERS, END_HEADERS | END_STREAM, 1, &status(200)))]);
    assert_eq!(st.oversized_frames, 1);
    assert_eq!(summary(&txs), vec![row(1, None, None, Some(200), 0, Outcome::CaptureGap)]);
    assert!(txs[0].anomalies.contains(&Anomaly::HeaderBlockTooLarge));
    assert_eq!(st.hpack_desyncs, 1);
}

#[test]
fn header_list_cap() {
    let cfg = H2Config { max_header_list: 200, ..H2Config::default() };
    let mut b = request("GET", "/big");
    for i in 0..10 {
        lit(&mut b, &format!("x-{i}"), "0123456789");
    }
    let mut c = client_start();
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS, 1, &b));
    let (txs, st) = run_with(cfg, Start::Preface, &[C(c), S(fr(HEADERS, END_HEADERS | END_STREAM, 1, &status(200)))]);
    assert_eq!(st.header_lists_too_large, 1);
    assert_eq!(txs[0].method.as_deref(), Some("GET"));
    assert!(txs[0].anomalies.contains(&Anomaly::HeaderListTooLarge));
    // :method 42, :scheme 43, :path 41, :authority 51, user-agent 45 =
    // 222 > 200: user-agent and the x- fields are dropped.
    assert_eq!(txs[0].request_headers.len(), 0);
    assert_eq!(txs[0].outcome, Outcome::Complete);
}

#[test]
fn dynamic_table_across_requests() {
    // The first request adds its cookie to the table; the second refers
    // to it by index 62.
    let mut b1 = request("GET", "/1");
    lit_idx(&mut b1, "cookie", "sid=abc");
    let mut b2 = request("GET", "/2");
    b2.push(0x80 | 62);
    let mut c = client_start();
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS, 1, &b1));
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS, 3, &b2));
    let mut s = fr(HEADERS, END_HEADERS | END_STREAM, 1, &status(200));
    s.extend(fr(HEADERS, END_HEADERS | END_STREAM, 3, &status(200)));
    let mut conn = H2Conn::new(H2Config::default(), Start::Preface);
    conn.data(Side::Client, &ch(&c));
    conn.data(Side::Server, &ch(&s));
    assert_eq!(conn.hpack(Side::Client).table_size(), 32 + 6 + 7);
    assert_eq!(conn.hpack(Side::Client).table_entry(1), Some((&b"cookie"[..], &b"sid=abc"[..])));
    let txs = conn.take();
    assert_eq!(txs[1].request_headers.get("cookie"), Some(&b"sid=abc"[..]));
}

#[test]
fn resets() {
    let mut c = client_start();
    for id in [1, 3, 5, 7, 9] {
        c.extend(fr(HEADERS, END_STREAM | END_HEADERS, id, &request("GET", &format!("/{id}"))));
    }
    // Stream 1: the client cancels. 3: the server refuses. 5: the server
    // resets with INTERNAL_ERROR after its headers. 7: the server answers
    // whole, then resets with NO_ERROR. 9: a reset for a finished stream.
    let cancel = fr(RST, 0, 1, &8u32.to_be_bytes());
    let mut s = fr(RST, 0, 3, &7u32.to_be_bytes());
    s.extend(fr(HEADERS, END_HEADERS, 5, &status(200)));
    s.extend(fr(RST, 0, 5, &2u32.to_be_bytes()));
    s.extend(fr(HEADERS, END_HEADERS | END_STREAM, 7, &status(200)));
    s.extend(fr(RST, 0, 7, &0u32.to_be_bytes()));
    s.extend(fr(HEADERS, END_HEADERS | END_STREAM, 9, &status(200)));
    s.extend(fr(RST, 0, 9, &0u32.to_be_bytes()));
    s.extend(fr(WINDOW, 0, 9, &[0, 0, 1, 0]));
    s.extend(fr(DATA, END_STREAM, 9, b"late"));
    let (txs, st) = run(&[C(c), C(cancel), S(s)]);
    type Ended = (u32, Outcome, Option<(Side, u32)>);
    let outcomes: Vec<Ended> = txs.iter().map(|t| (t.stream, t.outcome, t.reset.map(|r| (r.by, r.code)))).collect();
    assert_eq!(
        outcomes,
        vec![
            (1, Outcome::ClientAbort, Some((Side::Client, 8))),
            (3, Outcome::Refused, Some((Side::Server, 7))),
            (5, Outcome::ServerReset, Some((Side::Server, 2))),
            (7, Outcome::Complete, None),
            (9, Outcome::Complete, None),
        ]
    );
    assert_eq!(st.resets, [1, 4]);
    assert_eq!(st.late_resets, 2, "7 and 9 were finished when their resets came");
    assert_eq!(st.frames_on_closed_streams, 1, "the DATA after the end");
    assert_eq!(st.frames[8], 1, "the WINDOW_UPDATE, ignored");
    assert_eq!(txs[2].timing.resp_start, Some(2_000_000));
}

#[test]
fn goaway_refuses_streams_above_the_last_id() {
    let mut c = client_start();
    for id in [1, 3, 5] {
        c.extend(fr(HEADERS, END_STREAM | END_HEADERS, id, &request("GET", &format!("/{id}"))));
    }
    let mut s = fr(HEADERS, END_HEADERS | END_STREAM, 1, &status(200));
    // GOAWAY: last stream 3, NO_ERROR, debug data "bye".
    s.extend(fr(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0, b'b', b'y', b'e']));
    s.extend(fr(HEADERS, END_HEADERS | END_STREAM, 3, &status(503)));
    // The client had already sent 7 (it crossed the GOAWAY).
    let late = fr(HEADERS, END_STREAM | END_HEADERS, 7, &request("GET", "/7"));
    let (txs, st) = run(&[C(c), S(s), C(late)]);
    assert_eq!(
        summary(&txs),
        vec![
            row(1, Some("GET"), Some("/1"), Some(200), 0, Outcome::Complete),
            row(3, Some("GET"), Some("/3"), Some(503), 0, Outcome::Complete),
            row(5, Some("GET"), Some("/5"), None, 0, Outcome::RefusedByGoaway),
            row(7, Some("GET"), Some("/7"), None, 0, Outcome::RefusedByGoaway),
        ]
    );
    assert_eq!((st.goaways, st.goaway_errors), (1, 0));
}

#[test]
fn server_push() {
    let mut c = client_start();
    c.extend(fr(HEADERS, END_STREAM | END_HEADERS, 1, &request("GET", "/page")));
    let mut promise = 2u32.to_be_bytes().to_vec();
    promise.extend(request("GET", "/style.css"));
    let mut s = fr(PUSH, END_HEADERS, 1, &promise);
    s.extend(fr(HEADERS, END_HEADERS, 1, &status(200)));
    s.extend(fr(DATA, END_STREAM, 1, b"<html>"));
    s.extend(fr(HEADERS, END_HEADERS, 2, &status(200)));
    s.extend(fr(DATA, END_STREAM, 2, b"body{}"));
    let (txs, st) = run(&[C(c), S(s)]);
    assert_eq!(
        summary(&txs),
        vec![
            row(1, Some("GET"), Some("/page"), Some(200), 6, Outcome::Complete),
            row(2, Some("GET"), Some("/style.css"), Some(200), 6, Outcome::Complete),
        ]
    );
    assert_eq!(txs[1].pushed_by, Some(1));
    assert!(txs[1].anomalies.contains(&Anomaly::Pushed));
    assert_eq!(st.pushes, 1);
}

#[test]
fn interim_and_trailers() {
    let mut c = client_start();
    c.extend(fr(HEADERS, END_HEADERS, 1, &request("POST", "/upload")));
    c.extend(fr(DATA, 0, 1, b"part"));
    let mut trailer = Vec::new();
    lit(&mut trailer, "x-checksum", "ok");
    c.extend(fr(HEADERS, END_HEADERS | END_STREAM, 1, &trailer));
    let mut s = fr(HEADERS, END_HEADERS, 1, &status(100));
    s.extend(fr(HEADERS, END_HEADERS, 1, &status(201)));
    s.extend(fr(DATA, 0, 1, b"done"));
    let mut t2 = Vec::new();
    lit(&mut t2, "grpc-status", "0");
    s.extend(fr(HEADERS, END_HEADERS | END_STREAM, 1, &t2));
    let (txs, _) = run(&[C(c), S(s)]);
    let t = &txs[0];
    assert_eq!((t.status, t.interim.clone(), t.outcome), (Some(201), vec![100], Outcome::Complete));
    assert_eq!(t.request_trailers.get("x-checksum"), Some(&b"ok"[..]));
    assert_eq!(t.response_trailers.get("grpc-status"), Some(&b"0"[..]));
    assert_eq!((t.request_body.wire_bytes, t.response_body.wire_bytes), (4, 4));
}

#[test]
fn closes() {
    let mut c = client_start();
    for id in [1, 3, 5] {
        c.extend(fr(HEADERS, END_STREAM | END_HEADERS, id, &request("GET", &format!("/{id}"))));
    }
    let mut s = fr(HEADERS, END_HEADERS | END_STREAM, 1, &status(200));
    s.extend(fr(HEADERS, END_HEADERS, 3, &status(200)));
    s.extend(fr(DATA, 0, 3, b"part"));
    let (txs, st) = run(&[C(c.clone()), S(s.clone())]);
    let o: Vec<Outcome> = txs.iter().map(|t| t.outcome).collect();
    assert_eq!(o, vec![Outcome::Complete, Outcome::Truncated, Outcome::NoResponse]);
    assert_eq!(st.transactions(), 3);
    for (how, want) in [
        (CloseHow::EndOfCapture, [Outcome::CaptureGap, Outcome::CaptureGap]),
        (CloseHow::Rst(Side::Server), [Outcome::ServerReset, Outcome::ServerReset]),
        (CloseHow::Rst(Side::Client), [Outcome::ClientAbort, Outcome::ClientAbort]),
    ] {
        let mut conn = H2Conn::new(H2Config::default(), Start::Preface);
        conn.data(Side::Client, &ch(&c));
        conn.data(Side::Server, &ch(&s));
        conn.close(how, 9);
        let mut txs = conn.take();
        txs.sort_by_key(|t| t.stream);
        assert_eq!([txs[1].outcome, txs[2].outcome], want, "{how:?}");
    }
}

#[test]
fn not_h2() {
    let mut conn = H2Conn::new(H2Config::default(), Start::Preface);
    conn.data(Side::Client, &ch(b"PRI * HTTP/2.0\r\n"));
    assert_eq!(conn.is_h2(), None);
    conn.data(Side::Client, &ch(b"\r\nSM\r\n\r\n"));
    assert_eq!(conn.is_h2(), Some(true));
    let mut other = H2Conn::new(H2Config::default(), Start::Preface);
    other.data(Side::Client, &ch(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_eq!(other.is_h2(), Some(false));
    assert_eq!(other.stats().not_h2, 1);
}

#[test]
fn upgraded_connection() {
    let mut headers = HeaderList::default();
    headers.push(b"Host", b"shop.test");
    headers.push(b"Connection", b"Upgrade, HTTP2-Settings");
    headers.push(b"Upgrade", b"h2c");
    // HEADER_TABLE_SIZE 0: the server's encoder may not use the table.
    headers.push(b"HTTP2-Settings", b"AAEAAAAA");
    let req = UpgradeRequest {
        method: "GET".into(),
        path: b"/up".to_vec(),
        authority: Some("shop.test".into()),
        headers,
        body_bytes: 0,
        req_start: 5,
        req_end: 6,
        frames: Some(FrameSpan { first: 4, last: 4 }),
    };
    let c = client_start();
    let mut s = settings_frame();
    s.extend(fr(HEADERS, END_HEADERS, 1, &status(200)));
    s.extend(fr(DATA, END_STREAM, 1, b"upgraded"));
    let (txs, st) = run_with(H2Config::default(), Start::Upgraded(Box::new(req)), &[C(c), S(s)]);
    assert_eq!(summary(&txs), vec![row(1, Some("GET"), Some("/up"), Some(200), 8, Outcome::Complete)]);
    assert!(txs[0].anomalies.contains(&Anomaly::Upgraded));
    assert_eq!((txs[0].timing.req_start, txs[0].authority.as_deref()), (Some(5), Some("shop.test")));
    assert_eq!(st.upgrades, 1);
}

/// The connection of the loss tests: stream 1 adds a cookie to the
/// client's table, 3 refers to it; 5 and 7 follow.
fn lossy_client() -> (Vec<u8>, Vec<usize>) {
    let mut c = client_start();
    let mut starts = Vec::new();
    for id in [1u32, 3, 5, 7] {
        let mut b = request("GET", &format!("/{id}"));
        if id == 1 {
            lit_idx(&mut b, "cookie", "sid=abc");
        } else {
            b.push(0x80 | 62);
        }
        starts.push(c.len());
        c.extend(fr(HEADERS, END_STREAM | END_HEADERS, id, &b));
    }
    (c, starts)
}

fn lossy_server() -> Vec<u8> {
    let mut s = Vec::new();
    for id in [1u32, 3, 5, 7] {
        s.extend(fr(HEADERS, END_HEADERS, id, &status(200)));
        s.extend(fr(DATA, END_STREAM, id, &[b'x'; 100]));
    }
    s
}

#[test]
fn gap_inside_a_header_block_loses_the_table() {
    let (c, starts) = lossy_client();
    // Lose 10 octets inside stream 3's HEADERS payload.
    let cut = starts[1] + 9 + 5;
    let (txs, st) = run(&[C(c[..cut].to_vec()), CGap(10), C(c[cut + 10..].to_vec()), S(lossy_server())]);
    assert_eq!(
        summary(&txs),
        vec![
            row(1, Some("GET"), Some("/1"), Some(200), 100, Outcome::Complete),
            row(3, None, None, Some(200), 100, Outcome::CaptureGap),
            row(5, None, None, Some(200), 100, Outcome::CaptureGap),
            row(7, None, None, Some(200), 100, Outcome::CaptureGap),
        ]
    );
    assert_eq!(txs[1].missing_bytes, 10);
    assert!(txs[1].anomalies.contains(&Anomaly::RequestGap));
    assert!(txs[2].anomalies.contains(&Anomaly::HpackDesync));
    assert_eq!((st.hpack_desyncs, st.lost_directions), (1, 0));
    // The server's table is untouched: its statuses were decoded.
}

#[test]
fn gap_inside_data_loses_only_body_bytes() {
    let (c, _) = lossy_client();
    let s = lossy_server();
    // Stream 3's DATA payload starts after 2 HEADERS frames and 1 DATA.
    let hdr = 9 + status(200).len();
    let cut = hdr + 9 + 100 + hdr + 9 + 30;
    let (txs, st) = run(&[C(c), S(s[..cut].to_vec()), SGap(25), S(s[cut + 25..].to_vec())]);
    assert_eq!(
        summary(&txs),
        vec![
            row(1, Some("GET"), Some("/1"), Some(200), 100, Outcome::Complete),
            row(3, Some("GET"), Some("/3"), Some(200), 100, Outcome::CaptureGap),
            row(5, Some("GET"), Some("/5"), Some(200), 100, Outcome::Complete),
            row(7, Some("GET"), Some("/7"), Some(200), 100, Outcome::Complete),
        ]
    );
    assert_eq!((txs[1].response_body.lost_bytes, txs[1].missing_bytes), (25, 25));
    assert_eq!(txs[1].response_body.kept.len(), 75);
    assert!(txs[1].anomalies.contains(&Anomaly::ResponseGap));
    assert_eq!(txs[1].request_headers.get("cookie"), Some(&b"sid=abc"[..]));
    assert_eq!((st.lost_body_bytes, st.hpack_desyncs), (25, 0));
}

#[test]
fn gap_across_frames_loses_the_direction() {
    let (c, _) = lossy_client();
    let s = lossy_server();
    // Lose the end of stream 3's DATA and stream 5's HEADERS.
    let hdr = 9 + status(200).len();
    let cut = hdr + 9 + 100 + hdr + 9 + 90;
    let (txs, st) = run(&[C(c), S(s[..cut].to_vec()), SGap(40), S(s[cut + 40..].to_vec())]);
    assert_eq!(
        summary(&txs),
        vec![
            row(1, Some("GET"), Some("/1"), Some(200), 100, Outcome::Complete),
            row(3, Some("GET"), Some("/3"), Some(200), 90, Outcome::CaptureGap),
            row(5, Some("GET"), Some("/5"), None, 0, Outcome::CaptureGap),
            row(7, Some("GET"), Some("/7"), None, 0, Outcome::CaptureGap),
        ]
    );
    assert_eq!(st.lost_directions, 1);
    assert_eq!(st.unparsed_bytes, 40 + (s.len() - cut - 40) as u64);
}

#[test]
fn client_direction_lost_then_responses_open_streams() {
    let (c, starts) = lossy_client();
    // Lose from inside stream 1's frame header on.
    let cut = starts[0] + 4;
    let (txs, _) = run(&[C(c[..cut].to_vec()), CGap(200), S(lossy_server())]);
    let o: Vec<(u32, Option<u16>, Outcome, bool)> =
        txs.iter().map(|t| (t.stream, t.status, t.outcome, t.anomalies.contains(&Anomaly::NoRequest))).collect();
    assert_eq!(
        o,
        vec![
            (1, Some(200), Outcome::CaptureGap, true),
            (3, Some(200), Outcome::CaptureGap, true),
            (5, Some(200), Outcome::CaptureGap, true),
            (7, Some(200), Outcome::CaptureGap, true),
        ]
    );
}

/// A small seeded generator (no dependency, reproducible).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn damaged_input_never_panics_and_every_stream_is_accounted_for() {
    let mut rng = Lcg(17);
    let (lc, _) = lossy_client();
    let bases = [(two_requests(), two_responses()), (lc, lossy_server())];
    let mut all = H2Stats::default();
    for round in 0..3000 {
        let (mut c, mut s) = bases[round % 2].clone();
        // Flip, insert and drop bytes; frame headers are hit often since
        // the frames are short.
        for buf in [&mut c, &mut s] {
            for _ in 0..rng.below(6) {
                let at = rng.below(buf.len());
                match rng.below(3) {
                    0 => buf[at] ^= 1 << rng.below(8),
                    1 => buf.insert(at, rng.next() as u8),
                    _ => {
                        buf.remove(at);
                    }
                }
            }
        }
        let cfg = H2Config { max_frame_buffer: 64, max_header_block: 128, max_streams: 3, ..H2Config::default() };
        let mut conn = H2Conn::new(cfg, Start::Preface);
        let mut taken = 0;
        let (mut ci, mut si) = (0, 0);
        while ci < c.len() || si < s.len() {
            let side = if si >= s.len() || (ci < c.len() && rng.below(2) == 0) { Side::Client } else { Side::Server };
            let (buf, i) = if side == Side::Client { (&c, &mut ci) } else { (&s, &mut si) };
            let n = 1 + rng.below(40);
            let end = (*i + n).min(buf.len());
            if rng.below(25) == 0 {
                conn.gap(side, (end - *i) as u64, 0);
            } else {
                conn.data(side, &ch(&buf[*i..end]));
            }
            *i = end;
            taken += conn.take().len();
        }
        let how = [CloseHow::Fin, CloseHow::EndOfCapture, CloseHow::Rst(Side::Server)][rng.below(3)];
        conn.close(how, 1);
        taken += conn.take().len();
        assert_eq!(conn.open_streams(), 0, "round {round}");
        assert_eq!(conn.stats().transactions(), taken as u64, "round {round}");
        assert_eq!(conn.stats().streams, taken as u64, "round {round}: every stream opened was emitted once");
        all.merge(conn.stats());
    }
    // The damage reached every part of the reader.
    for (what, n) in [
        ("not_h2", all.not_h2),
        ("hpack_errors", all.hpack_errors),
        ("lost_directions", all.lost_directions),
        ("oversized_frames", all.oversized_frames),
        ("unknown_frames", all.unknown_frames),
        ("continuation_errors", all.continuation_errors),
        ("stream_overflows", all.stream_overflows),
        ("complete", all.outcome(Outcome::Complete)),
        ("capture_gap", all.outcome(Outcome::CaptureGap)),
        ("malformed", all.outcome(Outcome::Malformed)),
    ] {
        assert!(n > 0, "{what} never happened: {all:?}");
    }
}

#[test]
fn random_header_blocks_never_panic() {
    let mut rng = Lcg(5);
    let mut d = Decoder::new(4096);
    for _ in 0..20_000 {
        let n = rng.below(40);
        let block: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let mut fields = 0;
        if d.decode(&block, |_, _, _| fields += 1).is_err() {
            // A failed block leaves the table untrustworthy: start afresh.
            d = Decoder::new(4096);
        }
        assert!(d.table_size() <= d.table_capacity() && d.table_capacity() <= 4096);
    }
}

#[test]
fn gap_in_a_response_header_block_keeps_the_requests() {
    let (c, _) = lossy_client();
    let s = lossy_server();
    // Lose 4 octets of stream 3's response HEADERS payload (the second
    // HEADERS frame of the server, after stream 1's HEADERS and DATA).
    let hdr = 9 + status(200).len();
    let cut = hdr + 9 + 100 + 9 + 3;
    let (txs, st) = run(&[C(c), S(s[..cut].to_vec()), SGap(4), S(s[cut + 4..].to_vec())]);
    assert_eq!(
        summary(&txs),
        vec![
            row(1, Some("GET"), Some("/1"), Some(200), 100, Outcome::Complete),
            row(3, Some("GET"), Some("/3"), None, 100, Outcome::CaptureGap),
            row(5, Some("GET"), Some("/5"), None, 100, Outcome::CaptureGap),
            row(7, Some("GET"), Some("/7"), None, 100, Outcome::CaptureGap),
        ]
    );
    assert!(txs[1].anomalies.contains(&Anomaly::ResponseGap));
    assert!(txs[3].anomalies.contains(&Anomaly::HpackDesync));
    assert_eq!((st.hpack_desyncs, st.lost_directions), (1, 0));
}

#[test]
fn gap_inside_the_preface_keeps_the_frames() {
    let (c, _) = lossy_client();
    let (txs, st) = run(&[C(c[..5].to_vec()), CGap(10), C(c[15..].to_vec()), S(lossy_server())]);
    assert_eq!(txs.iter().filter(|t| t.outcome == Outcome::Complete).count(), 4);
    assert_eq!((st.gaps, st.lost_directions), (1, 0));
}

/// A keep rule sees each message's header fields and bounds what its body
/// keeps (below `body_keep_bytes`, never above); sizes are counted all the
/// same, and a block that failed to decode keeps the default.
#[test]
fn keep_rule_bounds_kept_octets_per_message() {
    let rule = KeepRule(std::sync::Arc::new(|side: Side, h: &HeaderList| match (side, h.get("content-type")) {
        // Responses: HTML kept up to 1 MB (more than the cap), the rest 3.
        (Side::Server, Some(b"text/html")) => 1 << 20,
        (Side::Server, _) => 3,
        // Requests: none.
        (Side::Client, _) => 0,
    }));
    let cfg = H2Config { body_keep_bytes: 12, keep_rule: Some(rule), ..H2Config::default() };
    let mut s = settings_frame();
    s.extend(fr(HEADERS, END_HEADERS, 1, &status(200)));
    s.extend(fr(DATA, 0, 1, b"0123456789"));
    let mut other = Vec::new();
    lit(&mut other, ":status", "404");
    lit(&mut other, "content-type", "application/octet-stream");
    s.extend(fr(HEADERS, END_HEADERS, 3, &other));
    s.extend(fr(DATA, END_STREAM, 3, b"qwertyuiop"));
    s.extend(fr(DATA, END_STREAM, 1, b"abcde"));
    let (txs, _) = run_with(cfg, Start::Preface, &[C(two_requests()), S(s)]);
    assert_eq!(
        summary(&txs),
        vec![
            row(1, Some("GET"), Some("/a"), Some(200), 15, Outcome::Complete),
            row(3, Some("POST"), Some("/cart"), Some(404), 10, Outcome::Complete),
        ]
    );
    // The cap (12) bounds the rule's 1 MB; the other type keeps 3.
    assert_eq!(txs[0].response_body.kept, b"0123456789ab");
    assert_eq!(txs[1].response_body.kept, b"qwe");
    // The request body: counted, not kept.
    assert_eq!(txs[1].request_body.wire_bytes, 5);
    assert!(txs[1].request_body.kept.is_empty());
    // Without a rule every body keeps up to the cap.
    let cfg = H2Config { body_keep_bytes: 12, ..H2Config::default() };
    let (txs, _) = run_with(cfg, Start::Preface, &[C(two_requests()), S(two_responses())]);
    assert_eq!(txs[0].response_body.kept, b"0123456789ab");
    assert_eq!(txs[1].request_body.kept, b"qty=2");
}
