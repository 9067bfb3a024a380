#!/usr/bin/env python3
"""Make one small ONNX export per Ultralytics family, task and export variant,
with goldens, and check what today's yolod does with each.

People bring their own exports: YOLOv5u to YOLO26, detect, segment and pose,
with or without NMS in the graph, static or dynamic. No pretrained weights are
downloaded: each model is built from Ultralytics' own architecture YAML (the
one its `yolo<family><scale>.yaml` resolves to) at a tiny width/depth scale,
with random weights from a fixed seed, and exported by Ultralytics' own
exporter (`model.export(format="onnx", ...)`), so graph and metadata are what a
user's export would be. Not run in CI; the environment it needs:

    python3 -m venv /tmp/famvenv
    /tmp/famvenv/bin/pip install torch==2.15.0 torchvision==0.29.2 ultralytics==8.4.190 \\
        onnx==1.23.2 onnxruntime==1.24.3 onnxslim==0.1.98
    /tmp/famvenv/bin/python tests/reference/families.py build     # fixtures + goldens
    /tmp/famvenv/bin/python tests/reference/families.py check target/debug/yolod   # the table

(PyPI's torch for Linux is the CUDA build; only its CPU path is used here.)

Random weights give near-tied class scores, and then NMS order flips between
runtimes. So the last convolution of every class branch is rescaled and given
per-class biases, measured on the two test images (bus.jpg, zidane.jpg
letterboxed to 640x640 PNGs in images/): its logits get a standard deviation of 1 across anchors, and class k's
bias puts its `TOP[k]` best anchors above the 0.25 threshold. Scores then
spread over (0.25, 1) and differ between classes.

Goldens (`golden/<fixture>.json`): onnxruntime on the whole exported graph,
letterboxed like Ultralytics (tests/reference/golden.py), then Ultralytics'
post-processing written here: for raw outputs (1 x (4+nc+extra) x N) the
confidence filter and class-aware NMS (conf 0.25, IoU 0.45, yolod's
defaults); for NMS-free (`nms=False` on YOLOv10/YOLO26) and embedded-NMS
(`nms=True`) outputs (1 x 300 x (6+extra): x1, y1, x2, y2, score, class) only
the confidence filter. Pose objects carry their keypoints.

`check BIN` runs `BIN predict --model F` on both images for every fixture and
writes the compatibility table into tests/fixtures/models/families/README.md
(between the TABLE markers): whether the model loads, at which sizes, and
whether its objects match the golden (same count and classes, IoU >= 0.95,
|confidence difference| <= 0.01).
"""
import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import cv2
import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import iou_one_to_many, letterbox, scale_boxes  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "models", "families")
OUT_IMAGES = os.path.join(OUT, "images")
# Every fixture is about 0.5-2.7 MB (the DFL box branch alone is three 64-channel 3x3 convs), all of them
# 37 MB. The repository keeps every export but the dynamic siblings of fixed ones (29 MB with the images),
# whose job is the goldens at 320 that their fixed twins are checked against; those go to target/ and only
# their goldens are kept. Rebuilding is deterministic (same seed; the same bytes, or in one case in 16 a
# confidence 1e-5 off).
SIBLINGS = {"yolov5u-det-dyn", "yolov8-det-dyn", "yolov9t-det-dyn", "yolov8-seg-dyn", "yolov8-pose-dyn"}
OUT_EXTRA = os.path.join(ROOT, "target", "families")
SOURCES = [os.path.join(ROOT, "tests", "fixtures", "images", n) for n in ("bus.jpg", "zidane.jpg")]
# The test images letterboxed to 640x640 once and stored losslessly, so that yolod and onnxruntime get the
# same input tensor: random networks amplify the small differences between two resizers or JPEG decoders
# (yolov8-det: confidence 0.897 against 0.914 on bus.jpg) far more than trained ones do.
IMAGES = [os.path.join(OUT_IMAGES, n) for n in ("bus-640.png", "zidane-640.png")]
# The same at 320, for the exports that run at any size (dynamic ones): their second golden.
SMALL = 320
IMAGES_SMALL = [os.path.join(OUT_IMAGES, n) for n in ("bus-320.png", "zidane-320.png")]
SEED = 20261203
SIZE = 640
CONF, IOU, MAX_DET = 0.25, 0.45, 300
MAX_WH = 7680
DATE = "2026-12-03T00:00:00+00:00"
# depth, width, max channels: far below 'n' (0.33-0.5, 0.25, 1024), so each file stays small.
TINY = [0.33, 0.0625, 256]
COCO10 = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light"]
CUSTOM = ["forklift", "pallet", "hard hat"]
TOP = [12, 4, 8, 2, 10, 6, 3, 9, 5, 7]  # anchors above CONF per class over both images

