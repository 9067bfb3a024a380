//! Fuzzes what a camera stream source parses: the JPEG splitter (fed in
//! pieces whose size the first byte picks) and the HTTP client's response
//! head and chunked framing. Nothing may panic; every picture must be whole
//! (SOI first, EOI last) and within the cap, and the splitter must not hold
//! much more than one picture's worth of bytes.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use yolod::camera::http::{Dechunk, parse_head};
use yolod::camera::mjpeg::{Item, Splitter};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut splitter = Splitter::new(MAX);
    let mut check = |item: Item| {
        if let Item::Picture(p) = item {
            assert!(p.len() >= 4 && p.len() <= MAX);
            assert_eq!(&p[..2], [0xFF, 0xD8]);
            assert_eq!(&p[p.len() - 2..], [0xFF, 0xD9]);
        }
    };
    for piece in rest.chunks(step) {
        splitter.feed(piece);
        while let Some(item) = splitter.next_item() {
            check(item);
        }
        assert!(splitter.buffered() <= MAX + step + 4, "{} buffered", splitter.buffered());
    }
    if let Some(item) = splitter.finish() {
        check(item);
    }

    // The same bytes as a response: a head, then a chunked body.
    if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let _ = parse_head(&rest[..end + 4]);
        let mut body = Vec::new();
        let _ = Dechunk { inner: &rest[end + 4..], left: 0, done: false }.take(1 << 20).read_to_end(&mut body);
        assert!(body.len() <= rest.len());
    }
});
