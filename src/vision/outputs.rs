//! From the network's output tensors to objects: which decoder reads which
//! export layout. The model seam hands over plain f32 tensors and the layout
//! it found at load; nothing here knows tract.

use anyhow::{Result, bail, ensure};

use super::detect::{self, HeadMap};
use super::letterbox::Letterbox;
use super::mask::{self, Protos};
use super::pose::{self, KeypointMap};
use super::{BBox, Detection, Object, Task, nms};

/// One output tensor: its values (row-major) and its shape.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    pub data: &'a [f32],
    pub shape: &'a [usize],
}

/// How a model's outputs are laid out, found once at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The head cut before its decode: `levels` per-stride maps of
    /// `4 * REG_MAX + classes` channels, or with `split` `levels` box maps
    /// (`4 * reg_max` channels) then `levels` class maps; then as many
    /// mask-coefficient (segment) or keypoint (pose) maps, then the
    /// prototypes (segment).
    Maps { levels: usize, split: bool },
    /// Ultralytics' default export: output0 is `1 x (4 + classes + extra) x
    /// anchors`, boxes as centre and size in input pixels, class scores
    /// after the sigmoid; then mask coefficients or decoded keypoints.
    /// Prototypes in output1. NMS is ours.
    Channels,
    /// An NMS-free (end2end) export of YOLOv10 or YOLO26: output0 is
    /// `1 x rows x (6 + extra)`, each row x1, y1, x2, y2, score, class, then
    /// mask coefficients or keypoints. The rows are already chosen: no NMS,
    /// only the confidence threshold and the cap.
    Rows,
}

/// What the decoders need to know besides the tensors.
#[derive(Debug, Clone, Copy)]
pub struct Decoding {
    pub task: Task,
    pub classes: usize,
    /// Keypoints per object (pose).
    pub keypoints: usize,
    pub confidence: f32,
    pub iou: f32,
    pub max_detections: usize,
}

/// Decodes `outputs` into objects in source-image pixels, best first: boxes,
/// then masks or keypoints for the objects kept.
pub fn objects(layout: Layout, outputs: &[Tensor], d: &Decoding, lb: &Letterbox) -> Result<Vec<Object>> {
    match layout {
        Layout::Maps { levels, split } => from_maps(levels, split, outputs, d, lb),
        Layout::Channels => from_channels(outputs, d, lb),
        Layout::Rows => from_rows(outputs, d, lb),
    }
}

/// An NCHW batch-1 tensor as (data, h, w).
fn plane<'a>(t: &Tensor<'a>) -> Result<(&'a [f32], usize, usize)> {
    ensure!(t.shape.len() == 4 && t.shape[0] == 1, "expected a 1xCxHxW map, found {:?}", t.shape);
    Ok((t.data, t.shape[2], t.shape[3]))
}

fn protos<'a>(t: &Tensor<'a>) -> Result<Protos<'a>> {
    ensure!(t.shape.len() == 4 && t.shape[0] == 1, "expected 1x32xHxW prototypes, found {:?}", t.shape);
    Ok(Protos { data: t.data, count: t.shape[1], h: t.shape[2], w: t.shape[3] })
}

/// Output0 of a 3-D export as (data, rows, columns).
fn table<'a>(outputs: &[Tensor<'a>]) -> Result<(&'a [f32], usize, usize)> {
    let Some(out) = outputs.first() else { bail!("the model gave no output") };
    ensure!(out.shape.len() == 3 && out.shape[0] == 1, "unexpected output0 shape {:?}", out.shape);
    Ok((out.data, out.shape[1], out.shape[2]))
}

/// The object's mask outline, from its coefficients and the prototypes.
fn outline(protos: &Protos, coeffs: &[f32], det: &Detection, obj: &Object, lb: &Letterbox) -> Vec<(f32, f32)> {
    mask::largest_region_outline(&mask::object_mask(protos, coeffs, det.bbox, obj.detection.bbox, lb))
}

