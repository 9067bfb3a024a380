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
