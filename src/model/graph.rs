//! Reading the ONNX graph before tract sees it: where to cut the YOLOv8 head
//! so the network runs at any input size, and which precision it computes in.

use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};

/// Where yolod takes the network's outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// The raw per-stride head maps (box bins + class logits), before the
    /// export's anchor decode: fully convolutional, so any size runs.
    /// With `scores` empty, each of `maps` holds box bins and class logits
    /// (exports up to Ultralytics 8.3); otherwise `maps` are the box maps
    /// and `scores` the class maps, level for level (8.4). `extra` are the
    /// per-stride mask-coefficient (segment) or keypoint (pose) maps,
    /// `protos` the segmentation prototypes.
    Raw { maps: Vec<String>, scores: Vec<String>, extra: Vec<String>, protos: Option<String> },
    /// The exported outputs as they are; the input size is fixed.
    Exported { outputs: Vec<String> },
}

fn producer<'a>(graph: &'a GraphProto, tensor: &str) -> Option<&'a NodeProto> {
    graph.node.iter().find(|n| n.output.iter().any(|o| o == tensor))
}

/// The inputs of the `Reshape`s a `Concat` joins, when it joins only reshapes.
fn reshaped_inputs(graph: &GraphProto, concat: &NodeProto) -> Option<Vec<String>> {
    if concat.op_type != "Concat" || concat.input.is_empty() {
        return None;
    }
    concat.input.iter().map(|t| producer(graph, t).filter(|n| n.op_type == "Reshape")?.input.first().cloned()).collect()
}

/// Finds the Detect head's box/class split: a `Split` fed by a `Concat` of
/// `Reshape`s, whose inputs are the per-stride maps (Ultralytics exports
/// YOLOv8 detect, segment and pose heads this way). Segment and pose heads
/// have a second `Concat` of as many `Reshape`s (mask coefficients or raw
/// keypoints); a segment export's second output is the prototypes.
pub fn find_head(model: &ModelProto) -> Head {
    let Some(graph) = model.graph.as_ref() else {
        return Head::Exported { outputs: vec![] };
    };
    let exported = Head::Exported { outputs: graph.output.iter().map(|o| o.name.clone()).collect() };
    for split in graph.node.iter().filter(|n| n.op_type == "Split") {
        let Some(concat) = split.input.first().and_then(|t| producer(graph, t)) else { continue };
        let Some(maps) = reshaped_inputs(graph, concat) else { continue };
        let extra = graph
            .node
            .iter()
            .filter(|n| !std::ptr::eq(*n, concat))
            .filter_map(|n| reshaped_inputs(graph, n))
            .find(|e| e.len() == maps.len())
            .unwrap_or_default();
        let protos = graph.output.get(1).map(|o| o.name.clone());
        return Head::Raw { maps, scores: vec![], extra, protos };
    }
    split_head(graph).unwrap_or(exported)
}

/// The head as Ultralytics 8.4 exports it: box maps and class maps each
/// reshaped and joined by their own `Concat`. The class `Concat` feeds a
/// `Sigmoid`; the box one feeds the DFL (`Reshape`) or, without DFL
/// (YOLO26), the `Slice`s of the distances. A segment or pose head has a
/// third such `Concat` (mask coefficients or raw keypoints), as the layout
/// up to 8.3 has.
fn split_head(graph: &GraphProto) -> Option<Head> {
    let feeds = |concat: &NodeProto, ops: &[&str]| {
        concat
            .output
            .first()
            .is_some_and(|o| graph.node.iter().any(|n| n.input.contains(o) && ops.contains(&n.op_type.as_str())))
    };
    let joins: Vec<(&NodeProto, Vec<String>)> =
        graph.node.iter().filter_map(|n| reshaped_inputs(graph, n).map(|maps| (n, maps))).collect();
    let (_, scores) = joins.iter().find(|(n, _)| feeds(n, &["Sigmoid"]))?;
    let (_, maps) = joins.iter().find(|(n, maps)| maps.len() == scores.len() && feeds(n, &["Slice", "Reshape"]))?;
    // Convolution outputs, as the box and class maps are: a dynamic export
    // also joins reshaped anchor grids, which are not maps.
    let convolved = |e: &Vec<String>| e.iter().all(|t| producer(graph, t).is_some_and(|n| n.op_type == "Conv"));
    let extra = joins
        .iter()
        .map(|(_, e)| e)
        .find(|e| e.len() == maps.len() && *e != maps && *e != scores && convolved(e))
        .cloned()
        .unwrap_or_default();
    let protos = graph.output.get(1).map(|o| o.name.clone());
    Some(Head::Raw { maps: maps.clone(), scores: scores.clone(), extra, protos })
}

