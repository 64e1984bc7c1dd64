//! Connection-level tests: RFC 8448's Simple 1-RTT trace through
//! [`TlsConn`] (every split of the streams), and capture loss on streams
//! of records sealed here with the RFC's keys.

use aes_gcm::Aes128Gcm;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};

use crate::crypto::tests::{h, rfc8448};
use crate::crypto::{HashKind, hkdf_expand_label};
use crate::wire::Alert;
use crate::{Decoder, KeyStatus, KeyStore, Outcome, Side, TlsConn, TlsSink, Version};

/// What a sink saw, per side: plaintext bytes, and events in order.
#[derive(Default, Debug, PartialEq, Eq)]
struct Seen {
    plain: [Vec<u8>; 2],
    events: [Vec<Ev>; 2],
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Data(usize),
    Gap(u64),
}

impl TlsSink for Seen {
    fn plaintext(&mut self, side: Side, _ts: i64, data: &[u8]) {
        let i = side as usize;
        self.plain[i].extend_from_slice(data);
        match self.events[i].last_mut() {
            Some(Ev::Data(n)) => *n += data.len(),
            _ => self.events[i].push(Ev::Data(data.len())),
        }
    }
    fn gap(&mut self, side: Side, _ts: i64, len: u64) {
        self.events[side as usize].push(Ev::Gap(len));
    }
}

fn keylog(lines: &[(&str, &str)]) -> KeyStore {
    let mut text = String::new();
    for (label, secret) in lines {
        let hex: String = h(secret).iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("{label} {} {hex}\n", rfc8448::CLIENT_RANDOM));
    }
    let mut ks = KeyStore::new();
    ks.load(text.as_bytes());
    ks
}

fn all_secrets() -> KeyStore {
    keylog(&[
        ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", rfc8448::C_HS),
        ("SERVER_HANDSHAKE_TRAFFIC_SECRET", rfc8448::S_HS),
        ("CLIENT_TRAFFIC_SECRET_0", rfc8448::C_AP),
        ("SERVER_TRAFFIC_SECRET_0", rfc8448::S_AP),
    ])
}

/// The RFC 8448 streams, in the order a capture delivers them.
fn flights() -> Vec<(Side, Vec<u8>)> {
    vec![
        (Side::Client, h(rfc8448::CLIENT_HELLO_RECORD)),
        (
            Side::Server,
            [rfc8448::SERVER_HELLO_RECORD, rfc8448::SERVER_FLIGHT_RECORD, rfc8448::NEW_SESSION_TICKET_RECORD]
                .iter()
                .flat_map(|r| h(r))
                .collect(),
        ),
        (
            Side::Client,
            [rfc8448::CLIENT_FINISHED_RECORD, rfc8448::CLIENT_APP_RECORD].iter().flat_map(|r| h(r)).collect(),
        ),
        (Side::Server, h(rfc8448::SERVER_APP_RECORD)),
        (Side::Client, h(rfc8448::CLIENT_ALERT_RECORD)),
        (Side::Server, h(rfc8448::SERVER_ALERT_RECORD)),
    ]
}

fn run(keys: &KeyStore, chunk: usize) -> (TlsConn, Seen) {
    let mut cx = Decoder::new(keys);
    let mut conn = TlsConn::new();
    let mut seen = Seen::default();
    for (i, (side, bytes)) in flights().into_iter().enumerate() {
        for part in bytes.chunks(chunk) {
            conn.data(&mut cx, side, i as i64, part, &mut seen);
        }
    }
    conn.finish(&mut cx, 99, &mut seen);
    (conn, seen)
}

