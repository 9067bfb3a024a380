#!/usr/bin/env bash
# What the test suite needs on a fresh Debian 12 machine: Debian packages,
# rustup targets and cargo-deb. tests/all.sh runs this first. As root with
# apt it installs what is missing; otherwise it names the one command to run
# and fails. Each package is listed explicitly: nothing may arrive only as a
# Recommends, because the install skips those.
set -euo pipefail

# musl-tools: C compiler for the static x86_64 build (tract, ring)
# g++ g++-aarch64-linux-gnu: compile OpenH264 (RTSP H.264 cameras) for
#   each target; no C++ library is linked from them
# gcc-aarch64-linux-gnu, libc6-dev-arm64-cross: assembles tract's NEON
#   kernels for aarch64; ring's build needs the arm64 libc headers, which
#   gcc-aarch64-linux-gnu only recommends
# binutils-aarch64-linux-gnu: objdump for the aarch64 profiles
# qemu-user-static: runs the aarch64 binary here
# systemd: systemd-analyze for the unit checks
# libclang-dev: the v4l crate generates its kernel bindings with bindgen
# qemu-system-x86 cpio kmod xz-utils: the vivid camera VM (busybox and the
#   kernel come by apt-get download)
# file python3 python3-venv curl ca-certificates: test drivers
# nodejs npm: the Node-RED DeepStack client (tests/e2e/deepstack.sh)
# ffmpeg: the stand-in camera of the source tests (exec:, HTTP MJPEG) and
#   the RTSP client they read through
# python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good
#   gstreamer1.0-plugins-bad: GStreamer's RTSP server with H.264 (h264parse
#   is in -bad, the RTP payloader and Matroska demuxer in -good)
# mosquitto mosquitto-clients: the MQTT broker and mosquitto_sub/_passwd
#   (tests/integration/mqtt.rs, tests/e2e/mqtt.sh); openssl: its test CA
# chromium chromium-driver fonts-dejavu-core: the page in a real browser
#   (tests/e2e/ui.sh); the font, which chromium only recommends, draws its text
PACKAGES=(
    musl-tools g++ gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
    binutils-aarch64-linux-gnu
    qemu-user-static file python3 python3-venv systemd libclang-dev
    qemu-system-x86 cpio kmod xz-utils curl ca-certificates ffmpeg
    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    mosquitto mosquitto-clients openssl chromium chromium-driver fonts-dejavu-core
)
# A node and npm from elsewhere (NodeSource, nvm) will do as well as Debian's.
command -v node >/dev/null && command -v npm >/dev/null || PACKAGES+=(nodejs npm)
TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
CARGO_DEB_VERSION=3.8.0

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "setup: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: missing Debian packages; run:" >&2
        echo "  sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

# The camera VM fetches its kernel and busybox with apt-get download, which
# needs the package lists.
if [[ $(id -u) == 0 ]] && ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
    apt-get update -qq
fi

installed=$(rustup target list --installed)
for t in "${TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
