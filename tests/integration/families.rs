//! Ultralytics exports of several families (tests/fixtures/models/families/,
//! made by tests/reference/families.py) served over HTTP and checked against
//! their onnxruntime goldens. Only the exports yolod handles today are here;
//! the families README's table says what the others do.

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

#[test]
fn default_exports_of_yolov8_yolo11_and_yolo26_match_their_goldens() {
    serve_and_compare(&["yolov8-det", "yolo11-det", "yolo26-det"]);
}

#[test]
fn a_three_class_model_answers_with_its_own_names() {
    serve_and_compare(&["custom3-det"]);
}

/// NMS-free (end2end) exports of YOLOv10 and YOLO26, and one with NMS in the
/// graph, give rows of chosen boxes that yolod does not read yet: each is
/// refused at load, naming the file and what to do, never served with wrong
/// boxes (which is what happened before the check).
#[test]
fn nms_free_and_in_graph_nms_exports_are_refused_at_load_with_the_way_out() {
    for name in ["yolov10n-det-e2e", "yolo26-det-e2e", "yolo26-seg-e2e", "yolo26-pose-e2e", "yolo26-det-nms"] {
        let path = fixture(&format!("models/families/{name}.onnx"));
        let out = std::process::Command::new(BIN).arg("models").arg("--model").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} loaded:\n{}", String::from_utf8_lossy(&out.stdout));
        assert!(err.contains(&format!("{name}.onnx")), "{name}: {err}");
        assert!(err.contains("NMS-free") && err.contains("without `nms=`"), "{name}: {err}");
    }
}
