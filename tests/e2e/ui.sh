#!/usr/bin/env bash
# The page in a real browser (Debian's headless Chromium through
# chromedriver, tests/e2e/ui/check_page.py), then what a viewer costs
# (bench/viewer_cost.py: yolod's CPU with and without one, same run, same
# camera). Screenshots go to target/ci-logs/ui/.
#
# usage: tests/e2e/ui.sh [YOLOD_BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/x86_64-unknown-linux-musl/release/yolod}
[[ -x "$bin" ]] || { echo "no yolod binary at $bin (cargo build --release --target x86_64-unknown-linux-musl)"; exit 1; }
command -v chromium >/dev/null && command -v chromedriver >/dev/null ||
    { echo "needs Debian's chromium and chromium-driver (tests/setup.sh installs them)"; exit 1; }
command -v ffmpeg >/dev/null || { echo "needs ffmpeg (tests/setup.sh installs it)"; exit 1; }
out=target/ci-logs/ui
mkdir -p "$out"
python3 tests/e2e/ui/check_page.py "$bin" "$out"
python3 bench/viewer_cost.py "$bin" --seconds 8
