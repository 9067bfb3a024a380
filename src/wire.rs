//! The JSON contracts: serialize-only types in the shape of Ultralytics'
//! `results[0].tojson()` and the HUB API envelope, and DeepStack's /
//! CodeProject.AI's answers, and the camera lines. Field order is the wire
//! order. The API, the CLI, the camera loop and the bench all write these.

use std::io;

use serde::Serialize;

use crate::model::{ModelInfo, Stage, Timings};
use crate::vision::Object as Found;

/// `{"success", "message", "data"}`, the envelope of every API answer.
#[derive(Serialize)]
pub struct Envelope<'a, T: Serialize> {
    pub success: bool,
    pub message: &'a str,
    pub data: T,
}

/// The empty object errors carry as `data`.
#[derive(Serialize)]
pub struct Empty {}

#[derive(Serialize)]
pub struct Object<'a> {
    pub name: &'a str,
    pub class: usize,
    pub confidence: f64,
    #[serde(rename = "box")]
    pub bbox: Box4,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Segments>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keypoints: Option<Keypoints>,
}

/// The outline polygon of a mask, same coordinate space as `box`.
#[derive(Serialize)]
pub struct Segments {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// One entry per keypoint; `visible` is the keypoint's score, 0-1.
#[derive(Serialize)]
pub struct Keypoints {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub visible: Vec<f64>,
}

#[derive(Serialize)]
pub struct Box4 {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

/// Rounds to 5 decimals, as Ultralytics' `tojson(decimals=5)`.
fn round5(v: f32) -> f64 {
    (v as f64 * 1e5).round() / 1e5
}

/// Detections as wire objects; with `normalize`, coordinates become
/// fractions of the image's width and height.
pub fn objects<'a>(found: &[Found], names: &'a [String], normalize: bool, width: u32, height: u32) -> Vec<Object<'a>> {
    let (sx, sy) = if normalize { (1.0 / width as f32, 1.0 / height as f32) } else { (1.0, 1.0) };
    let xs = |v: &[f32]| v.iter().map(|x| round5(x * sx)).collect();
    let ys = |v: &[f32]| v.iter().map(|y| round5(y * sy)).collect();
    found
        .iter()
        .map(|o| {
            let d = &o.detection;
            Object {
                name: names.get(d.class).map(String::as_str).unwrap_or("unknown"),
                class: d.class,
                confidence: round5(d.confidence),
                bbox: Box4 {
                    x1: round5(d.bbox.x1 * sx),
                    y1: round5(d.bbox.y1 * sy),
                    x2: round5(d.bbox.x2 * sx),
                    y2: round5(d.bbox.y2 * sy),
                },
                segments: o.segments.as_ref().map(|poly| {
                    let (x, y): (Vec<f32>, Vec<f32>) = poly.iter().copied().unzip();
                    Segments { x: xs(&x), y: ys(&y) }
                }),
                keypoints: o.keypoints.as_ref().map(|k| Keypoints {
                    x: xs(&k.x),
                    y: ys(&k.y),
                    visible: k.visible.iter().map(|v| round5(*v)).collect(),
                }),
            }
        })
        .collect()
}

/// One line of the camera log stream: the API answer, wrapped with where and
/// when the frame came from.
#[derive(Serialize)]
pub struct FrameLine<'a> {
    pub ts: String,
    /// The camera's name (`[a-z0-9_-]+`).
    pub camera: &'a str,
    /// Its source, without credentials.
    pub source: &'a str,
    pub frame: u64,
    pub width: u32,
    pub height: u32,
    pub model: &'a str,
    pub speed: Speed,
    pub success: bool,
    pub message: &'a str,
    pub data: Vec<Object<'a>>,
}

/// Milliseconds per stage, to a tenth, as Ultralytics' `results.speed`: one
/// key per [`Stage`], in order.
pub struct Speed(pub Timings);

impl Serialize for Speed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Stage::ALL.len()))?;
        for (stage, d) in self.0.iter() {
            map.serialize_entry(stage.name(), &((d.as_secs_f64() * 1e4).round() / 10.0))?;
        }
        map.end()
    }
}

