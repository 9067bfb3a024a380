//! Ultralytics exports of several families (tests/fixtures/models/families/,
//! made by tests/reference/families.py) served over HTTP and checked against
//! their onnxruntime goldens: every export the repository keeps (all but the
//! dynamic siblings that make the 320 goldens), and the refusals.

use crate::support::*;

/// Same count; each golden object has a same-class one with IoU >= 0.95 and
/// |confidence difference| <= 0.01.
fn assert_matches(fixture_name: &str, got: &[Detection], want: &[Detection]) {
    assert_eq!(got.len(), want.len(), "{fixture_name}: {got:#?}");
    for w in want {
        let g = got
            .iter()
            .filter(|g| g.class == w.class && g.name == w.name)
            .max_by(|a, b| a.bbox.iou(&w.bbox).total_cmp(&b.bbox.iou(&w.bbox)))
            .unwrap_or_else(|| panic!("{fixture_name}: no match for {w:?}"));
        assert!(g.bbox.iou(&w.bbox) >= 0.95, "{fixture_name}: {g:?} vs {w:?}");
        assert!((g.confidence - w.confidence).abs() <= 0.01, "{fixture_name}: {g:?} vs {w:?}");
    }
}

fn serve_and_compare(names: &[&str]) {
    let paths: Vec<String> =
        names.iter().map(|n| fixture(&format!("models/families/{n}.onnx")).to_str().unwrap().to_string()).collect();
    let args: Vec<&str> = paths.iter().flat_map(|p| ["--model", p.as_str()]).collect();
    let server = Server::start(&args);
    for name in names {
        let text = std::fs::read_to_string(fixture(&format!("models/families/golden/{name}.json"))).unwrap();
        let golden: Golden<Detection> = serde_json::from_str(&text).unwrap();
        for img in golden.images {
            let body = std::fs::read(fixture(&format!("models/families/images/{}", img.image))).unwrap();
            let a = post(&server.url(&format!("/v1/predict/{name}")), &[("Content-Type", "image/png")], &body);
            assert_eq!(a.status, 200, "{name} {}", img.image);
            assert_matches(name, &a.detections(), &img.data);
        }
    }
}

/// Every export in the repository (tests/reference/families.py keeps all
/// but the dynamic siblings it makes the 320 goldens with), served together:
/// each gives its golden at 640, and each that `/v1/models` says runs at any
/// size gives, at 320, the golden of the same weights exported dynamic.
#[test]
fn every_export_of_every_family_matches_its_golden() {
    let dir = fixture("models/families");
    let mut goldens: Vec<(String, serde_json::Value)> = std::fs::read_dir(dir.join("golden"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            (path.file_stem().unwrap().to_str().unwrap().to_string(), doc)
        })
        .filter(|(name, doc)| doc["layout"] != "classify" && dir.join(format!("{name}.onnx")).exists())
        .collect();
    goldens.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(goldens.len() >= 20, "only {} exports found", goldens.len());
    let paths: Vec<String> =
        goldens.iter().map(|(n, _)| dir.join(format!("{n}.onnx")).to_str().unwrap().to_string()).collect();
    let args: Vec<&str> = paths.iter().flat_map(|p| ["--model", p.as_str()]).collect();
    let server = Server::start(&args);
    let models = get(&server.url("/v1/models"), &[]).json().data;
    let mut at_320 = 0;
    for (name, doc) in &goldens {
        let model = models.as_array().unwrap().iter().find(|m| m["id"] == name.as_str()).unwrap();
        let stem = name.trim_end_matches("-nms").trim_end_matches("-e2e").trim_end_matches("-dyn");
        let sibling = dir.join(format!("golden/{stem}-dyn.json"));
        let small = match (&doc["small"], model["any_size"].as_bool().unwrap()) {
            (_, false) => None,
            (serde_json::Value::Null, true) => std::fs::read_to_string(sibling)
                .ok()
                .map(|t| serde_json::from_str::<serde_json::Value>(&t).unwrap()["small"].clone()),
            (own, true) => Some(own.clone()),
        };
        at_320 += small.is_some() as usize;
        for (size, golden) in std::iter::once((640, doc.clone())).chain(small.map(|s| (320, s))) {
            let golden: Golden<Detection> = serde_json::from_value(golden).unwrap();
            for img in golden.images {
                let body = std::fs::read(dir.join(format!("images/{}", img.image))).unwrap();
                let url = server.url(&format!("/v1/predict/{name}?size={size}"));
                let a = post(&url, &[("Content-Type", "image/png")], &body);
                assert_eq!(a.status, 200, "{name} {} at {size}", img.image);
                assert_matches(&format!("{name} at {size}"), &a.detections(), &img.data);
            }
        }
    }
    assert!(at_320 >= 8, "only {at_320} exports checked at 320");
}

