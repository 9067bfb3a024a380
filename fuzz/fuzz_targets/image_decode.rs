//! Fuzzes image decoding (every format we accept) and the letterbox that
//! follows, under tight pixel limits so bombs are refused, not allocated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yolod::vision::decode::{DecodeLimits, decode};
use yolod::vision::letterbox::Letterbox;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits { max_pixels: 1 << 20, max_side: 4096 };
    if let Ok(img) = decode(data, limits) {
        assert_eq!(img.data.len(), img.width as usize * img.height as usize * 3);
        let lb = Letterbox::new(img.width, img.height, 64, 64);
        let mut out = vec![0f32; 3 * 64 * 64];
        lb.fill(&img.data, &mut out);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
