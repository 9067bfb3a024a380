//! The HTTP contract of docs/API.md (HUB), checked against the real binary on
//! a free port: routes, statuses, messages, bodies, aliases, auth, limits.

use std::time::Duration;

use crate::support::*;

fn png_of(jpeg: &[u8]) -> Vec<u8> {
    let img = image::load_from_memory(jpeg).unwrap().thumbnail(320, 320);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn predict_multipart(server: &Server, path: &str, mp: Multipart, key: Option<&str>) -> Answer {
    let (ct, body) = mp.finish();
    let mut headers = vec![("Content-Type", ct.as_str())];
    if let Some(key) = key {
        headers.push(("x-api-key", key));
    }
    post(&server.url(path), &headers, &body)
}

#[test]
fn seed_style_multipart_request_matches_the_onnxruntime_reference() {
    let server = Server::start(&[]);
    let mp = Multipart::new()
        .file("image", "bus.jpg", &image("bus.jpg"))
        .field("size", "640")
        .field("confidence", "0.25")
        .field("iou", "0.45");
    let answer = predict_multipart(&server, "/v1/predict/yolov8n", mp, Some("any-key-when-auth-is-off"));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let r = answer.json();
    assert!(r.success);
    assert_eq!(r.message, "Inference complete.");
    let dets = answer.detections();
    assert_matches_golden(&dets, &golden(640, "bus.jpg"));
    let confs: Vec<f64> = dets.iter().map(|d| d.confidence).collect();
    assert!(confs.windows(2).all(|w| w[0] >= w[1]), "sorted by confidence: {confs:?}");
    let timing = answer.header("server-timing").expect("Server-Timing header");
    for stage in ["decode;dur=", "preprocess;dur=", "inference;dur=", "postprocess;dur="] {
        assert!(timing.contains(stage), "{timing}");
    }
}

#[test]
fn raw_body_at_default_and_at_size_320_match_their_references() {
    let server = Server::start(&[]);
    let zidane = image("zidane.jpg");
    let a = post(&server.url("/v1/predict"), &[("Content-Type", "image/jpeg")], &zidane);
    assert_eq!(a.status, 200);
    assert_matches_golden(&a.detections(), &golden(640, "zidane.jpg"));
    // `size` is real: the network runs at 320 and agrees with a 320 reference
    // (which finds one object fewer on bus.jpg than at 640).
    let a = post(&server.url("/v1/predict/yolov8n?size=320"), &[("Content-Type", "image/jpeg")], &image("bus.jpg"));
    assert_eq!(a.status, 200);
    let dets = a.detections();
    assert_matches_golden(&dets, &golden(320, "bus.jpg"));
    assert_eq!(dets.len(), golden(320, "bus.jpg").len());
}

#[test]
fn aliases_file_imgsz_conf_and_form_over_query() {
    let server = Server::start(&[]);
    let mp = Multipart::new().file("file", "bus.jpg", &image("bus.jpg")).field("imgsz", "320").field("conf", "0.8");
    // The query asks for 0.1 but the form field wins.
    let a = predict_multipart(&server, "/v1/predict/yolov8n?conf=0.1", mp, None);
    assert_eq!(a.status, 200);
    let dets = a.detections();
    assert!(!dets.is_empty() && dets.iter().all(|d| d.confidence >= 0.8), "{dets:?}");
    let reference: Vec<_> = golden(320, "bus.jpg").into_iter().filter(|d| d.confidence >= 0.8).collect();
    assert_matches_golden(&dets, &reference);
}

#[test]
fn curl_data_binary_without_content_type_is_taken_as_an_image() {
    let server = Server::start(&[]);
    let a = post(
        &server.url("/v1/predict"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &image("zidane.jpg"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.detections().iter().filter(|d| d.name == "person").count(), 2);
}

#[test]
fn normalize_gives_fractions_of_width_and_height() {
    let server = Server::start(&[]);
    let pixels = post(&server.url("/v1/predict"), &[("Content-Type", "image/jpeg")], &image("bus.jpg")).detections();
    let fractions =
        post(&server.url("/v1/predict?normalize=true"), &[("Content-Type", "image/jpeg")], &image("bus.jpg"))
            .detections();
    assert_eq!(pixels.len(), fractions.len());
    for (p, f) in pixels.iter().zip(&fractions) {
        // bus.jpg is 810 x 1080
        assert!((p.bbox.x1 / 810.0 - f.bbox.x1).abs() < 1e-4 && (p.bbox.y2 / 1080.0 - f.bbox.y2).abs() < 1e-4);
        for v in [f.bbox.x1, f.bbox.y1, f.bbox.x2, f.bbox.y2] {
            assert!((0.0..=1.0).contains(&v));
        }
    }
}

#[test]
fn errors_have_the_documented_status_and_message() {
    let server = Server::start(&["--max-body", "200K"]);
    let json = |a: &Answer| {
        assert_eq!(a.header("content-type"), Some("application/json"));
        let r = a.json();
        assert!(!r.success);
        assert_eq!(r.data, serde_json::json!({}));
        r.message
    };
    // 400: nothing to detect on
    let a = post(&server.url("/v1/predict"), &[], b"");
    assert_eq!((a.status, json(&a).as_str()), (400, "An image file or URL must be submitted."));
    let a = predict_multipart(&server, "/v1/predict", Multipart::new().field("size", "640"), None);
    assert_eq!((a.status, json(&a).as_str()), (400, "An image file or URL must be submitted."));
    // 400: bad fields name the field, value and range
    let a = predict_multipart(
        &server,
        "/v1/predict",
        Multipart::new().file("image", "z.jpg", &image("zidane.jpg")).field("size", "2000"),
        None,
    );
    assert_eq!((a.status, json(&a).as_str()), (400, "Invalid 'size': 2000 (valid range is 32 - 1280)."));
    let a = post(&server.url("/v1/predict?iou=abc"), &[("Content-Type", "image/jpeg")], &image("zidane.jpg"));
    assert_eq!((a.status, json(&a).as_str()), (400, "Invalid 'iou': abc (valid range is 0.0 - 0.95)."));
    // 400: corrupt image; 415: not an image at all, or an unsupported body type.
    let jpeg = image("zidane.jpg");
    let png = png_of(&jpeg);
    let a = post(&server.url("/v1/predict"), &[("Content-Type", "image/png")], &png[..png.len() / 3]);
    assert_eq!(a.status, 400, "{}", json(&a));
    assert_eq!(json(&a), "Invalid image: image data is truncated or corrupt (PNG ended before its IEND chunk).");
    assert_eq!(post(&server.url("/v1/predict"), &[("Content-Type", "image/png")], &png).status, 200);
    let a = post(&server.url("/v1/predict"), &[("Content-Type", "image/jpeg")], b"this is text, not a picture");
    assert_eq!(a.status, 415, "{}", json(&a));
    let a = post(&server.url("/v1/predict"), &[("Content-Type", "text/plain")], b"hello");
    assert_eq!(a.status, 415);
    assert!(json(&a).starts_with("Unsupported Content-Type 'text/plain'"));
    // 400: URL input is off by default
    let a = post(
        &server.url("/v1/predict"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"url=http%3A%2F%2F127.0.0.1%2Fa.jpg",
    );
    assert_eq!(a.status, 400);
    assert!(json(&a).starts_with("URL input is disabled"));
    // 404: unknown model, unknown route; 405: wrong method
    let a = post(&server.url("/v1/predict/yolov9x"), &[("Content-Type", "image/jpeg")], &jpeg);
    assert_eq!(
        (a.status, json(&a).as_str()),
        (404, "Model 'yolov9x' not found: GET /v1/models lists the models this server has.")
    );
    let a = post(&server.url("/v1/predict/..%2f..%2fetc%2fpasswd"), &[("Content-Type", "image/jpeg")], &jpeg);
    assert_eq!(a.status, 404);
    let a = get(&server.url("/nope"), &[]);
    assert_eq!(a.status, 404);
    let a = get(&server.url("/v1/predict/yolov8n"), &[]);
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("POST"));
    json(&a);
    let a = request("DELETE", &server.url("/v1/models"));
    assert_eq!(a.status, 405);
    // 413: over --max-body, refused from Content-Length
    let big = vec![0u8; 300 * 1024];
    let a = post(&server.url("/v1/predict"), &[("Content-Type", "image/jpeg")], &big);
    assert_eq!(a.status, 413);
    assert!(json(&a).contains("204800 bytes"));
    // and the server is still fine
    assert_eq!(post(&server.url("/v1/predict"), &[("Content-Type", "image/jpeg")], &jpeg).status, 200);
}

#[test]
fn api_keys_guard_predict_and_models_but_not_health() {
    let server = Server::start_env(&["--api-key", "k-one"], &[("YOLOD_API_KEYS", "")]);
    let jpeg = image("zidane.jpg");
    let predict = |key: Option<&str>| {
        let mut h = vec![("Content-Type", "image/jpeg")];
        if let Some(k) = key {
            h.push(("x-api-key", k));
        }
        post(&server.url("/v1/predict"), &h, &jpeg)
    };
    assert_eq!(predict(None).status, 401);
    let wrong = predict(Some("k-on"));
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json().message, "Invalid or missing API key: send it in the 'x-api-key' header.");
    assert_eq!(predict(Some("k-one")).status, 200);
    assert_eq!(get(&server.url("/v1/models"), &[]).status, 401);
    assert_eq!(get(&server.url("/v1/models"), &[("x-api-key", "k-one")]).status, 200);
    assert_eq!(get(&server.url("/healthz"), &[]).status, 200);
    assert_eq!(get(&server.url("/readyz"), &[]).status, 200);
    assert!(!server.stderr.lock().unwrap().contains("k-one"), "keys must not be logged");
}

#[test]
fn keys_from_the_environment_and_a_key_file() {
    let dir = std::env::temp_dir().join(format!("yolod-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys");
    std::fs::write(&file, "# operators\nfile-key\n\n").unwrap();
    let server = Server::start_env(&["--api-key-file", file.to_str().unwrap()], &[("YOLOD_API_KEYS", "env-a,env-b")]);
    for (key, status) in [("env-a", 200), ("env-b", 200), ("file-key", 200), ("# operators", 401)] {
        assert_eq!(get(&server.url("/v1/models"), &[("x-api-key", key)]).status, status, "{key}");
    }
}

#[test]
fn models_lists_the_embedded_default() {
    let server = Server::start(&[]);
    let a = get(&server.url("/v1/models"), &[]);
    assert_eq!(a.status, 200);
    let data = a.json().data;
    let m = &data[0];
    assert_eq!(m["id"], "yolov8n");
    assert_eq!(m["task"], "detect");
    assert_eq!(m["default"], true);
    assert_eq!(m["input_size"], 640);
    assert_eq!(m["classes"]["0"], "person");
    assert_eq!(m["classes"].as_object().unwrap().len(), 80);
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let server = Server::start(&[]);
    post(&server.url("/v1/predict"), &[("Content-Type", "image/jpeg")], &image("zidane.jpg"));
    post(&server.url("/v1/predict/nope"), &[("Content-Type", "image/jpeg")], b"x");
    let text = String::from_utf8(get(&server.url("/metrics"), &[]).body).unwrap();
    assert!(text.contains("yolod_requests_total{route=\"/v1/predict\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("yolod_requests_total{route=\"/v1/predict/{model}\",status=\"404\"} 1"), "{text}");
    assert!(text.contains("yolod_stage_seconds_count{stage=\"inference\"} 1"), "{text}");
    assert!(text.contains("yolod_queue_depth 0"));
    assert!(text.contains("yolod_model_info{id=\"yolov8n\",task=\"detect\",precision=\"fp32\",input_size=\"640\""));
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let server = Server::start(&["--workers", "1", "--queue", "0"]);
    let jpeg = image("bus.jpg");
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| post(&server.url("/v1/predict?size=1280"), &[("Content-Type", "image/jpeg")], &jpeg)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(!busy.is_empty(), "statuses: {:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(answers.iter().any(|a| a.status == 200));
    for a in &answers {
        assert!(a.status == 200 || a.status == 503, "{}", a.status);
    }
    for a in busy {
        assert_eq!(a.header("retry-after"), Some("1"));
        assert!(a.json().message.starts_with("Server busy"));
    }
}

#[test]
fn non_loopback_listen_without_a_key_refuses_to_start() {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("YOLOD_API_KEYS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:0 without an API key") && err.contains("--no-auth"), "{err}");
}

#[test]
fn a_broken_model_file_stops_start_up_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("yolod-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.onnx");
    std::fs::write(&file, b"not a protobuf at all").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--model", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(file.to_str().unwrap()), "{err}");
}

#[test]
fn sigterm_stops_cleanly_with_exit_0() {
    let mut server = Server::start(&[]);
    let status = std::process::Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(server.stderr.lock().unwrap().contains("yolod: stopped"));
}

#[test]
fn predict_cli_prints_one_api_json_line_per_image() {
    let out = std::process::Command::new(BIN)
        .args(["predict", fixture("images/bus.jpg").to_str().unwrap(), fixture("images/zidane.jpg").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for (line, name) in lines.iter().zip(["bus.jpg", "zidane.jpg"]) {
        assert!(line.starts_with(r#"{"success":true,"message":"Inference complete.","data":["#), "{line}");
        let r: ApiResponse = serde_json::from_str(line).unwrap();
        let dets: Vec<Detection> = serde_json::from_value(r.data).unwrap();
        assert_matches_golden(&dets, &golden(640, name));
    }
}
