//! Pose keypoints from YOLOv8's raw keypoint maps: per anchor, `K x 3`
//! channels (x, y, visibility logits) decoded against the anchor's grid cell.

use super::letterbox::Letterbox;

/// Keypoints of one object in source-image pixels; `visible` is the 0-1 score.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Keypoints {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub visible: Vec<f32>,
}

/// One raw keypoint map: `K * 3` planes of `h x w` (NCHW, batch 1).
#[derive(Debug, Clone, Copy)]
pub struct KeypointMap<'a> {
    pub data: &'a [f32],
    pub h: usize,
    pub w: usize,
    pub stride: f32,
}

/// Decodes the keypoints of `anchor` (numbered across maps in order), as
/// Ultralytics' `kpts_decode`: `x = (2 * raw + cell_x) * stride`, same for y,
/// visibility = sigmoid. Coordinates are mapped back through the letterbox and
/// clipped to the source image.
pub fn decode(maps: &[KeypointMap], anchor: usize, count: usize, lb: &Letterbox) -> Option<Keypoints> {
    let mut base = 0;
    for map in maps {
        let hw = map.h * map.w;
        if anchor >= base + hw {
            base += hw;
            continue;
        }
        let cell = anchor - base;
        let (cx, cy) = ((cell % map.w) as f32, (cell / map.w) as f32);
        let at = |channel: usize| map.data[channel * hw + cell];
        let mut k = Keypoints::default();
        for i in 0..count {
            let x = (at(3 * i) * 2.0 + cx) * map.stride;
            let y = (at(3 * i + 1) * 2.0 + cy) * map.stride;
            let (sx, sy) = lb.unmap_point(x, y);
            k.x.push(sx.clamp(0.0, lb.src_w as f32));
            k.y.push(sy.clamp(0.0, lb.src_h as f32));
            k.visible.push(1.0 / (1.0 + (-at(3 * i + 2)).exp()));
        }
        return Some(k);
    }
    None
}

/// Keypoints already decoded by the export: `value(k)` is the k-th value
/// after an object's box and scores (x, y, visibility per keypoint, in
/// network-input pixels), whichever way the output lays them out.
pub fn from_values(value: impl Fn(usize) -> f32, count: usize, lb: &Letterbox) -> Keypoints {
    let mut k = Keypoints::default();
    for i in 0..count {
        let (sx, sy) = lb.unmap_point(value(3 * i), value(3 * i + 1));
        k.x.push(sx.clamp(0.0, lb.src_w as f32));
        k.y.push(sy.clamp(0.0, lb.src_h as f32));
        k.visible.push(value(3 * i + 2));
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypoints_decode_against_their_cell_and_stride() {
        // Two 2x2 maps with one keypoint each; anchor 5 is map 1, cell (1, 0).
        let a = vec![0.0f32; 3 * 4];
        let mut b = vec![0.0f32; 3 * 4];
        b[1] = 0.25; // x raw at cell 1
        b[4 + 1] = 0.5; // y raw
        b[8 + 1] = 0.0; // visibility logit 0 -> 0.5
        let maps =
            [KeypointMap { data: &a, h: 2, w: 2, stride: 8.0 }, KeypointMap { data: &b, h: 2, w: 2, stride: 16.0 }];
        let lb = Letterbox::new(64, 64, 64, 64);
        let k = decode(&maps, 5, 1, &lb).unwrap();
        assert_eq!(k.x, vec![(0.5 + 1.0) * 16.0]);
        assert_eq!(k.y, vec![(1.0 + 0.0) * 16.0]);
        assert_eq!(k.visible, vec![0.5]);
        assert!(decode(&maps, 8, 1, &lb).is_none());
    }

    #[test]
    fn keypoints_are_unletterboxed_and_clipped() {
        let data = vec![-5.0f32; 3 * 4];
        let maps = [KeypointMap { data: &data, h: 2, w: 2, stride: 8.0 }];
        let lb = Letterbox::new(32, 16, 16, 16); // gain 0.5, 4 px of padding on top
        let k = decode(&maps, 3, 1, &lb).unwrap();
        assert_eq!((k.x[0], k.y[0]), (0.0, 0.0)); // (2*-5 + 1) * 8 < 0 -> clipped
        assert!(k.visible[0] < 0.01);
    }
}
