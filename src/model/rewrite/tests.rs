//! The whole plan, rewritten and not: what [`super::rewrite`] proves
//! against tract on the shipped int8 model.

use super::*;

/// The shipped int8 model, as a file (not the embedded copy), with the
/// plans these tests build by hand.
fn int8_model() -> crate::model::Model {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/int8/yolov8n-convint.onnx");
    crate::model::Model::load("convint", "test", &std::fs::read(path).unwrap()).unwrap()
}

fn image(name: &str) -> crate::vision::decode::Rgb {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images").join(name);
    crate::vision::decode::decode(&std::fs::read(path).unwrap(), Default::default()).unwrap()
}

/// Both plans on `image` at `size`: the same outputs, bit for bit.
fn assert_same_outputs(
    model: &crate::model::Model,
    image: &crate::vision::decode::Rgb,
    size: u32,
    ours: &crate::model::Plan,
    theirs: &crate::model::Plan,
) {
    let prepared = model.prepare(image, size).unwrap();
    let a = ours.run(tvec![TValue::from_const(prepared.input.clone())]).unwrap();
    let b = theirs.run(tvec![TValue::from_const(prepared.input.clone())]).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let plain = |t: &TValue| t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        assert_eq!(plain(x), plain(y), "size {size}");
    }
}

/// The whole int8 model, with tract's im2col and with ours: the same
/// outputs, bit for bit, on a real image at two sizes.
#[test]
fn the_int8_model_gives_identical_outputs_with_our_patches() {
    let model = int8_model();
    let image = image("zidane.jpg");
    for size in [320, 192] {
        let ours = model.build_plan_with(size, OwnOps::Exact, &[]).unwrap();
        let theirs = model.build_plan_with(size, OwnOps::None, &[]).unwrap();
        let replaced = ours.model().nodes().iter().filter(|n| n.op_is::<patches::Patches>()).count();
        let left = theirs
            .model()
            .nodes()
            .iter()
            .filter(|n| n.op_is::<tract_onnx::tract_core::ops::cnn::conv::Im2Col>())
            .count();
        assert_eq!(replaced, left, "at {size}: every Im2Col of tract's plan is replaced in ours");
        // QuantizeLinear nodes replaced: ours alone, or absorbed in an activation.
        let quantizers = ours
            .model()
            .nodes()
            .iter()
            .filter(|n| {
                n.op_is::<quantize::Quantize>()
                    || (n.op_is::<activation::Activation>()
                        && n.outputs[0].fact.datum_type.unquantized() == i8::datum_type())
            })
            .count();
        assert!(quantizers > 40, "only {quantizers} QuantizeLinear nodes replaced at {size}");
        assert!(replaced > 20, "only {replaced} Im2Col nodes replaced at {size}");
        let packs = ours.model().nodes().iter().filter(|n| n.op_is::<pack::Pack>()).count();
        let packs_left = theirs
            .model()
            .nodes()
            .iter()
            .filter(|n| n.op_is::<tract_onnx::tract_core::ops::matmul::pack::OptMatMulPack>())
            .count();
        assert!(packs > 10 && packs == packs_left, "at {size}: {packs} of {packs_left} activation packs replaced");
        let pools = ours.model().nodes().iter().filter(|n| n.op_is::<maxpool::MaxPool>()).count();
        let pools_left =
            theirs.model().nodes().iter().filter(|n| n.op_is::<tract_onnx::tract_core::ops::cnn::OptMaxPool>()).count();
        assert!(pools == 3 && pools_left == 3, "at {size}: {pools} of {pools_left} max pools replaced");
        let activations = ours.model().nodes().iter().filter(|n| n.op_is::<activation::Activation>()).count();
        let casts =
            theirs.model().nodes().iter().filter(|n| n.op_is::<tract_onnx::tract_core::ops::cast::Cast>()).count();
        assert_eq!(activations, casts, "at {size}: every i32 -> f32 cast starts a fused activation");
        assert_same_outputs(&model, &image, size, &ours, &theirs);
    }
}

