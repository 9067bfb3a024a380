//! What a YOLO ONNX file says about itself: class names, stride, task and the
//! shape of its head, read from Ultralytics' `metadata_props` and the graph.

use std::collections::HashMap;

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

#[cfg(test)]
mod tests {
    use super::*;

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
