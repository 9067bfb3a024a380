//! Fuzzes image decoding (every format we accept), a camera JPEG's decode
//! at a reduced size (its EXIF scan and jpeg-decoder's scaled decode), and
//! the letterbox that follows each, under tight pixel limits so bombs are
//! refused, not allocated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yolod::vision::decode::{DecodeLimits, decode, decode_reduced};
use yolod::vision::letterbox::{Letterbox, Source};

fn letterbox(picture: &dyn Source) {
    let (w, h) = picture.size();
    let lb = Letterbox::new(w, h, 64, 64);
    let mut out = vec![0f32; 3 * 64 * 64];
    picture.letterbox(&lb, &mut out);
    assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
}

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits { max_pixels: 1 << 20, max_side: 4096 };
    if let Ok(img) = decode(data, limits) {
        assert_eq!(img.data.len(), img.width as usize * img.height as usize * 3);
        letterbox(&img);
    }
    let scaled = |w: u32, h: u32| {
        let lb = Letterbox::new(w, h, 64, 64);
        (lb.scaled_w, lb.scaled_h)
    };
    if let Ok(Some(reduced)) = decode_reduced(data, limits, scaled) {
        assert!(reduced.rgb.width <= reduced.width && reduced.rgb.height <= reduced.height);
        letterbox(&reduced);
    }
});
