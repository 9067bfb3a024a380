//! Fuzzes the H.264 path of RTSP cameras: bytes a camera (or anyone who can
//! reach the RTSP port it streams to) controls, through OpenH264 and our
//! copy of its planes. The first byte picks how the rest is cut into
//! access units. Nothing may crash; every picture that comes out must be a
//! whole I420 frame of the size it claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yolod::camera::h264::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else { return };
    let step = usize::from(step).max(1) * 16;
    let mut decoder = Decoder::new().expect("a decoder");
    for unit in rest.chunks(step) {
        if let Ok(Some(frame)) = decoder.decode(unit) {
            let (w, h, s) = (frame.width as usize, frame.height as usize, frame.stride as usize);
            assert!(w > 0 && h > 0 && s >= w);
            assert_eq!(frame.data.len(), s * h + s * h.div_ceil(2));
            assert!(frame.raw().unwrap().is_some());
        }
    }
});
