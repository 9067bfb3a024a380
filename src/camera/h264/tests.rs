use super::*;

/// The fixture's NAL units, each with its start code (Annex B).
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    openh264::nal_units(stream).collect()
}

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/video/bus-160.h264")).unwrap()
}

fn luma(frame: &Frame) -> Vec<u8> {
    let s = frame.stride as usize;
    (0..frame.height as usize).flat_map(|r| frame.data[r * s..r * s + frame.width as usize].to_vec()).collect()
}

#[test]
fn a_camera_stream_decodes_to_whole_i420_frames() {
    let stream = fixture();
    let mut decoder = Decoder::new().unwrap();
    let mut frames = Vec::new();
    for nal in nal_units(&stream) {
        if let Some(frame) = decoder.decode(nal).unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 5, "one picture per frame, none held back");
    for frame in &frames {
        assert_eq!((frame.width, frame.height, frame.stride), (160, 214, 160));
        assert_eq!(frame.format, PixelFormat::I420);
        assert_eq!(frame.data.len(), 160 * 214 + 2 * 80 * 107);
        // The raw-frame reader takes it as it is.
        assert!(frame.raw().unwrap().is_some());
    }
    // A real picture, not a flat grey one: the bus photo's luma spreads wide.
    let first = luma(&frames[0]);
    let mean = first.iter().map(|&v| f64::from(v)).sum::<f64>() / first.len() as f64;
    let spread = (first.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / first.len() as f64).sqrt();
    assert!(spread > 30.0, "luma spread {spread}");
    // A still picture stays the same across key and predicted frames.
    let last = luma(&frames[4]);
    let diff = first.iter().zip(&last).map(|(&a, &b)| f64::from(a.abs_diff(b))).sum::<f64>() / first.len() as f64;
    assert!(diff < 3.0, "mean difference {diff}");
}

#[test]
fn garbage_is_an_error_or_nothing_and_the_next_key_frame_decodes() {
    let mut decoder = Decoder::new().unwrap();
    let mut noise = vec![0u8, 0, 0, 1, 0x65];
    noise.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    for _ in 0..3 {
        assert!(!matches!(decoder.decode(&noise), Ok(Some(_))), "noise decoded to a picture");
    }
    let stream = fixture();
    let decoded = nal_units(&stream).into_iter().filter_map(|nal| decoder.decode(nal).ok().flatten()).count();
    assert!(decoded >= 4, "{decoded} frames after the noise");
}

#[test]
fn planes_with_their_own_strides_pack_to_an_even_width() {
    // 3x3: luma rows of 3 in a stride of 8, chroma 2x2 in a stride of 4.
    let y: Vec<u8> = (0..24).collect();
    let u: Vec<u8> = (100..108).collect();
    let v: Vec<u8> = (200..208).collect();
    let frame = to_i420(3, 3, (&y, 8), (&u, 4), (&v, 4));
    assert_eq!((frame.width, frame.height, frame.stride), (3, 3, 4));
    #[rustfmt::skip]
    let want = [
        0, 1, 2, 0, 8, 9, 10, 0, 16, 17, 18, 0,
        100, 101, 104, 105,
        200, 201, 204, 205,
    ];
    assert_eq!(frame.data, want);
    assert!(frame.raw().unwrap().is_some());
}
