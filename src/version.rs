//! Build identity for `--version` and the logs: version, git revision,
//! target, and the embedded model's id and hash (set by build.rs).

pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("YOLOD_GIT_REV"),
    ", ",
    env!("YOLOD_TARGET"),
    ")\nembedded model: yolov8n sha256:",
    env!("YOLOD_EMBEDDED_SHA256")
);

/// [`LONG`] with the precision the built-in model runs at on this CPU
/// under `--precision auto`, which only a running process can tell.
pub fn long_with_cpu() -> String {
    let embedded = crate::model::registry::Embedded::default();
    let precision = if embedded.choice.int8 { "int8" } else { "fp32" };
    format!(
        "{LONG}
precision here: {precision} ({})",
        embedded.choice.reason
    )
}