#[test]
fn rfc8448_decrypted_in_every_chunking() {
    let keys = all_secrets();
    let want: Vec<u8> = (0u8..50).collect();
    for chunk in [1, 2, 3, 5, 7, 64, 1000, 100_000] {
        let (conn, seen) = run(&keys, chunk);
        let f = conn.facts();
        assert_eq!(f.outcome, Some(Outcome::Decrypted), "chunk {chunk}");
        assert_eq!(seen.plain, [want.clone(), want.clone()], "chunk {chunk}");
        assert_eq!(f.version(), Some(Version::TLS13));
        assert_eq!(f.cipher_suite(), Some(0x1301));
        assert_eq!(f.sni(), Some("server"));
        assert_eq!(f.keys, KeyStatus::Found);
        assert_eq!(f.finished, [true, true]);
        // Client: Finished, app data, alert. Server: flight, ticket, app data, alert.
        assert_eq!((f.sides[0].decrypted_records, f.sides[1].decrypted_records), (3, 4));
        assert_eq!((f.sides[0].plaintext_records, f.sides[1].plaintext_records), (1, 1));
        assert_eq!(f.sides[0].trial_opens + f.sides[1].trial_opens, 0);
        let alerts: Vec<(Side, Option<Alert>, bool)> =
            f.alerts.iter().map(|a| (a.side, a.alert, a.during_handshake)).collect();
        let close = Alert::read(&[1, 0]);
        assert_eq!(alerts, vec![(Side::Client, close, false), (Side::Server, close, false)]);
        assert!(f.first_error_alert().is_none());
    }
}

#[test]
fn rfc8448_only_application_secrets_still_decrypts() {
    let keys = keylog(&[("CLIENT_TRAFFIC_SECRET_0", rfc8448::C_AP), ("SERVER_TRAFFIC_SECRET_0", rfc8448::S_AP)]);
    let (conn, seen) = run(&keys, 1000);
    let f = conn.facts();
    assert_eq!(seen.plain[0], (0u8..50).collect::<Vec<u8>>());
    assert_eq!(seen.plain[1], (0u8..50).collect::<Vec<u8>>());
    assert_eq!(f.outcome, Some(Outcome::Decrypted));
    // The handshake records are counted as not decrypted, no gap is invented.
    assert_eq!((f.sides[0].undecrypted_records, f.sides[1].undecrypted_records), (1, 1));
    assert!(seen.events.iter().flatten().all(|e| matches!(e, Ev::Data(_))));
}

#[test]
fn rfc8448_without_keys_is_encrypted_and_counted() {
    let keys = KeyStore::new();
    let (conn, seen) = run(&keys, 7);
    let f = conn.facts();
    assert_eq!(f.outcome, Some(Outcome::EncryptedNoKeys));
    assert_eq!(f.keys, KeyStatus::Missing);
    assert!(seen.plain.iter().all(Vec::is_empty));
    assert_eq!((f.sides[0].undecrypted_records, f.sides[1].undecrypted_records), (3, 4));
    assert!(f.handshake_complete());
    assert!(f.alerts.is_empty(), "{:?}", f.alerts);
}

#[test]
fn closed_after_client_hello_is_incomplete_and_alert_fails_handshake() {
    let keys = KeyStore::new();
    let mut cx = Decoder::new(&keys);
    let mut seen = Seen::default();
    let mut conn = TlsConn::new();
    conn.data(&mut cx, Side::Client, 1, &h(rfc8448::CLIENT_HELLO_RECORD), &mut seen);
    assert_eq!(conn.finish(&mut cx, 2, &mut seen), Outcome::Incomplete);

    // A server refusing with a plaintext handshake_failure alert.
    let mut conn = TlsConn::new();
    conn.data(&mut cx, Side::Client, 1, &h(rfc8448::CLIENT_HELLO_RECORD), &mut seen);
    conn.data(&mut cx, Side::Server, 5, &[21, 3, 3, 0, 2, 2, 40], &mut seen);
    assert_eq!(conn.finish(&mut cx, 6, &mut seen), Outcome::HandshakeFailed);
    let a = conn.facts().first_error_alert().expect("alert");
    assert_eq!((a.side, a.ts, a.offset, a.encrypted), (Side::Server, 5, 0, false));
    assert_eq!(a.alert.map(|x| x.to_string()), Some("fatal handshake_failure (40)".to_string()));

    // Without keys, the client's first protected record of an alert's
    // size after the server's flight is an encrypted alert.
    let mut conn = TlsConn::new();
    let f = flights();
    conn.data(&mut cx, Side::Client, 1, &f[0].1, &mut seen);
    conn.data(&mut cx, Side::Server, 2, &f[1].1, &mut seen);
    conn.data(&mut cx, Side::Client, 3, &h(rfc8448::CLIENT_ALERT_RECORD), &mut seen);
    assert_eq!(conn.finish(&mut cx, 4, &mut seen), Outcome::HandshakeFailed);
    let a = conn.facts().first_error_alert().expect("alert");
    assert_eq!((a.side, a.alert, a.encrypted, a.offset), (Side::Client, None, true, 201));
}

