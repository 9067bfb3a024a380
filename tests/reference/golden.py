#!/usr/bin/env python3
"""Golden detections for yolod's integration tests.

yolod runs YOLOv8 with tract and must agree with what Ultralytics itself would
report. This script is the independent reference: onnxruntime on the fp32 ONNX
export, with letterboxing, NMS and box rescaling written to follow Ultralytics
(LetterBox(auto=False, center=True), non_max_suppression, scale_boxes). It prints
one JSON document whose per-image objects have the HUB inference API shape.

The exported graph has its anchors baked in for 640x640, so any other size (or
--cut) runs a cut graph that stops at the three raw head maps, decoded here in
numpy (DFL softmax expectation, anchor centres, sigmoid class scores).
--verify-cut checks that decode against the full graph at 640.

    python3 tests/reference/golden.py --model models/yolov8n.onnx --size 640 \\
        tests/fixtures/images/*.jpg > tests/fixtures/golden/yolov8n-640.json
"""
import argparse
import ast
import hashlib
import json
import os
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort

EXPORT_SIZE = 640
HEAD_MAPS = ["/model.22/Concat_output_0", "/model.22/Concat_1_output_0", "/model.22/Concat_2_output_0"]
REG_MAX = 16
MAX_WH = 7680  # Ultralytics' per-class box offset for batched NMS
MAX_NMS = 30000


