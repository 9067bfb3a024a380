//! Request errors: every way a request can fail, mapped to its HTTP status
//! and a message that says what to fix, in one exhaustive match.

use super::multipart::MultipartError;
use crate::vision::decode::DecodeError;

/// Why a request was not answered with detections.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Neither an image nor a URL was sent.
    #[error("An image file or URL must be submitted.")]
    NoImage,
    /// An argument is out of range or unparsable.
    #[error("Invalid '{field}': {value} ({valid}).")]
    InvalidField { field: String, value: String, valid: std::borrow::Cow<'static, str> },
    /// The uploaded bytes are not a decodable image.
    #[error("Invalid image: {0}.")]
    Image(#[from] DecodeError),
    /// The multipart body is malformed.
    #[error("Invalid multipart body: {0}.")]
    Multipart(#[from] MultipartError),
    /// A body that is not an image, form or multipart.
    #[error(
        "Unsupported Content-Type '{0}': send multipart/form-data with an 'image' file, a raw image body (Content-Type: image/jpeg, image/png, ...), or application/x-www-form-urlencoded with 'url'."
    )]
    UnsupportedMediaType(String),
    /// The body is over the configured size limit.
    #[error(
        "Request body is over the limit of {limit} bytes; send a smaller image (the operator sets the limit with --max-body)."
    )]
    PayloadTooLarge { limit: u64 },
    /// The body could not be read (client went away or timed out).
    #[error("The request body could not be read: {0}.")]
    BodyRead(String),
    /// The body did not arrive within the body timeout (a slow or stalled client).
    #[error(
        "The request body did not arrive within {secs} s; the connection is closed (the operator sets this with --body-timeout)."
    )]
    RequestTimeout { secs: u64 },
    /// The request head did not arrive whole within the read timeout.
    #[error(
        "The request head did not arrive within {secs} s; the connection is closed (the operator sets this with --read-timeout)."
    )]
    HeadTimeout { secs: u64 },
    /// The request head is not valid HTTP/1.1, or its framing is ambiguous.
    #[error("Bad request: {0}.")]
    BadRequest(String),
    /// The request line and headers are over the limit.
    #[error(
        "Request headers are over the limit of {limit} bytes or 64 headers (the operator sets the size with --max-header)."
    )]
    HeaderTooLarge { limit: usize },
    /// Every connection slot is taken.
    #[error("Server busy: too many open connections. Retry after {retry_after} s.")]
    TooManyConnections { retry_after: u32 },
    /// URL input is off on this server.
    #[error(
        "URL input is disabled on this server: upload the image instead (the operator can enable it with --allow-url)."
    )]
    UrlDisabled,
    /// The URL could not be fetched or is not allowed.
    #[error("Could not fetch 'url': {0}.")]
    UrlFetch(String),
    /// No or wrong `x-api-key`.
    #[error("Invalid or missing API key: send it in the 'x-api-key' header.")]
    Unauthorized,
    /// No or wrong key on a DeepStack route (form field `api_key` or
    /// `x-api-key`), in DeepStack's own words.
    #[error("Incorrect api key")]
    IncorrectApiKey,
    /// MODEL_ID names no loaded model.
    #[error("Model '{0}' not found: GET /v1/models lists the models this server has.")]
    UnknownModel(String),
    /// No such route.
    #[error(
        "Not found: {0}. Routes: POST /v1/predict[/MODEL_ID], GET /v1/models, /v1/stream, /v1/snapshot, /healthz, /readyz, /metrics."
    )]
    NotFound(String),
    /// No such DeepStack route (face, scene and the like are not served).
    #[error(
        "Not found: {0}. DeepStack routes here: POST /v1/vision/detection, POST /v1/vision/custom/MODEL, GET /v1/vision/custom/list; face and scene recognition are not served."
    )]
    NoDeepStackRoute(String),
    /// A known route asked with the wrong method.
    #[error("Method {method} is not allowed here; use {allowed}.")]
    MethodNotAllowed { method: String, allowed: &'static str },
    /// The inference queue is full.
    #[error("Server busy: the inference queue is full. Retry after {retry_after} s.")]
    Busy { retry_after: u32 },
    /// The size needs a new plan and the model's ration of new plans per minute is used up.
    #[error(
        "Server busy: {} new input sizes were optimised for this model in the last minute, the most it allows. Use a size already in use (or none), or retry after {retry_after} s.",
        crate::model::plans::BUILDS_PER_MINUTE
    )]
    SizeBudget { retry_after: u32 },
    /// The server is stopping.
    #[error("Server is shutting down. Retry after {retry_after} s.")]
    ShuttingDown { retry_after: u32 },
    /// A bug; details go to the log, not the client.
    #[error("Internal error: the request could not be processed (a bug in yolod; the server log has details).")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NoImage
            | ApiError::InvalidField { .. }
            | ApiError::Multipart(_)
            | ApiError::BodyRead(_)
            | ApiError::BadRequest(_)
            | ApiError::UrlDisabled
            | ApiError::UrlFetch(_) => 400,
            ApiError::Image(DecodeError::UnsupportedFormat) => 415,
            ApiError::Image(_) => 400,
            ApiError::Unauthorized | ApiError::IncorrectApiKey => 401,
            ApiError::UnknownModel(_) | ApiError::NotFound(_) | ApiError::NoDeepStackRoute(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::RequestTimeout { .. } | ApiError::HeadTimeout { .. } => 408,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::HeaderTooLarge { .. } => 431,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Busy { .. }
            | ApiError::SizeBudget { .. }
            | ApiError::ShuttingDown { .. }
            | ApiError::TooManyConnections { .. } => 503,
            ApiError::Internal(_) => 500,
        }
    }

    /// The status on the DeepStack routes: DeepStack answers 400 to any
    /// image it cannot read, whatever the reason; the rest is the same.
    pub fn deepstack_status(&self) -> u16 {
        match self {
            ApiError::Image(_) | ApiError::UnsupportedMediaType(_) => 400,
            e => e.status(),
        }
    }

    /// Seconds for the `Retry-After` header, for 503s.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Busy { retry_after }
            | ApiError::SizeBudget { retry_after }
            | ApiError::ShuttingDown { retry_after }
            | ApiError::TooManyConnections { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::NoImage => "no_image",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::Image(_) => "bad_image",
            ApiError::Multipart(_) => "bad_multipart",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BodyRead(_) => "body_read",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::HeadTimeout { .. } => "head_timeout",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::HeaderTooLarge { .. } => "header_too_large",
            ApiError::TooManyConnections { .. } => "too_many_connections",
            ApiError::UrlDisabled => "url_disabled",
            ApiError::UrlFetch(_) => "url_fetch",
            ApiError::Unauthorized | ApiError::IncorrectApiKey => "unauthorized",
            ApiError::UnknownModel(_) => "unknown_model",
            ApiError::NotFound(_) | ApiError::NoDeepStackRoute(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Busy { .. } => "busy",
            ApiError::SizeBudget { .. } => "size_budget",
            ApiError::ShuttingDown { .. } => "shutting_down",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// Echoes a client value back safely: at most 64 characters, control characters escaped.
pub fn echo(value: &str) -> String {
    let mut out: String = value.chars().take(64).flat_map(char::escape_debug).collect();
    if value.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_field_message_names_field_value_and_range() {
        let e = ApiError::InvalidField {
            field: "size".into(),
            value: "2000".into(),
            valid: "valid range is 32 - 1280".into(),
        };
        assert_eq!(e.to_string(), "Invalid 'size': 2000 (valid range is 32 - 1280).");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn unsupported_image_format_is_415_but_corrupt_is_400() {
        assert_eq!(ApiError::Image(DecodeError::UnsupportedFormat).status(), 415);
        assert_eq!(ApiError::Image(DecodeError::Corrupt("x".into())).status(), 400);
    }

    #[test]
    fn echo_truncates_and_escapes() {
        assert_eq!(echo("a\nb"), "a\\nb");
        assert_eq!(echo(&"x".repeat(100)).len(), 67);
    }
}
