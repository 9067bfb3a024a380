#!/usr/bin/env python3
"""Make the YOLOv8n segment and pose ONNX models yolod's tests run on.

No package registry ships yolov8n-seg or yolov8n-pose weights, so the project
makes its own from the COCO detect model (models/yolov8n.onnx, opset 17). Both
keep the real backbone, neck and detect head (so boxes and scores are real
detections on real images) and add made branches with fixed weights. Nothing is
trained: the made branches re-use what the detect head already computes.

    python3 tests/reference/seg_pose_models.py            # writes both models
    python3 tests/reference/seg_pose_models.py --check    # rebuild, compare sha256

Both have exactly the Ultralytics export layout, graph naming and metadata
(description, author, date, version, license, docs, stride, task, batch, imgsz,
names, and kpt_shape for pose; values are str() of the Python values, as the
Ultralytics exporter writes them). As in a real export, the mask/keypoint branch
is traced before the detect head, so its concat takes `/model.22/Concat` and the
three per-level detect maps are `/model.22/Concat_1/2/3_output_0` (1 x (64+nc) x
H/s x W/s, s = 8, 16, 32), each Reshape'd to 1 x (64+nc) x -1, concatenated and
Split into DFL box logits and class logits. Everything up to those maps, the
`cv4` maps and `output1` is fully convolutional (Conv, Resize with scales,
ConvTranspose, elementwise ops), so a graph cut there runs at any input size
that is a multiple of 32.

yolov8n-seg-made.onnx (task 'segment', the 80 COCO names)
  output0  1 x 116 x 8400: cx, cy, w, h (input pixels), 80 sigmoid class scores,
           32 mask coefficients (Concat of Reshape'd `/model.22/cv4.i/cv4.i.2/Conv`
           maps, 1 x 32 x H/s x W/s each).
  output1  1 x 32 x 160 x 160 protos (SiLU output, like Ultralytics' Proto.cv3).
  How masks mean something: the detect head's per-level class logit maps
  L_i = `/model.22/cv3.i/cv3.i.2/Conv_output_0` are heat maps of "class k is
  here". COCO class k owns proto channel k mod 31; channel 31 is a constant.
  - protos: E_i = SiLU(L_i + a_i) per level, bilinearly resized to the P3 grid
    and summed; `proto/cv1` sums the classes of each channel and adds a small
    seeded random projection of the P3 features (image texture on the mask
    edges); `proto/upsample` is a 2x2 stride-2 ConvTranspose (nearest x2, as
    Ultralytics' Proto upsamples), `proto/cv2` a 3x3 blur, `proto/cv3` a 1x1
    conv + SiLU giving P_j = SiLU(g * (B_j - T)), P_31 = SiLU(4).
  - coefficients at an anchor: h = SiLU(L_i + 2) (cv4.i.0, about 0 for classes
    the anchor does not see), then cv4.i.2 puts kappa * h_k on channel k mod 31
    and -kappa * theta * sum(h) / SiLU(4) on channel 31, plus tiny seeded noise.
  So coeffs . protos ~ kappa * h_c * (P_c - theta): the mask of a detection of
  class c is where the model's own class-c evidence is strong, which gives
  object-shaped blobs of varied size inside the box.

yolov8n-pose-made.onnx (task 'pose', names {0: 'person'}, kpt_shape [17, 3])
  output0  1 x 56 x 8400: cx, cy, w, h, person score (sigmoid of the real class-0
           logit: cv3.i.2 keeps only its first output channel), then 17 x (x, y,
           visibility) decoded in-graph exactly as Ultralytics Pose.kpts_decode
           does for export: x = (raw_x * 2 + (anchor_x - 0.5)) * stride, same for
           y, visibility = sigmoid(raw_v), anchors at cell centres (i + 0.5).
  Raw keypoints are the 1 x 51 x H/s x W/s maps `/model.22/cv4.i/cv4.i.2/Conv`:
  cv4.i.0 computes the DFL box distances (l, t, r, b) of each anchor from
  cv2.i.2 (softmax expectation, written as ReduceMax/Sub/Exp/grouped Conv/Div);
  cv4.i.2 is a 1x1 conv over [l, t, r, b, level features, person logit] whose
  weights put keypoint j at a fixed fraction (u_j, v_j) of the anchor's own box
  (a standing-person template; x is linear in l and r since
  raw_x = 0.25 + l * (u_j - 1) / 2 + r * u_j / 2), plus a seeded random
  projection of the features (a few pixels of jitter); visibility logits are a
  per-keypoint bias + 0.5 * person logit + a seeded random feature projection,
  so some keypoints fall below 0.5.

Weights derived from Ultralytics YOLOv8n (AGPL-3.0); the made parts are this
script's. Deterministic: fixed seed, fixed date, no other input than yolov8n.onnx.
"""
import argparse
import ast
import hashlib
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "models", "yolov8n.onnx")
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "models")
SEG_OUT = os.path.join(OUT_DIR, "yolov8n-seg-made.onnx")
POSE_OUT = os.path.join(OUT_DIR, "yolov8n-pose-made.onnx")
SEED = 20261127
IMGSZ = 640
STRIDES = (8, 16, 32)
REG_MAX = 16
LEVEL_FEATURES = ["/model.15/cv2/act/Mul_output_0", "/model.18/cv2/act/Mul_output_0",
                  "/model.21/cv2/act/Mul_output_0"]
