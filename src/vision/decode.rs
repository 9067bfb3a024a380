//! Encoded image bytes to packed RGB8, with EXIF orientation applied and a
//! pixel budget checked from the header, before any pixel is allocated.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader};

/// A decoded image, rows of packed RGB8, upright.
#[derive(Debug, Clone)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// Bounds on what an uploaded image may decode to.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest width x height accepted.
    pub max_pixels: u64,
    /// Largest width or height accepted.
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // 40 megapixels covers any phone or camera; 16384 is beyond any sensor.
        DecodeLimits { max_pixels: 40_000_000, max_side: 16_384 }
    }
}

/// Why bytes could not become an image.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The bytes are empty.
    #[error("the image is empty (0 bytes)")]
    Empty,
    /// The bytes are not in a format we decode.
    #[error("unsupported image format (send JPEG, PNG, WebP, BMP, GIF or TIFF)")]
    UnsupportedFormat,
    /// The header promises more pixels than allowed.
    #[error("image is {width}x{height} pixels, over the limit of {max_pixels} pixels and {max_side} px per side")]
    TooLarge { width: u32, height: u32, max_pixels: u64, max_side: u32 },
    /// The bytes end before their format's end (a cut upload or frame).
    #[error("image data is truncated or corrupt ({0})")]
    Truncated(&'static str),
    /// The format was recognised but the data is broken.
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
}

/// Decodes `bytes` into upright RGB8. Alpha is dropped and 16-bit samples
/// are scaled to 8 bits, as OpenCV's `imread` does for Ultralytics.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<Rgb, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(DecodeError::UnsupportedFormat);
    };
    // Before the decoder, which may stop early without an error.
    super::complete::check(format, bytes).map_err(DecodeError::Truncated)?;
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt(format!("image has no pixels ({width}x{height})")));
    }
    if width > limits.max_side || height > limits.max_side || width as u64 * height as u64 > limits.max_pixels {
        return Err(DecodeError::TooLarge { width, height, max_pixels: limits.max_pixels, max_side: limits.max_side });
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(classify)?;
    if let Some(orientation) = orientation {
        img.apply_orientation(orientation);
    }
    let rgb = match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    };
    let (width, height) = rgb.dimensions();
    Ok(Rgb { width, height, data: rgb.into_raw() })
}

/// A JPEG decoded at 1/2, 1/4 or 1/8 of its size in the DCT domain: the
/// inverse DCT, upsampling and colour conversion run on a quarter (or less)
/// of the pixels. Its `width` and `height` are the picture's full size, and
/// boxes come out in those pixels; `rgb` is the smaller decode, which the
/// letterbox reads as covering the same extent.
#[derive(Debug, Clone)]
pub struct Reduced {
    pub width: u32,
    pub height: u32,
    pub rgb: Rgb,
}

/// `bytes` decoded only as large as a letterbox needs: `scaled` gives, for a
/// picture's full size, the size it is scaled to in the network's input.
/// None when that saves nothing (a picture under twice that size), for a
/// picture with EXIF data (it may need turning, which the full decode does),
/// for CMYK and for formats other than JPEG: the caller decodes in full.
/// The same checks as [`decode`] run first: emptiness, truncation and the
/// pixel budget.
pub fn decode_reduced(
    bytes: &[u8],
    limits: DecodeLimits,
    scaled: impl Fn(u32, u32) -> (u32, u32),
) -> Result<Option<Reduced>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if image::guess_format(bytes).ok() != Some(image::ImageFormat::Jpeg) || has_exif(bytes) {
        return Ok(None);
    }
    super::complete::check(image::ImageFormat::Jpeg, bytes).map_err(DecodeError::Truncated)?;
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let info = decoder.info().ok_or_else(|| DecodeError::Corrupt("JPEG without a frame header".into()))?;
    let (width, height) = (info.width as u32, info.height as u32);
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt(format!("image has no pixels ({width}x{height})")));
    }
    if width > limits.max_side || height > limits.max_side || width as u64 * height as u64 > limits.max_pixels {
        return Err(DecodeError::TooLarge { width, height, max_pixels: limits.max_pixels, max_side: limits.max_side });
    }
    let grey = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => false,
        jpeg_decoder::PixelFormat::L8 => true,
        _ => return Ok(None),
    };
    let (want_w, want_h) = scaled(width, height);
    if want_w * 2 > width || want_h * 2 > height {
        return Ok(None);
    }
    // The smallest of 1/8, 1/4, 1/2 that is at least the wanted size.
    let (w, h) = decoder
        .scale(want_w.min(u16::MAX as u32) as u16, want_h.min(u16::MAX as u32) as u16)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let data = decoder.decode().map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let data = if grey { data.iter().flat_map(|&v| [v, v, v]).collect() } else { data };
    let (w, h) = (w as u32, h as u32);
    if data.len() != w as usize * h as usize * 3 {
        return Err(DecodeError::Corrupt(format!("JPEG decoded to {} bytes for {w}x{h}", data.len())));
    }
    Ok(Some(Reduced { width, height, rgb: Rgb { width: w, height: h, data } }))
}

/// Whether the JPEG's header segments hold an EXIF block (APP1 "Exif").
fn has_exif(bytes: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let marker = bytes[i + 1];
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xE1 && bytes[i + 4..].starts_with(b"Exif\0") {
            return true;
        }
        i += 2 + len;
    }
    false
}

