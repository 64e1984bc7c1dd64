//! pov-tls: TLS 1.2 and 1.3 on reassembled TCP streams, decrypted with key
//! logs, and the TLS failures visible without them.
//!
//! # Brief overview
//!
//! - [`keylog`]: NSS key log files (`SSLKEYLOGFILE`) and pcapng Decryption
//!   Secrets Blocks into a [`KeyStore`] looked up by client random. Bad
//!   lines are counted with their numbers; secrets never reach `Debug`.
//! - [`wire`]: record headers, ClientHello / ServerHello (client random,
//!   SNI, ALPN, offered versions and suites, selected version and suite,
//!   HelloRetryRequest), alerts.
//! - [`crypto`]: the suites pov decrypts (AES-128-GCM, AES-256-GCM,
//!   ChaCha20-Poly1305 for TLS 1.2 and 1.3; TLS 1.2 AES-CBC with HMAC),
//!   HKDF-Expand-Label, the TLS 1.2 PRF, and opening records without
//!   allocating.
//! - [`conn`]: [`TlsConn`], one connection: push each side's bytes and
//!   gaps in stream order; decrypted application data goes to a
//!   [`TlsSink`] with gap markers (ready for an HTTP parser), and
//!   [`TlsFacts`] say what the connection was and how it ended
//!   ([`Outcome`]): decrypted, encrypted without keys, handshake failed
//!   (with the alert, its side, time and offset), incomplete.
//!
//! A [`Decoder`] (one per thread) holds the key store and the buffer
//! records are decrypted into, so a connection keeps only what a record
//! split across segments needs. docs/tls.md says how to get key logs, how
//! sensitive they are, and what is recovered after capture loss.
//!
//! ```
//! use pov_tls::{Decoder, KeyStore, Side, TlsConn, TlsSink, Outcome};
//!
//! struct Print(Vec<u8>);
//! impl TlsSink for Print {
//!     fn plaintext(&mut self, _: Side, _: i64, data: &[u8]) { self.0.extend_from_slice(data) }
//!     fn gap(&mut self, _: Side, _: i64, _: u64) {}
//! }
//! let mut keys = KeyStore::new();
//! keys.load(b"# no secrets yet\n");
//! let mut cx = Decoder::new(&keys);
//! let mut conn = TlsConn::new();
//! let mut sink = Print(Vec::new());
//! conn.data(&mut cx, Side::Client, 0, b"GET / HTTP/1.1\r\n\r\n", &mut sink);
//! assert_eq!(conn.finish(&mut cx, 0, &mut sink), Outcome::NotTls);
//! ```

#![deny(missing_docs)]
// Allowed in two places only: `gcm` (x86 SIMD intrinsics for GHASH, used
// after a CPU feature check) and `keylog::Secret`'s wipe (volatile writes).
#![deny(unsafe_code)]

pub mod conn;
pub mod crypto;
pub mod facts;
#[allow(unsafe_code)]
mod gcm;
pub mod keylog;
pub mod wire;

#[cfg(test)]
mod tests;

pub use conn::{AlertEvent, Decoder, KeyStatus, Outcome, Side, SideStats, TlsConn, TlsFacts, TlsSink, looks_like_tls};
pub use keylog::{ClientRandom, KeyLogStats, KeyStore, Secret};
pub use wire::{Alert, Version};
