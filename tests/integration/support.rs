//! Test fixtures: start the real `yolod` binary on a free port, talk HTTP to
//! it, read answers back through test-side types, compare with golden files.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

pub const BIN: &str = env!("CARGO_BIN_EXE_yolod");

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

pub fn image(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("images/{name}"))).unwrap()
}

/// A running `yolod serve`, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub stderr: Arc<Mutex<String>>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Self::start_env(args, &[])
    }

    /// Starts `yolod serve ARGS` and waits until /healthz answers.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").args(["--listen", &listen]).args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting yolod");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut server = Server { child, base: format!("http://{listen}"), stderr };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if server.stderr.lock().unwrap().contains("yolod: ready on") {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("yolod exited with {status} before ready:\n{}", server.stderr.lock().unwrap());
            }
            assert!(Instant::now() < deadline, "yolod did not become ready:\n{}", server.stderr.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit (after a signal), returning its code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer as the test sees it.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> ApiResponse {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not API JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn detections(&self) -> Vec<Detection> {
        let r = self.json();
        assert!(r.success, "{}", r.message);
        serde_json::from_value(r.data).unwrap()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn answer(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut resp = resp.expect("HTTP exchange");
    let status = resp.status().as_u16();
    let headers =
        resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = resp.body_mut().with_config().limit(64 << 20).read_to_vec().unwrap();
    Answer { status, headers, body }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.call())
}

pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.send(body))
}

pub fn request(method: &str, url: &str) -> Answer {
    let req = ureq::http::Request::builder().method(method).uri(url).body(()).unwrap();
    answer(agent().run(req))
}

/// A multipart body the way Python `requests` builds it: files get a
/// filename and a content type, data fields are bare.
pub struct Multipart {
    pub boundary: String,
    pub body: Vec<u8>,
}

impl Multipart {
    pub fn new() -> Multipart {
        Multipart { boundary: "a1b2c3d4e5f6".into(), body: Vec::new() }
    }

    pub fn field(mut self, name: &str, value: &str) -> Self {
        let head = format!("--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n", self.boundary);
        self.body.extend_from_slice(head.as_bytes());
        self.body.extend_from_slice(value.as_bytes());
        self.body.extend_from_slice(b"\r\n");
        self
    }

    pub fn file(mut self, name: &str, filename: &str, data: &[u8]) -> Self {
        let head = format!(
            "--{}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n",
            self.boundary
        );
        self.body.extend_from_slice(head.as_bytes());
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (format!("multipart/form-data; boundary={}", self.boundary), self.body)
    }
}

#[derive(Debug, Deserialize)]
pub struct ApiResponse {
    pub success: bool,
    pub message: String,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BoxJson {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl BoxJson {
    pub fn iou(&self, o: &BoxJson) -> f64 {
        let w = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let h = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        let inter = w * h;
        let area = |b: &BoxJson| (b.x2 - b.x1) * (b.y2 - b.y1);
        inter / (area(self) + area(o) - inter)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Detection {
    pub name: String,
    pub class: usize,
    pub confidence: f64,
    #[serde(rename = "box")]
    pub bbox: BoxJson,
}

/// A JSON array of numbers.
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// A golden file: per test image, the reference's objects (as `T`).
#[derive(Deserialize)]
pub struct Golden<T> {
    pub images: Vec<GoldenImage<T>>,
}

#[derive(Deserialize)]
pub struct GoldenImage<T> {
    pub image: String,
    pub data: Vec<T>,
}

/// The reference detections (onnxruntime, tests/reference/golden.py) for `image` at `size`.
pub fn golden(size: u32, image: &str) -> Vec<Detection> {
    let text = std::fs::read_to_string(fixture(&format!("golden/yolov8n-{size}.json"))).unwrap();
    let golden: Golden<Detection> = serde_json::from_str(&text).unwrap();
    golden.images.into_iter().find(|i| i.image == image).expect("image in golden file").data
}

/// Every reference object with confidence >= 0.3 is matched by one of `got`:
/// same class, IoU >= 0.9, |confidence difference| <= 0.03.
pub fn assert_matches_golden(got: &[Detection], reference: &[Detection]) {
    for r in reference.iter().filter(|r| r.confidence >= 0.3) {
        let best = got
            .iter()
            .filter(|g| g.class == r.class)
            .max_by(|a, b| a.bbox.iou(&r.bbox).total_cmp(&b.bbox.iou(&r.bbox)));
        let Some(g) = best else { panic!("reference {r:?} not found in {got:#?}") };
        let iou = g.bbox.iou(&r.bbox);
        assert!(iou >= 0.9, "IoU {iou:.3} for {r:?} vs {g:?}");
        assert!(
            (g.confidence - r.confidence).abs() <= 0.03,
            "confidence {} vs {} for {}",
            g.confidence,
            r.confidence,
            r.name
        );
    }
}
