//! Camera sources beyond V4L2, fed by real producers on loopback: ffmpeg
//! writing MJPEG to a pipe (`exec:`, as rpicam-vid would) and serving it
//! over HTTP (`-f mpjpeg`, as IP cameras and go2rtc do), a plain static
//! HTTP server for a snapshot URL, and stdin. The footage is made of real
//! pictures (bus.jpg), so the lines carry real detections.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

pub(crate) fn need(program: &str) {
    let found = Command::new(program).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(found.is_ok(), "{program} is missing: tests/setup.sh installs it");
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An exec: source that loops bus.jpg as MJPEG at `fps`.
fn ffmpeg_exec(fps: u32) -> String {
    format!(
        "exec:ffmpeg -nostdin -loglevel error -re -loop 1 -framerate {fps} -i '{}' -f mjpeg -q:v 4 -",
        fixture("images/bus.jpg").display()
    )
}

/// ffmpeg serving bus.jpg as an MJPEG stream on `port` (one client, then it exits).
fn ffmpeg_http(port: u16) -> Child {
    need("ffmpeg");
    Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re", "-loop", "1", "-framerate", "5", "-i"])
        .arg(fixture("images/bus.jpg"))
        // The Content-Type IP cameras and go2rtc send (ffmpeg's own default is application/octet-stream).
        .args([
            "-f",
            "mpjpeg",
            "-content_type",
            "multipart/x-mixed-replace;boundary=ffmpeg",
            "-q:v",
            "4",
            "-listen",
            "1",
        ])
        .arg(format!("http://127.0.0.1:{port}/cam.mjpg"))
        .stdin(Stdio::null())
        .spawn()
        .expect("starting ffmpeg")
}

/// The JSON lines in `path` so far.
pub(crate) fn lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// Waits until `path` holds a line for `camera` that satisfies `ok`.
pub(crate) fn wait_for_line(path: &std::path::Path, camera: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(line) = lines(path).into_iter().rev().find(|l| l["camera"] == camera && ok(l)) {
            return line;
        }
        assert!(Instant::now() < deadline, "no line for {camera} with {what}: {:?}", lines(path));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn names(line: &Value) -> Vec<String> {
    line["data"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_string()).collect()
}

pub(crate) fn has_bus_and_person(line: &Value) -> bool {
    let n = names(line);
    n.iter().any(|x| x == "bus") && n.iter().any(|x| x == "person")
}

pub(crate) fn camera<'a>(readyz: &'a Value, name: &str) -> &'a Value {
    readyz["data"]["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{readyz}"))
}

pub(crate) fn readyz(server: &Server) -> Value {
    serde_json::from_slice(&get(&server.url("/readyz"), &[]).body).unwrap()
}

#[test]
fn an_exec_command_is_a_camera_and_a_bad_one_beside_it_stops_nothing() {
    need("ffmpeg");
    let dir = tempdir("exec");
    let log = dir.join("lines.jsonl");
    let server = Server::start(&[
        "--camera",
        &ffmpeg_exec(5),
        "--camera",
        "exec:yolod-no-such-command --flag",
        "--size",
        "320",
        "--log",
        log.to_str().unwrap(),
    ]);
    let line = wait_for_line(&log, "ffmpeg", "bus and person", has_bus_and_person);
    assert_eq!(line["source"].as_str().unwrap().split(' ').next(), Some("exec:ffmpeg"));
    let r = readyz(&server);
    assert_eq!(r["success"], true, "{r}");
    let bad = camera(&r, "yolod-no-such-command");
    assert_eq!(bad["connected"], false);
    assert!(bad["last_error"].as_str().unwrap().contains("command not found: yolod-no-such-command"), "{bad}");
    assert_eq!(camera(&r, "ffmpeg")["connected"], true);
    // The bad camera keeps being retried, and the good one keeps flowing.
    let before = lines(&log).len();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(lines(&log).len() > before);
    assert!(server.stderr.lock().unwrap().contains("camera yolod-no-such-command: command not found"));
    let metrics = String::from_utf8(get(&server.url("/metrics"), &[]).body).unwrap();
    assert!(metrics.contains("yolod_camera_connected{camera=\"ffmpeg\"} 1"), "{metrics}");
    // The network read the frame decoded at 1/2 in the DCT domain, but the
    // snapshot is the camera's own JPEG at full size (ffmpeg's encoder
    // signs it "Lavc"), and the annotated one is drawn on a full decode.
    let plain = get(&server.url("/v1/snapshot?camera=ffmpeg"), &[]);
    assert_eq!(plain.status, 200);
    assert!(plain.body.windows(4).any(|w| w == b"Lavc"), "not the camera's JPEG");
    let annotated = get(&server.url("/v1/snapshot?camera=ffmpeg&annotate=true"), &[]);
    assert_eq!(annotated.status, 200);
    assert!(!annotated.body.windows(4).any(|w| w == b"Lavc"), "not drawn on");
    for jpeg in [&plain.body, &annotated.body] {
        let picture = image::load_from_memory(jpeg).unwrap();
        assert_eq!((picture.width(), picture.height()), (810, 1080));
    }
}

