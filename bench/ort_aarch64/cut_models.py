#!/usr/bin/env python3
"""The graphs yolod runs, for onnxruntime: each model cut at the three raw
head maps with a dynamic HxW input (tests/reference/golden.py's cut_model,
the same cut yolod makes before tract sees the graph), written to OUT_DIR.
The full export has its anchors baked in for 640, so a 320 run needs the
cut anyway; cutting at 640 too keeps the decode out of both runtimes.

    python3 bench/ort_aarch64/cut_models.py /tmp/ortmodels models/yolov8n.onnx \\
        models/int8/yolov8n-convint.onnx
"""
import os
import sys

import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from golden import cut_model  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for path in sys.argv[2:]:
        out = os.path.join(out_dir, os.path.basename(path).replace(".onnx", "-cut.onnx"))
        onnx.save(cut_model(onnx.load(path)), out)
        print(out)


if __name__ == "__main__":
    main()
