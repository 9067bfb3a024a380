//! The timed stages of one prediction, named once: the camera lines' `speed`,
//! the `Server-Timing` header, the `yolod_stage_seconds` metric and the bench
//! table all take their stage names and order from [`Stage`].

use std::ops::{Index, IndexMut};
use std::time::Duration;

/// A stage of one prediction, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Encoded image (or camera frame) to RGB.
    Decode,
    /// Letterbox and normalise into the input tensor.
    Preprocess,
    /// The network.
    Inference,
    /// Output decoding, NMS, masks or keypoints.
    Postprocess,
}

/// The name the metrics and the bench give the whole prediction, beside the stages.
pub const TOTAL: &str = "total";

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 4] = [Stage::Decode, Stage::Preprocess, Stage::Inference, Stage::Postprocess];

    /// Its name in JSON keys, metric labels, headers and the bench table.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Preprocess => "preprocess",
            Stage::Inference => "inference",
            Stage::Postprocess => "postprocess",
        }
    }
}

/// Wall time spent in each stage of one prediction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings([Duration; Stage::ALL.len()]);

impl Timings {
    /// Each stage with its time, in order.
    pub fn iter(&self) -> impl Iterator<Item = (Stage, Duration)> + '_ {
        Stage::ALL.into_iter().zip(self.0)
    }
}

impl From<[Duration; Stage::ALL.len()]> for Timings {
    /// Times in [`Stage::ALL`] order.
    fn from(durations: [Duration; Stage::ALL.len()]) -> Timings {
        Timings(durations)
    }
}

impl Index<Stage> for Timings {
    type Output = Duration;
    fn index(&self, stage: Stage) -> &Duration {
        &self.0[stage as usize]
    }
}

impl IndexMut<Stage> for Timings {
    fn index_mut(&mut self, stage: Stage) -> &mut Duration {
        &mut self.0[stage as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_index_in_the_order_they_are_listed() {
        let ms = Duration::from_millis;
        let mut t = Timings::from([ms(1), ms(2), ms(3), ms(4)]);
        t[Stage::Inference] += ms(10);
        let names: Vec<(&str, Duration)> = t.iter().map(|(s, d)| (s.name(), d)).collect();
        assert_eq!(names, [("decode", ms(1)), ("preprocess", ms(2)), ("inference", ms(13)), ("postprocess", ms(4))]);
    }
}
