#!/usr/bin/env python3
"""Where should a device's cores go: into one inference, or into more of them?

Part 1, one request at a time: inference p50 with the matrix products split
across T threads (yolod --matmul-threads T) against onnxruntime with T
intra-op threads, same model, image and run, for T = 1 .. CPUs.

Part 2, under load: bench/load.py (C clients posting for S seconds) against
`yolod serve` with W workers x T matmul threads, W x T = CPUs.

    python3 bench/threads.py [--bin PATH] [--seconds 30] [--clients 4]

Needs: pip install onnxruntime onnx opencv-python-headless numpy
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.path.join(ROOT, "tests", "fixtures", "images", "bus.jpg")


def last_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "x86_64-unknown-linux-musl", "release", "yolod"))
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--sizes", default="640,320")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--load-size", type=int, default=320)
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    counts = list(range(1, cpus + 1))
    print(f"machine: {cpus} CPUs; image {os.path.basename(IMAGE)}; {args.iterations} timed runs after 3 warm-up")
    print("\n1. one request at a time: inference p50 (ms) and speed-up over 1 thread")
    print(f"{'size':>5} {'threads':>7} {'tract':>8} {'x':>5} {'ort':>8} {'x':>5} {'tract/ort':>9}")
    for size in [int(s) for s in args.sizes.split(",")]:
        base = {}
        for t in counts:
            tract = last_json([args.bin, "bench", "--json", "--inference-only", "--size", str(size),
                               "--iterations", str(args.iterations), "--matmul-threads", str(t), IMAGE])
            ort = last_json([sys.executable, os.path.join(ROOT, "bench", "ort_bench.py"), "--size", str(size),
                             "--threads", str(t), "--iterations", str(args.iterations), "--image", IMAGE],
                            {"OMP_NUM_THREADS": str(t)})
            tp, op = tract["stages_ms"]["inference"]["p50"], ort["inference_ms"]["p50"]
            base.setdefault("tract", tp)
            base.setdefault("ort", op)
            print(f"{size:>5} {t:>7} {tp:>8.1f} {base['tract'] / tp:>5.2f} {op:>8.1f} {base['ort'] / op:>5.2f} {tp / op:>9.2f}",
                  flush=True)
    print(f"\n2. under load: {args.clients} clients, {args.seconds:.0f} s, size {args.load_size} (bench/load.py)")
    for t in counts:
        if cpus % t:
            continue
        w = cpus // t
        out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "load.py"), "--bin", args.bin,
                              "--clients", str(args.clients), "--seconds", str(args.seconds),
                              "--size", str(args.load_size)],
                             check=True, capture_output=True, text=True,
                             env={**os.environ, "YOLOD_WORKERS": str(w), "YOLOD_MATMUL_THREADS": str(t)})
        print(f"{w} worker(s) x {t} matmul thread(s): {out.stdout.strip().splitlines()[-1]}", flush=True)


if __name__ == "__main__":
    main()
