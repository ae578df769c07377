//! Sans-IO parser for camera MJPEG bodies (HTTP `multipart/x-mixed-replace`) and the
//! encoder for the MJPEG stream the gateway serves.
//!
//! Public API:
//! - [`boundary_from_content_type`]: the `boundary` parameter of a `Content-Type` value.
//! - [`MultipartParser`]: `new(boundary, max_part)`, `push(bytes)`, `next_part()` which
//!   yields one JPEG per part (`Ok(None)` means "push more data"), `is_closed()`.
//! - [`BOUNDARY`], [`encode_part`], [`content_type`]: our own output stream.
//! - [`MjpegError`]: why a content type or a part was rejected.
//!
//! Usage: after every `push`, call `next_part` until it returns `Ok(None)`. Errors are per
//! part: the parser has already resynchronised, so the caller may log, count, and keep
//! calling `next_part`. Once `next_part` has returned `Ok(None)` the parser holds at most
//! `max_part + BUFFER_SLACK` bytes (a single `push` adds its own length until drained).
//!
//! Tolerated camera quirks: boundary lines with or without the leading `--` (and with the
//! dashes repeated when the declared boundary already starts with `--`), CRLF or bare LF
//! line endings, parts with or without `Content-Length`, parts with no header block at all,
//! a missing line break between a JPEG and the next boundary, and garbage before the first
//! boundary. A `Content-Length` is trusted when it fits `max_part` and the body it selects
//! ends with the JPEG EOI marker; then the part is returned as soon as its bytes arrive.
//! Otherwise the parser scans for the next boundary, which costs one frame of latency for
//! such cameras because that boundary is usually sent together with the next frame.

use bytes::{Buf, Bytes, BytesMut};

/// Boundary of the MJPEG stream we serve.
pub const BOUNDARY: &str = "latchkeyframe";

/// Largest part header block accepted; real cameras send well under 200 bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Extra bytes (beyond `max_part`) the parser may hold after `next_part` returns `Ok(None)`.
pub const BUFFER_SLACK: usize = MAX_HEADER_BYTES;

/// RFC 2046 caps boundaries at 70 characters; allow more for odd cameras but keep the
/// delimiter search window small.
const MAX_BOUNDARY_LEN: usize = 200;

/// Spaces/tabs allowed after a boundary on its line (RFC 2046 transport padding).
const MAX_DELIMITER_PADDING: usize = 16;

/// Bytes kept before the scan position while hunting for a boundary, so dashes and the
/// preceding line break are still visible when the rest of the line arrives.
const LOOKBACK: usize = 64;

/// JPEG start-of-image marker.
const SOI: [u8; 2] = [0xff, 0xd8];
/// JPEG end-of-image marker.
const EOI: [u8; 2] = [0xff, 0xd9];

/// Why an MJPEG content type or part was rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MjpegError {
    /// The content type has no `boundary` parameter.
    #[error("mjpeg content type: missing boundary parameter")]
    MissingBoundary,
    /// The boundary is empty (or only dashes).
    #[error("mjpeg boundary: empty")]
    EmptyBoundary,
    /// The boundary is longer than any camera legitimately uses.
    #[error("mjpeg boundary: too long ({0} bytes)")]
    BoundaryTooLong(usize),
    /// A part body exceeds the configured limit; it was skipped.
    #[error("mjpeg part: larger than {limit} bytes")]
    PartTooLarge {
        /// The configured `max_part`.
        limit: usize,
    },
    /// A part header block exceeds [`MAX_HEADER_BYTES`]; the part was skipped.
    #[error("mjpeg part headers: larger than {limit} bytes")]
    HeadersTooLarge {
        /// [`MAX_HEADER_BYTES`].
        limit: usize,
    },
    /// A part body does not start with the JPEG SOI marker; the part was skipped.
    #[error("mjpeg part: body is not a jpeg (no soi marker)")]
    NotJpeg,
}

