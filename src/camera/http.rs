//! IP cameras over HTTP: an MJPEG stream (`multipart/x-mixed-replace`,
//! read part by part) or a JPEG snapshot URL (polled at `--fps`).
//!
//! A small client of our own on a plain socket, because a camera stream is
//! a body that never ends: it needs a read timeout per read (to notice a
//! stalled camera, and a stop) rather than the whole-body timeouts of an
//! HTTP library. Plain `http://` only: cameras on a LAN serve MJPEG that
//! way; an `https://` source is refused with that reason. Credentials go as
//! Basic authentication, or as Digest (MD5 or SHA-256, RFC 7616, through
//! the `http-auth` crate) when the camera's 401 asks for it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Event;
use super::mjpeg::{Item, Splitter};
use super::source::HttpUrl;

/// A connection attempt gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A camera that sends nothing for this long is treated as gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a blocked read looks up to check for a stop.
const POLL: Duration = Duration::from_millis(250);
/// The response head may not be longer than this.
const MAX_HEAD: usize = 16 * 1024;
/// Snapshot URLs are polled at this rate when `--fps` is not given.
const DEFAULT_SNAPSHOT_FPS: f64 = 1.0;

/// Reads the camera at `url` until `stop` (Ok) or a failure (Err), passing
/// frames and corrupt pictures to `on_event`.
pub fn stream(
    url: &HttpUrl,
    credentials: Option<&str>,
    fps: Option<f64>,
    max_picture: usize,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> io::Result<()> {
    if url.tls {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "https:// camera sources are not supported; use the camera's http:// URL on the LAN",
        ));
    }
    let credentials = credentials.or(url.userinfo.as_deref());
    let mut opened = false;
    // A Digest challenge, once a camera has sent one: kept across snapshot
    // polls, so each poll is one request (its nonce count goes up).
    let mut digest = None;
    loop {
        let started = Instant::now();
        let (head, mut body) = request(url, credentials, &mut digest, stop)?;
        let Some(head) = head else { return Ok(()) };
        let kind = head.content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let snapshot = match kind.as_str() {
            // ffmpeg's -f mpjpeg says application/octet-stream unless told otherwise.
            "multipart/x-mixed-replace" | "application/octet-stream" => false,
            "image/jpeg" | "image/jpg" => true,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the camera sent {:?}, neither an MJPEG stream (multipart/x-mixed-replace) nor a JPEG snapshot (image/jpeg)",
                        if other.is_empty() { "no Content-Type" } else { other }
                    ),
                ));
            }
        };
        if !opened {
            on_event(Event::Opened(if snapshot {
                "JPEG snapshots over HTTP".into()
            } else {
                "MJPEG over HTTP".into()
            }));
            opened = true;
        }
        let mut splitter = Splitter::new(max_picture);
        let mut chunk = vec![0; 64 * 1024];
        let mut pictures = 0u64;
        let mut since_picture = 0usize;
        loop {
            let n = match body.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            };
            if n == 0 {
                if let Some(item) = splitter.finish() {
                    super::deliver(item, on_event);
                }
                break;
            }
            splitter.feed(&chunk[..n]);
            since_picture += n;
            while let Some(item) = splitter.next_item() {
                if matches!(item, Item::Picture(_)) {
                    pictures += 1;
                    since_picture = 0;
                }
                super::deliver(item, on_event);
            }
            if since_picture > 2 * max_picture {
                return Err(super::mjpeg::no_pictures(since_picture));
            }
        }
        if !snapshot {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the camera ended its MJPEG stream"));
        }
        if pictures == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the snapshot held no whole JPEG picture"));
        }
        let gap = Duration::from_secs_f64(1.0 / fps.filter(|f| *f > 0.0).unwrap_or(DEFAULT_SNAPSHOT_FPS));
        while started.elapsed() < gap {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep((gap - started.elapsed()).min(POLL));
        }
    }
}

/// What the client needs of a response head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_type: String,
    pub framing: Framing,
    pub location: Option<String>,
    /// The `WWW-Authenticate` challenges, joined as one list.
    pub challenges: String,
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    Close,
}