/// One entry of `GET /v1/models`.
#[derive(Serialize)]
pub struct ModelEntry<'a> {
    pub id: &'a str,
    /// The architecture named in the export's metadata ("YOLO11n").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<&'a str>,
    pub task: &'a str,
    pub default: bool,
    pub input_size: u32,
    pub any_size: bool,
    pub precision: &'a str,
    /// Why this precision runs (the built-in model, chosen per CPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision_reason: Option<&'a str>,
    pub source: &'a str,
    pub sha256: &'a str,
    pub classes: Classes<'a>,
}

/// Class names as `{"0": "person", ...}`, in class order.
pub struct Classes<'a>(pub &'a [String]);

impl Serialize for Classes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (i, name) in self.0.iter().enumerate() {
            map.serialize_entry(&i.to_string(), name)?;
        }
        map.end()
    }
}

impl<'a> ModelEntry<'a> {
    pub fn new(info: &'a ModelInfo, default: bool) -> Self {
        ModelEntry {
            id: &info.id,
            family: info.family.as_deref(),
            task: info.task.as_str(),
            default,
            input_size: info.input_size,
            any_size: info.any_size,
            precision: info.precision,
            precision_reason: info.precision_reason.as_deref(),
            source: &info.source,
            sha256: &info.sha256,
            classes: Classes(&info.names),
        }
    }
}

/// A DeepStack / CodeProject.AI detection answer: DeepStack's fields, then
/// CodeProject.AI's extras, then DeepStack's `duration` (always 0).
#[derive(Serialize)]
pub struct DeepStackAnswer<'a> {
    pub success: bool,
    pub predictions: Vec<DeepStackPrediction<'a>>,
    pub count: usize,
    #[serde(rename = "inferenceMs")]
    pub inference_ms: u64,
    #[serde(rename = "processMs")]
    pub process_ms: u64,
    pub code: u16,
    pub message: String,
    pub duration: u32,
}

/// One DeepStack object: integer pixel corners of the uploaded image.
#[derive(Serialize, Debug, PartialEq)]
pub struct DeepStackPrediction<'a> {
    pub label: &'a str,
    pub confidence: f64,
    pub x_min: u32,
    pub y_min: u32,
    pub x_max: u32,
    pub y_max: u32,
}

/// Every DeepStack error: `predictions` is there (empty) because some
/// clients read it without looking at `success`.
#[derive(Serialize)]
pub struct DeepStackError<'a> {
    pub success: bool,
    pub error: &'a str,
    pub duration: u32,
    pub predictions: [DeepStackPrediction<'static>; 0],
}

/// `/v1/vision/custom/list`.
#[derive(Serialize)]
pub struct DeepStackModels<'a> {
    pub success: bool,
    pub models: Vec<&'a str>,
}

/// `/v1/status/updateavailable`, as CodeProject.AI answers it to Blue Iris.
#[derive(Serialize)]
pub struct UpdateAvailable {
    pub success: bool,
    #[serde(rename = "updateAvailable")]
    pub update_available: bool,
}

/// Detections as DeepStack predictions, most confident first: corners
/// rounded to whole pixels and clamped to the `width` x `height` image.
pub fn deepstack_predictions<'a>(
    found: &[Found],
    names: &'a [String],
    width: u32,
    height: u32,
) -> Vec<DeepStackPrediction<'a>> {
    let px = |v: f32, max: u32| v.round().clamp(0.0, max as f32) as u32;
    let mut sorted: Vec<&Found> = found.iter().collect();
    sorted.sort_by(|a, b| b.detection.confidence.total_cmp(&a.detection.confidence));
    sorted
        .into_iter()
        .map(|o| {
            let d = &o.detection;
            DeepStackPrediction {
                label: names.get(d.class).map(String::as_str).unwrap_or("unknown"),
                confidence: round5(d.confidence),
                x_min: px(d.bbox.x1, width),
                y_min: px(d.bbox.y1, height),
                x_max: px(d.bbox.x2, width),
                y_max: px(d.bbox.y2, height),
            }
        })
        .collect()
}