#[test]
fn a_three_class_model_answers_with_its_own_names() {
    serve_and_compare(&["custom3-det"]);
}

/// NMS-free (end2end) exports of YOLOv10 and YOLO26 give rows of chosen
/// boxes (`1 x 300 x (6 + extra)`): read as they are, with no second NMS.
/// Before they were read, they were served with wrong boxes, then refused.
#[test]
fn nms_free_exports_of_yolov10_and_yolo26_match_their_goldens() {
    serve_and_compare(&["yolov10n-det-e2e", "yolo26-det-e2e", "yolo26-seg-e2e", "yolo26-pose-e2e"]);
}

/// Their masks and keypoints come from the row's values after the six: the
/// pose golden's keypoints within a pixel, and segment outlines inside their
/// boxes (random weights leave some masks empty: most are not).
#[test]
fn nms_free_segment_and_pose_rows_carry_masks_and_keypoints() {
    let paths: Vec<String> = ["yolo26-seg-e2e", "yolo26-pose-e2e"]
        .iter()
        .map(|n| fixture(&format!("models/families/{n}.onnx")).to_str().unwrap().to_string())
        .collect();
    let server = Server::start(&["--model", &paths[0], "--model", &paths[1]]);
    let body = std::fs::read(fixture("models/families/images/bus-640.png")).unwrap();
    let ask = |id: &str| {
        let a = post(&server.url(&format!("/v1/predict/{id}")), &[("Content-Type", "image/png")], &body);
        assert_eq!(a.status, 200, "{id}");
        a.json().data.as_array().unwrap().clone()
    };
    let segments = ask("yolo26-seg-e2e");
    let outlined = segments.iter().filter(|o| !o["segments"]["x"].as_array().unwrap().is_empty()).count();
    assert!(outlined * 2 > segments.len(), "{outlined} of {} objects have an outline", segments.len());
    for obj in &segments {
        let b = &obj["box"];
        let (xs, ys) = (floats(&obj["segments"]["x"]), floats(&obj["segments"]["y"]));
        assert!(xs.len() == ys.len() && xs.len() != 1 && xs.len() != 2, "{obj}");
        let inside =
            |v: f64, lo: &str, hi: &str| v >= b[lo].as_f64().unwrap() - 1.0 && v <= b[hi].as_f64().unwrap() + 1.0;
        assert!(xs.iter().all(|&x| inside(x, "x1", "x2")) && ys.iter().all(|&y| inside(y, "y1", "y2")), "{obj}");
    }
    let text = std::fs::read_to_string(fixture("models/families/golden/yolo26-pose-e2e.json")).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let want = golden["images"][0]["data"].as_array().unwrap();
    let got = ask("yolo26-pose-e2e");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        for axis in ["x", "y", "visible"] {
            let (ours, theirs) = (floats(&g["keypoints"][axis]), floats(&w["keypoints"][axis]));
            assert_eq!(ours.len(), 17);
            let tolerance = if axis == "visible" { 0.01 } else { 1.0 };
            assert!(
                ours.iter().zip(&theirs).all(|(o, t)| (o - t).abs() <= tolerance),
                "{axis}: {ours:?} vs {theirs:?}"
            );
        }
    }
}

