"""What the DeepStack route costs over the HUB route: the same 320x320 JPEG
(a crop of bus.jpg) N times through each, interleaved, to one `yolod serve`
(1 worker); the HUB route with size=320, the DeepStack one choosing 320
itself. Prints the median wall time per request of each and their ratio.
Needs Pillow (the e2e venv has it: target/e2e-deepstack/venv/bin/python).

usage: bench/deepstack_cost.py [BIN] [N]
"""
import io
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from PIL import Image

binary = sys.argv[1] if len(sys.argv) > 1 else "target/x86_64-unknown-linux-musl/release/yolod"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
crop = io.BytesIO()
Image.open("tests/fixtures/images/bus.jpg").crop((100, 300, 420, 620)).save(crop, "JPEG", quality=90)
jpeg = crop.getvalue()
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--workers", "1"], stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"


def post(path, body, content_type):
    request = urllib.request.Request(base + path, data=body, headers={"Content-Type": content_type})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
    return time.perf_counter() - start


boundary = "b0undary"
form = (
    f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="image"\r\n\r\n'.encode()
    + jpeg
    + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="min_confidence"\r\n\r\n0.4\r\n--{boundary}--\r\n'.encode()
)
try:
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    hub = lambda: post("/v1/predict?size=320&confidence=0.4", jpeg, "image/jpeg")
    deepstack = lambda: post("/v1/vision/detection", form, f"multipart/form-data; boundary={boundary}")
    for _ in range(3):  # warm-up
        hub(), deepstack()
    times = {"hub": [], "deepstack": []}
    for _ in range(n):
        times["hub"].append(hub())
        times["deepstack"].append(deepstack())
    medians = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"{n} requests each, 320x320 JPEG, 1 worker: HUB size=320 median {medians['hub']:.1f} ms, "
          f"DeepStack median {medians['deepstack']:.1f} ms, ratio {medians['deepstack'] / medians['hub']:.3f}")
finally:
    server.terminate()
    server.wait()