/// Connects and sends the GET; returns the head and a reader of the body
/// alone (None if a stop came first). A 401 that asks for Digest is
/// answered once on a new connection; a second 401 is a refusal.
fn request<'a>(
    url: &HttpUrl,
    credentials: Option<&str>,
    digest: &mut Option<http_auth::PasswordClient>,
    stop: &'a AtomicBool,
) -> io::Result<(Option<Head>, Box<dyn Read + Send + 'a>)> {
    let mut answered_challenge = false;
    loop {
        let authorization = match (credentials, digest.as_mut()) {
            (None, _) => None,
            (Some(userinfo), None) => Some(format!("Basic {}", base64(userinfo.as_bytes()))),
            (Some(userinfo), Some(client)) => {
                let (username, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let params =
                    http_auth::PasswordParams { username, password, uri: &url.target, method: "GET", body: None };
                Some(
                    client
                        .respond(&params)
                        .map_err(|e| io::Error::other(format!("answering the camera's challenge: {e}")))?,
                )
            }
        };
        let (head, reader) = send(url, authorization.as_deref(), stop)?;
        let Some(head) = head else { return Ok((None, Box::new(io::empty()))) };
        match head.status {
            200 => {}
            401 if credentials.is_some()
                && !answered_challenge
                && head.challenges.to_ascii_lowercase().contains("digest") =>
            {
                *digest = Some(http_auth::PasswordClient::try_from(head.challenges.as_str()).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("the camera's Digest challenge: {e}"))
                })?);
                answered_challenge = true;
                continue;
            }
            401 | 403 => {
                let sent = match digest {
                    Some(_) => "Digest",
                    None => "Basic",
                };
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    match credentials {
                        Some(_) => {
                            format!("the camera refused the credentials (HTTP {}) sent as {sent}", head.status)
                        }
                        None => format!("the camera refused access without credentials (HTTP {})", head.status),
                    },
                ));
            }
            300..=399 => {
                let to = head.location.as_deref().map(super::source::redact).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "the camera redirects (HTTP {}) to {to:?}; give that URL",
                    head.status
                )));
            }
            status => return Err(io::Error::other(format!("the camera answered HTTP {status}"))),
        }
        let body: Box<dyn Read + Send + 'a> = match head.framing {
            Framing::Length(n) => Box::new(reader.take(n)),
            Framing::Close => Box::new(reader),
            Framing::Chunked => Box::new(Dechunk { inner: reader, left: 0, done: false }),
        };
        return Ok((Some(head), body));
    }
}

/// One GET on a new connection: the head (None if a stop came first) and
/// the reader positioned at the body.
fn send<'a>(
    url: &HttpUrl,
    authorization: Option<&str>,
    stop: &'a AtomicBool,
) -> io::Result<(Option<Head>, BufReader<Patient<'a>>)> {
    let addrs: Vec<_> = (url.connect_host(), url.port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{} resolves to no address", url.host));
    let mut socket = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let socket = socket.ok_or(last)?;
    socket.set_read_timeout(Some(POLL))?;
    socket.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: yolod/{}\r\nAccept: multipart/x-mixed-replace, image/jpeg\r\nConnection: close\r\n",
        url.target,
        url.host_header(),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    (&socket).write_all(request.as_bytes())?;
    let mut reader = BufReader::with_capacity(64 * 1024, Patient { socket, stop, idle: IDLE_TIMEOUT });
    let raw = match read_head(&mut reader) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok((None, reader)),
        other => other?,
    };
    Ok((Some(parse_head(&raw)?), reader))
}

/// Reads up to and including the blank line that ends the head.
fn read_head(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = reader.take((MAX_HEAD + 1 - raw.len()) as u64).read_until(b'\n', &mut raw)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the camera closed the connection before answering",
            ));
        }
        if raw.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the camera's response head is over 16 KiB"));
        }
        let line = &raw[before..];
        if line == b"\r\n" || line == b"\n" {
            return Ok(raw);
        }
    }
}

