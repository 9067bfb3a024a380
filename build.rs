//! Records the git revision, target triple and the embedded model's SHA-256
//! for `yolod --version`.

use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let model = "models/yolov8n.onnx";
    println!("cargo:rerun-if-changed={model}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let bytes = std::fs::read(model).unwrap_or_else(|e| panic!("{model}: {e} (run models/fetch.sh)"));
    let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=YOLOD_EMBEDDED_SHA256={hash}");
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=YOLOD_GIT_REV={rev}");
    println!("cargo:rustc-env=YOLOD_TARGET={}", std::env::var("TARGET").unwrap_or_default());
}
