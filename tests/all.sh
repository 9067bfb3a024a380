#!/usr/bin/env bash
# The whole test suite: formatting and lints, unit and integration tests on
# the static x86_64 build, the package, the systemd unit and a real V4L2
# camera in a VM, then the same code's aarch64 twin under qemu, compared.
# tests/setup.sh first installs what a fresh Debian 12 machine lacks (as
# root), or names the one command to run.
#
# Time (the goal is 45 min on 2 cores from a clean clone): each target is
# built once and shared by the steps after it. The static aarch64 build is
# the longest chain (its fat LTO links are single-threaded): it runs in the
# background from the start, beside the x86_64 steps, most of which use
# one core (the camera VM, the integration tests' single servers), and the
# network-bound client installs. Each step prints the time it started.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s (%s)\n' "$*" "$(date +%T)"; }
started=$(date +%s)

step "set-up: Debian packages, rustup targets, cargo-deb"
tests/setup.sh

logs=target/ci-logs
mkdir -p "$logs"
step "background: static aarch64 build (dist profile: what ships), then its model unit tests ($logs/aarch64.log)"
# One cargo invocation builds the binary and the test binaries, so their fat
# LTO links (single-threaded each, ~10 min of CPU apiece) run side by side
# instead of one after the other. The integration tests need the binary, so
# it is built as `cargo build --profile dist` builds it (the dev-dependency
# adds no feature), and cargo deb or a later build reuses it.
#
# The NEON paths of src/model (patches, packing, SiLU, quantize) compile only
# for aarch64: their unit tests run there too, with tract's dot-product
# kernels (cortex-a76) and without (cortex-a72). tract picks kernels by the
# core's part number, which qemu-user does not emulate: it is told. They
# start as soon as the build ends, beside the x86_64 end-to-end steps, which
# mostly use one core; `aarch64-built` tells the end-to-end comparison
# (started after the x86_64 tests) that the binary is there.
aarch64_chain() {
    cargo test --profile dist --target aarch64-unknown-linux-musl --no-run || { echo "aarch64 build failed"; return 1; }
    touch "$logs/aarch64-built"
    for core in "cortex-a76 0xd0b" "cortex-a72 0xd08"; do
        read -r cpu part <<<"$core"
        echo "==> model unit tests on aarch64 under qemu ($cpu) ($(date +%T))"
        TRACT_CPU_AARCH64_OVERRIDE_CPU_PART=$part \
            CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER="${QEMU_AARCH64:-qemu-aarch64-static} -cpu $cpu" \
            cargo test --profile dist --target aarch64-unknown-linux-musl --lib model:: || return 1
    done
    echo "==> H.264 decoder unit tests on aarch64 under qemu (OpenH264's NEON code) ($(date +%T))"
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER="${QEMU_AARCH64:-qemu-aarch64-static} -cpu cortex-a76" \
        cargo test --profile dist --target aarch64-unknown-linux-musl --lib camera::h264 || return 1
}
rm -f "$logs/aarch64-built"
aarch64_chain >"$logs/aarch64.log" 2>&1 &
aarch64_chain_pid=$!
step "background: the DeepStack clients from PyPI and npm ($logs/deepstack-install.log)"
tests/e2e/deepstack.sh --install >"$logs/deepstack-install.log" 2>&1 &
deepstack_install=$!
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

step "formatting, lints, docs"
cargo fmt --check
(cd fuzz && cargo fmt --check)
cargo clippy --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "unit + integration tests, static x86_64 release build (without LTO)"
# Without LTO the dependencies compile to object code once, and the binary
# and the unit-test binary link them as they are. With the release
# profile's thin LTO each of the two re-optimises all of tract at link
# time: measured on a warm target, 10 min of CPU apiece, against 2 min for
# the no-LTO unit-test binary (cargo --timings, 2026-12-04). What ships is
# the dist profile's fat-LTO build, which the aarch64 steps test.
CARGO_PROFILE_RELEASE_LTO=false cargo test --release --target x86_64-unknown-linux-musl

# The end-to-end comparison needs both binaries. It starts in the
# background once the aarch64 build has ended (one qemu process, one core),
# beside the x86_64 end-to-end steps below and the aarch64 model unit tests.
step "background: once the aarch64 build ends, aarch64 under qemu gives the x86_64 detections ($logs/aarch64-e2e.log)"
(
    while [[ ! -e "$logs/aarch64-built" ]]; do
        kill -0 $aarch64_chain_pid 2>/dev/null || { echo "the aarch64 build failed"; exit 1; }
        sleep 5
    done
    tests/e2e/aarch64.sh
) >"$logs/aarch64-e2e.log" 2>&1 &
aarch64_e2e=$!

step "systemd unit: verify and security exposure"
tests/e2e/systemd.sh

step "amd64 .deb from the same build"
tests/e2e/package.sh x86_64-unknown-linux-musl

step "DeepStack clients (deepstack-python, node-red-contrib-deepstack) against the same build"
wait $deepstack_install || { cat "$logs/deepstack-install.log"; echo "installing the DeepStack clients failed"; exit 1; }
tests/e2e/deepstack.sh target/x86_64-unknown-linux-musl/release/yolod

step "MQTT and Home Assistant discovery against mosquitto, broker outage, last will, credentials"
tests/e2e/mqtt.sh target/x86_64-unknown-linux-musl/release/yolod

step "the page in headless Chromium, and what a viewer costs (screenshots: target/ci-logs/ui/)"
tests/e2e/ui.sh target/x86_64-unknown-linux-musl/release/yolod

step "camera: a real V4L2 device (vivid) in a VM, capture across a replug"
tests/e2e/camera.sh

step "waiting for: aarch64 under qemu gives the x86_64 detections"
if ! wait $aarch64_e2e; then
    tail -60 "$logs/aarch64.log"
    cat "$logs/aarch64-e2e.log"
    echo "the aarch64 build or its end-to-end comparison failed (logs: $logs/aarch64.log, $logs/aarch64-e2e.log)"
    exit 1
fi
ls -l target/aarch64-unknown-linux-musl/dist/yolod
cat "$logs/aarch64-e2e.log"

step "waiting for: model unit tests on aarch64 under qemu"
if ! wait $aarch64_chain_pid; then
    tail -80 "$logs/aarch64.log"
    echo "the aarch64 model unit tests failed (whole log: $logs/aarch64.log)"
    exit 1
fi
grep -E "^==>|^test result" "$logs/aarch64.log"

step "all tests passed in $((($(date +%s) - started) / 60)) min"
