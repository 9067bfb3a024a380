#!/usr/bin/env bash
# Boot a test script against a real V4L2 device (the vivid driver) in a VM.
#
# usage: run.sh BINARY TEST_SCRIPT
#
# Builds an initramfs (build-initramfs.sh) with BINARY at /yolod and
# TEST_SCRIPT at /test.sh, boots Debian's amd64 kernel on it in
# qemu-system-x86_64 with TCG (no KVM needed), streams the serial console to
# stdout and to a log, and exits with the test's exit code, read from the
# `YOLOD-E2E-EXIT=<code>` line /init prints. No such line (boot failure, VM
# timeout, crash) exits 124 after the VM timeout or 1 otherwise.
#
# Installs nothing. Needs (Debian): qemu-system-x86 cpio xz-utils kmod, the
# apt lists (`apt-get update`) so that build-initramfs.sh can `apt-get
# download` linux-image-6.1.0-NN-amd64 and busybox-static (cached in
# ${XDG_CACHE_HOME:-~/.cache}/yolod-vm).
#
# Environment (plus those of build-initramfs.sh, e.g. YOLOD_VM_FILES,
# YOLOD_VM_TEST_TIMEOUT, YOLOD_VM_VIVID_PARAMS):
#   YOLOD_VM_WORKDIR  keep vmlinuz, initrd.gz, console.log (serial console)
#                     and out.bin (what the test wrote to $E2E_OUT, the raw
#                     second serial port) there; default: a temporary
#                     directory removed on exit
#   YOLOD_VM_TIMEOUT  seconds before the VM is killed (default 600)
#   YOLOD_VM_MEM      MiB of RAM (default 1024)
#   YOLOD_VM_SMP      CPUs (default 2)
#   YOLOD_VM_ACCEL    qemu accelerator (default tcg)
#   YOLOD_VM_CPU      qemu CPU model (default max: every feature TCG emulates,
#                     so a binary that picks SIMD at run time takes its fast
#                     paths; qemu64 would lack SSSE3/SSE4)
#   YOLOD_VM_QUIET    1: do not copy the console to stdout (still logged)
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BINARY TEST_SCRIPT" >&2; exit 2; }
binary=$1
test_script=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v qemu-system-x86_64 >/dev/null ||
    { echo "run.sh: qemu-system-x86_64 missing (Debian: qemu-system-x86)" >&2; exit 2; }

if [ -n "${YOLOD_VM_WORKDIR:-}" ]; then
    work=$YOLOD_VM_WORKDIR
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
vm_timeout=${YOLOD_VM_TIMEOUT:-600}

start=$(date +%s)
YOLOD_VM_TEST=$test_script "$here/build-initramfs.sh" "$binary" "$work"
built=$(date +%s)

log=$work/console.log
out=$work/out.bin
: > "$out"
qemu=(qemu-system-x86_64
    -accel "${YOLOD_VM_ACCEL:-tcg}" -cpu "${YOLOD_VM_CPU:-max}"
    -m "${YOLOD_VM_MEM:-1024}" -smp "${YOLOD_VM_SMP:-2}"
    -nographic -no-reboot -nic none
    -serial mon:stdio -serial "file:$out"
    -kernel "$work/vmlinuz" -initrd "$work/initrd.gz"
    -append 'console=ttyS0 quiet panic=-1')
echo "run.sh: ${qemu[*]}" >&2
set +e
if [ "${YOLOD_VM_QUIET:-0}" = 1 ]; then
    timeout -k 10 "$vm_timeout" "${qemu[@]}" </dev/null > "$log" 2>&1
    vm_rc=$?
else
    timeout -k 10 "$vm_timeout" "${qemu[@]}" </dev/null 2>&1 | tee "$log"
    vm_rc=${PIPESTATUS[0]}
fi
set -e
end=$(date +%s)

code=$(tr -d '\r' < "$log" | sed -n 's/^YOLOD-E2E-EXIT=\([0-9][0-9]*\)$/\1/p' | tail -n1)
echo "run.sh: initramfs $((built - start)) s, VM $((end - built)) s, qemu exit $vm_rc, test exit ${code:-none}" >&2
if [ -z "$code" ]; then
    if [ "$vm_rc" -eq 124 ] || [ "$vm_rc" -eq 137 ]; then
        echo "run.sh: VM killed after ${vm_timeout} s without a YOLOD-E2E-EXIT line" >&2
        exit 124
    fi
    echo "run.sh: no YOLOD-E2E-EXIT line in the console output" >&2
    exit 1
fi
exit "$code"
