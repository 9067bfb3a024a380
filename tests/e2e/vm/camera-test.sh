#!/bin/sh
# Runs inside the VM (busybox sh): yolod captures from the vivid camera in
# two pixel formats, then survives an unbind/bind of the driver (a replug),
# then serves /v1/snapshot (plain and annotated) from it.
# The JSON lines go to $E2E_OUT for the host to check (tests/e2e/camera.sh).
set -e
out=${E2E_OUT:-/dev/ttyS1}
common="--camera /dev/video0 --frame-size 640x480 --fps 30 --size 32"

echo "== YUYV"
/yolod capture $common --format YUYV --frames 12 --log /tmp/yuyv.jsonl
echo "== NV12"
/yolod capture $common --format NV12 --frames 12 --log /tmp/nv12.jsonl

echo "== replug"
/yolod capture $common --format YUYV --frames 24 --log /tmp/replug.jsonl 2>/tmp/replug.err &
pid=$!
# Wait for the first 6 frames, then pull the camera away for 2 s.
i=0
while [ "$(cat /tmp/replug.jsonl 2>/dev/null | wc -l)" -lt 6 ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i + 1)); done
lines_before=$(wc -l < /tmp/replug.jsonl)
echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind
echo "unbound after $lines_before lines"
sleep 2
echo vivid.0 > /sys/bus/platform/drivers/vivid/bind
echo "bound again"
wait $pid
cat /tmp/replug.err
grep -q "1 reconnects" /tmp/replug.err || { echo "no reconnect reported"; exit 1; }

echo "== kill -9 mid-stream, a torn line, a restart"
/yolod capture $common --format YUYV --frames 1000 --log /tmp/killed.jsonl 2>/dev/null &
kpid=$!
i=0
while [ "$(cat /tmp/killed.jsonl 2>/dev/null | wc -l)" -lt 3 ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 $kpid
wait $kpid 2>/dev/null || true
# What a power cut in the middle of a write leaves behind.
printf '{"ts":"2026-11-28T00:00:00.000Z","source":"/dev/vid' >> /tmp/killed.jsonl
/yolod capture $common --format YUYV --frames 3 --log /tmp/killed.jsonl 2>/dev/null

echo "== serve + snapshot, logging to a full disk"
ip link set lo up
mkdir -p /mnt/full
mount -t tmpfs -o size=64k tmpfs /mnt/full
dd if=/dev/zero of=/mnt/full/filler bs=1k count=128 2>/dev/null || true
/yolod serve $common --format YUYV --listen 127.0.0.1:8080 --log /mnt/full/serve.jsonl 2>/tmp/serve.err &
spid=$!
# 503 until the first frame has been through the model; wget fails on it.
i=0
until wget -q -O /tmp/annotated.jpg 'http://127.0.0.1:8080/v1/snapshot?annotate=true' 2>/dev/null; do
    sleep 0.5; i=$((i + 1))
    [ $i -lt 240 ] || { cat /tmp/serve.err; exit 1; }
done
wget -q -O /tmp/plain.jpg http://127.0.0.1:8080/v1/snapshot
wget -q -O /tmp/metrics http://127.0.0.1:8080/metrics
wget -q -O /tmp/healthz http://127.0.0.1:8080/healthz
kill -TERM $spid
wait $spid || { echo "serve exited $?"; cat /tmp/serve.err; exit 1; }

for f in yuyv nv12 replug killed; do
    echo "#FILE $f"
    cat /tmp/$f.jsonl
done > "$out"
for f in annotated plain; do
    echo "#JPEG $f $(wc -c < /tmp/$f.jpg) $(head -c 3 /tmp/$f.jpg | od -An -tx1 | tr -d ' ')"
done >> "$out"
echo "#METRIC $(grep '^yolod_log_write_failures_total' /tmp/metrics)" >> "$out"
echo "#HEALTHZ $(cat /tmp/healthz)" >> "$out"
echo "== done"
