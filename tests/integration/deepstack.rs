//! The DeepStack / CodeProject.AI API (docs/API.md, "DeepStack"), checked
//! against the real binary the way its clients call it: Frigate, Home
//! Assistant's deepstack-python, Blue Iris and Agent DVR, node-red-contrib-deepstack.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::Deserialize;

use crate::support::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Found {
    success: bool,
    predictions: Vec<Prediction>,
    count: usize,
    #[serde(rename = "inferenceMs")]
    inference_ms: u64,
    #[serde(rename = "processMs")]
    process_ms: u64,
    code: u16,
    message: String,
    duration: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Prediction {
    label: String,
    confidence: f64,
    x_min: i64,
    y_min: i64,
    x_max: i64,
    y_max: i64,
}

/// Every error on these routes has exactly this shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Failed {
    success: bool,
    error: String,
    duration: u64,
    predictions: Vec<Prediction>,
}

/// A part as DeepStack clients send it: `(name, filename, bytes)`, no part Content-Type.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

fn form(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "d33pst4ck";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn send(server: &Server, path: &str, parts: &[Part], headers: &[(&str, &str)]) -> Answer {
    let (content_type, body) = form(parts);
    let mut all = vec![("Content-Type", content_type.as_str())];
    all.extend_from_slice(headers);
    let answer = post(&server.url(path), &all, &body);
    assert_framed(&answer);
    answer
}

/// Blue Iris needs a Content-Length on every answer, never chunked.
fn assert_framed(answer: &Answer) {
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("transfer-encoding"), None);
    let declared: usize = answer.header("content-length").expect("Content-Length").parse().unwrap();
    assert_eq!(declared, answer.body.len());
}

fn found(answer: &Answer) -> Found {
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let found: Found = serde_json::from_slice(&answer.body).unwrap();
    assert!(found.success && found.code == 200 && found.duration == 0);
    assert_eq!(found.count, found.predictions.len());
    assert!(found.process_ms >= found.inference_ms);
    found
}

fn failed(answer: &Answer, status: u16) -> Failed {
    assert_eq!(answer.status, status, "{}", String::from_utf8_lossy(&answer.body));
    assert_framed(answer);
    let failed: Failed = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("not a DeepStack error ({e}): {}", String::from_utf8_lossy(&answer.body)));
    assert!(!failed.success && failed.duration == 0 && failed.predictions.is_empty(), "{failed:?}");
    failed
}

fn detect(server: &Server, path: &str, jpeg: &[u8], min_confidence: &str) -> Vec<Prediction> {
    let parts: [Part; 2] = [("image", Some("image"), jpeg), ("min_confidence", None, min_confidence.as_bytes())];
    found(&send(server, path, &parts, &[])).predictions
}

/// The HUB route's detections at `confidence`, `size`.
fn hub(server: &Server, jpeg: &[u8], confidence: &str, size: &str) -> Vec<Detection> {
    let url = server.url(&format!("/v1/predict?confidence={confidence}&size={size}"));
    post(&url, &[("Content-Type", "image/jpeg")], jpeg).detections()
}

/// Same objects in the same order: same class, each corner within 1 px of
/// the HUB box after rounding, the same confidence.
fn assert_same_as_hub(got: &[Prediction], hub: &[Detection]) {
    assert_eq!(got.len(), hub.len(), "{got:#?}\n{hub:#?}");
    for (g, h) in got.iter().zip(hub) {
        assert_eq!(g.label, h.name);
        let (b, corners) = (&h.bbox, [g.x_min, g.y_min, g.x_max, g.y_max]);
        for (mine, theirs) in corners.into_iter().zip([b.x1, b.y1, b.x2, b.y2]) {
            assert!((mine as f64 - theirs.round()).abs() <= 1.0, "{g:?} vs {h:?}");
        }
        assert!((g.confidence - h.confidence).abs() < 1e-4, "{g:?} vs {h:?}");
    }
}

