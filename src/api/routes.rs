//! Routing and the handlers: `fn(&State, Request) -> Response`, in the
//! connection layer's own types.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::args::Args;
use super::body;
use super::error::ApiError;
use super::fetch;
use super::http::{Body, Request, Response};
use super::metrics;
use super::reply::{check_method, json, read_body, record_timings, run, with_error_headers};
use super::state::State;
use crate::wire::{self, Empty, Envelope, ModelEntry};

/// Both APIs described for tools (OpenAPI 3.1): docs/openapi.json, made
/// from docs/openapi.yaml by docs/openapi.py.
const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// The HUB API's answer to an error.
pub fn error(e: &ApiError) -> Response {
    let message = e.to_string();
    with_error_headers(json(e.status(), &Envelope { success: false, message: &message, data: Empty {} }), e)
}

/// The route label used in metrics (bounded cardinality).
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/predict" => "/v1/predict",
        p if p.starts_with("/v1/predict/") => "/v1/predict/{model}",
        "/v1/models" => "/v1/models",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/v1/stream" => "/v1/stream",
        "/v1/snapshot" => "/v1/snapshot",
        "/v1/stream.mjpeg" => "/v1/stream.mjpeg",
        "/" => "/",
        "/ui/app.js" => "/ui/app.js",
        "/ui/style.css" => "/ui/style.css",
        "/ui/login" => "/ui/login",
        "/ui/logout" => "/ui/logout",
        "/openapi.json" => "/openapi.json",
        p => super::deepstack::route_label(p).unwrap_or("other"),
    }
}

pub fn handle(state: &State, req: Request) -> Response {
    let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
    let method = req.method;
    let allow = |allowed: &'static str| check_method(method, allowed);
    if method == "OPTIONS" && req.header("access-control-request-method").is_some() {
        if let Some(origin) = super::cors::allowed_origin(&state.config.cors_origins, req.header("origin")) {
            let preflight = Response::new(204, "text/plain", vec![]);
            return super::cors::preflight_headers(origin).into_iter().fold(preflight, |r, (k, v)| r.with_header(k, v));
        }
    }
    if super::deepstack::owns(path) {
        return super::deepstack::handle(state, req);
    }
    let result = match path {
        "/" => allow("GET, HEAD").map(|()| super::ui::root(state, &req)),
        "/ui/app.js" => allow("GET, HEAD").map(|()| super::ui::asset(super::ui::APP_JS, "text/javascript")),
        "/ui/style.css" => allow("GET, HEAD").map(|()| super::ui::asset(super::ui::STYLE_CSS, "text/css")),
        "/ui/login" => allow("POST").and_then(|()| super::ui::login(state, req)),
        "/ui/logout" => allow("POST").map(|()| super::ui::logout(state, &req)),
        "/openapi.json" => {
            allow("GET, HEAD").map(|()| Response::new(200, "application/json", OPENAPI.as_bytes().to_vec()))
        }
        "/healthz" => {
            allow("GET, HEAD").map(|()| json(200, &Envelope { success: true, message: "alive", data: Empty {} }))
        }
        "/readyz" => allow("GET, HEAD").map(|()| readyz(state)),
        "/metrics" => allow("GET, HEAD").map(|()| metrics_reply(state)),
        "/v1/models" => allow("GET, HEAD").and_then(|()| authorize(state, &req)).map(|()| models(state)),
        "/v1/stream" => allow("GET").and_then(|()| authorize(state, &req)).and_then(|()| stream(state)),
        "/v1/snapshot" => allow("GET").and_then(|()| authorize(state, &req)).and_then(|()| snapshot(state, query)),
        "/v1/stream.mjpeg" => {
            allow("GET").and_then(|()| authorize(state, &req)).and_then(|()| mjpeg_stream(state, query))
        }
        "/v1/predict" => allow("POST").and_then(|()| predict(state, None, query, req)),
        p if p.starts_with("/v1/predict/") => {
            let id = &p["/v1/predict/".len()..];
            allow("POST").and_then(|()| predict(state, Some(id), query, req))
        }
        p => Err(ApiError::NotFound(super::error::echo(p))),
    };
    result.unwrap_or_else(|e| {
        state.metrics.error(e.kind());
        if let ApiError::Internal(detail) = &e {
            log::error!("internal error on {method} {path}: {detail}");
        }
        error(&e)
    })
}

