//! Decoding YOLOv8 outputs into candidate boxes: either the three raw head
//! maps (DFL box bins + class logits, any input size) or the exported
//! `output0` (boxes already decoded, scores already sigmoided).

use super::{BBox, Detection};

/// Bins per box side in YOLOv8's distribution focal loss head (YOLO26 has
/// none: one channel per side, the distance itself).
pub const REG_MAX: usize = 16;

/// One level of the raw head in NCHW order with batch 1, each channel a
/// `h * w` plane: `4 * reg_max` box channels (DFL bin logits per side, or
/// with `reg_max` 1 the distances themselves), and one logit per class.
#[derive(Debug, Clone, Copy)]
pub struct HeadMap<'a> {
    pub boxes: &'a [f32],
    pub scores: &'a [f32],
    pub h: usize,
    pub w: usize,
    pub stride: f32,
}

impl<'a> HeadMap<'a> {
    /// A map whose `4 * REG_MAX` box channels and class channels are one
    /// tensor (YOLOv8 exports up to Ultralytics 8.3).
    pub fn joined(data: &'a [f32], h: usize, w: usize, stride: f32) -> HeadMap<'a> {
        let (boxes, scores) = data.split_at((4 * REG_MAX * h * w).min(data.len()));
        HeadMap { boxes, scores, h, w, stride }
    }

    /// Box channels per side: 16 (DFL) or 1 (distances).
    pub fn reg_max(&self) -> usize {
        self.boxes.len() / (4 * self.h * self.w).max(1)
    }
}

/// Logit whose sigmoid equals `p`: comparing logits avoids a sigmoid per score.
pub fn logit(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Per anchor, the best class and its score, scanning class planes in memory order.
fn best_classes(planes: &[f32], anchors: usize, classes: usize) -> (Vec<f32>, Vec<u32>) {
    let mut best = vec![f32::NEG_INFINITY; anchors];
    let mut best_class = vec![0u32; anchors];
    for c in 0..classes {
        let plane = &planes[c * anchors..(c + 1) * anchors];
        for (i, &v) in plane.iter().enumerate() {
            if v > best[i] {
                best[i] = v;
                best_class[i] = c as u32;
            }
        }
    }
    (best, best_class)
}

/// Candidates from the raw head maps whose best class score exceeds
/// `confidence`, in network-input pixels. `anchor` numbers cells across maps
/// in order, matching the exported graph's anchor order.
pub fn decode_head(maps: &[HeadMap], classes: usize, confidence: f32) -> Vec<Detection> {
    let threshold = logit(confidence);
    let mut out = Vec::new();
    let mut anchor_base = 0;
    for map in maps {
        let hw = map.h * map.w;
        let reg_max = map.reg_max();
        assert!(map.boxes.len() == 4 * reg_max * hw && reg_max > 0, "box map shape mismatch");
        assert_eq!(map.scores.len(), classes * hw, "class map shape mismatch");
        let (best, best_class) = best_classes(map.scores, hw, classes);
        for (cell, &score) in best.iter().enumerate() {
            if score <= threshold {
                continue;
            }
            let mut dist = [0f32; 4];
            for (side, d) in dist.iter_mut().enumerate() {
                *d = match reg_max {
                    1 => map.boxes[side * hw + cell],
                    _ => dfl_expectation(map.boxes, reg_max, side * reg_max, hw, cell),
                };
            }
            let cx = (cell % map.w) as f32 + 0.5;
            let cy = (cell / map.w) as f32 + 0.5;
            out.push(Detection {
                class: best_class[cell] as usize,
                confidence: sigmoid(score),
                bbox: BBox {
                    x1: (cx - dist[0]) * map.stride,
                    y1: (cy - dist[1]) * map.stride,
                    x2: (cx + dist[2]) * map.stride,
                    y2: (cy + dist[3]) * map.stride,
                },
                anchor: anchor_base + cell,
            });
        }
        anchor_base += hw;
    }
    out
}

/// Expected distance under the softmax of `bins` bin logits starting at channel `first`.
fn dfl_expectation(data: &[f32], bins: usize, first: usize, hw: usize, cell: usize) -> f32 {
    let bin = |b: usize| data[(first + b) * hw + cell];
    let max = (0..bins).map(bin).fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0, 0.0);
    for b in 0..bins {
        let e = (bin(b) - max).exp();
        sum += e;
        weighted += e * b as f32;
    }
    weighted / sum
}

/// Candidates from an exported `output0` laid out `(4 + classes + extra) x anchors`:
/// centre x, centre y, width, height, then sigmoided class scores.
pub fn decode_exported(output: &[f32], anchors: usize, classes: usize, confidence: f32) -> Vec<Detection> {
    assert!(output.len() >= (4 + classes) * anchors, "output0 shape mismatch");
    let (best, best_class) = best_classes(&output[4 * anchors..], anchors, classes);
    let row = |r: usize, i: usize| output[r * anchors + i];
    best.iter()
        .enumerate()
        .filter(|&(_, &score)| score > confidence)
        .map(|(i, &score)| {
            let (cx, cy, w, h) = (row(0, i), row(1, i), row(2, i), row(3, i));
            Detection {
                class: best_class[i] as usize,
                confidence: score,
                bbox: BBox { x1: cx - w / 2.0, y1: cy - h / 2.0, x2: cx + w / 2.0, y2: cy + h / 2.0 },
                anchor: i,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2x2 head map for 3 classes where every logit is `low` except those set.
    fn head(low: f32) -> Vec<f32> {
        vec![low; (4 * REG_MAX + 3) * 4]
    }

    fn set(data: &mut [f32], channel: usize, cell: usize, v: f32) {
        data[channel * 4 + cell] = v;
    }

    #[test]
    fn logit_inverts_sigmoid() {
        for p in [0.01f32, 0.25, 0.5, 0.9] {
            assert!((sigmoid(logit(p)) - p).abs() < 1e-6);
        }
    }

    #[test]
    fn peaked_bins_decode_to_their_index_times_stride() {
        let mut data = head(-20.0);
        let cell = 3; // x=1, y=1: anchor centre (1.5, 1.5)
        for (side, bin) in [2usize, 1, 3, 0].iter().enumerate() {
            set(&mut data, side * REG_MAX + bin, cell, 20.0);
        }
        set(&mut data, 4 * REG_MAX + 2, cell, 2.0);
        let maps = [HeadMap::joined(&data, 2, 2, 8.0)];
        let out = decode_head(&maps, 3, 0.25);
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!((d.class, d.anchor), (2, 3));
        assert!((d.confidence - sigmoid(2.0)).abs() < 1e-6);
        let b = d.bbox;
        let expect = [(1.5 - 2.0) * 8.0, (1.5 - 1.0) * 8.0, (1.5 + 3.0) * 8.0, (1.5 + 0.0) * 8.0];
        for (got, want) in [b.x1, b.y1, b.x2, b.y2].iter().zip(expect) {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
    }

    #[test]
    fn flat_bins_decode_to_the_mean_bin() {
        let mut data = head(0.0);
        set(&mut data, 4 * REG_MAX, 0, 5.0);
        let maps = [HeadMap::joined(&data, 2, 2, 1.0)];
        let out = decode_head(&maps, 3, 0.25);
        // every other cell has class logits 0 -> 0.5 > 0.25 too
        assert_eq!(out.len(), 4);
        let b = out[0].bbox;
        assert!((b.x1 - (0.5 - 7.5)).abs() < 1e-4 && (b.x2 - (0.5 + 7.5)).abs() < 1e-4);
    }

    #[test]
    fn scores_at_or_below_the_threshold_are_dropped() {
        let data = head(logit(0.25));
        let maps = [HeadMap::joined(&data, 2, 2, 8.0)];
        assert!(decode_head(&maps, 3, 0.25).is_empty());
        assert_eq!(decode_head(&maps, 3, 0.2).len(), 4);
    }

    #[test]
    fn anchors_number_across_maps() {
        let mut a = head(-20.0);
        let mut b = head(-20.0);
        set(&mut a, 4 * REG_MAX, 1, 3.0);
        set(&mut b, 4 * REG_MAX + 1, 2, 3.0);
        let maps = [HeadMap::joined(&a, 2, 2, 8.0), HeadMap::joined(&b, 2, 2, 16.0)];
        let anchors: Vec<usize> = decode_head(&maps, 3, 0.5).iter().map(|d| d.anchor).collect();
        assert_eq!(anchors, vec![1, 6]);
    }

    /// YOLO26's head has no DFL: one channel per side is the distance in
    /// strides, in its own tensor beside the class logits.
    #[test]
    fn distances_without_bins_decode_directly() {
        let boxes = [
            vec![0.0, 0.0, 0.0, 1.0],  // left
            vec![0.0, 0.0, 0.0, 0.5],  // top
            vec![0.0, 0.0, 0.0, 2.0],  // right
            vec![0.0, 0.0, 0.0, 0.25], // bottom
        ]
        .concat();
        let mut scores = vec![-20.0; 3 * 4];
        scores[4 + 3] = 1.0; // class 1, cell 3
        let map = HeadMap { boxes: &boxes, scores: &scores, h: 2, w: 2, stride: 8.0 };
        assert_eq!(map.reg_max(), 1);
        let out = decode_head(&[map], 3, 0.25);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].class, out[0].anchor), (1, 3));
        assert_eq!(out[0].bbox, BBox { x1: 0.5 * 8.0, y1: 1.0 * 8.0, x2: 3.5 * 8.0, y2: 1.75 * 8.0 });
    }

    #[test]
    fn exported_output_is_read_as_centre_size_and_scores() {
        // 2 anchors, 2 classes: rows cx, cy, w, h, s0, s1
        let out = [10.0, 50.0, 20.0, 60.0, 4.0, 10.0, 6.0, 20.0, 0.1, 0.9, 0.8, 0.2];
        let dets = decode_exported(&out, 2, 2, 0.5);
        assert_eq!(dets.len(), 2);
        assert_eq!((dets[0].class, dets[0].confidence), (1, 0.8));
        assert_eq!(dets[0].bbox, BBox { x1: 8.0, y1: 17.0, x2: 12.0, y2: 23.0 });
        assert_eq!((dets[1].class, dets[1].anchor), (0, 1));
    }
}
