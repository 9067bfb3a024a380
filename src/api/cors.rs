//! CORS, off unless the operator names origins (`--cors-origin`): whether a
//! browser page from an origin may read an answer, and the preflight reply.
//! Without it browsers keep other sites' pages from reading the API, which
//! is the safe default for a device on a LAN.

/// Methods and request headers a preflight allows.
pub const ALLOW_METHODS: &str = "GET, HEAD, POST";
pub const ALLOW_HEADERS: &str = "content-type, x-api-key";
/// Response headers a page may read besides the simple ones.
pub const EXPOSE_HEADERS: &str = "Server-Timing, Retry-After";
/// Seconds a browser may cache a preflight answer.
pub const MAX_AGE: &str = "600";

/// The `Access-Control-Allow-Origin` value for a request from `origin`,
/// or `None` when CORS is off, the request has no origin, or it is not allowed.
pub fn allowed_origin(allowed: &[String], origin: Option<&str>) -> Option<String> {
    let origin = origin?.trim();
    if allowed.iter().any(|a| a == "*") {
        return Some("*".into());
    }
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin.trim_end_matches('/'))).then(|| origin.to_string())
}

/// The headers that answer a preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) from an allowed origin.
pub fn preflight_headers(origin: String) -> Vec<(&'static str, String)> {
    vec![
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", ALLOW_METHODS.into()),
        ("Access-Control-Allow-Headers", ALLOW_HEADERS.into()),
        ("Access-Control-Max-Age", MAX_AGE.into()),
        ("Vary", "Origin".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn off_by_default_and_without_an_origin() {
        assert_eq!(allowed_origin(&[], Some("http://a.example")), None);
        assert_eq!(allowed_origin(&list(&["http://a.example"]), None), None);
    }

    #[test]
    fn only_listed_origins_are_echoed() {
        let allowed = list(&["http://a.example", "https://pi.local:3000"]);
        assert_eq!(allowed_origin(&allowed, Some("http://a.example")).as_deref(), Some("http://a.example"));
        assert_eq!(allowed_origin(&allowed, Some("https://PI.local:3000")).as_deref(), Some("https://PI.local:3000"));
        assert_eq!(allowed_origin(&allowed, Some("http://evil.example")), None);
        // A prefix is not a match.
        assert_eq!(allowed_origin(&allowed, Some("http://a.example.evil")), None);
    }

    #[test]
    fn star_allows_any_origin_as_star() {
        assert_eq!(allowed_origin(&list(&["*"]), Some("http://x")).as_deref(), Some("*"));
    }
}