/// A request may go on when it carries a configured key in `x-api-key`
/// (or no key is configured), or comes from a signed-in page: its session
/// cookie, on a GET, or on another method with the page's `x-yolod-page`
/// header, which a form on another site cannot add (SECURITY.md).
pub fn authorize(state: &State, req: &Request) -> Result<(), ApiError> {
    let keys = state.keys.read().unwrap_or_else(|e| e.into_inner());
    if keys.allows(req.header("x-api-key")) {
        return Ok(());
    }
    let from_page = matches!(req.method, "GET" | "HEAD") || req.header("x-yolod-page").is_some();
    match super::session::token_in(req.header("cookie")) {
        Some(token) if from_page && state.sessions.allows(&keys, token) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

fn readyz(state: &State) -> Response {
    let stopping = state.is_stopping();
    // Cameras do not decide readiness: the API serves without them. Their
    // state is in the body (and /metrics) for whoever watches them.
    let cameras_down = state.cameras.iter().filter(|c| !c.stats.connected.load(Ordering::SeqCst)).count();
    let ready = !stopping;
    let message = match (stopping, cameras_down) {
        (true, _) => "stopping",
        (false, 0) => "ready",
        _ => "ready; a camera is not streaming (yolod keeps retrying)",
    };
    let models = state.registry.all();
    let ids: Vec<&str> = models.iter().map(|m| m.info.id.as_str()).collect();
    let cameras: Vec<serde_json::Value> = state
        .cameras
        .iter()
        .map(|c| &c.stats)
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "source": c.source,
                "connected": c.connected.load(Ordering::SeqCst),
                "format": *c.negotiated.lock().unwrap_or_else(|e| e.into_inner()),
                "last_error": *c.last_error.lock().unwrap_or_else(|e| e.into_inner()),
                "frames_captured": c.captured.load(Ordering::SeqCst),
                "frames_processed": c.processed.load(Ordering::SeqCst),
                "frames_dropped": c.dropped.load(Ordering::SeqCst),
                "frames_corrupt": c.corrupt.load(Ordering::SeqCst),
                "reconnects": c.reconnects.load(Ordering::SeqCst),
            })
        })
        .collect();
    let mut data = serde_json::json!({ "models": ids, "queue_depth": state.engine.queue_depth(), "cameras": cameras });
    if let Some(mqtt) = state.mqtt.get() {
        // Shown, never a 503: a broker outage does not stop the API.
        data["mqtt"] = serde_json::to_value(mqtt.status()).unwrap_or_default();
    }
    json(if ready { 200 } else { 503 }, &Envelope { success: ready, message, data })
}

fn stream(state: &State) -> Result<Response, ApiError> {
    let slot = state.stream_slots.acquire().ok_or(ApiError::Busy { retry_after: 5 })?;
    let events = state.hub.subscribe(slot);
    let mut response = Response::new(200, "text/event-stream", vec![]).with_header("Cache-Control", "no-cache");
    response.body = Body::Stream(Box::new(events));
    Ok(response)
}

/// The camera `?camera=` names (by name or source; the first without it).
fn camera<'a>(state: &'a State, query: &str) -> Result<&'a std::sync::Arc<crate::camera_loop::Camera>, ApiError> {
    let wanted = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "camera").map(|(_, v)| v.into_owned());
    match &wanted {
        Some(name) => state.cameras.iter().find(|c| &c.stats.name == name || &c.stats.source == name),
        None => state.cameras.first(),
    }
    .ok_or_else(|| {
        ApiError::NotFound(format!("camera {}", super::error::echo(wanted.as_deref().unwrap_or("(none configured)"))))
    })
}