fn classify(e: image::ImageError) -> DecodeError {
    match e {
        image::ImageError::Unsupported(_) => DecodeError::UnsupportedFormat,
        other => DecodeError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb as Px};

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, format).unwrap();
        buf.into_inner()
    }

    #[test]
    fn png_grey_alpha_and_16_bit_become_rgb8() {
        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([200])));
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(3, 2, image::Rgba([1, 2, 3, 0])));
        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(3, 2, Px([65535u16, 0, 32896])));
        for (img, px) in [(grey, [200, 200, 200]), (rgba, [1, 2, 3]), (deep, [255, 0, 128])] {
            let out = decode(&encode(img, ImageFormat::Png), DecodeLimits::default()).unwrap();
            assert_eq!((out.width, out.height), (3, 2));
            assert_eq!(&out.data[0..3], &px);
        }
    }

    #[test]
    fn bmp_and_jpeg_decode() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(16, 8, Px([10, 200, 30])));
        for format in [ImageFormat::Bmp, ImageFormat::Jpeg] {
            let out = decode(&encode(img.clone(), format), DecodeLimits::default()).unwrap();
            assert_eq!((out.width, out.height), (16, 8));
            assert!(out.data[1] > 180, "{format:?}");
        }
    }

    #[test]
    fn empty_text_and_truncated_inputs_are_refused() {
        let limits = DecodeLimits::default();
        assert_eq!(decode(b"", limits).unwrap_err(), DecodeError::Empty);
        assert_eq!(decode(b"hello, world", limits).unwrap_err(), DecodeError::UnsupportedFormat);
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, Px([1, 2, 3])));
        let png = encode(img, ImageFormat::Png);
        assert!(matches!(decode(&png[..png.len() / 2], limits), Err(DecodeError::Truncated(_))));
    }

    /// The first 2,000 bytes of bus.jpg used to decode (to a grey picture)
    /// and the first 60 KB to a half-grey one the model found objects in.
    #[test]
    fn a_cut_jpeg_is_refused_as_truncated_not_decoded_grey() {
        let bus = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images/bus.jpg")).unwrap();
        assert!(decode(&bus, DecodeLimits::default()).is_ok());
        for cut in [2_000, 60_000, bus.len() - 1] {
            let e = decode(&bus[..cut], DecodeLimits::default()).unwrap_err();
            assert_eq!(e, DecodeError::Truncated("JPEG ended before its end marker"), "cut at {cut}");
            assert_eq!(e.to_string(), "image data is truncated or corrupt (JPEG ended before its end marker)");
        }
    }

    #[test]
    fn a_large_jpeg_is_decoded_as_small_as_the_letterbox_needs() {
        let zidane = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images/zidane.jpg")).unwrap();
        let limits = DecodeLimits::default();
        let full = decode(&zidane, limits).unwrap();
        // 1280x720 into 320: 320x180 is wanted, 1/4 gives it exactly.
        let reduced = decode_reduced(&zidane, limits, |_, _| (320, 180)).unwrap().unwrap();
        assert_eq!((reduced.width, reduced.height), (1280, 720));
        assert_eq!((reduced.rgb.width, reduced.rgb.height), (320, 180));
        // Into 640: 1/2.
        let half = decode_reduced(&zidane, limits, |_, _| (640, 360)).unwrap().unwrap();
        assert_eq!((half.rgb.width, half.rgb.height), (640, 360));
        // The reduced picture is the full one, averaged: pixel (100, 50) of
        // the 1/4 decode is near the mean of the 4x4 block it stands for.
        let mean = |c: usize| {
            let sum: u32 = (200..204)
                .flat_map(|y| (400..404).map(move |x| (y, x)))
                .map(|(y, x)| full.data[(y * 1280 + x) * 3 + c] as u32)
                .sum();
            sum as f32 / 16.0
        };
        for c in 0..3 {
            let got = reduced.rgb.data[(50 * 320 + 100) * 3 + c] as f32;
            assert!((got - mean(c)).abs() < 12.0, "channel {c}: {got} vs {}", mean(c));
        }
        // Nothing to save under twice the size; other formats and EXIF go the full way.
        assert!(decode_reduced(&zidane, limits, |_, _| (641, 361)).unwrap().is_none());
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, Px([1, 2, 3])));
        assert!(decode_reduced(&encode(img, ImageFormat::Png), limits, |_, _| (8, 8)).unwrap().is_none());
        let mut exif = zidane[..2].to_vec();
        exif.extend_from_slice(&[0xFF, 0xE1, 0x00, 0x08]);
        exif.extend_from_slice(b"Exif\0\0");
        exif.extend_from_slice(&zidane[2..]);
        assert!(decode_reduced(&exif, limits, |_, _| (320, 180)).unwrap().is_none());
        // The same checks as the full decode.
        let cut = decode_reduced(&zidane[..20_000], limits, |_, _| (320, 180)).unwrap_err();
        assert_eq!(cut, DecodeError::Truncated("JPEG ended before its end marker"));
        let tight = DecodeLimits { max_pixels: 1000, max_side: 1000 };
        assert!(matches!(decode_reduced(&zidane, tight, |_, _| (320, 180)), Err(DecodeError::TooLarge { .. })));
        assert_eq!(decode_reduced(b"", limits, |_, _| (1, 1)).unwrap_err(), DecodeError::Empty);
    }

    #[test]
    fn pixel_budget_is_checked_from_the_header() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::new(100, 50));
        let png = encode(img, ImageFormat::Png);
        let tight = DecodeLimits { max_pixels: 4999, max_side: 1000 };
        assert!(matches!(decode(&png, tight), Err(DecodeError::TooLarge { width: 100, height: 50, .. })));
        let narrow = DecodeLimits { max_pixels: 1_000_000, max_side: 99 };
        assert!(matches!(decode(&png, narrow), Err(DecodeError::TooLarge { .. })));
    }
}