def letterbox(bgr, size):
    """Ultralytics LetterBox(auto=False, center=True, scaleup=True) to size x size; returns NCHW RGB /255."""
    h, w = bgr.shape[:2]
    r = min(size / h, size / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    if (w, h) != (new_w, new_h):
        bgr = cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(bgr, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    rgb = img[:, :, ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(rgb, dtype=np.float32)[None] / 255.0


def cut_model(model, outputs=HEAD_MAPS):
    """Copy of `model` ending at `outputs` (default: the three head maps), with a dynamic HxW input."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    needed, keep = set(outputs), []
    for node in reversed(g.node):
        if needed.intersection(node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    del g.node[:]
    g.node.extend(reversed(keep))
    inits = [t for t in g.initializer if t.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.value_info[:]
    del g.output[:]
    g.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in outputs)
    dims = g.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    return m


def session(model, options=None):
    return ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])


def decode(maps, size, nc):
    """Decode the three head maps to a 1 x (4+nc) x N array in the layout of the full graph's output0."""
    cols = []
    for m in maps:
        _, c, h, w = m.shape
        stride = size / h
        x = m.reshape(c, h * w).astype(np.float32)
        logits = x[: 4 * REG_MAX].reshape(4, REG_MAX, h * w)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        ltrb = (p * np.arange(REG_MAX, dtype=np.float32)[None, :, None]).sum(axis=1)  # 4 x HW
        gy, gx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
        ax, ay = gx.ravel() + 0.5, gy.ravel() + 0.5
        x1, y1, x2, y2 = ax - ltrb[0], ay - ltrb[1], ax + ltrb[2], ay + ltrb[3]
        xywh = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]) * stride
        scores = 1.0 / (1.0 + np.exp(-x[4 * REG_MAX: 4 * REG_MAX + nc]))
        cols.append(np.concatenate([xywh, scores], axis=0))
    return np.concatenate(cols, axis=1)[None]


def iou_one_to_many(b, bs):
    ix1, iy1 = np.maximum(b[0], bs[:, 0]), np.maximum(b[1], bs[:, 1])
    ix2, iy2 = np.minimum(b[2], bs[:, 2]), np.minimum(b[3], bs[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = lambda a: (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    return inter / (area(b) + area(bs) - inter)


def nms(pred, conf, iou, max_det=300):
    """Ultralytics non_max_suppression for one image: rows of (x1, y1, x2, y2, conf, cls)."""
    x = pred[0].T  # N x (4+nc)
    scores = x[:, 4:]
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(x)), cls]
    keep = best > conf
    xywh, best, cls = x[keep, :4], best[keep], cls[keep]
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    order = np.argsort(-best, kind="stable")[:MAX_NMS]
    boxes, best, cls = boxes[order], best[order], cls[order]
    shifted = boxes + (cls * MAX_WH)[:, None]
    alive, kept = np.ones(len(boxes), bool), []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) == max_det:
            break
        alive[i + 1:] &= iou_one_to_many(shifted[i], shifted[i + 1:]) <= iou
    return boxes[kept], best[kept], cls[kept]


def scale_boxes(boxes, size, h, w):
    """Ultralytics scale_boxes: undo letterbox padding and gain, clip to the original image."""
    gain = min(size / h, size / w)
    padx, pady = round((size - w * gain) / 2 - 0.1), round((size - h * gain) / 2 - 0.1)
    b = (boxes - np.array([padx, pady, padx, pady], np.float32)) / gain
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    return b


class Detector:
    def __init__(self, path, size, cut):
        self.model = onnx.load(path)
        meta = {p.key: p.value for p in self.model.metadata_props}
        self.names = ast.literal_eval(meta["names"])
        self.size = size
        self.cut = cut or size != EXPORT_SIZE
        self.sess = session(cut_model(self.model) if self.cut else self.model)

    def raw(self, blob):
        outs = self.sess.run(None, {"images": blob})
        return decode(outs, self.size, len(self.names)) if self.cut else outs[0]

    def detect(self, bgr, conf, iou):
        h, w = bgr.shape[:2]
        boxes, scores, cls = nms(self.raw(letterbox(bgr, self.size)), conf, iou)
        boxes = scale_boxes(boxes, self.size, h, w)
        return [
            {"name": self.names[int(c)], "class": int(c), "confidence": round(float(s), 5),
             "box": dict(zip(("x1", "y1", "x2", "y2"), (round(float(v), 3) for v in b)))}
            for b, s, c in zip(boxes, scores, cls)
        ]


def verify_cut(path, images):
    """Max |cut-graph decode - full graph output0| at 640 over the given images."""
    full, cut = Detector(path, EXPORT_SIZE, False), Detector(path, EXPORT_SIZE, True)
    worst = 0.0
    for img in images:
        blob = letterbox(cv2.imread(img), EXPORT_SIZE)
        a, b = full.raw(blob), cut.raw(blob)
        worst = max(worst, float(np.abs(a - b).max()))
        print(f"{os.path.basename(img)}: max abs diff boxes {np.abs(a - b)[:, :4].max():.3g} "
              f"scores {np.abs(a - b)[:, 4:].max():.3g}", file=sys.stderr)
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", metavar="IMAGE")
    ap.add_argument("--model", default="models/yolov8n.onnx")
    ap.add_argument("--size", type=int, default=640, help="square input size, a multiple of 32")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--cut", action="store_true", help="use the cut graph + numpy decode even at 640")
    ap.add_argument("--verify-cut", action="store_true",
                    help="only compare cut-graph decode with the full graph at 640 (fails above 1e-3)")
    args = ap.parse_args()
    if args.size % 32:
        ap.error("--size must be a multiple of 32")
    if args.verify_cut:
        worst = verify_cut(args.model, args.images)
        print(f"max abs diff cut vs full: {worst:.3g}")
        sys.exit(0 if worst <= 1e-3 else 1)

    det = Detector(args.model, args.size, args.cut)
    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    results = []
    for img in args.images:
        bgr = cv2.imread(img)
        if bgr is None:
            sys.exit(f"cannot read {img}")
        results.append({"image": os.path.basename(img), "size": args.size,
                        "data": det.detect(bgr, args.conf, args.iou)})
    doc = {"model": os.path.basename(args.model), "model_sha256": sha, "size": args.size,
           "conf": args.conf, "iou": args.iou, "images": results}
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
