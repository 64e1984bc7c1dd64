//! A compact binary form of a whole [`HttpTransaction`] (heads, kept
//! bodies, times, outcome), for keeping transactions on disk during a run
//! and reading some back at its end (the replays of `pov analyze`).
//!
//! The form is private to one run: there is no version and no promise
//! across builds. Integers are little-endian, byte strings are a `u32`
//! length and the bytes, an option is a `0`/`1` byte and the value.
//! [`decode`] checks every length against what is left, so a damaged
//! record is an error, never a panic or a huge allocation.

use std::net::{IpAddr, SocketAddr};

use super::{
    Anomaly, BodyInfo, ContentEncoding, DecodeStop, FrameSpan, Headers, HttpTransaction, Outcome, RequestHead,
    ResponseHead, TxTiming,
};
use crate::time::{Dur, Ts};

/// A record that does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecError {
    /// Where in the record decoding stopped.
    pub offset: usize,
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a stored transaction does not decode (at byte {})", self.offset)
    }
}

impl std::error::Error for CodecError {}

/// Appends `tx` to `out`.
pub fn encode(tx: &HttpTransaction, out: &mut Vec<u8>) {
    let w = &mut W(out);
    w.u64(tx.conn);
    w.addr(&tx.client);
    w.addr(&tx.server);
    w.u32(tx.depth);
    w.opt(tx.stream.as_ref(), |w, s| w.u32(*s));
    w.u8(u8::from(tx.tls));
    w.opt(tx.request.as_ref(), |w, r| {
        w.bytes(r.method.as_bytes());
        w.bytes(&r.uri);
        w.opt(r.version.as_ref(), |w, v| w.u8(*v));
        w.headers(&r.headers);
    });
    w.opt(tx.response.as_ref(), |w, r| {
        w.opt(r.version.as_ref(), |w, v| w.u8(*v));
        w.u16(r.status);
        w.bytes(&r.reason);
        w.headers(&r.headers);
    });
    w.u32(tx.interim.len() as u32);
    for s in &tx.interim {
        w.u16(*s);
    }
    let t = &tx.timing;
    for ts in [t.req_start, t.req_end, t.resp_start, t.resp_end, t.req_resent] {
        w.opt(ts.as_ref(), |w, ts| w.i64(ts.0));
    }
    w.opt(t.handshake_rtt.as_ref(), |w, d| w.i64(d.0));
    for f in [tx.req_frames, tx.resp_frames] {
        w.opt(f.as_ref(), |w, f| {
            w.u64(f.first);
            w.u64(f.last);
        });
    }
    w.body(&tx.request_body);
    w.body(&tx.response_body);
    w.u8(tx.outcome as u8);
    w.opt(tx.waited.as_ref(), |w, d| w.i64(d.0));
    w.u64(tx.missing_bytes);
    w.u32(tx.anomalies.len() as u32);
    for a in &tx.anomalies {
        w.u8(*a as u8);
    }
}

/// The transaction [`encode`] wrote into `b` (all of `b`).
pub fn decode(b: &[u8]) -> Result<HttpTransaction, CodecError> {
    let r = &mut R { b, at: 0 };
    let conn = r.u64()?;
    let client = r.addr()?;
    let server = r.addr()?;
    let depth = r.u32()?;
    let mut tx = HttpTransaction::new(conn, client, server, depth);
    tx.stream = r.opt(R::u32)?;
    tx.tls = r.u8()? != 0;
    tx.request = r.opt(|r| {
        Ok(RequestHead {
            method: String::from_utf8(r.bytes()?.to_vec()).map_err(|_| r.err())?,
            uri: r.bytes()?.to_vec(),
            version: r.opt(R::u8)?,
            headers: r.headers()?,
        })
    })?;
    tx.response = r.opt(|r| {
        Ok(ResponseHead {
            version: r.opt(R::u8)?,
            status: r.u16()?,
            reason: r.bytes()?.to_vec(),
            headers: r.headers()?,
        })
    })?;
    let n = r.len(2)?;
    tx.interim = (0..n).map(|_| r.u16()).collect::<Result<_, _>>()?;
    let mut ts = [None; 5];
    for t in &mut ts {
        *t = r.opt(|r| r.i64().map(Ts))?;
    }
    let [req_start, req_end, resp_start, resp_end, req_resent] = ts;
    let handshake_rtt = r.opt(|r| r.i64().map(Dur))?;
    tx.timing = TxTiming { req_start, req_end, resp_start, resp_end, handshake_rtt, req_resent };
    tx.req_frames = r.opt(|r| Ok(FrameSpan { first: r.u64()?, last: r.u64()? }))?;
    tx.resp_frames = r.opt(|r| Ok(FrameSpan { first: r.u64()?, last: r.u64()? }))?;
    tx.request_body = r.body()?;
    tx.response_body = r.body()?;
    tx.outcome = *OUTCOMES.get(usize::from(r.u8()?)).ok_or_else(|| r.err())?;
    tx.waited = r.opt(|r| r.i64().map(Dur))?;
    tx.missing_bytes = r.u64()?;
    let n = r.len(1)?;
    tx.anomalies = (0..n)
        .map(|_| r.u8().and_then(|c| Anomaly::ALL.get(usize::from(c)).copied().ok_or_else(|| r.err())))
        .collect::<Result<_, _>>()?;
    if r.at != b.len() {
        return Err(r.err());
    }
    Ok(tx)
}

