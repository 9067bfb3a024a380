//! Segmentation masks: prototype masks times per-object coefficients, cropped
//! to the box, sampled at the source image's pixels, thresholded, and the
//! outline of the largest connected region traced as a polygon.

use super::BBox;
use super::letterbox::Letterbox;

/// Prototype masks: `count` planes of `h x w`, in network-input scale / `h`.
#[derive(Debug, Clone, Copy)]
pub struct Protos<'a> {
    pub data: &'a [f32],
    pub count: usize,
    pub h: usize,
    pub w: usize,
}

/// A binary mask over a box-sized window of the source image.
#[derive(Debug, Clone, PartialEq)]
pub struct Bitmap {
    /// Source-image pixel of the window's top-left corner.
    pub x0: usize,
    pub y0: usize,
    pub w: usize,
    pub h: usize,
    pub bits: Vec<bool>,
}

impl Bitmap {
    pub fn get(&self, x: isize, y: isize) -> bool {
        x >= 0
            && y >= 0
            && (x as usize) < self.w
            && (y as usize) < self.h
            && self.bits[y as usize * self.w + x as usize]
    }
}

/// The object's mask in source pixels: sigmoid(coeffs . protos) cropped to
/// `input_box` (network-input pixels), sampled bilinearly at each source
/// pixel inside `source_box`, kept where it is above 0.5.
pub fn object_mask(protos: &Protos, coeffs: &[f32], input_box: BBox, source_box: BBox, lb: &Letterbox) -> Bitmap {
    assert_eq!(coeffs.len(), protos.count, "one coefficient per prototype");
    let scale_x = protos.w as f32 / lb.dst_w as f32;
    let scale_y = protos.h as f32 / lb.dst_h as f32;
    // The box in proto cells, with one cell of margin for interpolation.
    let px0 = ((input_box.x1 * scale_x).floor() as isize - 1).clamp(0, protos.w as isize) as usize;
    let py0 = ((input_box.y1 * scale_y).floor() as isize - 1).clamp(0, protos.h as isize) as usize;
    let px1 = ((input_box.x2 * scale_x).ceil() as isize + 1).clamp(0, protos.w as isize) as usize;
    let py1 = ((input_box.y2 * scale_y).ceil() as isize + 1).clamp(0, protos.h as isize) as usize;
    let (pw, ph) = (px1.saturating_sub(px0), py1.saturating_sub(py0));
    // Mask probabilities on that window, zero outside the box (Ultralytics' crop_mask).
    let mut prob = vec![0f32; pw * ph];
    let plane = protos.h * protos.w;
    // A cell is inside when its index lies in the box scaled to proto cells,
    // exactly as Ultralytics' crop_mask compares `arange(w)` with `x1 / 4`.
    let (bx1, by1, bx2, by2) =
        (input_box.x1 * scale_x, input_box.y1 * scale_y, input_box.x2 * scale_x, input_box.y2 * scale_y);
    for wy in 0..ph {
        let py = py0 + wy;
        for wx in 0..pw {
            let px = px0 + wx;
            let (fx, fy) = (px as f32, py as f32);
            if fx < bx1 || fx >= bx2 || fy < by1 || fy >= by2 {
                continue;
            }
            let at = py * protos.w + px;
            let logit: f32 = coeffs.iter().enumerate().map(|(k, c)| c * protos.data[k * plane + at]).sum();
            prob[wy * pw + wx] = 1.0 / (1.0 + (-logit).exp());
        }
    }
    let sample = |x: f32, y: f32| -> f32 {
        // Half-pixel-centred bilinear sampling of the window, clamped at its edges.
        let fx = (x - 0.5 - px0 as f32).clamp(0.0, pw.saturating_sub(1) as f32);
        let fy = (y - 0.5 - py0 as f32).clamp(0.0, ph.saturating_sub(1) as f32);
        let (ix, iy) = (fx.floor() as usize, fy.floor() as usize);
        let (jx, jy) = ((ix + 1).min(pw - 1), (iy + 1).min(ph - 1));
        let (tx, ty) = (fx - ix as f32, fy - iy as f32);
        let top = prob[iy * pw + ix] * (1.0 - tx) + prob[iy * pw + jx] * tx;
        let bottom = prob[jy * pw + ix] * (1.0 - tx) + prob[jy * pw + jx] * tx;
        top * (1.0 - ty) + bottom * ty
    };
    let x0 = source_box.x1.floor().max(0.0) as usize;
    let y0 = source_box.y1.floor().max(0.0) as usize;
    let x1 = (source_box.x2.ceil() as usize).min(lb.src_w as usize);
    let y1 = (source_box.y2.ceil() as usize).min(lb.src_h as usize);
    let (w, h) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
    let mut bits = vec![false; w * h];
    if pw > 0 && ph > 0 {
        let gain = lb.gain as f32;
        for y in 0..h {
            let iy = ((y0 + y) as f32 + 0.5) * gain + lb.pad_top as f32;
            for x in 0..w {
                let ix = ((x0 + x) as f32 + 0.5) * gain + lb.pad_left as f32;
                bits[y * w + x] = sample(ix * scale_x, iy * scale_y) > 0.5;
            }
        }
    }
    Bitmap { x0, y0, w, h, bits }
}