/// Extracts the `boundary` parameter from a `Content-Type` header value. Quotes are
/// removed; leading dashes are kept (the parser accepts either form).
pub fn boundary_from_content_type(ct: &str) -> Result<String, MjpegError> {
    // Skip the media type itself; parameters follow the first ';'.
    let mut rest = ct.split_once(';').map_or("", |(_, params)| params);
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return Err(MjpegError::MissingBoundary);
        }
        let name_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let name = rest.get(..name_end).unwrap_or_default();
        let after_name = rest.get(name_end..).unwrap_or_default();
        let Some(after_eq) = after_name.strip_prefix('=') else {
            // A parameter without a value: skip to the next one.
            rest = after_name;
            continue;
        };
        let after_eq = after_eq.trim_start_matches([' ', '\t']);
        let (value, next) = match after_eq.strip_prefix('"') {
            Some(quoted) => unquote(quoted),
            None => {
                let (value, next) = after_eq.split_once(';').unwrap_or((after_eq, ""));
                (value.trim().to_owned(), next)
            }
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            check_boundary(&value)?;
            return Ok(value);
        }
        rest = next;
    }
}

/// Reads a quoted-string body (opening quote already removed); returns the unescaped
/// value and the text after the closing quote. An unterminated quote runs to the end.
fn unquote(quoted: &str) -> (String, &str) {
    let mut value = String::new();
    let mut escaped = false;
    for (i, c) in quoted.char_indices() {
        match (escaped, c) {
            (true, _) => {
                value.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, '"') => return (value, quoted.get(i.saturating_add(1)..).unwrap_or("")),
            (false, _) => value.push(c),
        }
    }
    (value, "")
}

fn check_boundary(boundary: &str) -> Result<(), MjpegError> {
    if boundary.trim().trim_start_matches('-').is_empty() {
        return Err(MjpegError::EmptyBoundary);
    }
    if boundary.len() > MAX_BOUNDARY_LEN {
        return Err(MjpegError::BoundaryTooLong(boundary.len()));
    }
    Ok(())
}

/// `Content-Type` of the stream produced by [`encode_part`].
pub fn content_type() -> String {
    format!("multipart/x-mixed-replace; boundary={BOUNDARY}")
}

/// One multipart part carrying `jpeg`, ready to write to the HTTP body.
pub fn encode_part(jpeg: &[u8]) -> Bytes {
    let header = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    let mut out =
        BytesMut::with_capacity(header.len().saturating_add(jpeg.len()).saturating_add(2));
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

/// Where the parser is within the multipart body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for a boundary line (preamble, or between parts).
    Boundary,
    /// Reading the header block of a part.
    Headers,
    /// Reading a part body; `Some(n)` when a usable Content-Length was given.
    Body(Option<usize>),
    /// The closing `--boundary--` was seen; everything after it is ignored.
    Closed,
}

/// Result of looking for a boundary line in the buffer.
enum Delimiter {
    /// Found: the line occupies `start..end` (`end` is past its line break).
    Found {
        start: usize,
        end: usize,
        close: bool,
    },
    /// No boundary starts before `resume`; a candidate at `resume` may need more data.
    Pending { resume: usize },
}

/// Incremental `multipart/x-mixed-replace` parser yielding JPEG parts.
#[derive(Debug)]
pub struct MultipartParser {
    /// Boundary without leading dashes, so `--b`, `b` and `----b` lines all match.
    core: Vec<u8>,
    max_part: usize,
    buf: BytesMut,
    state: State,
    /// No boundary candidate starts before this offset (avoids rescanning on each push).
    scanned: usize,
}

impl MultipartParser {
    /// Creates a parser for `boundary` (as declared, with or without leading dashes) that
    /// rejects parts larger than `max_part` bytes.
    pub fn new(boundary: &str, max_part: usize) -> Result<Self, MjpegError> {
        check_boundary(boundary)?;
        let core = boundary.trim().trim_start_matches('-').as_bytes().to_vec();
        Ok(Self {
            core,
            max_part,
            buf: BytesMut::new(),
            state: State::Boundary,
            scanned: 0,
        })
    }

    /// Appends bytes received from the camera.
    pub fn push(&mut self, data: &[u8]) {
        if self.state != State::Closed {
            self.buf.extend_from_slice(data);
        }
    }

