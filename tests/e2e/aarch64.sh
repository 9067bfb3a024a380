#!/usr/bin/env bash
# The static aarch64 build, run under qemu-aarch64-static (NEON included),
# must find what the x86_64 build finds on the test images: same class,
# IoU >= 0.95, |confidence difference| <= 0.02, object for object.
# fp32 at 640 and 320 on a cortex-a76; the built-in model under --precision
# auto, which is int8 on a cortex-a76 (dot-product kernels, K4 panels of our
# own int8 patches, src/model/rewrite/patches/) and on a cortex-a72 (SMLAL
# kernels, k-major panels), and fp32 on a cortex-a53 (tract's A53 kernels).
set -euo pipefail
cd "$(dirname "$0")/../.."
x86=target/x86_64-unknown-linux-musl/release/yolod
arm=target/aarch64-unknown-linux-musl/dist/yolod
qemu=${QEMU_AARCH64:-qemu-aarch64-static}
images=(tests/fixtures/images/bus.jpg tests/fixtures/images/zidane.jpg)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

file "$arm" 2>/dev/null | grep -q 'ARM aarch64.*statically linked' || { file "$arm"; echo "expected a static aarch64 ELF" >&2; exit 1; }
int8=models/int8/yolov8n-convint.onnx
# tract picks kernels by the core's part number, which qemu-user does not
# emulate (/proc/cpuinfo is the host's): tell it, as bench/aarch64_cost.sh does.
part() { case "$1" in cortex-a72) echo 0xd08 ;; cortex-a53) echo 0xd03 ;; *) echo 0xd0b ;; esac; }
arm() { # CPU ARGS...
    local cpu=$1; shift
    TRACT_CPU_AARCH64_OVERRIDE_CPU_PART=$(part "$cpu") "$qemu" -cpu "$cpu" "$arm" "$@"
}

# --precision auto reads the dot-product extension from the emulated core's
# auxiliary vector and the core from its MIDR_EL1 (which qemu-user emulates):
# int8 on the a76 and the a72, fp32 on the a53.
for want in "cortex-a76 int8 (auto: cpu has asimddp)" "cortex-a72 int8 (auto: Cortex-A72," \
    "cortex-a53 fp32 (auto: Cortex-A53,"; do
    read -r cpu expected <<<"$want"
    arm "$cpu" models >"$out/models.txt"
    grep -qF "precision $expected" "$out/models.txt" || { echo "on $cpu expected $expected:"; cat "$out/models.txt"; exit 1; }
    echo "$cpu: built-in model runs $expected"
done

# Like against like: each aarch64 run against x86_64 at the same precision.
# LABEL;CPU;SIZE;AARCH64 ARGS;X86_64 ARGS
runs=(
    "fp32;cortex-a76;640;--precision fp32;--precision fp32"
    "fp32;cortex-a76;320;--precision fp32;--precision fp32"
    "auto (int8);cortex-a76;320;;--precision int8"
    "auto (int8);cortex-a72;320;;--model $int8"
    "auto (fp32);cortex-a53;320;;--precision fp32"
)
for run in "${runs[@]}"; do
    IFS=';' read -r label cpu size arm_args x86_args <<<"$run"
    read -ra arm_args <<<"$arm_args"
    read -ra x86_args <<<"$x86_args"
    "$x86" predict --size "$size" "${x86_args[@]}" "${images[@]}" > "$out/x86.jsonl"
    arm "$cpu" predict --size "$size" "${arm_args[@]}" "${images[@]}" > "$out/arm.jsonl"
    model="$label"
    python3 - "$out/x86.jsonl" "$out/arm.jsonl" "$model on $cpu at $size" <<'PY'
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
    print(f"{sys.argv[3]}, image {i}: {len(a['data'])} objects agree")
PY
done
echo "aarch64 (qemu cortex-a76, cortex-a72 and cortex-a53) matches x86_64"

# An RTSP H.264 camera read by the aarch64 binary: retina, tokio and
# OpenH264's NEON decoder in the static build, from GStreamer's RTSP server.
ffmpeg -nostdin -loglevel error -y -loop 1 -framerate 10 -i tests/fixtures/images/bus.jpg -t 30 \
    -vf scale=640:-2 -c:v libx264 -bf 0 -g 10 -pix_fmt yuv420p "$out/clip.mkv"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/python3 tests/fixtures/rtsp_server.py "$port" "$out/clip.mkv" >"$out/rtsp.txt" &
rtsp=$!
trap 'kill $rtsp 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 50); do grep -q serving "$out/rtsp.txt" && break; sleep 0.2; done
arm cortex-a76 capture --camera "rtsp://127.0.0.1:$port/cam" --size 320 --frames 2 >"$out/rtsp.jsonl" 2>"$out/rtsp.err" ||
    { cat "$out/rtsp.err"; exit 1; }
python3 - "$out/rtsp.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 2, lines
for line in lines:
    names = {d["name"] for d in line["data"]}
    assert (line["width"], line["height"]) == (640, 854) and {"bus", "person"} <= names, line
print("aarch64 (qemu cortex-a76): an RTSP H.264 camera decoded in process, bus and people in every line")
PY
