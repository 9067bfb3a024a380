#!/usr/bin/env bash
# Deterministic aarch64 cost of yolod's inference, in guest instructions
# counted under qemu-user with bench/qemu-insn (a TCG plugin).
#
#   bench/aarch64_cost.sh [options] [MODEL_FILE...]
#
# For every model x size x CPU it runs
#   qemu-aarch64 -cpu CPU -plugin libinsn.so yolod bench --model M --size S \
#       --iterations I --warmup 0 --inference-only [IMAGE]
# for I = 0, 1, 2 and reports
#   per inference  = count(I=2) - count(I=1)
#   first extra    = count(I=1) - count(I=0) - per inference   (one-off work
#                    of the first run: buffer allocation, lazy init)
#   fixed          = count(I=0): process start, model load + optimise (+ the
#                    plan for S when S differs from the export size), the
#                    synthetic image's encode + decode + letterbox
# and the ratio of the per-inference count to the FMLA floor: YOLOv8n's
# multiply-accumulates (4.35 G at 640, scaled by (S/640)^2) / 4 lanes per
# fp32 FMLA  ->  1.09 G instructions at 640.
#
# Models: the embedded `yolov8n`, then any ONNX files given as arguments or
# in $MODELS (space-separated). --no-embedded leaves the embedded one out.
#
# Options (or environment variables):
#   --sizes "640 320"              SIZES
#   --cpus "cortex-a76 cortex-a72" CPUS   (Pi 5 with dot product / Pi 4 without)
#   --jobs N                       JOBS   parallel qemu runs (default 1)
#   --bin PATH                     YOLOD_AARCH64 (default
#                                  target/aarch64-unknown-linux-musl/dist/yolod)
#   --image FILE                   IMAGE  bench image (default: yolod's synthetic one)
#   --out DIR                      COST_OUT raw counts and logs
#                                  (default target/aarch64-cost)
#   --check                        run the first model/size/CPU twice more and
#                                  fail unless the counts repeat exactly
#   --no-embedded
#   FLOOR_GMACS (default 4.35), QEMU (default qemu-aarch64),
#   INSN_MODE (plugin mode, default tb; see qemu-insn/insn_count.c)
#   CPU_PART=0  do not set TRACT_CPU_AARCH64_OVERRIDE_CPU_PART
#   PRECISION (default fp32) the embedded model's --precision
#
# What the guest sees of the machine: qemu-user 7.2 emulates the CPU's
# HWCAP (cortex-a76 has the dot product, cortex-a72 has not), but
# /proc/cpuinfo and /sys (cache sizes, which tract uses to size its matmul
# tiles) are the host's. So the harness sets tract's
# TRACT_CPU_AARCH64_OVERRIDE_CPU_PART to the emulated core's part number
# (a76 0xd0b, a72 0xd08) and prints the host cache sizes with the table:
# counts are exactly repeatable on one host, and may move a little between
# hosts with different caches.
#
# Needs: Debian qemu-user (dynamic qemu-aarch64 with -plugin), gcc,
# libglib2.0-dev, curl, xz-utils, patch (see qemu-insn/build.sh), and the
# static build: cargo build --release --target aarch64-unknown-linux-musl
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

sizes="${SIZES:-640 320}"
cpus="${CPUS:-cortex-a76 cortex-a72}"
jobs="${JOBS:-1}"
bin="${YOLOD_AARCH64:-$root/target/aarch64-unknown-linux-musl/dist/yolod}"
image="${IMAGE:-}"
out="${COST_OUT:-$root/target/aarch64-cost}"
qemu="${QEMU:-qemu-aarch64}"
floor_gmacs="${FLOOR_GMACS:-4.35}"
insn_mode="${INSN_MODE:-tb}"
check=0
embedded=1
extra=()
# shellcheck disable=SC2206
[[ -n "${MODELS:-}" ]] && extra+=(${MODELS})

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --cpus) cpus="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --image) image="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --check) check=1; shift ;;
        --no-embedded) embedded=0; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "aarch64_cost: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) extra+=("$1"); shift ;;
    esac
