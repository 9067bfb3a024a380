#!/usr/bin/env python3
"""onnxruntime latency baseline for yolod.

yolod's tract inference time is only meaningful next to a known-good CPU runtime
on the same machine. This times onnxruntime (default ORT_ENABLE_ALL graph
optimisations, sequential execution, inter-op 1, intra-op --threads) on a
letterboxed real image: the full exported graph at 640, otherwise the same cut
graph as tests/reference/golden.py (model up to the raw head maps, no decode),
and prints one JSON line. Percentiles are nearest-rank over the timed runs.

    python3 bench/ort_bench.py --size 640 --threads 1
"""
import argparse
import json
import math
import os
import sys
import time

import cv2
import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from golden import EXPORT_SIZE, cut_model, letterbox  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "yolov8n.onnx"))
    ap.add_argument("--image", default=os.path.join(ROOT, "tests", "fixtures", "images", "bus.jpg"))
    ap.add_argument("--size", type=int, default=640, help="square input size, a multiple of 32")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    if args.size % 32 or args.iterations < 1:
        ap.error("--size must be a multiple of 32 and --iterations >= 1")

    model = onnx.load(args.model)
    if args.size != EXPORT_SIZE:
        model = cut_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    bgr = cv2.imread(args.image)
    if bgr is None:
        sys.exit(f"cannot read {args.image}")
    feed = {"images": letterbox(bgr, args.size)}

    for _ in range(args.warmup):
        sess.run(None, feed)
    ms = []
    for _ in range(args.iterations):
        t = time.perf_counter()
        sess.run(None, feed)
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    rank = lambda p: ms[max(0, math.ceil(p * len(ms)) - 1)]
    print(json.dumps({
        "runtime": "onnxruntime", "version": ort.__version__, "size": args.size, "threads": args.threads,
        "iterations": args.iterations,
        "inference_ms": {"min": round(ms[0], 3), "p50": round(rank(0.5), 3), "p90": round(rank(0.9), 3),
                         "mean": round(float(np.mean(ms)), 3)},
    }))


if __name__ == "__main__":
    main()
