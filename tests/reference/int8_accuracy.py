#!/usr/bin/env python3
"""How much of the fp32 model's output an int8 variant keeps, with onnxruntime.

On 25 natural images that models/quantize.py does not calibrate on, each int8 model is
compared with the fp32 one, both run the way yolod runs them (graph cut at the three raw
head maps, decode + NMS as golden.py / Ultralytics):

  kept      share of the fp32 detections with confidence >= 0.4 that the int8 model also
            reports (same class, IoU >= 0.8, in image pixels; int8 detections are taken at
            Ultralytics' default confidence 0.25, each matched at most once)
  |dconf|   mean |confidence difference| over those matches (max in brackets)
  extra     int8 detections >= 0.4 that match no fp32 detection >= 0.25

Goal (issue 3): kept >= 95 %, mean |dconf| <= 0.05. Exit status 1 if a variant misses it.

Evaluation images (sha256-checked, fetched like the calibration set into the same cache):
  * PyPI scikit-image==0.26.0 wheel: skimage/data/{astronaut,camera,chelsea,coffee,
    motorcycle_left,motorcycle_right}.png
  * PyPI matplotlib==3.11.2 wheel: mpl-data/sample_data/grace_hopper.jpg
  * Debian opencv-doc=4.6.0+dfsg-12: examples/data/{messi5,building,board,home,leuvenA,
    leuvenB,squirrel_cls,fruits,stuff}.jpg, {smarties,basketball1,basketball2,chicky_512}.png,
    examples/alphamat/input_images/plant.jpg, examples/text/scenetext0{1,3,5,6}.jpg

    python3 tests/reference/int8_accuracy.py                       # every models/int8/*.onnx
    python3 tests/reference/int8_accuracy.py models/int8/yolov8n-qdq.onnx --sizes 640

With --yolod, the int8 detections come from a yolod binary instead of onnxruntime
(`yolod predict --model M --size S --confidence 0.25 --iou 0.45`), which measures what
yolod's own int8 arithmetic (its SiLU kernel on aarch64, say) keeps. The command may
start with an emulator:

    TRACT_CPU_AARCH64_OVERRIDE_CPU_PART=0xd0b python3 tests/reference/int8_accuracy.py \
        --yolod "qemu-aarch64 -cpu cortex-a76 target/aarch64-unknown-linux-musl/dist/yolod"
"""
import argparse
import glob
import importlib.util
import json
import os
import shlex
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from golden import Detector  # noqa: E402

_spec = importlib.util.spec_from_file_location("quantize", os.path.join(ROOT, "models", "quantize.py"))
quantize = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quantize)

EVALUATION = {
    "skimage:astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "skimage:camera.png": "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
    "skimage:chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "skimage:coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "skimage:motorcycle_left.png": "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
    "skimage:motorcycle_right.png": "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797",
    "matplotlib:grace_hopper.jpg": "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
    "opencv:data/messi5.jpg": "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",
    "opencv:data/smarties.png": "ad3f751c053fdcf432687c1bc0e56a61a9119d2bb2ae29365f8aa6534fc77417",
    "opencv:data/building.jpg": "742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07",
    "opencv:data/board.jpg": "4c9a24ba67138ad5486d550f586cc5dd1161be112f1c1bea336d6c550cdf255f",
    "opencv:data/basketball1.png": "ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6",
    "opencv:data/basketball2.png": "b3047772e0dc6c9d83c26f64894ca1a897f799f855c5574ac24b2ef934c2978e",
    "opencv:data/home.jpg": "23b8cf46a1965d0ec33459b875aed43187802834db49e0daa9fa2cc842e9d8d2",
    "opencv:data/leuvenA.jpg": "b2977cdbd9fb3f94dadd6f76cf586d145676deb8a22b5f0f42149d21c058c09f",
    "opencv:data/leuvenB.jpg": "5bb41a60038a2baa5d8ea0eaba55e6e3050d721b254cf79d8d8998d7e49d664a",
    "opencv:data/squirrel_cls.jpg": "20bb6e8ae96918a36c9886b6d48e54eedeb3948591e1485c206bc1dc60c8dc8b",
    "opencv:data/fruits.jpg": "9c031d80a1c52da5eca790db896baffec6a7e52bf786cdb7bbfca5c7f880e6a1",
    "opencv:data/chicky_512.png": "4d2cf040de084fd3f34d5e3f96f1251faaa4787c1ac3b548fec5809a0d01854e",
    "opencv:data/stuff.jpg": "21cd00afbdd0727f445dd91c0a09633e6345ed5b05a3d2355453a1f3c314c6c5",
    "opencv:alphamat/input_images/plant.jpg": "9928b44eee0d1d7ab2ffd9d6d80bbbff962d6e85c7786de2cd3c97fe72229186",
    "opencv:text/scenetext01.jpg": "7f3041a7019ab4d33d2452bc757d8c4f38616bfde71431e12f7ec370d7b2018e",
    "opencv:text/scenetext03.jpg": "cadf4a3d29a7ba6fe976b53fa65f490cc2868375e8feb3d93f26029f05c662ca",
    "opencv:text/scenetext05.jpg": "63985ac1a9989a8320605d5be0ec285af0c6304a78cc9cc5de6c2c7c435f7c0b",
    "opencv:text/scenetext06.jpg": "e4d64f10bbfb27b2c5980cb048fd0abe20dd74868ba5460298de473ced53b518",
}

