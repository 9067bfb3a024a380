//! The API on the connection layer (`http`): each request goes to
//! `routes::handle` (a panic becomes a 500), each reply gets its CORS
//! headers and is counted. Shutdown refuses new work, drains what is in
//! flight (bounded), then stops listening.

use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::auth::Keys;
use super::cors;
use super::error::ApiError;
use super::fetch::UrlPolicy;
use super::http;
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
    /// Objects per answer at most (`--max-detections`).
    pub max_detections: usize,
    pub multipart: multipart::Limits,
    /// `Some` when URL input is enabled.
    pub url_policy: Option<UrlPolicy>,
    /// Requests handled at once.
    pub http_threads: usize,
    /// Open connections at most.
    pub max_connections: usize,
    /// Largest request head, in bytes.
    pub max_header: usize,
    /// Time to wait for a request head, and the idle limit on a connection.
    pub read_timeout: Duration,
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
    /// The API keys in force: `config.keys` at start, re-read on SIGHUP.
    pub keys: std::sync::RwLock<Keys>,
    /// Cameras this process reads (serve --camera).
    pub cameras: Vec<Arc<CameraStats>>,
    /// SSE clients of the camera log stream.
    pub hub: Hub,
    pub started: Instant,
    /// The camera log stream, once cameras run (its write failures are a metric).
    pub log_sink: std::sync::OnceLock<Arc<std::sync::Mutex<crate::sink::Sink>>>,
    /// The MQTT publisher, with --mqtt (its state shows in /readyz and /metrics).
    pub mqtt: std::sync::OnceLock<Arc<crate::publish::Publisher>>,
    stopping: AtomicBool,
    in_flight: AtomicUsize,
}

impl State {
    pub fn new(registry: Registry, engine: Engine, config: HttpConfig, cameras: Vec<Arc<CameraStats>>) -> State {
        // Each SSE client holds a handler slot: leave at least half for the API.
        let hub = Hub::new((config.http_threads / 2).max(1));
        State {
            registry,
            engine,
            metrics: Metrics::default(),
            keys: std::sync::RwLock::new(config.keys.clone()),
            config,
            cameras,
            hub,
            started: Instant::now(),
            log_sink: std::sync::OnceLock::new(),
            mqtt: std::sync::OnceLock::new(),
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// A running server: the connection layer and the state it answers from.
pub struct Running {
    server: http::Server,
    state: Arc<State>,
}

/// Starts answering on `listener`.
pub fn start(listener: TcpListener, state: Arc<State>) -> std::io::Result<Running> {
    let c = &state.config;
    let limits = http::Limits {
        max_head: c.max_header,
        read_timeout: c.read_timeout,
        max_connections: c.max_connections,
        handler_slots: c.http_threads,
    };
    let server = http::Server::start(listener, limits, Arc::new(Api(state.clone())))?;
    Ok(Running { server, state })
}

impl Running {
    /// Refuses new predictions, waits up to `timeout` for those in flight,
    /// then stops listening. Returns how many were still running.
    pub fn shutdown(self, timeout: Duration) -> usize {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.state.hub.close();
        let deadline = Instant::now() + timeout;
        while self.state.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.state.in_flight.load(Ordering::SeqCst);
        self.server.stop();
        self.state.engine.shutdown();
        left
    }
}

/// The API as the connection layer sees it.
struct Api(Arc<State>);

impl http::Handler for Api {
    fn handle(&self, request: http::Request<'_>) -> http::Response {
        let state = &*self.0;
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        let http::Request { method, target, headers, body_len, body } = request;
        let path = target.split('?').next().unwrap_or("");
        let route = routes::route_label(path);
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let origin = header("origin");
        let body_len = body_len.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let reply = guarded(&format!("{method} {path}"), || {
            routes::handle(state, Incoming { method, url: target, header: &header, body_len, body })
        });
        if reply.status == 500 {
            state.metrics.error("internal");
        }
        state.metrics.request(route, reply.status);
        let response = to_response(state, reply, origin.as_deref());
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        response
    }

    fn refuse(&self, refusal: &http::Refusal) -> http::Response {
        let e = match refusal {
            http::Refusal::BadRequest(why) => ApiError::BadRequest(why.clone()),
            http::Refusal::HeadTooLarge { limit } => ApiError::HeaderTooLarge { limit: *limit },
            http::Refusal::HeadTimeout { secs } => ApiError::HeadTimeout { secs: *secs },
            http::Refusal::TooManyConnections => ApiError::TooManyConnections { retry_after: 1 },
        };
        self.0.metrics.error(e.kind());
        self.0.metrics.request("other", e.status());
        let mut response = to_response(&self.0, Reply::error(&e), None);
        response.close = true;
        response
    }

    fn light(&self, method: &str, target: &str) -> bool {
        matches!(method, "GET" | "HEAD")
            && matches!(target.split('?').next(), Some("/healthz" | "/readyz" | "/metrics"))
    }
}

fn to_response(state: &State, reply: Reply, origin: Option<&str>) -> http::Response {
    let mut headers = vec![("Content-Type".to_string(), reply.content_type.to_string())];
    headers.extend(reply.headers.into_iter().map(|(k, v)| (k.to_string(), v)));
    if reply.status != 204 {
        if let Some(origin) = cors::allowed_origin(&state.config.cors_origins, origin) {
            headers.push(("Access-Control-Allow-Origin".into(), origin));
            headers.push(("Access-Control-Expose-Headers".into(), cors::EXPOSE_HEADERS.into()));
            headers.push(("Vary".into(), "Origin".into()));
        }
    }
    // The unread rest of a refused body would otherwise be taken for the next request.
    let close = matches!(reply.status, 408 | 413);
    let body = match reply.stream {
        Some(stream) => http::Body::Stream(stream),
        None => http::Body::Full(reply.body),
    };
    http::Response { status: reply.status, headers, body, close }
}

/// Runs a handler; a panic becomes a 500 JSON answer (logged with `context`)
/// and the calling thread lives on to serve the next request.
pub fn guarded(context: &str, handler: impl FnOnce() -> Reply) -> Reply {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|panic| {
        log::error!("handler panicked on {context}: {}", panic_message(&panic));
        Reply::error(&ApiError::Internal(String::new()))
    })
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
