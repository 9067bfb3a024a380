//! Records the git revision, target triple and the embedded model's SHA-256
//! for `yolod --version`, and deflates the two embedded models into OUT_DIR
//! (src/model/registry.rs inflates the one it runs): they are 16 of the
//! binary's 41 MB, and deflate takes 14% off the fp32 file and 23% off the
//! int8 one.

use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let model = "models/yolov8n.onnx";
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (file, name) in
        [(model, "yolov8n.onnx.deflate"), ("models/int8/yolov8n-convint.onnx", "yolov8n-convint.onnx.deflate")]
    {
        println!("cargo:rerun-if-changed={file}");
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e} (run models/fetch.sh)"));
        // Level 6: within 1% of level 9's size here, in a third of the time.
        std::fs::write(out.join(name), miniz_oxide::deflate::compress_to_vec(&bytes, 6)).expect("writing OUT_DIR");
    }
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
