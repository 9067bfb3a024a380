#!/usr/bin/env python3
"""Run an ncnn model N times on a fixed 1x3xSxS input, 1 thread, ncnn's
default options otherwise (fp16 storage and arithmetic, packing layout,
winograd and sgemm convolution, light mode), one extractor per inference:
what bench/aarch64_cycles.py --command counts for ncnn. Runs inside an
aarch64 CPython under qemu-user (see setup.sh), with only the ncnn wheel.

    python3.11 run.py PARAM BIN SIZE N MAPS

MAPS: where /proc/self/maps (qemu-user shows the guest's) is copied at exit.
"""
import shutil
import sys

import ncnn


def main():
    param, model, size, runs, maps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.use_vulkan_compute = False
    if net.load_param(param) or net.load_model(model):
        sys.exit(f"run.py: cannot load {param} / {model}")
    image = ncnn.Mat(size, size, 3)
    image.fill(0.5)
    total = 0.0
    for _ in range(runs):
        ex = net.create_extractor()
        ex.input("in0", image)
        for name in ("out0", "out1", "out2"):
            ret, out = ex.extract(name)
            if ret:
                sys.exit(f"run.py: extract {name} failed ({ret})")
            total += out.w * out.h * out.c
    shutil.copyfile("/proc/self/maps", maps)
    print(f"run.py: ncnn {ncnn.__version__}, {runs} run(s) at {size}, {total:.0f} output values")


if __name__ == "__main__":
    main()