// The enums are stored as their place in declaration order (`v as u8`);
// these tables, in that order, turn it back (a test checks the order).

const OUTCOMES: [Outcome; 9] = [
    Outcome::Complete,
    Outcome::ClientAbort,
    Outcome::ServerReset,
    Outcome::NoResponse,
    Outcome::Truncated,
    Outcome::CaptureGap,
    Outcome::Malformed,
    Outcome::Refused,
    Outcome::RefusedByGoaway,
];

const ENCODINGS: [ContentEncoding; 4] =
    [ContentEncoding::Identity, ContentEncoding::Gzip, ContentEncoding::Deflate, ContentEncoding::Br];

const STOPS: [DecodeStop; 5] =
    [DecodeStop::SizeCap, DecodeStop::RatioCap, DecodeStop::Corrupt, DecodeStop::Gap, DecodeStop::Budget];

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        // Heads are capped far below 4 GiB and kept bodies too.
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn opt<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }
    fn addr(&mut self, a: &SocketAddr) {
        match a.ip() {
            IpAddr::V4(ip) => {
                self.u8(4);
                self.0.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.u8(6);
                self.0.extend_from_slice(&ip.octets());
            }
        }
        self.u16(a.port());
    }
    /// The fields' count, each field's name and value lengths, then all
    /// their bytes in one piece (a head's buffer is its fields' bytes one
    /// after another): one copy a head, not two a field, in as many bytes
    /// as a length before each name and value took.
    fn headers(&mut self, h: &Headers) {
        self.0.reserve(4 + 8 * h.fields.len() + h.buf.len());
        self.u32(h.fields.len() as u32);
        for &(a, b, c) in &h.fields {
            self.u32(b.wrapping_sub(a));
            self.u32(c.wrapping_sub(b));
        }
        // Their length is the lengths' sum.
        self.0.extend_from_slice(&h.buf);
    }
    fn body(&mut self, b: &BodyInfo) {
        self.u64(b.wire_len);
        self.u64(b.decoded_len);
        self.bytes(&b.kept);
        self.opt(b.encoding.as_ref(), |w, e| w.u8(*e as u8));
        self.opt(b.decode_stop.as_ref(), |w, s| w.u8(*s as u8));
        self.u8(u8::from(b.budget_cut));
    }
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> R<'a> {
    fn err(&self) -> CodecError {
        CodecError { offset: self.at }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let s = self.at.checked_add(n).and_then(|end| self.b.get(self.at..end)).ok_or_else(|| self.err())?;
        self.at += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| self.err())
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A count of items of at least `min` bytes each, checked against what
    /// is left (no allocation larger than the record).
    fn len(&mut self, min: usize) -> Result<usize, CodecError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.b.len() - self.at {
            return Err(self.err());
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, CodecError>) -> Result<Option<T>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            _ => Err(self.err()),
        }
    }
    fn addr(&mut self) -> Result<SocketAddr, CodecError> {
        let ip = match self.u8()? {
            4 => IpAddr::from(self.array::<4>()?),
            6 => IpAddr::from(self.array::<16>()?),
            _ => return Err(self.err()),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }
    fn headers(&mut self) -> Result<Headers, CodecError> {
        let n = self.len(8)?;
        let mut fields = Vec::with_capacity(n);
        let mut end = 0u32;
        for _ in 0..n {
            let start = end;
            let mid = start.checked_add(self.u32()?).ok_or_else(|| self.err())?;
            end = mid.checked_add(self.u32()?).ok_or_else(|| self.err())?;
            fields.push((start, mid, end));
        }
        // The fields' bytes, one after another, as a head holds them.
        Ok(Headers { buf: self.take(end as usize)?.to_vec(), fields })
    }
    fn body(&mut self) -> Result<BodyInfo, CodecError> {
        Ok(BodyInfo {
            wire_len: self.u64()?,
            decoded_len: self.u64()?,
            kept: self.bytes()?.to_vec(),
            encoding: self
                .opt(|r| r.u8().and_then(|c| ENCODINGS.get(usize::from(c)).copied().ok_or_else(|| r.err())))?,
            decode_stop: self
                .opt(|r| r.u8().and_then(|c| STOPS.get(usize::from(c)).copied().ok_or_else(|| r.err())))?,
            budget_cut: match self.u8()? {
                0 => false,
                1 => true,
                _ => return Err(self.err()),
            },
            ..BodyInfo::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction with every field set (and every enum value used
    /// somewhere across `i`).
    fn full(i: usize) -> HttpTransaction {
        let client: SocketAddr =
            if i.is_multiple_of(2) { "10.1.2.3:40000" } else { "[2001:db8::7]:40000" }.parse().unwrap();
        let mut tx =
            HttpTransaction::new(1_000_000 + i as u64, client, "192.0.2.9:8080".parse().unwrap(), 3 + i as u32);
        tx.request = Some(RequestHead {
            method: "POST".into(),
            uri: b"/cart?id=\xff7".to_vec(),
            version: Some(1),
            headers: Headers::from_pairs([(&b"Host"[..], &b"shop"[..]), (b"Cookie", b"sid=\x00\x01")]),
        });
        tx.response = Some(ResponseHead {
            version: if i.is_multiple_of(3) { None } else { Some(0) },
            status: 502,
            reason: b"Bad Gateway".to_vec(),
            headers: Headers::from_pairs([(&b"Content-Type"[..], &b"text/html"[..])]),
        });
        tx.interim = vec![100, 103];
        tx.timing = TxTiming {
            req_start: Some(Ts(-5)),
            req_end: Some(Ts(1)),
            resp_start: None,
            resp_end: Some(Ts(i64::MAX)),
            handshake_rtt: Some(Dur(123)),
            req_resent: Some(Ts(7)),
        };
        tx.req_frames = Some(FrameSpan { first: 4, last: 9 });
        tx.resp_frames = None;
        tx.request_body = BodyInfo::plain(b"a=1".to_vec());
        tx.response_body = BodyInfo {
            wire_len: 10,
            decoded_len: 99,
            kept: (0..=255).collect(),
            encoding: Some(ENCODINGS[i % ENCODINGS.len()]),
            decode_stop: Some(STOPS[i % STOPS.len()]),
            budget_cut: i % 2 == 1,
            ..BodyInfo::default()
        };
        tx.outcome = OUTCOMES[i % OUTCOMES.len()];
        tx.stream = (i % 3 == 1).then_some(2 * i as u32 + 1);
        tx.tls = i.is_multiple_of(2);
        tx.waited = Some(Dur(42));
        tx.missing_bytes = 17;
        tx.anomalies = Anomaly::ALL.iter().copied().skip(i % Anomaly::ALL.len()).collect();
        tx
    }

    #[test]
    fn a_transaction_comes_back_whole() {
        for i in 0..Anomaly::ALL.len() {
            let tx = full(i);
            let mut b = Vec::new();
            encode(&tx, &mut b);
            assert_eq!(format!("{:?}", decode(&b).unwrap()), format!("{tx:?}"), "transaction {i}");
        }
        // And one with nothing known.
        let bare = HttpTransaction::new(1, "10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap(), 1);
        let mut b = Vec::new();
        encode(&bare, &mut b);
        assert_eq!(format!("{:?}", decode(&b).unwrap()), format!("{bare:?}"));
    }

    #[test]
    fn the_tables_match_the_codes() {
        for (i, o) in OUTCOMES.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        for (i, a) in Anomaly::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i);
        }
        for (i, e) in ENCODINGS.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
        for (i, s) in STOPS.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn a_damaged_record_is_an_error() {
        let mut b = Vec::new();
        encode(&full(1), &mut b);
        // Every cut is an error (never a panic, never a transaction).
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "cut at {n}");
        }
        // A byte too many.
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        // A huge length is refused before any allocation.
        let mut huge = b.clone();
        let uri_len_at = 8 + 7 + 19 + 4 + 1 + 4 + 4;
        huge[uri_len_at..uri_len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        // Any single byte changed: an error or some transaction, no panic.
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0xa5;
            let _ = decode(&c);
        }
    }
}