/// An export with NMS in the graph (`nms=True`) is cut before it: yolod's
/// own NMS gives the golden (Ultralytics' post-processing), with the
/// request's `iou`. (Were the head not found, it would be refused at load:
/// tract cannot analyse `NonMaxSuppression`; `meta`'s unit test has that.)
#[test]
fn an_export_with_nms_in_the_graph_runs_cut_before_its_nms() {
    serve_and_compare(&["yolo26-det-nms"]);
}

/// A default (fixed-size) export whose body is fully convolutional, cut at
/// its head, runs at the size asked: at 320 it gives what onnxruntime gives
/// on the same network exported with `dynamic=True` (`yolov8-det-dyn`, the
/// same weights). Exports whose body reshapes to the export size (attention
/// blocks: YOLO11, YOLO26) say so in `/v1/models` and run at 640.
#[test]
fn default_exports_run_at_any_size_where_their_body_allows_it() {
    let paths: Vec<String> = ["yolov8-det", "yolo11-det", "yolo26-det"]
        .iter()
        .map(|n| fixture(&format!("models/families/{n}.onnx")).to_str().unwrap().to_string())
        .collect();
    let args: Vec<&str> = paths.iter().flat_map(|p| ["--model", p.as_str()]).collect();
    let server = Server::start(&args);
    let models = get(&server.url("/v1/models"), &[]).json().data;
    let any_size = |id: &str| {
        let m = models.as_array().unwrap().iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("{id}: {models}"));
        m["any_size"].as_bool().unwrap()
    };
    assert_eq!((any_size("yolov8-det"), any_size("yolo11-det"), any_size("yolo26-det")), (true, false, false));
    let text = std::fs::read_to_string(fixture("models/families/golden/yolov8-det-dyn.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["small"]["size"], 320);
    let golden: Golden<Detection> = serde_json::from_value(doc["small"].clone()).unwrap();
    for img in golden.images {
        let body = std::fs::read(fixture(&format!("models/families/images/{}", img.image))).unwrap();
        let a = post(&server.url("/v1/predict/yolov8-det?size=320"), &[("Content-Type", "image/png")], &body);
        assert_eq!(a.status, 200, "{}", img.image);
        assert_matches("yolov8-det at 320", &a.detections(), &img.data);
    }
}

/// Ultralytics 8.4's segment and pose heads (box, class and mask-coefficient
/// or keypoint maps each joined apart) are cut before their decode too, so a
/// fixed-size YOLOv8 export runs at any size: at 640 it gives its golden, at
/// 320 what onnxruntime gives on the same weights exported `dynamic=True`,
/// keypoints within a pixel.
#[test]
fn segment_and_pose_exports_of_ultralytics_8_4_run_at_any_size() {
    let names = ["yolov8-seg", "yolov8-pose"];
    let paths: Vec<String> =
        names.iter().map(|n| fixture(&format!("models/families/{n}.onnx")).to_str().unwrap().to_string()).collect();
    let server = Server::start(&["--model", &paths[0], "--model", &paths[1]]);
    let models = get(&server.url("/v1/models"), &[]).json().data;
    for name in names {
        let m = models.as_array().unwrap().iter().find(|m| m["id"] == name).unwrap();
        assert_eq!(m["any_size"], true, "{m}");
        let read = |file: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(fixture(&format!("models/families/golden/{file}"))).unwrap())
                .unwrap()
        };
        let (own, sibling) = (read(&format!("{name}.json")), read(&format!("{name}-dyn.json")));
        for (size, golden) in [(640, &own), (320, &sibling["small"])] {
            assert_eq!(golden["size"], size, "{name} golden sizes");
            let objects: usize =
                golden["images"].as_array().unwrap().iter().map(|i| i["data"].as_array().unwrap().len()).sum();
            assert!(objects > 0, "{name} at {size}: an empty golden checks nothing");
            for img in golden["images"].as_array().unwrap() {
                let body =
                    std::fs::read(fixture(&format!("models/families/images/{}", img["image"].as_str().unwrap())))
                        .unwrap();
                let url = server.url(&format!("/v1/predict/{name}?size={size}"));
                let a = post(&url, &[("Content-Type", "image/png")], &body);
                assert_eq!(a.status, 200, "{name} {} at {size}", img["image"]);
                let want: Vec<Detection> = serde_json::from_value(img["data"].clone()).unwrap();
                assert_matches(&format!("{name} at {size}"), &a.detections(), &want);
                if name == "yolov8-pose" {
                    let got = a.json().data;
                    for w in img["data"].as_array().unwrap() {
                        let close = |g: &serde_json::Value| {
                            ["x", "y"].iter().all(|axis| {
                                let (ours, theirs) = (floats(&g["keypoints"][axis]), floats(&w["keypoints"][axis]));
                                ours.len() == 17 && ours.iter().zip(&theirs).all(|(o, t)| (o - t).abs() <= 1.0)
                            })
                        };
                        assert!(got.as_array().unwrap().iter().any(close), "{name} at {size}: keypoints of {w}");
                    }
                }
            }
        }
    }
}

