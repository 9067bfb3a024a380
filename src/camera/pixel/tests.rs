use super::*;

/// Reference BT.601 limited-range conversion in floating point.
fn reference(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (y as f64 - 16.0, cb as f64 - 128.0, cr as f64 - 128.0);
    let c = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    [c(1.164 * y + 1.596 * cr), c(1.164 * y - 0.392 * cb - 0.813 * cr), c(1.164 * y + 2.017 * cb)]
}

#[test]
fn fixed_point_matches_the_float_reference_within_one_level() {
    for y in (0..=255).step_by(5) {
        for cb in (0..=255).step_by(15) {
            for cr in (0..=255).step_by(15) {
                let (got, want) = (ycbcr(y, cb, cr), reference(y, cb, cr));
                for i in 0..3 {
                    assert!((got[i] as i32 - want[i] as i32).abs() <= 1, "{y},{cb},{cr}: {got:?} vs {want:?}");
                }
            }
        }
    }
}

/// The one-pass letterbox of a raw frame against converting it to RGB
/// first and letterboxing that, for every format, padded rows and odd
/// sizes, down- and upscaled: they differ by the RGB8 rounding and the
/// clamp of out-of-gamut blends, a few levels at most.
#[test]
fn one_pass_letterbox_matches_convert_then_letterbox() {
    let mut seed = 0x2545_f491_u32;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    // A smooth picture with noise on it, as a camera sends: the blend of
    // pixel pairs stays in gamut where neighbours are alike.
    for (format, width, height, stride, network) in [
        (PixelFormat::Yuyv, 64, 48, 64 * 2 + 8, 32),
        (PixelFormat::Yuyv, 33, 20, 66, 64),
        (PixelFormat::Nv12, 64, 48, 72, 32),
        (PixelFormat::Nv12, 31, 17, 32, 64),
        (PixelFormat::I420, 64, 48, 64, 32),
        (PixelFormat::I420, 30, 21, 64, 64),
        (PixelFormat::Rgb24, 40, 30, 40 * 3 + 4, 32),
    ] {
        let len = match format {
            PixelFormat::I420 => i420_frame_len(width, height, stride),
            PixelFormat::Nv12 => stride * (height + height.div_ceil(2)),
            _ => stride * height,
        };
        let data: Vec<u8> = (0..len).map(|i| (96 + (i % 61) as u32 + noise() % 8) as u8).collect();
        let mut rgb = Vec::new();
        match format {
            PixelFormat::Yuyv => yuyv_to_rgb(&data, width, height, stride, &mut rgb),
            PixelFormat::Nv12 => nv12_to_rgb(&data, width, height, stride, &mut rgb),
            PixelFormat::I420 => i420_to_rgb(&data, width, height, stride, &mut rgb),
            _ => rgb24_to_rgb(&data, width, height, stride, &mut rgb),
        }
        .unwrap();
        let lb = Letterbox::new(width as u32, height as u32, network, network);
        let n = (3 * network * network) as usize;
        let (mut want, mut got) = (vec![0.0; n], vec![0.0; n]);
        lb.fill(&rgb, &mut want);
        RawFrame::new(format, &data, width, height, stride).unwrap().unwrap().letterbox(&lb, &mut got);
        let worst = want.iter().zip(&got).map(|(a, b)| ((a - b) * 255.0).abs()).fold(0.0, f32::max);
        assert!(worst <= 1.5, "{format:?} {width}x{height}: {worst} levels apart");
    }
    let short = RawFrame::new(PixelFormat::Nv12, &[0; 10], 4, 4, 4);
    assert!(short.is_err(), "a short frame is refused before it is read");
}