/// Parses a response head (status line and headers, blank line included).
pub fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, format!("not an HTTP response: {why}"));
    match response.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("the head is incomplete".into())),
        Err(e) => return Err(bad(e.to_string())),
    }
    let status = response.code.unwrap_or(0);
    let get = |name: &str| {
        response
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
            .collect::<Vec<_>>()
    };
    let chunked = get("transfer-encoding").iter().any(|v| v.to_ascii_lowercase().contains("chunked"));
    let lengths = get("content-length");
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            return Err(bad("conflicting Content-Length headers".into()));
        }
        Framing::Length(first.parse().map_err(|_| bad(format!("Content-Length {first:?}")))?)
    } else {
        Framing::Close
    };
    Ok(Head {
        status,
        content_type: get("content-type").into_iter().next().unwrap_or_default(),
        framing,
        location: get("location").into_iter().next(),
        challenges: get("www-authenticate").join(", "),
    })
}

/// A socket whose reads wait out short timeouts until data, a stop (an
/// `Interrupted` error) or `idle` without a byte (`TimedOut`).
struct Patient<'a> {
    socket: TcpStream,
    stop: &'a AtomicBool,
    idle: Duration,
}

impl Read for Patient<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let since = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "stopping"));
            }
            match self.socket.read(out) {
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if since.elapsed() >= self.idle {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the camera sent nothing for {} s", self.idle.as_secs()),
                        ));
                    }
                }
                other => return other,
            }
        }
    }
}

/// A chunked body, de-chunked. Size lines are hex digits, optional
/// extensions and CRLF (as `httparse::parse_chunk_size` reads them); the
/// trailers after the last chunk are skipped.
pub struct Dechunk<R> {
    pub inner: R,
    /// Bytes left in the current chunk.
    pub left: u64,
    /// The last chunk has been read.
    pub done: bool,
}

impl<R: BufRead> Dechunk<R> {
    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.inner.by_ref().take(1024).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad chunked framing from the camera"));
        }
        Ok(line)
    }
}

impl<R: BufRead> Read for Dechunk<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let line = self.line()?;
            let size = match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete((_, size))) if line[0].is_ascii_hexdigit() => size,
                _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "bad chunk size from the camera")),
            };
            if size == 0 {
                while self.line()? != b"\r\n" {}
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = out.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut out[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the camera closed the connection mid-chunk"));
        }
        self.left -= n as u64;
        if self.left == 0 && self.line()? != b"\r\n" {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "chunk data longer than its size"));
        }
        Ok(n)
    }
}

/// Standard base64 with padding, for the Basic authorization header.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let cases =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(b"admin:pass"), "YWRtaW46cGFzcw==");
    }

    #[test]
    fn response_heads_give_type_and_framing() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!((head.status, head.framing), (200, Framing::Chunked));
        assert!(head.content_type.starts_with("multipart/x-mixed-replace"));
        let head = parse_head(b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(head.framing, Framing::Length(12));
        let head = parse_head(b"HTTP/1.1 302 Found\r\nLocation: /other\r\n\r\n").unwrap();
        assert_eq!((head.status, head.location.as_deref(), head.framing), (302, Some("/other"), Framing::Close));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(parse_head(b"RTSP/1.0 200 OK\r\n\r\n").is_err());
        let head = parse_head(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"n1\", qop=\"auth\"\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.challenges, r#"Digest realm="cam", nonce="n1", qop="auth", Basic realm="cam""#);
    }

    #[test]
    fn chunked_bodies_are_joined_and_bad_framing_refused() {
        let read = |raw: &[u8]| {
            let mut out = Vec::new();
            Dechunk { inner: raw, left: 0, done: false }.read_to_end(&mut out).map(|_| out)
        };
        assert_eq!(read(b"3\r\nabc\r\na;ext=1\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n").unwrap(), b"abc0123456789");
        assert!(read(b"3\r\nabcd\r\n0\r\n\r\n").is_err());
        assert!(read(b"+3\r\nabc\r\n0\r\n\r\n").is_err());
        assert!(read(b"3\nabc\r\n0\r\n\r\n").is_err());
        assert!(read(b"3\r\nab").is_err());
    }
}