/// A dynamic export (`dynamic=True`) runs at the size asked: at 640 and at
/// 320 it gives onnxruntime's answers on the whole graph at that size.
#[test]
fn a_dynamic_export_runs_at_any_size_and_matches_its_goldens_at_640_and_320() {
    let name = "yolo26-det-dyn";
    let model = fixture(&format!("models/families/{name}.onnx"));
    let server = Server::start(&["--model", model.to_str().unwrap()]);
    let text = std::fs::read_to_string(fixture(&format!("models/families/golden/{name}.json"))).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (size, golden) in [(640, &doc), (320, &doc["small"])] {
        assert_eq!(golden.get("size").and_then(|s| s.as_u64()), Some(size), "golden sizes");
        let golden: Golden<Detection> = serde_json::from_value(golden.clone()).unwrap();
        for img in golden.images {
            let body = std::fs::read(fixture(&format!("models/families/images/{}", img.image))).unwrap();
            let url = server.url(&format!("/v1/predict/{name}?size={size}"));
            let a = post(&url, &[("Content-Type", "image/png")], &body);
            assert_eq!(a.status, 200, "{name} {} at {size}", img.image);
            assert_matches(&format!("{name} at {size}"), &a.detections(), &img.data);
        }
    }
}

/// Classification exports have no boxes: refused at load, saying what yolod
/// serves, instead of an output-shape riddle.
#[test]
fn a_classification_export_is_refused_at_load_saying_why() {
    let path = fixture("models/families/yolo11-cls.onnx");
    let out = std::process::Command::new(BIN).arg("models").arg("--model").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("yolo11-cls.onnx") && err.contains("classify model"), "{err}");
    assert!(err.contains("detect, segment and pose"), "{err}");
}

/// The top-level fields of a protobuf message, without `field`.
fn without_field(message: &[u8], field: u64) -> Vec<u8> {
    fn varint(bytes: &[u8], at: &mut usize) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let b = bytes[*at];
            *at += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
        }
        value
    }
    let (mut out, mut at) = (Vec::new(), 0);
    while at < message.len() {
        let start = at;
        let key = varint(message, &mut at);
        match key & 7 {
            0 => {
                varint(message, &mut at);
            }
            1 => at += 8,
            2 => at += varint(message, &mut at) as usize,
            5 => at += 4,
            wire => panic!("wire type {wire}"),
        }
        if key >> 3 != field {
            out.extend_from_slice(&message[start..at]);
        }
    }
    out
}

