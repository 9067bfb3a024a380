#!/usr/bin/env bash
# MQTT and Home Assistant discovery against a real broker: Debian's
# mosquitto on free loopback ports, started and stopped here, read with
# mosquitto_sub/_pub. The camera is the exec: source running
# tests/e2e/mqtt/scene.sh (bus.jpg, or a grey picture while DIR/empty exists).
# Checks: the discovery configs, sent again when Home Assistant says
# online; person goes to N > 0 and back to 0; the
# snapshot is a JPEG with people in it; the broker stopped and started again
# (detection lines keep flowing, /readyz stays 200 and shows it, yolod
# republishes availability and state); the last will after kill -9;
# `offline` on SIGTERM; wrong credentials from a password file give a clear
# log line without the password and show in /readyz; mqtts:// against a
# private CA (trusted through SSL_CERT_FILE, refused without it).
#
# usage: tests/e2e/mqtt.sh [YOLOD_BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/x86_64-unknown-linux-musl/release/yolod}
[[ -x "$bin" ]] || { echo "no yolod binary at $bin (cargo build --release --target x86_64-unknown-linux-musl)"; exit 1; }
command -v mosquitto >/dev/null || PATH=$PATH:/usr/sbin
command -v mosquitto >/dev/null && command -v mosquitto_sub >/dev/null ||
    { echo "needs Debian's mosquitto and mosquitto-clients (tests/setup.sh installs them)"; exit 1; }
work=$(mktemp -d /tmp/yolod-mqtt-e2e.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The retained message of a topic (empty if none within 2 s).
retained() { mosquitto_sub -p "$1" -t "$2" -C 1 -W 2 2>/dev/null || true; }
# Waits up to $3 s until the retained message of topic $2 satisfies test $4 (a bash condition on $msg).
wait_for() {
    local port=$1 topic=$2 secs=$3 cond=$4 msg
    for _ in $(seq "$secs"); do
        msg=$(retained "$port" "$topic")
        eval "$cond" && { echo "$msg"; return 0; }
        sleep 1
    done
    fail "$topic: waited ${secs}s for [$cond], last message: '$msg'"
}

# Starts mosquitto on port $1 (extra config lines on stdin); sets $broker.
start_broker() {
    local port=$1 conf=$work/mosquitto-$1.conf
    { printf 'listener %s 127.0.0.1\npersistence false\n' "$port"; cat; } >"$conf"
    mosquitto -c "$conf" >>"$work/mosquitto-$port.log" 2>&1 &
    broker=$!
    pids+=("$broker")
    for _ in $(seq 50); do
        grep -q "running" "$work/mosquitto-$port.log" && return 0
        sleep 0.1
    done
    fail "mosquitto did not start on $port"
}

# Starts yolod serve with the scene camera and ARGS; sets $yolod and $api.
start_yolod() {
    local port name=$1
    shift
    port=$(free_port)
    api=http://127.0.0.1:$port
    "$bin" serve --listen "127.0.0.1:$port" --camera "exec:tests/e2e/mqtt/scene.sh $work" --fps 5 \
        --size 320 --log "$work/$name.jsonl" "$@" 2>"$work/$name.log" &
    yolod=$!
    pids+=("$yolod")
    for _ in $(seq 600); do
        grep -q "ready on" "$work/$name.log" && return 0
        kill -0 "$yolod" 2>/dev/null || fail "yolod exited"
        sleep 0.1
    done
    fail "yolod did not become ready"
}
lines() { wc -l <"$work/$1.jsonl" 2>/dev/null || echo 0; }
readyz() { curl -s -o "$work/readyz.json" -w '%{http_code}' "$api/readyz"; }
mqtt_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["mqtt"][sys.argv[2]])' "$work/readyz.json" "$1"; }

