#!/usr/bin/env python3
"""What a page viewer costs: yolod's CPU time with nobody watching a camera,
then with one viewer of its MJPEG stream, plain and annotated, in the same
run and on the same camera (ffmpeg looping bus.jpg through exec: at FPS).

usage: bench/viewer_cost.py YOLOD_BINARY [--seconds S] [--fps FPS] [--size N]

CPU time is yolod's own (utime + stime of its process from /proc, all its
threads; ffmpeg, a separate process, is not counted). Each phase runs S
seconds after a settling second. Prints CPU seconds per wall second, frames
processed and pictures encoded per phase, and each viewer phase's ratio to
the phase without a viewer.
"""
import argparse
import os
import socket
import subprocess
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUS = os.path.join(ROOT, "tests", "fixtures", "images", "bus.jpg")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def metric(base, prefix):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise SystemExit(f"no metric {prefix}")


class Viewer(threading.Thread):
    """Reads the MJPEG stream as fast as it comes, and throws it away."""

    def __init__(self, port, query):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"GET /v1/stream.mjpeg?{query} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        self.bytes = 0
        self.start()

    def run(self):
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                self.bytes += len(chunk)
        except OSError:
            return

    def close(self):
        self.sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=5)
    ap.add_argument("--size", type=int, default=320)
    args = ap.parse_args()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    base = f"http://127.0.0.1:{port}"
    camera = (
        f"exec:ffmpeg -nostdin -loglevel error -re -loop 1 -framerate {args.fps} -i {BUS} -f mjpeg -q:v 4 -"
    )
    proc = subprocess.Popen(
        [args.binary, "serve", "--listen", f"127.0.0.1:{port}", "--camera", camera, "--size", str(args.size),
         "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processed = 'yolod_camera_frames_total{camera="ffmpeg",kind="processed"}'
    encoded = 'yolod_camera_frames_encoded_total{camera="ffmpeg"}'
    try:
        deadline = time.time() + 120
        while True:
            try:
                if metric(base, processed) >= 3:
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit("yolod did not start processing frames")
            time.sleep(0.2)
        print(f"viewer cost: bus.jpg (810x1080) at {args.fps} fps, --size {args.size}, 1 worker, "
              f"{args.seconds:.0f} s per phase")
        results = {}
        for phase, query in [("no viewer", None), ("plain viewer", "camera=ffmpeg"),
                             ("annotated viewer", "camera=ffmpeg&annotate=true")]:
            viewer = Viewer(port, query) if query else None
            time.sleep(1.0)
            c0, f0, e0, t0 = cpu_seconds(proc.pid), metric(base, processed), metric(base, encoded), time.time()
            time.sleep(args.seconds)
            c1, f1, e1, t1 = cpu_seconds(proc.pid), metric(base, processed), metric(base, encoded), time.time()
            if viewer:
                viewer.close()
            wall = t1 - t0
            load = (c1 - c0) / wall
            results[phase] = load
            print(f"  {phase:17s} cpu {load:.3f} s/s  frames {f1 - f0:4.0f}  encoded {e1 - e0:4.0f}"
                  + (f"  received {viewer.bytes / 1e6:.1f} MB" if viewer else ""))
            time.sleep(1.0)
        base_load = results["no viewer"]
        for phase in ("plain viewer", "annotated viewer"):
            print(f"  {phase}: {results[phase] / base_load:.2f}x the CPU of no viewer "
                  f"(+{(results[phase] - base_load) * 1000 / args.fps:.1f} ms of CPU per frame)")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
