#!/usr/bin/env python3
"""yolod against onnxruntime, same model, image, thread count and run.

Prints, per input size: tract inference (yolod bench --inference-only) and
onnxruntime inference (bench/ort_bench.py, 1 intra-op thread) with their
ratio; the share of everything around inference (decode + letterbox +
post-processing + JSON) in a full yolod pipeline; then start-to-ready time
and resident memory of `yolod serve` while answering requests.

    python3 bench/compare.py [--bin target/x86_64-unknown-linux-musl/release/yolod]

Needs: pip install onnxruntime onnx opencv-python-headless numpy
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.path.join(ROOT, "tests", "fixtures", "images", "bus.jpg")


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def serve_figures(binary, requests):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "yolod: ready on" in line:
                ready_s = time.perf_counter() - start
                break
        else:
            raise SystemExit("yolod serve exited before ready")
        body = open(IMAGE, "rb").read()
        peak = 0
        for _ in range(requests):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", data=body,
                                         headers={"Content-Type": "image/jpeg"})
            urllib.request.urlopen(req).read()
            peak = max(peak, rss_kib(proc.pid))
        return ready_s, rss_kib(proc.pid), peak
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "x86_64-unknown-linux-musl", "release", "yolod"))
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--sizes", default="640,320")
    args = ap.parse_args()
    n = str(args.iterations)
    print(f"machine: {os.cpu_count()} CPUs; image {os.path.basename(IMAGE)}; {args.iterations} timed runs after 3 warm-up; 1 thread")
    print(f"{'size':>5} {'tract p50':>10} {'ort p50':>9} {'ratio':>6} {'tract min':>10} {'ort min':>9} {'ratio':>6} {'around':>8}")
    for size in [int(s) for s in args.sizes.split(",")]:
        tract = run_json([args.bin, "bench", "--json", "--inference-only", "--size", str(size), "--iterations", n, IMAGE])
        ort = run_json([sys.executable, os.path.join(ROOT, "bench", "ort_bench.py"), "--size", str(size),
                        "--threads", "1", "--iterations", n, "--image", IMAGE])
        full = run_json([args.bin, "bench", "--json", "--size", str(size), "--iterations", n, IMAGE])
        t, o, st = tract["stages_ms"]["inference"], ort["inference_ms"], full["stages_ms"]
        around = sum(st[k]["p50"] for k in ("decode", "preprocess", "postprocess", "json")) / st["inference"]["p50"]
        print(f"{size:>5} {t['p50']:>10.1f} {o['p50']:>9.1f} {t['p50'] / o['p50']:>6.2f} "
              f"{t['min']:>10.1f} {o['min']:>9.1f} {t['min'] / o['min']:>6.2f} {around:>7.1%}")
    ready, rss, peak = serve_figures(args.bin, 10)
    print(f"serve: ready in {ready * 1000:.0f} ms (process start to 'ready' log line); "
          f"RSS after 10 requests {rss / 1024:.1f} MiB, peak seen {peak / 1024:.1f} MiB (1 worker)")


if __name__ == "__main__":
    main()
