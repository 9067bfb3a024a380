#!/usr/bin/env bash
# yolod against onnxruntime's own aarch64 build on the same emulated cores:
# bench/aarch64_cycles.py for each runtime x model x size x board, one JSON
# line each into OUT (appended), then bench/ort_aarch64/table.py OUT.
#
#   bench/ort_aarch64/table.sh OUT LIBONNXRUNTIME CUT_DIR YOLOD_BIN [RUNS...]
#
# RUNS are runtime:precision:size:board (default: the issue-14 set);
# runtime is yolod, ort or ncnn (fp32 only; needs NCNN_DIR, the directory
# bench/ncnn_aarch64/setup.sh filled). CUT_DIR holds
# bench/ort_aarch64/cut_models.py's output. Sequential on
# purpose: each run is one qemu at a time (the machine is shared).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$1" lib="$2" cut="$3" yolod="$4"
shift 4
runs=("$@")
if [[ ${#runs[@]} -eq 0 ]]; then
    runs=(ort:fp32:320:pi5 yolod:fp32:320:pi5 ort:int8:320:pi5 yolod:int8:320:pi5
          ort:fp32:640:pi5 yolod:fp32:640:pi5 ort:int8:640:pi5 yolod:int8:640:pi5
          ort:fp32:640:pi4 yolod:fp32:640:pi4)
fi
declare -A file=([fp32]=yolov8n [int8]=yolov8n-convint)
declare -A dir=([fp32]=models [int8]=models/int8)
for r in "${runs[@]}"; do
    IFS=: read -r runtime precision size board <<<"$r"
    name="${file[$precision]}"
    if [[ $runtime == ort ]]; then
        args=(--ort "$lib" --model "$cut/$name-cut.onnx")
    elif [[ $runtime == ncnn ]]; then
        d="${NCNN_DIR:?set NCNN_DIR (see bench/ncnn_aarch64/setup.sh)}"
        args=(--qemu-env "PYTHONHOME=$d/root/usr" --qemu-env "PYTHONPATH=$d/site"
              --qemu-env "LD_LIBRARY_PATH=$d/root/lib/aarch64-linux-gnu:$d/root/usr/lib/aarch64-linux-gnu"
              --command "$d/root/usr/bin/python3.11 -S -s $here/../ncnn_aarch64/run.py $d/conv/yolov8n_cut.ncnn.param $d/conv/yolov8n_cut.ncnn.bin $size {n} {maps}")
    else
        args=(--bin "$yolod" --model "$root/${dir[$precision]}/$name.onnx")
    fi
    echo "table.sh: $r" >&2
    python3 "$root/bench/aarch64_cycles.py" --json --mix 12 --board "$board" --size "$size" \
        --label "$runtime $precision $name" "${args[@]}" >>"$out"
done
