//! What is known of a TLS connection: its hellos, keys, alerts with their
//! evidence, per-side counters, and the outcome.

use crate::conn::Side;
use crate::wire::{Alert, ClientHello, ServerHello, Version};

/// An alert and where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertEvent {
    /// Who sent it.
    pub side: Side,
    /// Capture time (ns) of the chunk that completed its record.
    pub ts: i64,
    /// Stream offset of its record in the sender's direction.
    pub offset: u64,
    /// The alert, `None` when it was protected and no key opened it (an
    /// encrypted record of an alert's size during the handshake).
    pub alert: Option<Alert>,
    /// Read from a protected record.
    pub encrypted: bool,
    /// Sent before the handshake completed.
    pub during_handshake: bool,
}

/// Whether keys were found for the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyStatus {
    /// No ServerHello yet: nothing to look up.
    #[default]
    NotNeeded,
    /// The key log has the secrets this connection needs.
    Found,
    /// The key log has no (or not all needed) secrets for its client
    /// random.
    Missing,
    /// The suite is not one pov decrypts (see [`crate::crypto::SUITES`]).
    UnsupportedSuite,
}

/// What became of a TLS connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The stream does not start with a TLS record.
    NotTls,
    /// TLS records but no ClientHello (the capture started mid-connection,
    /// or lost it): nothing to look keys up with.
    NoClientHello,
    /// A side sent an error alert (or, without keys, an encrypted record of
    /// an alert's size and nothing after it) before the handshake
    /// completed: see [`TlsFacts::alerts`].
    HandshakeFailed,
    /// Closed before the handshake completed, without an alert.
    Incomplete,
    /// Handshake completed; no keys for it: the content was not seen.
    EncryptedNoKeys,
    /// Handshake completed with a suite pov does not decrypt.
    UnsupportedSuite,
    /// Keys were found but no record opened with them.
    KeysMismatch,
    /// Decrypted (see the per-side counters for losses).
    Decrypted,
}

impl Outcome {
    /// A short name for reports ("encrypted_no_keys").
    pub fn name(self) -> &'static str {
        match self {
            Outcome::NotTls => "not_tls",
            Outcome::NoClientHello => "no_client_hello",
            Outcome::HandshakeFailed => "handshake_failed",
            Outcome::Incomplete => "incomplete",
            Outcome::EncryptedNoKeys => "encrypted_no_keys",
            Outcome::UnsupportedSuite => "unsupported_suite",
            Outcome::KeysMismatch => "keys_mismatch",
            Outcome::Decrypted => "decrypted",
        }
    }
}

/// Counters of one side. Every record lands in exactly one of
/// `plaintext_records`, `decrypted_records`, `undecrypted_records`,
/// `decrypt_failures`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideStats {
    /// Records read whole.
    pub records: u64,
    /// Stream bytes received (gaps not included).
    pub bytes: u64,
    /// Records sent in the clear (handshake, alerts, ChangeCipherSpec).
    pub plaintext_records: u64,
    /// Protected records opened.
    pub decrypted_records: u64,
    /// Protected records not tried: no key.
    pub undecrypted_records: u64,
    /// Protected records that no key and sequence number opened.
    pub decrypt_failures: u64,
    /// Application data bytes handed to the sink.
    pub plaintext_bytes: u64,
    /// Capture gaps and the bytes they missed.
    pub gaps: u64,
    /// Bytes missing in those gaps.
    pub gap_bytes: u64,
    /// Records known lost (exact: the gap fell inside a known record, or
    /// the sequence number that opened the next record told).
    pub lost_records: u64,
    /// Losses whose record count stayed unknown (no key, or no sequence
    /// number opened the next record).
    pub unknown_losses: u64,
    /// Times a record boundary was searched for and found.
    pub resyncs: u64,
    /// Bytes scanned over while searching (part of lost records).
    pub skipped_bytes: u64,
    /// Implausible record headers met while in step.
    pub bad_headers: u64,
    /// Extra AEAD attempts spent on sequence numbers and key epochs.
    pub trial_opens: u64,
    /// Bytes left at the end in an incomplete record.
    pub truncated_bytes: u64,
    /// Handshake messages that did not parse or were too large.
    pub bad_handshake: u64,
    /// TLS 1.3 KeyUpdates followed.
    pub key_updates: u64,
}

