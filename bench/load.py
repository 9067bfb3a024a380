#!/usr/bin/env python3
"""Loopback load on `yolod serve`: N clients posting an image for T seconds.

Starts the binary itself (so it can read its RSS and open files), prints
throughput, p50/p99 latency, status counts (only 200 and 503-with-Retry-After
are allowed), RSS and open file descriptors at 10 s and at the end (RSS drift
must stay under 10%, the fd count must not grow).

    python3 bench/load.py --clients 4 --seconds 60 [--bin PATH] [--size 320]

The soak (issue: reliability): mixed sizes over both APIs, beside a camera.

    python3 bench/load.py --clients 4 --seconds 600 --mixed --camera

What a client cycling `size` through 32..1280 costs the others: run twice,
without and with `--cyclers 1` (that many extra clients, each asking for the
next size, 32 to 1280 in steps of 32, every request), and compare the fixed
clients' throughput; the cyclers' statuses show the plan-build cap (503).

    python3 bench/load.py --clients 2 --seconds 90 --cyclers 1
"""
import argparse
import http.client
import os
import socket
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "x86_64-unknown-linux-musl", "release", "yolod"))
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--image", default=os.path.join(ROOT, "tests", "fixtures", "images", "bus.jpg"))
    ap.add_argument("--mixed", action="store_true",
                    help="each client cycles sizes 320/480/640 and the HUB and DeepStack APIs")
    ap.add_argument("--cyclers", type=int, default=0,
                    help="extra clients that ask for a new size (32..1280) on every request")
    ap.add_argument("--camera", action="store_true",
                    help="also run a camera: ffmpeg looping the image as MJPEG at 5 fps (exec:)")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [args.bin, "serve", "--listen", f"127.0.0.1:{port}"]
    if args.camera:
        command += ["--camera", f"exec:ffmpeg -nostdin -loglevel error -re -loop 1 -framerate 5 -i '{args.image}' "
                    "-f mjpeg -q:v 4 -", "--fps", "5", "--size", "320", "--emit", "changes"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "yolod: ready on" in line:
            break
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    body = open(args.image, "rb").read()
    lock = threading.Lock()
    latencies, statuses, bad = [], {}, []
    deadline = time.monotonic() + args.seconds

    boundary = "yolodsoak"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    requests = [("/v1/predict?size={size}", body, "image/jpeg")]
    if args.mixed:
        requests.append(("/v1/vision/detection", form, f"multipart/form-data; boundary={boundary}"))
    sizes = [320, 480, 640] if args.mixed else [args.size]

    cycler_statuses, cycler_ok = {}, [0]

    def cycler(index):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        n = index * 7
        while time.monotonic() < deadline:
            n += 1
            size = 32 * (1 + n % 40)
            conn.request("POST", f"/v1/predict?size={size}", body, {"Content-Type": "image/jpeg"})
            resp = conn.getresponse()
            resp.read()
            with lock:
                cycler_statuses[resp.status] = cycler_statuses.get(resp.status, 0) + 1
                cycler_ok[0] += resp.status == 200
                if resp.status not in (200, 503):
                    bad.append(resp.status)
            if resp.status == 503:
                time.sleep(float(resp.getheader("Retry-After") or 1))

    def client(index):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = index
        while time.monotonic() < deadline:
            n += 1
            path, payload, kind = requests[n % len(requests)]
            path = path.format(size=sizes[(n // len(requests)) % len(sizes)])
            t = time.monotonic()
            conn.request("POST", path, payload, {"Content-Type": kind})
            resp = conn.getresponse()
            resp.read()
            dt = time.monotonic() - t
            with lock:
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 200:
                    latencies.append(dt)
                elif not (resp.status == 503 and resp.getheader("Retry-After")):
                    bad.append(resp.status)
            if resp.status == 503:
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    threads += [threading.Thread(target=cycler, args=(i,)) for i in range(args.cyclers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(min(10, args.seconds / 2))
    rss_10, fds_10 = rss_kib(proc.pid), len(os.listdir(f"/proc/{proc.pid}/fd"))
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    rss_end, fds_end = rss_kib(proc.pid), len(os.listdir(f"/proc/{proc.pid}/fd"))
    proc.terminate()
    proc.wait(timeout=30)
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
    drift = (rss_end - rss_10) / rss_10
    print(f"clients {args.clients}, {elapsed:.0f} s, size {args.size}: {len(latencies) / elapsed:.1f} req/s, "
          f"p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms, statuses {statuses}, "
          f"RSS {rss_10 / 1024:.1f} MiB at 10 s -> {rss_end / 1024:.1f} MiB at end ({drift:+.1%}), "
          f"open fds {fds_10} -> {fds_end}, exit {proc.returncode}"
          + (" (with sizes 320/480/640 over both APIs)" if args.mixed else "")
          + (" (beside a 5 fps camera)" if args.camera else "")
          + (f"; {args.cyclers} size cyclers: {cycler_ok[0] / elapsed:.2f} req/s answered, statuses {cycler_statuses}"
             if args.cyclers else ""))
    # Growth is what would show a leak; allocator trimming after warm-up shows as a drop.
    if bad or drift >= 0.10 or fds_end > fds_10 or proc.returncode != 0:
        raise SystemExit(f"FAILED: unexpected statuses {bad[:5]}, RSS drift {drift:+.1%}, "
                         f"fds {fds_10} -> {fds_end} or exit {proc.returncode}")


if __name__ == "__main__":
    main()
