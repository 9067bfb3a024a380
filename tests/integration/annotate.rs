//! Pictures (`annotate=true`, `predict --annotate`): the answer is a JPEG of
//! the input at its own size, with the detections the JSON reports drawn
//! where the JSON says they are.

use image::RgbImage;

use crate::support::*;

fn jpeg(bytes: &[u8]) -> RgbImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).expect("a JPEG").to_rgb8()
}

fn distance(a: &image::Rgb<u8>, b: [u8; 3]) -> f64 {
    a.0.iter().zip(b).map(|(&x, y)| (x as f64 - y as f64).abs()).sum::<f64>() / 3.0
}

/// Ultralytics' palette entries used by the classes under test.
fn class_color(class: usize) -> [u8; 3] {
    match class {
        0 => [0xFF, 0x38, 0x38],
        5 => [0x48, 0xF9, 0x0A],
        27 => [0x3D, 0xDB, 0x86],
        other => panic!("no colour listed for class {other}"),
    }
}

/// Mean distance to `color` over the 3-pixel strip of the box's left edge.
fn left_edge_distance(img: &RgbImage, b: &BoxJson, color: [u8; 3]) -> f64 {
    let (x0, y0, y1) = (b.x1.round() as u32, (b.y1 + 0.1 * (b.y2 - b.y1)) as u32, (b.y2 - 0.1 * (b.y2 - b.y1)) as u32);
    let samples: Vec<f64> = (y0..y1)
        .flat_map(|y| (x0..x0 + 3).map(move |x| (x, y)))
        .map(|(x, y)| distance(img.get_pixel(x, y), color))
        .collect();
    samples.iter().sum::<f64>() / samples.len() as f64
}

#[test]
fn annotate_true_answers_a_jpeg_with_the_boxes_the_json_reports() {
    let server = Server::start(&[]);
    let original = jpeg(&image("bus.jpg"));
    let (ct, body) = Multipart::new().file("file", "bus.jpg", &image("bus.jpg")).finish();
    let found = post(&server.url("/v1/predict"), &[("Content-Type", &ct)], &body).detections();
    assert!(found.len() >= 4, "{found:?}");
    // The same request, once with annotate as a form field and once in the query.
    let (ct, body) = Multipart::new().file("file", "bus.jpg", &image("bus.jpg")).field("annotate", "true").finish();
    let by_form = post(&server.url("/v1/predict"), &[("Content-Type", &ct)], &body);
    let by_query = post(&server.url("/v1/predict?annotate=1"), &[("Content-Type", "image/jpeg")], &image("bus.jpg"));
    for answer in [by_form, by_query] {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("image/jpeg"));
        assert!(answer.header("server-timing").is_some());
        let picture = jpeg(&answer.body);
        assert_eq!(picture.dimensions(), original.dimensions(), "drawn at the input's own size");
        for d in &found {
            let color = class_color(d.class);
            let (now, before) =
                (left_edge_distance(&picture, &d.bbox, color), left_edge_distance(&original, &d.bbox, color));
            assert!(
                now < 0.5 * before && now < 40.0,
                "{} at {:?}: edge {now:.0} from its colour, {before:.0} before",
                d.name,
                d.bbox
            );
        }
    }
}

#[test]
fn annotate_with_a_bad_value_is_a_400_naming_it() {
    let server = Server::start(&[]);
    let answer = post(&server.url("/v1/predict?annotate=png"), &[("Content-Type", "image/jpeg")], &image("bus.jpg"));
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json().message, "Invalid 'annotate': png (valid values are true, false, 1, 0, yes, no).");
}

fn inside(x: f64, y: f64, xs: &[f64], ys: &[f64]) -> bool {
    let mut odd = false;
    for i in 0..xs.len() {
        let j = (i + 1) % xs.len();
        if (ys[i] <= y) != (ys[j] <= y) && x < xs[i] + (y - ys[i]) / (ys[j] - ys[i]) * (xs[j] - xs[i]) {
            odd = !odd;
        }
    }
    odd
}