/// Seals TLS 1.3 application data records with the RFC's client
/// application key, sequence numbers from `first`.
fn sealed_stream(sizes: &[usize], first: u64) -> (Vec<u8>, Vec<std::ops::Range<usize>>, Vec<Vec<u8>>) {
    let records: Vec<(u8, Vec<u8>)> =
        sizes.iter().enumerate().map(|(i, &n)| (23, (0..n).map(|j| (i * 31 + j) as u8).collect())).collect();
    let (out, spans) = seal(&h(rfc8448::C_AP), &records, first);
    (out, spans, records.into_iter().map(|r| r.1).collect())
}

/// Seals TLS 1.3 records (inner content type, content) with the
/// AES-128-GCM key and IV of a traffic secret.
fn seal(secret: &[u8], records: &[(u8, Vec<u8>)], first: u64) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
    let mut k = [0u8; 16];
    let mut iv = [0u8; 12];
    assert!(hkdf_expand_label(HashKind::Sha256, secret, b"key", b"", &mut k));
    assert!(hkdf_expand_label(HashKind::Sha256, secret, b"iv", b"", &mut iv));
    let key = Aes128Gcm::new_from_slice(&k).expect("key");
    let mut out = Vec::new();
    let mut spans = Vec::new();
    for (i, (ctype, content)) in records.iter().enumerate() {
        let mut buf = content.clone();
        buf.push(*ctype);
        let len = buf.len() + 16;
        let hdr = [23, 3, 3, (len >> 8) as u8, len as u8];
        let mut nonce = iv;
        for (b, s) in nonce[4..].iter_mut().zip((first + i as u64).to_be_bytes()) {
            *b ^= s;
        }
        let tag = key.encrypt_in_place_detached(GenericArray::from_slice(&nonce), &hdr, &mut buf).expect("seal");
        let start = out.len();
        out.extend_from_slice(&hdr);
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        spans.push(start..out.len());
    }
    (out, spans)
}

#[test]
fn key_updates_are_followed_even_when_lost() {
    let keys = all_secrets();
    // RFC 8446 section 7.2: the next secret is HKDF-Expand-Label(secret,
    // "traffic upd", "", Hash.length).
    let mut next = [0u8; 32];
    assert!(hkdf_expand_label(HashKind::Sha256, &h(rfc8448::C_AP), b"traffic upd", b"", &mut next));
    let before: Vec<(u8, Vec<u8>)> = vec![(23, b"one".to_vec()), (23, b"two".to_vec()), (22, vec![24, 0, 0, 1, 0])];
    let after: Vec<(u8, Vec<u8>)> = vec![(23, b"three".to_vec()), (23, b"four".to_vec())];
    let (mut stream, spans) = seal(&h(rfc8448::C_AP), &before, 1);
    let (tail, _) = seal(&next, &after, 0);
    stream.extend_from_slice(&tail);
    for lose_update in [false, true] {
        let mut cx = Decoder::new(&keys);
        let mut seen = Seen::default();
        let mut conn = after_handshake(&mut cx, &mut seen);
        if lose_update {
            conn.data(&mut cx, Side::Client, 1, &stream[..spans[2].start], &mut seen);
            conn.gap(Side::Client, spans[2].len() as u64);
            conn.data(&mut cx, Side::Client, 2, &stream[spans[2].end..], &mut seen);
        } else {
            conn.data(&mut cx, Side::Client, 1, &stream, &mut seen);
        }
        conn.finish(&mut cx, 3, &mut seen);
        assert_eq!(seen.plain[0], b"onetwothreefour", "KeyUpdate lost: {lose_update}");
        let st = &conn.facts().sides[0];
        assert_eq!(st.key_updates, 1);
        assert_eq!((st.lost_records, st.decrypt_failures), (u64::from(lose_update), 0));
    }
}

/// A decrypting connection after the RFC 8448 handshake, the client's
/// application epoch at sequence number 1 (after its app record).
fn after_handshake(cx: &mut Decoder<'_>, seen: &mut Seen) -> TlsConn {
    let mut conn = TlsConn::new();
    for (side, bytes) in flights().into_iter().take(3) {
        conn.data(cx, side, 0, &bytes, seen);
    }
    *seen = Seen::default();
    conn
}

