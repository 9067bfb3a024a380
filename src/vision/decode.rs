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
    fn pixel_budget_is_checked_from_the_header() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::new(100, 50));
        let png = encode(img, ImageFormat::Png);
        let tight = DecodeLimits { max_pixels: 4999, max_side: 1000 };
        assert!(matches!(decode(&png, tight), Err(DecodeError::TooLarge { width: 100, height: 50, .. })));
        let narrow = DecodeLimits { max_pixels: 1_000_000, max_side: 99 };
        assert!(matches!(decode(&png, narrow), Err(DecodeError::TooLarge { .. })));
    }
}
