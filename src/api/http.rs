//! The HTTP/1.1 connection layer. yolod accepts connections itself, one
//! thread per connection up to `max_connections`, and reads each request
//! head within a size limit and a deadline (httparse parses it). A handler
//! then gets the request with a body reader that stops at the body's end,
//! and its response is written back. Handlers run in a bounded number of
//! slots, so slow heads never hold one, and light requests (health probes,
//! metrics) skip the slots so that they answer while every slot is busy.
//!
//! Why not tiny_http (which this layer replaced): it has no limit on header
//! size or on the time a head may take, its acceptor thread ends at its
//! first accept error (and panics on EMFILE), and its connection pool can
//! park a new connection behind another one's whole lifetime.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the acceptor wakes to see whether it should stop.
const ACCEPT_POLL: Duration = Duration::from_millis(200);
/// Most headers a request may carry.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line of a chunked body, extensions included.
const MAX_CHUNK_LINE: usize = 1024;
/// Most trailer bytes after a chunked body.
const MAX_TRAILERS: usize = 8192;

/// Bounds on what one client can hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers), in bytes.
    pub max_head: usize,
    /// Time a connection may wait for the next request, and time a started
    /// head may take to arrive whole; also the idle limit of each socket
    /// read and write after the head.
    pub read_timeout: Duration,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// Handlers running at once (each may buffer a whole body).
    pub handler_slots: usize,
}

/// Why a request was answered before any handler saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The head is not valid HTTP/1.x, or its framing is ambiguous.
    BadRequest(String),
    /// The head is over `Limits::max_head` bytes or `MAX_HEADERS` headers.
    HeadTooLarge { limit: usize },
    /// A head was started but not finished within `Limits::read_timeout`.
    HeadTimeout { secs: u64 },
    /// `Limits::max_connections` are open.
    TooManyConnections,
}

/// A request as handlers see it.
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as sent: path and query.
    pub target: &'a str,
    /// Header names in lower case, in the order sent.
    pub headers: &'a [(String, String)],
    /// The declared body length (`None` for a chunked body).
    pub body_len: Option<u64>,
    pub body: &'a mut dyn Read,
}

impl Request<'_> {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(self.headers, name)
    }
}

/// A response, before it is written.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    /// A whole `body` of `content_type`; the connection stays open.
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Full(body),
            close: false,
        }
    }

    /// Adds a header after those it has.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What follows the head of a response.
pub enum Body {
    Full(Vec<u8>),
    /// Written as it is read, flushed after each piece; the connection closes
    /// at its end (Server-Sent Events).
    Stream(Box<dyn Read + Send>),
}

/// What the layer calls.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Reading `request.body` is up to the handler.
    fn handle(&self, request: Request<'_>) -> Response;
    /// Answers a request refused before `handle`.
    fn refuse(&self, refusal: &Refusal) -> Response;
    /// Requests answered without a handler slot: cheap and bodiless.
    fn light(&self, method: &str, target: &str) -> bool;
}

/// A listening server: stop it with [`Server::stop`].
pub struct Server {
    stop: Arc<AtomicBool>,
    acceptor: JoinHandle<()>,
}

impl Server {
    /// Starts accepting on `listener` (its own socket options are changed:
    /// a short receive timeout lets the acceptor notice `stop`).
    pub fn start<H: Handler>(listener: TcpListener, limits: Limits, handler: Arc<H>) -> io::Result<Server> {
        socket2::SockRef::from(&listener).set_read_timeout(Some(ACCEPT_POLL))?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            limits,
            handler,
            open: AtomicUsize::new(0),
            slots: Slots::new(limits.handler_slots),
            stop: stop.clone(),
        });
        let acceptor =
            std::thread::Builder::new().name("http-accept".into()).spawn(move || accept_loop(&listener, &shared))?;
        Ok(Server { stop, acceptor })
    }

    /// Stops accepting and closes the listening socket. Connections already
    /// open finish the request they are on and are then closed.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.acceptor.join();
    }
}

struct Shared<H> {
    limits: Limits,
    handler: Arc<H>,
    open: AtomicUsize,
    slots: Slots,
    stop: Arc<AtomicBool>,
}

fn accept_loop<H: Handler>(listener: &TcpListener, shared: &Arc<Shared<H>>) {
    let mut starved = Starved::default();
    while !shared.stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // EMFILE and the like: connections wait in the backlog until
                // open ones close (each is bounded by the read timeout).
                starved.note(&e);
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if shared.open.load(Ordering::SeqCst) >= shared.limits.max_connections {
            refuse_quickly(stream, &shared.handler.refuse(&Refusal::TooManyConnections));
            continue;
        }
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(shared.limits.read_timeout));
        shared.open.fetch_add(1, Ordering::SeqCst);
        let conn_shared = shared.clone();
        let spawned = std::thread::Builder::new().name("http-conn".into()).spawn(move || {
            serve_connection(stream, &conn_shared);
            conn_shared.open.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            shared.open.fetch_sub(1, Ordering::SeqCst);
            starved.note(&e);
        }
    }
}

/// Logs accept failures without flooding the journal: the first one, then
/// a count at most once a minute.
#[derive(Default)]
struct Starved {
    last_log: Option<Instant>,
    since: u64,
}

