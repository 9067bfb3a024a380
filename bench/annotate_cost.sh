#!/usr/bin/env bash
# What annotate=true costs: posts an image N times with annotate=false, then
# N times with annotate=true, to one `yolod serve` (1 worker), and prints
# each answer's Server-Timing. Drawing and JPEG encoding show up in
# `postprocess`.
#   bench/annotate_cost.sh [BIN] [IMAGE] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/x86_64-unknown-linux-musl/release/yolod}
image=${2:-tests/fixtures/images/bus.jpg}
n=${3:-5}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --workers 1 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
for annotate in false true; do
    echo "annotate=$annotate"
    for _ in $(seq "$n"); do
        curl -s -o /dev/null -D - -w 'total_s=%{time_total}\n' -H 'Content-Type: image/jpeg' \
            --data-binary "@$image" "http://127.0.0.1:$port/v1/predict?annotate=$annotate" |
            grep -iE '^server-timing|^total_s' | tr -d '\r' | tr '\n' ' '
        echo
    done
done