/// Our SiLU kernel changes the int8 model's outputs by little: some
/// activations move by one int8 step, and the outputs stay within 2% of
/// tract's SiLU's (mean difference against mean size; 0.75% measured).
#[test]
fn our_silu_changes_the_int8_models_outputs_by_little() {
    let model = int8_model();
    let image = image("bus.jpg");
    let size = 320;
    let prepared = model.prepare(&image, size).unwrap();
    let run = |own| {
        let plan = model.build_plan_with(size, own, &[]).unwrap();
        let outputs = plan.run(tvec![TValue::from_const(prepared.input.clone())]).unwrap();
        outputs
            .iter()
            .flat_map(|t| t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec())
            .collect::<Vec<f32>>()
    };
    let (ours, theirs) = (run(OwnOps::All), run(OwnOps::Exact));
    assert_eq!(ours.len(), theirs.len());
    let mean = |v: Vec<f32>| v.iter().map(|x| x.abs() as f64).sum::<f64>() / v.len() as f64;
    let diff = mean(ours.iter().zip(&theirs).map(|(a, b)| a - b).collect());
    let size = mean(theirs.clone());
    eprintln!("mean |difference| {diff}, mean |output| {size}");
    assert!(ours != theirs, "our SiLU kernel did not run");
    assert!(diff < 0.02 * size, "mean |difference| {diff} against mean |output| {size}");
}

/// The report counts what each pass replaced, against the nodes of
/// tract's own plan it replaces; `OwnOps::None` replaces nothing.
#[test]
fn the_report_counts_what_each_pass_replaced() {
    let model = int8_model();
    let optimized = || {
        let mut m = model.cut().unwrap();
        m.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec![1, 3, 320, 320])).unwrap();
        m.into_optimized().unwrap()
    };
    let tracts = optimized();
    let count = |op: fn(&TypedNode) -> bool| tracts.nodes().iter().filter(|n| op(n)).count();
    let mut ours = optimized();
    assert_eq!(rewrite(&mut ours, OwnOps::None).unwrap(), RewriteReport::default());
    let report = rewrite(&mut ours, OwnOps::All).unwrap();
    assert_eq!(report.im2col, count(|n| n.op_is::<tract_onnx::tract_core::ops::cnn::conv::Im2Col>()));
    assert_eq!(report.pack, count(|n| n.op_is::<tract_onnx::tract_core::ops::matmul::pack::OptMatMulPack>()));
    assert_eq!(report.activations, count(|n| n.op_is::<tract_onnx::tract_core::ops::cast::Cast>()));
    assert_eq!(report.max_pools, 3);
    assert!(report.im2col > 20 && report.pack > 10 && report.quantize > 0, "{report}");
    assert!(report.to_string().starts_with(&format!("{} im2col, {} packs", report.im2col, report.pack)));
}

/// Pass 6 changes no value: with the convolutions fused (NEON tiles on a
/// dot-product core, the portable ones on other K4 packings, as x86's
/// VNNI kernel's) the int8 model gives the outputs of the plan without
/// them, bit for bit, at two sizes (at 320 the 10 x 10 maps end in a
/// short panel of columns).
#[test]
fn the_fused_convolutions_give_the_same_outputs_bit_for_bit() {
    use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
    let model = int8_model();
    let image = image("bus.jpg");
    let fused = if conv::has_dot_product() { OwnOps::All } else { OwnOps::Everywhere };
    for size in [320, 224] {
        let ours = model.build_plan_with(size, fused, &[]).unwrap();
        let theirs = model.build_plan_with(size, OwnOps::OwnSilu, &[]).unwrap();
        let count = |plan: &crate::model::Plan, op: fn(&TypedNode) -> bool| {
            plan.model().nodes().iter().filter(|n| op(n)).count()
        };
        let convs = count(&ours, |n| n.op_is::<conv::Conv>());
        // tract packs its int8 operands in K4 panels for dot-product kernels
        // (SDOT, VNNI); pass 6 reads no other packing.
        let k4 = count(&theirs, |n| {
            n.op_as::<OptMatMul>().is_some_and(|op| {
                op.mmm.iter().any(|k| {
                    k.packings().iter().any(|(a, _)| a.downcast_ref::<tract_linalg::pack::PackedI8K4>().is_some())
                })
            })
        });
        eprintln!("size {size}: {convs} fused convolutions, {k4} matmuls on K4 panels");
        assert_eq!(convs, k4, "at {size}: every matmul on K4 panels is fused with its activation");
        // The 1x1 convolutions' inputs, packed one row at a time for tract,
        // are packed whole for the fused ones.
        let batched = |n: &TypedNode| {
            n.op_is::<pack::Pack>()
                && n.outputs[0].fact.shape.as_concrete().is_some_and(|s| s.iter().product::<usize>() > 1)
        };
        assert!(count(&theirs, batched) > 10, "at {size}: tract packs by rows");
        assert_eq!(count(&ours, batched), if convs > 0 { 0 } else { count(&theirs, batched) }, "at {size}");
        assert_same_outputs(&model, &image, size, &ours, &theirs);
    }
}