#[test]
fn an_exec_command_that_dies_is_restarted_and_counted_with_no_line_lost() {
    need("ffmpeg");
    let dir = tempdir("restart");
    let log = dir.join("lines.jsonl");
    let server = Server::start(&["--camera", &ffmpeg_exec(5), "--size", "320", "--log", log.to_str().unwrap()]);
    wait_for_line(&log, "ffmpeg", "a frame", |_| true);
    let pid = child_pid_of(server.pid(), "ffmpeg");
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while camera(&readyz(&server), "ffmpeg")["reconnects"] != 1 {
        assert!(Instant::now() < deadline, "no reconnect: {}", readyz(&server));
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = lines(&log).last().unwrap()["frame"].as_u64().unwrap();
    wait_for_line(&log, "ffmpeg", "a frame after the restart", |l| l["frame"].as_u64().unwrap() > after + 2);
    let frames: Vec<u64> = lines(&log).iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[0] < w[1]), "{frames:?}");
    assert!(camera(&readyz(&server), "ffmpeg")["last_error"].as_str().unwrap().contains("ffmpeg exited"));
}

#[test]
fn after_kill_9_the_log_has_no_torn_line_the_command_died_too_and_a_restart_appends() {
    need("ffmpeg");
    let dir = tempdir("kill9");
    let log = dir.join("lines.jsonl");
    let source = ffmpeg_exec(30);
    let args = ["--camera", source.as_str(), "--size", "32", "--log", log.to_str().unwrap()];
    let mut server = Server::start(&args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&log).len() < 10 {
        assert!(Instant::now() < deadline, "too few lines: {}", lines(&log).len());
        std::thread::sleep(Duration::from_millis(50));
    }
    let ffmpeg = child_pid_of(server.pid(), "ffmpeg");
    assert!(Command::new("kill").args(["-9", &server.pid().to_string()]).status().unwrap().success());
    assert_eq!(server.wait_exit(Duration::from_secs(10)), None, "killed by a signal, no exit code");
    // The camera command is not left orphaned: the kernel ends it with yolod.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{ffmpeg}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(Instant::now() < deadline, "ffmpeg {ffmpeg} outlived yolod");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every line parses (lines() panics on a torn one), and a new run appends.
    let before = lines(&log).len();
    let _again = Server::start(&args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&log).len() < before + 5 {
        assert!(Instant::now() < deadline, "no new lines after the restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    let all = lines(&log);
    let (last_old, first_new) = (all[before - 1]["frame"].as_u64().unwrap(), all[before]["frame"].as_u64().unwrap());
    assert!(
        first_new < last_old && first_new <= 3,
        "the new run counts its frames afresh: {last_old} then {first_new}"
    );
}

#[test]
fn a_full_disk_loses_lines_counted_keeps_serving_and_writing_resumes_when_space_is_freed() {
    need("ffmpeg");
    let dir = tempdir("full");
    let (mnt, flag) = (dir.join("mnt"), dir.join("free-it"));
    std::fs::create_dir_all(&mnt).unwrap();
    let port = free_port();
    // A 128 KiB tmpfs, full before yolod starts, in a mount namespace of its
    // own (unshare -rm: no root needed); freed when the test says so.
    let script = format!(
        "mount -t tmpfs -o size=128k tmpfs {mnt} && (dd if=/dev/zero of={mnt}/filler bs=1k count=256 2>/dev/null || true)
         {bin} serve --listen 127.0.0.1:{port} --camera \"{source}\" --size 32 --log {mnt}/lines.jsonl &
         pid=$!
         while [ ! -e {flag} ]; do sleep 0.1; done
         rm {mnt}/filler
         wait $pid",
        mnt = mnt.display(),
        bin = BIN,
        source = ffmpeg_exec(10),
        flag = flag.display()
    );
    let mut shell =
        Command::new("unshare").args(["-rm", "sh", "-c", &script]).stderr(Stdio::piped()).spawn().expect("unshare");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = stderr.clone();
    let pipe = shell.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)).map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let failures = || {
        let metrics = String::from_utf8(get(&format!("{base}/metrics"), &[]).body).unwrap();
        let line = metrics.lines().find(|l| l.starts_with("yolod_log_write_failures_total ")).map(str::to_string);
        line.and_then(|l| l.split(' ').nth(1).and_then(|v| v.parse::<f64>().ok())).unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stderr.lock().unwrap().contains("ready on") || failures() < 2.0 {
        assert!(Instant::now() < deadline, "no write failures counted:\n{}", stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(&format!("{base}/readyz"), &[]).status, 200);
    let answer = post(&format!("{base}/v1/predict"), &[("Content-Type", "image/jpeg")], &image("bus.jpg"));
    assert_eq!(answer.status, 200);
    let said = stderr.lock().unwrap().matches("log stream write failed").count();
    assert_eq!(said, 1, "{}", stderr.lock().unwrap());
    // Space comes back: lines follow, whole.
    let yolod = child_pid_of(shell.id(), "yolod");
    std::fs::write(&flag, "").unwrap();
    let log = std::path::PathBuf::from(format!("/proc/{yolod}/root{}/lines.jsonl", mnt.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&log).len() < 3 {
        assert!(Instant::now() < deadline, "no lines after space was freed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let lost = failures();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(failures(), lost, "lines still lost after space was freed");
    let _ = Command::new("kill").arg(yolod.to_string()).status();
    let _ = shell.wait();
}

#[test]
fn an_mjpeg_stream_over_http_is_read_part_by_part_and_reconnected() {
    let port = free_port();
    let mut producer = ffmpeg_http(port);
    let dir = tempdir("http");
    let log = dir.join("lines.jsonl");
    let url = format!("http://127.0.0.1:{port}/cam.mjpg");
    let server = Server::start(&["--camera", &url, "--size", "320", "--log", log.to_str().unwrap()]);
    let line = wait_for_line(&log, "127-0-0-1-cam", "bus and person", has_bus_and_person);
    assert_eq!(line["source"], url.as_str());
    assert_eq!(camera(&readyz(&server), "127-0-0-1-cam")["format"], "MJPEG over HTTP");
    // The camera goes away and comes back.
    producer.kill().unwrap();
    producer.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while camera(&readyz(&server), "127-0-0-1-cam")["connected"] == true {
        assert!(Instant::now() < deadline, "still connected: {}", readyz(&server));
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut producer = ffmpeg_http(port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while camera(&readyz(&server), "127-0-0-1-cam")["reconnects"] != 1 {
        assert!(Instant::now() < deadline, "no reconnect: {}", readyz(&server));
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = lines(&log).last().unwrap()["frame"].as_u64().unwrap();
    wait_for_line(&log, "127-0-0-1-cam", "a frame after the reconnect", |l| l["frame"].as_u64().unwrap() > last);
    producer.kill().unwrap();
    let _ = producer.wait();
}

#[test]
fn a_snapshot_url_is_polled_with_credentials_from_a_file() {
    let port = free_port();
    let dir = tempdir("snapshot");
    let script = format!(
        r#"
import base64, http.server, sys
body = open({bus:?}, "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"viewer:s3cret").decode():
            self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers(); return
        self.send_response(200); self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", {port}), H).serve_forever()
"#,
        bus = fixture("images/bus.jpg").display().to_string()
    );
    let mut producer = Command::new("python3").args(["-c", &script]).spawn().unwrap();
    std::fs::write(dir.join("good"), "viewer:s3cret\n").unwrap();
    std::fs::write(dir.join("bad"), "viewer:wrong\n").unwrap();
    let config = dir.join("yolod.toml");
    let url = format!("http://127.0.0.1:{port}/snap.jpg");
    std::fs::write(
        &config,
        format!(
            "[[camera]]\nsource = \"{url}\"\nname = \"porch\"\ncredentials_file = \"{good}\"\nfps = 4\n\n\
             [[camera]]\nsource = \"{url}\"\nname = \"garage\"\ncredentials_file = \"{bad}\"\n",
            good = dir.join("good").display(),
            bad = dir.join("bad").display()
        ),
    )
    .unwrap();
    let log = dir.join("lines.jsonl");
    let server =
        Server::start(&["--config", config.to_str().unwrap(), "--size", "320", "--log", log.to_str().unwrap()]);
    wait_for_line(&log, "porch", "bus and person", has_bus_and_person);
    // Polled again and again: at 4 per second, several frames in 2 s.
    std::thread::sleep(Duration::from_secs(2));
    let porch = lines(&log).iter().filter(|l| l["camera"] == "porch").count();
    assert!(porch >= 4, "{porch} snapshot lines");
    let garage = camera(&readyz(&server), "garage").clone();
    assert!(garage["last_error"].as_str().unwrap().contains("refused the credentials (HTTP 401)"), "{garage}");
    let stderr = server.stderr.lock().unwrap().clone();
    assert!(!stderr.contains("s3cret") && !stderr.contains("wrong"), "{stderr}");
    producer.kill().unwrap();
    let _ = producer.wait();
}

#[test]
fn a_snapshot_url_behind_digest_authentication_is_answered_once_then_polled() {
    let port = free_port();
    let dir = tempdir("digest");
    // A camera that speaks only Digest (MD5, qop=auth, RFC 7616's rules
    // written out here) and prints each answer's status and path.
    let script = format!(
        r#"
import hashlib, http.server, os, re, sys
body = open({bus:?}, "rb").read()
md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
NONCE, seen = "5f1c0ab4d2", set()
def valid(header):
    if not header.startswith("Digest "): return False
    p = dict(re.findall(r'(\w+)="?([^",]*)"?', header))
    if p.get("username") != "viewer" or p.get("nonce") != NONCE: return False
    ha1, ha2 = md5("viewer:cam:s3cret"), md5("GET:" + p.get("uri", ""))
    if p.get("response") != md5(":".join([ha1, NONCE, p["nc"], p["cnonce"], p["qop"], ha2])): return False
    # A replayed answer (the same client nonce and count) is refused.
    if (p["cnonce"], p["nc"]) in seen: return False
    seen.add((p["cnonce"], p["nc"]))
    return True
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if not valid(self.headers.get("Authorization", "")):
            os.write(1, b"401 %s\n" % self.path.encode())
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Digest realm="cam", nonce="' + NONCE + '", qop="auth", algorithm=MD5')
            self.send_header("WWW-Authenticate", 'Basic realm="cam"')
            self.send_header("Content-Length", "0"); self.end_headers(); return
        os.write(1, b"200 %s\n" % self.path.encode())
        self.send_response(200); self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", {port}), H).serve_forever()
"#,
        bus = fixture("images/bus.jpg").display().to_string()
    );
    let mut producer = Command::new("python3").args(["-c", &script]).stdout(Stdio::piped()).spawn().unwrap();
    let log = dir.join("lines.jsonl");
    let good_path = "/ISAPI/Streaming/channels/101/picture";
    let good = format!("http://viewer:s3cret@127.0.0.1:{port}{good_path}");
    let bad = format!("http://viewer:wrong@127.0.0.1:{port}/snap.jpg");
    let server = Server::start(&[
        "--camera",
        &good,
        "--camera",
        &bad,
        "--fps",
        "4",
        "--size",
        "320",
        "--log",
        log.to_str().unwrap(),
    ]);
    let name = "127-0-0-1-picture";
    wait_for_line(&log, name, "bus and person", has_bus_and_person);
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines(&log).iter().filter(|l| l["camera"] == name).count() < 4 {
        assert!(Instant::now() < deadline, "snapshots are not polled: {:?}", lines(&log));
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = camera(&readyz(&server), "127-0-0-1-snap").clone();
    let why = refused["last_error"].as_str().unwrap();
    assert!(why.contains("refused the credentials (HTTP 401) sent as Digest"), "{refused}");
    drop(server);
    producer.kill().unwrap();
    let mut statuses = String::new();
    std::io::Read::read_to_string(&mut producer.stdout.take().unwrap(), &mut statuses).unwrap();
    let _ = producer.wait();
    // The good camera met one challenge; every poll after it went through
    // at once, with the nonce count going up (the server refuses a replay).
    let count = |status: &str| statuses.lines().filter(|l| *l == format!("{status} {good_path}")).count();
    assert!(count("200") >= 4, "{statuses}");
    assert_eq!(count("401"), 1, "{statuses}");
}

#[test]
fn capture_reads_mjpeg_on_stdin_until_it_ends() {
    let mut child = Command::new(BIN)
        .args(["capture", "--camera", "-", "--size", "320"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // One picture at a time, each after the last was processed: none replaced.
    let bus = image("bus.jpg");
    let writer = std::thread::spawn(move || {
        for _ in 0..2 {
            stdin.write_all(&bus).unwrap();
            std::thread::sleep(Duration::from_secs(3));
        }
        stdin.write_all(&bus[..bus.len() / 2]).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}\n{stderr}");
    assert!(lines.iter().all(|l| l["camera"] == "stdin" && has_bus_and_person(l)), "{lines:?}");
    assert!(stderr.contains("2 frames captured, 2 processed, 0 dropped, 1 corrupt"), "{stderr}");
}

#[test]
fn raw_i420_from_a_command_honours_the_64_byte_row_stride() {
    need("ffmpeg");
    // 600 pixels wide in rows padded to 640 bytes, as rpicam-vid --codec yuv420 writes them.
    let source = format!(
        "exec:ffmpeg -nostdin -loglevel error -re -loop 1 -framerate 5 -i '{}' \
         -vf scale=600:800,pad=640:800:0:0 -pix_fmt yuv420p -f rawvideo -",
        fixture("images/bus.jpg").display()
    );
    let out = Command::new(BIN)
        .args(["capture", "--camera", &source, "--format", "I420", "--frame-size", "600x800"])
        .args(["--size", "320", "--frames", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("I420 600x800 stride 640 from ffmpeg"), "{stderr}");
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!((line["width"].as_u64(), line["height"].as_u64()), (Some(600), Some(800)), "{line}");
        assert!(has_bus_and_person(line), "{line}");
        // The padding is not in the picture: the bus spans the frame, not beyond it.
        let bus = line["data"].as_array().unwrap().iter().find(|d| d["name"] == "bus").unwrap();
        assert!(bus["box"]["x2"].as_f64().unwrap() <= 600.0 && bus["box"]["x2"].as_f64().unwrap() > 550.0, "{bus}");
    }
    let missing = Command::new(BIN).args(["capture", "--camera", &source, "--format", "I420"]).output().unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("raw I420 needs the frame size"));
}

#[test]
fn camera_sources_and_sizes_are_checked_before_start() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).arg("capture").args(args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--camera", "/dev/video0", "--size", "640x480"]).contains("--frame-size 640x480"));
    assert!(run(&["--camera", "ftp://cam/x"]).contains("unknown scheme"));
    let rtsps = run(&["--camera", "rtsps://admin:hunter2@cam/live"]);
    assert!(rtsps.contains("rtsp://") && !rtsps.contains("hunter2"), "{rtsps}");
    assert!(run(&["--camera", "-", "--camera", "-"]).contains("only one camera can read stdin"));
}

/// A fresh directory for one test's files.
pub(crate) fn tempdir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("yolod-sources-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The pid of `parent`'s child named `name`, from /proc.
fn child_pid_of(parent: u32, name: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let Some((comm, rest)) = stat.split_once(") ") else { continue };
            let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
            if comm.ends_with(&format!("({name}")) && ppid == Some(parent) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no child {name} of {parent}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