/// What is known of a connection.
#[derive(Clone, Debug, Default)]
pub struct TlsFacts {
    /// The (last) ClientHello.
    pub client_hello: Option<ClientHello>,
    /// The ServerHello (not a HelloRetryRequest).
    pub server_hello: Option<ServerHello>,
    /// A HelloRetryRequest was sent.
    pub hello_retry: bool,
    /// The ALPN protocol selected (ServerHello in TLS 1.2,
    /// EncryptedExtensions in TLS 1.3 once decrypted).
    pub alpn: Option<String>,
    /// Keys.
    pub keys: KeyStatus,
    /// Finished seen (decrypted) per side [client, server].
    pub finished: [bool; 2],
    /// Alerts, the first [`crate::conn::MAX_ALERTS_KEPT`].
    pub alerts: Vec<AlertEvent>,
    /// Alerts seen, all.
    pub alert_count: u64,
    /// Counters [client, server].
    pub sides: [SideStats; 2],
    /// Set by [`crate::TlsConn::finish`].
    pub outcome: Option<Outcome>,
    pub(crate) not_tls: bool,
    pub(crate) ccs: [bool; 2],
    /// Protected records per side after the handshake keys changed, and
    /// the body length, time and offset of the first one.
    pub(crate) protected: [u64; 2],
    pub(crate) first_protected: [Option<(usize, i64, u64)>; 2],
}

impl TlsFacts {
    /// The negotiated version.
    pub fn version(&self) -> Option<Version> {
        self.server_hello.as_ref().map(ServerHello::version)
    }

    /// The negotiated cipher suite.
    pub fn cipher_suite(&self) -> Option<u16> {
        self.server_hello.as_ref().map(|s| s.cipher_suite)
    }

    /// The SNI the client asked for.
    pub fn sni(&self) -> Option<&str> {
        self.client_hello.as_ref()?.sni.as_deref()
    }

    /// The first error alert (or inferred encrypted alert), if any.
    pub fn first_error_alert(&self) -> Option<&AlertEvent> {
        self.alerts.iter().find(|a| a.alert.is_none_or(|al| al.is_error()))
    }

    /// The outcome (computed now if [`crate::TlsConn::finish`] was not called).
    pub fn outcome(&self) -> Outcome {
        self.outcome.unwrap_or_else(|| self.compute_outcome())
    }

    pub(crate) fn tls13(&self) -> bool {
        self.version() == Some(Version::TLS13)
    }

    /// Whether the handshake completed: both Finished decrypted, or
    /// without keys the signs of it on the wire (TLS 1.2: both
    /// ChangeCipherSpecs and a protected record each; TLS 1.3: the
    /// client's first protected record is not alert-sized).
    pub fn handshake_complete(&self) -> bool {
        if self.finished == [true, true] || self.sides.iter().any(|s| s.plaintext_bytes > 0) {
            return true;
        }
        if self.server_hello.is_none()
            || self.keys == KeyStatus::Found && self.sides.iter().any(|s| s.decrypted_records > 0)
        {
            return false;
        }
        if self.tls13() {
            self.protected[1] > 0 && self.first_protected[0].is_some_and(|(len, _, _)| !is_alert_sized(len, true))
        } else {
            self.ccs == [true, true] && self.protected[0] > 0 && self.protected[1] > 0
        }
    }

    pub(crate) fn compute_outcome(&self) -> Outcome {
        if self.not_tls {
            return Outcome::NotTls;
        }
        if self.client_hello.is_none() {
            return Outcome::NoClientHello;
        }
        if self.alerts.iter().any(|a| a.during_handshake && a.alert.is_none_or(|al| al.is_error())) {
            return Outcome::HandshakeFailed;
        }
        if !self.handshake_complete() {
            return Outcome::Incomplete;
        }
        match self.keys {
            KeyStatus::Found if self.sides.iter().any(|s| s.decrypted_records > 0) => Outcome::Decrypted,
            KeyStatus::Found => Outcome::KeysMismatch,
            KeyStatus::UnsupportedSuite => Outcome::UnsupportedSuite,
            KeyStatus::Missing | KeyStatus::NotNeeded => Outcome::EncryptedNoKeys,
        }
    }
}

/// A protected record body the size of an alert: TLS 1.3 (2 bytes, inner
/// type, 16-byte tag) or TLS 1.2 GCM (explicit nonce too) / ChaCha20.
pub(crate) fn is_alert_sized(len: usize, tls13: bool) -> bool {
    if tls13 { len == 19 } else { len == 26 || len == 18 }
}

impl TlsFacts {
    /// Whether the handshake had completed before this record of `side`
    /// (without keys: the client's first protected record decides it).
    pub(crate) fn handshake_complete_before(&self, side: Side) -> bool {
        match side {
            Side::Client => false,
            Side::Server => self.first_protected[0].is_some_and(|(len, _, _)| !is_alert_sized(len, self.tls13())),
        }
    }
}
