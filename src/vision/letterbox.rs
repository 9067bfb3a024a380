//! Ultralytics-style letterbox: scale to fit, centre, pad with grey 114, RGB
//! planes as f32 in 0..1 — written straight into the network's input buffer.

use super::BBox;

/// Grey used for the padding, as Ultralytics' `LetterBox` does.
pub const PAD_VALUE: u8 = 114;

/// Where an image of `src` size lands inside a `dst` sized network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub src_w: u32,
    pub src_h: u32,
    pub dst_w: u32,
    pub dst_h: u32,
    /// Scale from source pixels to input pixels.
    pub gain: f64,
    pub scaled_w: u32,
    pub scaled_h: u32,
    pub pad_left: u32,
    pub pad_top: u32,
}

impl Letterbox {
    /// The placement Ultralytics' `LetterBox(auto=False, center=True)` computes,
    /// including its rounding (ties to even, and the -0.1 nudge on the padding).
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> Letterbox {
        assert!(src_w > 0 && src_h > 0 && dst_w > 0 && dst_h > 0, "empty letterbox");
        let gain = (dst_w as f64 / src_w as f64).min(dst_h as f64 / src_h as f64);
        let scaled_w = ((src_w as f64 * gain).round_ties_even() as u32).clamp(1, dst_w);
        let scaled_h = ((src_h as f64 * gain).round_ties_even() as u32).clamp(1, dst_h);
        let half_w = (dst_w - scaled_w) as f64 / 2.0;
        let half_h = (dst_h - scaled_h) as f64 / 2.0;
        Letterbox {
            src_w,
            src_h,
            dst_w,
            dst_h,
            gain,
            scaled_w,
            scaled_h,
            pad_left: (half_w - 0.1).round_ties_even().max(0.0) as u32,
            pad_top: (half_h - 0.1).round_ties_even().max(0.0) as u32,
        }
    }

    /// Maps a box from network-input pixels back to source pixels, clipped to the source.
    pub fn unmap(&self, b: BBox) -> BBox {
        let (w, h) = (self.src_w as f32, self.src_h as f32);
        let gain = self.gain as f32;
        let (px, py) = (self.pad_left as f32, self.pad_top as f32);
        BBox {
            x1: ((b.x1 - px) / gain).clamp(0.0, w),
            y1: ((b.y1 - py) / gain).clamp(0.0, h),
            x2: ((b.x2 - px) / gain).clamp(0.0, w),
            y2: ((b.y2 - py) / gain).clamp(0.0, h),
        }
    }

    /// Maps a point from network-input pixels back to source pixels (not clipped).
    pub fn unmap_point(&self, x: f32, y: f32) -> (f32, f32) {
        let gain = self.gain as f32;
        ((x - self.pad_left as f32) / gain, (y - self.pad_top as f32) / gain)
    }

    /// Fills `out` (planar RGB, `3 * dst_h * dst_w`, values 0..1) from packed
    /// RGB8 `rgb` (`src_h * src_w * 3`). Resizing is bilinear with half-pixel
    /// centres, like OpenCV's `INTER_LINEAR`, so boxes match the reference.
    pub fn fill(&self, rgb: &[u8], out: &mut [f32]) {
        let (sw, sh) = (self.src_w as usize, self.src_h as usize);
        assert_eq!(rgb.len(), sw * sh * 3, "source buffer does not match its size");
        self.fill_from(&PackedRgb { data: rgb, width: sw }, (sw, sh), out);
    }

