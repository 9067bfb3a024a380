//! The tiny_http loop: a few threads take requests, call `routes::handle`
//! (a panic becomes a 500) and write the reply. Shutdown refuses new work,
//! drains what is in flight (bounded), then unblocks the listeners.

use std::io::{Cursor, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::{Header, Response, Server};

use super::auth::Keys;
use super::cors;
use super::error::ApiError;
use super::fetch::UrlPolicy;
use super::metrics::Metrics;
use super::multipart;
use super::routes::{self, Incoming, Reply};
use super::stream::Hub;
use crate::camera::CameraStats;
use crate::engine::{Engine, panic_message};
use crate::model::registry::Registry;

/// What the HTTP side needs to know, validated.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub keys: Keys,
    /// Largest request body accepted, in bytes.
    pub max_body: u64,
    pub multipart: multipart::Limits,
    /// `Some` when URL input is enabled.
    pub url_policy: Option<UrlPolicy>,
    /// Threads taking HTTP requests.
    pub http_threads: usize,
    /// Inference workers (for metrics).
    pub workers: usize,
    /// Time allowed for a whole request body to arrive.
    pub body_timeout: Duration,
    /// Origins allowed to read answers from a browser (`*` for any); empty: no CORS.
    pub cors_origins: Vec<String>,
}

/// Everything a handler may read.
pub struct State {
    pub registry: Registry,
    pub engine: Engine,
    pub metrics: Metrics,
    pub config: HttpConfig,
    /// Cameras this process reads (serve --camera).
    pub cameras: Vec<Arc<CameraStats>>,
    /// SSE clients of the camera log stream.
    pub hub: Hub,
    pub started: Instant,
    /// The camera log stream, once cameras run (its write failures are a metric).
    pub log_sink: std::sync::OnceLock<Arc<std::sync::Mutex<crate::sink::Sink>>>,
    /// Set when the listener has stopped accepting; the process then exits
    /// with a failure so that systemd restarts it.
    pub listener_failed: std::sync::Mutex<Option<String>>,
    stopping: AtomicBool,
    in_flight: AtomicUsize,
}

impl State {
    pub fn new(registry: Registry, engine: Engine, config: HttpConfig, cameras: Vec<Arc<CameraStats>>) -> State {
        // Each SSE client holds an HTTP thread: leave at least half for the API.
        let hub = Hub::new((config.http_threads / 2).max(1));
        State {
            registry,
            engine,
            metrics: Metrics::default(),
            config,
            cameras,
            hub,
            started: Instant::now(),
            log_sink: std::sync::OnceLock::new(),
            listener_failed: std::sync::Mutex::new(None),
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// A running server: its threads and the listener they share.
pub struct Running {
    server: Arc<Server>,
    state: Arc<State>,
    threads: Vec<JoinHandle<()>>,
}

/// Starts `state.config.http_threads` threads answering on `server`.
pub fn start(server: Server, state: Arc<State>) -> Running {
    let server = Arc::new(server);
    let threads = (0..state.config.http_threads.max(1))
        .map(|i| {
            let (server, state) = (server.clone(), state.clone());
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    loop {
                        match server.recv() {
                            Ok(request) => respond(&state, request),
                            Err(e) => {
                                // tiny_http's acceptor stops at its first accept error
                                // (EMFILE, ...): without it nothing more is served.
                                if !state.is_stopping() {
                                    let mut failed = state.listener_failed.lock().unwrap_or_else(|e| e.into_inner());
                                    failed.get_or_insert_with(|| e.to_string());
                                }
                                break;
                            }
                        }
                    }
                })
                .expect("spawning an HTTP thread")
        })
        .collect();
    Running { server, state, threads }
}

impl Running {
    /// Refuses new predictions, waits up to `timeout` for those in flight,
    /// then stops the listener threads. Returns how many were still running.
    pub fn shutdown(self, timeout: Duration) -> usize {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.state.hub.close();
        let deadline = Instant::now() + timeout;
        while self.state.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.state.in_flight.load(Ordering::SeqCst);
        for _ in &self.threads {
            self.server.unblock();
        }
        if left == 0 {
            for t in self.threads {
                let _ = t.join();
            }
        }
        self.state.engine.shutdown();
        left
    }
}

fn respond(state: &State, mut request: tiny_http::Request) {
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let method = request.method().as_str().to_string();
    let url = request.url().to_string();
    let headers: Vec<(String, String)> =
        request.headers().iter().map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.to_string())).collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let body_len = request.body_length();
    let path = url.split('?').next().unwrap_or("");
    let route = routes::route_label(path);
    let reply = guarded(&format!("{method} {path}"), || {
        routes::handle(state, Incoming { method: &method, url: &url, header: &header, body_len, body: request.as_reader() })
    });
    if reply.status == 500 {
        state.metrics.error("internal");
    }
    state.metrics.request(route, reply.status);
    let head_only = method == "HEAD";
    let mut headers = vec![header_of("Content-Type", reply.content_type)];
    headers.extend(reply.headers.iter().map(|(k, v)| header_of(k, v)));
    if reply.status == 413 || reply.status == 408 {
        // The unread body would otherwise be drained from the client first.
        headers.push(header_of("Connection", "close"));
    }
    if reply.status != 204 {
        if let Some(origin) = cors::allowed_origin(&state.config.cors_origins, header("origin").as_deref()) {
            headers.push(header_of("Access-Control-Allow-Origin", &origin));
            headers.push(header_of("Access-Control-Expose-Headers", cors::EXPOSE_HEADERS));
            headers.push(header_of("Vary", "Origin"));
        }
    }
    let _ = match reply.stream {
        Some(stream) => stream_raw(request, reply.status, &headers, stream),
        None => {
            let body = if head_only { Vec::new() } else { reply.body };
            let len = body.len();
            request.respond(Response::new(reply.status.into(), headers, Cursor::new(body), Some(len), None))
        }
    };
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
}

/// Writes an open-ended body (Server-Sent Events) straight to the socket,
/// flushing after every piece: tiny_http's chunked writer would hold events
/// back until 8 KiB had gathered. The body ends when the connection closes.
fn stream_raw(request: tiny_http::Request, status: u16, headers: &[Header], mut body: Box<dyn Read + Send>) -> std::io::Result<()> {
    let mut out = request.into_writer();
    let reason = if status == 200 { "OK" } else { "" };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(&format!("{}: {}\r\n", h.field, h.value));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.flush()?;
    let mut buf = [0u8; 8192];
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
}

/// Runs a handler; a panic becomes a 500 JSON answer (logged with `context`)
/// and the calling thread lives on to serve the next request.
pub fn guarded(context: &str, handler: impl FnOnce() -> Reply) -> Reply {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|panic| {
        eprintln!("yolod: handler panicked on {context}: {}", panic_message(&panic));
        Reply::error(&ApiError::Internal(String::new()))
    })
}

fn header_of(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header names and values are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_becomes_a_500_json_answer() {
        let reply = guarded("test", || panic!("boom"));
        assert_eq!(reply.status, 500);
        assert_eq!(reply.content_type, "application/json");
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["success"], false);
        assert!(body["message"].as_str().unwrap().starts_with("Internal error"));
        let fine = guarded("test", || Reply::json(200, &serde_json::json!({})));
        assert_eq!(fine.status, 200);
    }
}