/// The outline of the largest 8-connected region, as polygon vertices at
/// boundary pixel centres (source-image pixels), clockwise in image
/// coordinates; empty when the mask is empty.
pub fn largest_region_outline(mask: &Bitmap) -> Vec<(f32, f32)> {
    let Some(start) = largest_region_start(mask) else { return vec![] };
    let region = flood(mask, start);
    trace(&region, start)
        .into_iter()
        .map(|(x, y)| ((mask.x0 as isize + x) as f32 + 0.5, (mask.y0 as isize + y) as f32 + 0.5))
        .collect()
}

/// The top-left pixel (in raster order) of the largest 8-connected region.
fn largest_region_start(mask: &Bitmap) -> Option<(isize, isize)> {
    let mut label = vec![0u32; mask.bits.len()];
    let mut best: Option<(usize, (isize, isize))> = None;
    let mut next = 0u32;
    for i in 0..mask.bits.len() {
        if !mask.bits[i] || label[i] != 0 {
            continue;
        }
        next += 1;
        let first = ((i % mask.w) as isize, (i / mask.w) as isize);
        let mut size = 0;
        let mut stack = vec![first];
        label[i] = next;
        while let Some((x, y)) = stack.pop() {
            size += 1;
            for (dx, dy) in NEIGHBOURS {
                let (nx, ny) = (x + dx, y + dy);
                if mask.get(nx, ny) {
                    let j = ny as usize * mask.w + nx as usize;
                    if label[j] == 0 {
                        label[j] = next;
                        stack.push((nx, ny));
                    }
                }
            }
        }
        if best.is_none_or(|(s, _)| size > s) {
            best = Some((size, first));
        }
    }
    best.map(|(_, p)| p)
}

/// The region containing `start`, alone.
fn flood(mask: &Bitmap, start: (isize, isize)) -> Bitmap {
    let mut out = Bitmap { bits: vec![false; mask.bits.len()], ..mask.clone() };
    let mut stack = vec![start];
    out.bits[start.1 as usize * mask.w + start.0 as usize] = true;
    while let Some((x, y)) = stack.pop() {
        for (dx, dy) in NEIGHBOURS {
            let (nx, ny) = (x + dx, y + dy);
            if mask.get(nx, ny) && !out.get(nx, ny) {
                out.bits[ny as usize * mask.w + nx as usize] = true;
                stack.push((nx, ny));
            }
        }
    }
    out
}

/// The 8 neighbours, clockwise from west (image coordinates, y down).
const NEIGHBOURS: [(isize, isize); 8] = [(-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1)];

/// Moore-neighbour tracing of the outer boundary, from its top-left pixel,
/// keeping only the corners (direction changes).
fn trace(region: &Bitmap, start: (isize, isize)) -> Vec<(isize, isize)> {
    let mut boundary = vec![start];
    // We arrived at `start` scanning rows left to right: its west is background.
    let mut current = start;
    let mut backtrack_dir = 0; // index into NEIGHBOURS of the background pixel we came from
    let limit = 4 * region.bits.len() + 8;
    for _ in 0..limit {
        let mut found = None;
        for step in 1..=8 {
            let dir = (backtrack_dir + step) % 8;
            let (dx, dy) = NEIGHBOURS[dir];
            let candidate = (current.0 + dx, current.1 + dy);
            if region.get(candidate.0, candidate.1) {
                found = Some((candidate, dir));
                break;
            }
        }
        let Some((next, dir)) = found else { break }; // a single pixel
        // The new backtrack is the neighbour of `next` we checked just before it.
        let prev_dir = (dir + 7) % 8;
        let (bx, by) = NEIGHBOURS[prev_dir];
        let back = (current.0 + bx, current.1 + by);
        backtrack_dir = NEIGHBOURS.iter().position(|&(dx, dy)| (next.0 + dx, next.1 + dy) == back).unwrap_or(0);
        if next == start && boundary.len() > 1 {
            break;
        }
        boundary.push(next);
        current = next;
    }
    corners(&boundary)
}