/// `?annotate=`, false when absent.
fn annotate(query: &str) -> Result<bool, ApiError> {
    match form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "annotate") {
        Some((_, v)) => super::args::flag(&v).ok_or_else(|| ApiError::InvalidField {
            field: "annotate".into(),
            value: super::error::echo(&v),
            valid: super::args::FLAG_VALUES.into(),
        }),
        None => Ok(false),
    }
}

fn snapshot(state: &State, query: &str) -> Result<Response, ApiError> {
    let camera = camera(state, query)?;
    let annotate = annotate(query)?;
    let last = camera.latest().ok_or(ApiError::Busy { retry_after: 1 })?;
    let jpeg = super::mjpeg::jpeg(&last, annotate)?;
    Ok(Response::new(200, "image/jpeg", jpeg)
        .with_header("Cache-Control", "no-store")
        .with_header("X-Frame", last.frame.to_string()))
}

fn mjpeg_stream(state: &State, query: &str) -> Result<Response, ApiError> {
    let camera = camera(state, query)?.clone();
    let annotate = annotate(query)?;
    let slot = state.stream_slots.acquire().ok_or(ApiError::Busy { retry_after: 5 })?;
    let content_type = format!("multipart/x-mixed-replace; boundary={}", super::mjpeg::BOUNDARY);
    let mut response = Response::new(200, &content_type, vec![]).with_header("Cache-Control", "no-store");
    response.body = Body::Stream(Box::new(super::mjpeg::MjpegStream::new(camera, annotate, slot)));
    Ok(response)
}

fn models(state: &State) -> Response {
    let models = state.registry.all();
    let entries: Vec<ModelEntry> = models.iter().enumerate().map(|(i, m)| ModelEntry::new(&m.info, i == 0)).collect();
    json(200, &Envelope { success: true, message: "Models loaded on this server.", data: entries })
}

