#!/usr/bin/env python3
"""Reproducible int8 variants of models/yolov8n.onnx for yolod (onnxruntime static quantization).

Pinned tools (what produced the committed numbers):

    pip install onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6 opencv-python-headless==5.0.0.93

Calibration images come from registry packages only, fetched on first use into --cache
(default ~/.cache/yolod-images) and checked by sha256:

  * PyPI  scikit-image==0.26.0 wheel   (`pip download --no-deps`): skimage/data/*
  * Debian opencv-doc=4.6.0+dfsg-12    (`apt-get download`): usr/share/doc/opencv-doc/examples/*
  * PyPI  matplotlib==3.11.2 wheel     (only the evaluation set uses its sample data)

The evaluation images of tests/reference/int8_accuracy.py are disjoint from CALIBRATION
(that script checks it); stereo pairs and sequences (left*/right*, basketball1/2,
leuvenA/B, motorcycle_left/right...) are kept within one set. bus.jpg and zidane.jpg
(yolod's test fixtures) are in neither.

Every image is letterboxed to 640x640 exactly like Ultralytics (golden.letterbox).

The YOLOv8 head concatenates boxes (0-640 px) and class scores (0-1), which no single 8-bit
scale holds, so each variant keeps the head's decode in float: all of /model.22/ except
its Conv nodes (and the DFL's fixed 1x1 conv, which is decode too). yolod cuts the graph
at /model.22/Concat{,_1,_2}_output_0, whose names the quantized graphs keep.

Variants (see VARIANTS; accuracy from tests/reference/int8_accuracy.py, x86 tract 0.23.9 timings
and plans in the int8 issue):
  qdq       QDQ, per-channel s8 weights, u8 activations. tract runs its convs in f32: no rule
            folds DQ->Conv->Q into an integer conv; each Q/DQ is an extra elementwise pass.
  qop       QOperator, per-channel s8 weights, u8 activations. Also emits com.microsoft
            QLinearSigmoid/QLinearMul/QLinearAdd/QLinearConcat, which tract cannot load.
  qop-conv  QOperator with only Conv quantized (QLinearConv between float SiLUs), s8
            activations, per-tensor s8 weights: no u8->i8 offsetting, a uniform requant scale
            that tract fuses into its int8 matmul, and DQ->SiLU->Q folds into a lookup table.
            The fastest in tract, but quantizing each Conv output (before SiLU) costs too much
            accuracy.
  qop-conv-pc  same with per-channel weights: tract cannot fuse a per-channel requant and
            runs it as ~8 unfused elementwise passes per conv (slower than fp32).
  convint   Only each Conv's input (s8, per-tensor) and weights (s8, per-channel) are
            quantized; the integer accumulator (+ int32 bias) is rescaled to float, SiLU runs
            in float. Built as QDQ by onnxruntime, then rewritten into ConvInteger -> Add ->
            Cast -> Mul (to_conv_integer), which tract imports as an integer convolution.
            The only variant meeting the accuracy goal.

    python3 models/quantize.py                 # all variants into models/int8/
    python3 models/quantize.py --only convint
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
from golden import HEAD_MAPS, letterbox  # noqa: E402

SIZE = 640

# Where each image source comes from: a registry package, and the folder of the images in it.
SOURCES = {
    "skimage": ("pypi", "scikit-image==0.26.0", "skimage/data/"),
    "matplotlib": ("pypi", "matplotlib==3.11.2", "matplotlib/mpl-data/sample_data/"),
    "opencv": ("debian", "opencv-doc=4.6.0+dfsg-12", "usr/share/doc/opencv-doc/examples/"),
}

# Calibration set: 74 natural photographs (and a few scanned/painted ones) that are not
# evaluation images. name -> sha256.
CALIBRATION = {
    "opencv:data/left01.jpg": "9621899098adffa1440c8264606bb7be535ccfd9ad126ae8e0bd9b0c5a5b8676",
    "opencv:data/left02.jpg": "052e700bbcc865c112958ec2ea105cb1bce4deca50ac8d6efae13adca9df7a2c",
    "opencv:data/left03.jpg": "c85b9426c3d8fcf161e1e727356105091009c3fd0b1b1a65bc2da91fea2724d2",
    "opencv:data/left04.jpg": "b490599dccfbfe5eb56d33363415b02227a9548ab8c9b8e7b05d3580e97266d9",
    "opencv:data/left05.jpg": "40bab8934fa76f82ec614a7fd0e6ebb4d9f74391d5e8b0c6f2f0ed6080c6c4de",
    "opencv:data/left06.jpg": "1cb164db61b3bd52f58a7e9340bb27c5e0278895bc80b6f292fba5cf9bccc4a1",
    "opencv:data/left07.jpg": "d2211fe9f971646b6ff88ed93a4f0d3f443741eb2894095cba15caade7c8c6e4",
    "opencv:data/left08.jpg": "f7a0737894812a28243af5b409c5689f4fadfe7610958b8ca5fc79aec2f2cd1b",
    "opencv:data/left09.jpg": "753939bc62d093c001d9118e989bef2b887f1b2f9ac03603df915a8b85aa81d3",
    "opencv:data/left11.jpg": "e736ace3d515c94c547009c3c10d818c81506ed7059cb31123749b9cc3f94ee8",
    "opencv:data/left12.jpg": "04bdd78b3b507fe0551aa7062a3ffd94846a147ee2bea7fb38082c720bdbe231",
    "opencv:data/left13.jpg": "2637fb6dd5e557f4fadb06b353a453eb0b9223f4671f6f572f815302bc4a70b3",
    "opencv:data/left14.jpg": "d4c032971dd7b859f9d6aed5090c9888bd8039b82e0604bee5bfe05444fce834",
    "opencv:data/right01.jpg": "94a160342fade4d0c4d2e94b8cb6c1e144a6e7682389d2991257e3a28625cb2d",
    "opencv:data/right02.jpg": "f7819b2fcc45fdeff0cefd666a1f8bd2a5828c4d34367d7b6b6691f442bf1c42",
    "opencv:data/right03.jpg": "43a3cea1907be641268ea18478362ab6c459424a9d8b7265eb5fb2264fcfb894",
    "opencv:data/right04.jpg": "d5874ff3d948dbb673beb035dd70aef5e517119ff626ecdfd612fdd6a1eec32e",
    "opencv:data/right05.jpg": "9382a24af5a21a9e3ec477bd4f74011e4bb10b0cdbc7e0de3ae60b75e95d650b",
    "opencv:data/right06.jpg": "874b60edc8a53da477c6ee393184a1aafdc83ceaedcb4d0535f7c482d1c80e76",
    "opencv:data/right07.jpg": "446093eead30c8cb1e51c8d01d322907760a3a57876596a81af6bf0795e9be67",
    "opencv:data/right08.jpg": "5f1be870c8709fd5fc4dd578103b320018aabb4e18b8e8edaba9afbdd4d0b8f4",
    "opencv:data/right09.jpg": "de28e9f146f4b7de78b0e39be6682997a7428f8ec5ef4efc753415d4ff8d9d76",
    "opencv:data/right11.jpg": "2695e8f8e94eaef0bcfe56818090dada6dc76f53e30b77b97bea3a91080949db",
    "opencv:data/right12.jpg": "07489b6a334fae390954bbbddedf03a0556163e5e364820838e881ebd3f33e0d",
    "opencv:data/right13.jpg": "a576cc5e69668d65dd926366d103c4c77377e0cd71403e4e0fc278e335ed953c",
    "opencv:data/right14.jpg": "e98bbe907610e9499d704bd0fe68d4adc158b19346cbc32f4cfe8a0014b1bd62",
    "opencv:data/left.jpg": "fb314330c3eb0a81651c682803e73b348898157267fbc37c4c2c07d1b3a8e321",
    "opencv:data/right.jpg": "20972954be263a99194d1373d9a5cd8d2dc92acf69b55470b6951f3b3475017f",
    "opencv:data/aero1.jpg": "d9a69191f6e3642ea361bc3c62e677b2f40fe6534b78da540f4155e0734b59ef",
    "opencv:data/aero3.jpg": "1c407146f8762b3b14a7953ff9bc4c01ed64c467d7277122e769bf7e816017a4",
    "opencv:data/apple.jpg": "e86879de3d9a807dedc742a8f464f39e6b74bbb531a1fba3583155d94997d1cd",
    "opencv:data/orange.jpg": "152c20d2f380ac985de25e474e1a5f06ed34b932191342099b8272a63a15a079",
    "opencv:data/baboon.jpg": "1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f",
    "opencv:data/butterfly.jpg": "34a99716b78ded10eae87b4880de739d3e68cc7dd1a96812bb28f469d5eeaea8",
    "opencv:data/HappyFish.jpg": "ade5b67347d7f89b1539c93843f3f7178782a7e34eb1fe586f4a785c3e60a432",
    "opencv:data/box.png": "1094629c1e2ebbc8a9ae2c9c63e18c1dff0f5f1481146e02f3b11a3d30feb20a",
    "opencv:data/box_in_scene.png": "8b0225ff76244a42bd1400c0904f8b7afea7d97b7d8115495e42e98ad347bd51",
    "opencv:data/graf1.png": "1504b769303c7bde00fa578eeaad3c68e02aceabeb1242e556f1f8d19e4bdea5",
    "opencv:data/graf3.png": "492e0e96f21748d093e1a29f4dbfd46528bd75966937e85ce7c8abc0f361fc15",
    "opencv:data/starry_night.jpg": "accda7a19a90f22a4a922fdc8c230167d7abf5f80882171e2cee125c5f12481d",
    "opencv:data/pca_test1.jpg": "9aae52b2bf730216f7e46c662f612a417ebd43642e742e7f867f33aa734293cd",
    "opencv:data/ela_original.jpg": "b55798b35e2dcb24675f0865a2442d0e4887eeb6aff322ecb1968d936cc23e7f",
    "opencv:data/ela_modified.jpg": "dadebbf9714f269aea5baca2de8bfa7c01c26f867dbfbd6502836bb8d95efc1d",
    "opencv:data/licenseplate_motion.jpg": "ea6fa9cea75df91bec656d1d3b903111a9c0708c6a3b88f405a5156de38ff9d6",
    "opencv:data/rubberwhale1.png": "eb312435369dac9efcc92f7e098edbd9ed8d7e6dfede8b3b4d8e3702cd80b796",
    "opencv:data/rubberwhale2.png": "ee309a00d47b837b322ea5d9128775e0c46869b8014376286ba316a073d293ac",
    "opencv:data/aloeL.jpg": "cce5736808efe80d9f04b118dbb978c344d4345672b332718c3e039a3eeb8eee",
    "opencv:data/aloeR.jpg": "9b23100df31a846bc6e6a6545563b2b4120b948c9835c7d36cde00af77f4503e",
    "opencv:data/Blender_Suzanne1.jpg": "bc3330e78e3456688e22b62fe033b8b2444fd016df567b1782bcc9baaead8e02",
    "opencv:data/Blender_Suzanne2.jpg": "6c0777ab795b888703857312916bd6275e04a79e55f84f00c5b8cfdb60cbaf40",
    "opencv:data/cards.png": "3721e83d1d54b1c2867cc9924f06112dba28cb7a54149938ad065999dec39235",
    "opencv:data/sudoku.png": "000cf81b7ce795013ae02bc9dfb0952aa34153c8c0e7fc99c81918e0738d1f09",
    "opencv:data/text_defocus.jpg": "ffea13e23e2bdce60e50e43e5950d76d542a61a820c03c28fbb8f11b26edfdb6",
    "opencv:data/text_motion.jpg": "85b43c44379fc4906c8feb0ba4ca701edce862c9aa6eb171d513929fbab19807",
    "opencv:hfs/data/000.jpg": "e4fec7e2e67a8a425b512dc32452825655b11c7fa83326ae509c5c7ab138da9a",
    "opencv:hfs/data/001.jpg": "4bcbe0927a8b50f2487463894328da66cddf37f2daa88448258b72892d1f7a23",
    "opencv:hfs/data/002.jpg": "21b07a5287dec0306846191abf720c352e57b2c6b42bb30885c9deb02664ada7",
    "opencv:text/scenetext02.jpg": "d4295bff9f348012f91a2cf745753124f85041fe3c3717146c6759c4cd977211",
    "opencv:text/scenetext04.jpg": "28e08d142a04f92f96d01ff2674f7804321841cba95bd968980cdc85ef0af6df",
    "opencv:dnn_superres/butterfly.png": "1c50e61afddd60ebb3829d85187f4e46c9eb8fd8249237ddf0c8904a3286598d",
    "opencv:fuzzy/input.png": "322d2c50acc95607cfb2f36a267f0f0cd02b37a93241fb796e1b5f7635fcd365",
    "opencv:ximgproc/stanford.png": "e612ec800bb132d8f875e246a97277a75cfb5fc13c5a09390c455b9f6ebe66fa",
    "skimage:rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    "skimage:hubble_deep_field.jpg": "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
    "skimage:coins.png": "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba",
    "skimage:grass.png": "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89",
    "skimage:gravel.png": "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12",
    "skimage:brick.png": "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
    "skimage:moon.png": "78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577",
    "skimage:retina.jpg": "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6",
    "skimage:ihc.png": "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
    "skimage:cell.png": "8d23a7fb81f7cc877cd09f330357fc7f595651306e84e17252f6e0a1b3f61515",
    "skimage:clock_motion.png": "f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955",
    "skimage:page.png": "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3",
}

# name -> keyword arguments of onnxruntime.quantization.quantize_static (nodes_to_exclude added).
VARIANTS = {
    "qdq": dict(quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8),
    "qop": dict(quant_format=QuantFormat.QOperator, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8),
    "qop-conv": dict(quant_format=QuantFormat.QOperator, per_channel=False, op_types_to_quantize=["Conv"],
                     activation_type=QuantType.QInt8, weight_type=QuantType.QInt8),
    "qop-conv-pc": dict(quant_format=QuantFormat.QOperator, per_channel=True, op_types_to_quantize=["Conv"],
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8),
    # Only each Conv's input and weights are quantized, its output stays float: QDQ from
    # onnxruntime, then rewritten by to_conv_integer() into ConvInteger -> Add(i32 bias) -> Cast -> Mul.
    "convint": dict(quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=["Conv"],
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"OpTypesToExcludeOutputQuantization": ["Conv"]},
                    rewrite="conv_integer"),
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_cache():
    return os.path.join(os.path.expanduser("~"), ".cache", "yolod-images")


def _package_dir(cache, source):
    """Fetches and unpacks one source package into cache/<source>/ (once)."""
    kind, spec, _ = SOURCES[source]
    root = os.path.join(cache, source)
    done = os.path.join(root, ".unpacked")
    if os.path.exists(done):
        return root
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "pypi":
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--only-binary=:all:", "-d", tmp, spec], check=True)
            (wheel,) = [f for f in os.listdir(tmp) if f.endswith(".whl")]
            with zipfile.ZipFile(os.path.join(tmp, wheel)) as z:
                prefix = SOURCES[source][2]
                z.extractall(root, [m for m in z.namelist() if m.startswith(prefix)])
        else:
            # apt-get download needs a current package list (apt-get update) and writes to the cwd.
            subprocess.run(["apt-get", "download", spec], check=True, cwd=tmp)
            (deb,) = [f for f in os.listdir(tmp) if f.endswith(".deb")]
            subprocess.run(["dpkg-deb", "-x", os.path.join(tmp, deb), root], check=True)
    open(done, "w").close()
    return root


def fetch_images(names, cache=None):
    """Paths of the named images ("source:relative/path" -> sha256 dict), fetched and verified."""
    cache = cache or default_cache()
    paths = []
    for name, digest in names.items():
        source, rel = name.split(":", 1)
        path = os.path.join(_package_dir(cache, source), SOURCES[source][2], rel)
        got = sha256(path)
        if got != digest:
            raise SystemExit(f"{name}: sha256 {got}, expected {digest}")
        paths.append(path)
    return paths


def load_bgr(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)  # grey and RGBA images become 3-channel BGR
    if img is None:
        raise SystemExit(f"cannot read {path}")
    return img


class Calibration(CalibrationDataReader):
    def __init__(self, paths, size=SIZE):
        self.paths, self.size, self.i = paths, size, 0

    def get_next(self):
        if self.i >= len(self.paths):
            return None
        blob = letterbox(load_bgr(self.paths[self.i]), self.size)
        self.i += 1
        return {"images": blob}

    def rewind(self):
        self.i = 0


def decode_nodes(model):
    """Nodes that must stay float: all of /model.22/ but its Conv nodes, plus everything
    downstream of the three raw head maps (which includes the DFL's fixed conv)."""
    g = model.graph
    downstream, tensors = set(), set(HEAD_MAPS)
    for node in g.node:  # ONNX graphs are topologically sorted
        if tensors.intersection(node.input):
            downstream.add(node.name)
            tensors.update(node.output)
    head = {n.name for n in g.node if n.name.startswith("/model.22/") and n.op_type != "Conv"}
    producers = {n.name for n in g.node if set(n.output) & set(HEAD_MAPS)}
    return sorted(head | downstream | producers)


def to_conv_integer(model):
    """Rewrites each QDQ Conv  DQ(x_q) * DQ(w_q) + DQ(b_q)  (an onnxruntime QDQ graph whose Conv
    outputs are not quantized) into  ConvInteger(x_q, w_q) -> Add(b_q, i32) -> Cast(f32) -> Mul(s_x * s_w).

    Same arithmetic (integer products summed exactly, rescaled in float), but in a form that
    tract 0.23.9 imports as an integer convolution (Conv with q_params = i32) instead of
    dequantizing the weights and running a float conv. Each Conv's output keeps its name."""
    from onnx import helper, numpy_helper
    g = model.graph
    init = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}

    def const(name):
        return numpy_helper.to_array(init[name])

    def dq_of(tensor):
        n = producer.get(tensor)
        return n if n is not None and n.op_type == "DequantizeLinear" else None

    new_nodes, new_inits, rewritten = [], [], 0
    for node in g.node:
        x_dq = dq_of(node.input[0]) if node.op_type == "Conv" else None
        w_dq = dq_of(node.input[1]) if x_dq is not None else None
        if x_dq is None or w_dq is None or w_dq.input[0] not in init:
            new_nodes.append(node)
            continue
        name, out = node.name, node.output[0]
        x_q, x_scale, x_zp = x_dq.input[0], float(const(x_dq.input[1])), x_dq.input[2]
        w_scale = const(w_dq.input[1]).astype(np.float32).reshape(-1)
        w_zp = const(w_dq.input[2])
        if np.any(w_zp != 0):
            raise SystemExit(f"{name}: weights are not symmetric")
        cout = const(w_dq.input[0]).shape[0]
        scale = np.broadcast_to(np.float32(x_scale) * w_scale, (cout,)).astype(np.float32)
        # The bias, as onnxruntime quantized it: int32 with scale s_x * s_w, so it adds to the
        # integer accumulator before the rescale (and tract fuses that add into its matmul).
        b_dq = dq_of(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if b_dq is not None and np.allclose(const(b_dq.input[1]).reshape(-1), scale, rtol=1e-6, atol=0):
            b_i32 = const(b_dq.input[0]).astype(np.int32)
        elif len(node.input) > 2 and node.input[2]:
            b = const(node.input[2]).astype(np.float64) if b_dq is None else \
                const(b_dq.input[0]).astype(np.float64) * const(b_dq.input[1]).astype(np.float64)
            b_i32 = np.round(b / scale.astype(np.float64)).astype(np.int32)
        else:
            b_i32 = np.zeros(cout, np.int32)
        zero_w = f"{name}.w_zero_point"
        new_inits += [
            numpy_helper.from_array(np.zeros((), np.int8), zero_w),
            numpy_helper.from_array(b_i32.reshape(1, cout, 1, 1), f"{name}.bias"),
            numpy_helper.from_array(scale.reshape(1, cout, 1, 1), f"{name}.rescale"),
        ]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        new_nodes += [
            helper.make_node("ConvInteger", [x_q, w_dq.input[0], x_zp, zero_w], [f"{out}.acc"],
                             name=f"{name}.int", **attrs),
            helper.make_node("Add", [f"{out}.acc", f"{name}.bias"], [f"{out}.i32"], name=f"{name}.bias_add"),
            helper.make_node("Cast", [f"{out}.i32"], [f"{out}.f32"], name=f"{name}.cast", to=onnx.TensorProto.FLOAT),
            helper.make_node("Mul", [f"{out}.f32", f"{name}.rescale"], [out], name=name),
        ]
        rewritten += 1
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(new_inits)
    # drop the now unused DequantizeLinear nodes and initializers
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type == "DequantizeLinear" and not used.intersection(n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.value_info[:]
    print(f"rewrote {rewritten} Conv into ConvInteger", file=sys.stderr)
    onnx.checker.check_model(model)
    return model


def check_head(path):
    """The quantized graph still has the three head maps yolod cuts at, as float tensors
    produced by the Concats that feed the head's Reshapes."""
    m = onnx.load(path)
    producers = {o: n for n in m.graph.node for o in n.output}
    for t in HEAD_MAPS:
        n = producers.get(t)
        if n is None or n.op_type != "Concat":
            raise SystemExit(f"{path}: {t} is not a Concat output any more")


def quantize(src, dst, variant, calib_paths, method):
    model = onnx.load(src)
    exclude = decode_nodes(model)
    kwargs = dict(VARIANTS[variant])
    rewrite = kwargs.pop("rewrite", None)
    # No CalibMaxIntermediateOutputs: in onnxruntime 1.32 (calibrate.py, MinMaxCalibrater.collect_data)
    # reaching that limit clears the collected ranges instead of merging them, so only the
    # last chunk of images would count. MinMax collects per-tensor ReduceMin/Max scalars only,
    # so memory is no concern without it.
    extra = dict(kwargs.pop("extra_options", {}))
    quantize_static(src, dst, Calibration(calib_paths), nodes_to_exclude=exclude,
                    calibrate_method=method, extra_options=extra, **kwargs)
    # keep Ultralytics' metadata (names, stride...) that yolod reads
    q = onnx.load(dst)
    if rewrite == "conv_integer":
        q = to_conv_integer(q)
    # onnxruntime records the 640x640 intermediate shapes as value_info; they would pin the
    # cut graph to 640 (tract refuses other sizes), and the fp32 export has none.
    del q.graph.value_info[:]
    if not any(p.key == "names" for p in q.metadata_props):
        q.metadata_props.extend(model.metadata_props)
    onnx.save(q, dst)
    check_head(dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(HERE, "yolov8n.onnx"))
    ap.add_argument("--out", default=os.path.join(HERE, "int8"))
    ap.add_argument("--cache", default=default_cache(), help="where the image packages are unpacked")
    ap.add_argument("--only", action="append", choices=sorted(VARIANTS), help="variant(s) to make (default all)")
    ap.add_argument("--method", default="MinMax", choices=["MinMax", "Percentile", "Entropy"])
    args = ap.parse_args()
    paths = fetch_images(CALIBRATION, args.cache)
    print(f"{len(paths)} calibration images", file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    method = getattr(CalibrationMethod, args.method)
    for variant in args.only or VARIANTS:
        dst = os.path.join(args.out, f"yolov8n-{variant}.onnx")
        quantize(args.model, dst, variant, paths, method)
        print(f"{sha256(dst)}  {os.path.relpath(dst)}  ({os.path.getsize(dst)} bytes)")


if __name__ == "__main__":
    main()