impl Starved {
    fn note(&mut self, e: &io::Error) {
        self.since += 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            let repeats = if self.last_log.is_some() {
                format!(", {} failure(s) in the last minute", self.since)
            } else {
                String::new()
            };
            log::warn!("cannot take a new connection ({e}{repeats}); retrying while open ones finish");
            self.last_log = Some(Instant::now());
            self.since = 0;
        }
    }
}

/// Answers on the acceptor thread without ever blocking it.
fn refuse_quickly(stream: TcpStream, response: &Response) {
    if stream.set_nonblocking(true).is_ok() {
        let mut out = Vec::new();
        if write_head(&mut out, response.status, &response.headers, Some(body_bytes(response).len()), true).is_ok() {
            out.extend_from_slice(body_bytes(response));
            let _ = (&stream).write(&out);
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn body_bytes(response: &Response) -> &[u8] {
    match &response.body {
        Body::Full(bytes) => bytes,
        Body::Stream(_) => &[],
    }
}

/// What a connection runs on: a socket, or bytes in memory (fuzzing).
trait Transport: Read + Write {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Tells the peer nothing more will be sent.
    fn shutdown_write(&self) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

fn serve_connection<H: Handler, S: Transport>(stream: S, shared: &Shared<H>) {
    let limits = shared.limits;
    let mut conn = Conn { stream, buf: Vec::new(), start: 0 };
    loop {
        let head = match read_head(&mut conn, &limits) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(refusal) => {
                let response = shared.handler.refuse(&refusal);
                let _ = write_response(&mut conn.stream, response, false, true);
                linger(&mut conn.stream);
                return;
            }
        };
        if conn.stream.set_read_timeout(Some(limits.read_timeout)).is_err() {
            return;
        }
        let head_only = head.method == "HEAD";
        let light = shared.handler.light(&head.method, &head.target);
        let _slot = if light { None } else { Some(shared.slots.take()) };
        let mut body = BodyReader::new(&mut conn, head.framing, head.expect_continue);
        let response = shared.handler.handle(Request {
            method: &head.method,
            target: &head.target,
            headers: &head.headers,
            body_len: match head.framing {
                Framing::Length(n) => Some(n),
                Framing::Chunked => None,
            },
            body: &mut body,
        });
        let finished = body.finished();
        let stopping = shared.stop.load(Ordering::SeqCst);
        let close = response.close || !head.keep_alive || !finished || stopping;
        let closed = write_response(&mut conn.stream, response, head_only, close);
        if closed.unwrap_or(true) {
            linger(&mut conn.stream);
            return;
        }
    }
}

/// Ends a connection the client may still be sending on. Closing a socket
/// with unread bytes resets it, and a reset can destroy our answer before
/// the client reads it: so say we are done, then read and discard for a
/// moment (bounded in time and bytes) before closing.
fn linger<S: Transport>(stream: &mut S) {
    if stream.shutdown_write().is_err() {
        return;
    }
    let until = Instant::now() + Duration::from_secs(2);
    let mut scratch = [0u8; 8192];
    let mut budget = 1 << 20;
    while budget > 0 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => budget -= n.min(budget),
        }
    }
}

/// Writes `response`; `Ok(true)` when the connection must now close.
fn write_response<S: Write>(out: &mut S, response: Response, head_only: bool, close: bool) -> io::Result<bool> {
    match response.body {
        Body::Full(bytes) => {
            let mut buf = Vec::with_capacity(256 + if head_only { 0 } else { bytes.len() });
            write_head(&mut buf, response.status, &response.headers, Some(bytes.len()), close)?;
            if !head_only {
                buf.extend_from_slice(&bytes);
            }
            out.write_all(&buf)?;
            Ok(close)
        }
        Body::Stream(mut source) => {
            let mut head = Vec::new();
            write_head(&mut head, response.status, &response.headers, None, true)?;
            out.write_all(&head)?;
            if !head_only {
                let mut piece = [0u8; 8192];
                loop {
                    let n = source.read(&mut piece)?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&piece[..n])?;
                }
            }
            Ok(true)
        }
    }
}

fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(String, String)],
    len: Option<usize>,
    close: bool,
) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nServer: yolod\r\nDate: {}\r\n",
        reason(status),
        httpdate::fmt_http_date(std::time::SystemTime::now())
    )?;
    for (name, value) in headers {
        // Handlers build headers from our own text; a line break would split
        // the response, so such a header is dropped rather than sent.
        if !name.bytes().chain(value.bytes()).any(|b| b == b'\r' || b == b'\n') {
            write!(out, "{name}: {value}\r\n")?;
        }
    }
    if let Some(len) = len {
        write!(out, "Content-Length: {len}\r\n")?;
    }
    out.extend_from_slice(if close { b"Connection: close\r\n\r\n" } else { b"Connection: keep-alive\r\n\r\n" });
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A counting semaphore: `take` waits for a free slot, the guard frees it.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(n: usize) -> Slots {
        Slots { free: Mutex::new(n.max(1)), freed: Condvar::new() }
    }

    fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

mod read;
mod replay;

use read::*;
pub use replay::replay;

#[cfg(test)]
mod tests;