fn from_maps(levels: usize, split: bool, outputs: &[Tensor], d: &Decoding, lb: &Letterbox) -> Result<Vec<Object>> {
    let size = lb.dst_w as f32;
    let first_extra = if split { 2 * levels } else { levels };
    ensure!(outputs.len() >= first_extra, "expected {first_extra} head maps, the plan gave {}", outputs.len());
    let head = (0..levels)
        .map(|level| {
            let (data, h, w) = plane(&outputs[level])?;
            let stride = size / w as f32;
            let map = if split {
                let (scores, sh, sw) = plane(&outputs[levels + level])?;
                ensure!((sh, sw) == (h, w) && scores.len() == d.classes * h * w, "class map {level} does not match");
                HeadMap { boxes: data, scores, h, w, stride }
            } else {
                ensure!(
                    data.len() == (4 * detect::REG_MAX + d.classes) * h * w,
                    "unexpected head map shape {:?}",
                    outputs[level].shape
                );
                HeadMap::joined(data, h, w, stride)
            };
            ensure!(
                map.reg_max() >= 1 && map.boxes.len() == 4 * map.reg_max() * h * w,
                "box map {level} has {} channels, not 4 per side",
                map.boxes.len() / (h * w).max(1)
            );
            Ok(map)
        })
        .collect::<Result<Vec<_>>>()?;
    let extra = match d.task {
        Task::Detect => vec![],
        Task::Segment | Task::Pose => {
            ensure!(outputs.len() >= first_extra + levels, "expected {levels} mask or keypoint maps");
            outputs[first_extra..first_extra + levels].iter().map(plane).collect::<Result<Vec<_>>>()?
        }
    };
    let protos = outputs.get(first_extra + extra.len()).map(protos).transpose()?;
    let kept = nms::nms(detect::decode_head(&head, d.classes, d.confidence), d.iou, d.max_detections);
    kept.into_iter()
        .map(|det| {
            let mut obj = Object::new(det.clone(), lb.unmap(det.bbox));
            match (d.task, &protos) {
                (Task::Segment, Some(protos)) => {
                    let coeffs = at_anchor(&extra, det.anchor, protos.count)?;
                    obj.segments = Some(outline(protos, &coeffs, &det, &obj, lb));
                }
                (Task::Pose, _) => {
                    let kmaps: Vec<KeypointMap> =
                        extra.iter().map(|&(data, h, w)| KeypointMap { data, h, w, stride: size / w as f32 }).collect();
                    obj.keypoints = pose::decode(&kmaps, det.anchor, d.keypoints, lb);
                }
                _ => {}
            }
            Ok(obj)
        })
        .collect()
}

/// The `channels` values of `anchor` (numbered across maps in order).
fn at_anchor(maps: &[(&[f32], usize, usize)], anchor: usize, channels: usize) -> Result<Vec<f32>> {
    let mut base = 0;
    for &(data, h, w) in maps {
        let hw = h * w;
        if anchor < base + hw {
            ensure!(data.len() >= channels * hw, "map has fewer than {channels} channels");
            let cell = anchor - base;
            return Ok((0..channels).map(|k| data[k * hw + cell]).collect());
        }
        base += hw;
    }
    bail!("anchor {anchor} is outside the maps")
}

fn from_channels(outputs: &[Tensor], d: &Decoding, lb: &Letterbox) -> Result<Vec<Object>> {
    let (data, rows, anchors) = table(outputs)?;
    let first_extra = 4 + d.classes;
    ensure!(rows >= first_extra, "output0 has {rows} rows, fewer than 4 + {} classes", d.classes);
    let kept = nms::nms(detect::decode_exported(data, anchors, d.classes, d.confidence), d.iou, d.max_detections);
    let protos = outputs.get(1).map(protos).transpose()?;
    let value = |anchor: usize, k: usize| data[(first_extra + k) * anchors + anchor];
    extras(kept, d, lb, protos.as_ref(), rows - first_extra, value)
}

fn from_rows(outputs: &[Tensor], d: &Decoding, lb: &Letterbox) -> Result<Vec<Object>> {
    let (data, rows, columns) = table(outputs)?;
    ensure!(columns >= 6, "output0 rows have {columns} values, fewer than x1, y1, x2, y2, score, class");
    let mut kept: Vec<Detection> = data
        .chunks_exact(columns)
        .take(rows)
        .enumerate()
        .filter(|(_, r)| r[4] > d.confidence && r[5] >= 0.0 && (r[5] as usize) < d.classes)
        .map(|(i, r)| Detection {
            class: r[5] as usize,
            confidence: r[4],
            bbox: BBox { x1: r[0], y1: r[1], x2: r[2], y2: r[3] },
            anchor: i,
        })
        .collect();
    kept.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    kept.truncate(d.max_detections);
    let protos = outputs.get(1).map(protos).transpose()?;
    let value = |row: usize, k: usize| data[row * columns + 6 + k];
    extras(kept, d, lb, protos.as_ref(), columns - 6, value)
}

