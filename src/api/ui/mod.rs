//! The page at `/`: live cameras with their boxes, a try-it upload, the
//! models and the health numbers (README, "The page").
//!
//! - One HTML page, rendered here with the current state so that its
//!   status part reads without JavaScript, plus `/ui/app.js` (live
//!   updates, the upload) and `/ui/style.css`, all embedded.
//! - Browsers (`Accept: text/html`) get the page; other clients, and
//!   everyone with `--no-ui`, get the JSON status ([`status`]). Blue Iris
//!   only needs a 200 here.
//! - With keys configured, the page shows only a sign-in form until a key
//!   is exchanged for a session cookie ([`super::session`]); the JSON
//!   status then shows only the version and the model ids.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::error::ApiError;
use super::http::{Request, Response};
use super::reply::{json, read_body};
use super::session;
use super::state::State;
use crate::wire::Envelope;

pub const INDEX_HTML: &str = include_str!("../../../assets/ui/index.html");
pub const APP_JS: &str = include_str!("../../../assets/ui/app.js");
pub const STYLE_CSS: &str = include_str!("../../../assets/ui/style.css");

/// The page's own files may load, and nothing else: no inline script,
/// no other origin, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `/ui/app.js` or `/ui/style.css`.
pub fn asset(body: &'static str, content_type: &str) -> Response {
    Response::new(200, &format!("{content_type}; charset=utf-8"), body.as_bytes().to_vec())
        .with_header("Cache-Control", "no-cache")
        .with_header("X-Content-Type-Options", "nosniff")
}

/// Whether the request may see everything: no key configured, a key in
/// `x-api-key`, or a signed-in page.
fn signed_in(state: &State, req: &Request) -> bool {
    super::routes::authorize(state, req).is_ok()
}

/// `GET /`: the page for browsers, the JSON status for everyone else.
pub fn root(state: &State, req: &Request) -> Response {
    let wants_html = req.header("accept").is_some_and(|a| a.contains("text/html"));
    let full = signed_in(state, req);
    if state.config.ui && wants_html {
        let body = if full { dashboard(state) } else { login_form(None) };
        return page(200, &body, full && auth_on(state), full);
    }
    let message =
        "yolod is running: the HUB API at POST /v1/predict/MODEL_ID, the DeepStack API at POST /v1/vision/detection.";
    json(200, &Envelope { success: true, message, data: status(state, full) }).with_header("Vary", "Accept")
}

/// `POST /ui/login` with the form field `key`: a session cookie and back
/// to `/`, or the sign-in form again with a 401.
pub fn login(state: &State, req: Request) -> Result<Response, ApiError> {
    let body = read_body(state, req.body_len, req.body)?;
    let key = form_urlencoded::parse(&body).find(|(k, _)| k == "key").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let keys = state.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
    if keys.is_empty() {
        return Ok(see_other());
    }
    match state.sessions.open(&keys, &key).map_err(|e| ApiError::Internal(format!("session token: {e}")))? {
        Some(token) => Ok(see_other().with_header("Set-Cookie", session::set_cookie(&token))),
        None => {
            log::warn!("page sign-in refused: not a configured key");
            state.metrics.error("unauthorized");
            Ok(page(401, &login_form(Some("That key is not accepted.")), false, false))
        }
    }
}

/// `POST /ui/logout`: ends the session and removes the cookie.
pub fn logout(state: &State, req: &Request) -> Response {
    if let Some(token) = session::token_in(req.header("cookie")) {
        state.sessions.close(token);
    }
    see_other().with_header("Set-Cookie", session::clear_cookie())
}

fn see_other() -> Response {
    Response::new(303, "text/plain; charset=utf-8", b"See /\n".to_vec()).with_header("Location", "/")
}

fn auth_on(state: &State) -> bool {
    !state.keys.read().unwrap_or_else(|e| e.into_inner()).is_empty()
}

/// The whole page around `main`; `live` for a signed-in page (the
/// version line, and a reload every 10 s without JavaScript).
fn page(status: u16, main: &str, signout: bool, live: bool) -> Response {
    let signout = if signout {
        r#"<form method="post" action="/ui/logout"><button type="submit">Sign out</button></form>"#
    } else {
        ""
    };
    // Without JavaScript the status part reloads itself.
    let refresh = if live { r#"<noscript><meta http-equiv="refresh" content="10"></noscript>"# } else { "" };
    let html = INDEX_HTML
        .replace("<!--refresh-->", refresh)
        .replace("{{auth}}", if signout.is_empty() { "off" } else { "on" })
        // Signed out, not even the version or the built-in model is shown.
        .replace(
            "{{version}}",
            &if live { escape(&format!("yolod {}", crate::version::LONG.replace('\n', ", "))) } else { String::new() },
        )
        .replace("{{signout}}", signout)
        .replace("{{main}}", main);
    Response::new(status, "text/html; charset=utf-8", html.into_bytes())
        .with_header("Cache-Control", "no-store")
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("Vary", "Accept, Cookie")
}

fn login_form(error: Option<&str>) -> String {
    let error = error.map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))).unwrap_or_default();
    format!(
        r#"<section id="login" aria-labelledby="login-h">
<h2 id="login-h">Sign in</h2>
<p>This yolod asks for an API key (one of its <code>--api-key</code> or <code>--api-key-file</code> keys).</p>
{error}<form method="post" action="/ui/login">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</section>"#
    )
}

