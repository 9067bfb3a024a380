#!/usr/bin/env bash
# Scratch setup for ncnn on the emulated cores (nothing here is committed):
# an aarch64 CPython 3.11 from Debian (apt-get download, needs
# `dpkg --add-architecture arm64 && apt-get update` once), PyPI's ncnn
# aarch64 wheel for it, and pnnx (PyPI, x86_64) to convert the head-map
# cut of yolov8n.onnx (bench/ort_aarch64/cut_models.py) to ncnn.
#
#   bench/ncnn_aarch64/setup.sh DIR CUT_DIR
#
# Then, e.g.:
#   python3 bench/aarch64_cycles.py --board pi5 --size 640 --label "ncnn fp32 yolov8n" \
#     --qemu-env PYTHONHOME=DIR/root/usr --qemu-env PYTHONPATH=DIR/site \
#     --qemu-env LD_LIBRARY_PATH=DIR/root/lib/aarch64-linux-gnu:DIR/root/usr/lib/aarch64-linux-gnu \
#     --command "DIR/root/usr/bin/python3.11 -S -s bench/ncnn_aarch64/run.py \
#       DIR/conv/yolov8n_cut.ncnn.param DIR/conv/yolov8n_cut.ncnn.bin 640 {n} {maps}"
set -euo pipefail
dir="$1" cut="$2"
NCNN_VERSION="${NCNN_VERSION:-1.0.20250503}"   # the newest with a cp311 aarch64 wheel
PNNX_VERSION="${PNNX_VERSION:-20261020}"
mkdir -p "$dir/debs" "$dir/root" "$dir/site" "$dir/conv"
cd "$dir/debs"
apt-get download python3.11-minimal:arm64 libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64 \
    zlib1g:arm64 libexpat1:arm64
for d in *.deb; do dpkg-deb -x "$d" "$dir/root"; done
cd "$dir"
pip download -q --no-deps --only-binary=:all: --platform manylinux2014_aarch64 --python-version 3.11 \
    "ncnn==$NCNN_VERSION" -d .
unzip -q -o "ncnn-$NCNN_VERSION-"*.whl -d site
pip download -q --no-deps --only-binary=:all: "pnnx==$PNNX_VERSION" -d .
unzip -q -o "pnnx-$PNNX_VERSION-"*.whl 'pnnx/pnnx' -d pnnxbin
chmod +x pnnxbin/pnnx/pnnx
cp "$cut/yolov8n-cut.onnx" conv/
cd conv
../pnnxbin/pnnx/pnnx yolov8n-cut.onnx inputshape=[1,3,640,640] inputshape2=[1,3,320,320] > pnnx.log 2>&1
ls -l "$dir/conv/yolov8n_cut.ncnn.param" "$dir/conv/yolov8n_cut.ncnn.bin"
sha256sum "$dir"/debs/*.deb "$dir"/*.whl
