//! Greedy per-class non-maximum suppression, as Ultralytics' `non_max_suppression`.

use super::Detection;

/// At most this many candidates (best first) enter NMS, like Ultralytics' `max_nms`.
pub const MAX_CANDIDATES: usize = 30_000;

/// Keeps the best box of every cluster of same-class boxes overlapping by more
/// than `iou`, returning at most `max_det` detections sorted by confidence.
pub fn nms(mut candidates: Vec<Detection>, iou: f32, max_det: usize) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    candidates.truncate(MAX_CANDIDATES);
    let mut kept: Vec<Detection> = Vec::new();
    for cand in candidates {
        if kept.len() >= max_det {
            break;
        }
        let suppressed = kept.iter().any(|k| k.class == cand.class && k.bbox.iou(&cand.bbox) > iou);
        if !suppressed {
            kept.push(cand);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::BBox;

    fn det(class: usize, confidence: f32, x1: f32) -> Detection {
        Detection { class, confidence, bbox: BBox { x1, y1: 0.0, x2: x1 + 10.0, y2: 10.0 }, anchor: 0 }
    }

    #[test]
    fn overlapping_boxes_of_one_class_keep_the_best() {
        let out = nms(vec![det(0, 0.5, 1.0), det(0, 0.9, 0.0), det(0, 0.7, 50.0)], 0.45, 300);
        let confs: Vec<f32> = out.iter().map(|d| d.confidence).collect();
        assert_eq!(confs, vec![0.9, 0.7]);
    }

    #[test]
    fn overlapping_boxes_of_different_classes_are_both_kept() {
        let out = nms(vec![det(0, 0.9, 0.0), det(1, 0.8, 0.0)], 0.45, 300);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn iou_threshold_is_strict() {
        // Boxes at x=0 and x=5 overlap with IoU exactly 1/3.
        let pair = || vec![det(0, 0.9, 0.0), det(0, 0.8, 5.0)];
        assert_eq!(nms(pair(), 1.0 / 3.0, 300).len(), 2);
        assert_eq!(nms(pair(), 0.3, 300).len(), 1);
    }

    #[test]
    fn max_det_caps_the_output() {
        let many: Vec<Detection> = (0..10).map(|i| det(0, i as f32 / 10.0, i as f32 * 20.0)).collect();
        let out = nms(many, 0.45, 3);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].confidence, 0.9);
    }

    #[test]
    fn nan_scores_do_not_panic() {
        let out = nms(vec![det(0, f32::NAN, 0.0), det(0, 0.5, 40.0)], 0.45, 300);
        assert_eq!(out.len(), 2);
    }
}