/// The JSON status: the version and the model ids for anyone; with `full`,
/// the cameras (with their current objects), the request count, the queue
/// and each stage's latency.
pub fn status(state: &State, full: bool) -> serde_json::Value {
    let models = state.registry.all();
    let ids: Vec<&str> = models.iter().map(|m| m.info.id.as_str()).collect();
    let mut data = serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "models": ids });
    if !full {
        return data;
    }
    let cameras: Vec<serde_json::Value> = state
        .cameras
        .iter()
        .map(|camera| {
            let c = &camera.stats;
            let last = camera.latest();
            let objects: Vec<serde_json::Value> = last
                .iter()
                .flat_map(|s| s.objects.iter().map(move |o| (s, o)))
                .map(|(s, o)| {
                    let name = s.model.info.names.get(o.detection.class).map(String::as_str).unwrap_or("?");
                    serde_json::json!({ "name": name, "confidence": (o.detection.confidence as f64 * 1000.0).round() / 1000.0 })
                })
                .collect();
            serde_json::json!({
                "name": c.name,
                "source": c.source,
                "state": camera_state(camera),
                "format": *c.negotiated.lock().unwrap_or_else(|e| e.into_inner()),
                "last_error": *c.last_error.lock().unwrap_or_else(|e| e.into_inner()),
                "frames_processed": c.processed.load(Ordering::SeqCst),
                "frames_dropped": c.dropped.load(Ordering::SeqCst),
                "frames_corrupt": c.corrupt.load(Ordering::SeqCst),
                "frame": last.as_ref().map(|s| s.frame),
                "viewers": camera.viewers.load(Ordering::SeqCst),
                "objects": objects,
            })
        })
        .collect();
    data["cameras"] = serde_json::Value::Array(cameras);
    data["requests"] = state.metrics.requests_total().into();
    data["queue_depth"] = state.engine.queue_depth().into();
    data["uptime_seconds"] = state.started.elapsed().as_secs().into();
    data["latency"] = serde_json::to_value(state.metrics.stage_summary()).unwrap_or_default();
    data
}

fn camera_state(camera: &crate::camera_loop::Camera) -> &'static str {
    let c = &camera.stats;
    if c.ended.load(Ordering::SeqCst) {
        "ended"
    } else if c.connected.load(Ordering::SeqCst) {
        "streaming"
    } else {
        "connecting"
    }
}

/// The signed-in page's content, from the JSON status so that the page
/// and its live updates show the same fields.
fn dashboard(state: &State) -> String {
    let status = status(state, true);
    let mut out = String::new();
    out.push_str("<section id=\"cameras\" aria-labelledby=\"cameras-h\">\n<h2 id=\"cameras-h\">Cameras</h2>\n");
    let cameras = status["cameras"].as_array().cloned().unwrap_or_default();
    if cameras.is_empty() {
        out.push_str(
            "<p>No cameras. Start yolod with <code>--camera SOURCE</code> (a /dev/video device, an http:// MJPEG \
             stream or snapshot, exec:COMMAND, or -) to watch one here.</p>\n",
        );
    }
    out.push_str("<div class=\"tiles\">\n");
    for camera in &cameras {
        camera_tile(&mut out, camera);
    }
    out.push_str("</div>\n</section>\n");
    try_it(&mut out, state);
    models_table(&mut out, state);
    health(&mut out, &status);
    out
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => escape(s),
        serde_json::Value::Null => String::new(),
        other => escape(&other.to_string()),
    }
}

fn camera_tile(out: &mut String, camera: &serde_json::Value) {
    let name = camera["name"].as_str().unwrap_or_default();
    let n = escape(name);
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("camera", name).finish();
    let _ = write!(
        out,
        r#"<article class="camera" data-camera="{n}" aria-labelledby="camera-{n}">
<h3 id="camera-{n}">{n}</h3>
<img class="live" src="/v1/stream.mjpeg?{query}&amp;annotate=true" alt="Live picture of camera {n}, with its detections drawn">
<dl class="stats">
<dt>State</dt><dd data-field="state">{state}</dd>
<dt>fps</dt><dd data-field="fps">–</dd>
<dt>Processed</dt><dd data-field="frames_processed">{processed}</dd>
<dt>Dropped</dt><dd data-field="frames_dropped">{dropped}</dd>
<dt>Format</dt><dd data-field="format">{format}</dd>
<dt>Last error</dt><dd data-field="last_error">{error}</dd>
</dl>
<h4>Objects</h4>
<ul class="objects" data-field="objects" aria-live="polite">"#,
        state = text(&camera["state"]),
        processed = text(&camera["frames_processed"]),
        dropped = text(&camera["frames_dropped"]),
        format = text(&camera["format"]),
        error = text(&camera["last_error"]),
    );
    for object in camera["objects"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "<li><span class=\"label\">{}</span> <span class=\"conf\">{:.2}</span></li>",
            text(&object["name"]),
            object["confidence"].as_f64().unwrap_or(0.0)
        );
    }
    out.push_str("</ul>\n</article>\n");
}

