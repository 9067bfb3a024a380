//! The DeepStack / CodeProject.AI vision API beside the HUB one, over the
//! same engine: what Frigate's `deepstack` detector, Home Assistant (through
//! `deepstack-python`), Blue Iris, Agent DVR and node-red-contrib-deepstack
//! call. Every answer under `/v1/vision/` and `/v1/status/` is DeepStack
//! JSON with a Content-Length, errors included: Frigate crashes on anything
//! else, and Blue Iris fails on chunked answers.

use std::sync::Arc;
use std::time::Instant;

use super::body;
use super::error::{ApiError, echo};
use super::http::{Request, Response};
use super::reply;
use super::state::State;
use crate::model::registry::{LIST_ID, Registry};
use crate::model::{Model, Params, Stage};
use crate::wire::{self, DeepStackAnswer, DeepStackError, DeepStackModels, UpdateAvailable};

/// `min_confidence` when a client sends none, or an empty one (DeepStack's default).
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.40;

const DETECTION: &str = "/v1/vision/detection";
const CUSTOM: &str = "/v1/vision/custom/";
const MODELS: &str = "/v1/vision/custom/list";
const UPDATE: &str = "/v1/status/updateavailable";

/// Whether `path` belongs to this API (and gets its error shape).
pub fn owns(path: &str) -> bool {
    ["/v1/vision", "/v1/status"]
        .iter()
        .any(|root| path.strip_prefix(root).is_some_and(|r| r.is_empty() || r.starts_with('/')))
}

/// The route label used in metrics, for paths this API owns.
pub fn route_label(path: &str) -> Option<&'static str> {
    match path {
        DETECTION => Some(DETECTION),
        MODELS => Some(MODELS),
        UPDATE => Some(UPDATE),
        p if custom_name(p).is_some() => Some("/v1/vision/custom/{model}"),
        p if owns(p) => Some("other"),
        _ => None,
    }
}

/// The model name of a `/v1/vision/custom/{model}` path.
fn custom_name(path: &str) -> Option<&str> {
    path.strip_prefix(CUSTOM)
        .filter(|name| !name.is_empty() && !name.contains('/') && !name.eq_ignore_ascii_case(LIST_ID))
}

pub fn handle(state: &State, req: Request) -> Response {
    let path = req.target.split_once('?').map_or(req.target, |(path, _)| path);
    let method = req.method;
    let result = match path {
        UPDATE => reply::check_method(method, "GET, HEAD")
            .map(|()| reply::json(200, &UpdateAvailable { success: true, update_available: false })),
        MODELS => reply::check_method(method, "GET, HEAD, POST").and_then(|()| models(state, req)),
        DETECTION => reply::check_method(method, "POST").and_then(|()| detect(state, None, req)),
        p => match custom_name(p) {
            Some(name) => reply::check_method(method, "POST").and_then(|()| detect(state, Some(name), req)),
            None => Err(ApiError::NoDeepStackRoute(echo(p))),
        },
    };
    result.unwrap_or_else(|e| {
        state.metrics.error(e.kind());
        if let ApiError::Internal(detail) = &e {
            log::error!("internal error on {method} {path}: {detail}");
        }
        let message = e.to_string();
        let error = DeepStackError { success: false, error: &message, duration: 0, predictions: [] };
        reply::with_error_headers(reply::json(e.deepstack_status(), &error), &e)
    })
}

/// A DeepStack request body: the picture and the text fields.
struct Form {
    image: Option<Vec<u8>>,
    fields: Vec<(String, String)>,
}

