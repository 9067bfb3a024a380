#!/bin/sh
# Smoke test for the VM harness: run.sh BINARY tests/e2e/vm/smoke.sh
set -e
ls -l /dev/video*
cat /sys/class/video4linux/video0/name
exit 0