    /// [`fill`](Self::fill) from any [`Sample`] source, whose `grid` of
    /// pixels covers the picture: the source size, or a smaller decode of
    /// it. The four taps of each output pixel are blended in the source's own
    /// colour space, and [`Sample::finish`] turns the blend into RGB 0..255.
    /// A camera frame is read in place, with no RGB copy of it.
    pub fn fill_from<S: Sample>(&self, src: &S, grid: (usize, usize), out: &mut [f32]) {
        let (sw, sh) = grid;
        let (dw, dh) = (self.dst_w as usize, self.dst_h as usize);
        assert_eq!(out.len(), 3 * dw * dh, "input buffer does not match the network size");
        out.fill(PAD_VALUE as f32 / 255.0);
        let plane = dw * dh;
        let (left, top) = (self.pad_left as usize, self.pad_top as usize);
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        if (sw, sh) == (self.scaled_w as usize, self.scaled_h as usize) {
            // One source pixel per input pixel (a JPEG decoded to exactly the
            // letterbox's size, a frame at the network's size): every tap
            // weight is 0, so the blend is the pixel itself.
            for y in 0..sh {
                let base = (top + y) * dw + left;
                src.copy_row(y, [&mut r[base..base + sw], &mut g[base..base + sw], &mut b[base..base + sw]]);
            }
            return;
        }
        let xs = taps(sw, self.scaled_w as usize);
        let ys = taps(sh, self.scaled_h as usize);
        for (dy, &(y0, y1, wy)) in ys.iter().enumerate() {
            let base = (top + dy) * dw + left;
            let (r, g, b) = (&mut r[base..], &mut g[base..], &mut b[base..]);
            for (dx, &(x0, x1, wx)) in xs.iter().enumerate() {
                let (p00, p01) = (src.at(x0, y0), src.at(x1, y0));
                let (p10, p11) = (src.at(x0, y1), src.at(x1, y1));
                let mut v = [0f32; 3];
                for c in 0..3 {
                    let top = p00[c] + (p01[c] - p00[c]) * wx;
                    let bottom = p10[c] + (p11[c] - p10[c]) * wx;
                    v[c] = top + (bottom - top) * wy;
                }
                let [vr, vg, vb] = src.finish(v);
                r[dx] = vr * (1.0 / 255.0);
                g[dx] = vg * (1.0 / 255.0);
                b[dx] = vb * (1.0 / 255.0);
            }
        }
    }
}

/// A picture the network's input is filled from: decoded RGB, or a raw
/// camera frame read in place.
pub trait Source {
    /// Width and height in pixels, upright.
    fn size(&self) -> (u32, u32);
    /// Fills `out` as [`Letterbox::fill`] does; `letterbox` was made for [`size`](Self::size).
    fn letterbox(&self, letterbox: &Letterbox, out: &mut [f32]);
}

impl Source for super::decode::Rgb {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn letterbox(&self, letterbox: &Letterbox, out: &mut [f32]) {
        letterbox.fill(&self.data, out);
    }
}

impl Source for super::decode::Reduced {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn letterbox(&self, letterbox: &Letterbox, out: &mut [f32]) {
        let grid = (self.rgb.width as usize, self.rgb.height as usize);
        letterbox.fill_from(&PackedRgb { data: &self.rgb.data, width: grid.0 }, grid, out);
    }
}

/// A picture the letterbox reads pixel by pixel: an RGB buffer, or a camera
/// frame in its own pixel format (`camera::pixel`).
pub trait Sample {
    /// The three channels of the pixel at column `x`, row `y`, as they are
    /// stored (RGB, or Y, Cb, Cr), 0..255.
    fn at(&self, x: usize, y: usize) -> [f32; 3];
    /// The blend of four [`at`](Self::at) values as RGB 0..255. Bilinear
    /// blending is linear, so blending Y, Cb and Cr and converting once is
    /// converting each tap and blending, up to the clamp and rounding.
    fn finish(&self, v: [f32; 3]) -> [f32; 3] {
        v
    }

    /// Row `y` as RGB 0..1 into three planes' rows (as long as the row).
    fn copy_row(&self, y: usize, [r, g, b]: [&mut [f32]; 3]) {
        for (x, ((r, g), b)) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()).enumerate() {
            let [vr, vg, vb] = self.finish(self.at(x, y));
            (*r, *g, *b) = (vr * (1.0 / 255.0), vg * (1.0 / 255.0), vb * (1.0 / 255.0));
        }
    }
}

/// Rows of packed RGB8.
pub struct PackedRgb<'a> {
    pub data: &'a [u8],
    pub width: usize,
}

impl Sample for PackedRgb<'_> {
    #[inline]
    fn at(&self, x: usize, y: usize) -> [f32; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i] as f32, self.data[i + 1] as f32, self.data[i + 2] as f32]
    }

    fn copy_row(&self, y: usize, [r, g, b]: [&mut [f32]; 3]) {
        let row = &self.data[y * self.width * 3..(y + 1) * self.width * 3];
        for (px, ((r, g), b)) in row.chunks_exact(3).zip(r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut())) {
            (*r, *g, *b) = (px[0] as f32 * (1.0 / 255.0), px[1] as f32 * (1.0 / 255.0), px[2] as f32 * (1.0 / 255.0));
        }
    }
}

