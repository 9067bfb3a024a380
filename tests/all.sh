#!/usr/bin/env bash
# The whole test suite: formatting and lints, unit and integration tests on
# the static x86_64 build, the package, the systemd unit and a real V4L2
# camera in a VM, then the same code's aarch64 twin under qemu, compared.
# tests/setup.sh first installs what a fresh Debian 12 machine lacks (as
# root), or names the one command to run.
#
# Time: each target is built once and shared by the steps after it. The
# static aarch64 build (single-threaded fat LTO at its end) runs in the
# background from the start, beside the x86_64 steps, most of which use
# one core (the camera VM, the integration tests' single servers).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s (%s)\n' "$*" "$(date +%T)"; }
started=$(date +%s)

step "set-up: Debian packages, rustup targets, cargo-deb"
tests/setup.sh

logs=target/ci-logs
mkdir -p "$logs"
step "background: static aarch64 build (dist profile: what ships), its model unit tests ($logs/aarch64-build.log)"
# The model unit tests build in the same profile, so they reuse its crates.
(cargo build --profile dist --target aarch64-unknown-linux-musl &&
    cargo test --profile dist --target aarch64-unknown-linux-musl --lib --no-run) >"$logs/aarch64-build.log" 2>&1 &
aarch64_build=$!
trap 'kill $aarch64_build 2>/dev/null || true' EXIT

step "formatting, lints, docs"
cargo fmt --check
(cd fuzz && cargo fmt --check)
cargo clippy --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "unit + integration tests, static x86_64 release build"
cargo test --release --target x86_64-unknown-linux-musl

step "systemd unit: verify and security exposure"
tests/e2e/systemd.sh

step "amd64 .deb from the same build"
tests/e2e/package.sh x86_64-unknown-linux-musl

step "DeepStack clients (deepstack-python, node-red-contrib-deepstack) against the same build"
tests/e2e/deepstack.sh target/x86_64-unknown-linux-musl/release/yolod

step "MQTT and Home Assistant discovery against mosquitto, broker outage, last will, credentials"
tests/e2e/mqtt.sh target/x86_64-unknown-linux-musl/release/yolod

step "camera: a real V4L2 device (vivid) in a VM, capture across a replug"
tests/e2e/camera.sh

step "waiting for the aarch64 build"
if ! wait $aarch64_build; then
    tail -40 "$logs/aarch64-build.log"
    echo "aarch64 build failed (whole log: $logs/aarch64-build.log)"
    exit 1
fi
ls -l target/aarch64-unknown-linux-musl/dist/yolod

step "aarch64 under qemu gives the x86_64 detections"
tests/e2e/aarch64.sh

# The NEON paths of src/model (patches, packing, SiLU, quantize) compile only
# for aarch64: their unit tests run there too, with tract's dot-product
# kernels (cortex-a76) and without (cortex-a72). tract picks kernels by the
# core's part number, which qemu-user does not emulate: it is told.
for core in "cortex-a76 0xd0b" "cortex-a72 0xd08"; do
    read -r cpu part <<<"$core"
    step "model unit tests on aarch64 under qemu ($cpu)"
    TRACT_CPU_AARCH64_OVERRIDE_CPU_PART=$part \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER="${QEMU_AARCH64:-qemu-aarch64-static} -cpu $cpu" \
        cargo test --profile dist --target aarch64-unknown-linux-musl --lib model::
done

step "all tests passed in $((($(date +%s) - started) / 60)) min"