/// Objects in source pixels from the kept detections, with the mask or
/// keypoints read by `value(anchor, k)`, the k-th value after the box and
/// scores (`available` of them).
fn extras(
    kept: Vec<Detection>,
    d: &Decoding,
    lb: &Letterbox,
    protos: Option<&Protos>,
    available: usize,
    value: impl Fn(usize, usize) -> f32,
) -> Result<Vec<Object>> {
    match (d.task, protos) {
        (Task::Segment, Some(p)) => ensure!(available >= p.count, "output0 has no mask coefficients"),
        (Task::Pose, _) => ensure!(available >= 3 * d.keypoints, "output0 has no keypoints"),
        _ => {}
    }
    Ok(kept
        .into_iter()
        .map(|det| {
            let mut obj = Object::new(det.clone(), lb.unmap(det.bbox));
            match (d.task, protos) {
                (Task::Segment, Some(p)) => {
                    let coeffs: Vec<f32> = (0..p.count).map(|k| value(det.anchor, k)).collect();
                    obj.segments = Some(outline(p, &coeffs, &det, &obj, lb));
                }
                (Task::Pose, _) => {
                    obj.keypoints = Some(pose::from_values(|k| value(det.anchor, k), d.keypoints, lb));
                }
                _ => {}
            }
            obj
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoding(task: Task, keypoints: usize) -> Decoding {
        Decoding { task, classes: 3, keypoints, confidence: 0.25, iou: 0.45, max_detections: 300 }
    }

    /// Rows of an NMS-free export: chosen boxes as they are (overlapping ones
    /// too: no second NMS), below-threshold and out-of-range classes dropped,
    /// best first, mapped through the letterbox.
    #[test]
    fn nms_free_rows_are_kept_as_chosen_without_a_second_nms() {
        #[rustfmt::skip]
        let rows = [
            10.0, 20.0, 110.0, 220.0, 0.50, 1.0,
            12.0, 22.0, 112.0, 222.0, 0.90, 1.0, // overlaps the first: kept
            0.0, 0.0, 50.0, 50.0, 0.20, 0.0,     // below the threshold
            0.0, 0.0, 50.0, 50.0, 0.80, 7.0,     // no such class
        ];
        let shape = [1, 4, 6];
        let lb = Letterbox::new(640, 320, 640, 640); // 160 rows of padding above
        let got =
            objects(Layout::Rows, &[Tensor { data: &rows, shape: &shape }], &decoding(Task::Detect, 0), &lb).unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].detection.confidence, got[0].detection.class), (0.90, 1));
        assert_eq!(got[0].detection.bbox, BBox { x1: 12.0, y1: 0.0, x2: 112.0, y2: 62.0 });
        assert_eq!(got[1].detection.confidence, 0.50);
        let capped = Decoding { max_detections: 1, ..decoding(Task::Detect, 0) };
        let one = objects(Layout::Rows, &[Tensor { data: &rows, shape: &shape }], &capped, &lb).unwrap();
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn nms_free_pose_rows_carry_their_keypoints() {
        let mut row = vec![100.0, 100.0, 200.0, 300.0, 0.7, 0.0];
        row.extend([150.0, 120.0, 0.9, 160.0, 130.0, 0.1]);
        let shape = [1, 1, 12];
        let lb = Letterbox::new(640, 640, 640, 640);
        let got =
            objects(Layout::Rows, &[Tensor { data: &row, shape: &shape }], &decoding(Task::Pose, 2), &lb).unwrap();
        let k = got[0].keypoints.as_ref().unwrap();
        assert_eq!(
            (k.x.clone(), k.y.clone(), k.visible.clone()),
            (vec![150.0, 160.0], vec![120.0, 130.0], vec![0.9, 0.1])
        );
        let missing =
            objects(Layout::Rows, &[Tensor { data: &row[..6], shape: &[1, 1, 6] }], &decoding(Task::Pose, 2), &lb);
        assert!(missing.unwrap_err().to_string().contains("no keypoints"));
    }
}
