//! Camera pixel formats to packed RGB8: YUYV (4:2:2), NV12 and I420 (4:2:0)
//! with BT.601 limited-range coefficients (what UVC webcams send), and RGB24
//! with a row stride. Pure code; MJPEG goes through the image decoder instead.

use crate::vision::letterbox::{Letterbox, Sample, Source};

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

/// BT.601 limited-range Y, Cb, Cr (0..255, as floats) to RGB 0..255: the
/// float twin of the fixed-point conversion above, for [`Sample::finish`].
#[inline]
fn ycbcr_f32([y, cb, cr]: [f32; 3]) -> [f32; 3] {
    let c = (y - 16.0) * 1.164;
    let (d, e) = (cb - 128.0, cr - 128.0);
    [
        (c + 1.596 * e).clamp(0.0, 255.0),
        (c - 0.392 * d - 0.813 * e).clamp(0.0, 255.0),
        (c + 2.017 * d).clamp(0.0, 255.0),
    ]
}

/// A raw frame read in place by the letterbox (`vision::letterbox::Source`):
/// the bytes were checked against the layout when it was made.
pub struct RawFrame<'a> {
    width: u32,
    height: u32,
    layout: Layout<'a>,
}

enum Layout<'a> {
    Yuyv(Yuyv<'a>),
    Nv12(Nv12<'a>),
    I420(I420<'a>),
    Rgb24(Rgb24<'a>),
}

impl<'a> RawFrame<'a> {
    /// The frame's layout over `data`, or why the bytes do not hold it.
    /// None for MJPEG, which the image decoder reads.
    pub fn new(
        format: PixelFormat,
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
    ) -> Result<Option<RawFrame<'a>>, ShortFrame> {
        let layout = match format {
            PixelFormat::Mjpeg => return Ok(None),
            PixelFormat::Yuyv => {
                let stride = stride.max(width * 2);
                check(data, format, width, height, stride, stride * (height.max(1) - 1) + width * 2)?;
                Layout::Yuyv(Yuyv { data, stride, width })
            }
            PixelFormat::Nv12 => {
                let stride = stride.max(width);
                let need = stride * height + stride * (height.div_ceil(2).max(1) - 1) + width.div_ceil(2) * 2;
                check(data, format, width, height, stride, need)?;
                let (luma, chroma) = data.split_at(stride * height);
                Layout::Nv12(Nv12 { luma, chroma, stride })
            }
            PixelFormat::I420 => {
                check(data, format, width, height, stride, i420_frame_len(width, height, stride))?;
                let stride = stride.max(width);
                let cstride = (stride / 2).max(width.div_ceil(2));
                let (luma, chroma) = data.split_at(stride * height);
                let (cb, cr) = chroma.split_at(cstride * height.div_ceil(2));
                Layout::I420(I420 { luma, cb, cr, stride, cstride })
            }
            PixelFormat::Rgb24 => {
                let stride = stride.max(width * 3);
                check(data, format, width, height, stride, stride * (height.max(1) - 1) + width * 3)?;
                Layout::Rgb24(Rgb24 { data, stride })
            }
        };
        Ok(Some(RawFrame { width: width as u32, height: height as u32, layout }))
    }
}

impl Source for RawFrame<'_> {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// One pass from the frame's own bytes into the network's input (see
    /// [`Letterbox::fill_from`]), with no RGB copy of the frame.
    fn letterbox(&self, letterbox: &Letterbox, out: &mut [f32]) {
        let grid = (self.width as usize, self.height as usize);
        match &self.layout {
            Layout::Yuyv(f) => letterbox.fill_from(f, grid, out),
            Layout::Nv12(f) => letterbox.fill_from(f, grid, out),
            Layout::I420(f) => letterbox.fill_from(f, grid, out),
            Layout::Rgb24(f) => letterbox.fill_from(f, grid, out),
        }
    }
}

/// YUYV: Y0 U Y1 V per pixel pair (an odd last pixel has no V: 128).
pub struct Yuyv<'a> {
    data: &'a [u8],
    stride: usize,
    width: usize,
}

impl Sample for Yuyv<'_> {
    #[inline]
    fn at(&self, x: usize, y: usize) -> [f32; 3] {
        let row = &self.data[y * self.stride..];
        let pair = (x / 2) * 4;
        let v = if (x | 1) < self.width { row[pair + 3] } else { 128 };
        [row[2 * x] as f32, row[pair + 1] as f32, v as f32]
    }
    fn finish(&self, v: [f32; 3]) -> [f32; 3] {
        ycbcr_f32(v)
    }
}

/// NV12: a Y plane, then Cb Cr interleaved at half resolution.
pub struct Nv12<'a> {
    luma: &'a [u8],
    chroma: &'a [u8],
    stride: usize,
}

impl Sample for Nv12<'_> {
    #[inline]
    fn at(&self, x: usize, y: usize) -> [f32; 3] {
        let c = (y / 2) * self.stride + (x / 2) * 2;
        [self.luma[y * self.stride + x] as f32, self.chroma[c] as f32, self.chroma[c + 1] as f32]
    }
    fn finish(&self, v: [f32; 3]) -> [f32; 3] {
        ycbcr_f32(v)
    }
}

/// I420: Y, Cb and Cr planes, chroma at half resolution.
pub struct I420<'a> {
    luma: &'a [u8],
    cb: &'a [u8],
    cr: &'a [u8],
    stride: usize,
    cstride: usize,
}

impl Sample for I420<'_> {
    #[inline]
    fn at(&self, x: usize, y: usize) -> [f32; 3] {
        let c = (y / 2) * self.cstride + x / 2;
        [self.luma[y * self.stride + x] as f32, self.cb[c] as f32, self.cr[c] as f32]
    }
    fn finish(&self, v: [f32; 3]) -> [f32; 3] {
        ycbcr_f32(v)
    }
}

/// Packed RGB24 rows with a stride.
pub struct Rgb24<'a> {
    data: &'a [u8],
    stride: usize,
}

impl Sample for Rgb24<'_> {
    #[inline]
    fn at(&self, x: usize, y: usize) -> [f32; 3] {
        let i = y * self.stride + x * 3;
        [self.data[i] as f32, self.data[i + 1] as f32, self.data[i + 2] as f32]
    }
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
mod tests;
