//! What every handler reads: the models, the engine, the metrics, the
//! validated HTTP settings, the cameras and the live parts (keys re-read on
//! SIGHUP, the event hub, the MQTT publisher).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::auth::Keys;
use super::fetch::UrlPolicy;
use super::metrics::Metrics;
use super::multipart;
use super::session::Sessions;
use super::stream::{Hub, Slots};
use crate::camera_loop::Camera;
use crate::engine::Engine;
use crate::model::registry::Registry;

/// What the HTTP side needs to know, validated.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The API keys at start-up (SIGHUP re-reads them into [`State::keys`]).
    pub keys: Keys,
    /// Largest request body accepted, in bytes.
    pub max_body: u64,
    /// Objects per answer at most (`--max-detections`).
    pub max_detections: usize,
    /// Limits on a multipart body's parts.
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
    /// Serve the page at `/` to browsers (`--no-ui` turns it off).
    pub ui: bool,
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
    pub cameras: Vec<Arc<Camera>>,
    /// SSE clients of the camera log stream.
    pub hub: Hub,
    /// Handler slots the long-lived streams (SSE, MJPEG) may hold together.
    pub stream_slots: Slots,
    /// The page's sign-in sessions.
    pub sessions: Sessions,
    pub started: Instant,
    /// The camera log stream, once cameras run (its write failures are a metric).
    pub log_sink: std::sync::OnceLock<Arc<std::sync::Mutex<crate::sink::Sink>>>,
    /// The MQTT publisher, with --mqtt (its state shows in /readyz and /metrics).
    pub mqtt: std::sync::OnceLock<Arc<crate::publish::Publisher>>,
    /// Set at shutdown: predictions are refused from then on.
    pub(super) stopping: AtomicBool,
    /// Requests being handled, for the shutdown to wait on.
    pub(super) in_flight: AtomicUsize,
}

impl State {
    pub fn new(registry: Registry, engine: Engine, config: HttpConfig, cameras: Vec<Arc<Camera>>) -> State {
        // Each stream holds a handler slot: leave at least half for the API.
        let stream_slots = Slots::new((config.http_threads / 2).max(1));
        State {
            registry,
            engine,
            metrics: Metrics::default(),
            keys: std::sync::RwLock::new(config.keys.clone()),
            config,
            cameras,
            hub: Hub::default(),
            stream_slots,
            sessions: Sessions::default(),
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
