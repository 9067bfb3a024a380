#!/usr/bin/env bash
# Checks the instruction-counting plugin on a small static aarch64 program
# (selftest.c): count(loop 2N) - count(loop N) must be the same in every
# plugin mode and in two runs of each, and equal to N times the loop's size.
# Needs gcc-aarch64-linux-gnu (static glibc for arm64 comes with it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
qemu="${QEMU:-qemu-aarch64}"
cpu="${CPU:-cortex-a76}"
n="${N:-1000000}"
so="$("$here/build.sh" | tail -n1)"
prog="$here/build/selftest"
aarch64-linux-gnu-gcc -O1 -static -pthread -o "$prog" "$here/selftest.c"

count() { # mode iterations [threads]
    local f="$here/build/selftest.count"
    "$qemu" -cpu "$cpu" -plugin "$so,mode=$1,out=$f" "$prog" "${@:2}"
    awk 'NR == 1 {print $2}' "$f"
}

fail=0
first=""
for mode in tb inline insn; do
    for run in 1 2; do
        a="$(count "$mode" "$n")"
        b="$(count "$mode" "$((2 * n))")"
        d=$((b - a))
        echo "mode=$mode run=$run count(N)=$a count(2N)=$b diff=$d ($(awk -v d="$d" -v n="$n" 'BEGIN{printf "%.4f", d / n}') per iteration)"
        if [[ -z "$first" ]]; then first="$d"; elif [[ "$d" != "$first" ]]; then fail=1; fi
    done
done
# The loop body's size, from the disassembly of work() (from the madd to
# the backward branch).
body="$(aarch64-linux-gnu-objdump -d "$prog" | awk '/<work>:/{on=1} on&&!done&&/\tmadd/{c=1} on&&c&&!done{k++} on&&c&&!done&&/\tb\.ne/{print k; done=1}')"
echo "loop body from objdump: ${body:-?} instructions; expected diff $((${body:-0} * n))"
if [[ -n "$body" && "$first" != "$((body * n))" ]]; then fail=1; fi

# Several guest threads: the tb mode keeps one counter per vCPU; the total
# still varies a little from run to run (thread start-up and futex waits
# depend on host scheduling), so this only reports.
for run in 1 2; do
    echo "4 threads x N, mode=tb, run $run: $(count tb "$n" 4)"
done

# The per-block profile, per thread: its lines add up to the counter, each
# vCPU's lines to that vCPU's total, and the 4 workers ran the same loop.
f="$here/build/selftest.count" p="$here/build/selftest.profile"
"$qemu" -cpu "$cpu" -plugin "$so,mode=tb,out=$f,profile=$p" "$prog" "$n" 4
if ! awk -v n="$n" -v body="${body:-0}" '
    FNR == NR { if ($1 == "insns") total = $2; else if ($1 == "vcpu") vcpu[$2] = $4; next }
    { sum += $2; per[$3] += $2 }
    END {
        ok = (sum == total)
        for (v in vcpu) if (per[v] != vcpu[v]) ok = 0
        for (v = 2; v <= 4; v++) if (per[v] != per[1]) ok = 0
        if (per[1] < body * n) ok = 0
        printf "profile, 4 threads: %d instructions (counter %d); per thread:", sum, total
        for (v = 0; v <= 4; v++) printf " %d", per[v]
        print ok ? " (consistent)" : " (INCONSISTENT)"
        exit !ok
    }' "$f" "$p"; then
    fail=1
fi

if [[ "$fail" == 0 ]]; then echo "selftest: OK (deterministic, exact)"; else echo "selftest: FAILED"; exit 1; fi
