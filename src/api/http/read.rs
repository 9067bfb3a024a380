//! Reading one connection: request heads (parsed by httparse, within a
//! size limit and a deadline), the buffered bytes behind them, and request
//! bodies framed by Content-Length or chunked encoding.

use std::io::{self, BufRead, Read, Write};
use std::time::Instant;

use super::{Limits, MAX_CHUNK_LINE, MAX_HEADERS, MAX_TRAILERS, Refusal, Transport};

/// A request head, parsed.
pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
    pub(super) expect_continue: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Framing {
    Length(u64),
    Chunked,
}

/// Reads the next head. `Ok(None)`: the client closed or stayed silent
/// between requests (nothing to answer).
pub(super) fn read_head<S: Transport>(conn: &mut Conn<S>, limits: &Limits) -> Result<Option<Head>, Refusal> {
    let timeout = || Refusal::HeadTimeout { secs: limits.read_timeout.as_secs().max(1) };
    let mut deadline = Instant::now() + limits.read_timeout;
    loop {
        // Blank lines before a request line are allowed (RFC 9112, 2.2).
        while conn.pending().starts_with(b"\r\n") || conn.pending().starts_with(b"\n") {
            conn.start += if conn.pending()[0] == b'\r' { 2 } else { 1 };
        }
        if !conn.pending().is_empty() {
            match parse_head(conn.pending(), limits.max_head)? {
                Some((head, used)) => {
                    conn.start += used;
                    return Ok(Some(head));
                }
                None if conn.pending().len() >= limits.max_head => {
                    return Err(Refusal::HeadTooLarge { limit: limits.max_head });
                }
                None => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return if conn.pending().is_empty() { Ok(None) } else { Err(timeout()) };
        }
        if conn.stream.set_read_timeout(Some(left)).is_err() {
            return Ok(None);
        }
        let was_empty = conn.pending().is_empty();
        match conn.fill_more(limits.max_head) {
            Ok(0) => return Ok(None),
            Ok(_) => {
                if was_empty {
                    // The head's own deadline runs from its first byte.
                    deadline = Instant::now() + limits.read_timeout;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return if conn.pending().is_empty() { Ok(None) } else { Err(timeout()) };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(None),
        }
    }
}

/// Parses a complete head at the start of `bytes`: the head and its length,
/// or `None` when more bytes are needed.
pub(super) fn parse_head(bytes: &[u8], max_head: usize) -> Result<Option<(Head, usize)>, Refusal> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let used = match req.parse(bytes) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeadTooLarge { limit: max_head }),
        Err(e) => return Err(Refusal::BadRequest(format!("malformed request head ({e})"))),
    };
    if used > max_head {
        return Err(Refusal::HeadTooLarge { limit: max_head });
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(Refusal::BadRequest("incomplete request line".into()));
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_string()))
        .collect();
    let tokens = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
            .filter(|t| !t.is_empty())
            .collect()
    };
    let lengths: Vec<&str> = headers.iter().filter(|(k, _)| k == "content-length").map(|(_, v)| v.as_str()).collect();
    let encodings = tokens("transfer-encoding");
    // Ambiguous framing is how requests are smuggled past proxies: refuse it.
    let framing = match (lengths.as_slice(), encodings.as_slice()) {
        ([], []) => Framing::Length(0),
        ([], [te]) if te == "chunked" => Framing::Chunked,
        ([], _) => return Err(Refusal::BadRequest("only 'Transfer-Encoding: chunked' is supported".into())),
        (_, [_, ..]) => return Err(Refusal::BadRequest("both Content-Length and Transfer-Encoding sent".into())),
        ([first, rest @ ..], []) => {
            if rest.iter().any(|v| v != first) {
                return Err(Refusal::BadRequest("conflicting Content-Length headers".into()));
            }
            match first.parse::<u64>() {
                Ok(n) if first.bytes().all(|b| b.is_ascii_digit()) => Framing::Length(n),
                _ => return Err(Refusal::BadRequest("Content-Length is not a number".into())),
            }
        }
    };
    let connection = tokens("connection");
    let keep_alive = match version {
        0 => connection.iter().any(|t| t == "keep-alive"),
        _ => !connection.iter().any(|t| t == "close"),
    };
    let expect_continue = version == 1 && tokens("expect").iter().any(|t| t == "100-continue");
    Ok(Some((
        Head { method: method.to_string(), target: target.to_string(), headers, framing, keep_alive, expect_continue },
        used,
    )))
}

pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The socket and the bytes read from it but not yet used.
pub(super) struct Conn<S> {
    pub(super) stream: S,
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
}

