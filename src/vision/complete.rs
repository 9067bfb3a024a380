//! Whether encoded image bytes reach their format's end. Several decoders
//! stop early without an error: a JPEG cut after 60 KB decodes to a picture
//! whose lower part is grey, and the model then finds objects in what is
//! left. So the structure is walked first (segments, chunks, blocks: no
//! pixel is decoded) and bytes that end before their format's end are
//! refused, whatever the decoder would have made of them.

use image::ImageFormat;

/// Checks that `bytes`, already recognised as `format`, are whole. The
/// error says what ended early, e.g. "JPEG ended before its end marker".
pub fn check(format: ImageFormat, bytes: &[u8]) -> Result<(), &'static str> {
    match format {
        ImageFormat::Jpeg => jpeg(bytes),
        ImageFormat::Png => png(bytes),
        ImageFormat::Gif => gif(bytes),
        ImageFormat::WebP => webp(bytes),
        ImageFormat::Bmp => bmp(bytes),
        ImageFormat::Tiff => tiff(bytes),
        _ => Ok(()),
    }
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn le32(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// Walks the marker segments and the entropy-coded data of each scan to the
/// EOI marker. Bytes after EOI (some phones append their own data) are fine.
fn jpeg(b: &[u8]) -> Result<(), &'static str> {
    const CUT: &str = "JPEG ended before its end marker";
    let mut i = 2;
    loop {
        // Bytes that are not a marker between segments are skipped, as decoders do.
        i += b.get(i..).ok_or(CUT)?.iter().position(|&x| x == 0xFF).ok_or(CUT)?;
        // Fill bytes: any number of 0xFF before the marker code.
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *b.get(i).ok_or(CUT)?;
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Markers without a length: TEM, RSTn, SOI; 0x00 is stuffing out of place.
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let len = be16(b, i).ok_or(CUT)?;
        if len < 2 {
            return Err("JPEG has a segment shorter than its own length field");
        }
        i += len;
        if i > b.len() {
            return Err(CUT);
        }
        if marker == 0xDA {
            // Entropy-coded data runs to the next 0xFF that is neither
            // stuffing (0xFF00) nor a restart marker (0xFFD0-D7).
            loop {
                i += b.get(i..).ok_or(CUT)?.iter().position(|&x| x == 0xFF).ok_or(CUT)?;
                match *b.get(i + 1).ok_or(CUT)? {
                    0x00 | 0xD0..=0xD7 => i += 2,
                    _ => break,
                }
            }
        }
    }
}

/// Walks the chunks (length, type, data, CRC) to IEND.
fn png(b: &[u8]) -> Result<(), &'static str> {
    const CUT: &str = "PNG ended before its IEND chunk";
    let mut i = 8;
    loop {
        let len = be32(b, i).ok_or(CUT)?;
        let kind = b.get(i + 4..i + 8).ok_or(CUT)?;
        let end = (i + 12).checked_add(len).ok_or(CUT)?;
        if end > b.len() {
            return Err(CUT);
        }
        if kind == b"IEND" {
            return Ok(());
        }
        i = end;
    }
}

/// Walks to the end of the first image's data (the only one decoded); a
/// missing trailer after it is tolerated, as every decoder does.
fn gif(b: &[u8]) -> Result<(), &'static str> {
    const CUT: &str = "GIF ended before its first image's data";
    let table = |packed: u8| if packed & 0x80 != 0 { 3 << ((packed & 7) + 1) } else { 0 };
    // Runs of sub-blocks, each a length byte then that many bytes, until a 0.
    let sub_blocks = |mut i: usize| -> Result<usize, &'static str> {
        loop {
            let n = *b.get(i).ok_or(CUT)? as usize;
            i += 1 + n;
            if n == 0 {
                return Ok(i);
            }
        }
    };
    let mut i = 13 + table(*b.get(10).ok_or(CUT)?);
    loop {
        match *b.get(i).ok_or(CUT)? {
            // Extension: label, then sub-blocks.
            0x21 => i = sub_blocks(i + 2)?,
            // Image descriptor (10 bytes), local colour table, LZW code size, data.
            0x2C => {
                let packed = *b.get(i + 9).ok_or(CUT)?;
                let end = sub_blocks(i + 10 + table(packed) + 1)?;
                return if end <= b.len() { Ok(()) } else { Err(CUT) };
            }
            0x3B => return Err("GIF has no image before its trailer"),
            _ => return Err("GIF has a block of unknown type"),
        }
    }
}

/// The RIFF header declares the file's size.
fn webp(b: &[u8]) -> Result<(), &'static str> {
    let size = le32(b, 4).ok_or("WebP ended inside its RIFF header")?;
    if b.len() - 8 < size { Err("WebP ended before the size its RIFF header declares") } else { Ok(()) }
}