/// Drops vertices in the middle of straight runs.
fn corners(points: &[(isize, isize)]) -> Vec<(isize, isize)> {
    if points.len() < 3 {
        return points.to_vec();
    }
    let n = points.len();
    (0..n)
        .filter(|&i| {
            let (a, b, c) = (points[(i + n - 1) % n], points[i], points[(i + 1) % n]);
            (b.0 - a.0) * (c.1 - b.1) != (b.1 - a.1) * (c.0 - b.0)
        })
        .map(|i| points[i])
        .collect()
}

/// Shoelace area of a polygon.
pub fn polygon_area(points: &[(f32, f32)]) -> f32 {
    let n = points.len();
    let twice: f32 = (0..n).map(|i| points[i].0 * points[(i + 1) % n].1 - points[(i + 1) % n].0 * points[i].1).sum();
    twice.abs() / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(rows: &[&str]) -> Bitmap {
        let w = rows[0].len();
        let bits = rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect();
        Bitmap { x0: 10, y0: 20, w, h: rows.len(), bits }
    }

    #[test]
    fn a_rectangle_traces_to_its_four_corner_pixel_centres() {
        let m = bitmap(&["......", ".####.", ".####.", ".####.", "......"]);
        let poly = largest_region_outline(&m);
        assert_eq!(poly, vec![(11.5, 21.5), (14.5, 21.5), (14.5, 23.5), (11.5, 23.5)]);
        assert_eq!(polygon_area(&poly), 6.0); // 3 x 2 between pixel centres
    }

    #[test]
    fn the_largest_of_two_regions_wins() {
        let m = bitmap(&["##....", "##..##", "....##", "....##"]);
        let poly = largest_region_outline(&m);
        assert!(poly.iter().all(|&(x, _)| x >= 14.5), "{poly:?}");
        assert_eq!(polygon_area(&poly), 2.0);
    }

    #[test]
    fn concave_and_diagonal_shapes_close() {
        let m = bitmap(&["#...#", "##.##", ".###.", "..#..", "..#.."]);
        let poly = largest_region_outline(&m);
        assert!(poly.len() >= 6, "{poly:?}");
        assert_eq!(poly[0], (10.5, 20.5));
        for p in &poly {
            let (x, y) = ((p.0 - 10.5) as isize, (p.1 - 20.5) as isize);
            assert!(m.get(x, y), "vertex {p:?} is on the region");
        }
    }

    #[test]
    fn single_pixels_and_empty_masks() {
        assert_eq!(largest_region_outline(&bitmap(&["...", ".#.", "..."])), vec![(11.5, 21.5)]);
        assert!(largest_region_outline(&bitmap(&["...", "..."])).is_empty());
    }

    #[test]
    fn a_positive_prototype_fills_the_box_and_nothing_outside() {
        // One prototype, all +10: sigmoid ~ 1 inside the box; the box covers
        // input pixels 8..24 of a 32x32 input (protos 8x8, scale 1/4).
        let data = vec![10.0f32; 64];
        let protos = Protos { data: &data, count: 1, h: 8, w: 8 };
        let lb = Letterbox::new(32, 32, 32, 32);
        let b = BBox { x1: 8.0, y1: 8.0, x2: 24.0, y2: 24.0 };
        let m = object_mask(&protos, &[1.0], b, b, &lb);
        assert_eq!((m.x0, m.y0, m.w, m.h), (8, 8, 16, 16));
        let on = m.bits.iter().filter(|&&b| b).count();
        assert!(on >= 14 * 14, "{on} of 256 pixels set");
        let negative = object_mask(&protos, &[-1.0], b, b, &lb);
        assert!(negative.bits.iter().all(|&b| !b));
    }
}
