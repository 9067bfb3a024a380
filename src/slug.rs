//! Slugs: the `[a-z0-9_-]` names yolod makes from free text, for default
//! camera names and for MQTT topic levels (labels, the host), in one place
//! because the two rules differ on purpose.
//!
//! Both lower-case the text, cut it at every character that is not a word
//! character, and join the non-empty words with a separator. They differ in
//! the separator and in what counts as a word character, and each is already
//! in names users have: camera names in log lines, metrics, `/readyz` and
//! topics (`192-168-1-20-video`, `rpicam-vid`); topic levels in Home
//! Assistant entity ids (`traffic_light`, as HA writes its own ids). So
//! neither can take the other's rule without renaming something users see.

/// Which rule a slug follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A camera's default name: words of `a-z`, `0-9` and `_`, joined by
    /// `-` (a `-` in the text is a cut like any other character). Lower-cases
    /// with Unicode's rules, so the Kelvin sign is a `k`.
    CameraName,
    /// A topic level: words of `a-z`, `0-9`, `_` and `-` (kept as written),
    /// joined by `_`. Lower-cases ASCII letters only.
    TopicLevel,
}

/// `s` as a slug of `style`; empty when no word is left.
pub fn slug(s: &str, style: Style) -> String {
    let (lower, separator, dash_is_word) = match style {
        Style::CameraName => (s.to_lowercase(), "-", false),
        Style::TopicLevel => (s.to_ascii_lowercase(), "_", true),
    };
    let word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (dash_is_word && c == '-');
    lower.split(|c| !word(c)).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_names_join_words_with_a_dash() {
        let camera = |s| slug(s, Style::CameraName);
        assert_eq!(camera("traffic light"), "traffic-light");
        assert_eq!(camera("192.168.1.20-Video"), "192-168-1-20-video");
        assert_eq!(camera("-a - b_c-"), "a-b_c");
        assert_eq!(camera("\u{212a}elvin"), "kelvin");
        assert_eq!(camera("¡¡"), "");
    }

    #[test]
    fn topic_levels_join_words_with_an_underscore_and_keep_dashes() {
        let level = |s| slug(s, Style::TopicLevel);
        assert_eq!(level("traffic light"), "traffic_light");
        assert_eq!(level("/dev/video0"), "dev_video0");
        assert_eq!(level("Front Door--2"), "front_door--2");
        assert_eq!(level("  hair  drier "), "hair_drier");
        assert_eq!(level("kitchen_cam"), "kitchen_cam");
        assert_eq!(level("a _b"), "a__b");
        assert_eq!(level("été"), "t");
        assert_eq!(level("\u{212a}elvin"), "elvin");
        assert_eq!(level("///"), "");
    }
}