fn metrics_reply(state: &State) -> Response {
    let mut gauges = vec![
        (
            "yolod_queue_depth",
            "Inference jobs waiting for a worker.",
            "gauge",
            String::new(),
            state.engine.queue_depth() as f64,
        ),
        ("yolod_workers", "Inference worker threads.", "gauge", String::new(), state.config.workers as f64),
        ("yolod_uptime_seconds", "Seconds since start.", "gauge", String::new(), state.started.elapsed().as_secs_f64()),
        ("yolod_stream_clients", "Connected /v1/stream clients.", "gauge", String::new(), state.hub.clients() as f64),
    ];
    for c in state.cameras.iter().map(|c| &c.stats) {
        let src = metrics::label(&c.name);
        for (kind, counter) in
            [("captured", &c.captured), ("processed", &c.processed), ("dropped", &c.dropped), ("corrupt", &c.corrupt)]
        {
            let labels = format!("{{camera=\"{src}\",kind=\"{kind}\"}}");
            gauges.push((
                "yolod_camera_frames_total",
                "Camera frames by kind.",
                "counter",
                labels,
                counter.load(Ordering::SeqCst) as f64,
            ));
        }
    }
    for c in state.cameras.iter().map(|c| &c.stats) {
        let labels = format!("{{camera=\"{}\"}}", metrics::label(&c.name));
        gauges.push((
            "yolod_camera_reconnects_total",
            "Times a lost camera came back.",
            "counter",
            labels,
            c.reconnects.load(Ordering::SeqCst) as f64,
        ));
    }
    if let Some(sink) = state.log_sink.get().filter(|_| !state.cameras.is_empty()) {
        let failed = sink.lock().unwrap_or_else(|e| e.into_inner()).failed;
        gauges.push((
            "yolod_log_write_failures_total",
            "Log stream lines lost to write errors (disk full, ...).",
            "counter",
            String::new(),
            failed as f64,
        ));
    }
    for c in state.cameras.iter().map(|c| &c.stats) {
        let labels = format!("{{camera=\"{}\"}}", metrics::label(&c.name));
        gauges.push((
            "yolod_camera_connected",
            "1 while the camera streams.",
            "gauge",
            labels,
            c.connected.load(Ordering::SeqCst) as u8 as f64,
        ));
    }
    for camera in &state.cameras {
        let labels = format!("{{camera=\"{}\"}}", metrics::label(&camera.stats.name));
        gauges.push((
            "yolod_camera_viewers",
            "Viewers of the camera's MJPEG stream.",
            "gauge",
            labels,
            camera.viewers.load(Ordering::SeqCst) as f64,
        ));
    }
    for camera in &state.cameras {
        let labels = format!("{{camera=\"{}\"}}", metrics::label(&camera.stats.name));
        gauges.push((
            "yolod_camera_frames_encoded_total",
            "Pictures encoded for MJPEG viewers (none while nobody watches).",
            "counter",
            labels,
            camera.frames_encoded.load(Ordering::Relaxed) as f64,
        ));
    }
    if let Some(mqtt) = state.mqtt.get() {
        gauges.extend(super::metrics::mqtt(&mqtt.status()));
    }
    for m in state.registry.all() {
        let i = &m.info;
        let labels = format!(
            "{{id=\"{}\",task=\"{}\",precision=\"{}\",input_size=\"{}\",sha256=\"{}\"}}",
            metrics::label(&i.id),
            i.task.as_str(),
            i.precision,
            i.input_size,
            i.sha256
        );
        gauges.push(("yolod_model_info", "Loaded models (value is always 1).", "gauge", labels, 1.0));
    }
    Response::new(200, "text/plain; version=0.0.4", state.metrics.render(&gauges).into_bytes())
}

fn predict(state: &State, id: Option<&str>, query: &str, req: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    if state.is_stopping() {
        return Err(ApiError::ShuttingDown { retry_after: 5 });
    }
    authorize(state, &req)?;
    let model = match id {
        None => state.registry.default_model(),
        Some(id) => state.registry.get(id).ok_or_else(|| ApiError::UnknownModel(super::error::echo(id)))?,
    };
    let bytes = read_body(state, req.body_len, req.body)?;
    let parsed = body::parse(req.header("content-type"), &bytes, state.config.multipart)?;
    let query_pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let mut args = Args::from_pairs(query_pairs.iter().chain(&parsed.fields).map(|(k, v)| (k.as_str(), v.as_str())))?;
    args.params.max_detections = state.config.max_detections;
    let image = match (parsed.image, &args.url) {
        (Some(image), _) => image.to_vec(),
        (None, Some(url)) => {
            let policy = state.config.url_policy.ok_or(ApiError::UrlDisabled)?;
            fetch::fetch(url, policy).map_err(ApiError::UrlFetch)?
        }
        (None, None) => return Err(ApiError::NoImage),
    };
    drop(bytes);
    let output = run(state, &model, image, args.params)?;
    let json_start = Instant::now();
    let mut reply = if args.annotate {
        let mut picture = output.image.into_rgb().map_err(|e| ApiError::Internal(e.to_string()))?;
        crate::annotate::draw(&mut picture, &output.objects, &model.info.names);
        let jpeg = crate::annotate::to_jpeg(&picture).map_err(|e| ApiError::Internal(format!("jpeg: {e}")))?;
        Response::new(200, "image/jpeg", jpeg)
    } else {
        drop(output.image);
        let objects = wire::objects(&output.objects, &model.info.names, args.normalize, output.width, output.height);
        json(200, &Envelope { success: true, message: "Inference complete.", data: objects })
    };
    record_timings(state, &mut reply, output.timings, started, json_start);
    Ok(reply)
}