#[test]
fn loss_inside_a_known_record_is_exact() {
    let keys = all_secrets();
    let mut cx = Decoder::new(&keys);
    let mut seen = Seen::default();
    let mut conn = after_handshake(&mut cx, &mut seen);
    let sizes = [100, 2000, 300, 16000, 50, 700];
    let (stream, spans, plains) = sealed_stream(&sizes, 1);
    // Record 3 (16000 bytes) loses bytes 1000..9000 of its body.
    let cut = spans[3].start + 1000..spans[3].start + 9000;
    conn.data(&mut cx, Side::Client, 1, &stream[..cut.start], &mut seen);
    conn.gap(Side::Client, cut.len() as u64);
    conn.data(&mut cx, Side::Client, 2, &stream[cut.end..], &mut seen);
    conn.finish(&mut cx, 3, &mut seen);
    let want: Vec<u8> = plains.iter().enumerate().filter(|(i, _)| *i != 3).flat_map(|(_, p)| p.clone()).collect();
    assert_eq!(seen.plain[0], want);
    assert_eq!(seen.events[0], vec![Ev::Data(2400), Ev::Gap(16000), Ev::Data(750)]);
    let st = &conn.facts().sides[0];
    assert_eq!((st.lost_records, st.unknown_losses, st.resyncs, st.trial_opens), (1, 0, 0, 0));
    assert_eq!(st.decrypted_records, 2 + 5);
}

#[test]
fn loss_of_whole_records_resynchronises_and_counts_them() {
    let keys = all_secrets();
    let sizes = [100, 2000, 300, 16000, 50, 700, 4000, 10, 9000, 1];
    let (stream, spans, plains) = sealed_stream(&sizes, 1);
    // Lose from the middle of record 2's header to the middle of record 6:
    // records 2..=6 are gone, their count unknown to the record layer.
    for (from, to) in [(spans[2].start + 2, spans[6].start + 40), (spans[2].start, spans[7].start - 1)] {
        let mut cx = Decoder::new(&keys);
        let mut seen = Seen::default();
        let mut conn = after_handshake(&mut cx, &mut seen);
        for piece in stream[..from].chunks(1460) {
            conn.data(&mut cx, Side::Client, 1, piece, &mut seen);
        }
        conn.gap(Side::Client, (to - from) as u64);
        for piece in stream[to..].chunks(1460) {
            conn.data(&mut cx, Side::Client, 2, piece, &mut seen);
        }
        conn.finish(&mut cx, 3, &mut seen);
        let kept = [0, 1, 7, 8, 9];
        let want: Vec<u8> = kept.iter().flat_map(|&i| plains[i].clone()).collect();
        assert_eq!(seen.plain[0], want);
        let lost_plain: u64 = (2..=6).map(|i| sizes[i] as u64).sum();
        assert_eq!(seen.events[0], vec![Ev::Data(2100), Ev::Gap(lost_plain), Ev::Data(9011)]);
        let st = &conn.facts().sides[0];
        assert_eq!((st.lost_records, st.unknown_losses, st.resyncs), (5, 0, 1), "{st:?}");
        assert!(st.trial_opens >= 1 && st.trial_opens <= 5, "{st:?}");
        assert_eq!(st.skipped_bytes as usize, spans[7].start - to);
    }
}

#[test]
fn loss_without_keys_is_counted_not_decrypted() {
    let keys = KeyStore::new();
    let mut cx = Decoder::new(&keys);
    let mut seen = Seen::default();
    let mut conn = after_handshake(&mut cx, &mut seen);
    let (stream, spans, _) = sealed_stream(&[100, 2000, 300, 16000, 50], 1);
    conn.data(&mut cx, Side::Client, 1, &stream[..spans[1].start + 10], &mut seen);
    conn.gap(Side::Client, 500);
    conn.data(&mut cx, Side::Client, 2, &stream[spans[1].start + 510..], &mut seen);
    assert_eq!(conn.finish(&mut cx, 3, &mut seen), Outcome::EncryptedNoKeys);
    let st = &conn.facts().sides[0];
    // Client records: Finished, app data (RFC), then 100, 300, 16000, 50.
    assert_eq!((st.undecrypted_records, st.lost_records, st.resyncs), (6, 1, 0));
    assert!(seen.plain[0].is_empty());
}

