//! H.264 from RTSP cameras to frames: Cisco's OpenH264 decoder (the
//! `openh264` crate, built from source), fed one access unit at a time in
//! Annex B form, with its error concealment off, so a damaged picture is an
//! error to count and skip rather than a grey-patched frame to infer on.

mod cxx;
#[cfg(test)]
mod tests;

use openh264::formats::YUVSource;

use super::Frame;
use super::pixel::PixelFormat;

/// One camera's decoder.
pub struct Decoder {
    inner: openh264::decoder::Decoder,
}

impl Decoder {
    pub fn new() -> Result<Decoder, String> {
        cxx::link();
        let inner = openh264::decoder::Decoder::new().map_err(|e| format!("starting the H.264 decoder: {e}"))?;
        Ok(Decoder { inner })
    }

    /// Decodes one access unit (start codes before each NAL unit, parameter
    /// sets before key frames). A complete picture comes back as a planar
    /// I420 frame, rows padded to an even width.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<Frame>, String> {
        let picture = self.inner.decode(access_unit).map_err(|e| format!("H.264: {e}"))?;
        Ok(picture.map(|yuv| {
            let (width, height) = yuv.dimensions();
            let (y_stride, uv_stride, _) = yuv.strides();
            to_i420(width, height, (yuv.y(), y_stride), (yuv.u(), uv_stride), (yuv.v(), uv_stride))
        }))
    }
}

/// Copies decoder planes (each with its own stride) into one I420 buffer
/// as `pixel::RawFrame` reads it: luma rows `stride` long, chroma rows
/// `stride / 2`, where `stride` is the width rounded up to even.
pub fn to_i420(width: usize, height: usize, y: (&[u8], usize), u: (&[u8], usize), v: (&[u8], usize)) -> Frame {
    let stride = width.next_multiple_of(2);
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let mut data = Vec::with_capacity(stride * height + stride * ch);
    let mut rows = |(plane, plane_stride): (&[u8], usize), row_len: usize, rows: usize, out_stride: usize| {
        for r in 0..rows {
            let row = &plane[r * plane_stride..r * plane_stride + row_len];
            data.extend_from_slice(row);
            data.resize(data.len() + out_stride - row_len, 0);
        }
    };
    rows(y, width, height, stride);
    rows(u, cw, ch, stride / 2);
    rows(v, cw, ch, stride / 2);
    Frame {
        number: 0,
        width: width as u32,
        height: height as u32,
        stride: stride as u32,
        format: PixelFormat::I420,
        data,
    }
}
