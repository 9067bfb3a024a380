//! Inference arguments from form fields and query parameters: the HUB names,
//! their aliases, defaults and valid ranges.

use super::error::{ApiError, echo};
use crate::model::Params;

/// Everything a predict request may set besides the image itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Args {
    pub params: Params,
    pub normalize: bool,
    pub url: Option<String>,
    /// Answer with a JPEG of the detections drawn on the image instead of JSON.
    pub annotate: bool,
}

impl Args {
    /// Applies `(name, value)` pairs in order (query first, then form, so the
    /// form wins). Unknown names are ignored, as the hosted API does.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Args, ApiError> {
        let mut args = Args::default();
        for (name, value) in pairs {
            args.set(name, value)?;
        }
        Ok(args)
    }

    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ApiError> {
        let invalid =
            |valid: String| ApiError::InvalidField { field: echo(name), value: echo(value), valid: valid.into() };
        let flag_invalid = || invalid(FLAG_VALUES.into());
        match name {
            "size" | "imgsz" => self.params.size = Params::parse_size(value).map_err(invalid)?,
            "confidence" | "conf" => self.params.confidence = Params::parse_confidence(value).map_err(invalid)?,
            "iou" => self.params.iou = Params::parse_iou(value).map_err(invalid)?,
            "normalize" => self.normalize = flag(value).ok_or_else(flag_invalid)?,
            "annotate" => self.annotate = flag(value).ok_or_else(flag_invalid)?,
            "url" => self.url = Some(value.trim()).filter(|v| !v.is_empty()).map(str::to_string),
            _ => {}
        }
        Ok(())
    }
}

/// The accepted spellings of a boolean field, as error messages list them.
pub const FLAG_VALUES: &str = "valid values are true, false, 1, 0, yes, no";

/// A boolean field; empty counts as false, as an unticked form box sends nothing.
pub fn flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(pairs: &[(&str, &str)]) -> String {
        Args::from_pairs(pairs.iter().copied()).unwrap_err().to_string()
    }

    #[test]
    fn defaults_match_the_hub() {
        let a = Args::from_pairs([]).unwrap();
        assert_eq!(a.params, Params::new(640, 0.25, 0.45));
        assert!(!a.normalize && a.url.is_none());
    }

    #[test]
    fn aliases_set_the_same_fields_and_later_pairs_win() {
        let a = Args::from_pairs([("imgsz", "320"), ("conf", "0.5"), ("size", "480"), ("normalize", "Yes")]).unwrap();
        assert_eq!(a.params.size, 480);
        assert_eq!(a.params.confidence, 0.5);
        assert!(a.normalize);
        assert!(!a.annotate);
        assert!(Args::from_pairs([("annotate", "TRUE")]).unwrap().annotate);
    }

    #[test]
    fn out_of_range_and_unparsable_values_name_field_value_and_range() {
        assert_eq!(message(&[("size", "2000")]), "Invalid 'size': 2000 (valid range is 32 - 1280).");
        assert_eq!(message(&[("imgsz", "abc")]), "Invalid 'imgsz': abc (valid range is 32 - 1280).");
        assert_eq!(message(&[("confidence", "NaN")]), "Invalid 'confidence': NaN (valid range is 0.01 - 1.0).");
        assert_eq!(message(&[("iou", "0.99")]), "Invalid 'iou': 0.99 (valid range is 0.0 - 0.95).");
        assert_eq!(
            message(&[("normalize", "maybe")]),
            "Invalid 'normalize': maybe (valid values are true, false, 1, 0, yes, no)."
        );
        assert_eq!(
            message(&[("annotate", "jpeg")]),
            "Invalid 'annotate': jpeg (valid values are true, false, 1, 0, yes, no)."
        );
        assert_eq!(message(&[("size", "-32")]), "Invalid 'size': -32 (valid range is 32 - 1280).");
    }

    #[test]
    fn range_edges_are_inclusive() {
        let a = Args::from_pairs([("size", "32"), ("confidence", "1.0"), ("iou", "0")]).unwrap();
        assert_eq!(a.params, Params::new(32, 1.0, 0.0));
        assert!(Args::from_pairs([("size", "1280"), ("confidence", "0.01"), ("iou", "0.95")]).is_ok());
    }

    #[test]
    fn unknown_fields_are_ignored_and_empty_url_is_none() {
        let a = Args::from_pairs([("model", "x"), ("url", "")]).unwrap();
        assert_eq!(a, Args::default());
    }
}
