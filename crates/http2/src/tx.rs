//! What the HTTP/2 layer hands on: one [`H2Transaction`] per stream.

/// Which side of the connection sent something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client (the side that sent the connection preface).
    Client,
    /// The server.
    Server,
}

impl Side {
    /// 0 for the client, 1 for the server (per-side arrays).
    pub fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// Header fields in order, kept as bytes, in one buffer with offsets
/// (the same shape as pov-capture's `Headers`, so they convert without
/// parsing). Pseudo-header fields (`:method`, `:status` ...) are not in
/// it: they are fields of the transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderList {
    buf: Vec<u8>,
    fields: Vec<(u32, u32, u32)>,
}

impl HeaderList {
    /// Appends a field.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        // Lists are capped far below 4 GiB (`H2Config::max_header_list`).
        let at = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
        let start = at(self.buf.len());
        self.buf.extend_from_slice(name);
        let mid = at(self.buf.len());
        self.buf.extend_from_slice(value);
        self.fields.push((start, mid, at(self.buf.len())));
    }

    /// The fields as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(|&(a, b, c)| {
            let (a, b, c) = (a as usize, b as usize, c as usize);
            (self.buf.get(a..b).unwrap_or(&[]), self.buf.get(b..c).unwrap_or(&[]))
        })
    }

    /// The first value of `name` (names are lower case in HTTP/2; the
    /// lookup ignores case all the same).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// No fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.fields.capacity() * std::mem::size_of::<(u32, u32, u32)>()
    }
}

/// How a stream ended. The names of pov-capture's `Outcome` where the
/// meaning is the same; HTTP/2 adds refusals, which are not failures of
/// the application.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Request and response complete (both sides sent END_STREAM).
    #[default]
    Complete,
    /// The client reset the stream (RST_STREAM from the client; CANCEL is
    /// a user who went away) or the TCP connection before the response
    /// was complete.
    ClientAbort,
    /// The server reset the stream with an error (RST_STREAM from the
    /// server, other than REFUSED_STREAM or NO_ERROR after its complete
    /// response), or the TCP connection, before the response was complete.
    ServerReset,
    /// The server refused the stream with REFUSED_STREAM: it did no work
    /// on it and the client may retry (RFC 9113 8.7).
    Refused,
    /// The stream's id was above the last-stream-id of the server's
    /// GOAWAY: it was never processed (RFC 9113 6.8), not a failure of
    /// the application.
    RefusedByGoaway,
    /// The connection closed with no response on the stream.
    NoResponse,
    /// The connection closed in the middle of the response.
    Truncated,
    /// Bytes of the stream are missing from the capture, or a header block
    /// could not be decoded because earlier bytes of its direction are
    /// missing (the HPACK table is lost), or the capture ended first: what
    /// happened cannot be known. Never a failure.
    CaptureGap,
    /// A header block that the capture has whole did not decode, or the
    /// frames broke the protocol.
    Malformed,
}

impl Outcome {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientAbort => "client_abort",
            Outcome::ServerReset => "server_reset",
            Outcome::Refused => "refused",
            Outcome::RefusedByGoaway => "refused_by_goaway",
            Outcome::NoResponse => "no_response",
            Outcome::Truncated => "truncated",
            Outcome::CaptureGap => "capture_gap",
            Outcome::Malformed => "malformed",
        }
    }
}

/// Something unusual about a stream (not necessarily a failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Anomaly {
    /// Bytes of the request are missing from the capture.
    RequestGap,
    /// Bytes of the response are missing from the capture.
    ResponseGap,
    /// A header block of this stream was not decoded: the HPACK table of
    /// its direction was lost to a gap (or an undecodable block) before.
    HpackDesync,
    /// The response came without a request the capture could decode.
    NoRequest,
    /// The capture ended (or the connection was forgotten) before the
    /// stream did.
    CaptureEnded,
    /// A decoded header list was larger than `H2Config::max_header_list`
    /// (the rest of its fields were dropped).
    HeaderListTooLarge,
    /// A header block was larger than `H2Config::max_header_block` (not
    /// decoded; the direction's HPACK table is lost).
    HeaderBlockTooLarge,
    /// An interim (1xx) response came before the final one.
    Interim,
    /// Trailers (a header block after the body) were sent.
    Trailers,
    /// A DATA or HEADERS frame's padding length exceeded its payload.
    BadPadding,
    /// The stream was pushed by the server (PUSH_PROMISE).
    Pushed,
    /// The stream was reset after it was complete (ignored).
    LateReset,
    /// The stream was reset with RST_STREAM (see the reset's code).
    StreamReset,
    /// The connection's GOAWAY carried an error code.
    GoawayError,
    /// The stream was given up because too many were open
    /// (`H2Config::max_streams`).
    StreamOverflow,
    /// The stream began with an HTTP/1.1 request that upgraded to h2c
    /// (stream 1).
    Upgraded,
}

