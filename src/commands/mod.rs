//! The four modes: `serve`, `predict`, `models`, `bench`, each a function
//! from its parsed arguments to an exit code.

mod bench;
mod capture;
mod serve;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

pub use bench::bench;
pub use capture::capture;
pub use serve::serve;

use crate::api::wire::{self, Empty, Envelope, ModelEntry};
use crate::cli::{ModelsArgs, PredictArgs};
use crate::engine::{self, Input, Job};
use crate::model::registry::{self, EMBEDDED_BYTES, EMBEDDED_ID, Registry};
use crate::model::{Model, Params};
use crate::vision::decode::DecodeLimits;

/// Loads just the model a CLI command names: the embedded one by id, or a
/// file; its first plan is optimised for `size`, the size the command will run.
fn load_model(id_or_file: &str, size: u32) -> Result<Arc<Model>> {
    if id_or_file == EMBEDDED_ID {
        return Ok(Arc::new(Model::load_warm(EMBEDDED_ID, "embedded yolov8n.onnx", EMBEDDED_BYTES, Some(size))?));
    }
    let path = std::path::Path::new(id_or_file);
    anyhow::ensure!(path.is_file(), "no model {id_or_file:?}: it is neither {EMBEDDED_ID:?} (built in) nor an ONNX file");
    Ok(Arc::new(registry::load_file_warm(&registry::model_id(path)?, path, Some(size))?))
}

/// `yolod predict`: one line of API JSON per image on stdout, in order.
pub fn predict(args: PredictArgs) -> Result<ExitCode> {
    if !(0.01..=1.0).contains(&args.confidence) {
        anyhow::bail!("--confidence {} is outside 0.01 - 1.0", args.confidence);
    }
    if !(0.0..=0.95).contains(&args.iou) {
        anyhow::bail!("--iou {} is outside 0.0 - 0.95", args.iou);
    }
    let model = load_model(&args.inference.model, args.inference.size)?;
    let params = Params { size: args.inference.size, confidence: args.confidence, iou: args.iou };
    let mut stdout = std::io::stdout().lock();
    let mut failed = 0;
    for path in &args.images {
        let result = std::fs::read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|bytes| {
                let job = Job { model: model.clone(), input: Input::Encoded(bytes), params };
                engine::process(job, DecodeLimits::default()).map_err(|e| format!("{}: {e}", path.display()))
            });
        match result {
            Ok(out) => {
                let data = wire::objects(&out.objects, &model.info.names, args.normalize, out.width, out.height);
                wire::write(&mut stdout, &Envelope { success: true, message: "Inference complete.", data })?;
            }
            Err(message) => {
                eprintln!("yolod: {message}");
                failed += 1;
                wire::write(&mut stdout, &Envelope { success: false, message: &message, data: Empty {} })?;
            }
        }
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `yolod models`: a table of the embedded model and any others given.
pub fn models(args: ModelsArgs) -> Result<ExitCode> {
    let registry = Registry::load(&crate::config::sources(&args.models, None)).context("loading models")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let entries: Vec<ModelEntry> =
            registry.all().iter().enumerate().map(|(i, m)| ModelEntry::new(&m.info, i == 0)).collect();
        wire::write(&mut out, &Envelope { success: true, message: "Models loaded on this server.", data: entries })?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{:<20} {:<8} {:>7} {:>6} {:<9} {:<5} SOURCE", "ID", "TASK", "CLASSES", "SIZE", "PRECISION", "SIZES")?;
    for (i, m) in registry.all().iter().enumerate() {
        let info = &m.info;
        let id = if i == 0 { format!("{} *", info.id) } else { info.id.clone() };
        let sizes = if info.any_size { "any" } else { "fixed" };
        writeln!(
            out,
            "{:<20} {:<8} {:>7} {:>6} {:<9} {:<5} {}",
            id, info.task.as_str(), info.names.len(), info.input_size, info.precision, sizes, info.source
        )?;
    }
    writeln!(out, "\n* default model (POST /v1/predict). Classes: GET /v1/models or `yolod models --json`.")?;
    Ok(ExitCode::SUCCESS)
}