#[test]
fn not_tls_and_garbage_after_the_handshake() {
    let keys = all_secrets();
    let mut cx = Decoder::new(&keys);
    let mut seen = Seen::default();
    let mut conn = TlsConn::new();
    conn.data(&mut cx, Side::Client, 0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut seen);
    conn.data(&mut cx, Side::Server, 0, b"HTTP/1.1 200 OK\r\n\r\n", &mut seen);
    assert_eq!(conn.finish(&mut cx, 0, &mut seen), Outcome::NotTls);

    // Bytes that are no record in the middle of a decrypted stream: the
    // records after them are found again.
    let mut conn = after_handshake(&mut cx, &mut seen);
    let (stream, spans, plains) = sealed_stream(&[100, 200, 300], 1);
    conn.data(&mut cx, Side::Client, 1, &stream[..spans[1].end], &mut seen);
    conn.data(&mut cx, Side::Client, 1, &[0xff; 37], &mut seen);
    // The garbage hides no record, so record 2's sequence number is 3.
    conn.data(&mut cx, Side::Client, 1, &stream[spans[2].clone()], &mut seen);
    conn.finish(&mut cx, 2, &mut seen);
    let st = &conn.facts().sides[0];
    assert_eq!(st.bad_headers, 1);
    assert_eq!(st.resyncs, 1);
    assert_eq!(seen.plain[0], plains.concat());
}

/// A small deterministic generator (xorshift), for damage that does not
/// depend on the code under test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn damaged_streams_never_panic_and_every_record_is_accounted() {
    let keys = all_secrets();
    let (stream, _, _) = sealed_stream(&[100, 2000, 300, 16000, 50, 700, 4000, 10, 9000, 1], 1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300u32 {
        let mut cx = Decoder::new(&keys);
        let mut seen = Seen::default();
        let mut conn = if round.is_multiple_of(3) { TlsConn::new() } else { after_handshake(&mut cx, &mut seen) };
        let mut s = stream.clone();
        // Flip bytes, then cut the stream into random chunks and gaps.
        for _ in 0..rng.next() % 4 {
            let i = (rng.next() as usize) % s.len();
            s[i] ^= 1 << (rng.next() % 8);
        }
        let mut p = 0;
        while p < s.len() {
            let n = 1 + (rng.next() as usize) % 3000;
            let end = (p + n).min(s.len());
            if rng.next().is_multiple_of(5) {
                conn.gap(Side::Client, (end - p) as u64);
            } else {
                conn.data(&mut cx, Side::Client, p as i64, &s[p..end], &mut seen);
            }
            if rng.next().is_multiple_of(7) {
                let junk: Vec<u8> = (0..rng.next() % 64).map(|_| rng.next() as u8).collect();
                conn.data(&mut cx, Side::Server, p as i64, &junk, &mut seen);
            }
            p = end;
        }
        conn.finish(&mut cx, 0, &mut seen);
        let st = &conn.facts().sides[0];
        // Every record read is in exactly one bucket.
        assert_eq!(
            st.records,
            st.plaintext_records + st.decrypted_records + st.undecrypted_records + st.decrypt_failures,
            "round {round}: {st:?}"
        );
    }
}

#[test]
fn a_connection_is_small() {
    // What a connection costs before its buffers grow: the caller keeps
    // one per open TLS connection.
    let size = std::mem::size_of::<TlsConn>();
    assert!(size <= 1200, "{size}");
    // Between records a connection holds no buffer of its own.
    let keys = all_secrets();
    let mut cx = Decoder::new(&keys);
    let mut seen = Seen::default();
    let mut conn = after_handshake(&mut cx, &mut seen);
    let (stream, spans, _) = sealed_stream(&[16000, 16000], 1);
    conn.data(&mut cx, Side::Client, 1, &stream[..spans[0].end + 100], &mut seen);
    assert!(conn.buffered() >= 100);
    conn.data(&mut cx, Side::Client, 1, &stream[spans[0].end + 100..], &mut seen);
    assert_eq!(conn.buffered(), 0);
    assert_eq!(seen.plain[0].len(), 32000);
}

