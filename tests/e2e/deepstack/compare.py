"""Compares a DeepStack client's detections with yolod's HUB route for the
same images and threshold: same classes in the same order, every corner
within 1 px of the HUB box after rounding.

usage: compare.py WHO PORT CONFIDENCE CLIENT_JSON IMAGE...
"""
import json
import os
import sys
import urllib.request


def hub(port, confidence, path):
    with open(path, "rb") as f:
        body = f.read()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/predict?confidence={confidence}",
        data=body,
        headers={"Content-Type": "image/jpeg"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["data"]


def main():
    who, port, confidence, client_json, *images = sys.argv[1:]
    got = json.loads(client_json)
    if "error" in got:
        sys.exit(f"{who}: the client failed: {got['error']}")
    for path in images:
        name = os.path.basename(path)
        mine, theirs = got[name], hub(port, confidence, path)
        labels = [p["label"] for p in mine]
        if labels != [d["name"] for d in theirs]:
            sys.exit(f"{who} {name}: classes {labels} but the HUB route says {[d['name'] for d in theirs]}")
        for p, d in zip(mine, theirs):
            b = d["box"]
            corners = zip((p["x_min"], p["y_min"], p["x_max"], p["y_max"]), (b["x1"], b["y1"], b["x2"], b["y2"]))
            far = [(a, h) for a, h in corners if not isinstance(a, int) or abs(a - round(h)) > 1]
            if far:
                sys.exit(f"{who} {name}: {p} is not within 1 px of the HUB box {b}")
        print(f"{who} {name}: {len(mine)} objects ({', '.join(labels)}) = HUB route")


main()
