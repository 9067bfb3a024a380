//! The pure numeric core: image in, tensor out; tensor in, detections out.
//! Nothing here touches a device, a socket or the clock.

pub mod complete;
pub mod decode;
pub mod detect;
pub mod letterbox;
pub mod mask;
pub mod nms;
pub mod outputs;
pub mod pose;

/// What the model was trained to do; decides the extra fields in each object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Detect,
    Segment,
    Pose,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Detect => "detect",
            Task::Segment => "segment",
            Task::Pose => "pose",
        }
    }

    pub fn parse(s: &str) -> Option<Task> {
        match s.trim() {
            "detect" => Some(Task::Detect),
            "segment" => Some(Task::Segment),
            "pose" => Some(Task::Pose),
            _ => None,
        }
    }
}

/// An axis-aligned box in pixel coordinates, corners `(x1, y1)` and `(x2, y2)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    /// Intersection over union; 0 for two empty boxes.
    pub fn iou(&self, other: &BBox) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// One detected object: a class index, its score and its box.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class: usize,
    pub confidence: f32,
    pub bbox: BBox,
    /// Index of the anchor (grid cell) it came from, to fetch mask or keypoint data.
    pub anchor: usize,
}

/// A detection with its task-specific extras, in source-image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub detection: Detection,
    /// Outline of the largest mask region (segment models).
    pub segments: Option<Vec<(f32, f32)>>,
    /// Keypoints (pose models).
    pub keypoints: Option<pose::Keypoints>,
}

impl Object {
    /// An object whose box has been mapped to `bbox` (source pixels).
    pub fn new(detection: Detection, bbox: BBox) -> Object {
        Object { detection: Detection { bbox, ..detection }, segments: None, keypoints: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_boxes_is_one_and_of_disjoint_is_zero() {
        let a = BBox { x1: 0.0, y1: 0.0, x2: 10.0, y2: 10.0 };
        let b = BBox { x1: 20.0, y1: 20.0, x2: 30.0, y2: 30.0 };
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&b), 0.0);
    }

    #[test]
    fn iou_of_half_overlap() {
        let a = BBox { x1: 0.0, y1: 0.0, x2: 10.0, y2: 10.0 };
        let b = BBox { x1: 5.0, y1: 0.0, x2: 15.0, y2: 10.0 };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
    }
}
