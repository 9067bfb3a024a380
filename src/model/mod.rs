//! The model seam: tract loads an ONNX YOLOv8, fixes its input shape,
//! optimises a plan per input size (bounded cache) and runs it.
//! Nothing outside this module imports tract.

pub mod graph;
pub mod meta;
mod params;
// Plan builds: single flight per size, a few kept, new sizes rationed.
pub mod planes;
pub mod plans;
pub mod precision;
pub mod registry;
pub mod rewrite;
pub mod timings;

pub use params::Params;
use rewrite::OwnOps;
pub use timings::{Stage, Timings};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::vision::Object;
use crate::vision::letterbox::{Letterbox, Source};
use crate::vision::outputs::{self, Layout};

use graph::Head;
pub use meta::Task;

/// Largest stride of a YOLOv8 head; network sizes are multiples of it.
const MAX_STRIDE: u32 = 32;
/// Objects returned per image at most, as Ultralytics' `max_det`: the
/// default of `serve --max-detections`, and what the other commands keep.
pub const MAX_DETECTIONS: usize = 300;

/// What a loaded model is, for `/v1/models`, `yolod models` and the logs.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// MODEL_ID in the URL.
    pub id: String,
    /// Where it came from: "embedded" or a file path.
    pub source: String,
    pub sha256: String,
    pub task: Task,
    pub names: Vec<String>,
    pub stride: u32,
    /// The size it was exported at, used when a request names none.
    pub input_size: u32,
    /// Whether `size` changes the network's input (head cut), or is fixed.
    pub any_size: bool,
    pub precision: &'static str,
    /// The architecture, from Ultralytics' `description` metadata
    /// ("YOLO11n"), when it names one.
    pub family: Option<String>,
    /// Why this precision runs, for the embedded model (chosen per CPU);
    /// `None` for a file, which runs as it is.
    pub precision_reason: Option<String>,
}

impl ModelInfo {
    /// The precision with why, when it was chosen: `int8 (auto: cpu has asimddp)`.
    pub fn precision_label(&self) -> String {
        match &self.precision_reason {
            Some(reason) => format!("{} ({reason})", self.precision),
            None => self.precision.to_string(),
        }
    }
}

/// Where a model file's class names may be given: `yolo11n.names` beside
/// `yolo11n.onnx`.
pub fn names_file(model_file: &Path) -> PathBuf {
    model_file.with_extension("names")
}

/// Class names given from outside a model file, and where they came from.
pub struct GivenNames {
    /// The names file, for messages.
    pub source: String,
    pub names: Vec<String>,
}

type Plan = Arc<TypedRunnableModel>;

/// A loaded model with its optimised plans.
pub struct Model {
    pub info: ModelInfo,
    template: InferenceModel,
    /// Which outputs the plans give ...
    head: Head,
    /// ... and how they are laid out.
    layout: Layout,
    /// Keypoints per object (pose models).
    keypoints: usize,
    plans: plans::Plans<Plan>,
}

impl Model {
    /// Parses `bytes` as a YOLOv8 ONNX model and optimises its plan for the
    /// export size, so the first request does not pay for it.
    pub fn load(id: &str, source: &str, bytes: &[u8]) -> Result<Model> {
        Model::load_warm(id, source, bytes, None)
    }

    /// As `load`, optimising the plan for `warm` (a request size) instead of
    /// the export size, for a caller that knows which size it will use.
    pub fn load_warm(id: &str, source: &str, bytes: &[u8], warm: Option<u32>) -> Result<Model> {
        Model::load_named(id, source, bytes, warm, None)
    }

