//! Records the git revision, target triple and the embedded model's SHA-256
//! for `yolod --version`, and deflates the two embedded models into OUT_DIR
//! (src/model/registry.rs inflates the one it runs): they are 16 of the
//! binary's 41 MB, and deflate takes 14% off the fp32 file and 23% off the
//! int8 one.

use std::process::Command;

use sha2::{Digest, Sha256};

#[path = "src/model/planes.rs"]
#[allow(dead_code)] // the crate's own tests of it run there
mod planes;

fn main() {
    let model = "models/yolov8n.onnx";
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (file, name) in
        [(model, "yolov8n.onnx.deflate"), ("models/int8/yolov8n-convint.onnx", "yolov8n-convint.onnx.deflate")]
    {
        println!("cargo:rerun-if-changed={file}");
        let mut bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e} (run models/fetch.sh)"));
        let spans = planes::float_tensors(&bytes);
        planes::split(&mut bytes, &spans);
        // Level 6: within 1% of level 9's size here, in a third of the time.
        std::fs::write(out.join(name), miniz_oxide::deflate::compress_to_vec(&bytes, 6)).expect("writing OUT_DIR");
    }
    println!("cargo:rerun-if-changed=src/model/planes.rs");
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
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=YOLOD_TARGET={target}");
    // The aarch64 build is linked by rust-lld (.cargo/config.toml): fold
    // functions whose machine code and relocations are identical (generic
    // code instantiated alike for different types, mostly). 0.31 MB off the
    // shipped binary (BENCHMARKS.md, "How big is the binary?"). `all`, not
    // `safe`: rustc's objects carry no address-significance table, so
    // `safe` folds nothing. Rust promises no distinct addresses for
    // functions; the C and C++ linked in (ring, mimalloc, OpenH264) are not
    // known to compare function pointers; the aarch64 end-to-end tests run
    // this very binary.
    if target == "aarch64-unknown-linux-musl" {
        println!("cargo:rustc-link-arg-bins=--icf=all");
    }
}