# fixture stem, Ultralytics YAML (under ultralytics/cfg/models), the name a user's file would have,
# names, export variants: "" default (nms=None), "dyn" dynamic=True, "nms" nms=True, "e2e" nms=False.
MODELS = [
    ("yolov5u-det", "v5/yolov5.yaml", "yolov5n", COCO10, ["", "dyn"]),
    ("yolov8-det", "v8/yolov8.yaml", "yolov8n", COCO10, ["", "dyn"]),
    ("yolov9t-det", "v9/yolov9t.yaml", "yolov9t", COCO10, ["", "dyn"]),
    ("yolov10n-det", "v10/yolov10n.yaml", "yolov10n", COCO10, ["", "e2e"]),
    ("yolo11-det", "11/yolo11.yaml", "yolo11n", COCO10, [""]),
    ("yolo12-det", "12/yolo12.yaml", "yolo12n", COCO10, [""]),
    ("yolo26-det", "26/yolo26.yaml", "yolo26n", COCO10, ["", "dyn", "nms", "e2e"]),
    ("yolov8-seg", "v8/yolov8-seg.yaml", "yolov8n-seg", COCO10, ["", "dyn", "nms"]),
    ("yolo11-seg", "11/yolo11-seg.yaml", "yolo11n-seg", COCO10, ["", "nms"]),
    ("yolo26-seg", "26/yolo26-seg.yaml", "yolo26n-seg", COCO10, ["", "e2e"]),
    ("yolov8-pose", "v8/yolov8-pose.yaml", "yolov8n-pose", ["person"], ["", "dyn", "nms"]),
    ("yolo11-pose", "11/yolo11-pose.yaml", "yolo11n-pose", ["person"], ["", "nms"]),
    ("yolo26-pose", "26/yolo26-pose.yaml", "yolo26n-pose", ["person"], ["", "e2e"]),
    ("custom3-det", "11/yolo11.yaml", "yolo11n", CUSTOM, [""]),
    # Classification: no boxes, so no golden objects; it checks the refusal at load.
    ("yolo11-cls", "11/yolo11-cls.yaml", "yolo11n-cls", COCO10, [""]),
]


def model_path(file):
    return os.path.join(OUT_EXTRA if file[:-len(".onnx")] in SIBLINGS else OUT, file)


def fixture_name(stem, variant):
    return f"{stem}-{variant}" if variant else stem


# ---------------------------------------------------------------- building