/// Serializes `value` as one JSON document to `out`.
pub fn write<T: Serialize>(out: impl io::Write, value: &T) -> io::Result<()> {
    serde_json::to_writer(out, value).map_err(io::Error::other)
}

/// Serializes `value` to bytes (for HTTP bodies).
pub fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("wire types always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::{BBox, Detection};

    #[test]
    fn objects_keep_the_hub_field_order_and_round() {
        let names = vec!["person".to_string()];
        let det = Detection {
            class: 0,
            confidence: 0.876543,
            bbox: BBox { x1: 1.0, y1: 2.0, x2: 30.5, y2: 40.25 },
            anchor: 0,
        };
        let json =
            String::from_utf8(to_vec(&objects(&[Found::new(det.clone(), det.bbox)], &names, false, 100, 50))).unwrap();
        assert_eq!(
            json,
            r#"[{"name":"person","class":0,"confidence":0.87654,"box":{"x1":1.0,"y1":2.0,"x2":30.5,"y2":40.25}}]"#
        );
    }

    #[test]
    fn normalize_divides_by_width_and_height() {
        let names = vec!["a".to_string()];
        let det =
            Detection { class: 0, confidence: 0.5, bbox: BBox { x1: 10.0, y1: 5.0, x2: 100.0, y2: 50.0 }, anchor: 0 };
        let mut found = Found::new(det.clone(), det.bbox);
        found.segments = Some(vec![(50.0, 25.0)]);
        found.keypoints = Some(crate::vision::pose::Keypoints { x: vec![20.0], y: vec![10.0], visible: vec![0.5] });
        let objs = objects(&[found], &names, true, 100, 50);
        let b = &objs[0].bbox;
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0.1, 0.1, 1.0, 1.0));
        let json = String::from_utf8(to_vec(&objs[0])).unwrap();
        assert!(
            json.ends_with(r#""segments":{"x":[0.5],"y":[0.5]},"keypoints":{"x":[0.2],"y":[0.2],"visible":[0.5]}}"#),
            "{json}"
        );
    }

    #[test]
    fn classes_serialize_in_class_order() {
        let names: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
        let json = String::from_utf8(to_vec(&Classes(&names))).unwrap();
        assert!(json.starts_with(r#"{"0":"c0","1":"c1","2":"c2""#), "{json}");
        assert!(json.ends_with(r#""10":"c10","11":"c11"}"#), "{json}");
    }

    #[test]
    fn deepstack_predictions_are_sorted_whole_pixels_inside_the_image() {
        let names = vec!["person".to_string(), "bus".to_string()];
        let det = |class, confidence, bbox| Found::new(Detection { class, confidence, bbox, anchor: 0 }, bbox);
        let found = [
            det(0, 0.5, BBox { x1: -3.2, y1: 10.49, x2: 40.5, y2: 60.0 }),
            det(1, 0.9, BBox { x1: 5.0, y1: 6.0, x2: 120.7, y2: 99.6 }),
        ];
        let json = String::from_utf8(to_vec(&deepstack_predictions(&found, &names, 100, 80))).unwrap();
        assert_eq!(
            json,
            r#"[{"label":"bus","confidence":0.9,"x_min":5,"y_min":6,"x_max":100,"y_max":80},{"label":"person","confidence":0.5,"x_min":0,"y_min":10,"x_max":41,"y_max":60}]"#
        );
    }

    #[test]
    fn deepstack_errors_carry_empty_predictions() {
        let body = to_vec(&DeepStackError { success: false, error: "Incorrect api key", duration: 0, predictions: [] });
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"success":false,"error":"Incorrect api key","duration":0,"predictions":[]}"#
        );
    }

    #[test]
    fn error_envelope_has_empty_data() {
        let body = to_vec(&Envelope { success: false, message: "bad \"size\"", data: Empty {} });
        assert_eq!(String::from_utf8(body).unwrap(), r#"{"success":false,"message":"bad \"size\"","data":{}}"#);
    }
}