echo "== discovery, counts, snapshot"
port=$(free_port)
start_broker "$port" <<<"allow_anonymous true"
start_yolod run --mqtt "mqtt://127.0.0.1:$port"
wait_for "$port" yolod/available 60 '[[ $msg == online ]]' >/dev/null
topic=$(mosquitto_sub -p "$port" -t 'yolod/+/person' -v -C 1 -W 60 | cut -d' ' -f1)
[[ -n "$topic" ]] || fail "no person count published"
camera=$(cut -d/ -f2 <<<"$topic")
n=$(wait_for "$port" "yolod/$camera/person" 60 '[[ $msg =~ ^[1-9][0-9]*$ ]]')
echo "camera $camera: person = $n"
mosquitto_sub -p "$port" -t 'homeassistant/#' -v -W 2 >"$work/configs.txt" 2>/dev/null || true
mosquitto_sub -p "$port" -t 'yolod/available' -t "yolod/$camera/+" -v -W 2 >"$work/states.txt" 2>/dev/null || true
python3 tests/e2e/mqtt/check_discovery.py "$work/configs.txt" "$work/states.txt" \
    person car truck bicycle motorcycle bus dog cat bird
mosquitto_sub -p "$port" -t "yolod/$camera/person/snapshot" -C 1 -W 10 -N >"$work/snapshot.jpg" ||
    fail "no retained snapshot"
[[ $(head -c 3 "$work/snapshot.jpg" | od -An -tx1 | tr -d ' ') == ffd8ff ]] || fail "the snapshot is not a JPEG"
"$bin" predict "$work/snapshot.jpg" >"$work/snapshot.json" || fail "the snapshot does not decode"
grep -q '"name":"person"' "$work/snapshot.json" || fail "no person in the snapshot"
echo "snapshot: $(stat -c %s "$work/snapshot.jpg") bytes, a JPEG with people in it"
line=$(mosquitto_sub -p "$port" -t "yolod/$camera/detections" -C 1 -W 10)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["frame"] > 0 and d["data"], d' "$line" ||
    fail "detections: $line"
echo "detections: a JSON line per frame"

echo "== Home Assistant restarts: the configs come again"
config_topic=$(head -1 "$work/configs.txt" | cut -d' ' -f1)
mosquitto_pub -p "$port" -t "$config_topic" -r -n
[[ -z $(retained "$port" "$config_topic") ]] || fail "could not clear $config_topic"
mosquitto_pub -p "$port" -t homeassistant/status -m online
wait_for "$port" "$config_topic" 10 '[[ $msg == *unique_id* ]]' >/dev/null
echo "homeassistant/status online: $config_topic sent again"

echo "== the scene empties: person back to 0, and back again"
touch "$work/empty"
wait_for "$port" "yolod/$camera/person" 60 '[[ $msg == 0 ]]' >/dev/null
wait_for "$port" "yolod/$camera/bus" 10 '[[ $msg == 0 ]]' >/dev/null
rm "$work/empty"
wait_for "$port" "yolod/$camera/person" 60 '[[ $msg =~ ^[1-9][0-9]*$ ]]' >/dev/null
echo "person 0 -> N -> 0 -> N"

echo "== the broker goes away and comes back"
kill "$broker"
wait "$broker" 2>/dev/null || true
before=$(lines run)
sleep 6
after=$(lines run)
((after > before)) || fail "detection lines stopped during the outage ($before -> $after)"
[[ $(readyz) == 200 ]] || fail "/readyz is not 200 during the outage"
[[ $(mqtt_field connected) == False ]] || fail "/readyz does not show the broker gone: $(cat "$work/readyz.json")"
echo "outage: $((after - before)) lines in 6 s, /readyz 200 with mqtt.connected false ($(mqtt_field last_error))"
start_broker "$port" <<<"allow_anonymous true"
wait_for "$port" yolod/available 30 '[[ $msg == online ]]' >/dev/null
wait_for "$port" "yolod/$camera/person" 10 '[[ $msg =~ ^[1-9][0-9]*$ ]]' >/dev/null
wait_for "$port" "homeassistant/binary_sensor/+/${camera}_person/config" 10 '[[ $msg == *occupancy* ]]' >/dev/null
readyz >/dev/null
[[ $(mqtt_field connected) == True && $(mqtt_field reconnects) -ge 1 ]] ||
    fail "/readyz after the reconnect: $(cat "$work/readyz.json")"
curl -s "$api/metrics" | grep -E '^yolod_mqtt_(connected|reconnects_total|dropped_total|published_total) ' |
    tee "$work/metrics.txt"
grep -q '^yolod_mqtt_connected 1' "$work/metrics.txt" || fail "metrics: not connected"
echo "reconnected: availability, counts and discovery republished to the fresh broker"

echo "== last will after kill -9"
kill -9 "$yolod"
wait "$yolod" 2>/dev/null || true
wait_for "$port" yolod/available 10 '[[ $msg == offline ]]' >/dev/null
echo "yolod/available = offline (the will)"

