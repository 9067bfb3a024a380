//! What a YOLO ONNX file says about itself: class names, stride, task and the
//! shape of its head, read from Ultralytics' `metadata_props` and the graph.

use std::collections::HashMap;

pub use crate::vision::Task;
use crate::vision::outputs::Layout;

/// The architecture Ultralytics' `description` metadata names: "YOLO11n"
/// from "Ultralytics YOLO11n model trained on coco.yaml".
pub fn family(description: &str) -> Option<String> {
    description
        .split_whitespace()
        .find(|w| {
            w.len() > 4
                && w[..4].eq_ignore_ascii_case("yolo")
                && w[4..].starts_with(|c: char| c.is_ascii_alphanumeric())
        })
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()).to_string())
}

/// Parses Ultralytics' `names` metadata, a Python dict literal such as
/// `{0: 'person', 1: "traffic light"}`, into a dense list indexed by class.
pub fn parse_names(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut names: HashMap<usize, String> = HashMap::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let colon = rest.find(':')?;
        let key: usize = rest[..colon].trim().parse().ok()?;
        let after = rest[colon + 1..].trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let (value, tail) = take_quoted(&after[1..], quote)?;
        names.insert(key, value);
        rest = tail.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    let count = names.len();
    (0..count).map(|i| names.remove(&i)).collect()
}

/// The longest class name a names file may give, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Parses a names file (`<model>.names` beside the ONNX file): one class
/// name per line in class order, as Darknet and many training tools write
/// them. Surrounding whitespace and trailing blank lines are ignored; a blank
/// line between names, a control character or an over-long name is an error
/// naming its line, because a shifted list would put wrong names on boxes.
pub fn parse_names_file(text: &str) -> Result<Vec<String>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let used = lines.iter().rposition(|l| !l.is_empty()).map_or(0, |last| last + 1);
    if used == 0 {
        return Err("it names no class (one name per line)".into());
    }
    lines[..used]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let line = i + 1;
            if name.is_empty() {
                Err(format!("line {line} is empty; every line up to the last names one class"))
            } else if name.chars().any(char::is_control) {
                Err(format!("line {line} holds a control character"))
            } else if name.contains('\u{feff}') {
                // Two files joined: the second one's byte-order mark
                // would be an invisible class name, or part of one.
                Err(format!("line {line} holds a byte-order mark (U+FEFF), which only the file's start may carry"))
            } else if name.len() > MAX_NAME_LEN {
                Err(format!("line {line} is longer than {MAX_NAME_LEN} bytes"))
            } else {
                Ok(name.to_string())
            }
        })
        .collect()
}

