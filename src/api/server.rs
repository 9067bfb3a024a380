//! The API on the connection layer (`http`): each request goes to
//! `routes::handle` (a panic becomes a 500), each response gets its CORS
//! headers and is counted. Shutdown refuses new work, drains what is in
//! flight (bounded), then stops listening.

use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::cors;
use super::error::ApiError;
use super::http;
use super::routes;
use super::state::State;
use crate::engine::panic_message;

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
        for camera in &self.state.cameras {
            camera.end_streams();
        }
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
        let target = request.target;
        let path = target.split('?').next().unwrap_or("");
        let route = routes::route_label(path);
        let origin = request.header("origin").map(String::from);
        let mut response = guarded(&format!("{} {path}", request.method), || routes::handle(state, request));
        if response.status == 500 {
            state.metrics.error("internal");
        }
        state.metrics.request(route, response.status);
        finish(state, &mut response, origin.as_deref());
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
        let mut response = routes::error(&e);
        finish(&self.0, &mut response, None);
        response.close = true;
        response
    }

    fn light(&self, method: &str, target: &str) -> bool {
        matches!(method, "GET" | "HEAD")
            && matches!(target.split('?').next(), Some("/healthz" | "/readyz" | "/metrics"))
    }
}

/// What every answer gets on its way out: CORS headers for an allowed
/// origin, and a closed connection after a refused body.
fn finish(state: &State, response: &mut http::Response, origin: Option<&str>) {
    if response.status != 204 {
        if let Some(origin) = cors::allowed_origin(&state.config.cors_origins, origin) {
            response.headers.push(("Access-Control-Allow-Origin".into(), origin));
            response.headers.push(("Access-Control-Expose-Headers".into(), cors::EXPOSE_HEADERS.into()));
            response.headers.push(("Vary".into(), "Origin".into()));
        }
    }
    // The unread rest of a refused body would otherwise be taken for the next request.
    response.close |= matches!(response.status, 408 | 413);
}

/// Runs a handler; a panic becomes a 500 JSON answer (logged with `context`)
/// and the calling thread lives on to serve the next request.
pub fn guarded(context: &str, handler: impl FnOnce() -> http::Response) -> http::Response {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|panic| {
        log::error!("handler panicked on {context}: {}", panic_message(&panic));
        routes::error(&ApiError::Internal(String::new()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_becomes_a_500_json_answer() {
        let reply = guarded("test", || panic!("boom"));
        assert_eq!(reply.status, 500);
        assert_eq!(reply.headers[0], ("Content-Type".to_string(), "application/json".to_string()));
        let http::Body::Full(body) = reply.body else { panic!("a streamed error") };
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["success"], false);
        assert!(body["message"].as_str().unwrap().starts_with("Internal error"));
        let fine = guarded("test", || crate::api::reply::json(200, &serde_json::json!({})));
        assert_eq!(fine.status, 200);
    }
}