#[test]
fn known_colours_from_yuyv() {
    // Black, white, and BT.601 red (Y=81, Cb=90, Cr=240) and blue (41, 240, 110).
    let frame = [16, 128, 235, 128, 81, 90, 81, 240, 41, 240, 41, 110];
    let mut out = Vec::new();
    yuyv_to_rgb(&frame, 6, 1, 12, &mut out).unwrap();
    assert_eq!(&out[0..3], &[0, 0, 0]);
    assert_eq!(&out[3..6], &[255, 255, 255]);
    assert!(out[6] > 250 && out[7] < 5 && out[8] < 5, "red {:?}", &out[6..9]);
    assert!(out[15] < 5 && out[16] < 5 && out[17] > 250, "blue {:?}", &out[15..18]);
}

#[test]
fn yuyv_honours_the_stride() {
    // 2x2 pixels, each row padded to 8 bytes with garbage.
    let frame = [16, 128, 16, 128, 9, 9, 9, 9, 235, 128, 235, 128, 9, 9, 9, 9];
    let mut out = Vec::new();
    yuyv_to_rgb(&frame, 2, 2, 8, &mut out).unwrap();
    assert_eq!(out, vec![0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255]);
}

#[test]
fn i420_skips_row_padding_and_reads_each_chroma_plane() {
    // 2x2 picture, rows padded to 4 bytes (chroma rows to 2): grey, with
    // Cb high (blue) and Cr low in the one chroma sample.
    let data = [16, 235, 9, 9, 81, 145, 9, 9, 240, 9, 16, 9];
    assert_eq!(i420_frame_len(2, 2, 4), data.len());
    let mut out = Vec::new();
    i420_to_rgb(&data, 2, 2, 4, &mut out).unwrap();
    let expected: Vec<u8> = [16u8, 235, 81, 145].iter().flat_map(|&y| ycbcr(y, 240, 16)).collect();
    assert_eq!(out, expected);
    assert!(i420_to_rgb(&data[..11], 2, 2, 4, &mut out).is_err());
}

#[test]
fn nv12_shares_chroma_between_2x2_blocks() {
    // 4x2 luma, stride 4, then one chroma row: (Cb, Cr) = red's, then blue's.
    let frame = [81, 81, 41, 41, 81, 81, 41, 41, 90, 240, 240, 110];
    let mut out = Vec::new();
    nv12_to_rgb(&frame, 4, 2, 4, &mut out).unwrap();
    for px in [0, 1, 4, 5] {
        assert_eq!(out[px * 3..px * 3 + 3], reference(81, 90, 240), "pixel {px}");
    }
    for px in [2, 3, 6, 7] {
        assert_eq!(out[px * 3..px * 3 + 3], reference(41, 240, 110), "pixel {px}");
    }
}

#[test]
fn rgb24_drops_row_padding_and_short_frames_are_refused() {
    let frame = [1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0];
    let mut out = Vec::new();
    rgb24_to_rgb(&frame, 2, 2, 8, &mut out).unwrap();
    assert_eq!(out, (1..=12).collect::<Vec<u8>>());
    assert!(rgb24_to_rgb(&frame[..10], 2, 2, 8, &mut out).is_err());
    assert!(yuyv_to_rgb(&[0; 7], 2, 2, 4, &mut out).is_err());
    assert!(nv12_to_rgb(&[0; 5], 2, 2, 2, &mut out).is_err());
}

#[test]
fn formats_parse_from_fourcc_and_flags() {
    assert_eq!(PixelFormat::from_fourcc(b"JPEG"), Some(PixelFormat::Mjpeg));
    use clap::ValueEnum;
    let parse = |s| FormatChoice::from_str(s, true).ok().map(FormatChoice::pixel_format);
    assert_eq!(parse("auto"), Some(None));
    assert_eq!(parse("yuyv"), Some(Some(PixelFormat::Yuyv)));
    assert_eq!(parse("RGB3"), Some(Some(PixelFormat::Rgb24)));
    assert_eq!(parse("rgb24"), Some(Some(PixelFormat::Rgb24)));
    assert_eq!(parse("jpeg"), Some(Some(PixelFormat::Mjpeg)));
    assert_eq!(parse("i420"), Some(Some(PixelFormat::I420)));
    assert_eq!(parse("YU12"), Some(Some(PixelFormat::I420)));
    assert_eq!(parse("H264"), None);
}