/// Whether the first input's height or width is symbolic (an Ultralytics
/// export with `dynamic=True`).
pub fn has_dynamic_input(model: &ModelProto) -> bool {
    let Some(input) = model.graph.as_ref().and_then(|g| g.input.first()) else { return false };
    let Some(Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else { return false };
    let dims = t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
    dims.len() == 4 && dims[2..].iter().any(|d| !matches!(d.value, Some(DimValue::DimValue(_))))
}

/// The shape the graph declares for its first output (None where symbolic
/// or absent).
pub fn first_output_dims(model: &ModelProto) -> Vec<Option<usize>> {
    let Some(output) = model.graph.as_ref().and_then(|g| g.output.first()) else { return vec![] };
    let Some(Value::TensorType(t)) = output.r#type.as_ref().and_then(|t| t.value.as_ref()) else { return vec![] };
    let dims = t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
    dims.iter()
        .map(|d| match d.value {
            Some(DimValue::DimValue(v)) if v >= 0 => Some(v as usize),
            _ => None,
        })
        .collect()
}

/// Drops the intermediate shape hints (`value_info`), and with `outputs`
/// the outputs' declared shapes, keeping their names and types.
pub fn drop_shape_hints(model: &mut ModelProto, outputs: bool) {
    if let Some(graph) = model.graph.as_mut() {
        graph.value_info.clear();
        for output in graph.output.iter_mut().filter(|_| outputs) {
            if let Some(Value::TensorType(t)) = output.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                t.shape = None;
            }
        }
    }
}

/// Whether the graph runs ONNX's `NonMaxSuppression` (an Ultralytics
/// export with `nms=True`).
pub fn has_nms(model: &ModelProto) -> bool {
    model.graph.iter().flat_map(|g| &g.node).any(|n| n.op_type == "NonMaxSuppression")
}

/// "int8" when the graph carries quantized operators, else "fp32".
pub fn precision(model: &ModelProto) -> &'static str {
    const QUANTIZED: [&str; 5] = ["QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "QLinearMatMul"];
    let quantized = model.graph.iter().flat_map(|g| &g.node).any(|n| QUANTIZED.contains(&n.op_type.as_str()));
    if quantized { "int8" } else { "fp32" }
}

