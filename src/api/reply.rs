//! What the HUB routes and the DeepStack routes share: JSON answers, error
//! headers, method checks, reading a body within its limits, and running an
//! image on the shared engine with its timings recorded.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::ApiError;
use super::http::Response;
use super::state::State;
use crate::engine::{Busy, Input, Job, JobError, Output};
use crate::model::{Model, Params, Stage, Timings};
use crate::wire;

/// A JSON answer.
pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Response {
    Response::new(status, "application/json", wire::to_vec(value))
}

/// Adds the headers an error calls for (`Retry-After`, `Allow`).
pub fn with_error_headers(mut response: Response, e: &ApiError) -> Response {
    if let Some(secs) = e.retry_after() {
        response = response.with_header("Retry-After", secs.to_string());
    }
    if let ApiError::MethodNotAllowed { allowed, .. } = e {
        response = response.with_header("Allow", *allowed);
    }
    response
}

/// `Ok` when `method` is one of `allowed` (as the `Allow` header lists them).
pub fn check_method(method: &str, allowed: &'static str) -> Result<(), ApiError> {
    if allowed.split(", ").any(|m| m == method) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { method: method.to_string(), allowed })
    }
}

/// Runs `image` through `model` on the shared engine.
pub fn run(state: &State, model: &Arc<Model>, image: Vec<u8>, params: Params) -> Result<Output, ApiError> {
    let job = Job { model: model.clone(), input: Input::Encoded(image), params };
    let pending = state.engine.try_submit(job).map_err(|Busy| ApiError::Busy { retry_after: 1 })?;
    pending.recv().map_err(|_| ApiError::Internal("inference worker dropped the job".into()))?.map_err(|e| match e {
        JobError::Decode(d) => ApiError::Image(d),
        JobError::SizeBudget(b) => ApiError::SizeBudget { retry_after: b.retry_after },
        JobError::Failed(detail) => ApiError::Internal(detail),
        JobError::ShortFrame(e) => ApiError::Internal(e.to_string()),
    })
}

/// Counts a prediction's stages in the metrics and names them in a
/// `Server-Timing` header (the JSON's time goes with postprocess).
pub fn record_timings(state: &State, response: &mut Response, t: Timings, started: Instant, json_start: Instant) {
    state.metrics.stages(&t, started.elapsed());
    let mut t = t;
    t[Stage::Postprocess] += json_start.elapsed();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let timing = t.iter().map(|(stage, d)| format!("{};dur={}", stage.name(), ms(d))).collect::<Vec<_>>().join(", ");
    response.headers.push(("Server-Timing".into(), timing));
}

/// Reads the body, refusing before reading when the declared length is over
/// the limit, and stopping as soon as an undeclared (chunked) one passes it.
pub fn read_body(state: &State, declared: Option<u64>, body: &mut dyn Read) -> Result<Vec<u8>, ApiError> {
    let declared = declared.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let limit = state.config.max_body;
    if declared.is_some_and(|n| n as u64 > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    let timeout = state.config.body_timeout;
    let mut body = Deadline { inner: body, deadline: Instant::now() + timeout };
    (&mut body).take(limit + 1).read_to_end(&mut bytes).map_err(|e| match e.kind() {
        // The deadline, or the socket's idle timeout (SO_RCVTIMEO reports EAGAIN).
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            ApiError::RequestTimeout { secs: timeout.as_secs().max(1) }
        }
        _ => ApiError::BodyRead(e.to_string()),
    })?;
    if bytes.len() as u64 > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(bytes)
}

/// A reader that fails with `TimedOut` once `deadline` has passed. Each read
/// on the socket is itself bounded by the idle timeout, so a trickling client
/// is cut off at most one idle timeout after the deadline.
struct Deadline<'a> {
    inner: &'a mut dyn Read,
    deadline: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() >= self.deadline {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request body deadline passed"));
        }
        self.inner.read(buf)
    }
}
