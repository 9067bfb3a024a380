//! Malformed and hostile requests (issue 7): each gets its documented 4xx
//! JSON error, the process never dies, and the errors are counted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;

/// Sends raw bytes and returns (status, body).
fn raw(server: &Server, request: &[u8]) -> (u16, String) {
    let addr = server.base.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    conn.write_all(request).unwrap();
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])], close: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        let disp = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    if close {
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    body
}

#[test]
fn malformed_requests_get_documented_errors_and_the_server_survives() {
    let server = Server::start(&["--max-body", "1M", "--api-key", "secret-key"]);
    let key = ("x-api-key", "secret-key");
    let jpeg = image("zidane.jpg");
    let png_header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x01\x00\x00\x00\x01\x00\x00\x08\x02\x00\x00\x00";
    let bomb = {
        // A PNG header claiming 100000 x 100000 pixels: refused before any allocation.
        let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        v.extend_from_slice(&100_000u32.to_be_bytes());
        v.extend_from_slice(&100_000u32.to_be_bytes());
        v.extend_from_slice(b"\x08\x02\x00\x00\x00\x00\x00\x00\x00");
        v
    };
    let ct_mp = "multipart/form-data; boundary=XyZ";
    // (what, path, headers, body, expected status)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("empty body", "/v1/predict", vec![], vec![], 400),
        ("empty image", "/v1/predict", vec![("Content-Type", "image/jpeg".into())], vec![], 400),
        ("truncated PNG", "/v1/predict", vec![("Content-Type", "image/png".into())], png_header.to_vec(), 400),
        ("text as image", "/v1/predict", vec![("Content-Type", "image/jpeg".into())], b"hello world".to_vec(), 415),
        (
            "random bytes",
            "/v1/predict",
            vec![("Content-Type", "application/octet-stream".into())],
            (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            415,
        ),
        ("decompression bomb", "/v1/predict", vec![("Content-Type", "image/png".into())], bomb, 400),
        (
            "json body",
            "/v1/predict",
            vec![("Content-Type", "application/json".into())],
            b"{\"url\":\"x\"}".to_vec(),
            415,
        ),
        ("wrong content type", "/v1/predict", vec![("Content-Type", "text/html".into())], jpeg[..100].to_vec(), 415),
        (
            "multipart without boundary",
            "/v1/predict",
            vec![("Content-Type", "multipart/form-data".into())],
            multipart("XyZ", &[("image", Some("a.jpg"), &jpeg)], true),
            400,
        ),
        (
            "multipart never closed",
            "/v1/predict",
            vec![("Content-Type", ct_mp.into())],
            multipart("XyZ", &[("image", Some("a.jpg"), &jpeg)], false),
            400,
        ),
        ("multipart without parts", "/v1/predict", vec![("Content-Type", ct_mp.into())], b"--XyZ--\r\n".to_vec(), 400),
        (
            "multipart wrong boundary",
            "/v1/predict",
            vec![("Content-Type", "multipart/form-data; boundary=other".into())],
            multipart("XyZ", &[("image", Some("a.jpg"), &jpeg)], true),
            400,
        ),
        (
            "multipart only text",
            "/v1/predict",
            vec![("Content-Type", ct_mp.into())],
            multipart("XyZ", &[("size", None, b"640")], true),
            400,
        ),
        (
            "multipart unnamed part",
            "/v1/predict",
            vec![("Content-Type", ct_mp.into())],
            b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--\r\n".to_vec(),
            400,
        ),
        (
            "huge text field",
            "/v1/predict",
            vec![("Content-Type", ct_mp.into())],
            multipart("XyZ", &[("size", None, &vec![b'9'; 200_000]), ("image", Some("a.jpg"), &jpeg)], true),
            400,
        ),
        (
            "too many parts",
            "/v1/predict",
            vec![("Content-Type", ct_mp.into())],
            multipart("XyZ", &vec![("x", None, &b"1"[..]); 40], true),
            400,
        ),
        ("size too big", "/v1/predict?size=99999", vec![("Content-Type", "image/jpeg".into())], jpeg.clone(), 400),
        ("size negative", "/v1/predict?size=-1", vec![("Content-Type", "image/jpeg".into())], jpeg.clone(), 400),
        ("size float", "/v1/predict?size=640.5", vec![("Content-Type", "image/jpeg".into())], jpeg.clone(), 400),
        (
            "confidence NaN",
            "/v1/predict?confidence=NaN",
            vec![("Content-Type", "image/jpeg".into())],
            jpeg.clone(),
            400,
        ),
        ("confidence inf", "/v1/predict?conf=inf", vec![("Content-Type", "image/jpeg".into())], jpeg.clone(), 400),
        ("iou text", "/v1/predict?iou=%3Cscript%3E", vec![("Content-Type", "image/jpeg".into())], jpeg.clone(), 400),
        (
            "normalize junk",
            "/v1/predict?normalize=perhaps",
            vec![("Content-Type", "image/jpeg".into())],
            jpeg.clone(),
            400,
        ),
        (
            "duplicate fields, last invalid",
            "/v1/predict",
            vec![("Content-Type", ct_mp.into())],
            multipart("XyZ", &[("size", None, b"320"), ("size", None, b"0"), ("image", Some("a.jpg"), &jpeg)], true),
            400,
        ),
        ("unknown model", "/v1/predict/yolov99", vec![("Content-Type", "image/jpeg".into())], jpeg.clone(), 404),
        (
            "traversal in model id",
            "/v1/predict/../../etc/passwd",
            vec![("Content-Type", "image/jpeg".into())],
            jpeg.clone(),
            404,
        ),
        (
            "encoded traversal",
            "/v1/predict/%2e%2e%2f%2e%2e%2fetc",
            vec![("Content-Type", "image/jpeg".into())],
            jpeg.clone(),
            404,
        ),
        (
            "url while disabled: file",
            "/v1/predict",
            vec![("Content-Type", "application/x-www-form-urlencoded".into())],
            b"url=file%3A%2F%2F%2Fetc%2Fpasswd".to_vec(),
            400,
        ),
        ("url while disabled: loopback", "/v1/predict?url=http://127.0.0.1:8080/metrics", vec![], vec![], 400),
        ("url while disabled: private", "/v1/predict?url=http://192.168.1.1/cam.jpg", vec![], vec![], 400),
        ("body over the limit", "/v1/predict", vec![("Content-Type", "image/jpeg".into())], vec![0xff; 1_100_000], 413),
    ];
    assert!(cases.len() >= 30);
    for (name, path, headers, body, want) in &cases {
        let mut h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        h.push(key);
        let a = post(&server.url(path), &h, body);
        assert_eq!(a.status, *want, "{name}: {}", String::from_utf8_lossy(&a.body));
        let r = a.json();
        assert!(!r.success && !r.message.is_empty(), "{name}");
        assert_eq!(a.header("content-type"), Some("application/json"), "{name}");
    }
    // Auth and methods.
    assert_eq!(post(&server.url("/v1/predict"), &[("x-api-key", &"k".repeat(10_000))], &jpeg).status, 401);
    assert_eq!(post(&server.url("/v1/predict"), &[], &jpeg).status, 401);
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        assert_eq!(request(method, &server.url("/v1/predict")).status, 405, "{method}");
    }
    // Broken HTTP on the wire.
    let (status, _) = raw(
        &server,
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nx-api-key: secret-key\r\n\r\nshort",
    );
    assert!(status == 400 || status == 415 || status == 0, "truncated body: {status}");
    let (status, _) = raw(&server, b"GARBAGE\r\n\r\n");
    assert!(status == 400 || status == 0, "garbage request line: {status}");
    // Echoed values are JSON-escaped.
    let a = post(&server.url("/v1/predict?size=%22%3E%3Cscript%3E"), &[key, ("Content-Type", "image/jpeg")], &jpeg);
    let text = String::from_utf8(a.body.clone()).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok() && text.contains("\\\"><script>"), "{text}");
    // Still alive and serving, and the errors were counted.
    assert_eq!(post(&server.url("/v1/predict"), &[key, ("Content-Type", "image/jpeg")], &jpeg).status, 200);
    let metrics = String::from_utf8(get(&server.url("/metrics"), &[]).body).unwrap();
    for kind in [
        "bad_image",
        "bad_multipart",
        "invalid_field",
        "unsupported_media_type",
        "unknown_model",
        "payload_too_large",
        "unauthorized",
        "url_disabled",
        "no_image",
    ] {
        assert!(metrics.contains(&format!("yolod_errors_total{{kind=\"{kind}\"}}")), "{kind} not counted:\n{metrics}");
    }
}