/// Ultralytics' `metadata_props` as key/value pairs.
pub fn metadata(model: &ModelProto) -> impl Iterator<Item = (&str, &str)> {
    model.metadata_props.iter().map(|p| (p.key.as_str(), p.value.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn model(nodes: Vec<NodeProto>) -> ModelProto {
        let graph = GraphProto {
            node: nodes,
            output: vec![tract_onnx::pb::ValueInfoProto { name: "output0".into(), ..Default::default() }],
            ..Default::default()
        };
        ModelProto { graph: Some(graph), ..Default::default() }
    }

    #[test]
    fn yolov8_head_is_cut_at_the_maps_feeding_the_split() {
        let m = model(vec![
            node("Concat", &["box0", "cls0"], "p3"),
            node("Concat", &["box1", "cls1"], "p4"),
            node("Reshape", &["p3", "shape"], "r3"),
            node("Reshape", &["p4", "shape"], "r4"),
            node("Concat", &["r3", "r4"], "all"),
            node("Split", &["all", "sizes"], "boxes"),
        ]);
        assert_eq!(
            find_head(&m),
            Head::Raw { maps: vec!["p3".into(), "p4".into()], scores: vec![], extra: vec![], protos: None }
        );
        assert_eq!(precision(&m), "fp32");
    }

    #[test]
    fn segment_and_pose_heads_bring_their_extra_maps() {
        let m = model(vec![
            node("Reshape", &["mc3", "s"], "q3"),
            node("Reshape", &["mc4", "s"], "q4"),
            node("Concat", &["q3", "q4"], "mc"),
            node("Reshape", &["p3", "shape"], "r3"),
            node("Reshape", &["p4", "shape"], "r4"),
            node("Concat", &["r3", "r4"], "all"),
            node("Split", &["all", "sizes"], "boxes"),
        ]);
        let Head::Raw { extra, .. } = find_head(&m) else { panic!("no head") };
        assert_eq!(extra, vec!["mc3".to_string(), "mc4".to_string()]);
    }

    /// Ultralytics 8.4: box and class maps joined apart, the class join
    /// sigmoided, the box join sliced (YOLO26) or through the DFL.
    #[test]
    fn split_heads_are_cut_at_their_box_and_class_maps() {
        for box_consumer in ["Slice", "Reshape"] {
            let m = model(vec![
                node("Reshape", &["box3", "s"], "b3"),
                node("Reshape", &["box4", "s"], "b4"),
                node("Concat", &["b3", "b4"], "boxes"),
                node("Reshape", &["cls3", "s"], "c3"),
                node("Reshape", &["cls4", "s"], "c4"),
                node("Concat", &["c3", "c4"], "classes"),
                node(box_consumer, &["boxes", "x"], "lt"),
                node("Sigmoid", &["classes"], "scores"),
            ]);
            assert_eq!(
                find_head(&m),
                Head::Raw {
                    maps: vec!["box3".into(), "box4".into()],
                    scores: vec!["cls3".into(), "cls4".into()],
                    extra: vec![],
                    protos: None
                }
            );
        }
        // A segment or pose head's third join (mask coefficients, keypoints)
        // comes along; the prototypes are the second output.
        let mut m = model(vec![
            node("Reshape", &["box3", "s"], "b3"),
            node("Reshape", &["box4", "s"], "b4"),
            node("Concat", &["b3", "b4"], "boxes"),
            node("Reshape", &["cls3", "s"], "c3"),
            node("Reshape", &["cls4", "s"], "c4"),
            node("Concat", &["c3", "c4"], "classes"),
            // A dynamic export's anchor grids, joined the same way, are not maps.
            node("Range", &["h3"], "g3"),
            node("Range", &["h4"], "g4"),
            node("Reshape", &["g3", "s"], "a3"),
            node("Reshape", &["g4", "s"], "a4"),
            node("Concat", &["a3", "a4"], "anchors"),
            node("Conv", &["f3", "w3"], "mc3"),
            node("Conv", &["f4", "w4"], "mc4"),
            node("Reshape", &["mc3", "s"], "m3"),
            node("Reshape", &["mc4", "s"], "m4"),
            node("Concat", &["m3", "m4"], "coefficients"),
            node("Slice", &["boxes", "x"], "lt"),
            node("Sigmoid", &["classes"], "scores"),
        ]);
        let protos = tract_onnx::pb::ValueInfoProto { name: "protos".into(), ..Default::default() };
        m.graph.as_mut().unwrap().output.push(protos);
        let Head::Raw { maps, extra, protos, .. } = find_head(&m) else { panic!("no head") };
        assert_eq!((maps, extra), (vec!["box3".into(), "box4".into()], vec!["mc3".into(), "mc4".into()]));
        assert_eq!(protos.as_deref(), Some("protos"));
        // Without the sigmoided class join it is not a head.
        let m = model(vec![
            node("Reshape", &["box3", "s"], "b3"),
            node("Concat", &["b3"], "boxes"),
            node("Slice", &["boxes", "x"], "lt"),
        ]);
        assert!(matches!(find_head(&m), Head::Exported { .. }));
    }

    #[test]
    fn graphs_without_the_pattern_keep_their_outputs() {
        let m = model(vec![
            node("Concat", &["a", "b"], "all"),
            node("Split", &["all"], "x"),
            node("QuantizeLinear", &["x"], "output0"),
        ]);
        assert_eq!(find_head(&m), Head::Exported { outputs: vec!["output0".into()] });
        assert_eq!(precision(&m), "int8");
    }
}
