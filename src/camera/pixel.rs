//! Camera pixel formats to packed RGB8: YUYV (4:2:2), NV12 and I420 (4:2:0)
//! with BT.601 limited-range coefficients (what UVC webcams send), and RGB24
//! with a row stride. Pure code; MJPEG goes through the image decoder instead.

/// A frame layout the camera negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Mjpeg,
    Yuyv,
    Nv12,
    /// Planar 4:2:0: Y, then Cb, then Cr at half resolution (V4L2 `YU12`;
    /// what `rpicam-vid --codec yuv420` writes).
    I420,
    Rgb24,
}

impl PixelFormat {
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::I420 => *b"YU12",
            PixelFormat::Rgb24 => *b"RGB3",
        }
    }

    /// The format a driver's fourcc means; `JPEG` is MJPEG under another name.
    pub fn from_fourcc(code: &[u8; 4]) -> Option<PixelFormat> {
        match code {
            b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"NV12" => Some(PixelFormat::Nv12),
            b"YU12" | b"I420" => Some(PixelFormat::I420),
            b"RGB3" => Some(PixelFormat::Rgb24),
            _ => None,
        }
    }
}

/// What `--format` (and a `[[camera]]` table's `format`) asks for: `auto`
/// to negotiate (see [`PREFERENCE`]), or one format by its fourcc, in any
/// case; the driver's other names for a format are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FormatChoice {
    #[default]
    Auto,
    #[value(name = "MJPG", alias = "JPEG")]
    Mjpg,
    #[value(name = "YUYV")]
    Yuyv,
    #[value(name = "NV12")]
    Nv12,
    #[value(name = "I420", alias = "YU12")]
    I420,
    #[value(name = "RGB3", alias = "RGB24")]
    Rgb3,
}

impl FormatChoice {
    /// The forced format, or None for `auto`.
    pub fn pixel_format(self) -> Option<PixelFormat> {
        match self {
            FormatChoice::Auto => None,
            FormatChoice::Mjpg => Some(PixelFormat::Mjpeg),
            FormatChoice::Yuyv => Some(PixelFormat::Yuyv),
            FormatChoice::Nv12 => Some(PixelFormat::Nv12),
            FormatChoice::I420 => Some(PixelFormat::I420),
            FormatChoice::Rgb3 => Some(PixelFormat::Rgb24),
        }
    }
}

/// Order in which formats are preferred when negotiating.
pub const PREFERENCE: [PixelFormat; 4] = [PixelFormat::Mjpeg, PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::Rgb24];

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{format:?} frame of {len} bytes is too short for {width}x{height} with stride {stride}")]
pub struct ShortFrame {
    pub format: PixelFormat,
    pub len: usize,
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

/// BT.601 limited range YCbCr to RGB, in 16.16 fixed point.
#[inline]
fn ycbcr(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let c = (y as i32 - 16) * 76_284; // 1.164
    let d = cb as i32 - 128;
    let e = cr as i32 - 128;
    let clamp = |v: i32| ((v + 32_768) >> 16).clamp(0, 255) as u8;
    [clamp(c + 104_595 * e), clamp(c - 25_690 * d - 53_281 * e), clamp(c + 132_186 * d)]
}

/// Converts a YUYV frame (Y0 U Y1 V per pixel pair) into `out` (RGB8).
pub fn yuyv_to_rgb(
    data: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    out: &mut Vec<u8>,
) -> Result<(), ShortFrame> {
    let stride = stride.max(width * 2);
    check(data, PixelFormat::Yuyv, width, height, stride, stride * (height.max(1) - 1) + width * 2)?;
    out.clear();
    out.reserve(width * height * 3);
    for row in data.chunks(stride).take(height) {
        for pair in row[..width * 2].chunks(4) {
            if let [y0, u, y1, v] = *pair {
                out.extend_from_slice(&ycbcr(y0, u, v));
                out.extend_from_slice(&ycbcr(y1, u, v));
            } else if let [y0, u] = *pair {
                out.extend_from_slice(&ycbcr(y0, u, 128));
            }
        }
    }
    Ok(())
}

/// Converts an NV12 frame (Y plane, then interleaved CbCr at half resolution).
pub fn nv12_to_rgb(
    data: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    out: &mut Vec<u8>,
) -> Result<(), ShortFrame> {
    let stride = stride.max(width);
    let chroma_rows = height.div_ceil(2);
    let need = stride * height + stride * (chroma_rows.max(1) - 1) + width.div_ceil(2) * 2;
    check(data, PixelFormat::Nv12, width, height, stride, need)?;
    let (luma, chroma) = data.split_at(stride * height);
    out.clear();
    out.reserve(width * height * 3);
    for y in 0..height {
        let lrow = &luma[y * stride..y * stride + width];
        let crow = &chroma[(y / 2) * stride..];
        for (x, &l) in lrow.iter().enumerate() {
            let c = (x / 2) * 2;
            out.extend_from_slice(&ycbcr(l, crow[c], crow[c + 1]));
        }
    }
    Ok(())
}

/// Converts an I420 frame: a Y plane of `stride`-byte rows, then Cb and Cr
/// planes of half-height rows `stride / 2` bytes long (libcamera's layout,
/// so rpicam-vid's 64-byte-aligned rows work as they come).
pub fn i420_to_rgb(
    data: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    out: &mut Vec<u8>,
) -> Result<(), ShortFrame> {
    let stride = stride.max(width);
    let cstride = (stride / 2).max(width.div_ceil(2));
    let chroma_rows = height.div_ceil(2);
    let need = i420_frame_len(width, height, stride);
    check(data, PixelFormat::I420, width, height, stride, need)?;
    let (luma, chroma) = data.split_at(stride * height);
    let (cb, cr) = chroma.split_at(cstride * chroma_rows);
    out.clear();
    out.reserve(width * height * 3);
    for y in 0..height {
        let lrow = &luma[y * stride..y * stride + width];
        let (brow, rrow) = (&cb[(y / 2) * cstride..], &cr[(y / 2) * cstride..]);
        for (x, &l) in lrow.iter().enumerate() {
            out.extend_from_slice(&ycbcr(l, brow[x / 2], rrow[x / 2]));
        }
    }
    Ok(())
}

/// Bytes in one I420 frame with this layout (see [`i420_to_rgb`]).
pub fn i420_frame_len(width: usize, height: usize, stride: usize) -> usize {
    let stride = stride.max(width);
    let cstride = (stride / 2).max(width.div_ceil(2));
    stride * height + 2 * cstride * height.div_ceil(2)
}

/// Copies an RGB24 frame, dropping any row padding.
pub fn rgb24_to_rgb(
    data: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    out: &mut Vec<u8>,
) -> Result<(), ShortFrame> {
    let stride = stride.max(width * 3);
    check(data, PixelFormat::Rgb24, width, height, stride, stride * (height.max(1) - 1) + width * 3)?;
    out.clear();
    out.reserve(width * height * 3);
    for row in data.chunks(stride).take(height) {
        out.extend_from_slice(&row[..width * 3]);
    }
    Ok(())
}

fn check(
    data: &[u8],
    format: PixelFormat,
    width: usize,
    height: usize,
    stride: usize,
    need: usize,
) -> Result<(), ShortFrame> {
    if width == 0 || height == 0 || data.len() < need {
        return Err(ShortFrame { format, len: data.len(), width, height, stride });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