echo "== offline on a clean stop"
start_yolod stop --mqtt "mqtt://127.0.0.1:$port"
wait_for "$port" yolod/available 60 '[[ $msg == online ]]' >/dev/null
kill -TERM "$yolod"
wait "$yolod" || fail "yolod did not exit 0 on SIGTERM"
[[ $(retained "$port" yolod/available) == offline ]] || fail "no offline after SIGTERM"
grep -q "said offline" "$work/stop.log" || fail "no clean goodbye in the log"
echo "SIGTERM: offline published, exit 0"

echo "== wrong credentials"
port2=$(free_port)
mosquitto_passwd -b -c "$work/passwd" ha right-password 2>/dev/null
# mosquitto started as root reads its password file as the user mosquitto.
chmod 755 "$work"
chmod 644 "$work/passwd"
# (Input by redirection, not a pipe: a piped function runs in a subshell,
# and the broker's pid would not reach the cleanup.)
start_broker "$port2" < <(printf 'allow_anonymous false\npassword_file %s\n' "$work/passwd")
printf 'wrong-password\n' >"$work/mqtt-pass"
chmod 600 "$work/mqtt-pass"
start_yolod creds --mqtt "mqtt://ha@127.0.0.1:$port2" --mqtt-password-file "$work/mqtt-pass"
for _ in $(seq 100); do grep -q "MQTT.*refused" "$work/creds.log" && break; sleep 0.2; done
grep "MQTT.*refused" "$work/creds.log" || fail "no log line about the refused credentials"
grep -q "error" <(grep "MQTT.*refused" "$work/creds.log") || fail "the refusal is not logged as an error"
! grep -q "wrong-password" "$work/creds.log" || fail "the password shows in the log"
[[ $(readyz) == 200 ]] || fail "/readyz is not 200 with refused credentials"
[[ $(mqtt_field last_error) == *refused* ]] || fail "/readyz does not show the refusal: $(cat "$work/readyz.json")"
! grep -q "wrong-password" "$work/readyz.json" || fail "the password shows in /readyz"
for _ in $(seq 100); do (($(lines creds) > 0)) && break; sleep 0.2; done
(($(lines creds) > 0)) || fail "no detection lines with the broker refusing"
kill "$yolod"
wait "$yolod" || true
printf 'right-password\n' >"$work/mqtt-pass"
start_yolod creds2 --mqtt "mqtt://ha@127.0.0.1:$port2" --mqtt-password-file "$work/mqtt-pass"
[[ $(mosquitto_sub -p "$port2" -u ha -P right-password -t yolod/available -C 1 -W 60) == online ]] ||
    fail "the right password did not connect"
echo "credentials: refusal logged as an error without the password, shown in /readyz; the right one connects"
echo "== mqtts:// (rustls with ring) against a private CA"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 -subj "/CN=yolod test CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$work/tls.key" -out "$work/tls.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$work/san.cnf"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
    -extfile "$work/san.cnf" -out "$work/tls.pem" 2>/dev/null
chmod 644 "$work"/*.pem "$work"/*.key
port3=$(free_port)
start_broker "$port3" < <(printf 'allow_anonymous true\ncafile %s\ncertfile %s\nkeyfile %s\n' \
    "$work/ca.pem" "$work/tls.pem" "$work/tls.key")
tls_sub() { mosquitto_sub -h localhost -p "$port3" --cafile "$work/ca.pem" -t yolod/available -C 1 -W "$1" 2>/dev/null || true; }
SSL_CERT_FILE=$work/ca.pem start_yolod tls --mqtt "mqtts://localhost:$port3"
[[ $(tls_sub 60) == online ]] || fail "mqtts:// with the CA trusted did not connect"
kill "$yolod"
wait "$yolod" || true
start_yolod tls-untrusted --mqtt "mqtts://localhost:$port3"
for _ in $(seq 100); do grep -q "UnknownIssuer" "$work/tls-untrusted.log" && break; sleep 0.2; done
grep -q "UnknownIssuer" "$work/tls-untrusted.log" || fail "an untrusted broker certificate was not refused"
echo "mqtts: connects with the CA in SSL_CERT_FILE, refuses the certificate without it"
echo "mqtt e2e: all checks passed"
