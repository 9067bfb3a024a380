//! Camera plumbing that needs no camera: a missing device is reported (not
//! fatal, and not a readiness failure) in /readyz and /metrics while yolod
//! keeps retrying; the stream and snapshot routes answer. The real-device
//! test is tests/e2e/camera.sh; other sources are in `sources`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;

#[test]
fn a_missing_camera_is_visible_in_readyz_and_metrics_and_the_api_keeps_serving() {
    let server = Server::start(&["--camera", "/dev/video-yolod-test-missing", "--fps", "5"]);
    std::thread::sleep(Duration::from_millis(600));
    let a = get(&server.url("/readyz"), &[]);
    // The API can serve, so yolod is ready; the camera's trouble is in the body.
    assert_eq!(a.status, 200);
    let r = a.json();
    assert!(r.message.contains("a camera is not streaming"), "{}", r.message);
    let cam = &r.data["cameras"][0];
    assert_eq!(cam["name"], "video-yolod-test-missing");
    assert_eq!(cam["source"], "/dev/video-yolod-test-missing");
    assert_eq!(cam["connected"], false);
    assert!(cam["last_error"].as_str().unwrap().contains("No such file"), "{cam}");
    let metrics = String::from_utf8(get(&server.url("/metrics"), &[]).body).unwrap();
    assert!(metrics.contains("yolod_camera_connected{camera=\"video-yolod-test-missing\"} 0"), "{metrics}");
    assert!(metrics.contains("yolod_camera_frames_total{camera=\"video-yolod-test-missing\",kind=\"captured\"} 0"));
    // No frame yet: the snapshot says so with a 503; an unknown camera is a 404.
    assert_eq!(get(&server.url("/v1/snapshot"), &[]).status, 503);
    assert_eq!(get(&server.url("/v1/snapshot?camera=video-yolod-test-missing"), &[]).status, 503);
    assert_eq!(get(&server.url("/v1/snapshot?camera=nope"), &[]).status, 404);
    // Predictions are unaffected.
    assert_eq!(post(&server.url("/v1/predict"), &[("Content-Type", "image/jpeg")], &image("zidane.jpg")).status, 200);
    assert!(server.stderr.lock().unwrap().contains("retrying in"));
}

#[test]
fn the_event_stream_answers_with_sse_headers() {
    let server = Server::start(&[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(conn, "GET /v1/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
    let metrics = String::from_utf8(get(&server.url("/metrics"), &[]).body).unwrap();
    assert!(metrics.contains("yolod_stream_clients 1"), "{metrics}");
}