impl<S: Read> Conn<S> {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads more bytes after those pending, at most up to `cap` pending.
    fn fill_more(&mut self, cap: usize) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let have = self.buf.len();
        let want = cap.saturating_sub(have).clamp(1, 16 * 1024);
        self.buf.resize(have + want, 0);
        let got = self.stream.read(&mut self.buf[have..]);
        self.buf.truncate(have + *got.as_ref().unwrap_or(&0));
        got
    }
}

impl<S: Read> Read for Conn<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pending().is_empty() {
            return self.stream.read(out);
        }
        let n = self.pending().len().min(out.len());
        out[..n].copy_from_slice(&self.pending()[..n]);
        self.start += n;
        Ok(n)
    }
}

impl<S: Read> BufRead for Conn<S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pending().is_empty() {
            self.fill_more(16 * 1024)?;
        }
        Ok(self.pending())
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
    }
}

/// A request body: exactly its bytes, however it is framed.
pub(super) struct BodyReader<'a, S> {
    conn: &'a mut Conn<S>,
    pub(super) framing: Framing,
    /// Bytes left: of the body (Length) or of the current chunk (Chunked).
    left: u64,
    /// The final chunk and trailers have been read (Chunked).
    done: bool,
    /// `Expect: 100-continue` not yet answered: the client waits for it.
    send_continue: bool,
}

impl<'a, S: Read + Write> BodyReader<'a, S> {
    pub(super) fn new(conn: &'a mut Conn<S>, framing: Framing, expect_continue: bool) -> BodyReader<'a, S> {
        let left = match framing {
            Framing::Length(n) => n,
            Framing::Chunked => 0,
        };
        BodyReader { conn, framing, left, done: false, send_continue: expect_continue }
    }

    /// Whether the body was read to its end (the connection can carry on).
    pub(super) fn finished(&self) -> bool {
        match self.framing {
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.done,
        }
    }

    /// Starts the next chunk: its size line, or at the last one the trailers.
    /// The size line is parsed as strict HTTP/1.1 parsers (and so proxies in
    /// front of yolod) do: hex digits first (no sign, no leading space, not
    /// empty), then extensions, then CRLF. A looser reading than a proxy's is
    /// how a request is smuggled past it.
    fn next_chunk(&mut self) -> io::Result<()> {
        let mut line = read_line(self.conn, MAX_CHUNK_LINE)?;
        // httparse reads an empty line as size 0 and skips leading
        // whitespace before the digits' end: refuse both here.
        if !line.first().is_some_and(u8::is_ascii_hexdigit) {
            return Err(invalid("bad chunk size"));
        }
        line.extend_from_slice(b"\r\n");
        self.left = match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((used, size))) if used == line.len() => size,
            _ => return Err(invalid("bad chunk size")),
        };
        if self.left == 0 {
            let mut trailers = 0;
            loop {
                let line = read_line(self.conn, MAX_CHUNK_LINE)?;
                trailers += line.len() + 2;
                if line.is_empty() {
                    break;
                }
                if trailers > MAX_TRAILERS {
                    return Err(invalid("chunked trailers too long"));
                }
            }
            self.done = true;
        }
        Ok(())
    }
}

impl<S: Read + Write> Read for BodyReader<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if std::mem::take(&mut self.send_continue) && !self.finished() {
            self.conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        if self.framing == Framing::Chunked && self.left == 0 && !self.done {
            self.next_chunk()?;
        }
        if self.left == 0 {
            return Ok(0);
        }
        let want = out.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.conn.read(&mut out[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the client closed the connection mid-body"));
        }
        self.left -= n as u64;
        if self.framing == Framing::Chunked && self.left == 0 {
            let end = read_line(self.conn, 0)?;
            if !end.is_empty() {
                return Err(invalid("chunk data longer than its size"));
            }
        }
        Ok(n)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One line ending in CRLF (returned without it), at most `max` bytes long.
/// A bare LF is refused: chunked framing ends its lines with CRLF only.
fn read_line<S: Read>(conn: &mut Conn<S>, max: usize) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let available = conn.fill_buf()?;
        if available.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the client closed the connection mid-body"));
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&available[..i]);
                conn.consume(i + 1);
                if line.pop() != Some(b'\r') {
                    return Err(invalid("chunked body line ends in a bare LF (CRLF required)"));
                }
                return if line.len() > max { Err(invalid("chunk line too long")) } else { Ok(line) };
            }
            None => {
                line.extend_from_slice(available);
                let n = available.len();
                conn.consume(n);
                if line.len() > max + 1 {
                    return Err(invalid("chunk line too long"));
                }
            }
        }
    }
}
