//! Fuzzes the connection layer: the bytes a client sends on one connection
//! (heads, bodies of any framing, pipelined requests) replayed through the
//! request loop. Asserts no panic, that every answer is a well-formed
//! response, and that the output stays in proportion to the input.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use yolod::api::http::{Limits, replay};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_head: 2048, read_timeout: Duration::from_secs(5), max_connections: 1, handler_slots: 1 };
    let out = replay(data, limits);
    assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 "), "{:?}", String::from_utf8_lossy(&out));
    // The shortest request is "GET / HTTP/1.1\n\n" (16 bytes); its answer
    // is about 130 bytes.
    assert!(out.len() <= 16 * data.len() + 1024, "{} bytes out for {} in", out.len(), data.len());
});