    /// As `load_warm`, with class names given beside the file (a names file),
    /// which take the place of its `names` metadata. Their count must be the
    /// model's wherever the metadata or the output shape tells it.
    pub fn load_named(
        id: &str,
        source: &str,
        bytes: &[u8],
        warm: Option<u32>,
        given: Option<GivenNames>,
    ) -> Result<Model> {
        let mut proto = tract_onnx::onnx()
            .proto_model_for_read(&mut &bytes[..])
            .with_context(|| format!("{source} is not an ONNX model"))?;
        let task_text = graph::metadata(&proto).find(|(k, _)| *k == "task").map(|(_, v)| v.trim().to_string());
        if let Some(other) = task_text.as_deref().filter(|t| Task::parse(t).is_none()) {
            bail!(
                "it is an Ultralytics {other} model; yolod serves detect, segment and pose models \
                 (objects with boxes), which the HUB, DeepStack and camera paths all answer with"
            );
        }
        let declared_names =
            graph::metadata(&proto).find(|(k, _)| *k == "names").and_then(|(_, v)| meta::parse_names(v));
        let family = graph::metadata(&proto).find(|(k, _)| *k == "description").and_then(|(_, v)| meta::family(v));
        let stride = graph::metadata(&proto)
            .find(|(k, _)| *k == "stride")
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(MAX_STRIDE);
        let kpt_shape =
            graph::metadata(&proto).find(|(k, _)| *k == "kpt_shape").and_then(|(_, v)| meta::parse_kpt_shape(v));
        let declared_task = task_text.as_deref().and_then(Task::parse);
        // An NMS-free (end2end) head chooses its boxes by top-k, not NMS: it
        // runs as exported, so that the choice stays the export's.
        let end2end = graph::metadata(&proto).any(|(k, v)| k == "end2end" && v.trim().eq_ignore_ascii_case("true"));
        let mut head = if end2end { Head::Exported { outputs: vec![] } } else { graph::find_head(&proto) };
        let precision = graph::precision(&proto);
        // The shape hints of an export hold for its own size only (a dynamic
        // one's name a symbolic batch that tract will not unify with the
        // batch of 1 fixed below): where the size can change they go, and
        // tract's analysis finds every shape from the input.
        let dynamic = graph::has_dynamic_input(&proto);
        let declared_output = graph::first_output_dims(&proto);
        if dynamic || matches!(head, Head::Raw { .. }) {
            graph::drop_shape_hints(&mut proto, dynamic);
        }
        let template =
            tract_onnx::onnx().model_for_proto_model(&proto).with_context(|| format!("tract cannot read {source}"))?;
        let input_size = export_size(&template).with_context(|| format!("reading the input of {source}"))?;
        let outputs = template.output_outlets()?.len();
        let channels = template
            .output_outlets()?
            .first()
            .and_then(|o| template.outlet_fact(*o).ok())
            .and_then(|f| {
                f.shape.dims().nth(1).and_then(|d| d.concretize()).and_then(|d| d.as_i64().map(|v| v as usize))
            })
            .or_else(|| declared_output.get(1).copied().flatten());
        let counted = channels
            .filter(|_| declared_task.unwrap_or(Task::Detect) == Task::Detect && !end2end)
            .and_then(|c| c.checked_sub(4))
            .filter(|&n| n > 0);
        let names = match (given, declared_names) {
            (Some(given), declared) => {
                let expected = declared.as_ref().map(|d| (d.len(), "declared by its `names` metadata"));
                if let Some((count, from)) = expected.or(counted.map(|c| (c, "counted from its output"))) {
                    if given.names.len() != count {
                        bail!(
                            "{} gives {} class names, but {source} has {count} classes ({from}); \
                             give one name per line for each class, in class order",
                            given.source,
                            given.names.len()
                        );
                    }
                }
                log::info!("{source}: {} class names from {}", given.names.len(), given.source);
                given.names
            }
            (None, Some(names)) => names,
            (None, None) => {
                // No names: as many `classN` as output0 has class rows, for a detect model.
                let count = counted.ok_or_else(|| {
                    anyhow!(
                        "{source} has no Ultralytics `names` metadata, and its class count cannot be read from \
                         its output; put its class names in {} (one per line), or export it with \
                         Ultralytics' `yolo export format=onnx`",
                        names_file(Path::new(source)).display()
                    )
                })?;
                log::warn!(
                    "{source} has no `names` metadata: its {count} classes are named class0..class{} \
                     (a file {} with one name per line names them)",
                    count - 1,
                    names_file(Path::new(source)).display()
                );
                (0..count).map(|i| format!("class{i}")).collect()
            }
        };
        let task = declared_task
            .or_else(|| {
                channels.and_then(|c| meta::task_from_shape(c, names.len(), outputs, kpt_shape.map(|(k, d)| k * d)))
            })
            .unwrap_or(Task::Detect);
        // A segment or pose head whose extra maps were not found runs as exported (fixed size).
        if let Head::Raw { extra, protos, .. } = &mut head {
            if task == Task::Detect {
                // Only boxes and classes are read: whatever else looked like a map stays in the graph.
                extra.clear();
                *protos = None;
            }
            let complete = match task {
                Task::Detect => true,
                Task::Segment => !extra.is_empty() && protos.is_some(),
                Task::Pose => !extra.is_empty(),
            };
            if !complete {
                head = Head::Exported { outputs: vec![] };
            }
        }
        let layout = match &head {
            Head::Raw { maps, scores, .. } => Layout::Maps { levels: maps.len(), split: !scores.is_empty() },
            Head::Exported { .. } => {
                let dims: Vec<Option<usize>> = template
                    .output_outlets()?
                    .first()
                    .and_then(|o| template.outlet_fact(*o).ok())
                    .map(|f| {
                        f.shape.dims().map(|d| d.concretize().and_then(|d| d.as_i64()).map(|v| v as usize)).collect()
                    })
                    .unwrap_or_default();
                meta::exported_layout(task, names.len(), kpt_shape, &dims, end2end, graph::has_nms(&proto))
                    .map_err(anyhow::Error::msg)?
            }
        };
        let keypoints = kpt_shape.map_or(17, |(k, _)| k);
        let info = ModelInfo {
            id: id.to_string(),
            source: source.to_string(),
            sha256: hex(&Sha256::digest(bytes)),
            task,
            names,
            stride,
            input_size,
            any_size: dynamic || matches!(head, Head::Raw { .. }),
            precision,
            precision_reason: None,
            family,
        };
        let mut model = Model { info, template, head, layout, keypoints, plans: plans::Plans::default() };
        // 4-20 ms for the families' fixtures and the embedded model.
        if model.info.any_size && !dynamic {
            model.info.any_size = model.body_runs_at_other_sizes();
        }
        let size = warm.map_or(input_size, |s| model.network_size(s));
        model
            .plans
            .pin(size, || model.build_plan(size))
            .with_context(|| format!("optimising {source} for {size}x{size}"))?;
        Ok(model)
    }

