//! The plain-HTTP/1 wire format of the upstream client: the request head
//! written straight into one buffer, the response head parsed with
//! `httparse` (bounded in size and field count, values shared with the read
//! buffer, not copied), and the response body's framing (RFC 9112 §6.3):
//! none, `Content-Length`, chunked with trailers, or until the peer closes.
//! Everything here is fed by the upstream: it fails cleanly, never panics.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use http_body::SizeHint;

mod names;
pub use names::Names;
use names::{Fields, Span};

/// The `Keep-Alive` field (RFC 9112 §9.3; not one of `http`'s constants).
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Largest response head (and trailer section) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in a response head (hyper's default too).
pub const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// A malformed or oversized message from the upstream (or an unusable
/// request target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upstream HTTP/1: {}", self.0)
    }
}

impl std::error::Error for WireError {}

/// How the request body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sending {
    /// No body.
    Nothing,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the request head is made of. `headers` are already cleaned (see
/// [`crate::headers`]); `host` replaces the client's `Host`, and `inject`
/// replaces any header of the same name.
pub struct Head<'a> {
    pub method: &'a Method,
    pub path_and_query: &'a str,
    pub host: &'a HeaderValue,
    pub headers: &'a HeaderMap,
    pub inject: &'a [(HeaderName, HeaderValue)],
}

impl Head<'_> {
    /// The body's framing: the client's `Content-Length` if it sent one,
    /// else the body's exact size, else chunked.
    pub(crate) fn sending(&self, hint: &SizeHint, end: bool) -> Sending {
        if let Some(n) = self
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| digits(v.as_bytes()))
        {
            return Sending::Length(n);
        }
        if end {
            return Sending::Nothing;
        }
        match hint.exact() {
            Some(n) => Sending::Length(n),
            None => Sending::Chunked,
        }
    }

    /// The path and query can be written as the request target
    /// (origin-form: no spaces, no control bytes).
    pub(crate) fn check_target(&self) -> Result<(), WireError> {
        let pq = self.path_and_query.as_bytes();
        // Every byte looked at, without an early exit: the loop vectorises.
        let bad = pq
            .iter()
            .fold(false, |bad, &b| bad | (b <= b' ') | (b == 0x7f));
        if !pq.starts_with(b"/") || bad {
            return Err(WireError("the upstream path is not a valid request target"));
        }
        Ok(())
    }

    /// Appends the request head (request line, fields, blank line) to `buf`.
    /// The target must have passed [`Head::check_target`].
    pub(crate) fn encode(&self, sending: Sending, buf: &mut Vec<u8>) {
        let pq = self.path_and_query.as_bytes();
        buf.extend_from_slice(self.method.as_str().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(pq);
        buf.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        buf.extend_from_slice(self.host.as_bytes());
        buf.extend_from_slice(b"\r\n");
        for (name, value) in self.headers {
            if name == HOST
                || name == CONTENT_LENGTH
                || name == TRANSFER_ENCODING
                || self.inject.iter().any(|(n, _)| n == name)
            {
                continue;
            }
            field(buf, name.as_str().as_bytes(), value.as_bytes());
        }
        for (name, value) in self.inject {
            field(buf, name.as_str().as_bytes(), value.as_bytes());
        }
        match sending {
            Sending::Length(n) => {
                buf.extend_from_slice(b"content-length: ");
                push_decimal(buf, n);
                buf.extend_from_slice(b"\r\n");
            }
            Sending::Nothing
                if *self.method == Method::POST
                    || *self.method == Method::PUT
                    || *self.method == Method::PATCH =>
            {
                buf.extend_from_slice(b"content-length: 0\r\n");
            }
            Sending::Nothing => {}
            Sending::Chunked => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        buf.extend_from_slice(b"\r\n");
    }
}

fn field(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// `n` in decimal, without the `fmt` machinery.
pub(crate) fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut at = tmp.len();
    loop {
        at -= 1;
        tmp[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[at..]);
}

/// The size line of a chunk of `n` bytes (`{n:x}\r\n`).
pub(crate) fn push_chunk_size(buf: &mut Vec<u8>, n: usize) {
    let mut tmp = [0u8; 16];
    let mut at = tmp.len();
    let mut n = n;
    loop {
        at -= 1;
        tmp[at] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[at..]);
    buf.extend_from_slice(b"\r\n");
}

/// A decimal `Content-Length` (digits only, at most 18 of them).
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request after this answer.
    pub keep_alive: bool,
}

/// The offsets of `part` (a slice of the head starting at `base`).
fn offsets(part: &[u8], base: usize) -> Option<(u32, u32)> {
    let start = (part.as_ptr() as usize).checked_sub(base)?;
    let end = start.checked_add(part.len())?;
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

/// Parses the response head at the start of `buf` and splits it off;
/// `Ok(None)` while more bytes are needed. Interim (1xx) answers are
/// skipped; `101 Switching Protocols` is refused (no upgrade was asked for).
/// `head_request`: the request was HEAD (the answer has no body).
pub fn parse_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, WireError> {
    parse_response_with(buf, head_request, &mut Names::default())
}

/// [`parse_response`], with the names of the connection's previous answer.
pub fn parse_response_with(
    buf: &mut BytesMut,
    head_request: bool,
    names: &mut Names,
) -> Result<Option<ResponseHead>, WireError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        // Left uninitialised: httparse writes only the fields it finds.
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
        {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(WireError("response head larger than 64 KiB"));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(WireError("more than 100 response header fields"));
            }
            Err(_) => return Err(WireError("malformed response head")),
        };
        if len > MAX_HEAD {
            return Err(WireError("response head larger than 64 KiB"));
        }
        let code = res.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| WireError("invalid response status"))?;
        let version = if res.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        if status.is_informational() {
            if code == 101 {
                return Err(WireError("unexpected 101 Switching Protocols"));
            }
            buf.advance(len);
            continue;
        }
        let base = buf.as_ptr() as usize;
        let state = &mut *names.0;
        state.spans.clear();
        for h in res.headers.iter() {
            let (Some((ns, ne)), Some((vs, ve))) =
                (offsets(h.name.as_bytes(), base), offsets(h.value, base))
            else {
                return Err(WireError("response head larger than 64 KiB"));
            };
            state.spans.push((ns, ne, vs, ve));
        }
        let head = buf.split_to(len).freeze();
        return build(
            &head,
            &state.spans,
            status,
            version,
            head_request,
            &mut state.fields,
        )
        .map(Some);
    }
}

