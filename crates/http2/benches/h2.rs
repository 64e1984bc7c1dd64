//! Throughput of the HTTP/2 layer on a synthetic connection: 2,000
//! streams, each a GET (HPACK with the dynamic table, as browsers send)
//! answered by a HEADERS frame and four 4 KiB DATA frames, fed in
//! 1,448-octet chunks as a reassembler hands them on.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pov_http2::{Chunk, CloseHow, H2Config, H2Conn, Side, Start};

fn fr(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn lit(out: &mut Vec<u8>, first: u8, n: &str, v: &str) {
    out.push(first);
    out.push(n.len() as u8);
    out.extend_from_slice(n.as_bytes());
    out.push(v.len() as u8);
    out.extend_from_slice(v.as_bytes());
}

fn connection(streams: u32) -> (Vec<u8>, Vec<u8>) {
    let mut c = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    c.extend(fr(4, 0, 0, &[0, 3, 0, 0, 0, 100]));
    let mut s = fr(4, 0, 0, &[0, 3, 0, 0, 0, 100]);
    let body = vec![b'x'; 4096];
    for i in 0..streams {
        let id = 2 * i + 1;
        let mut b = vec![0x82, 0x86];
        // :path a literal; authority, user-agent and cookie indexed once,
        // then referred to (62..64 are the newest three entries).
        let path = format!("/product/{i}?ref=list");
        b.extend([0x04, path.len() as u8]);
        b.extend_from_slice(path.as_bytes());
        if i == 0 {
            lit(&mut b, 0x40, ":authority", "shop.example.com");
            lit(&mut b, 0x40, "user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36");
            lit(&mut b, 0x40, "cookie", "sid=0123456789abcdef; cart=3");
        } else {
            b.extend([0x80 | 64, 0x80 | 63, 0x80 | 62]);
        }
        c.extend(fr(1, 0x5, id, &b));
        let mut h = vec![0x88];
        lit(&mut h, 0x00, "content-type", "text/html; charset=utf-8");
        s.extend(fr(1, 0x4, id, &h));
        for k in 0..4 {
            s.extend(fr(0, if k == 3 { 1 } else { 0 }, id, &body));
        }
    }
    (c, s)
}

fn bench(cr: &mut Criterion) {
    let (c, s) = connection(2000);
    let mut g = cr.benchmark_group("http2");
    g.throughput(Throughput::Bytes((c.len() + s.len()) as u64));
    g.bench_function("2000 streams, 16 KiB each", |b| {
        b.iter(|| {
            let mut conn = H2Conn::new(H2Config { body_keep_bytes: 0, ..H2Config::default() }, Start::Preface);
            for (side, bytes) in [(Side::Client, &c), (Side::Server, &s)] {
                for piece in bytes.chunks(1448) {
                    conn.data(side, &Chunk { bytes: piece, first_ts: 0, last_ts: 0, first_frame: 0, last_frame: 0 });
                }
            }
            conn.close(CloseHow::Fin, 0);
            let txs = conn.take();
            assert_eq!(txs.len(), 2000);
            assert!(txs.iter().all(|t| t.response_body.wire_bytes == 16384 && t.status == Some(200)));
            txs
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