done

models=()
[[ "$embedded" == 1 ]] && models+=(yolov8n)
# The embedded model runs at fp32 unless PRECISION says otherwise: under
# --precision auto it would be int8 on a cortex-a76, and the int8 ratios
# are taken against fp32.
embedded_precision=${PRECISION:-fp32}
for m in ${extra[@]+"${extra[@]}"}; do
    [[ -f "$m" ]] || { echo "aarch64_cost: no model file $m" >&2; exit 2; }
    models+=("$(cd "$(dirname "$m")" && pwd)/$(basename "$m")")
done
[[ ${#models[@]} -gt 0 ]] || { echo "aarch64_cost: no models" >&2; exit 2; }
[[ -x "$bin" ]] || { echo "aarch64_cost: no aarch64 yolod at $bin (cargo build --release --target aarch64-unknown-linux-musl, or --bin)" >&2; exit 2; }
command -v "$qemu" >/dev/null || { echo "aarch64_cost: $qemu not found (apt-get install -y qemu-user)" >&2; exit 2; }
if [[ -n "$image" ]]; then image="$(cd "$(dirname "$image")" && pwd)/$(basename "$image")"; fi

so="$("$here/qemu-insn/build.sh" | tail -n1)"
mkdir -p "$out"

tag() { # model -> short file-name tag
    local m="$1"
    if [[ "$m" == yolov8n ]]; then echo embedded; else basename "$m" .onnx | tr -c 'A-Za-z0-9._\n-' _; fi
}

# one qemu run: writes $base.count (instructions), .time (wall s), .log
run_one() { # model size cpu iterations base
    local m="$1" s="$2" c="$3" i="$4" base="$5" t0 t1 rc=0
    local part=""
    case "$c" in
        cortex-a76) part=0xd0b ;; cortex-a72) part=0xd08 ;; cortex-a57) part=0xd07 ;;
        cortex-a53) part=0xd03 ;; cortex-a35) part=0xd04 ;; neoverse-n1) part=0xd0c ;;
    esac
    [[ "${CPU_PART:-1}" == 0 || -n "${TRACT_CPU_AARCH64_OVERRIDE_CPU_PART:-}" ]] && part=""
    rm -f "$base.count" "$base.time"
    t0="$(date +%s.%N)"
    ${part:+env TRACT_CPU_AARCH64_OVERRIDE_CPU_PART="$part"} "$qemu" -cpu "$c" -plugin "$so,mode=$insn_mode,out=$base.count.raw" \
        "$bin" bench --model "$m" ${embedded_precision:+--precision "$embedded_precision"} \
        --size "$s" --iterations "$i" --warmup 0 --inference-only \
        ${image:+"$image"} >"$base.log" 2>&1 || rc=$?
    t1="$(date +%s.%N)"
    if [[ "$rc" != 0 || ! -s "$base.count.raw" ]]; then
        echo "aarch64_cost: FAILED (exit $rc): $m size $s $c iterations $i; see $base.log" >&2
        tail -n 5 "$base.log" >&2
        return 1
    fi
    awk 'NR == 1 {print $2}' "$base.count.raw" >"$base.count"
    rm -f "$base.count.raw"
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f\n", b - a}' >"$base.time"
}