FEATURE_CHANNELS = (64, 128, 256)
NM = 32  # mask coefficients / protos
NK = 17  # keypoints
DATE = "2026-11-27T00:00:00.000000"

# Segment tuning (see the docstring): level shifts, proto gain/threshold, coefficient gain/threshold.
SEG_LEVEL_SHIFT = (4.0, 6.0, 7.0)
SEG_PROTO_GAIN, SEG_PROTO_T = 1.5, 2.0
SEG_COEF_SHIFT = 2.0
SEG_KAPPA, SEG_THETA = 2.0, 0.5
SEG_TEXTURE = 0.05  # std of the random P3-feature projection added to the proto sums
SILU4 = 4.0 / (1.0 + np.exp(-4.0))

# COCO keypoints on a standing person facing the camera: (u, v) fractions of the box, visibility bias.
KPT_TEMPLATE = [
    (0.50, 0.09, 2.0),  # nose
    (0.54, 0.07, 1.5), (0.46, 0.07, 1.5),  # eyes
    (0.59, 0.08, 0.5), (0.41, 0.08, 0.5),  # ears
    (0.70, 0.22, 1.2), (0.30, 0.22, 1.2),  # shoulders
    (0.78, 0.38, 0.4), (0.22, 0.38, 0.4),  # elbows
    (0.80, 0.52, -0.2), (0.20, 0.52, -0.2),  # wrists
    (0.63, 0.53, 0.6), (0.37, 0.53, 0.6),  # hips
    (0.64, 0.73, 0.0), (0.36, 0.73, 0.0),  # knees
    (0.65, 0.93, -0.6), (0.35, 0.93, -0.6),  # ankles
]
KPT_JITTER = 0.06  # std of the raw (half grid cell) keypoint jitter
KPT_VIS_NOISE = 2.5  # scale of the random feature projection in the visibility logits
KPT_VIS_SHIFT = -1.0  # added to every template visibility bias


def fp32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


