#!/usr/bin/env bash
# Memory through a broker outage: yolod serve with a camera at 5 fps
# (tests/e2e/mqtt/scene.sh through exec:, its scene flipping between people
# and none every 10 s so counts, snapshots and lines keep changing) and
# --mqtt to a local mosquitto. After a warm-up with the broker up, the
# broker is stopped for SECS seconds; RSS is sampled every 30 s. Prints RSS
# at the outage's start and end, the drift ratio (end / start - 1; the aim
# is under 10%), frames processed and MQTT messages dropped (latest per
# topic kept). Not run by CI (tests/e2e/mqtt.sh covers the behaviour).
#
# usage: bench/mqtt_outage.sh [SECS (300)] [YOLOD_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
bin=${2:-target/x86_64-unknown-linux-musl/release/yolod}
warmup=${WARMUP:-40}
[[ -x "$bin" ]] || { echo "no yolod binary at $bin"; exit 1; }
command -v mosquitto >/dev/null || PATH=$PATH:/usr/sbin
work=$(mktemp -d /tmp/yolod-mqtt-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

port=$(free_port)
api_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker=$!
pids+=("$broker")
sleep 0.5
"$bin" serve --listen "127.0.0.1:$api_port" --camera "exec:tests/e2e/mqtt/scene.sh $work" --fps 5 \
    --size 320 --log "$work/lines.jsonl" --mqtt "mqtt://127.0.0.1:$port" 2>"$work/yolod.log" &
yolod=$!
pids+=("$yolod")
# The scene flips every 10 s: person counts rise and fall, snapshots are taken.
(while kill -0 "$yolod" 2>/dev/null; do touch "$work/empty"; sleep 10; rm -f "$work/empty"; sleep 10; done) &
pids+=($!)
until grep -q "ready on" "$work/yolod.log"; do
    kill -0 "$yolod" 2>/dev/null || { cat "$work/yolod.log"; exit 1; }
    sleep 0.2
done
echo "warm-up ${warmup}s with the broker up"
sleep "$warmup"
metric() { curl -s "http://127.0.0.1:$api_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
kill "$broker"
wait "$broker" 2>/dev/null || true
sleep 5
start=$(rss_kib "$yolod")
lines_start=$(wc -l <"$work/lines.jsonl")
echo "broker stopped; RSS at the outage's start: $start KiB"
for ((t = 30; t <= secs; t += 30)); do
    sleep 30
    echo "  ${t}s: RSS $(rss_kib "$yolod") KiB, lines $(wc -l <"$work/lines.jsonl"), mqtt dropped $(metric yolod_mqtt_dropped_total)"
done
end=$(rss_kib "$yolod")
lines_end=$(wc -l <"$work/lines.jsonl")
python3 -c 'import sys; s, e = int(sys.argv[1]), int(sys.argv[2]); print(f"RSS start {s} KiB, end {e} KiB, drift {e / s - 1:+.2%}")' "$start" "$end"
echo "frames logged during the outage: $((lines_end - lines_start)) ($(((lines_end - lines_start) / secs)) per second)"
echo "MQTT messages dropped (replaced while the broker was gone): $(metric yolod_mqtt_dropped_total)"
echo "MQTT queued at the end (at most one per topic): $(metric yolod_mqtt_queued)"