impl Form {
    /// Reads and parses the body (within the body limit, which comes first),
    /// then checks the key: the `x-api-key` header or the `api_key` field
    /// must match where keys are configured. Without keys, `api_key` is
    /// ignored (Frigate always sends an empty one).
    fn read(state: &State, req: Request) -> Result<Form, ApiError> {
        let bytes = reply::read_body(state, req.body_len, req.body)?;
        let parsed = body::parse(req.header("content-type"), &bytes, state.config.multipart);
        // The keys in force (SIGHUP re-reads the key file), as the HUB routes check.
        let keys = state.keys.read().unwrap_or_else(|e| e.into_inner());
        if !keys.is_empty() && !keys.allows(req.header("x-api-key")) {
            let field = parsed.as_ref().ok().and_then(|b| b.fields.iter().find(|(k, _)| k == "api_key"));
            if !keys.allows(field.map(|(_, v)| v.as_str())) {
                return Err(ApiError::IncorrectApiKey);
            }
        }
        let parsed = parsed?;
        Ok(Form { image: parsed.image.map(<[u8]>::to_vec), fields: parsed.fields })
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn models(state: &State, req: Request) -> Result<Response, ApiError> {
    Form::read(state, req)?;
    let all = state.registry.all();
    let models = all.iter().map(|m| m.info.id.as_str()).collect();
    Ok(reply::json(200, &DeepStackModels { success: true, models }))
}

fn detect(state: &State, name: Option<&str>, req: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    if state.is_stopping() {
        return Err(ApiError::ShuttingDown { retry_after: 5 });
    }
    let mut form = Form::read(state, req)?;
    let model = match name {
        None => state.registry.default_model(),
        Some(name) => find_model(&state.registry, name).ok_or_else(|| ApiError::UnknownModel(echo(name)))?,
    };
    let confidence = min_confidence(form.field("min_confidence"))?;
    let image = form.image.take().ok_or(ApiError::NoImage)?;
    let params = Params {
        max_detections: state.config.max_detections,
        shrink_to_image: true,
        ..Params::new(model.info.input_size, confidence, Params::DEFAULT_IOU)
    };
    let output = reply::run(state, &model, image, params)?;
    let json_start = Instant::now();
    let predictions = wire::deepstack_predictions(&output.objects, &model.info.names, output.width, output.height);
    let mut labels: Vec<&str> = Vec::new();
    for p in &predictions {
        if !labels.contains(&p.label) {
            labels.push(p.label);
        }
    }
    let message =
        if labels.is_empty() { "No objects found".to_string() } else { format!("Found {}", labels.join(", ")) };
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let answer = DeepStackAnswer {
        success: true,
        count: predictions.len(),
        predictions,
        inference_ms: ms(output.timings[Stage::Inference]),
        process_ms: ms(started.elapsed()),
        code: 200,
        message,
        duration: 0,
    };
    let mut reply = reply::json(200, &answer);
    reply::record_timings(state, &mut reply, output.timings, started, json_start);
    Ok(reply)
}

/// The model a DeepStack client names: by id, exactly or ignoring case,
/// and also without a trailing `.onnx` or `.pt` (Blue Iris and CodeProject.AI
/// users name models by their file).
fn find_model(registry: &Registry, name: &str) -> Option<Arc<Model>> {
    let stem = [".onnx", ".pt"].iter().find_map(|ext| {
        let cut = name.len().checked_sub(ext.len())?;
        (name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(ext)).then(|| &name[..cut])
    });
    [Some(name), stem].into_iter().flatten().find_map(|n| {
        registry.get(n).or_else(|| registry.all().into_iter().find(|m| m.info.id.eq_ignore_ascii_case(n)))
    })
}

/// DeepStack's `min_confidence`: a text float up to 1, empty or absent
/// meaning 0.40. Lower values than the HUB's minimum run at that minimum.
fn min_confidence(value: Option<&str>) -> Result<f32, ApiError> {
    let v = value.unwrap_or("").trim();
    if v.is_empty() {
        return Ok(DEFAULT_MIN_CONFIDENCE);
    }
    match v.parse::<f32>() {
        Ok(x) if x <= 1.0 => Ok(x.max(*Params::CONFIDENCES.start())),
        _ => Err(ApiError::InvalidField {
            field: "min_confidence".into(),
            value: echo(v),
            valid: "a number from 0 to 1; empty means 0.40".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_owns_its_two_roots_and_nothing_beside_them() {
        for p in ["/v1/vision/detection", "/v1/vision/face/recognize", "/v1/vision", "/v1/status/updateavailable"] {
            assert!(owns(p), "{p}");
        }
        for p in ["/v1/visionary", "/v1/predict", "/", "/v1/statusx"] {
            assert!(!owns(p), "{p}");
        }
    }

    #[test]
    fn custom_names_exclude_the_list_and_nested_paths() {
        assert_eq!(custom_name("/v1/vision/custom/ipcam-general"), Some("ipcam-general"));
        assert_eq!(custom_name("/v1/vision/custom/list"), None);
        assert_eq!(custom_name("/v1/vision/custom/"), None);
        assert_eq!(custom_name("/v1/vision/custom/a/b"), None);
        assert_eq!(route_label("/v1/vision/custom/x"), Some("/v1/vision/custom/{model}"));
        assert_eq!(route_label("/v1/vision/face"), Some("other"));
        assert_eq!(route_label("/v1/predict"), None);
    }

    #[test]
    fn min_confidence_is_a_text_float_up_to_one() {
        assert_eq!(min_confidence(None).unwrap(), 0.40);
        assert_eq!(min_confidence(Some("")).unwrap(), 0.40);
        assert_eq!(min_confidence(Some(" 0.6 ")).unwrap(), 0.6);
        assert_eq!(min_confidence(Some("1")).unwrap(), 1.0);
        assert_eq!(min_confidence(Some("0")).unwrap(), 0.01);
        for bad in ["abc", "2", "1.0001", "NaN", "inf"] {
            let e = min_confidence(Some(bad)).unwrap_err();
            assert_eq!(e.deepstack_status(), 400, "{bad}");
            assert!(e.to_string().contains("min_confidence"), "{e}");
        }
    }
}
