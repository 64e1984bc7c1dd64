//! HTTP/1.x messages as bytes: request and response heads, bodies with
//! Content-Length, chunked or close-delimited framing, and gzip / deflate /
//! br content encodings.

use std::io::Write;

/// A request to serialise.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Request target as sent.
    pub uri: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: &'static str,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Request {
    /// The request's bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        let _ = write!(out, "{} {} {}\r\n", self.method, self.uri, self.version);
        for (k, v) in &self.headers {
            let _ = write!(out, "{k}: {v}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Content encoding of a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// No encoding.
    Identity,
    /// gzip.
    Gzip,
    /// deflate (zlib format, as servers send it).
    Deflate,
    /// Brotli.
    Br,
}

impl Encoding {
    /// The header value, or `None` for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Deflate => Some("deflate"),
            Encoding::Br => Some("br"),
        }
    }

    /// Encodes `body`.
    pub fn encode(self, body: &[u8]) -> Vec<u8> {
        match self {
            Encoding::Identity => body.to_vec(),
            Encoding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                let _ = e.write_all(body);
                e.finish().unwrap_or_default()
            }
            Encoding::Deflate => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                let _ = e.write_all(body);
                e.finish().unwrap_or_default()
            }
            Encoding::Br => {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 4, 20);
                    let _ = w.write_all(body);
                }
                out
            }
        }
    }
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `Content-Length`.
    ContentLength,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Delimited by the server closing the connection.
    Close,
    /// No body by definition (HEAD, 204, 304).
    None,
}

/// A response to serialise.
#[derive(Clone, Debug)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: &'static str,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Header fields in order, without framing and encoding headers (added
    /// by [`Response::to_bytes`]).
    pub headers: Vec<(String, String)>,
    /// Decoded body.
    pub body: Vec<u8>,
    /// Content encoding to apply.
    pub encoding: Encoding,
    /// Framing.
    pub framing: Framing,
}

/// A serialised response and what an exact parser should find in it.
#[derive(Clone, Debug)]
pub struct WireResponse {
    /// All bytes: head and framed body.
    pub bytes: Vec<u8>,
    /// Length of the head (status line, headers, blank line).
    pub head_len: usize,
    /// Body length after de-chunking, before content decoding.
    pub wire_body_len: usize,
    /// Body length after content decoding.
    pub body_len: usize,
    /// Length the headers announce (Content-Length), if any.
    pub content_length: Option<usize>,
    /// The server's writes, in bytes (they add up to `bytes.len()`): the
    /// head with the first chunk, each later chunk, the last chunk.
    pub writes: Vec<usize>,
}

impl Response {
    /// The response's bytes on the wire.
    pub fn to_bytes(&self) -> WireResponse {
        let encoded = if self.framing == Framing::None { Vec::new() } else { self.encoding.encode(&self.body) };
        let mut out = Vec::with_capacity(300 + encoded.len() + encoded.len() / 1000 * 8);
        let _ = write!(out, "{} {} {}\r\n", self.version, self.status, self.reason);
        for (k, v) in &self.headers {
            let _ = write!(out, "{k}: {v}\r\n");
        }
        if self.framing != Framing::None
            && let Some(e) = self.encoding.header()
        {
            let _ = write!(out, "Content-Encoding: {e}\r\n");
        }
        let mut content_length = None;
        match self.framing {
            Framing::ContentLength => {
                let _ = write!(out, "Content-Length: {}\r\n", encoded.len());
                content_length = Some(encoded.len());
            }
            Framing::Chunked => {
                let _ = write!(out, "Transfer-Encoding: chunked\r\n");
            }
            Framing::Close => {
                let _ = write!(out, "Connection: close\r\n");
            }
            Framing::None => {}
        }
        out.extend_from_slice(b"\r\n");
        let head_len = out.len();
        let mut writes = Vec::new();
        match self.framing {
            Framing::Chunked => {
                // Chunks of up to 8 KiB, each its own write as servers flush
                // them; the last chunk is a write of its own.
                let mut mark = 0;
                for c in encoded.chunks(8192) {
                    let _ = write!(out, "{:x}\r\n", c.len());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                    writes.push(out.len() - mark);
                    mark = out.len();
                }
                out.extend_from_slice(b"0\r\n\r\n");
                writes.push(out.len() - mark);
            }
            Framing::None => writes.push(out.len()),
            _ => {
                out.extend_from_slice(&encoded);
                writes.push(out.len());
            }
        }
        WireResponse {
            bytes: out,
            head_len,
            wire_body_len: encoded.len(),
            body_len: if self.framing == Framing::None { 0 } else { self.body.len() },
            content_length,
            writes,
        }
    }
}

/// The standard reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn resp(framing: Framing, encoding: Encoding, body: &[u8]) -> WireResponse {
        Response {
            version: "HTTP/1.1",
            status: 200,
            reason: "OK",
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: body.to_vec(),
            encoding,
            framing,
        }
        .to_bytes()
    }

    #[test]
    fn content_length_and_chunked_framing() {
        let body = vec![b'a'; 20_000];
        let w = resp(Framing::ContentLength, Encoding::Identity, &body);
        let text = String::from_utf8_lossy(&w.bytes[..w.head_len]).into_owned();
        assert!(text.contains("Content-Length: 20000\r\n"));
        assert_eq!(w.bytes.len(), w.head_len + 20_000);
        let w = resp(Framing::Chunked, Encoding::Identity, &body);
        let chunked = &w.bytes[w.head_len..];
        assert!(chunked.starts_with(b"2000\r\n"));
        assert!(chunked.ends_with(b"\r\n0\r\n\r\n"));
        assert_eq!(w.wire_body_len, 20_000);
    }

    #[test]
    fn encodings_round_trip() {
        let body = b"hello hello hello hello hello".repeat(50);
        let g = Encoding::Gzip.encode(&body);
        let mut d = Vec::new();
        flate2::read::GzDecoder::new(&g[..]).read_to_end(&mut d).unwrap();
        assert_eq!(d, body);
        let z = Encoding::Deflate.encode(&body);
        let mut d = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..]).read_to_end(&mut d).unwrap();
        assert_eq!(d, body);
        let b = Encoding::Br.encode(&body);
        let mut d = Vec::new();
        brotli::Decompressor::new(&b[..], 4096).read_to_end(&mut d).unwrap();
        assert_eq!(d, body);
        let w = resp(Framing::ContentLength, Encoding::Gzip, &body);
        assert_eq!(w.body_len, body.len());
        assert_eq!(w.wire_body_len, g.len());
    }
}
