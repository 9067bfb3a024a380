#!/usr/bin/env python3
"""Golden segment and pose outputs for yolod's tests (numpy + onnxruntime).

The independent reference for yolod's segment and pose decoders, run on the
models made by seg_pose_models.py (or any Ultralytics YOLOv8 seg/pose ONNX
export). Letterbox, NMS and box scaling are golden.py's (Ultralytics
LetterBox(auto=False, center=True), non_max_suppression, scale_boxes); the task,
names and keypoint shape come from the ONNX metadata.

    python3 tests/reference/seg_pose_reference.py \\
        --model tests/fixtures/models/yolov8n-seg-made.onnx \\
        --out tests/fixtures/golden/yolov8n-seg-made-640.json tests/fixtures/images/*.jpg
    python3 tests/reference/seg_pose_reference.py \\
        --model tests/fixtures/models/yolov8n-pose-made.onnx \\
        --out tests/fixtures/golden/yolov8n-pose-made-640.json tests/fixtures/images/*.jpg

Segment, per object that survives NMS (conf 0.25, IoU 0.45, per class):
  mask = sigmoid(coefficients @ protos.reshape(32, -1)) as 160x160; zeroed
  outside the box scaled to the proto grid (Ultralytics crop_mask: column r kept
  when x1/4 <= r < x2/4, same for rows, box in letterboxed input pixels);
  resized bilinearly (cv2 INTER_LINEAR, = torch bilinear align_corners=False) to
  the letterboxed input; letterbox padding cut off; resized bilinearly to the
  original image size; thresholded > 0.5. `mask_area` = pixels of that mask.
  `segments` = the largest (cv2.contourArea) external contour of the mask
  (cv2.findContours RETR_EXTERNAL, CHAIN_APPROX_SIMPLE), x and y lists in
  original pixels (boundary pixel centres). Also given, to compare like with
  like: `region_area` = pixels of the connected region that contour outlines,
  `polygon_area` = shoelace area of the polygon (smaller than the pixel count by
  about half the perimeter). An empty mask gives empty lists and zero areas.
Pose, per object: `keypoints` x, y = decoded keypoints (output0 rows 5.. as x,
  y, visibility triples, input pixels) with the letterbox undone like
  Ultralytics scale_coords (minus padding, divided by gain, clipped to the
  image); `visible` = the keypoint score in 0-1. Coordinates are NOT zeroed
  below visibility 0.5 (recent Ultralytics Keypoints() does that; apply it on
  top if wanted).

At --size other than 640 (or with --cut) the graph is cut at the raw per-level
maps, found by structure: the Split fed by a Concat of Reshapes gives the detect
maps (`/model.22/Concat_{1,2,3}_output_0` in an Ultralytics export), the other
Concat of Reshapes gives the mask-coefficient or keypoint maps
(`/model.22/cv4.{0,1,2}/cv4.{i}.2/Conv_output_0`), plus `output1`; they are
decoded here in numpy. --verify-cut checks that decode against the full graph.
Prints a summary table on stderr; --draw DIR writes annotated images.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import EXPORT_SIZE, MAX_NMS, MAX_WH, REG_MAX, cut_model, decode, iou_one_to_many, letterbox, scale_boxes  # noqa: E402

MASK_THRESHOLD = 0.5
SKELETON = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
            (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def head_maps(model):
    """(detect maps, extra maps) by structure: Reshape -> Concat(axis 2) -> Split is the detect head."""
    producer = {o: n for n in model.graph.node for o in n.output}

    def reshape_inputs(concat):
        if concat is None or concat.op_type != "Concat":
            return None
        srcs = [producer.get(i) for i in concat.input]
        if not srcs or any(s is None or s.op_type != "Reshape" for s in srcs):
            return None
        return [s.input[0] for s in srcs]

    det, det_concat = None, None
    for n in model.graph.node:
        if n.op_type == "Split":
            maps = reshape_inputs(producer.get(n.input[0]))
            if maps and len(maps) == 3:
                det, det_concat = maps, producer[n.input[0]].name
                break
    if det is None:
        raise ValueError("no Split fed by a Concat of Reshapes: not an Ultralytics YOLOv8 head")
    extra = None
    for n in model.graph.node:
        if n.op_type == "Concat" and n.name != det_concat:
            maps = reshape_inputs(n)
            if maps and len(maps) == 3:
                extra = maps
    return det, extra


def decode_keypoints(maps, size, nk):
    """Raw cv4 keypoint maps -> 1 x nk*3 x N like Pose.kpts_decode: (raw * 2 + cell index) * stride, sigmoid."""
    cols = []
    for m in maps:
        _, c, h, w = m.shape
        stride = size / h
        y = m.reshape(nk, 3, h * w).astype(np.float32).copy()
        gy, gx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
        y[:, 0] = (y[:, 0] * 2.0 + gx.ravel()) * stride
        y[:, 1] = (y[:, 1] * 2.0 + gy.ravel()) * stride
        y[:, 2] = sigmoid(y[:, 2])
        cols.append(y.reshape(nk * 3, h * w))
    return np.concatenate(cols, axis=1)[None]


def nms_indices(pred, nc, conf, iou, max_det=300):
    """Ultralytics non_max_suppression for one image; returns (anchor indices, xyxy, score, class)."""
    x = pred[0].T  # N x C
    scores = x[:, 4:4 + nc]
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(x)), cls]
    idx = np.nonzero(best > conf)[0]
    order = idx[np.argsort(-best[idx], kind="stable")][:MAX_NMS]
    xywh = x[order, :4]
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    shifted = boxes + (cls[order] * MAX_WH)[:, None]
    alive, kept = np.ones(len(order), bool), []
    for i in range(len(order)):
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) == max_det:
            break
        alive[i + 1:] &= iou_one_to_many(shifted[i], shifted[i + 1:]) <= iou
    return order[kept], boxes[kept], best[order[kept]], cls[order[kept]]


def crop_mask(masks, boxes):
    """Ultralytics crop_mask: zero outside each box (boxes in mask pixels)."""
    n, h, w = masks.shape
    r = np.arange(w, dtype=np.float32)[None, None, :]
    c = np.arange(h, dtype=np.float32)[None, :, None]
    x1, y1, x2, y2 = (boxes[:, k][:, None, None] for k in range(4))
    return masks * ((r >= x1) & (r < x2) & (c >= y1) & (c < y2))


def masks_for(coeffs, protos, boxes, size, h, w):
    """Soft masks -> boolean masks at the original image size (see the docstring)."""
    c, mh, mw = protos.shape
    soft = sigmoid(coeffs @ protos.reshape(c, -1)).reshape(-1, mh, mw)
    scale = np.array([mw / size, mh / size, mw / size, mh / size], np.float32)
    soft = crop_mask(soft, boxes * scale)
    gain = min(size / h, size / w)
    padx, pady = round((size - w * gain) / 2 - 0.1), round((size - h * gain) / 2 - 0.1)
    padx2, pady2 = round((size - w * gain) / 2 + 0.1), round((size - h * gain) / 2 + 0.1)
    out = []
    for m in soft:
        up = cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        up = up[pady:size - pady2, padx:size - padx2]
        orig = cv2.resize(up, (w, h), interpolation=cv2.INTER_LINEAR)
        out.append(orig > MASK_THRESHOLD)
    return out


def largest_polygon(mask):
    """(xs, ys, region_area, polygon_area) of the largest external contour of a boolean mask."""
    m = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return [], [], 0, 0.0
    areas = [cv2.contourArea(c) for c in contours]
    best = contours[int(np.argmax(areas))]
    filled = np.zeros_like(m)
    cv2.drawContours(filled, [best], -1, 1, thickness=cv2.FILLED)
    pts = best.reshape(-1, 2)
    return ([int(v) for v in pts[:, 0]], [int(v) for v in pts[:, 1]],
            int((filled & m).sum()), float(max(areas)))


def scale_keypoints(kpts, size, h, w):
    """Ultralytics scale_coords on N x K x 3 keypoints (x, y in letterboxed input pixels)."""
    gain = min(size / h, size / w)
    padx, pady = round((size - w * gain) / 2 - 0.1), round((size - h * gain) / 2 - 0.1)
    k = kpts.copy()
    k[..., 0] = ((k[..., 0] - padx) / gain).clip(0, w)
    k[..., 1] = ((k[..., 1] - pady) / gain).clip(0, h)
    return k


class Model:
    def __init__(self, path, size, cut):
        self.model = onnx.load(path)
        meta = {p.key: p.value for p in self.model.metadata_props}
        self.names = ast.literal_eval(meta["names"])
        self.nc = len(self.names)
        self.task = meta.get("task", "detect")
        self.kpt_shape = ast.literal_eval(meta["kpt_shape"]) if "kpt_shape" in meta else None
        if self.task not in ("segment", "pose"):
            sys.exit(f"{path}: task {self.task!r}, expected segment or pose")
        self.size = size
        self.cut = cut or size != EXPORT_SIZE
        self.det_maps, self.extra_maps = head_maps(self.model)
        if self.cut:
            outs = self.det_maps + self.extra_maps + (["output1"] if self.task == "segment" else [])
            m = cut_model(self.model, outs)
        else:
            m = self.model
        self.sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])

    def raw(self, blob):
        """(output0 1 x C x N, protos 32 x H/4 x W/4 or None)."""
        outs = self.sess.run(None, {"images": blob})
        if not self.cut:
            return outs[0], (outs[1][0] if self.task == "segment" else None)
        det = decode(outs[:3], self.size, self.nc)
        if self.task == "segment":
            mc = np.concatenate([m.reshape(m.shape[1], -1) for m in outs[3:6]], axis=1)[None]
            return np.concatenate([det, mc], axis=1), outs[6][0]
        return np.concatenate([det, decode_keypoints(outs[3:6], self.size, self.kpt_shape[0])], axis=1), None

    def predict(self, bgr, conf, iou):
        h, w = bgr.shape[:2]
        pred, protos = self.raw(letterbox(bgr, self.size))
        idx, boxes, scores, cls = nms_indices(pred, self.nc, conf, iou)
        extra = pred[0][4 + self.nc:, idx].T  # n x (32 | K*3)
        obox = scale_boxes(boxes.copy(), self.size, h, w)
        objs, masks = [], []
        for i in range(len(idx)):
            objs.append({"name": self.names[int(cls[i])], "class": int(cls[i]), "confidence": round(float(scores[i]), 5),
                         "box": dict(zip(("x1", "y1", "x2", "y2"), (round(float(v), 3) for v in obox[i])))})
        if self.task == "segment":
            masks = masks_for(extra, protos, boxes, self.size, h, w) if len(idx) else []
            for o, m in zip(objs, masks):
                xs, ys, region, poly = largest_polygon(m)
                o["segments"] = {"x": xs, "y": ys}
                o["mask_area"] = int(m.sum())
                o["region_area"] = region
                o["polygon_area"] = round(poly, 1)
        else:
            k = scale_keypoints(extra.reshape(len(idx), *self.kpt_shape), self.size, h, w)
            for o, kp in zip(objs, k):
                o["keypoints"] = {"x": [round(float(v), 3) for v in kp[:, 0]],
                                  "y": [round(float(v), 3) for v in kp[:, 1]],
                                  "visible": [round(float(v), 5) for v in kp[:, 2]]}
        return objs, masks


def draw(bgr, objs, masks):
    img = bgr.copy()
    rng = np.random.default_rng(0)
    for o, m in zip(objs, masks):
        col = rng.integers(40, 255, 3)
        img[m] = (0.5 * img[m] + 0.5 * col).astype(np.uint8)
    for o in objs:
        b = o["box"]
        cv2.rectangle(img, (int(b["x1"]), int(b["y1"])), (int(b["x2"]), int(b["y2"])), (0, 200, 255), 2)
        cv2.putText(img, f"{o['name']} {o['confidence']:.2f}", (int(b["x1"]), int(b["y1"]) + 18),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 255), 2)
        if "segments" in o and o["segments"]["x"]:
            pts = np.array([o["segments"]["x"], o["segments"]["y"]], np.int32).T
            cv2.polylines(img, [pts], True, (0, 0, 255), 2)
        if "keypoints" in o:
            k = o["keypoints"]
            for a, c in SKELETON:
                if k["visible"][a] > 0.5 and k["visible"][c] > 0.5:
                    cv2.line(img, (int(k["x"][a]), int(k["y"][a])), (int(k["x"][c]), int(k["y"][c])), (255, 128, 0), 2)
            for x, y, v in zip(k["x"], k["y"], k["visible"]):
                cv2.circle(img, (int(x), int(y)), 4, (0, 255, 0) if v > 0.5 else (0, 0, 255), -1)
    return img


def verify_cut(path, images):
    full, cut = Model(path, EXPORT_SIZE, False), Model(path, EXPORT_SIZE, True)
    print(f"cut at: {cut.det_maps} + {cut.extra_maps}" + (" + ['output1']" if cut.task == "segment" else ""),
          file=sys.stderr)
    worst = 0.0
    for img in images:
        blob = letterbox(cv2.imread(img), EXPORT_SIZE)
        (a, pa), (b, pb) = full.raw(blob), cut.raw(blob)
        d = np.abs(a - b)
        nc = full.nc
        msg = (f"{os.path.basename(img)}: max abs diff boxes {d[:, :4].max():.3g} scores {d[:, 4:4 + nc].max():.3g} "
               f"extra {d[:, 4 + nc:].max():.3g}")
        worst = max(worst, float(d.max()))
        if pa is not None:
            msg += f" protos {np.abs(pa - pb).max():.3g}"
            worst = max(worst, float(np.abs(pa - pb).max()))
        print(msg, file=sys.stderr)
    return worst


def summary(doc, task):
    rows = []
    for im in doc["images"]:
        rows.append(f"{im['image']} ({im['width']}x{im['height']}): {len(im['data'])} objects")
        for o in im["data"]:
            b = o["box"]
            line = (f"  {o['name']:<10} {o['confidence']:.3f}  box ({b['x1']:.0f},{b['y1']:.0f})-"
                    f"({b['x2']:.0f},{b['y2']:.0f})")
            if task == "segment":
                box_area = (b["x2"] - b["x1"]) * (b["y2"] - b["y1"])
                line += (f"  mask {o['mask_area']:>7} px ({o['mask_area'] / max(box_area, 1):.0%} of box)"
                         f"  region {o['region_area']:>7}  polygon {o['polygon_area']:>9.1f} "
                         f"({len(o['segments']['x'])} pts)")
            else:
                k = o["keypoints"]
                vis = sum(v > 0.5 for v in k["visible"])
                inside = sum(b["x1"] <= x <= b["x2"] and b["y1"] <= y <= b["y2"] for x, y in zip(k["x"], k["y"]))
                line += (f"  kpts x {min(k['x']):.0f}-{max(k['x']):.0f} y {min(k['y']):.0f}-{max(k['y']):.0f}"
                         f"  visible>0.5 {vis}/{len(k['x'])}  in box {inside}/{len(k['x'])}"
                         f"  vis {min(k['visible']):.2f}-{max(k['visible']):.2f}")
            rows.append(line)
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", metavar="IMAGE")
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=640, help="square input size, a multiple of 32")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--cut", action="store_true", help="use the cut graph + numpy decode even at 640")
    ap.add_argument("--verify-cut", action="store_true",
                    help="only compare cut-graph decode with the full graph at 640 (fails above 1e-3)")
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    ap.add_argument("--draw", metavar="DIR", help="write annotated images to DIR")
    args = ap.parse_args()
    if args.size % 32:
        ap.error("--size must be a multiple of 32")
    if args.verify_cut:
        worst = verify_cut(args.model, args.images)
        print(f"max abs diff cut vs full: {worst:.3g}")
        sys.exit(0 if worst <= 1e-3 else 1)

    model = Model(args.model, args.size, args.cut)
    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    results = []
    for img in args.images:
        bgr = cv2.imread(img)
        if bgr is None:
            sys.exit(f"cannot read {img}")
        objs, masks = model.predict(bgr, args.conf, args.iou)
        results.append({"image": os.path.basename(img), "width": bgr.shape[1], "height": bgr.shape[0],
                        "size": args.size, "data": objs})
        if args.draw:
            os.makedirs(args.draw, exist_ok=True)
            stem = os.path.splitext(os.path.basename(args.model))[0]
            cv2.imwrite(os.path.join(args.draw, f"{stem}-{args.size}-{os.path.basename(img)}"),
                        draw(bgr, objs, masks))
    doc = {"model": os.path.basename(args.model), "model_sha256": sha, "task": model.task, "size": args.size,
           "conf": args.conf, "iou": args.iou, "images": results}
    text = json.dumps(doc, indent=1) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    print(summary(doc, model.task), file=sys.stderr)


if __name__ == "__main__":
    main()
