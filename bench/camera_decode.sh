#!/usr/bin/env bash
# What decoding a camera's frame costs next to inference, per frame: a
# 640x480 MJPEG picture (a USB or HTTP camera) and 640x360 H.264 (an IP
# camera's sub-stream over RTSP), both made by ffmpeg from zidane.jpg. The
# H.264 clip pans and carries sensor-like noise, 15 fps, 800 kb/s, a key
# frame every 2 s and no B-frames, so its predicted frames cost what a real
# camera's do, not a still picture's.
#
#   bench/camera_decode.sh [YOLOD] [--aarch64]
#
# x86: `yolod bench` p50 per stage, 60 runs (one H.264 picture each, so two
# key frames among them), at --size 320 and 640. With --aarch64 it also
# counts instructions per frame on a Cortex-A76 with bench/aarch64_profile.py
# --around over 30 frames (one H.264 group of pictures: a key frame and 29
# predicted ones), int8 as the A76 runs it, on $ARM (default: the dist
# build; a stripped one gives the totals, one with symbols the breakdown).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/x86_64-unknown-linux-musl/release/yolod aarch64=false
for arg in "$@"; do
    if [[ $arg == --aarch64 ]]; then aarch64=true; else bin=$arg; fi
done
work=target/bench-camera-decode
mkdir -p "$work"
h264=$work/zidane-640x360.h264 mjpeg=$work/zidane-640x480.jpg
ffmpeg -nostdin -loglevel error -y -loop 1 -framerate 15 -i tests/fixtures/images/zidane.jpg -t 4 \
    -vf "crop=960:540:x='160+120*sin(t)':y='90+60*cos(t)',scale=640:360,noise=alls=6:allf=t" \
    -c:v libx264 -profile:v main -bf 0 -g 30 -b:v 800k -maxrate 1M -bufsize 1M -pix_fmt yuv420p -f h264 "$h264"
ffmpeg -nostdin -loglevel error -y -i tests/fixtures/images/zidane.jpg -vf scale=640:480 -q:v 4 "$mjpeg"

printf '%-28s %5s %10s %12s %14s %12s\n' input size "decode ms" "letterbox ms" "inference ms" "decode/inf"
for size in 320 640; do
    for input in "h264:$h264" "mjpeg:$mjpeg"; do
        kind=${input%%:*} file=${input#*:}
        if [[ $kind == h264 ]]; then args=(--h264) label="H.264 640x360 (RTSP)"; else args=(--format MJPG) label="MJPEG 640x480"; fi
        "$bin" bench --size "$size" --iterations 60 --warmup 2 --json "${args[@]}" "$file" 2>/dev/null |
            python3 -c '
import json, sys
r = json.loads(sys.stdin.read())["stages_ms"]
d, p, i = r["decode"]["p50"], r["preprocess"]["p50"], r["inference"]["p50"]
print(f"{sys.argv[1]:<28} {sys.argv[2]:>5} {d:10.2f} {p:12.2f} {i:14.1f} {d / i:12.3f}")
' "$label" "$size"
    done
done

if $aarch64; then
    for size in 320 640; do
        for input in "--image $h264 --h264" "--image $mjpeg --format MJPG"; do
            # shellcheck disable=SC2086 # the input's words
            python3 bench/aarch64_profile.py --bin "${ARM:-target/aarch64-unknown-linux-musl/dist/yolod}" \
                --around --span 30 --precision int8 --size "$size" $input --top 8
        done
    done
fi