#[test]
fn a_lost_handshake_record_is_no_gap_in_the_data() {
    // RFC 8448: the server's encrypted flight (EncryptedExtensions ..
    // Finished) loses 300 bytes in its middle. Its NewSessionTicket then
    // opens with the application key (sequence number 0), and the data
    // after it is whole: no gap reaches the sink.
    let keys = all_secrets();
    let mut cx = Decoder::new(&keys);
    let mut seen = Seen::default();
    let mut conn = TlsConn::new();
    let f = flights();
    conn.data(&mut cx, Side::Client, 0, &f[0].1, &mut seen);
    let server = &f[1].1;
    let sh_len = h(rfc8448::SERVER_HELLO_RECORD).len();
    conn.data(&mut cx, Side::Server, 1, &server[..sh_len + 200], &mut seen);
    conn.gap(Side::Server, 300);
    conn.data(&mut cx, Side::Server, 1, &server[sh_len + 500..], &mut seen);
    for (i, (side, bytes)) in f.iter().enumerate().skip(2) {
        conn.data(&mut cx, *side, i as i64, bytes, &mut seen);
    }
    assert_eq!(conn.finish(&mut cx, 9, &mut seen), Outcome::Decrypted);
    assert_eq!(seen.events[1], vec![Ev::Data(50)]);
    assert_eq!(seen.plain[0], (0u8..50).collect::<Vec<u8>>());
    let st = &conn.facts().sides[1];
    assert_eq!((st.lost_records, st.decrypt_failures, st.decrypted_records), (1, 0, 3));
}

#[test]
fn wrong_keys_and_unknown_suites_are_told_apart_from_missing_keys() {
    // Secrets of another connection under this client random.
    let wrong = keylog(&[
        ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", rfc8448::S_AP),
        ("SERVER_HANDSHAKE_TRAFFIC_SECRET", rfc8448::C_AP),
        ("CLIENT_TRAFFIC_SECRET_0", rfc8448::S_HS),
        ("SERVER_TRAFFIC_SECRET_0", rfc8448::C_HS),
    ]);
    let (conn, seen) = run(&wrong, 100);
    assert_eq!(conn.facts().outcome, Some(Outcome::KeysMismatch));
    assert!(seen.plain.iter().all(Vec::is_empty));

    // The same ServerHello choosing TLS_AES_128_CCM_SHA256 (0x1304).
    let keys = all_secrets();
    let mut cx = Decoder::new(&keys);
    let mut seen = Seen::default();
    let mut conn = TlsConn::new();
    for (i, (side, mut bytes)) in flights().into_iter().enumerate() {
        if i == 1 {
            // The suite follows version (2), random (32), session id (1).
            assert_eq!(&bytes[9 + 35..9 + 37], &[0x13, 0x01]);
            bytes[9 + 36] = 0x04;
        }
        conn.data(&mut cx, side, 0, &bytes, &mut seen);
    }
    assert_eq!(conn.finish(&mut cx, 1, &mut seen), Outcome::UnsupportedSuite);
    assert_eq!(conn.facts().cipher_suite(), Some(0x1304));
}

#[test]
fn connections_move_between_threads_and_keys_are_shared() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<TlsConn>();
    sync::<KeyStore>();
}

#[test]
fn a_connection_joined_midstream_is_counted_not_guessed() {
    let keys = all_secrets();
    let mut cx = Decoder::new(&keys);
    let mut seen = Seen::default();
    let (stream, spans, _) = sealed_stream(&[100, 2000, 300, 16000, 50], 1);
    let mut conn = TlsConn::new_midstream();
    // The capture starts 700 bytes into record 1.
    for piece in stream[spans[1].start + 700..].chunks(1448) {
        conn.data(&mut cx, Side::Client, 1, piece, &mut seen);
    }
    assert_eq!(conn.finish(&mut cx, 2, &mut seen), Outcome::NoClientHello);
    let st = &conn.facts().sides[0];
    assert_eq!((st.resyncs, st.undecrypted_records, st.decrypted_records), (1, 3, 0));
    assert_eq!(st.skipped_bytes as usize, spans[1].len() - 700);
    assert!(seen.plain[0].is_empty());
    // The same bytes on a connection taken from its start are no TLS.
    let mut conn = TlsConn::new();
    conn.data(&mut cx, Side::Client, 1, &stream[spans[1].start + 700..], &mut seen);
    assert_eq!(conn.finish(&mut cx, 2, &mut seen), Outcome::NotTls);
}
