#!/usr/bin/env python3
"""The markdown table of bench/ort_aarch64/table.sh's JSON lines: runtime x
model x size x board, G instructions, estimated G cycles, estimated ms, and
the ratio of estimated cycles to yolod's on the same model file and to
yolod's default (int8 where the core has the dot product, fp32 elsewhere).

    python3 bench/ort_aarch64/table.py RESULTS.jsonl [MORE.jsonl ...]
"""
import json
import sys

DEFAULT = {"pi5": "int8", "orin": "int8", "pi4": "fp32", "zero2w": "fp32"}


def main():
    rows = {}
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    runtime, precision, model = r["model"].split(" ", 2)
                    rows[(runtime, precision, r["size"], r["board"])] = dict(r, runtime=runtime, precision=precision,
                                                                             file=model)
    order = {"yolod": 0, "ort": 1, "ncnn": 2}
    print("| runtime | model file | size | board | G instructions | G cycles (est.) | cycles/instr "
          "| ms (est., 1 thread) | cycles / yolod same file | cycles / yolod default |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(rows, key=lambda k: (k[3] != "pi5", k[2], k[1], order.get(k[0], 9))):
        r = rows[key]
        runtime, precision, size, board = key
        same = rows.get(("yolod", precision, size, board))
        default = rows.get(("yolod", DEFAULT[board], size, board))
        ratio = lambda y: f"{r['cycles'] / y['cycles']:.2f}" if y else "-"
        name = {"ort": "onnxruntime 1.24.3", "ncnn": "ncnn 1.0.20250503 (fp16 arith.)"}.get(runtime, "yolod")
        print(f"| {name} | {r['file']} ({precision}) | {size} | {board} | {r['instructions'] / 1e9:.3f} "
              f"| {r['cycles'] / 1e9:.3f} | {r['cpi']:.3f} | {r['ms']:.1f} | {ratio(same)} | {ratio(default)} |")


if __name__ == "__main__":
    main()