/// What the fields say about the connection and the body.
#[derive(Default)]
struct Delimiters {
    close: bool,
    keep_alive: bool,
    transfer_encoding: bool,
    chunked: bool,
    length: Option<u64>,
}

fn build(
    head: &Bytes,
    spans: &[Span],
    status: StatusCode,
    version: Version,
    head_request: bool,
    fields: &mut Fields,
) -> Result<ResponseHead, WireError> {
    let mut headers = HeaderMap::with_capacity(spans.len());
    let mut d = Delimiters::default();
    for (i, &(ns, ne, vs, ve)) in spans.iter().enumerate() {
        let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
        let name = fields.name(i, head.get(ns..ne).unwrap_or(&[]))?;
        let Some(raw) = head.get(vs..ve) else {
            return Err(WireError("invalid response header value"));
        };
        if name == CONNECTION {
            let mut listed = false;
            for t in raw.split(|&b| b == b',') {
                let t = t.trim_ascii();
                let close = t.eq_ignore_ascii_case(b"close");
                let keep_alive = t.eq_ignore_ascii_case(b"keep-alive");
                d.close |= close;
                d.keep_alive |= keep_alive;
                listed |= !close && !keep_alive && !t.is_empty();
            }
            // Hop-by-hop: the answer never carries it on. Kept in the map
            // only when it names other fields, so that
            // `crate::headers::remove_hop_by_hop` removes those too.
            if listed {
                headers.append(name, fields.value(i, raw, head, (vs, ve))?);
            }
            continue;
        } else if name == KEEP_ALIVE {
            // Hop-by-hop, never forwarded (`remove_hop_by_hop` would drop it).
            continue;
        } else if name == TRANSFER_ENCODING {
            d.transfer_encoding = true;
            // Only the last coding counts.
            let last = raw.rsplit(|&b| b == b',').next().unwrap_or(&[]);
            d.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if name == CONTENT_LENGTH {
            for v in raw.split(|&b| b == b',') {
                let n = digits(v.trim_ascii()).ok_or(WireError("invalid Content-Length"))?;
                if d.length.is_some_and(|m| m != n) {
                    return Err(WireError("conflicting Content-Length values"));
                }
                d.length = Some(n);
            }
        }
        headers.append(name, fields.value(i, raw, head, (vs, ve))?);
    }
    let framing =
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else if d.transfer_encoding {
            if d.chunked {
                Framing::Chunked
            } else {
                Framing::Close
            }
        } else {
            match d.length {
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            }
        };
    let persistent = if version == Version::HTTP_10 {
        d.keep_alive && !d.close
    } else {
        !d.close
    };
    // Both delimiters: a smuggling attempt or a broken peer (RFC 9112 §6.3).
    let keep_alive =
        persistent && framing != Framing::Close && !(d.transfer_encoding && d.length.is_some());
    Ok(ResponseHead {
        status,
        version,
        headers,
        framing,
        keep_alive,
    })
}

/// One step of a chunked body.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The body ended (no trailers, or after them).
    End,
    /// More bytes are needed.
    More,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Decodes a chunked body from the read buffer, in place.
#[derive(Debug, Default)]
pub struct Chunked(ChunkState);

impl Chunked {
    pub fn new() -> Self {
        Chunked(ChunkState::Size)
    }

    pub fn is_done(&self) -> bool {
        self.0 == ChunkState::Done
    }

    /// The next piece of the body from `buf` (consumed as decoded).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        loop {
            match self.0 {
                ChunkState::Size => {
                    let Some(nl) = buf.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n') else {
                        if buf.len() >= MAX_CHUNK_LINE {
                            return Err(WireError("chunk-size line too long"));
                        }
                        return Ok(Decoded::More);
                    };
                    let size = chunk_size(buf.get(..nl).unwrap_or(&[]))?;
                    buf.advance(nl + 1);
                    self.0 = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(rem) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = usize::try_from(rem).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = rem - n as u64;
                    self.0 = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => match buf.first() {
                    None => return Ok(Decoded::More),
                    Some(b'\n') => {
                        buf.advance(1);
                        self.0 = ChunkState::Size;
                    }
                    Some(b'\r') => match buf.get(1) {
                        None => return Ok(Decoded::More),
                        Some(b'\n') => {
                            buf.advance(2);
                            self.0 = ChunkState::Size;
                        }
                        Some(_) => return Err(WireError("chunk not followed by CRLF")),
                    },
                    Some(_) => return Err(WireError("chunk longer than its size")),
                },
                ChunkState::Trailers => return self.trailers(buf),
                ChunkState::Done => return Ok(Decoded::End),
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        for end in [&b"\r\n"[..], b"\n"] {
            if buf.starts_with(end) {
                buf.advance(end.len());
                self.0 = ChunkState::Done;
                return Ok(Decoded::End);
            }
        }
        if buf.len() < 2 {
            return Ok(Decoded::More);
        }
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (len, fields) = match httparse::parse_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete(done)) => done,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(WireError("trailer section larger than 64 KiB"));
            }
            Ok(httparse::Status::Partial) => return Ok(Decoded::More),
            Err(_) => return Err(WireError("malformed trailer section")),
        };
        let mut map = HeaderMap::with_capacity(fields.len());
        for f in fields.iter() {
            let name = HeaderName::from_bytes(f.name.as_bytes())
                .map_err(|_| WireError("invalid trailer name"))?;
            let value =
                HeaderValue::from_bytes(f.value).map_err(|_| WireError("invalid trailer value"))?;
            map.append(name, value);
        }
        buf.advance(len);
        self.0 = ChunkState::Done;
        Ok(Decoded::Trailers(map))
    }
}

/// The size of a chunk from its line (without the `\n`): hex digits, then
/// optional whitespace and `;extensions`.
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex_len = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line.get(hex_len..).unwrap_or(&[]);
    let rest_ok = rest.is_empty() || matches!(rest.trim_ascii_start().first(), Some(b';') | None);
    if hex_len == 0 || hex_len > 15 || !rest_ok {
        return Err(WireError("invalid chunk size"));
    }
    Ok(line
        .get(..hex_len)
        .unwrap_or(&[])
        .iter()
        .fold(0u64, |n, &b| {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => b - b'A' + 10,
            };
            (n << 4) | u64::from(d)
        }))
}

#[cfg(test)]
mod tests;