/// The file header declares where the pixels start and the info header how
/// many bytes they take (when uncompressed).
fn bmp(b: &[u8]) -> Result<(), &'static str> {
    const CUT: &str = "BMP ended before its pixel data";
    let offset = le32(b, 10).ok_or(CUT)?;
    let info = le32(b, 14).ok_or(CUT)?;
    if info < 40 {
        // The old OS/2 header: the decoder's own bounds checks apply.
        return if offset <= b.len() { Ok(()) } else { Err(CUT) };
    }
    let width = le32(b, 18).ok_or(CUT)? as i32;
    let height = le32(b, 22).ok_or(CUT)? as i32;
    let bits = u16::from_le_bytes(b.get(28..30).ok_or(CUT)?.try_into().map_err(|_| CUT)?);
    let compression = le32(b, 30).ok_or(CUT)?;
    if compression != 0 {
        // Run-length encoded rows end with their own end-of-bitmap code.
        return if offset <= b.len() { Ok(()) } else { Err(CUT) };
    }
    let row = (width.unsigned_abs() as u64 * bits as u64).div_ceil(32) * 4;
    let need = row.checked_mul(height.unsigned_abs() as u64).and_then(|n| n.checked_add(offset as u64));
    if need.is_none_or(|need| (b.len() as u64) < need) { Err(CUT) } else { Ok(()) }
}

/// Every strip or tile of the first image lies inside the file.
fn tiff(b: &[u8]) -> Result<(), &'static str> {
    const CUT: &str = "TIFF ended before its image data";
    let little = b.starts_with(b"II");
    let u16_at = |at: usize| -> Option<usize> {
        let v: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if little { u16::from_le_bytes(v) } else { u16::from_be_bytes(v) } as usize)
    };
    let u32_at = |at: usize| -> Option<usize> {
        let v: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if little { u32::from_le_bytes(v) } else { u32::from_be_bytes(v) } as usize)
    };
    // BigTIFF (version 43) is left to the decoder.
    if u16_at(2) != Some(42) {
        return Ok(());
    }
    let ifd = u32_at(4).ok_or(CUT)?;
    let entries = u16_at(ifd).ok_or(CUT)?;
    // One value of an entry: SHORT (3) or LONG (4), inline when `count` fits in 4 bytes.
    let values = |entry: usize| -> Option<Vec<usize>> {
        let (kind, count) = (u16_at(entry + 2)?, u32_at(entry + 4)?);
        let width = match kind {
            3 => 2,
            4 => 4,
            _ => return None,
        };
        let at = if count * width <= 4 { entry + 8 } else { u32_at(entry + 8)? };
        (0..count.min(1 << 20)).map(|k| if width == 2 { u16_at(at + 2 * k) } else { u32_at(at + 4 * k) }).collect()
    };
    let (mut offsets, mut counts) = (None, None);
    for k in 0..entries {
        let entry = ifd + 2 + 12 * k;
        match u16_at(entry).ok_or(CUT)? {
            // StripOffsets, TileOffsets
            273 | 324 => offsets = Some(values(entry).ok_or(CUT)?),
            // StripByteCounts, TileByteCounts
            279 | 325 => counts = Some(values(entry).ok_or(CUT)?),
            _ => {}
        }
    }
    let (Some(offsets), Some(counts)) = (offsets, counts) else { return Ok(()) };
    for (offset, count) in offsets.iter().zip(&counts) {
        if offset.checked_add(*count).is_none_or(|end| end > b.len()) {
            return Err(CUT);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, Rgb, RgbImage};
    use std::io::Cursor;

    /// A picture with detail, so that compressed formats have real data.
    fn picture() -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(97, 61, |x, y| Rgb([(x * 7) as u8, (y * 13) as u8, (x ^ y) as u8])))
    }

    fn encode(format: ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let img = if format == ImageFormat::Gif { DynamicImage::ImageRgba8(picture().to_rgba8()) } else { picture() };
        img.write_to(&mut buf, format).unwrap();
        buf.into_inner()
    }

    #[test]
    fn whole_images_pass_and_every_cut_of_them_is_refused() {
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::WebP,
            ImageFormat::Bmp,
            ImageFormat::Tiff,
        ] {
            let whole = encode(format);
            assert_eq!(check(format, &whole), Ok(()), "{format:?}");
            // Cut anywhere past the first 16 bytes (format sniffing needs those).
            for cut in (16..whole.len()).step_by((whole.len() / 200).max(1)) {
                let head = &whole[..cut];
                // GIF and TIFF may end with bytes no decoder needs (trailer, tags after the data).
                if matches!(format, ImageFormat::Gif | ImageFormat::Tiff) && check(format, head).is_ok() {
                    assert!(cut >= whole.len() - 64, "{format:?} cut at {cut} of {} passed", whole.len());
                    continue;
                }
                let e = check(format, head).expect_err(&format!("{format:?} cut at {cut} of {}", whole.len()));
                assert!(e.contains("ended"), "{format:?}: {e}");
            }
        }
    }

    #[test]
    fn a_jpeg_with_bytes_after_its_end_marker_is_whole() {
        let mut jpeg = encode(ImageFormat::Jpeg);
        jpeg.extend_from_slice(b"\0\0SEFT trailer some phones append\xff\xd8");
        assert_eq!(check(ImageFormat::Jpeg, &jpeg), Ok(()));
    }

    #[test]
    fn a_jpeg_cut_inside_its_scan_names_the_end_marker() {
        let jpeg = encode(ImageFormat::Jpeg);
        assert_eq!(check(ImageFormat::Jpeg, &jpeg[..jpeg.len() - 2]), Err("JPEG ended before its end marker"));
        assert_eq!(check(ImageFormat::Jpeg, &jpeg[..jpeg.len() / 2]), Err("JPEG ended before its end marker"));
    }
}
