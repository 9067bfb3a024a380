#!/usr/bin/env bash
# The static aarch64 build, run under qemu-aarch64-static (NEON included),
# must find what the x86_64 build finds on the test images: same class,
# IoU >= 0.95, |confidence difference| <= 0.02, object for object.
set -euo pipefail
cd "$(dirname "$0")/../.."
x86=target/x86_64-unknown-linux-musl/release/yolod
arm=target/aarch64-unknown-linux-musl/dist/yolod
qemu=${QEMU_AARCH64:-qemu-aarch64-static}
images=(tests/fixtures/images/bus.jpg tests/fixtures/images/zidane.jpg)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

file "$arm" 2>/dev/null | grep -q 'ARM aarch64.*statically linked' || { file "$arm"; echo "expected a static aarch64 ELF" >&2; exit 1; }
for size in 640 320; do
    "$x86" predict --size "$size" "${images[@]}" > "$out/x86-$size.jsonl"
    "$qemu" -cpu cortex-a76 "$arm" predict --size "$size" "${images[@]}" > "$out/arm-$size.jsonl"
    python3 - "$out/x86-$size.jsonl" "$out/arm-$size.jsonl" "$size" <<'PY'
import json, sys

def iou(a, b):
    w = max(0.0, min(a["x2"], b["x2"]) - max(a["x1"], b["x1"]))
    h = max(0.0, min(a["y2"], b["y2"]) - max(a["y1"], b["y1"]))
    inter = w * h
    area = lambda r: (r["x2"] - r["x1"]) * (r["y2"] - r["y1"])
    return inter / (area(a) + area(b) - inter)

x86 = [json.loads(l) for l in open(sys.argv[1])]
arm = [json.loads(l) for l in open(sys.argv[2])]
assert len(x86) == len(arm) == 2, (len(x86), len(arm))
for i, (a, b) in enumerate(zip(x86, arm)):
    assert a["success"] and b["success"], (a, b)
    assert len(a["data"]) == len(b["data"]), f"image {i}: {len(a['data'])} objects on x86_64, {len(b['data'])} on aarch64"
    for da in a["data"]:
        best = max((db for db in b["data"] if db["class"] == da["class"]), key=lambda db: iou(da["box"], db["box"]))
        assert iou(da["box"], best["box"]) >= 0.95, (da, best)
        assert abs(da["confidence"] - best["confidence"]) <= 0.02, (da, best)
    print(f"size {sys.argv[3]} image {i}: {len(a['data'])} objects agree")
PY
done
echo "aarch64 (qemu cortex-a76) matches x86_64"