impl Anomaly {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::RequestGap => "request_gap",
            Anomaly::ResponseGap => "response_gap",
            Anomaly::HpackDesync => "hpack_desync",
            Anomaly::NoRequest => "no_request",
            Anomaly::CaptureEnded => "capture_ended",
            Anomaly::HeaderListTooLarge => "header_list_too_large",
            Anomaly::HeaderBlockTooLarge => "header_block_too_large",
            Anomaly::Interim => "interim",
            Anomaly::Trailers => "trailers",
            Anomaly::BadPadding => "bad_padding",
            Anomaly::Pushed => "pushed",
            Anomaly::LateReset => "late_reset",
            Anomaly::StreamReset => "stream_reset",
            Anomaly::GoawayError => "goaway_error",
            Anomaly::StreamOverflow => "stream_overflow",
            Anomaly::Upgraded => "upgraded",
        }
    }
}

/// Capture times of a stream, in nanoseconds since the Unix epoch (the
/// unit of pov-capture's `Ts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// First byte of the request's first HEADERS frame.
    pub req_start: Option<i64>,
    /// Last byte of the request's frame with END_STREAM.
    pub req_end: Option<i64>,
    /// First byte of the final response's HEADERS frame.
    pub resp_start: Option<i64>,
    /// Last byte of the response's frame with END_STREAM.
    pub resp_end: Option<i64>,
}

/// Capture frame numbers of the first and last packet of a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameSpan {
    /// First frame.
    pub first: u64,
    /// Last frame.
    pub last: u64,
}

/// Body sizes of one side of a stream. Content encodings are not decoded
/// here: the caller decodes `kept` (and counts decoded bytes) with the
/// encoding named in the headers, as it does for HTTP/1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// DATA payload octets, padding excluded, including those the capture
    /// lost (frame lengths say how many there were).
    pub wire_bytes: u64,
    /// Of those, octets missing from the capture (padding counted when
    /// the pad length itself was lost: an upper bound then).
    pub lost_bytes: u64,
    /// DATA frames.
    pub frames: u32,
    /// The first `H2Config::body_keep_bytes` octets, or fewer as the
    /// config's `keep_rule` said (lost ones left out).
    pub kept: Vec<u8>,
}

/// A stream reset (RST_STREAM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reset {
    /// Who sent it.
    pub by: Side,
    /// Its error code (see [`crate::frame::error_name`]).
    pub code: u32,
    /// Capture time of the frame's last byte.
    pub at: i64,
}

/// One HTTP/2 stream: a request and its response.
#[derive(Clone, Debug, Default)]
pub struct H2Transaction {
    /// Stream identifier.
    pub stream: u32,
    /// For a pushed stream, the stream whose PUSH_PROMISE announced it.
    pub pushed_by: Option<u32>,
    /// `:method`.
    pub method: Option<String>,
    /// `:scheme`.
    pub scheme: Option<String>,
    /// `:authority` (or the Host header when it is absent).
    pub authority: Option<String>,
    /// `:path`, as sent.
    pub path: Option<Vec<u8>>,
    /// Final `:status` (`None` when no final response was decoded).
    pub status: Option<u16>,
    /// Interim (1xx) statuses before the final one.
    pub interim: Vec<u16>,
    /// Request header fields (pseudo-headers left out).
    pub request_headers: HeaderList,
    /// Response header fields (pseudo-headers left out).
    pub response_headers: HeaderList,
    /// Request trailers.
    pub request_trailers: HeaderList,
    /// Response trailers.
    pub response_trailers: HeaderList,
    /// Whether the request's header block was decoded.
    pub has_request: bool,
    /// Whether a final response header block was decoded.
    pub has_response: bool,
    /// Request body.
    pub request_body: Body,
    /// Response body.
    pub response_body: Body,
    /// Times.
    pub timing: Timing,
    /// Frames of the request.
    pub req_frames: Option<FrameSpan>,
    /// Frames of the response.
    pub resp_frames: Option<FrameSpan>,
    /// How it ended.
    pub outcome: Outcome,
    /// The RST_STREAM that ended it, if any.
    pub reset: Option<Reset>,
    /// Octets of the stream missing from the capture (body bytes, and the
    /// header block octets a gap cut).
    pub missing_bytes: u64,
    /// Unusual things about it, each once, in order.
    pub anomalies: Vec<Anomaly>,
}

impl H2Transaction {
    /// Always "2": the version to show beside HTTP/1's "1.1".
    pub fn version(&self) -> &'static str {
        "2"
    }

    /// Records `a` once.
    pub(crate) fn note(&mut self, a: Anomaly) {
        if !self.anomalies.contains(&a) {
            self.anomalies.push(a);
        }
    }
}