/// For each destination index, the two source indices and the weight of the
/// second, with OpenCV's half-pixel mapping and edge clamping.
fn taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (f.floor() as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            let w = if i0 == i1 { 0.0 } else { (f - i0 as f64) as f32 };
            (i0, i1, w)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landscape_image_is_padded_top_and_bottom_like_ultralytics() {
        // zidane.jpg is 1280x720: gain 0.5, 640x360, 140 px of grey above and below.
        let lb = Letterbox::new(1280, 720, 640, 640);
        assert_eq!((lb.scaled_w, lb.scaled_h, lb.pad_left, lb.pad_top), (640, 360, 0, 140));
    }

    #[test]
    fn portrait_image_is_padded_left_and_right() {
        // bus.jpg is 810x1080: gain 0.5926, 480x640, 80 px each side.
        let lb = Letterbox::new(810, 1080, 640, 640);
        assert_eq!((lb.scaled_w, lb.scaled_h, lb.pad_left, lb.pad_top), (480, 640, 80, 0));
    }

    #[test]
    fn odd_padding_puts_the_extra_pixel_after_the_image() {
        // 3 px of padding: round(1.5 - 0.1) = 1 before, 2 after.
        let lb = Letterbox::new(100, 97, 100, 100);
        assert_eq!((lb.scaled_h, lb.pad_top), (97, 1));
    }

    #[test]
    fn unmap_inverts_the_placement_and_clips() {
        let lb = Letterbox::new(1280, 720, 640, 640);
        let b = lb.unmap(BBox { x1: 10.0, y1: 150.0, x2: 700.0, y2: 600.0 });
        assert_eq!(b, BBox { x1: 20.0, y1: 20.0, x2: 1280.0, y2: 720.0 });
    }

    #[test]
    fn fill_pads_with_grey_and_keeps_a_flat_image_flat() {
        let (w, h) = (8u32, 4u32);
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [255u8, 0, 51]).collect();
        let lb = Letterbox::new(w, h, 16, 16);
        let mut out = vec![0.0; 3 * 16 * 16];
        lb.fill(&rgb, &mut out);
        let grey = 114.0 / 255.0;
        assert_eq!(out[0], grey); // top-left is padding
        let inside = (lb.pad_top as usize + 1) * 16 + 3;
        assert!((out[inside] - 1.0).abs() < 1e-6);
        assert!((out[256 + inside] - 0.0).abs() < 1e-6);
        assert!((out[512 + inside] - 0.2).abs() < 1e-6);
        assert_eq!(out[16 * 16 - 1], grey); // bottom-right is padding
    }

    #[test]
    fn fill_downscale_by_two_averages_pixel_pairs() {
        // OpenCV INTER_LINEAR at exactly 2x samples between source pixels 2i and 2i+1.
        let rgb: Vec<u8> = [0u8, 100, 200, 250].iter().flat_map(|&v| [v, v, v]).collect();
        let lb = Letterbox::new(4, 1, 2, 1);
        let mut out = vec![0.0; 3 * 2];
        lb.fill(&rgb, &mut out);
        assert!((out[0] * 255.0 - 50.0).abs() < 1e-3);
        assert!((out[1] * 255.0 - 225.0).abs() < 1e-3);
    }

    #[test]
    fn a_picture_of_exactly_the_scaled_size_is_copied_pixel_for_pixel() {
        let rgb: Vec<u8> = (0..4 * 2 * 3).map(|i| (i * 10) as u8).collect();
        let lb = Letterbox::new(4, 2, 4, 4);
        assert_eq!((lb.scaled_w, lb.scaled_h, lb.pad_top), (4, 2, 1));
        let mut out = vec![0.0; 3 * 16];
        lb.fill(&rgb, &mut out);
        for (i, px) in rgb.chunks(3).enumerate() {
            for c in 0..3 {
                assert_eq!(out[c * 16 + 4 + i], px[c] as f32 * (1.0 / 255.0), "pixel {i} channel {c}");
            }
        }
        assert_eq!(out[0], PAD_VALUE as f32 / 255.0);
    }

    #[test]
    fn upscale_keeps_the_edges_clamped() {
        let rgb: Vec<u8> = [10u8, 30].iter().flat_map(|&v| [v, v, v]).collect();
        let lb = Letterbox::new(2, 1, 4, 2);
        let mut out = vec![0.0; 3 * 8];
        lb.fill(&rgb, &mut out);
        let row: Vec<f32> = out[0..4].iter().map(|v| (v * 255.0).round()).collect();
        assert_eq!(row, vec![10.0, 15.0, 25.0, 30.0]); // taps at -0.25(clamped), 0.25, 0.75, 1.25(clamped)
    }
}
