#!/usr/bin/env python3
"""Run an ncnn model N times on a fixed 1x3xSxS input, one extractor per
inference: what bench/aarch64_cycles.py --command counts for ncnn. Runs
inside an aarch64 CPython under qemu-user (see setup.sh), with only the
ncnn wheel. ncnn's default options otherwise (fp16 storage and arithmetic
where the core has them, packing layout, winograd and sgemm convolution,
light mode).

    python3.11 run.py PARAM BIN SIZE N MAPS [--threads T] [--no-fp16]

MAPS: where /proc/self/maps (qemu-user shows the guest's) is copied at exit.
--threads: ncnn's num_threads (OpenMP). Run with OMP_WAIT_POLICY=passive in
the guest's environment, or libgomp's idle threads spin on plain loads
that the estimate cannot tell from work.
--no-fp16: fp32 storage and arithmetic (the like-for-like fp32 row).
"""
import argparse
import shutil
import sys

import ncnn


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("param")
    ap.add_argument("model")
    ap.add_argument("size", type=int)
    ap.add_argument("runs", type=int)
    ap.add_argument("maps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-fp16", action="store_true")
    args = ap.parse_args()
    net = ncnn.Net()
    net.opt.num_threads = args.threads
    net.opt.use_vulkan_compute = False
    if args.no_fp16:
        net.opt.use_fp16_storage = False
        net.opt.use_fp16_packed = False
        net.opt.use_fp16_arithmetic = False
    if net.load_param(args.param) or net.load_model(args.model):
        sys.exit(f"run.py: cannot load {args.param} / {args.model}")
    image = ncnn.Mat(args.size, args.size, 3)
    image.fill(0.5)
    total = 0.0
    for _ in range(args.runs):
        ex = net.create_extractor()
        ex.input("in0", image)
        for name in ("out0", "out1", "out2"):
            ret, out = ex.extract(name)
            if ret:
                sys.exit(f"run.py: extract {name} failed ({ret})")
            total += out.w * out.h * out.c
    shutil.copyfile("/proc/self/maps", args.maps)
    fp = "fp32" if args.no_fp16 else "fp16 where the core has it"
    print(f"run.py: ncnn {ncnn.__version__}, {args.threads} thread(s), {fp}, "
          f"{args.runs} run(s) at {args.size}, {total:.0f} output values")


if __name__ == "__main__":
    main()