    /// The network input size a request for `size` runs at: rounded up to a
    /// multiple of the stride, or the fixed export size.
    pub fn network_size(&self, size: u32) -> u32 {
        if self.info.any_size { size.div_ceil(MAX_STRIDE).max(1) * MAX_STRIDE } else { self.info.input_size }
    }

    /// The optimised plan for `size`: built once on first use, a few kept,
    /// new sizes rationed ([`plans`]).
    fn plan(&self, size: u32) -> Result<Plan> {
        self.plans.get(size, || self.build_plan(size))
    }

    /// Plans optimised since load, the load-time one included.
    pub fn plans_built(&self) -> u64 {
        self.plans.built()
    }

    fn build_plan(&self, size: u32) -> Result<Plan> {
        self.build_plan_with(size, OwnOps::All, plan_knobs(std::env::consts::ARCH))
    }

    /// Whether the network's body runs at a size other than the export's:
    /// tract's shape analysis at half of it. A fixed export whose body
    /// reshapes to its own size (the attention blocks of YOLO11, YOLO12 and
    /// YOLO26) fails it, and then runs at its export size only, even with
    /// its head cut.
    fn body_runs_at_other_sizes(&self) -> bool {
        let other = (self.info.input_size / 2).div_ceil(MAX_STRIDE).max(1) * MAX_STRIDE;
        let s = other as usize;
        self.cut()
            .and_then(|mut model| {
                model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec![1, 3, s, s]))?;
                model.into_typed()
            })
            .is_ok()
    }

    /// The template with its outputs at the head's cut (the template itself
    /// when the head is not cut).
    fn cut(&self) -> Result<InferenceModel> {
        let mut model = self.template.clone();
        if let Head::Raw { maps, scores, extra, protos } = &self.head {
            let outlets = maps
                .iter()
                .chain(scores)
                .chain(extra)
                .chain(protos)
                .map(|label| model.find_outlet_label(label).ok_or_else(|| anyhow!("head map {label} not found")))
                .collect::<Result<Vec<_>>>()?;
            model.select_output_outlets(&outlets)?;
            model = model.into_compact()?;
        }
        Ok(model)
    }

    /// `own`: which of tract's int8 ops to replace ([`OwnOps`]). `knobs`:
    /// tract settings for the optimisation ([`plan_knobs`]).
    fn build_plan_with(&self, size: u32, own: OwnOps, knobs: &[(&str, &str)]) -> Result<Plan> {
        let mut model = self.cut()?;
        let s = size as usize;
        model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec![1, 3, s, s]))?;
        let knobs = tract_onnx::tract_core::knobs::KnobScope::new(knobs.iter().copied())?;
        let mut optimized = knobs.enter(|| model.into_optimized())?;
        if own != OwnOps::None {
            let report = rewrite::rewrite(&mut optimized, own)?;
            log::debug!("{} at {size}: rewrote {report}", self.info.id);
            optimized = optimized.into_compact()?;
        }
        optimized.into_runnable()
    }

    /// Runs the model on an upright RGB image: letterbox, inference, decode,
    /// NMS, masks or keypoints. Coordinates come back in the image's pixels, best first.
    pub fn predict(&self, image: &dyn Source, params: &Params, timings: &mut Timings) -> Result<Vec<Object>> {
        let start = Instant::now();
        let (width, height) = image.size();
        let prepared = self.prepare(image, params.size_for(width, height))?;
        timings[Stage::Preprocess] = start.elapsed();
        let start = Instant::now();
        let outputs = self.infer(&prepared)?;
        timings[Stage::Inference] = start.elapsed();
        let start = Instant::now();
        let detections = self.postprocess(&prepared, &outputs, params)?;
        timings[Stage::Postprocess] = start.elapsed();
        Ok(detections)
    }

    /// Letterboxes `image` into the input tensor for `size` (and fetches its plan).
    pub fn prepare(&self, image: &dyn Source, size: u32) -> Result<Prepared> {
        let size = self.network_size(size);
        let plan = self.plan(size)?;
        let (width, height) = image.size();
        let letterbox = Letterbox::new(width, height, size, size);
        let s = size as usize;
        let mut input = vec![0f32; 3 * s * s];
        image.letterbox(&letterbox, &mut input);
        let input: Tensor = tract_ndarray::Array4::from_shape_vec((1, 3, s, s), input)?.into();
        Ok(Prepared { input: input.into_arc_tensor(), letterbox, plan })
    }

    /// Runs the network; nothing else.
    pub fn infer(&self, prepared: &Prepared) -> Result<Outputs> {
        Ok(Outputs(prepared.plan.run(tvec![TValue::from_const(prepared.input.clone())])?))
    }

    /// Decodes the network's outputs into objects in source-image pixels
    /// ([`outputs::objects`] picks the decoder for the layout).
    pub fn postprocess(&self, prepared: &Prepared, outputs: &Outputs, params: &Params) -> Result<Vec<Object>> {
        let tensors = outputs
            .0
            .iter()
            .map(|t| Ok(outputs::Tensor { data: t.try_as_plain_ram()?.as_slice::<f32>()?, shape: t.shape() }))
            .collect::<Result<Vec<_>>>()?;
        let decoding = outputs::Decoding {
            task: self.info.task,
            classes: self.info.names.len(),
            keypoints: self.keypoints,
            confidence: params.confidence,
            iou: params.iou,
            max_detections: params.max_detections,
        };
        outputs::objects(self.layout, &tensors, &decoding, &prepared.letterbox)
    }
}