    /// True once the closing `--boundary--` arrived: the camera ended the stream, so the
    /// caller should reconnect rather than wait for more parts.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes currently buffered (for metrics and tests).
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete JPEG, `Ok(None)` if more data is needed, or an error for a
    /// part that was skipped (parsing continues on the next call).
    pub fn next_part(&mut self) -> Result<Option<Bytes>, MjpegError> {
        loop {
            match self.state {
                State::Closed => {
                    self.buf.clear();
                    return Ok(None);
                }
                State::Boundary => match self.find_delimiter() {
                    Delimiter::Found { end, close, .. } => {
                        self.consume(end);
                        self.scanned = 0;
                        self.state = if close { State::Closed } else { State::Headers };
                    }
                    Delimiter::Pending { resume } => {
                        // Nothing before the candidate can matter any more: drop it so
                        // garbage between parts never accumulates.
                        self.scanned = resume;
                        self.consume(resume.saturating_sub(LOOKBACK));
                        return Ok(None);
                    }
                },
                State::Headers => match self.read_headers() {
                    Ok(Some(next)) => self.state = next,
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        self.resync();
                        return Err(e);
                    }
                },
                State::Body(content_length) => {
                    match self.buf.get(..2) {
                        None => return Ok(None),
                        Some(start) if start != SOI => {
                            self.resync();
                            return Err(MjpegError::NotJpeg);
                        }
                        Some(_) => {}
                    }
                    match content_length {
                        Some(len) => match self.body_by_length(len) {
                            Some(part) => return Ok(Some(part)),
                            None if self.buf.len() < len => return Ok(None),
                            None => {
                                tracing::debug!(
                                    len,
                                    "mjpeg part: content-length mismatch, scanning"
                                );
                                self.state = State::Body(None);
                            }
                        },
                        None => return self.body_by_scan(),
                    }
                }
            }
        }
    }

    /// Takes a `len`-byte body if it is complete and looks like a whole JPEG.
    fn body_by_length(&mut self, len: usize) -> Option<Bytes> {
        let end = self.buf.get(len.checked_sub(2)?..len)?;
        if end != EOI {
            return None;
        }
        let part = self.take(len);
        self.state = State::Boundary;
        self.scanned = 0;
        Some(part)
    }

    /// Takes the body up to the next boundary line, enforcing `max_part`.
    fn body_by_scan(&mut self) -> Result<Option<Bytes>, MjpegError> {
        match self.find_delimiter() {
            Delimiter::Found { start, .. } => {
                // The line break before a boundary belongs to the boundary (RFC 2046).
                let head = self.buf.get(..start).unwrap_or_default();
                let head = head.strip_suffix(b"\n").unwrap_or(head);
                let head = head.strip_suffix(b"\r").unwrap_or(head);
                let len = head.len();
                self.state = State::Boundary;
                self.scanned = 0;
                if len > self.max_part {
                    self.consume(len);
                    return Err(MjpegError::PartTooLarge {
                        limit: self.max_part,
                    });
                }
                Ok(Some(self.take(len)))
            }
            Delimiter::Pending { resume } => {
                self.scanned = resume;
                let limit = self
                    .max_part
                    .saturating_add(MAX_BOUNDARY_LEN)
                    .saturating_add(LOOKBACK);
                if self.buf.len() > limit {
                    self.resync();
                    return Err(MjpegError::PartTooLarge {
                        limit: self.max_part,
                    });
                }
                Ok(None)
            }
        }
    }

    /// Parses the header block at the start of the buffer. Once the block is complete and
    /// consumed, returns the body state (with the Content-Length if it is usable).
    fn read_headers(&mut self) -> Result<Option<State>, MjpegError> {
        // Some cameras send the JPEG straight after the boundary line.
        match self.buf.get(..2) {
            Some(start) if start == SOI => return Ok(Some(State::Body(None))),
            None if self.buf.first() == SOI.first() => return Ok(None),
            _ => {}
        }
        let window = self.buf.get(..MAX_HEADER_BYTES).unwrap_or(&self.buf);
        let mut content_length = None;
        let mut pos = 0;
        let mut block_end = None;
        for line in window.split_inclusive(|b| *b == b'\n') {
            if line.last() != Some(&b'\n') {
                break; // incomplete line
            }
            pos += line.len();
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.is_empty() {
                block_end = Some(pos);
                break;
            }
            if let Some(len) = parse_content_length(text) {
                content_length = Some(len);
            }
        }
        let Some(end) = block_end else {
            if self.buf.len() >= MAX_HEADER_BYTES {
                return Err(MjpegError::HeadersTooLarge {
                    limit: MAX_HEADER_BYTES,
                });
            }
            return Ok(None);
        };
        self.consume(end);
        self.scanned = 0;
        match content_length {
            Some(len) if len > self.max_part => {
                self.resync();
                Err(MjpegError::PartTooLarge {
                    limit: self.max_part,
                })
            }
            // Fewer bytes than SOI + EOI cannot be a JPEG: treat the header as absent.
            Some(len) if len < 4 => Ok(Some(State::Body(None))),
            other => Ok(Some(State::Body(other))),
        }
    }

    /// Finds the first boundary line at or after `self.scanned`.
    fn find_delimiter(&self) -> Delimiter {
        let buf: &[u8] = &self.buf;
        let m = self.core.len();
        let mut from = self.scanned;
        loop {
            let Some(at) = buf
                .get(from..)
                .and_then(|hay| hay.windows(m).position(|w| w == self.core.as_slice()))
                .map(|rel| rel.saturating_add(from))
            else {
                // Only a boundary that is cut off at the end of the buffer remains possible.
                let resume = buf.len().saturating_add(1).saturating_sub(m).max(from);
                return Delimiter::Pending { resume };
            };
            let before = buf.get(..at).unwrap_or_default();
            let dashes = before.iter().rev().take_while(|b| **b == b'-').count();
            let start = at.saturating_sub(dashes);
            let at_line_start = start == 0 || before.get(start.saturating_sub(1)) == Some(&b'\n');
            // A boundary must begin a line, except that "--boundary" glued to the end of
            // a JPEG (no line break) is accepted too: the dashes make it unambiguous.
            if at_line_start || dashes >= 2 {
                let tail = buf.get(at.saturating_add(m)..).unwrap_or_default();
                match delimiter_tail(tail) {
                    Tail::Complete { len, close } => {
                        return Delimiter::Found {
                            start,
                            end: at.saturating_add(m).saturating_add(len),
                            close,
                        };
                    }
                    Tail::NeedMore => return Delimiter::Pending { resume: at },
                    Tail::Mismatch => {}
                }
            }
            from = at.saturating_add(1);
        }
    }

    /// Skips the current part: scan for the next boundary from the start of the buffer.
    fn resync(&mut self) {
        self.state = State::Boundary;
        self.scanned = 0;
    }

    /// Drops `n` leading bytes, keeping `scanned` pointing at the same data.
    fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
        self.scanned = self.scanned.saturating_sub(n);
    }

    /// Splits off `n` leading bytes without copying.
    fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.buf.len());
        self.scanned = self.scanned.saturating_sub(n);
        self.buf.split_to(n).freeze()
    }
}

