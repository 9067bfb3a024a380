//! Fuzzes the two readers of class names a user's model brings: the names
//! file beside it (one name per line) and Ultralytics' `names` metadata (a
//! Python dict literal). No panic; every name accepted is one a box can
//! carry (not empty, no control character or byte-order mark, not over
//! the limit), one per line up to the last named one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yolod::model::meta::{MAX_NAME_LEN, parse_names, parse_names_file};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(names) = parse_names_file(text) {
        let lines = text.lines().map(str::trim).collect::<Vec<_>>();
        let last = lines.iter().rposition(|l| !l.is_empty() && *l != "\u{feff}").unwrap_or(0);
        assert!(!names.is_empty() && names.len() <= last + 1);
        for name in &names {
            assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control), "{name:?}");
            assert!(!name.contains('\u{feff}'), "{name:?}");
            assert_eq!(name.trim(), name);
        }
    }
    if let Some(names) = parse_names(text) {
        assert!(names.len() <= text.matches(':').count());
    }
});
