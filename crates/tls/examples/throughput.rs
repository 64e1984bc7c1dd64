//! How fast pov-tls decrypts: TLS 1.3 streams of full records (16 KiB of
//! application data each, the size servers send bodies in), sealed here
//! with each suite, fed to a `TlsConn` in 1,448-byte chunks (a TCP segment
//! with timestamps on Ethernet) and in 64 KiB chunks (loopback). Prints
//! MB/s of ciphertext per suite, one core, and the RustCrypto AEAD crate
//! alone on the same records: for ChaCha20-Poly1305 what the record layer
//! costs on top; for AES-GCM the `aes-gcm` crate, which pov-tls uses only
//! on CPUs without PCLMULQDQ (its own GCM opens the records otherwise).
//!
//! `cargo run --release -p pov-tls --example throughput [MB]`

use std::time::Instant;

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use pov_tls::crypto::{hkdf_expand_label, suite_info};
use pov_tls::{Decoder, KeyStore, Side, TlsConn, TlsSink};

struct Count(u64);
impl TlsSink for Count {
    fn plaintext(&mut self, _: Side, _: i64, data: &[u8]) {
        self.0 += data.len() as u64;
    }
    fn gap(&mut self, _: Side, _: i64, _: u64) {}
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let mb: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let random = [7u8; 32];
    for suite_id in [0x1301u16, 0x1302, 0x1303] {
        let Some(suite) = suite_info(suite_id) else { return };
        let secret = vec![0x42u8; suite.hash.len()];
        let mut keys = KeyStore::new();
        let line = format!("CLIENT_TRAFFIC_SECRET_0 {} {}\n", hex(&random), hex(&secret));
        keys.load(line.as_bytes());
        let mut key = vec![0u8; suite.cipher.key_len()];
        let mut iv = [0u8; 12];
        hkdf_expand_label(suite.hash, &secret, b"key", b"", &mut key);
        hkdf_expand_label(suite.hash, &secret, b"iv", b"", &mut iv);
        // A ClientHello with the random, a TLS 1.3 ServerHello, then the
        // client's records under its application key (no handshake
        // secret logged: pov opens them with the application key from 0).
        let mut ch = vec![1, 0, 0, 0, 3, 3];
        ch.extend_from_slice(&random);
        ch.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0, 0, 0]);
        let n = ch.len() - 4;
        ch[1..4].copy_from_slice(&(n as u32).to_be_bytes()[1..]);
        let mut sh = vec![2, 0, 0, 0, 3, 3];
        sh.extend_from_slice(&[9u8; 32]);
        sh.extend_from_slice(&[0]);
        sh.extend_from_slice(&suite_id.to_be_bytes());
        sh.extend_from_slice(&[0, 0, 6, 0, 43, 0, 2, 3, 4]);
        let n = sh.len() - 4;
        sh[1..4].copy_from_slice(&(n as u32).to_be_bytes()[1..]);
        let rec = |t: u8, body: &[u8]| {
            let mut r = vec![t, 3, 3, (body.len() >> 8) as u8, body.len() as u8];
            r.extend_from_slice(body);
            r
        };
        let mut stream = Vec::with_capacity(mb << 20);
        let payload = vec![0x61u8; 16384];
        let mut seq = 0u64;
        while stream.len() < mb << 20 {
            let mut buf = payload.clone();
            buf.push(23);
            let len = buf.len() + 16;
            let hdr = [23, 3, 3, (len >> 8) as u8, len as u8];
            let mut nonce = iv;
            for (b, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *b ^= s;
            }
            let nonce = GenericArray::from_slice(&nonce);
            let tag = match suite.cipher {
                pov_tls::crypto::CipherKind::Aes128Gcm => Aes128Gcm::new_from_slice(&key)
                    .ok()
                    .and_then(|c| c.encrypt_in_place_detached(nonce, &hdr, &mut buf).ok()),
                pov_tls::crypto::CipherKind::Aes256Gcm => Aes256Gcm::new_from_slice(&key)
                    .ok()
                    .and_then(|c| c.encrypt_in_place_detached(nonce, &hdr, &mut buf).ok()),
                pov_tls::crypto::CipherKind::ChaCha20Poly1305 => ChaCha20Poly1305::new_from_slice(&key)
                    .ok()
                    .and_then(|c| c.encrypt_in_place_detached(nonce, &hdr, &mut buf).ok()),
                _ => None,
            };
            let Some(tag) = tag else { return };
            stream.extend_from_slice(&hdr);
            stream.extend_from_slice(&buf);
            stream.extend_from_slice(&tag);
            seq += 1;
        }
        // The RustCrypto AEAD alone: every record opened in a reused buffer.
        let t = Instant::now();
        let mut buf = Vec::with_capacity(16384 + 17);
        let mut opened = 0u64;
        let mut p = 0;
        let mut seq = 0u64;
        while p + 5 <= stream.len() {
            let len = u16::from_be_bytes([stream[p + 3], stream[p + 4]]) as usize;
            let hdr = &stream[p..p + 5];
            let (ct, tag) = stream[p + 5..p + 5 + len].split_at(len - 16);
            buf.clear();
            buf.extend_from_slice(ct);
            let mut nonce = iv;
            for (b, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *b ^= s;
            }
            let (nonce, tag) = (GenericArray::from_slice(&nonce), GenericArray::from_slice(tag));
            let ok = match suite.cipher {
                pov_tls::crypto::CipherKind::Aes128Gcm => Aes128Gcm::new_from_slice(&key)
                    .is_ok_and(|c| c.decrypt_in_place_detached(nonce, hdr, &mut buf, tag).is_ok()),
                pov_tls::crypto::CipherKind::Aes256Gcm => Aes256Gcm::new_from_slice(&key)
                    .is_ok_and(|c| c.decrypt_in_place_detached(nonce, hdr, &mut buf, tag).is_ok()),
                pov_tls::crypto::CipherKind::ChaCha20Poly1305 => ChaCha20Poly1305::new_from_slice(&key)
                    .is_ok_and(|c| c.decrypt_in_place_detached(nonce, hdr, &mut buf, tag).is_ok()),
                _ => false,
            };
            opened += ok as u64;
            p += 5 + len;
            seq += 1;
        }
        let dt = t.elapsed().as_secs_f64();
        println!("{} AEAD crate alone:  {:>7.0} MB/s ({opened} records)", suite.name, stream.len() as f64 / dt / 1e6);
        for chunk in [1448usize, 65536] {
            let mut cx = Decoder::new(&keys);
            let mut conn = TlsConn::new();
            let mut sink = Count(0);
            conn.data(&mut cx, Side::Client, 0, &rec(22, &ch), &mut sink);
            conn.data(&mut cx, Side::Server, 0, &rec(22, &sh), &mut sink);
            let t = Instant::now();
            for c in stream.chunks(chunk) {
                conn.data(&mut cx, Side::Client, 1, c, &mut sink);
            }
            let dt = t.elapsed().as_secs_f64();
            let st = &conn.facts().sides[0];
            println!(
                "{} chunks of {chunk:>5}: {:>7.0} MB/s ({} records, {} MB plaintext, {} failures)",
                suite.name,
                stream.len() as f64 / dt / 1e6,
                st.decrypted_records,
                sink.0 >> 20,
                st.decrypt_failures
            );
        }
    }
}