/// An export without `names` metadata (ModelProto field 14 removed) still
/// loads: its classes are `class0..`, counted from output0, with a warning,
/// and it finds what the named export finds.
#[test]
fn a_model_without_names_metadata_gets_numbered_classes_and_a_warning() {
    let named = std::fs::read(fixture("models/families/custom3-det.onnx")).unwrap();
    let bare = without_field(&named, 14);
    assert!(bare.len() < named.len() && bare.len() > named.len() - 4096);
    let dir = std::env::temp_dir().join(format!("yolod-bare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bare.onnx");
    std::fs::write(&path, &bare).unwrap();
    let image = fixture("models/families/images/bus-640.png");
    let out = std::process::Command::new(BIN).arg("predict").arg("--model").arg(&path).arg(&image).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("no `names` metadata") && err.contains("class0..class2"), "{err}");
    let got: ApiResponse = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<Detection> = serde_json::from_value(got.data).unwrap();
    let text = std::fs::read_to_string(fixture("models/families/golden/custom3-det.json")).unwrap();
    let golden: Golden<Detection> = serde_json::from_str(&text).unwrap();
    let want: Vec<Detection> =
        golden.images[0].data.iter().map(|d| Detection { name: format!("class{}", d.class), ..d.clone() }).collect();
    assert!(!want.is_empty());
    assert_matches("custom3-det without names", &got, &want);

    // A names file beside it names them, with no warning ...
    std::fs::write(dir.join("bare.names"), "crate\r\nbox\nhelmet\n\n").unwrap();
    let out = std::process::Command::new(BIN).arg("predict").arg("--model").arg(&path).arg(&image).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("no `names` metadata"), "{err}");
    let got: ApiResponse = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<Detection> = serde_json::from_value(got.data).unwrap();
    let named = ["crate", "box", "helmet"];
    let want: Vec<Detection> = want.into_iter().map(|d| Detection { name: named[d.class].to_string(), ..d }).collect();
    assert_matches("custom3-det with a names file", &got, &want);
    // ... and one that does not fit the model stops the load, naming both files.
    for (text, says) in [("crate\nbox\n", "gives 2 class names"), ("crate\n\nbox\nhelmet\n", "line 2 is empty")] {
        std::fs::write(dir.join("bare.names"), text).unwrap();
        let out = std::process::Command::new(BIN).arg("models").arg("--model").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("bare.names") && err.contains("bare.onnx") && err.contains(says), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Files that are not a YOLO export stop start-up with an error that names
/// the file and what is wrong, never a model that fails on its first request.
#[test]
fn corrupt_and_foreign_model_files_stop_start_up_naming_them() {
    let dir = std::env::temp_dir().join(format!("yolod-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let custom = std::fs::read(fixture("models/families/custom3-det.onnx")).unwrap();
    let classify = std::fs::read(fixture("models/families/yolo11-cls.onnx")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("truncated.onnx", custom[..custom.len() / 2].to_vec(), "is not an ONNX model"),
        ("text.onnx", b"name: not a model\n".to_vec(), "is not an ONNX model"),
        // A classifier without its metadata: an ONNX file, but no YOLO head.
        ("foreign.onnx", without_field(&classify, 14), "its output0 is 1x10"),
    ];
    for (name, bytes, says) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = std::process::Command::new(BIN).arg("models").arg("--model").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("yolod: error: ") && last.contains(name) && last.contains(says), "{name}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `serve`'s extra model files are YOLOD_MODEL_FILES; YOLOD_MODEL, their
/// old name (the model `predict` runs), still works there, with a warning.
#[test]
fn model_files_come_from_yolod_model_files_and_the_old_name_warns() {
    let file = fixture("models/families/yolov8-det.onnx");
    for (var, warns) in [("YOLOD_MODEL_FILES", false), ("YOLOD_MODEL", true)] {
        let out = std::process::Command::new(BIN).arg("models").env(var, &file).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && stdout.contains("yolov8-det"), "{var}: {stdout}{stderr}");
        assert_eq!(stderr.contains("YOLOD_MODEL is read as YOLOD_MODEL_FILES"), warns, "{var}: {stderr}");
    }
}
