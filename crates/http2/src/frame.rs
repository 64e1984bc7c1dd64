//! HTTP/2 frame layout (RFC 9113 section 4 and 6): the 9-octet header,
//! frame types, flags, and the fixed-size payloads.

/// Octets in a frame header.
pub const HEADER_LEN: usize = 9;

/// The client connection preface (RFC 9113 3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types this crate knows. Others are counted and skipped
/// (RFC 9113 5.5: unknown types are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// DATA (0x0).
    Data,
    /// HEADERS (0x1).
    Headers,
    /// PRIORITY (0x2).
    Priority,
    /// RST_STREAM (0x3).
    RstStream,
    /// SETTINGS (0x4).
    Settings,
    /// PUSH_PROMISE (0x5).
    PushPromise,
    /// PING (0x6).
    Ping,
    /// GOAWAY (0x7).
    Goaway,
    /// WINDOW_UPDATE (0x8).
    WindowUpdate,
    /// CONTINUATION (0x9).
    Continuation,
    /// Any other type (kept raw).
    Unknown(u8),
}

impl FrameType {
    /// The type of raw value `t`.
    pub fn from_u8(t: u8) -> FrameType {
        match t {
            0 => FrameType::Data,
            1 => FrameType::Headers,
            2 => FrameType::Priority,
            3 => FrameType::RstStream,
            4 => FrameType::Settings,
            5 => FrameType::PushPromise,
            6 => FrameType::Ping,
            7 => FrameType::Goaway,
            8 => FrameType::WindowUpdate,
            9 => FrameType::Continuation,
            t => FrameType::Unknown(t),
        }
    }

    /// Index into per-type counters: 0..=9 for the known types, 10 for
    /// unknown ones.
    pub fn index(self) -> usize {
        match self {
            FrameType::Data => 0,
            FrameType::Headers => 1,
            FrameType::Priority => 2,
            FrameType::RstStream => 3,
            FrameType::Settings => 4,
            FrameType::PushPromise => 5,
            FrameType::Ping => 6,
            FrameType::Goaway => 7,
            FrameType::WindowUpdate => 8,
            FrameType::Continuation => 9,
            FrameType::Unknown(_) => 10,
        }
    }

    /// Whether the frame carries a header block fragment.
    pub fn has_header_block(self) -> bool {
        matches!(self, FrameType::Headers | FrameType::PushPromise | FrameType::Continuation)
    }
}

/// Flag END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// Flag ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// Flag END_HEADERS (HEADERS, PUSH_PROMISE, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;
/// Flag PADDED (DATA, HEADERS, PUSH_PROMISE).
pub const PADDED: u8 = 0x8;
/// Flag PRIORITY (HEADERS).
pub const PRIORITY: u8 = 0x20;

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub len: u32,
    /// Type.
    pub kind: FrameType,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (31 bits; the reserved bit is dropped).
    pub stream: u32,
}

impl FrameHeader {
    /// Parses the 9 header octets.
    pub fn parse(b: &[u8; HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: FrameType::from_u8(b[3]),
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    /// Whether flag `f` is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// SETTINGS parameters (RFC 9113 6.5.2).
pub mod settings {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// The (identifier, value) pairs of a SETTINGS payload; `None` if its
/// length is not a multiple of 6.
pub fn parse_settings(payload: &[u8]) -> Option<impl Iterator<Item = (u16, u32)> + '_> {
    if !payload.len().is_multiple_of(6) {
        return None;
    }
    Some(
        payload
            .chunks_exact(6)
            .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]]))),
    )
}

/// Error codes (RFC 9113 section 7) that decide a stream's outcome.
pub mod error_code {
    /// NO_ERROR.
    pub const NO_ERROR: u32 = 0x0;
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: u32 = 0x1;
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: u32 = 0x2;
    /// REFUSED_STREAM: the stream was not processed; safe to retry.
    pub const REFUSED_STREAM: u32 = 0x7;
    /// CANCEL: the stream is no longer needed.
    pub const CANCEL: u32 = 0x8;
}

/// The RFC name of an error code, or `None` for one it does not define.
pub fn error_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        // A HEADERS frame of 0x01_02_03 octets on stream 0x7fffffff with
        // the reserved bit set (it is ignored), END_STREAM|END_HEADERS.
        let h = FrameHeader::parse(&[0x01, 0x02, 0x03, 0x01, 0x05, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(h, FrameHeader { len: 0x010203, kind: FrameType::Headers, flags: 0x05, stream: 0x7fff_ffff });
        assert!(h.has(END_STREAM) && h.has(END_HEADERS) && !h.has(PADDED));
        assert_eq!(FrameHeader::parse(&[0, 0, 0, 0xfa, 0, 0, 0, 0, 3]).kind, FrameType::Unknown(0xfa));
    }

    #[test]
    fn settings_payloads() {
        let p = [0, 1, 0, 0, 0x10, 0, 0, 5, 0, 0, 0x40, 0];
        assert_eq!(parse_settings(&p).unwrap().collect::<Vec<_>>(), vec![(1, 4096), (5, 16384)]);
        assert!(parse_settings(&p[..7]).is_none());
    }
}