/// tract settings in force while a plan is optimised, by target
/// architecture. On aarch64 tract's direct spatial convolution (`conv_w4`,
/// chosen for 3x3 convolutions of up to 64 input channels) costs more than
/// its im2col and matrix product: yolov8n at 640 on a Cortex-A76 takes
/// 1.763 G instructions with it and 1.682 G without (BENCHMARKS.md). On
/// x86 tract's choice is the faster one (221 against 281 ms at 640), so it
/// chooses there.
fn plan_knobs(arch: &str) -> &'static [(&'static str, &'static str)] {
    match arch {
        "aarch64" => &[("TRACT_DISABLE_DIRECT_SPATIAL", "true")],
        _ => &[],
    }
}

/// A letterboxed input, ready to run.
pub struct Prepared {
    input: Arc<Tensor>,
    pub letterbox: Letterbox,
    plan: Plan,
}

/// The network's raw outputs.
pub struct Outputs(TVec<TValue>);

/// The square input size the ONNX file declares (e.g. 640), or 640 when dynamic.
fn export_size(model: &InferenceModel) -> Result<u32> {
    let input = model.input_outlets()?.first().copied().ok_or_else(|| anyhow!("the model has no input"))?;
    let fact = model.outlet_fact(input)?;
    let dims: Vec<Option<usize>> =
        fact.shape.dims().map(|d| d.concretize().and_then(|d| d.as_i64().map(|v| v as usize))).collect();
    match dims.as_slice() {
        [_, Some(3) | None, Some(h), Some(w)] if h == w => Ok(*h as u32),
        [_, Some(3) | None, Some(h), Some(w)] => bail!("non-square input {h}x{w} is not supported"),
        [_, Some(3) | None, _, _] => Ok(640),
        _ => bail!("expected an NCHW RGB input, found {dims:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::conv::DirectSpatialConv;

    /// The fp32 model with our ops (of which only the max pool applies)
    /// and with tract's: the same outputs, bit for bit.
    #[test]
    fn the_fp32_model_gives_identical_outputs_with_our_max_pool() {
        let model = Model::load("yolov8n", "embedded", &registry::embedded_onnx(false)).unwrap();
        let image = crate::vision::decode::decode(
            &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images/bus.jpg")).unwrap(),
            Default::default(),
        )
        .unwrap();
        let prepared = model.prepare(&image, 320).unwrap();
        let run = |own| {
            let plan = model.build_plan_with(320, own, &[]).unwrap();
            let pools = plan.model().nodes().iter().filter(|n| n.op_is::<rewrite::maxpool::MaxPool>()).count();
            let outputs = plan.run(tvec![TValue::from_const(prepared.input.clone())]).unwrap();
            (
                pools,
                outputs
                    .iter()
                    .map(|t| t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec())
                    .collect::<Vec<_>>(),
            )
        };
        let ((ours, a), (theirs, b)) = (run(OwnOps::Exact), run(OwnOps::None));
        assert_eq!((ours, theirs), (3, 0), "SPPF's three max pools are ours");
        assert_eq!(a, b);
    }

    #[test]
    fn aarch64_plans_run_every_fp32_convolution_as_a_matrix_product() {
        let model = Model::load("yolov8n", "embedded", &registry::embedded_onnx(false)).unwrap();
        let direct = |knobs| {
            let plan = model.build_plan_with(320, OwnOps::All, knobs).unwrap();
            plan.model().nodes().iter().filter(|n| n.op_is::<DirectSpatialConv>()).count()
        };
        assert_eq!(direct(plan_knobs("aarch64")), 0);
        // Where tract has the direct kernel (x86 with AVX2 here), it takes some
        // convolutions when left to choose: the knob is what turns them away.
        if tract_onnx::tract_core::tract_linalg::routines::conv_w4_f32().is_some() {
            assert!(direct(&[]) > 0, "tract no longer picks direct spatial convolutions; plan_knobs may be moot");
        }
    }
}
