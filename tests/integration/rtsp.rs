//! RTSP cameras read in process, from GStreamer's RTSP server
//! (tests/fixtures/rtsp_server.py) on loopback: H.264 from ffmpeg's libx264
//! and MJPEG (RFC 2435), both made of bus.jpg, so the lines carry real
//! detections; with and without credentials; the server killed and
//! restarted under a running yolod.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sources::{camera, free_port, has_bus_and_person, lines, need, readyz, tempdir, wait_for_line};
use crate::support::*;

/// `seconds` of bus.jpg at 10 fps, 640 wide: H.264 as IP cameras send it (a
/// key frame a second, no B-frames), and MJPEG with the standard Huffman
/// tables, the only ones RTP/JPEG can carry.
fn clips(dir: &Path, seconds: u32) -> (PathBuf, PathBuf) {
    need("ffmpeg");
    let (h264, mjpeg) = (dir.join("h264.mkv"), dir.join("mjpeg.mkv"));
    for (out, codec) in [
        (&h264, &["-c:v", "libx264", "-bf", "0", "-g", "10", "-pix_fmt", "yuv420p"][..]),
        (&mjpeg, &["-c:v", "mjpeg", "-huffman", "default", "-pix_fmt", "yuvj420p", "-q:v", "4"][..]),
    ] {
        let made = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-loop", "1", "-framerate", "10", "-i"])
            .arg(fixture("images/bus.jpg"))
            .args(["-t", &seconds.to_string(), "-vf", "scale=640:-2"])
            .args(codec)
            .arg(out)
            .status()
            .unwrap();
        assert!(made.success());
    }
    (h264, mjpeg)
}

/// GStreamer's RTSP server on `port`, up and serving.
struct RtspServer(Child);

impl RtspServer {
    fn start(port: u16, h264: &Path, mjpeg: &Path, login: Option<&str>) -> RtspServer {
        // Debian's python3, which has python3-gi (not a virtualenv's).
        let mut child = Command::new("/usr/bin/python3")
            .arg(fixture("rtsp_server.py"))
            .arg(port.to_string())
            .args([h264, mjpeg])
            .args(login)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the RTSP server (tests/setup.sh installs python3-gi and gir1.2-gst-rtsp-server-1.0)");
        let mut ready = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "serving");
        RtspServer(child)
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn capture(source: &str, frames: u32) -> (Vec<Value>, String) {
    let out = Command::new(BIN)
        .args(["capture", "--camera", source, "--size", "320", "--frames", &frames.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let lines = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (lines, stderr)
}

#[test]
fn h264_and_mjpeg_over_rtsp_are_decoded_in_process() {
    let dir = tempdir("rtsp-codecs");
    let (h264, mjpeg) = clips(&dir, 20);
    let port = free_port();
    let _server = RtspServer::start(port, &h264, &mjpeg, None);

    let (lines, stderr) = capture(&format!("rtsp://127.0.0.1:{port}/cam"), 3);
    assert!(stderr.contains("H.264 over RTSP/TCP"), "{stderr}");
    assert_eq!(lines.len(), 3, "{stderr}");
    for line in &lines {
        assert_eq!((line["width"].as_u64(), line["height"].as_u64()), (Some(640), Some(854)), "{line}");
        assert!(has_bus_and_person(line), "{line}");
    }
    assert!(stderr.contains(" 0 corrupt"), "{stderr}");

    let (lines, stderr) = capture(&format!("rtsp://127.0.0.1:{port}/mjpeg"), 2);
    assert!(stderr.contains("MJPEG over RTSP/TCP"), "{stderr}");
    assert_eq!(lines.len(), 2, "{stderr}");
    for line in &lines {
        // RTP/JPEG carries sizes in multiples of 8.
        assert_eq!((line["width"].as_u64(), line["height"].as_u64()), (Some(640), Some(856)), "{line}");
        assert!(has_bus_and_person(line), "{line}");
    }
}

fn wait_for(server: &Server, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = readyz(server);
        if ok(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_rtsp_camera_with_credentials_reconnects_and_bad_ones_beside_it_stop_nothing() {
    let dir = tempdir("rtsp-faults");
    let (h264, mjpeg) = clips(&dir, 60);
    let port = free_port();
    let server_rtsp = RtspServer::start(port, &h264, &mjpeg, Some("viewer:s3cret-pw"));
    let log = dir.join("lines.jsonl");
    let good = format!("rtsp://viewer:s3cret-pw@127.0.0.1:{port}/cam");
    let refused = format!("rtsp://viewer:wrong-pw@127.0.0.1:{port}/cam");
    let nobody = format!("rtsp://127.0.0.1:{}/cam", free_port());
    let config = dir.join("yolod.toml");
    std::fs::write(
        &config,
        format!(
            "[[camera]]\nsource = \"{good}\"\nname = \"porch\"\n\n\
             [[camera]]\nsource = \"{refused}\"\nname = \"refused\"\n\n\
             [[camera]]\nsource = \"{nobody}\"\nname = \"nobody\"\n"
        ),
    )
    .unwrap();
    let server =
        Server::start(&["--config", config.to_str().unwrap(), "--size", "320", "--log", log.to_str().unwrap()]);
    let line = wait_for_line(&log, "porch", "bus and person", has_bus_and_person);
    assert_eq!(line["source"], format!("rtsp://127.0.0.1:{port}/cam"));
    let r = wait_for(&server, "both bad cameras failed", |r| {
        camera(r, "refused")["last_error"] != "" && camera(r, "nobody")["last_error"] != ""
    });
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(camera(&r, "porch")["format"], "H.264 over RTSP/TCP");
    assert!(camera(&r, "refused")["last_error"].as_str().unwrap().contains("user name and password"), "{r}");
    assert!(camera(&r, "nobody")["last_error"].as_str().unwrap().contains("DESCRIBE"), "{r}");
    // The server goes away and comes back on the same port.
    drop(server_rtsp);
    wait_for(&server, "the camera to notice", |r| camera(r, "porch")["connected"] == false);
    let last = lines(&log).iter().rfind(|l| l["camera"] == "porch").unwrap()["frame"].as_u64().unwrap();
    let _server_rtsp = RtspServer::start(port, &h264, &mjpeg, Some("viewer:s3cret-pw"));
    wait_for(&server, "a reconnect", |r| camera(r, "porch")["reconnects"].as_u64() >= Some(1));
    wait_for_line(&log, "porch", "a frame after the reconnect", |l| l["frame"].as_u64().unwrap() > last);
    // No line lost or torn: each parses (lines() panics otherwise), and the
    // frame numbers only grow.
    let frames: Vec<u64> =
        lines(&log).iter().filter(|l| l["camera"] == "porch").map(|l| l["frame"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[0] < w[1]), "{frames:?}");
    let stderr = server.stderr.lock().unwrap().clone();
    assert!(stderr.contains("camera porch is back"), "{stderr}");
    assert!(stderr.contains("camera refused: RTSP DESCRIBE"), "{stderr}");
    let metrics = String::from_utf8(get(&server.url("/metrics"), &[]).body).unwrap();
    let everything = format!("{stderr}{}{metrics}", readyz(&server));
    assert!(!everything.contains("s3cret-pw") && !everything.contains("wrong-pw"), "a password shown");
}
