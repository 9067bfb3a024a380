//! Fuzzes what a client controls before inference: the Content-Type, the
//! body and the query string, through body parsing and argument validation;
//! and the first line as a Cookie header, through the session cookie's parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yolod::api::args::Args;
use yolod::api::body;
use yolod::api::multipart::Limits;

fuzz_target!(|data: &[u8]| {
    // First line: Content-Type; second: query string; rest: body.
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let content_type = parts.next().and_then(|c| std::str::from_utf8(c).ok());
    let query = parts.next().unwrap_or_default();
    let payload = parts.next().unwrap_or_default();
    // The first line read as a Cookie header too: the page's session token.
    if let Some(token) = yolod::api::session::token_in(content_type) {
        assert!(!token.contains(';') && content_type.is_some_and(|c| c.contains(token)));
    }
    let limits = Limits { max_parts: 16, max_field_bytes: 4096 };
    if let Ok(parsed) = body::parse(content_type, payload, limits) {
        let query_pairs: Vec<(String, String)> = form_urlencoded::parse(query).into_owned().collect();
        let pairs = query_pairs.iter().chain(&parsed.fields).map(|(k, v)| (k.as_str(), v.as_str()));
        if let Ok(args) = Args::from_pairs(pairs) {
            assert!((32..=1280).contains(&args.params.size));
            assert!((0.01..=1.0).contains(&args.params.confidence));
            assert!((0.0..=0.95).contains(&args.params.iou));
        }
    }
});