/// Reads a quoted string body up to the closing `quote`, honouring backslash escapes.
fn take_quoted(s: &str, quote: char) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            c if c == quote => return Some((value, &s[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

/// Parses `kpt_shape` metadata such as `[17, 3]`.
pub fn parse_kpt_shape(text: &str) -> Option<(usize, usize)> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut it = inner.split(',').map(|s| s.trim().parse::<usize>());
    let shape = (it.next()?.ok()?, it.next()?.ok()?);
    it.next().is_none().then_some(shape)
}

/// Guesses the task from `output0`'s channel count when metadata has no `task`:
/// `4 + nc` detect, `4 + nc + 32` segment (with a second output), `4 + 1 + k*3` pose.
pub fn task_from_shape(channels: usize, classes: usize, outputs: usize, kpt_values: Option<usize>) -> Option<Task> {
    if outputs >= 2 && channels == 4 + classes + 32 {
        Some(Task::Segment)
    } else if channels == 4 + classes {
        Some(Task::Detect)
    } else if kpt_values.is_some_and(|k| channels == 4 + classes + k) {
        Some(Task::Pose)
    } else {
        None
    }
}

/// How a model run as exported (its head not cut before the decode) lays
/// out `output0`, checked against what the decoders read; anything else
/// would be decoded into wrong boxes, so it is refused at load. `extra` is
/// 32 mask coefficients (segment) or the keypoint values (pose):
/// - Ultralytics' default export: `1 x (4 + nc + extra) x anchors`;
/// - an NMS-free (`end2end`) export of YOLOv10 or YOLO26: `1 x 300 x
///   (6 + extra)`, rows of chosen boxes.
///
/// An export with NMS in the graph (`nms=True`) has the rows' layout but is
/// refused: tract cannot run ONNX's `NonMaxSuppression` through shape
/// analysis, and its IoU threshold would be fixed at export, not the
/// request's `iou`. `dims` are output0's (None where symbolic).
pub fn exported_layout(
    task: Task,
    classes: usize,
    kpt_shape: Option<(usize, usize)>,
    dims: &[Option<usize>],
    end2end: bool,
    nms_in_graph: bool,
) -> Result<Layout, String> {
    let extra = match task {
        Task::Detect => 0,
        Task::Segment => 32,
        Task::Pose => kpt_shape.map_or(17 * 3, |(k, d)| k * d),
    };
    let channels = 4 + classes + extra;
    let shown: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |d| d.to_string())).collect();
    let shown = shown.join("x");
    let what = match task {
        Task::Detect => String::new(),
        Task::Segment => ", 32 mask coefficients".into(),
        Task::Pose => format!(", {extra} keypoint values"),
    };
    if nms_in_graph {
        return Err("it was exported with NMS in the graph (`nms=True`), which yolod does not run: tract cannot \
             analyse ONNX's NonMaxSuppression, and its IoU threshold is fixed at export. Export it again \
             without `nms=True`: with Ultralytics' default (yolod applies confidence and NMS itself), or \
             for YOLOv10 and YOLO26 with `nms=False` (NMS-free rows, which yolod reads as they are)"
            .to_string());
    }
    let rows_of_boxes = dims.len() == 3 && dims[2] == Some(6 + extra) && dims[1] != Some(channels);
    if end2end || rows_of_boxes {
        return match dims {
            [_, _, Some(c)] if *c == 6 + extra => Ok(Layout::Rows),
            [_, _, None] => Ok(Layout::Rows),
            _ => Err(format!(
                "its metadata says NMS-free (end2end), so output0 should be 1xROWSx{} (x1, y1, x2, y2, score, \
                 class{what}), but it is {shown}",
                6 + extra
            )),
        };
    }
    match dims {
        // A rank the analysis could not find, or a channel count left symbolic, is judged
        // later, when the model is built for a size.
        [] | [_, None, _] => Ok(Layout::Channels),
        [_, Some(c), _] if *c == channels => Ok(Layout::Channels),
        _ => Err(format!(
            "its output0 is {shown}; a {} model with {classes} classes gives 1x{channels}xANCHORS \
             (4 box values, {classes} class scores{what}), or 1x300x{} rows from an NMS-free export",
            task.as_str(),
            6 + extra
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_heads_must_have_the_layout_the_decoders_read() {
        let d = |v: &[usize]| v.iter().map(|&x| Some(x)).collect::<Vec<_>>();
        let layout =
            |task, classes, kpt, dims: &[usize], end2end| exported_layout(task, classes, kpt, &d(dims), end2end, false);
        assert_eq!(layout(Task::Detect, 80, None, &[1, 84, 8400], false), Ok(Layout::Channels));
        assert_eq!(layout(Task::Segment, 80, None, &[1, 116, 8400], false), Ok(Layout::Channels));
        assert_eq!(layout(Task::Pose, 1, Some((17, 3)), &[1, 56, 8400], false), Ok(Layout::Channels));
        assert_eq!(layout(Task::Detect, 10, None, &[1, 300, 6], false), Ok(Layout::Rows), "shape alone");
        assert_eq!(layout(Task::Segment, 10, None, &[1, 300, 38], true), Ok(Layout::Rows));
        assert_eq!(layout(Task::Pose, 1, Some((17, 3)), &[1, 300, 57], true), Ok(Layout::Rows));
        let e2e = layout(Task::Detect, 80, None, &[1, 84, 8400], true).unwrap_err();
        assert!(e2e.contains("NMS-free") && e2e.contains("1xROWSx6"), "end2end metadata: {e2e}");
        assert_eq!(exported_layout(Task::Detect, 80, None, &[], false, false), Ok(Layout::Channels), "unknown rank");
        let wrong = layout(Task::Detect, 80, None, &[1, 85, 8400], false).unwrap_err();
        assert!(wrong.contains("1x84xANCHORS"), "{wrong}");
        let nms = exported_layout(Task::Detect, 10, None, &d(&[1, 300, 6]), false, true).unwrap_err();
        assert!(nms.contains("`nms=True`"), "{nms}");
    }

    #[test]
    fn the_family_is_the_yolo_word_of_the_description() {
        assert_eq!(family("Ultralytics YOLO11n model trained on coco.yaml").as_deref(), Some("YOLO11n"));
        assert_eq!(family("Ultralytics YOLOv8n-seg model trained on x.yaml").as_deref(), Some("YOLOv8n-seg"));
        assert_eq!(family("Ultralytics model"), None);
        assert_eq!(family("yolo"), None);
    }

    #[test]
    fn names_dict_is_parsed_in_class_order() {
        let names = parse_names("{0: 'person', 2: \"traffic light\", 1: 'it\\'s'}").unwrap();
        assert_eq!(names, vec!["person", "it's", "traffic light"]);
    }

    #[test]
    fn names_with_a_gap_or_garbage_are_refused() {
        assert_eq!(parse_names("{0: 'a', 2: 'c'}"), None);
        assert_eq!(parse_names("['a', 'b']"), None);
        assert_eq!(parse_names("{0: 'a"), None);
        assert_eq!(parse_names("{}"), Some(vec![]));
    }

    #[test]
    fn names_files_are_one_class_per_line() {
        assert_eq!(
            parse_names_file("\u{feff}forklift\r\n  pallet \nhard hat\n\n\n").unwrap(),
            vec!["forklift", "pallet", "hard hat"]
        );
        assert_eq!(parse_names_file("one").unwrap(), vec!["one"]);
    }

    #[test]
    fn names_files_that_would_shift_or_break_names_are_refused() {
        assert!(parse_names_file("").unwrap_err().contains("no class"));
        assert!(parse_names_file(" \n\n").unwrap_err().contains("no class"));
        assert!(parse_names_file("a\n\nb\n").unwrap_err().contains("line 2 is empty"));
        assert!(parse_names_file("a\nb\u{7}c").unwrap_err().contains("line 2"));
        // Found by the class_names fuzz target: a second file's BOM.
        assert!(parse_names_file("a\n\u{feff}").unwrap_err().contains("line 2 holds a byte-order mark"));
        assert!(parse_names_file("a\n\u{feff}b").unwrap_err().contains("line 2 holds a byte-order mark"));
        assert_eq!(parse_names_file("\u{feff}a\r\nb\r\n").unwrap(), ["a", "b"]);
        let long = format!("a\n{}", "x".repeat(MAX_NAME_LEN + 1));
        assert!(parse_names_file(&long).unwrap_err().contains("line 2 is longer"));
        assert!(parse_names_file(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn kpt_shape_parses() {
        assert_eq!(parse_kpt_shape("[17, 3]"), Some((17, 3)));
        assert_eq!(parse_kpt_shape("[17]"), None);
    }

    #[test]
    fn task_is_inferred_from_channels() {
        assert_eq!(task_from_shape(84, 80, 1, None), Some(Task::Detect));
        assert_eq!(task_from_shape(116, 80, 2, None), Some(Task::Segment));
        assert_eq!(task_from_shape(56, 1, 1, Some(51)), Some(Task::Pose));
        assert_eq!(task_from_shape(99, 80, 1, None), None);
    }
}
