#!/usr/bin/env bash
# systemd/yolod.service must pass `systemd-analyze verify` without a word and
# score an overall exposure <= 2.0 in `systemd-analyze security --offline`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-target/x86_64-unknown-linux-musl/release/yolod}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# verify checks that ExecStart exists: point it at the binary just built.
sed "s|^ExecStart=/usr/bin/yolod|ExecStart=$bin|" systemd/yolod.service > "$work/yolod.service"
cp systemd/yolod.socket "$work/"
out=$(cd "$work" && systemd-analyze verify yolod.service yolod.socket 2>&1 || true)
if [[ -n "$out" ]]; then
    echo "systemd-analyze verify is not clean:"; echo "$out"; exit 1
fi
# The Pi camera drop-in (systemd/pi-camera.conf) must be as clean on top of it.
mkdir "$work/pi"
{ cat "$work/yolod.service"; echo; cat systemd/pi-camera.conf; } > "$work/pi/yolod.service"
out=$(cd "$work/pi" && systemd-analyze verify yolod.service 2>&1 || true)
if [[ -n "$out" ]]; then
    echo "systemd-analyze verify with pi-camera.conf is not clean:"; echo "$out"; exit 1
fi
score=$(systemd-analyze security --offline=true "$work/yolod.service" 2>&1 | sed -n 's/.*Overall exposure level for yolod.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: overall exposure $score (goal <= 2.0)"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