REF_CONF = 0.4   # fp32 detections that count
INT8_CONF = 0.25  # int8 detections that may match them
MATCH_IOU = 0.8
GOAL_KEPT, GOAL_DCONF = 0.95, 0.05


def box_iou(a, b):
    ix = max(0.0, min(a["x2"], b["x2"]) - max(a["x1"], b["x1"]))
    iy = max(0.0, min(a["y2"], b["y2"]) - max(a["y1"], b["y1"]))
    inter = ix * iy
    area = lambda d: (d["x2"] - d["x1"]) * (d["y2"] - d["y1"])
    return inter / (area(a) + area(b) - inter + 1e-9)


def compare(ref, test):
    """(number of fp32 dets >= REF_CONF, matched |dconf| list, extra int8 dets)."""
    wanted = [d for d in ref if d["confidence"] >= REF_CONF]
    free = list(test)
    diffs = []
    for r in wanted:  # ref is sorted best first
        best, best_iou = None, MATCH_IOU
        for t in free:
            if t["class"] == r["class"]:
                iou = box_iou(r["box"], t["box"])
                if iou >= best_iou:
                    best, best_iou = t, iou
        if best is not None:
            free.remove(best)
            diffs.append(abs(best["confidence"] - r["confidence"]))
    extra = 0
    for t in test:
        if t["confidence"] >= REF_CONF and not any(
                r["class"] == t["class"] and box_iou(r["box"], t["box"]) >= MATCH_IOU for r in ref):
            extra += 1
    return len(wanted), diffs, extra


def yolod_detect(cmd, model, size, paths):
    """Detections of `cmd predict` on every image, one list per image."""
    argv = shlex.split(cmd) + ["predict", "--model", model, "--size", str(size),
                               "--confidence", str(INT8_CONF), "--iou", "0.45", *paths]
    print(f"running {' '.join(argv[:-len(paths)])} on {len(paths)} images", file=sys.stderr)
    lines = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.splitlines()
    answers = [json.loads(line) for line in lines if line.strip()]
    if len(answers) != len(paths) or not all(a["success"] for a in answers):
        raise SystemExit(f"yolod answered {len(answers)} of {len(paths)} images: {answers}")
    return [a["data"] for a in answers]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="int8 models (default: models/int8/*.onnx)")
    ap.add_argument("--fp32", default=os.path.join(ROOT, "models", "yolov8n.onnx"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[640, 320])
    ap.add_argument("--cache", default=quantize.default_cache())
    ap.add_argument("--per-image", action="store_true")
    ap.add_argument("--yolod", metavar="CMD", help="run the int8 models with this yolod command (see above)")
    args = ap.parse_args()

    overlap = set(EVALUATION) & set(quantize.CALIBRATION)
    overlap |= {n for n, h in EVALUATION.items() if h in set(quantize.CALIBRATION.values())}
    if overlap:
        raise SystemExit(f"evaluation images also used for calibration: {sorted(overlap)}")
    models = args.models or sorted(glob.glob(os.path.join(ROOT, "models", "int8", "*.onnx")))
    if not models:
        raise SystemExit("no int8 model: run models/quantize.py first")
    paths = quantize.fetch_images(EVALUATION, args.cache)
    images = [(name, quantize.load_bgr(p)) for name, p in zip(EVALUATION, paths)]

    rows, ok = [], True
    for size in args.sizes:
        ref_det = Detector(args.fp32, size, True)
        refs = [ref_det.detect(img, INT8_CONF, 0.45) for _, img in images]
        for model in models:
            if args.yolod:
                tests = yolod_detect(args.yolod, model, size, paths)
            else:
                det = Detector(model, size, True)
                tests = [det.detect(img, INT8_CONF, 0.45) for _, img in images]
            total, diffs, extra = 0, [], 0
            for (name, img), ref, test in zip(images, refs, tests):
                n, d, e = compare(ref, test)
                total, extra = total + n, extra + e
                diffs += d
                if args.per_image and (len(d) < n or e):
                    print(f"  {os.path.basename(model)} {size} {name}: kept {len(d)}/{n}, extra {e}", file=sys.stderr)
            kept = len(diffs) / total if total else 1.0
            mean = float(np.mean(diffs)) if diffs else 0.0
            worst = float(np.max(diffs)) if diffs else 0.0
            good = kept >= GOAL_KEPT and mean <= GOAL_DCONF
            ok &= good
            rows.append((os.path.basename(model), size, total, len(diffs), kept, mean, worst, extra, good))

    print(f"{len(images)} evaluation images; fp32 dets >= {REF_CONF} matched by int8 >= {INT8_CONF}, "
          f"same class, IoU >= {MATCH_IOU}")
    print(f"| model | size | fp32 dets | kept | kept % | mean abs dconf (max) | extra | goal |")
    print(f"|---|---|---|---|---|---|---|---|")
    for m, size, total, n, kept, mean, worst, extra, good in rows:
        print(f"| {m} | {size} | {total} | {n} | {100 * kept:.1f} | {mean:.4f} ({worst:.3f}) | {extra} | "
              f"{'pass' if good else 'FAIL'} |")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