fn try_it(out: &mut String, state: &State) {
    let default = state.registry.default_model();
    let mut options = String::new();
    for m in state.registry.all() {
        let id = escape(&m.info.id);
        let selected = if m.info.id == default.info.id { " selected" } else { "" };
        let _ = write!(options, "<option value=\"{id}\"{selected}>{id}</option>");
    }
    let _ = write!(
        out,
        r#"<section id="try" aria-labelledby="try-h">
<h2 id="try-h">Try it</h2>
<form id="try-form" method="post" enctype="multipart/form-data" action="/v1/predict/{default_id}">
<div id="drop" class="drop" tabindex="0" aria-describedby="drop-help">
<label for="file">Picture</label>
<input id="file" name="file" type="file" accept="image/*" required>
<p id="drop-help">Choose a picture, or drop one here.</p>
</div>
<div class="knobs">
<label for="model">Model</label><select id="model" name="model">{options}</select>
<label for="size">Size</label><input id="size" name="size" type="number" min="32" max="1280" step="32" value="640">
<label for="confidence">Confidence</label><input id="confidence" name="confidence" type="number" min="0" max="1" step="0.05" value="0.25">
<label for="iou">IoU</label><input id="iou" name="iou" type="number" min="0" max="1" step="0.05" value="0.45">
</div>
<button type="submit">Detect</button>
</form>
<div id="result" hidden>
<canvas id="result-canvas" role="img" aria-label="The picture with its detections drawn"></canvas>
<h3>Objects</h3>
<ul id="result-objects" class="objects" aria-live="polite"></ul>
<h3>The same request with curl</h3>
<pre id="result-curl"></pre>
<button type="button" id="copy-curl">Copy the command</button>
<h3>The API's answer</h3>
<pre id="result-json"></pre>
</div>
<p id="result-error" class="error" role="alert" hidden></p>
</section>
"#,
        default_id = escape(&default.info.id),
    );
}

fn models_table(out: &mut String, state: &State) {
    out.push_str(
        "<section id=\"models\" aria-labelledby=\"models-h\">\n<h2 id=\"models-h\">Models</h2>\n<table>\n\
         <thead><tr><th scope=\"col\">Model</th><th scope=\"col\">Task</th><th scope=\"col\">Precision</th>\
         <th scope=\"col\">Size</th><th scope=\"col\">Classes</th></tr></thead>\n<tbody>\n",
    );
    let default = state.registry.default_model();
    for m in state.registry.all() {
        let i = &m.info;
        let precision = match &i.precision_reason {
            Some(why) => format!("{} ({why})", i.precision),
            None => i.precision.to_string(),
        };
        let classes = if i.names.len() <= 8 {
            i.names.join(", ")
        } else {
            format!("{} classes: {}, …", i.names.len(), i.names[..5].join(", "))
        };
        let default_mark = if i.id == default.info.id { " (default)" } else { "" };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}{default_mark}</th><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
            escape(&i.id),
            i.task.as_str(),
            escape(&precision),
            i.input_size,
            if i.any_size { ", any" } else { "" },
            escape(&classes)
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn health(out: &mut String, status: &serde_json::Value) {
    let _ = write!(
        out,
        "<section id=\"health\" aria-labelledby=\"health-h\">\n<h2 id=\"health-h\">Health</h2>\n<dl class=\"stats\">\
         <dt>Requests</dt><dd data-field=\"requests\">{}</dd>\
         <dt>Queue</dt><dd data-field=\"queue_depth\">{}</dd>\
         <dt>Up</dt><dd data-field=\"uptime_seconds\">{} s</dd></dl>\n<table id=\"latency\">\n\
         <caption>Prediction latency by stage (median estimated from the /metrics histogram)</caption>\n\
         <thead><tr><th scope=\"col\">Stage</th><th scope=\"col\">p50 ms</th><th scope=\"col\">mean ms</th>\
         <th scope=\"col\">count</th></tr></thead>\n<tbody>\n",
        text(&status["requests"]),
        text(&status["queue_depth"]),
        text(&status["uptime_seconds"]),
    );
    for stage in status["latency"].as_array().into_iter().flatten() {
        let ms = |v: &serde_json::Value| v.as_f64().map(|x| format!("{x:.1}")).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "<tr data-stage=\"{0}\"><th scope=\"row\">{0}</th><td>{1}</td><td>{2}</td><td>{3}</td></tr>",
            text(&stage["stage"]),
            ms(&stage["p50_ms"]),
            ms(&stage["mean_ms"]),
            text(&stage["count"])
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// Text made safe for HTML content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