/// What follows the boundary text on its line.
enum Tail {
    Complete { len: usize, close: bool },
    NeedMore,
    Mismatch,
}

/// Parses `[--] [padding] (CRLF | LF)` after a boundary.
fn delimiter_tail(tail: &[u8]) -> Tail {
    let mut rest = tail;
    let mut close = false;
    match rest {
        [] | [b'-'] => return Tail::NeedMore,
        [b'-', b'-', more @ ..] => {
            close = true;
            rest = more;
        }
        _ => {}
    }
    let padding = rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    if padding > MAX_DELIMITER_PADDING {
        return Tail::Mismatch;
    }
    let after = rest.get(padding..).unwrap_or_default();
    let newline = match after {
        [] | [b'\r'] => return Tail::NeedMore,
        [b'\n', ..] => 1,
        [b'\r', b'\n', ..] => 2,
        _ => return Tail::Mismatch,
    };
    let len = tail.len() - rest.len() + padding + newline;
    Tail::Complete { len, close }
}

/// Parses a `Content-Length: N` header line (name case-insensitive).
fn parse_content_length(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|b| *b == b':')?;
    let (name, value) = line.split_at(colon);
    if !name.trim_ascii().eq_ignore_ascii_case(b"content-length") {
        return None;
    }
    let value = std::str::from_utf8(value.get(1..)?).ok()?;
    value.trim().parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Deterministic xorshift64 so the fuzz loop needs no rand dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// A JPEG-shaped body whose payload contains line breaks, dashes and pieces of the
    /// boundary, so a sloppy parser would split it.
    fn fake_jpeg(seed: u64, len: usize) -> Vec<u8> {
        let mut rng = XorShift(seed | 1);
        let mut out = SOI.to_vec();
        let tricky: [&[u8]; 5] = [b"\r\n", b"\n--", b"--myb", b"\r\n\r\n", b"oundary"];
        while out.len() < len {
            if rng.below(8) == 0 {
                out.extend_from_slice(tricky[rng.below(tricky.len())]);
            } else {
                out.push(rng.next() as u8);
            }
        }
        out.extend_from_slice(&EOI);
        out
    }

    #[derive(Clone, Copy, Debug)]
    struct Style {
        dashes: &'static str,
        newline: &'static str,
        content_length: bool,
        preamble: bool,
        headers: bool,
    }

    fn build_stream(style: Style, boundary: &str, parts: &[Vec<u8>]) -> Vec<u8> {
        let nl = style.newline;
        let mut out = Vec::new();
        if style.preamble {
            out.extend_from_slice(
                format!("garbage{nl}myboundary is not at line start{nl}--my").as_bytes(),
            );
            out.extend_from_slice(nl.as_bytes());
            out.extend_from_slice(b"\x00\xff\xd8junk");
            out.extend_from_slice(nl.as_bytes());
        }
        for part in parts {
            out.extend_from_slice(format!("{}{boundary}{nl}", style.dashes).as_bytes());
            if style.headers {
                out.extend_from_slice(format!("Content-Type: image/jpeg{nl}").as_bytes());
                if style.content_length {
                    out.extend_from_slice(
                        format!("content-LENGTH:  {} {nl}", part.len()).as_bytes(),
                    );
                }
                out.extend_from_slice(nl.as_bytes());
            }
            out.extend_from_slice(part);
            out.extend_from_slice(nl.as_bytes());
        }
        // The next frame's boundary, which a camera sends before the next JPEG.
        out.extend_from_slice(format!("{}{boundary}{nl}", style.dashes).as_bytes());
        out
    }

    fn all_styles() -> Vec<Style> {
        let mut styles = Vec::new();
        for dashes in ["--", ""] {
            for newline in ["\r\n", "\n"] {
                for content_length in [true, false] {
                    for preamble in [true, false] {
                        styles.push(Style {
                            dashes,
                            newline,
                            content_length,
                            preamble,
                            headers: true,
                        });
                    }
                }
            }
        }
        styles.push(Style {
            dashes: "--",
            newline: "\r\n",
            content_length: false,
            preamble: false,
            headers: false,
        });
        styles
    }

    /// Feeds `chunks` one by one, draining after each; checks the memory bound.
    fn parse_chunks(
        parser: &mut MultipartParser,
        chunks: &[&[u8]],
    ) -> Vec<Result<Bytes, MjpegError>> {
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk);
            loop {
                match parser.next_part() {
                    Ok(None) => break,
                    Ok(Some(part)) => out.push(Ok(part)),
                    Err(e) => out.push(Err(e)),
                }
            }
            assert!(parser.buffered_len() <= parser.max_part + BUFFER_SLACK);
        }
        out
    }

    fn parts_of(
        boundary: &str,
        max_part: usize,
        chunks: &[&[u8]],
    ) -> Vec<Result<Bytes, MjpegError>> {
        let mut parser = MultipartParser::new(boundary, max_part).unwrap();
        parse_chunks(&mut parser, chunks)
    }

    fn ok_parts(parts: &[Vec<u8>]) -> Vec<Result<Bytes, MjpegError>> {
        parts.iter().map(|p| Ok(Bytes::from(p.clone()))).collect()
    }

    #[test]
    fn boundary_from_content_type_cases() {
        let long = format!("multipart/x-mixed-replace; boundary={}", "x".repeat(201));
        let cases: &[(&str, Result<&str, MjpegError>)] = &[
            (
                "multipart/x-mixed-replace; boundary=myboundary",
                Ok("myboundary"),
            ),
            (
                "multipart/x-mixed-replace;boundary=--myboundary",
                Ok("--myboundary"),
            ),
            (
                "Multipart/X-Mixed-Replace; BOUNDARY=\"my boundary\"",
                Ok("my boundary"),
            ),
            (
                "multipart/x-mixed-replace; charset=x; boundary=\"a;b\\\"c\"",
                Ok("a;b\"c"),
            ),
            (
                "multipart/x-mixed-replace; boundary = abc ; foo=bar",
                Ok("abc"),
            ),
            ("multipart/x-mixed-replace; flag; boundary=abc", Ok("abc")),
            (
                "multipart/x-mixed-replace; a=\"boundary=no\"; boundary=yes",
                Ok("yes"),
            ),
            (
                "multipart/x-mixed-replace; boundary=\"unterminated",
                Ok("unterminated"),
            ),
            (
                "multipart/x-mixed-replace",
                Err(MjpegError::MissingBoundary),
            ),
            ("image/jpeg", Err(MjpegError::MissingBoundary)),
            ("", Err(MjpegError::MissingBoundary)),
            (";;;", Err(MjpegError::MissingBoundary)),
            (
                "multipart/x-mixed-replace; xboundary=abc",
                Err(MjpegError::MissingBoundary),
            ),
            (
                "multipart/x-mixed-replace; boundary=",
                Err(MjpegError::EmptyBoundary),
            ),
            (
                "multipart/x-mixed-replace; boundary=\"\"",
                Err(MjpegError::EmptyBoundary),
            ),
            (
                "multipart/x-mixed-replace; boundary=--",
                Err(MjpegError::EmptyBoundary),
            ),
            (&long, Err(MjpegError::BoundaryTooLong(201))),
        ];
        for (ct, want) in cases {
            let got = boundary_from_content_type(ct);
            assert_eq!(got, want.clone().map(String::from), "{ct:?}");
        }
    }

    #[test]
    fn every_style_and_every_split_point() {
        let parts: Vec<Vec<u8>> = (0..3)
            .map(|i| fake_jpeg(i + 7, 60 + 13 * i as usize))
            .collect();
        for style in all_styles() {
            let stream = build_stream(style, "myboundary", &parts);
            let want = ok_parts(&parts);
            assert_eq!(parts_of("myboundary", 1000, &[&stream]), want, "{style:?}");
            // Declared with dashes must parse the same stream.
            assert_eq!(
                parts_of("--myboundary", 1000, &[&stream]),
                want,
                "{style:?}"
            );
            for split in 0..=stream.len() {
                let (a, b) = stream.split_at(split);
                assert_eq!(
                    parts_of("myboundary", 1000, &[a, b]),
                    want,
                    "{style:?} @ {split}"
                );
            }
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(
                parts_of("myboundary", 1000, &bytes),
                want,
                "{style:?} bytewise"
            );
        }
    }

    #[test]
    fn content_length_part_is_returned_without_waiting_for_next_boundary() {
        let jpeg = fake_jpeg(1, 50);
        let mut stream = format!("--b\r\nContent-Length: {}\r\n\r\n", jpeg.len()).into_bytes();
        stream.extend_from_slice(&jpeg);
        assert_eq!(parts_of("b", 1000, &[&stream]), ok_parts(&[jpeg]));
    }

    #[test]
    fn wrong_content_length_falls_back_to_scanning() {
        let parts = [fake_jpeg(2, 80), fake_jpeg(3, 90)];
        for delta in [-10i64, -1, 1, 3, 40] {
            let mut stream = Vec::new();
            for part in &parts {
                let len = part.len() as i64 + delta;
                stream
                    .extend_from_slice(format!("--b\r\nContent-Length: {len}\r\n\r\n").as_bytes());
                stream.extend_from_slice(part);
                stream.extend_from_slice(b"\r\n");
            }
            stream.extend_from_slice(b"--b\r\n");
            // Padding so an over-long length can be satisfied and then rejected.
            stream.extend_from_slice(&[b'x'; 64]);
            assert_eq!(
                parts_of("b", 1000, &[&stream]),
                ok_parts(&parts),
                "delta {delta}"
            );
        }
    }

    #[test]
    fn special_cases() {
        let jpeg = fake_jpeg(4, 40);
        let with = |head: &str, tail: &str| [head.as_bytes(), &jpeg, tail.as_bytes()].concat();
        let ok = ok_parts(std::slice::from_ref(&jpeg));
        let not_jpeg = Err(MjpegError::NotJpeg);

        // JPEG glued to the next boundary without a line break.
        assert_eq!(parts_of("b", 1000, &[&with("--b\r\n\r\n", "--b\r\n")]), ok);
        // Transport padding after the boundary.
        assert_eq!(
            parts_of("b", 1000, &[&with("--b  \t\r\n\r\n", "\r\n--b \r\n")]),
            ok
        );
        // Truncated: headers and half a body, then nothing.
        let stream = with("--b\r\nContent-Length: 40\r\n\r\n", "");
        assert_eq!(parts_of("b", 1000, &[&stream[..stream.len() - 5]]), []);
        assert_eq!(parts_of("b", 1000, &[b"--b\r\nContent-Ty"]), []);
        // A non-JPEG part is reported, then the next part still parses.
        let stream = [
            b"--b\r\n\r\nhello\r\n".as_slice(),
            &with("--b\r\n\r\n", "\r\n--b\r\n"),
        ]
        .concat();
        assert_eq!(
            parts_of("b", 1000, &[&stream]),
            [not_jpeg.clone(), ok[0].clone()]
        );
        // Empty part body.
        let stream = [
            b"--b\r\n\r\n\r\n".as_slice(),
            &with("--b\r\n\r\n", "\r\n--b\r\n"),
        ]
        .concat();
        assert_eq!(parts_of("b", 1000, &[&stream]), [not_jpeg, ok[0].clone()]);
        // Closing delimiter: nothing after it is parsed.
        let stream = [
            with("--b\r\n\r\n", "\r\n--b--\r\n"),
            with("--b\r\n\r\n", "\r\n--b\r\n"),
        ]
        .concat();
        let mut parser = MultipartParser::new("b", 1000).unwrap();
        assert_eq!(parse_chunks(&mut parser, &[&stream]), ok);
        assert!(parser.is_closed() && parser.buffered_len() == 0);
        // Boundary text inside a line is not a boundary.
        let stream = with("--b\r\n\r\n", "x--bx\r\nbb\r\n--b\r\n");
        let mut expected = jpeg.clone();
        expected.extend_from_slice(b"x--bx\r\nbb");
        assert_eq!(parts_of("b", 1000, &[&stream]), [Ok(Bytes::from(expected))]);
    }

    #[test]
    fn oversize_parts_are_rejected_and_parsing_recovers() {
        let big = fake_jpeg(5, 5000);
        let small = fake_jpeg(6, 100);
        let too_large = Err(MjpegError::PartTooLarge { limit: 1000 });
        for content_length in [true, false] {
            let mut stream = Vec::new();
            for part in [&big, &small, &big, &small] {
                stream.extend_from_slice(b"--b\r\n");
                if content_length {
                    stream.extend_from_slice(
                        format!("Content-Length: {}\r\n", part.len()).as_bytes(),
                    );
                }
                stream.extend_from_slice(b"\r\n");
                stream.extend_from_slice(part);
                stream.extend_from_slice(b"\r\n");
            }
            stream.extend_from_slice(b"--b\r\n");
            let want = [too_large.clone(), Ok(Bytes::from(small.clone()))];
            let want = [&want[..], &want[..]].concat();
            for chunk in [1, 7, 100, 4096, stream.len()] {
                let chunks: Vec<&[u8]> = stream.chunks(chunk).collect();
                assert_eq!(
                    parts_of("b", 1000, &chunks),
                    want,
                    "cl {content_length} chunk {chunk}"
                );
            }
        }
        // Endless header block.
        let mut parser = MultipartParser::new("b", 1000).unwrap();
        parser.push(b"--b\r\n");
        let header_line = b"X-Junk: yes\r\n".repeat(1000);
        let results = parse_chunks(&mut parser, &header_line.chunks(512).collect::<Vec<_>>());
        assert_eq!(
            results,
            [Err(MjpegError::HeadersTooLarge {
                limit: MAX_HEADER_BYTES
            })]
        );
        // Endless garbage before any boundary keeps the buffer tiny.
        let mut parser = MultipartParser::new("b", 1000).unwrap();
        for _ in 0..1000 {
            parser.push(&[b'x'; 1000]);
            assert_eq!(parser.next_part(), Ok(None));
            assert!(parser.buffered_len() <= LOOKBACK + 1);
        }
    }

    #[test]
    fn new_rejects_bad_boundaries() {
        assert_eq!(
            MultipartParser::new("", 10).err(),
            Some(MjpegError::EmptyBoundary)
        );
        assert_eq!(
            MultipartParser::new("--", 10).err(),
            Some(MjpegError::EmptyBoundary)
        );
        assert!(MultipartParser::new(&"x".repeat(300), 10).is_err());
    }

    #[test]
    fn encode_then_parse_round_trip() {
        assert_eq!(
            content_type(),
            "multipart/x-mixed-replace; boundary=latchkeyframe"
        );
        let part = encode_part(&[0xff, 0xd8, 1, 2, 0xff, 0xd9]);
        let text = b"--latchkeyframe\r\nContent-Type: image/jpeg\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(
            &part[..],
            [&text[..], &[0xff, 0xd8, 1, 2, 0xff, 0xd9, b'\r', b'\n']].concat()
        );

        let jpegs: Vec<Vec<u8>> = (0..5)
            .map(|i| fake_jpeg(100 + i, 30 * i as usize))
            .collect();
        let stream: Vec<u8> = jpegs.iter().flat_map(|j| encode_part(j).to_vec()).collect();
        let boundary = boundary_from_content_type(&content_type()).unwrap();
        // Content-Length lets every part, including the last, come out immediately.
        assert_eq!(parts_of(&boundary, 1000, &[&stream]), ok_parts(&jpegs));
    }

    #[test]
    fn fuzz_never_panics_and_stays_bounded() {
        let mut rng = XorShift(0x5eed_1234_abcd_ef01);
        let pieces: [&[u8]; 10] = [
            b"--b\r\n",
            b"--b\n",
            b"b\r\n",
            b"--b--\r\n",
            b"\r\n",
            b"Content-Length: 12\r\n",
            b"Content-Length: 999999999999999999999\r\n",
            b"\xff\xd8",
            b"\xff\xd9",
            b"content-length:-3\n",
        ];
        for round in 0..3000 {
            let max_part = rng.below(300);
            let mut parser =
                MultipartParser::new(if round % 2 == 0 { "b" } else { "--b" }, max_part).unwrap();
            let mut stream = Vec::new();
            for _ in 0..rng.below(40) {
                if rng.below(3) == 0 {
                    let n = rng.below(64);
                    stream.extend((0..n).map(|_| rng.next() as u8));
                } else {
                    stream.extend_from_slice(pieces[rng.below(pieces.len())]);
                }
            }
            let mut rest = stream.as_slice();
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(1 + rng.below(rest.len()));
                rest = tail;
                for result in parse_chunks(&mut parser, &[chunk]).into_iter().flatten() {
                    assert!(result.starts_with(&SOI) && result.len() <= max_part);
                }
            }
        }
    }
}