class Graph:
    """Nodes, initializers and torch-style names (scope/Op, scope/Op_1, ...) for the head."""

    def __init__(self):
        self.nodes, self.inits = [], {}
        self.counts = {}

    def name(self, scope, op):
        n = self.counts.get((scope, op), 0)
        self.counts[(scope, op)] = n + 1
        return f"{scope}/{op}" if n == 0 else f"{scope}/{op}_{n}"

    def op(self, scope, op, inputs, n_out=1, out=None, **attrs):
        name = self.name(scope, op)
        outs = [f"{name}_output_{k}" for k in range(n_out)] if out is None else [out]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, scope, value, dtype=None):
        arr = np.asarray(value, dtype=dtype)
        name = self.name(scope, "Constant")
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node("Constant", [], [out], name=name,
                                           value=numpy_helper.from_array(arr)))
        return out

    def init(self, name, value):
        self.inits[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def conv(self, scope, x, weight, bias=None, act=False, wname=None, **attrs):
        """Conv (+ SiLU as Sigmoid/Mul, like Ultralytics' Conv module) with initializer weights."""
        wname = wname or scope.strip("/").replace("/", ".")
        k = weight.shape[2]
        attrs.setdefault("kernel_shape", [k, weight.shape[3]])
        attrs.setdefault("pads", [k // 2] * 4)
        attrs.setdefault("strides", [1, 1])
        attrs.setdefault("dilations", [1, 1])
        attrs.setdefault("group", 1)
        ins = [x, self.init(wname + ".weight", fp32(weight))]
        if bias is not None:
            ins.append(self.init(wname + ".bias", fp32(bias)))
        if act:
            y = self.op(scope + "/conv", "Conv", ins, **attrs)
            s = self.op(scope + "/act", "Sigmoid", [y])
            return self.op(scope + "/act", "Mul", [y, s])
        return self.op(scope, "Conv", ins, **attrs)

    def silu(self, scope, x):
        s = self.op(scope, "Sigmoid", [x])
        return self.op(scope, "Mul", [x, s])


def base_graph(model, keep_classes=None):
    """Backbone, neck and the cv2/cv3 convs of the detect head; drops the head's decode."""
    g = model.graph
    nodes = [n for n in g.node
             if not n.name.startswith("/model.22/") or n.name.startswith(("/model.22/cv2.", "/model.22/cv3."))]
    inits = {t.name: t for t in g.initializer}
    if keep_classes is not None:
        for i in range(3):
            for suffix in ("weight", "bias"):
                name = f"model.22.cv3.{i}.2.{suffix}"
                inits[name] = numpy_helper.from_array(numpy_helper.to_array(inits[name])[:keep_classes], name)
    return nodes, inits


def anchors_strides():
    pts, strides = [], []
    for s in STRIDES:
        n = IMGSZ // s
        gy, gx = np.meshgrid(np.arange(n, dtype=np.float32) + 0.5, np.arange(n, dtype=np.float32) + 0.5,
                             indexing="ij")
        pts.append(np.stack([gx.ravel(), gy.ravel()]))
        strides.append(np.full(n * n, s, np.float32))
    return np.concatenate(pts, 1)[None], np.concatenate(strides)[None]  # 1x2xN, 1xN


def flatten_concat(G, maps, channels):
    """x.view(1, c, -1) per level, concatenated on the anchor axis (the Ultralytics pattern)."""
    flat = []
    for m in maps:
        shape = G.const("/model.22", [1, channels, -1], np.int64)
        flat.append(G.op("/model.22", "Reshape", [m, shape], allowzero=0))
    return G.op("/model.22", "Concat", flat, axis=2)


def detect(G, nc):
    """Ultralytics Detect forward in export mode; returns y (1 x (4+nc) x N)."""
    levels = [G.op("/model.22", "Concat", [f"/model.22/cv2.{i}/cv2.{i}.2/Conv_output_0",
                                           f"/model.22/cv3.{i}/cv3.{i}.2/Conv_output_0"], axis=1)
              for i in range(3)]
    x_cat = flatten_concat(G, levels, 4 * REG_MAX + nc)
    split = G.init(f"onnx::Split_{4 * REG_MAX}_{nc}", np.array([4 * REG_MAX, nc], np.int64))
    box, cls = G.op("/model.22", "Split", [x_cat, split], n_out=2, axis=1)
    n = sum((IMGSZ // s) ** 2 for s in STRIDES)
    r = G.op("/model.22/dfl", "Reshape", [box, G.const("/model.22/dfl", [1, 4, REG_MAX, n], np.int64)], allowzero=0)
    t = G.op("/model.22/dfl", "Transpose", [r], perm=[0, 2, 1, 3])
    sm = G.op("/model.22/dfl", "Softmax", [t], axis=1)
    dfl_w = G.init("model.22.dfl.conv.weight", fp32(np.arange(REG_MAX).reshape(1, REG_MAX, 1, 1)))
    c = G.op("/model.22/dfl/conv", "Conv", [sm, dfl_w], dilations=[1, 1], group=1, kernel_shape=[1, 1],
             pads=[0, 0, 0, 0], strides=[1, 1])
    dist = G.op("/model.22/dfl", "Reshape", [c, G.const("/model.22/dfl", [1, 4, n], np.int64)], allowzero=0)
    lt, rb = G.op("/model.22", "Split", [dist, G.const("/model.22", [2, 2], np.int64)], n_out=2, axis=1)
    anchors, strides = anchors_strides()
    x1y1 = G.op("/model.22", "Sub", [G.const("/model.22", anchors), lt])
    x2y2 = G.op("/model.22", "Add", [G.const("/model.22", anchors), rb])
    s = G.op("/model.22", "Add", [x1y1, x2y2])
    cxy = G.op("/model.22", "Div", [s, G.const("/model.22", np.array(2.0, np.float32))])
    wh = G.op("/model.22", "Sub", [x2y2, x1y1])
    xywh = G.op("/model.22", "Concat", [cxy, wh], axis=1)
    dbox = G.op("/model.22", "Mul", [xywh, G.const("/model.22", strides)])
    return G.op("/model.22", "Concat", [dbox, G.op("/model.22", "Sigmoid", [cls])], axis=1), levels


def seg_branches(G, rng):
    """Proto (output1) and the per-level mask-coefficient maps; returns (mc, [maps])."""
    nc = 80
    logits = [f"/model.22/cv3.{i}/cv3.{i}.2/Conv_output_0" for i in range(3)]
    eye = np.eye(nc, dtype=np.float32)[:, :, None, None]
    # --- protos (traced first in Ultralytics' Segment.forward)
    ev = []
    for i, L in enumerate(logits):
        e = G.conv(f"/model.22/proto/ev.{i}", L, eye, np.full(nc, SEG_LEVEL_SHIFT[i]), act=True)
        if i:
            scales = G.const("/model.22/proto", np.array([1, 1, 2 ** i, 2 ** i], np.float32))
            e = G.op("/model.22/proto", "Resize", [e, "", scales], mode="linear",
                     coordinate_transformation_mode="half_pixel")
        ev.append(e)
    esum = G.op("/model.22/proto", "Add", [ev[0], ev[1]])
    esum = G.op("/model.22/proto", "Add", [esum, ev[2]])
    cat = G.op("/model.22/proto", "Concat", [esum, LEVEL_FEATURES[0]], axis=1)
    w1 = np.zeros((NM, nc + FEATURE_CHANNELS[0], 1, 1), np.float32)
    for k in range(nc):
        w1[k % (NM - 1), k] = 1.0
    w1[:NM - 1, nc:, 0, 0] = rng.normal(0, SEG_TEXTURE, (NM - 1, FEATURE_CHANNELS[0]))
    p = G.conv("/model.22/proto/cv1", cat, w1, np.zeros(NM))
    up = np.zeros((NM, NM, 2, 2), np.float32)
    up[np.arange(NM), np.arange(NM)] = 1.0
    p = G.op("/model.22/proto/upsample", "ConvTranspose",
             [p, G.init("model.22.proto.upsample.weight", up), G.init("model.22.proto.upsample.bias", fp32(np.zeros(NM)))],
             dilations=[1, 1], group=1, kernel_shape=[2, 2], pads=[0, 0, 0, 0], strides=[2, 2])
    blur = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16
    w2 = np.zeros((NM, NM, 3, 3), np.float32)
    w2[np.arange(NM - 1), np.arange(NM - 1)] = blur
    b2 = np.zeros(NM)
    b2[NM - 1] = 1.0
    p = G.conv("/model.22/proto/cv2", p, w2, b2)
    w3 = np.zeros((NM, NM, 1, 1), np.float32)
    w3[np.arange(NM - 1), np.arange(NM - 1)] = SEG_PROTO_GAIN
    b3 = np.full(NM, -SEG_PROTO_GAIN * SEG_PROTO_T)
    b3[NM - 1] = 4.0
    y = G.op("/model.22/proto/cv3/conv", "Conv",
             [p, G.init("model.22.proto.cv3.conv.weight", w3), G.init("model.22.proto.cv3.conv.bias", fp32(b3))],
             dilations=[1, 1], group=1, kernel_shape=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1])
    s = G.op("/model.22/proto/cv3/act", "Sigmoid", [y])
    G.nodes.append(helper.make_node("Mul", [y, s], ["output1"], name=G.name("/model.22/proto/cv3/act", "Mul")))
    # --- mask coefficients
    maps = []
    w_c = np.zeros((NM, nc, 1, 1), np.float32)
    for k in range(nc):
        w_c[k % (NM - 1), k] = SEG_KAPPA
    w_c[NM - 1] = -SEG_KAPPA * SEG_THETA / SILU4
    w_c += rng.normal(0, 0.01 * SEG_KAPPA, w_c.shape).astype(np.float32)
    for i, L in enumerate(logits):
        h = G.conv(f"/model.22/cv4.{i}/cv4.{i}.0", L, eye, np.full(nc, SEG_COEF_SHIFT), act=True)
        maps.append(G.conv(f"/model.22/cv4.{i}/cv4.{i}.2", h, w_c, np.zeros(NM)))
    return flatten_concat(G, maps, NM), maps


def pose_branches(G, rng):
    """Raw keypoint maps per level (cv4.i.2) and their in-graph decode; returns (kpts 1x51xN, [maps])."""
    maps = []
    tmpl = np.array(KPT_TEMPLATE, np.float32)
    for i in range(3):
        scope = f"/model.22/cv4.{i}/cv4.{i}.0"
        d = f"/model.22/cv2.{i}/cv2.{i}.2/Conv_output_0"
        mx = G.op(scope, "ReduceMax", [d], axes=[1], keepdims=1)
        e = G.op(scope, "Exp", [G.op(scope, "Sub", [d, mx])])
        ones = np.ones((4, REG_MAX, 1, 1), np.float32)
        bins = np.tile(np.arange(REG_MAX, dtype=np.float32).reshape(1, REG_MAX, 1, 1), (4, 1, 1, 1))
        z = G.conv(scope + "/sum", e, ones, group=4)
        num = G.conv(scope + "/bins", e, bins, group=4)
        ltrb = G.op(scope, "Div", [num, z])
        cat = G.op(f"/model.22/cv4.{i}", "Concat",
                   [ltrb, LEVEL_FEATURES[i], f"/model.22/cv3.{i}/cv3.{i}.2/Conv_output_0"], axis=1)
        cin = 4 + FEATURE_CHANNELS[i] + 1
        w = np.zeros((3 * NK, cin, 1, 1), np.float32)
        b = np.zeros(3 * NK, np.float32)
        feat_scale = 1.0 / np.sqrt(FEATURE_CHANNELS[i])
        for j, (u, v, vis) in enumerate(tmpl):
            w[3 * j, [0, 2], 0, 0] = (u - 1) / 2, u / 2  # x from l, r
            w[3 * j + 1, [1, 3], 0, 0] = (v - 1) / 2, v / 2  # y from t, b
            b[3 * j] = b[3 * j + 1] = 0.25
            w[3 * j + 2, cin - 1, 0, 0] = 0.5
            b[3 * j + 2] = vis + KPT_VIS_SHIFT
        w[:, 4:cin - 1, 0, 0] = rng.normal(0, 1, (3 * NK, FEATURE_CHANNELS[i])) * feat_scale
        w[0::3, 4:cin - 1] *= KPT_JITTER
        w[1::3, 4:cin - 1] *= KPT_JITTER
        w[2::3, 4:cin - 1] *= KPT_VIS_NOISE
        maps.append(G.conv(f"/model.22/cv4.{i}/cv4.{i}.2", cat, w, b))
    kpt = flatten_concat(G, maps, 3 * NK)
    # Detect runs here in Ultralytics; the decode below is Pose.kpts_decode (export branch).
    return kpt, maps


def kpts_decode(G, kpt):
    anchors, strides = anchors_strides()
    y = G.op("/model.22", "Reshape", [kpt, G.const("/model.22", [1, NK, 3, -1], np.int64)], allowzero=0)

    def sl(start, end):
        return G.op("/model.22", "Slice", [y, G.const("/model.22", [start], np.int64),
                                            G.const("/model.22", [end], np.int64),
                                            G.const("/model.22", [2], np.int64),
                                            G.const("/model.22", [1], np.int64)])

    xy = G.op("/model.22", "Mul", [sl(0, 2), G.const("/model.22", np.array(2.0, np.float32))])
    xy = G.op("/model.22", "Add", [xy, G.const("/model.22", anchors[0] - 0.5)])  # 2xN
    xy = G.op("/model.22", "Mul", [xy, G.const("/model.22", strides)])  # 1xN
    vis = G.op("/model.22", "Sigmoid", [sl(2, 3)])
    a = G.op("/model.22", "Concat", [xy, vis], axis=2)
    return G.op("/model.22", "Reshape", [a, G.const("/model.22", [1, 3 * NK, -1], np.int64)], allowzero=0)


def toposort(nodes):
    produced = {o: i for i, n in enumerate(nodes) for o in n.output}
    order, state = [], {}

    def visit(i):
        stack = [(i, False)]
        while stack:
            j, expanded = stack.pop()
            if state.get(j) == 2:
                continue
            if expanded:
                state[j] = 2
                order.append(nodes[j])
                continue
            state[j] = 1
            stack.append((j, True))
            for name in reversed(nodes[j].input):
                p = produced.get(name)
                if name and p is not None and state.get(p) != 2:
                    if state.get(p) == 1:
                        raise ValueError(f"cycle at {nodes[p].name}")
                    stack.append((p, False))

    for i in range(len(nodes)):
        visit(i)
    return order


def metadata(task, names, kpt_shape=None):
    meta = {
        "description": f"Ultralytics YOLOv8n-{'seg' if task == 'segment' else 'pose'} layout, made (untrained) "
                       f"from COCO YOLOv8n by yolod tests/reference/seg_pose_models.py",
        "author": "yolod tests (weights derived from Ultralytics YOLOv8n)",
        "date": DATE,
        "version": "8.0.0-made",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": 32,
        "task": task,
        "batch": 1,
        "imgsz": [IMGSZ, IMGSZ],
        "names": names,
    }
    if kpt_shape is not None:
        meta["kpt_shape"] = kpt_shape
    return {k: str(v) for k, v in meta.items()}


def prune(nodes, outputs):
    """Drop nodes nothing depends on (e.g. the detect head's old Split-size Constant)."""
    live, keep = set(outputs), []
    for n in reversed(nodes):
        if live.intersection(n.output):
            keep.append(n)
            live.update(i for i in n.input if i)
    return keep[::-1]


def finish(src, G, base_nodes, base_inits, outputs, meta, doc):
    g = src.graph
    inits = dict(base_inits)
    inits.update(G.inits)
    nodes = prune(toposort(list(base_nodes) + G.nodes), [n for n, _ in outputs])
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(nodes, "main_graph", [g.input[0]],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
                              initializer=[t for name, t in inits.items() if name in used])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="yolod-seg_pose_models", producer_version="1", doc_string=doc)
    m.ir_version = src.ir_version
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m, full_check=True)
    return m


def make_seg(src):
    rng = np.random.default_rng(SEED)
    names = ast.literal_eval({p.key: p.value for p in src.metadata_props}["names"])
    nodes, inits = base_graph(src)
    G = Graph()
    mc, _ = seg_branches(G, rng)
    y, _ = detect(G, 80)
    G.nodes.append(helper.make_node("Concat", [y, mc], ["output0"], name=G.name("/model.22", "Concat"), axis=1))
    return finish(src, G, nodes, inits, [("output0", [1, 4 + 80 + NM, 8400]), ("output1", [1, NM, 160, 160])],
                  metadata("segment", names), "yolod made YOLOv8n-seg (see tests/reference/seg_pose_models.py)")


def make_pose(src):
    rng = np.random.default_rng(SEED + 1)
    nodes, inits = base_graph(src, keep_classes=1)
    G = Graph()
    kpt, _ = pose_branches(G, rng)
    y, _ = detect(G, 1)
    pk = kpts_decode(G, kpt)
    G.nodes.append(helper.make_node("Concat", [y, pk], ["output0"], name=G.name("/model.22", "Concat"), axis=1))
    return finish(src, G, nodes, inits, [("output0", [1, 4 + 1 + 3 * NK, 8400])],
                  metadata("pose", {0: "person"}, [NK, 3]), "yolod made YOLOv8n-pose (see tests/reference/seg_pose_models.py)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=SRC)
    ap.add_argument("--out-dir", default=OUT_DIR)
    ap.add_argument("--check", action="store_true", help="build in memory, compare with the files on disk")
    args = ap.parse_args()
    src = onnx.load(args.src)
    ok = True
    for fname, make in (("yolov8n-seg-made.onnx", make_seg), ("yolov8n-pose-made.onnx", make_pose)):
        data = make(src).SerializeToString()
        sha = hashlib.sha256(data).hexdigest()
        path = os.path.join(args.out_dir, fname)
        if args.check:
            with open(path, "rb") as f:
                same = hashlib.sha256(f.read()).hexdigest() == sha
            ok &= same
            print(f"{fname}: {'same' if same else 'DIFFERENT'} ({sha})")
        else:
            os.makedirs(args.out_dir, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            print(f"{path}: {len(data)} bytes sha256 {sha}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