# queue every run, at most $jobs at a time
pids=()
failed=0
launch() {
    while [[ ${#pids[@]} -ge "$jobs" ]]; do
        wait -n || failed=1
        local alive=()
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
        pids=(${alive[@]+"${alive[@]}"})
    done
    run_one "$@" &
    pids+=($!)
}

start_all="$(date +%s)"
for m in "${models[@]}"; do
    for s in $sizes; do
        for c in $cpus; do
            for i in 2 1 0; do
                launch "$m" "$s" "$c" "$i" "$out/$(tag "$m")_${s}_${c}_i$i"
            done
        done
    done
done
for p in ${pids[@]+"${pids[@]}"}; do wait "$p" || failed=1; done
[[ "$failed" == 0 ]] || { echo "aarch64_cost: some runs failed" >&2; exit 1; }

if [[ "$check" == 1 ]]; then
    m="${models[0]}"; s="${sizes%% *}"; c="${cpus%% *}"
    for i in 2 1; do
        b="$out/$(tag "$m")_${s}_${c}_i$i"
        run_one "$m" "$s" "$c" "$i" "$b.check"
        if cmp -s "$b.count" "$b.check.count"; then
            echo "check: $(tag "$m") $s $c iterations $i: $(cat "$b.count") twice (deterministic)"
        else
            echo "check: $(tag "$m") $s $c iterations $i: $(cat "$b.count") vs $(cat "$b.check.count") - NOT deterministic" >&2
            failed=1
        fi
    done
fi

# table
summary="$out/summary.tsv"
printf 'model\tprecision\tsize\tcpu\tinsn_per_inference\tfloor\tratio\tfirst_extra\tfixed\twall_s_i0\twall_s_i1\twall_s_i2\n' >"$summary"
for m in "${models[@]}"; do
    for s in $sizes; do
        for c in $cpus; do
            b="$out/$(tag "$m")_${s}_${c}"
            # "model ID (PRECISION), WxH, ..." - the size the network really ran at
            head_line="$(grep -m1 '^model ' "$b"_i2.log || true)"
            prec="$(sed -n 's/^model [^ ]* (\([^)]*\)).*/\1/p' <<<"$head_line")"
            net="$(sed -n 's/^model [^,]*, \([0-9]*\)x[0-9]*,.*/\1/p' <<<"$head_line")"
            printf '%s\t%s\t%s\t%s\t' "$(tag "$m")" "${prec:-?}" "${net:-$s}" "$c" >>"$summary"
            awk -v c0="$(cat "$b"_i0.count)" -v c1="$(cat "$b"_i1.count)" -v c2="$(cat "$b"_i2.count)" \
                -v s="${net:-$s}" -v g="$floor_gmacs" \
                -v w0="$(cat "$b"_i0.time)" -v w1="$(cat "$b"_i1.time)" -v w2="$(cat "$b"_i2.time)" \
                'BEGIN{ per = c2 - c1; floor = g * 1e9 * (s / 640) ^ 2 / 4;
                        printf "%.0f\t%.0f\t%.3f\t%.0f\t%.0f\t%s\t%s\t%s\n", per, floor, per / floor, c1 - c0 - per, c0, w0, w1, w2 }' >>"$summary"
        done
    done
done

echo
echo "aarch64 instructions (qemu $("$qemu" --version | head -n1 | awk '{print $3}'), plugin mode $insn_mode; G = 1e9; floor = ${floor_gmacs} G MACs x (size/640)^2 / 4"
echo "host caches seen by the guest (/sys cpu0): $(for d in /sys/devices/system/cpu/cpu0/cache/index*; do [[ -r "$d/size" ]] && printf 'L%s%s %s ' "$(cat "$d/level")" "$(sed 's/Data/d/;s/Instruction/i/;s/Unified//' "$d/type")" "$(cat "$d/size")"; done)"
echo "per inference = count(--iterations 2) - count(--iterations 1); fixed = count(--iterations 0) = start + load + optimise + image prep"
awk -F'\t' 'NR == 1 { printf "%-22s %-6s %5s %-11s %10s %8s %7s %10s %9s %s\n", "model", "prec", "size", "cpu", "G/infer", "floor G", "ratio", "1st extra", "fixed G", "wall s (i0/i1/i2)"; next }
            { printf "%-22s %-6s %5s %-11s %10.3f %8.3f %7.2f %10.3f %9.3f %s/%s/%s\n", $1, $2, $3, $4, $5 / 1e9, $6 / 1e9, $7, $8 / 1e9, $9 / 1e9, $10, $11, $12 }' "$summary"
echo "raw counts and logs: $out (summary.tsv); total wall $(( $(date +%s) - start_all )) s with $jobs job(s)"
exit "$failed"
