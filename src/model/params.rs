//! Inference arguments: the one place that holds their defaults and valid
//! ranges. The API's fields, the CLI's flags, the config file's camera
//! tables and DeepStack's `min_confidence` all check against these.

use std::ops::RangeInclusive;

use super::MAX_DETECTIONS;

/// Inference arguments, already validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub size: u32,
    pub confidence: f32,
    pub iou: f32,
    /// Objects kept at most (the best ones).
    pub max_detections: usize,
    /// Run an image smaller than `size` at its own longest side (rounded up
    /// to the stride) instead of scaling it up: a 320x320 crop runs at 320.
    pub shrink_to_image: bool,
}

impl Default for Params {
    /// The HUB API's defaults: size 640, confidence 0.25, IoU 0.45.
    fn default() -> Params {
        Params::new(Params::DEFAULT_SIZE, Params::DEFAULT_CONFIDENCE, Params::DEFAULT_IOU)
    }
}

impl Params {
    pub const DEFAULT_SIZE: u32 = 640;
    pub const DEFAULT_CONFIDENCE: f32 = 0.25;
    pub const DEFAULT_IOU: f32 = 0.45;
    /// Inference sizes accepted (the longest side, before rounding up to the stride).
    pub const SIZES: RangeInclusive<u32> = 32..=1280;
    /// Confidences accepted: lower ones would keep noise.
    pub const CONFIDENCES: RangeInclusive<f32> = 0.01..=1.0;
    /// NMS IoU thresholds accepted.
    pub const IOUS: RangeInclusive<f32> = 0.0..=0.95;

    /// `size`, `confidence` and `iou`, with the default cap and no shrinking.
    pub fn new(size: u32, confidence: f32, iou: f32) -> Params {
        Params { size, confidence, iou, max_detections: MAX_DETECTIONS, shrink_to_image: false }
    }

    /// The size asked of the network for an image of `width` x `height`.
    pub fn size_for(&self, width: u32, height: u32) -> u32 {
        if self.shrink_to_image { self.size.min(width.max(height).max(1)) } else { self.size }
    }

    /// `text` as an inference size, or the valid range ("valid range is 32 - 1280").
    pub fn parse_size(text: &str) -> Result<u32, String> {
        text.trim().parse().ok().filter(|n| Params::SIZES.contains(n)).ok_or_else(|| range(&Params::SIZES))
    }

    /// `text` as a confidence, or the valid range.
    pub fn parse_confidence(text: &str) -> Result<f32, String> {
        parse_within(text, &Params::CONFIDENCES)
    }

    /// `confidence` if it is in range, else the valid range.
    pub fn check_confidence(confidence: f32) -> Result<f32, String> {
        Some(confidence).filter(|x| Params::CONFIDENCES.contains(x)).ok_or_else(|| range(&Params::CONFIDENCES))
    }

    /// `text` as an IoU threshold, or the valid range.
    pub fn parse_iou(text: &str) -> Result<f32, String> {
        parse_within(text, &Params::IOUS)
    }
}

fn parse_within(text: &str, valid: &RangeInclusive<f32>) -> Result<f32, String> {
    text.trim().parse().ok().filter(|x| valid.contains(x)).ok_or_else(|| range(valid))
}

/// "valid range is 0.01 - 1.0", as the API's errors word it.
fn range<T: std::fmt::Debug>(valid: &RangeInclusive<T>) -> String {
    format!("valid range is {:?} - {:?}", valid.start(), valid.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_runs_small_pictures_at_their_own_size_and_never_above_size() {
        let shrink = Params { shrink_to_image: true, ..Params::new(640, 0.4, 0.45) };
        assert_eq!(shrink.size_for(320, 320), 320);
        assert_eq!(shrink.size_for(100, 60), 100);
        assert_eq!(shrink.size_for(1280, 720), 640);
        assert_eq!(Params::new(640, 0.4, 0.45).size_for(320, 320), 640);
    }

    #[test]
    fn values_are_parsed_within_their_ranges_and_refused_with_them() {
        assert_eq!(Params::parse_size(" 320 "), Ok(320));
        assert_eq!(Params::parse_size("1281"), Err("valid range is 32 - 1280".into()));
        assert_eq!(Params::parse_size("-1"), Err("valid range is 32 - 1280".into()));
        assert_eq!(Params::parse_confidence("0.01"), Ok(0.01));
        assert_eq!(Params::parse_confidence("0"), Err("valid range is 0.01 - 1.0".into()));
        assert_eq!(Params::parse_iou("0.96"), Err("valid range is 0.0 - 0.95".into()));
        assert_eq!(Params::parse_iou("NaN"), Err("valid range is 0.0 - 0.95".into()));
        assert_eq!(Params::default(), Params::new(640, 0.25, 0.45));
    }
}