fn crop_320(jpeg: &[u8]) -> Vec<u8> {
    let img = image::load_from_memory(jpeg).unwrap().crop_imm(100, 300, 320, 320);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

#[test]
fn detection_equals_the_hub_route_for_the_same_image_and_threshold() {
    let server = Server::start(&[]);
    for name in ["bus.jpg", "zidane.jpg"] {
        let jpeg = image(name);
        let got = detect(&server, "/v1/vision/detection", &jpeg, "0.4");
        assert!(!got.is_empty());
        assert!(got.windows(2).all(|w| w[0].confidence >= w[1].confidence), "sorted: {got:?}");
        let (w, h) = image::load_from_memory(&jpeg).map(|i| (i.width() as i64, i.height() as i64)).unwrap();
        assert!(got.iter().all(|p| 0 <= p.x_min && p.x_max <= w && 0 <= p.y_min && p.y_max <= h), "{got:?}");
        assert_same_as_hub(&got, &hub(&server, &jpeg, "0.4", "640"));
        // By name, whatever the case, with a file extension.
        for path in ["/v1/vision/custom/yolov8n", "/v1/vision/custom/YOLOv8n.onnx", "/v1/vision/custom/yolov8n.PT"] {
            assert_eq!(detect(&server, path, &jpeg, "0.4"), got, "{path}");
        }
    }
}

#[test]
fn a_320_crop_runs_at_320_not_640() {
    let server = Server::start(&[]);
    let crop = crop_320(&image("bus.jpg"));
    let got = detect(&server, "/v1/vision/detection", &crop, "0.3");
    assert!(!got.is_empty(), "the crop shows people");
    let at_320 = hub(&server, &crop, "0.3", "320");
    assert_same_as_hub(&got, &at_320);
    // Scaled up to 640 the network sees another picture: the numbers differ.
    let at_640 = hub(&server, &crop, "0.3", "640");
    let same =
        at_640.len() == got.len() && got.iter().zip(&at_640).all(|(g, h)| (g.confidence - h.confidence).abs() < 1e-4);
    assert!(!same, "the crop gave the 640 answer: {got:?}");
}

#[test]
fn form_fields_in_any_order_unknown_ones_ignored_and_min_confidence_defaults_to_040() {
    let server = Server::start(&[]);
    let jpeg = image("bus.jpg");
    let default = hub(&server, &jpeg, "0.4", "640");
    // Frigate: an empty api_key and no min_confidence; node-red: admin_key, image last.
    let frigate: [Part; 2] = [("image", Some("image"), &jpeg[..]), ("api_key", None, &b""[..])];
    let node_red: [Part; 4] = [
        ("min_confidence", None, &b""[..]),
        ("admin_key", None, &b"x"[..]),
        ("api_key", None, &b"any"[..]),
        ("image", Some("image.jpg"), &jpeg[..]),
    ];
    for parts in [&frigate[..], &node_red[..]] {
        let got = found(&send(&server, "/v1/vision/detection", parts, &[]));
        assert_same_as_hub(&got.predictions, &default);
        assert!(got.message.starts_with("Found bus") || got.message.starts_with("Found person"), "{}", got.message);
    }
    let nothing = found(&send(
        &server,
        "/v1/vision/detection",
        &[("image", Some("image"), &jpeg[..]), ("min_confidence", None, &b"1"[..])],
        &[],
    ));
    assert_eq!((nothing.count, nothing.message.as_str()), (0, "No objects found"));
}

#[test]
fn blue_iris_probes_get_json_with_a_content_length() {
    let server = Server::start(&[]);
    let root = get(&server.url("/"), &[]);
    assert_eq!(root.status, 200);
    assert_framed(&root);
    assert_eq!(root.json().data["models"][0], "yolov8n");
    let update = get(&server.url("/v1/status/updateavailable"), &[]);
    assert_framed(&update);
    assert_eq!(String::from_utf8(update.body).unwrap(), r#"{"success":true,"updateAvailable":false}"#);
    let listed = get(&server.url("/v1/vision/custom/list"), &[]);
    assert_framed(&listed);
    assert_eq!(String::from_utf8(listed.body).unwrap(), r#"{"success":true,"models":["yolov8n"]}"#);
    let posted = send(&server, "/v1/vision/custom/list", &[("api_key", None, &b""[..])], &[]);
    assert_eq!(String::from_utf8(posted.body).unwrap(), r#"{"success":true,"models":["yolov8n"]}"#);
}

#[test]
fn every_error_on_the_deepstack_routes_is_deepstack_json() {
    let server = Server::start(&["--max-body", "1M"]);
    let jpeg = image("zidane.jpg");
    let image_part = ("image", Some("image"), &jpeg[..]);
    let cases: Vec<(&str, &str, Vec<Part>, u16, &str)> = vec![
        ("no image", "/v1/vision/detection", vec![("min_confidence", None, &b"0.5"[..])], 400, "image"),
        ("not an image", "/v1/vision/detection", vec![("image", Some("image"), &b"hello, world"[..])], 400, "image"),
        (
            "min_confidence=abc",
            "/v1/vision/detection",
            vec![image_part, ("min_confidence", None, &b"abc"[..])],
            400,
            "min_confidence",
        ),
        (
            "min_confidence=2",
            "/v1/vision/detection",
            vec![image_part, ("min_confidence", None, &b"2"[..])],
            400,
            "min_confidence",
        ),
        ("unknown model", "/v1/vision/custom/nosuchmodel", vec![image_part], 404, "nosuchmodel"),
        ("face", "/v1/vision/face/recognize", vec![image_part], 404, "face"),
        ("scene", "/v1/vision/scene", vec![image_part], 404, "scene"),
    ];
    for (what, path, parts, status, mentions) in cases {
        let e = failed(&send(&server, path, &parts, &[]), status);
        assert!(e.error.contains(mentions), "{what}: {}", e.error);
    }
    // A JSON body is not a form: DeepStack says 400 where the HUB says 415.
    let json = post(&server.url("/v1/vision/detection"), &[("Content-Type", "application/json")], b"{}");
    failed(&json, 400);
    let wrong_method = get(&server.url("/v1/vision/detection"), &[]);
    failed(&wrong_method, 405);
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    failed(&get(&server.url("/v1/vision/face"), &[]), 404);
    // Over --max-body: refused from the declared length, before reading it.
    let (status, head, body) = raw(
        &server,
        "POST /v1/vision/detection HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 2000000\r\n\r\n",
    );
    assert_eq!(status, 413, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-length:"), "{head}");
    let e: Failed = serde_json::from_str(&body).unwrap();
    assert!(!e.success && e.predictions.is_empty());
    // The server lives on.
    assert!(!detect(&server, "/v1/vision/detection", &jpeg, "0.5").is_empty());
}

/// Sends a request head and returns (status, response head, body).
fn raw(server: &Server, request: &str) -> (u16, String, String) {
    let mut conn = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

#[test]
fn with_keys_the_api_key_field_or_header_must_match() {
    let server = Server::start(&["--api-key", "k1"]);
    let jpeg = image("bus.jpg");
    let image_part = ("image", Some("image"), &jpeg[..]);
    let path = "/v1/vision/detection";
    for (what, parts, headers) in [
        ("no key", vec![image_part], vec![]),
        ("empty key (Frigate)", vec![image_part, ("api_key", None, &b""[..])], vec![]),
        ("wrong key", vec![image_part, ("api_key", None, &b"k2"[..])], vec![]),
        ("wrong header", vec![image_part], vec![("x-api-key", "k2")]),
        // The key is checked before anything else is looked at.
        (
            "wrong key, bad min_confidence",
            vec![image_part, ("api_key", None, &b"k2"[..]), ("min_confidence", None, &b"abc"[..])],
            vec![],
        ),
    ] {
        let answer = send(&server, path, &parts, &headers);
        assert_eq!(
            String::from_utf8(answer.body.clone()).unwrap(),
            r#"{"success":false,"error":"Incorrect api key","duration":0,"predictions":[]}"#,
            "{what}"
        );
        failed(&answer, 401);
    }
    failed(&send(&server, "/v1/vision/custom/nosuchmodel", &[image_part], &[]), 401);
    failed(&get(&server.url("/v1/vision/custom/list"), &[]), 401);
    assert_eq!(get(&server.url("/v1/vision/custom/list"), &[("x-api-key", "k1")]).status, 200);
    found(&send(&server, path, &[("api_key", None, &b"k1"[..]), image_part], &[]));
    found(&send(&server, path, &[image_part, ("api_key", None, &b""[..])], &[("x-api-key", "k1")]));
    // The HUB route still takes the header only.
    let (ct, body) = form(&[image_part, ("api_key", None, &b"k1"[..])]);
    assert_eq!(post(&server.url("/v1/predict"), &[("Content-Type", ct.as_str())], &body).status, 401);
}

#[test]
fn max_detections_caps_both_apis() {
    let server = Server::start_env(&[], &[("YOLOD_MAX_DETECTIONS", "3")]);
    let jpeg = image("bus.jpg");
    let hub_answer = hub(&server, &jpeg, "0.01", "640");
    let ds = detect(&server, "/v1/vision/detection", &jpeg, "0.01");
    assert_eq!((hub_answer.len(), ds.len()), (3, 3), "{hub_answer:?} {ds:?}");
    assert_same_as_hub(&ds, &hub_answer);
    // They are the three best of the uncapped answer.
    let uncapped = Server::start(&[]);
    let all = hub(&uncapped, &jpeg, "0.01", "640");
    assert!(all.len() > 3);
    assert_same_as_hub(&ds, &all[..3]);
}

#[test]
fn a_model_named_list_is_refused_at_start_up() {
    let dir = std::env::temp_dir().join(format!("yolod-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("List.onnx");
    std::fs::copy(fixture("../../models/yolov8n.onnx"), &file).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--model", file.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("List.onnx") && stderr.contains("/v1/vision/custom/list"), "{stderr}");
}

#[test]
fn the_openapi_document_is_served_and_names_every_route() {
    let server = Server::start(&[]);
    let answer = get(&server.url("/openapi.json"), &[]);
    assert_eq!(answer.status, 200);
    let served: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let file = std::fs::read(fixture("../../docs/openapi.json")).unwrap();
    assert_eq!(served, serde_json::from_slice::<serde_json::Value>(&file).unwrap());
    assert_eq!(served["openapi"], "3.1.0");
    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/models",
        "/v1/predict",
        "/v1/predict/{model_id}",
        "/v1/stream",
        "/v1/snapshot",
        "/v1/stream.mjpeg",
        "/ui/login",
        "/ui/logout",
        "/ui/app.js",
        "/ui/style.css",
        "/v1/vision/detection",
        "/v1/vision/custom/{model}",
        "/v1/vision/custom/list",
        "/v1/status/updateavailable",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path} is not in docs/openapi.yaml");
    }
}