#[test]
fn segment_masks_tint_inside_their_polygons_only() {
    let seg = fixture("models/yolov8n-seg-made.onnx");
    let server = Server::start(&["--model", seg.to_str().unwrap()]);
    let url = server.url("/v1/predict/yolov8n-seg-made");
    let answer = post(&url, &[("Content-Type", "image/jpeg")], &image("zidane.jpg"));
    let objects = answer.json().data.as_array().unwrap().clone();
    assert!(!objects.is_empty());
    let polygons: Vec<(Vec<f64>, Vec<f64>)> = objects
        .iter()
        .map(|o| {
            let floats =
                |k: &str| o["segments"][k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>();
            (floats("x"), floats("y"))
        })
        .collect();
    let boxes: Vec<BoxJson> = objects.iter().map(|o| serde_json::from_value(o["box"].clone()).unwrap()).collect();
    let picture =
        jpeg(&post(&format!("{url}?annotate=true"), &[("Content-Type", "image/jpeg")], &image("zidane.jpg")).body);
    let original = jpeg(&image("zidane.jpg"));
    // Sample a grid away from box edges and label tabs; split by polygon membership.
    let near_drawing = |x: f64, y: f64| {
        boxes.iter().any(|b| {
            let near_edge =
                (x - b.x1).abs() < 8.0 || (x - b.x2).abs() < 8.0 || (y - b.y1).abs() < 8.0 || (y - b.y2).abs() < 8.0;
            let in_tab = y < b.y1 + 8.0 && y > b.y1 - 60.0 && x > b.x1 - 8.0;
            near_edge || in_tab
        })
    };
    let (mut tinted, mut plain) = (Vec::new(), Vec::new());
    for y in (0..original.height()).step_by(6) {
        for x in (0..original.width()).step_by(6) {
            let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
            if near_drawing(fx, fy) {
                continue;
            }
            let diff = distance(picture.get_pixel(x, y), original.get_pixel(x, y).0);
            if polygons.iter().any(|(xs, ys)| inside(fx, fy, xs, ys)) { tinted.push(diff) } else { plain.push(diff) }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(tinted.len() > 100 && plain.len() > 100, "{} {}", tinted.len(), plain.len());
    let (t, p) = (mean(&tinted), mean(&plain));
    assert!(t > 25.0 && p < 6.0, "change inside masks {t:.1}, outside {p:.1}");
}

#[test]
fn predict_annotate_writes_one_picture_per_image_without_overwriting() {
    let dir = std::env::temp_dir().join(format!("yolod-annotate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (bus, zidane) = (fixture("images/bus.jpg"), fixture("images/zidane.jpg"));
    let out = std::process::Command::new(BIN)
        .args(["predict", "--size", "320", "--annotate"])
        .arg(&dir)
        .args([&bus, &zidane, &bus])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3, "JSON lines still on stdout");
    for (name, source) in [("bus.jpg", &bus), ("zidane.jpg", &zidane), ("bus-2.jpg", &bus)] {
        let picture = jpeg(&std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")));
        let original = jpeg(&std::fs::read(source).unwrap());
        assert_eq!(picture.dimensions(), original.dimensions(), "{name}");
        assert_ne!(picture.as_raw(), original.as_raw(), "{name}: something drawn");
    }
    // One image, a file name: written exactly there.
    let single = dir.join("one.jpg");
    let status = std::process::Command::new(BIN)
        .args(["predict", "--size", "320", "--annotate"])
        .arg(&single)
        .arg(&zidane)
        .output()
        .unwrap();
    assert!(status.status.success());
    assert_eq!(jpeg(&std::fs::read(&single).unwrap()).dimensions(), (1280, 720));
    std::fs::remove_dir_all(&dir).unwrap();
}
