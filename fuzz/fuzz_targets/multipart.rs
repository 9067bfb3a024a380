//! Fuzzes the multipart/form-data parser: it must never panic, and its output must respect
//! the limits and borrow from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yolod::api::multipart::{Limits, Part, boundary, parse};

const LIMITS: Limits = Limits { max_parts: 16, max_field_bytes: 256 };

fn check(data: &[u8], parts: &[Part<'_>]) {
    assert!(!parts.is_empty() && parts.len() <= LIMITS.max_parts);
    let input = data.as_ptr_range();
    for part in parts {
        assert!(!part.name.is_empty());
        assert!(part.is_file() || part.data.len() <= LIMITS.max_field_bytes);
        let slice = part.data.as_ptr_range();
        assert!(input.start <= slice.start && slice.end <= input.end);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = parse(data, "fuzzboundary", LIMITS) {
        check(data, &parts);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        // Whole input as a Content-Type header; a boundary found there is also tried on the body.
        if let Some(b) = boundary(text) {
            assert!((1..=70).contains(&b.len()));
            if let Ok(parts) = parse(data, &b, LIMITS) {
                check(data, &parts);
            }
        }
    }
});