def build(cfg, user_name, names, workdir):
    """An Ultralytics YOLO model from its YAML at the TINY scale, nc = len(names), seeded random weights."""
    import torch
    import yaml
    from ultralytics import YOLO
    from ultralytics.utils import ROOT as UROOT

    with open(os.path.join(UROOT, "cfg", "models", cfg)) as f:
        d = yaml.safe_load(f)
    d["nc"] = len(names)
    if "scales" in d:
        # YOLO12's attention blocks need 32-channel multiples: its smallest tiny scale keeps them.
        d["scales"] = {"n": [0.33, 0.25, 256] if cfg.startswith("12/") else TINY}
    else:  # yolov9t.yaml is written at its own size, its blocks' inner widths unscaled: quarter them here
        for layer in d["backbone"] + d["head"]:
            if layer[2] in ("Conv", "ELAN1", "AConv", "RepNCSPELAN4", "SPPELAN", "ADown"):
                layer[3] = [max(8, a // 4) if isinstance(a, int) and a >= 16 else a for a in layer[3]]
            if layer[2] == "RepNCSPELAN4":
                layer[3][3] = 1
    path = os.path.join(workdir, user_name + ".yaml")  # the exporter names the model after this file
    with open(path, "w") as f:
        yaml.safe_dump(d, f, sort_keys=False)
    torch.manual_seed(SEED)
    model = YOLO(path)
    model.model.names = dict(enumerate(names))
    if cfg.endswith("-cls.yaml"):
        return model
    blobs = torch.from_numpy(np.concatenate([letterbox(cv2.imread(p), SIZE) for p in IMAGES]))
    normalise(model.model, blobs)
    spread_scores(model.model, len(names), blobs)
    return model


def normalise(net, blobs):
    """Batch-norm statistics measured on the test images, so activations keep unit scale through the random
    network (with the initial mean 0 / variance 1 they shrink to 1e-9 by the head); DFL-free heads
    (reg_max 1, YOLO26) get box distances of a few strides rather than around zero."""
    import torch

    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: after one batch, exactly its statistics
    net.train()
    with torch.no_grad():
        net(blobs)
    net.eval()
    head = net.model[-1]
    if getattr(head, "reg_max", 16) == 1:
        boxes = [head.one2many["box_head"]]
        if getattr(head, "one2one_cv2", None) is not None:
            boxes.append(head.one2one["box_head"])
        with torch.no_grad():
            for branch in boxes:
                for seq in branch:
                    seq[-1].weight.mul_(0.3)
                    seq[-1].bias.fill_(2.5)


def spread_scores(net, nc, blobs):
    """Rescale each head's last class conv and set per-class biases (see the docstring)."""
    import torch

    head = net.model[-1]
    heads = [head.one2many["cls_head"]]
    if getattr(head, "one2one_cv2", None) is not None:
        heads.append(head.one2one["cls_head"])
    target = np.log(CONF / (1 - CONF))
    for branch in heads:
        convs = [seq[-1] for seq in branch]
        seen = []
        hooks = [c.register_forward_hook(lambda m, i, o: seen.append((o - m.bias.view(1, -1, 1, 1)).detach()))
                 for c in convs]
        with torch.no_grad():
            net(blobs)
        for h in hooks:
            h.remove()
        z = torch.cat([s[:, :nc].permute(1, 0, 2, 3).reshape(nc, -1) for s in seen], 1).numpy()  # nc x anchors
        gain = 1.0 / max(float(z.std()), 1e-6)
        with torch.no_grad():
            for c in convs:
                c.weight.mul_(gain)
                for k in range(nc):
                    kth = np.sort(gain * z[k])[-TOP[k % len(TOP)]]
                    c.bias[k] = float(target - kth + 0.01)


def export(model, variant, workdir):
    kw = dict(format="onnx", imgsz=224 if model.task == "classify" else SIZE, dynamic=variant == "dyn", conf=CONF,
              iou=IOU, max_det=MAX_DET)
    if variant == "nms":
        kw["nms"] = True
    elif variant == "e2e":
        kw["nms"] = False
    f = model.export(**kw)
    m = onnx.load(f)
    for p in m.metadata_props:
        if p.key == "date":  # the only value that changes from run to run
            p.value = DATE
    return m


# ---------------------------------------------------------------- goldens


def session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def meta_of(model):
    return {p.key: p.value for p in model.metadata_props}


def nms_raw(pred, nc, conf, iou):
    """Ultralytics non_max_suppression on 1 x (4+nc+extra) x N: (boxes xyxy, scores, classes, extra rows)."""
    x = pred[0].T
    scores = x[:, 4:4 + nc]
    cls = scores.argmax(1)
    best = scores[np.arange(len(x)), cls]
    keep = best > conf
    x, best, cls = x[keep], best[keep], cls[keep]
    boxes = np.concatenate([x[:, :2] - x[:, 2:4] / 2, x[:, :2] + x[:, 2:4] / 2], 1)
    order = np.argsort(-best, kind="stable")
    boxes, best, cls, x = boxes[order], best[order], cls[order], x[order]
    shifted = boxes + (cls * MAX_WH)[:, None]
    alive, kept = np.ones(len(boxes), bool), []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) == MAX_DET:
            break
        alive[i + 1:] &= iou_one_to_many(shifted[i], shifted[i + 1:]) <= iou
    gaps = np.diff(np.sort(best)) if len(best) > 1 else np.array([1.0])
    return boxes[kept], best[kept], cls[kept], x[kept, 4 + nc:], float(gaps.min())


def chosen(pred, conf):
    """Rows of an NMS-free / embedded-NMS output 1 x K x (6+extra) above conf, best first."""
    x = pred[0]
    x = x[x[:, 4] > conf]
    x = x[np.argsort(-x[:, 4], kind="stable")]
    return x[:, :4], x[:, 4], x[:, 5].astype(int), x[:, 6:]


def golden(path, layout, names, kpt_shape, size=SIZE, pictures=IMAGES):
    sess = session(path)
    inp = sess.get_inputs()[0].name
    images, min_gap = [], 1.0
    for img in pictures:
        bgr = cv2.imread(img)
        h, w = bgr.shape[:2]
        outs = sess.run(None, {inp: letterbox(bgr, size)})
        if layout == "raw":
            boxes, scores, cls, extra, gap = nms_raw(outs[0], len(names), CONF, IOU)
            min_gap = min(min_gap, gap)
        else:
            boxes, scores, cls, extra = chosen(outs[0], CONF)
        boxes = scale_boxes(boxes.astype(np.float32), size, h, w)
        gain = min(size / h, size / w)
        padx, pady = round((size - w * gain) / 2 - 0.1), round((size - h * gain) / 2 - 0.1)
        objs = []
        for b, s, c, e in zip(boxes, scores, cls, extra):
            o = {"name": names[int(c)], "class": int(c), "confidence": round(float(s), 5),
                 "box": dict(zip(("x1", "y1", "x2", "y2"), (round(float(v), 3) for v in b)))}
            if kpt_shape:
                k = e[:kpt_shape[0] * kpt_shape[1]].reshape(kpt_shape)
                o["keypoints"] = {"x": [round(float((v - padx) / gain), 3) for v in k[:, 0]],
                                  "y": [round(float((v - pady) / gain), 3) for v in k[:, 1]],
                                  "visible": [round(float(v), 5) for v in k[:, 2]]}
            objs.append(o)
        images.append({"image": os.path.basename(img), "data": objs})
    return images, min_gap


def layout_of(variant, meta):
    if meta.get("task") == "classify":
        return "classify"
    if variant == "nms":
        return "nms"
    return "e2e" if meta.get("end2end") == "True" else "raw"


def make_images():
    os.makedirs(OUT_IMAGES, exist_ok=True)
    for size, pictures in ((SIZE, IMAGES), (SMALL, IMAGES_SMALL)):
        for src, dst in zip(SOURCES, pictures):
            rgb = (letterbox(cv2.imread(src), size)[0] * 255.0).round().astype(np.uint8)
            cv2.imwrite(dst, np.ascontiguousarray(rgb.transpose(1, 2, 0)[:, :, ::-1]))


def write_golden(name, cfg, variant, m, path):
    """Goldens of one saved export: at 640, and at 320 too when its input is dynamic."""
    meta = meta_of(m)
    names = [v for _, v in sorted(ast.literal_eval(meta["names"]).items())]
    kpt = json.loads(meta["kpt_shape"]) if "kpt_shape" in meta else None
    layout = layout_of(variant, meta)
    images, gap = ([], 1.0) if layout == "classify" else golden(path, layout, names, kpt)
    with open(path, "rb") as f:
        data = f.read()
    doc = {"model": name + ".onnx", "model_sha256": hashlib.sha256(data).hexdigest(),
           "built_from": cfg, "variant": variant or "default", "layout": layout,
           "outputs": [[o.name, [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]]
                       for o in m.graph.output],
           "size": SIZE, "conf": CONF, "iou": IOU, "min_score_gap_before_nms": gap, "images": images}
    if variant == "dyn":
        doc["small"] = {"size": SMALL, "images": golden(path, layout, names, kpt, SMALL, IMAGES_SMALL)[0]}
    with open(os.path.join(OUT, "golden", name + ".json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    n = sum(len(i["data"]) for i in images)
    print(f"{name}: {len(data)} bytes, {layout}, {n} objects, min gap {gap:.2g}", file=sys.stderr)


def cmd_goldens(args):
    """Goldens again from the exports already built (onnxruntime only; no torch)."""
    make_images()
    for stem, cfg, _, _, variants in MODELS:
        for variant in variants:
            name = fixture_name(stem, variant)
            path = model_path(name + ".onnx")
            if (args.only and not any(re.search(o, name) for o in args.only)) or not os.path.exists(path):
                continue
            write_golden(name, cfg, variant, onnx.load(path), path)


def cmd_build(args):
    os.makedirs(os.path.join(OUT, "golden"), exist_ok=True)
    make_images()
    work = tempfile.mkdtemp(prefix="families-")
    os.chdir(work)  # where the exporter writes
    try:
        for stem, cfg, user_name, names, variants in MODELS:
            if args.only and not any(re.search(o, stem) for o in args.only):
                continue
            model = build(cfg, user_name, names, work)
            for variant in variants:
                name = fixture_name(stem, variant)
                m = export(model, variant, work)
                path = model_path(name + ".onnx")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                onnx.save(m, path)
                write_golden(name, cfg, variant, m, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- yolod against the goldens


def box_iou(a, b):
    ix = max(0.0, min(a["x2"], b["x2"]) - max(a["x1"], b["x1"]))
    iy = max(0.0, min(a["y2"], b["y2"]) - max(a["y1"], b["y1"]))
    inter = ix * iy
    area = lambda r: (r["x2"] - r["x1"]) * (r["y2"] - r["y1"])
    return inter / max(area(a) + area(b) - inter, 1e-9)


def compare(got, want):
    """None when `got` matches `want` (same count; each golden object has a same-class object, IoU >= 0.95,
    |conf diff| <= 0.01), else what differs."""
    if len(got) != len(want):
        return f"{len(got)} objects, golden {len(want)}"
    free = list(got)
    for w in want:
        cands = [g for g in free if g["class"] == w["class"]]
        if not cands:
            return f"no {w['name']} for golden {w['box']}"
        g = max(cands, key=lambda g: box_iou(g["box"], w["box"]))
        iou = box_iou(g["box"], w["box"])
        if iou < 0.95 or abs(g["confidence"] - w["confidence"]) > 0.01:
            return f"{w['name']} IoU {iou:.3f}, conf {g['confidence']:.3f} vs {w['confidence']:.3f}"
        free.remove(g)
    return None


def first_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    line = lines[-1] if lines else ""
    return re.sub(r"/\S*/", "", re.sub(r"^yolod: error: ", "", line))[:300]


def check_run(yolod, model, pictures, extra, golden_images):
    """What differs between `yolod predict` on `pictures` and their goldens (empty when nothing)."""
    run = subprocess.run([yolod, "predict", "--model", model] + extra + pictures, capture_output=True, text=True)
    lines = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
    problems = []
    for want, got in zip(golden_images, lines):
        if not got.get("success"):
            problems.append(f"{want['image']}: request failed: {got.get('message', '')[:140]}")
            continue
        diff = compare(got["data"], want["data"])
        if diff:
            problems.append(f"{want['image']}: {diff}")
    if len(lines) < len(golden_images):
        problems.append(first_line(run.stderr) or "no output")
    return problems


def small_golden(g):
    """The golden at 320 for this export's weights: its own (dynamic exports), or its dynamic sibling's
    (the same built model exported with dynamic=True: the same network, so the same answers at 320)."""
    if "small" in g:
        return g["small"]
    stem = re.sub(r"-(nms|e2e)$", "", g["model"][:-len(".onnx")])
    sibling = os.path.join(OUT, "golden", stem + "-dyn.json")
    if os.path.exists(sibling):
        with open(sibling) as f:
            return json.load(f).get("small")
    return None


def cmd_check(args):
    rows = []
    for gpath in sorted(os.listdir(os.path.join(OUT, "golden"))):
        with open(os.path.join(OUT, "golden", gpath)) as f:
            g = json.load(f)
        model = model_path(g["model"])
        if not os.path.exists(model):
            rows.append((g, "not built", "run `families.py build` first"))
            continue
        info = subprocess.run([args.yolod, "models", "--json", "--model", model], capture_output=True, text=True)
        if info.returncode != 0:
            rows.append((g, "refused at load", first_line(info.stderr)))
            continue
        entry = [m for m in json.loads(info.stdout)["data"] if m.get("id") != "yolov8n"]
        sizes = "any size" if entry and entry[0].get("any_size") else "export size only"
        runs = [(IMAGES, [], g["images"])]
        small = small_golden(g)
        if small and sizes == "any size":
            runs.append((IMAGES_SMALL, ["--size", str(small["size"])], small["images"]))
            sizes = f"any size: {SIZE} and {small['size']} checked"
        problems = []
        for pictures, extra, golden_images in runs:
            problems += check_run(args.yolod, model, pictures, extra, golden_images)
        verdict = "matches golden" if not problems else "wrong answers"
        if problems and all("request failed" in p for p in problems):
            verdict = "loads, fails on request"
        rows.append((g, f"{verdict}" + (f" ({sizes})" if sizes else ""), "; ".join(problems)))
    table = ["| fixture | built from | export | output0 | yolod today | detail |", "|---|---|---|---|---|---|"]
    for g, verdict, detail in rows:
        out0 = "x".join(str(d) for d in g["outputs"][0][1])
        kept = "" if os.path.dirname(model_path(g["model"])) == OUT else " (not kept)"
        table.append(f"| {g['model']}{kept} | {g['built_from']} | {g['variant']} ({g['layout']}) | {out0} | {verdict} | "
                     f"{detail.replace('|', '/')} |")
    text = "\n".join(table)
    print(text)
    replace_between(os.path.join(OUT, "README.md"), "<!-- TABLE -->", "<!-- /TABLE -->", text)
    replace_between(os.path.join(ROOT, "README.md"), "<!-- FAMILIES -->", "<!-- /FAMILIES -->", matrix(rows))


# The family a fixture's architecture YAML belongs to, by its directory.
FAMILY = {"v5": "YOLOv5u", "v8": "YOLOv8", "v9": "YOLOv9t", "v10": "YOLOv10n", "11": "YOLO11", "12": "YOLO12",
          "26": "YOLO26"}
# The export columns of the matrix: the variant each comes from.
EXPORTS = [("default", "default export"), ("dyn", "`dynamic=True`"), ("e2e", "`nms=False` (NMS-free)"),
           ("nms", "`nms=True`")]


def matrix(rows):
    """Family x task x export, from the check's verdicts: what the main README shows."""
    cells = {}
    for g, verdict, _ in rows:
        cfg = g["built_from"]
        yaml_name = os.path.basename(cfg)[:-len(".yaml")]
        task = next((t for t in ("seg", "pose", "cls") if yaml_name.endswith("-" + t)), "det")
        family = FAMILY[cfg.split("/")[0]] + (" (3 own classes)" if g["model"].startswith("custom3") else "")
        task = {"det": "detect", "seg": "segment", "pose": "pose", "cls": "classify"}[task]
        short = ("any size" if "any size" in verdict else "export size only" if "export size only" in verdict
                 else "refused" if verdict.startswith("refused") else verdict)
        cells[(family, task, g["variant"])] = short
    keys = sorted({(f, t) for f, t, _ in cells}, key=lambda k: (list(FAMILY.values()).index(k[0].split(" ")[0]),
                                                                 k[0], ["detect", "segment", "pose", "classify"].index(k[1])))
    lines = ["| family | task | " + " | ".join(h for _, h in EXPORTS) + " |", "|---|---|" + "---|" * len(EXPORTS)]
    for family, task in keys:
        lines.append(f"| {family} | {task} | " + " | ".join(cells.get((family, task, v), "") for v, _ in EXPORTS) + " |")
    return "\n".join(lines)


def replace_between(path, start, end, text):
    if not os.path.exists(path):
        return
    with open(path) as f:
        doc = f.read()
    if start in doc and end in doc:
        doc = doc[:doc.index(start) + len(start)] + "\n" + text + "\n" + doc[doc.index(end):]
        with open(path, "w") as f:
            f.write(doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="make the fixtures and goldens")
    b.add_argument("--only", nargs="*", help="regexes of fixture stems to build")
    g = sub.add_parser("goldens", help="the goldens again from the exports already built (no torch needed)")
    g.add_argument("--only", nargs="*", help="regexes of fixture names")
    c = sub.add_parser("check", help="run yolod on every fixture, write the README table")
    c.add_argument("yolod")
    args = ap.parse_args()
    {"build": cmd_build, "goldens": cmd_goldens, "check": cmd_check}[args.cmd](args)


if __name__ == "__main__":
    main()
