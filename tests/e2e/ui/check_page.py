#!/usr/bin/env python3
"""The page in a real browser: Debian's headless Chromium driven through
chromedriver's WebDriver API (plain HTTP and JSON, no client library).

usage: check_page.py YOLOD_BINARY OUTPUT_DIR

1. yolod serve with a camera (ffmpeg looping bus.jpg through exec:): the
   page loads, the camera tile shows a decoded picture, and its object list
   names the bus and the people. bus.jpg is uploaded through the try-it
   form; the objects the page lists are the ones the API returns for the
   same request. Screenshots go to OUTPUT_DIR.
2. yolod serve with a key file: the page shows only the sign-in form, and
   nothing of the cameras or models; after signing in with the key, the
   camera tile shows its picture.
"""
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUS = os.path.join(ROOT, "tests", "fixtures", "images", "bus.jpg")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait(what, check, timeout=60.0):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise SystemExit(f"FAIL: timed out waiting for {what}")
        time.sleep(0.25)


class Yolod:
    def __init__(self, binary, workdir, extra):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        camera = (
            "exec:ffmpeg -nostdin -loglevel error -re -loop 1 -framerate 4 "
            f"-i {BUS} -f mjpeg -q:v 4 -"
        )
        self.log = open(os.path.join(workdir, f"yolod-{self.port}.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--camera", camera, "--size", "320"] + extra,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait("yolod to answer", self.alive)

    def alive(self):
        try:
            urllib.request.urlopen(self.base + "/healthz", timeout=2).read()
            return True
        except (urllib.error.URLError, ConnectionError):
            if self.proc.poll() is not None:
                raise SystemExit(f"FAIL: yolod exited with {self.proc.returncode}")
            return False

    def predict(self, path, fields, key=None):
        """POST the picture as any API client would; the parsed answer."""
        boundary = uuid.uuid4().hex
        body = b""
        for name, value in fields:
            body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        with open(path, "rb") as f:
            body += (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bus.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode() + f.read() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if key:
            headers["x-api-key"] = key
        req = urllib.request.Request(self.base + "/v1/predict/yolov8n", data=body, headers=headers)
        return json.load(urllib.request.urlopen(req, timeout=60))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


class Browser:
    """One Chromium session through chromedriver (W3C WebDriver)."""

    def __init__(self, workdir):
        self.port = free_port()
        self.driver = subprocess.Popen(
            ["chromedriver", f"--port={self.port}"],
            stdout=open(os.path.join(workdir, "chromedriver.log"), "w"),
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        wait("chromedriver", lambda: self._ready())
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1200,1000",
                            f"--user-data-dir={workdir}/chromium-profile",
                        ],
                    },
                }
            }
        }
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _ready(self):
        try:
            return json.load(urllib.request.urlopen(self.base + "/status", timeout=2))["value"]["ready"]
        except (urllib.error.URLError, ConnectionError, KeyError):
            return False

    def _call(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            answer = json.load(urllib.request.urlopen(req, timeout=120))
        except urllib.error.HTTPError as e:
            raise SystemExit(f"FAIL: WebDriver {method} {path}: {e.read().decode()}")
        return answer["value"]

    def cmd(self, method, path, payload=None):
        return self._call(method, f"/session/{self.session}{path}", payload)

    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def type_into(self, css, text):
        self.cmd("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))
        print(f"screenshot: {path}")

    def quit(self):
        try:
            self.cmd("DELETE", "")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=20)


TILE_PICTURE = """
const img = document.querySelector('article.camera img.live');
return img && img.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : null;
"""
TILE_OBJECTS = """
return Array.from(document.querySelectorAll('article.camera [data-field="objects"] .label')).map(e => e.textContent);
"""
RESULT_OBJECTS = """
if (document.getElementById('result').hidden) return null;
return Array.from(document.querySelectorAll('#result-objects li')).map(
    li => [li.querySelector('.label').textContent, li.querySelector('.conf').textContent]);
"""


def open_camera_page(browser, yolod):
    browser.go(yolod.base + "/")
    size = wait("the camera tile to show a decoded picture", lambda: browser.js(TILE_PICTURE))
    # bus.jpg (810x1080), drawn at the scale the network read it (1/2 at --size 320).
    if size != [405, 540]:
        raise SystemExit(f"FAIL: the tile's picture is {size}, not bus.jpg at half its 810x1080")
    return size


def check_open_page(binary, workdir, out):
    yolod = Yolod(binary, workdir, [])
    browser = Browser(workdir)
    try:
        open_camera_page(browser, yolod)
        labels = wait(
            "the tile's object list",
            lambda: (lambda ls: ls if "bus" in ls and "person" in ls else None)(browser.js(TILE_OBJECTS)),
        )
        print(f"camera tile objects: {labels}")
        fps = wait("the tile's fps", lambda: (lambda t: t if t not in ("–", "") else None)(
            browser.js("return document.querySelector('[data-field=\"fps\"]').textContent")))
        print(f"camera tile fps: {fps}")

        # Try it: upload bus.jpg through the form, as a person would.
        browser.type_into("#file", BUS)
        browser.click("#try-form button[type=submit]")
        shown = wait("the try-it result", lambda: browser.js(RESULT_OBJECTS))
        api = yolod.predict(BUS, [("size", "640"), ("confidence", "0.25"), ("iou", "0.45")])
        expected = [[o["name"], o["confidence"]] for o in api["data"]]
        same = len(shown) == len(expected) and all(
            s[0] == e[0] and abs(float(s[1]) - e[1]) <= 0.0051 for s, e in zip(shown, expected)
        )
        if not same or not expected:
            raise SystemExit(f"FAIL: the page shows {shown}, the API returns {expected}")
        print(f"try-it shows the API's {len(expected)} objects: {[n for n, _ in expected]}")
        answer = json.loads(browser.js("return document.getElementById('result-json').textContent"))
        if answer != api:
            raise SystemExit("FAIL: the page's API JSON differs from the API's answer")
        curl = browser.js("return document.getElementById('result-curl').textContent")
        if "/v1/predict/yolov8n" not in curl or "-F 'file=@bus.jpg'" not in curl or "x-api-key" in curl:
            raise SystemExit(f"FAIL: the curl command is wrong: {curl}")
        browser.js("document.getElementById('try').scrollIntoView()")
        browser.screenshot(os.path.join(out, "try-it.png"))
        browser.js("window.scrollTo(0, 0)")
        browser.screenshot(os.path.join(out, "page.png"))
        # Keyboard: Tab reaches the skip link first, then the controls.
        focus = browser.js("document.activeElement.blur(); return document.querySelector('a.skip').tabIndex")
        if focus != 0:
            raise SystemExit("FAIL: the skip link is not focusable")
    finally:
        browser.quit()
        yolod.stop()


def check_keys(binary, workdir, out):
    keyfile = os.path.join(workdir, "keys")
    with open(keyfile, "w") as f:
        f.write("page-test-key\n")
    yolod = Yolod(binary, workdir, ["--api-key-file", keyfile])
    browser = Browser(workdir)
    try:
        browser.go(yolod.base + "/")
        text = browser.js("return document.body.innerText")
        has_login = browser.js("return !!document.getElementById('login')")
        leaks = [w for w in ("bus.jpg", "yolov8n", "Cameras", "Try it") if w in text]
        if not has_login or leaks or browser.js("return document.querySelectorAll('img').length") != 0:
            raise SystemExit(f"FAIL: signed out, the page shows more than the sign-in form: {leaks}\n{text}")
        browser.screenshot(os.path.join(out, "sign-in.png"))
        browser.type_into("#key", "wrong-key")
        browser.click("#login button[type=submit]")
        wait("the refusal", lambda: "not accepted" in browser.js("return document.body.innerText"))
        browser.type_into("#key", "page-test-key")
        browser.click("#login button[type=submit]")
        open_camera_page(browser, yolod)
        cookie_visible = browser.js("return document.cookie")
        if "yolod_session" in cookie_visible:
            raise SystemExit("FAIL: the session cookie is readable from scripts")
        print("keys on: the sign-in form only, then the camera after signing in")
    finally:
        browser.quit()
        yolod.stop()


def main():
    binary, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="yolod-ui-") as workdir:
        try:
            check_open_page(binary, workdir, out)
            check_keys(binary, workdir, out)
        except SystemExit:
            for name in os.listdir(workdir):
                if name.endswith(".log"):
                    with open(os.path.join(workdir, name)) as f:
                        print(f"--- {name}\n" + "".join(f.readlines()[-20:]))
            raise
    print("page: ok")


if __name__ == "__main__":
    main()
