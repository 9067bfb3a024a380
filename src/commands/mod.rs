//! The five modes: `serve`, `predict`, `models`, `bench`, `capture`, each a
//! function from its parsed arguments to an exit code.

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

use crate::cli::{ModelsArgs, PredictArgs};
use crate::engine::{self, Input, Job};
use crate::model::precision::Precision;
use crate::model::registry::{self, EMBEDDED_ID, Embedded, Registry};
use crate::model::{Model, Params};
use crate::vision::decode::DecodeLimits;
use crate::wire::{self, Empty, Envelope, ModelEntry};

/// Loads just the model a CLI command names: the embedded one by id, or a
/// file; its first plan is optimised for `size`, the size the command will run.
fn load_model(id_or_file: &str, precision: Precision, size: u32) -> Result<Arc<Model>> {
    if id_or_file == EMBEDDED_ID {
        return Ok(Arc::new(Embedded::new(precision).load_warm(Some(size))?));
    }
    let path = std::path::Path::new(id_or_file);
    anyhow::ensure!(
        path.is_file(),
        "no model {id_or_file:?}: it is neither {EMBEDDED_ID:?} (built in) nor an ONNX file"
    );
    Ok(Arc::new(registry::load_file_warm(&registry::model_id(path)?, path, Some(size))?))
}

/// `yolod predict`: one line of API JSON per image on stdout, in order.
pub fn predict(args: PredictArgs) -> Result<ExitCode> {
    let model = load_model(&args.inference.model, args.inference.precision.precision, args.inference.size)?;
    let params = Params::new(args.inference.size, args.confidence, args.iou);
    let mut pictures = args.annotate.as_deref().map(|out| Pictures::new(out, args.images.len())).transpose()?;
    let mut stdout = std::io::stdout().lock();
    let mut failed = 0;
    for path in &args.images {
        let result =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())).and_then(|bytes| {
                let job = Job { model: model.clone(), input: Input::Encoded(bytes), params };
                engine::process(job, DecodeLimits::default()).map_err(|e| format!("{}: {e}", path.display()))
            });
        match result {
            Ok(out) => {
                let data = wire::objects(&out.objects, &model.info.names, args.normalize, out.width, out.height);
                wire::write(&mut stdout, &Envelope { success: true, message: "Inference complete.", data })?;
                if let Some(pictures) = &mut pictures {
                    let mut picture = out.image.into_rgb()?;
                    crate::annotate::draw(&mut picture, &out.objects, &model.info.names);
                    let target = pictures.path_for(path);
                    let jpeg = crate::annotate::to_jpeg(&picture).context("encoding the picture")?;
                    std::fs::write(&target, jpeg).with_context(|| format!("writing {}", target.display()))?;
                    log::info!("drew {} objects on {}", out.objects.len(), target.display());
                }
            }
            Err(message) => {
                log::error!("{message}");
                failed += 1;
                wire::write(&mut stdout, &Envelope { success: false, message: &message, data: Empty {} })?;
            }
        }
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Where `predict --annotate` puts its pictures.
enum Pictures {
    File(std::path::PathBuf),
    /// The directory and the names given so far (two `x.png` from two
    /// directories must not overwrite each other).
    Directory(std::path::PathBuf, std::collections::HashSet<String>),
}

impl Pictures {
    /// One image to a file, unless OUT is an existing directory; several
    /// images always to a directory, made here so a typo fails before any work.
    fn new(out: &std::path::Path, images: usize) -> Result<Pictures> {
        if images == 1 && !out.is_dir() {
            return Ok(Pictures::File(out.to_path_buf()));
        }
        std::fs::create_dir_all(out)
            .with_context(|| format!("--annotate {}: several images need a directory", out.display()))?;
        Ok(Pictures::Directory(out.to_path_buf(), Default::default()))
    }

    fn path_for(&mut self, image: &std::path::Path) -> std::path::PathBuf {
        match self {
            Pictures::File(path) => path.clone(),
            Pictures::Directory(dir, taken) => {
                let stem = image.file_stem().map_or_else(|| "image".into(), |s| s.to_string_lossy());
                let name = (1..)
                    .map(|n| if n == 1 { format!("{stem}.jpg") } else { format!("{stem}-{n}.jpg") })
                    .find(|name| !taken.contains(name))
                    .expect("an unbounded range has a free name");
                taken.insert(name.clone());
                dir.join(name)
            }
        }
    }
}

/// `yolod models`: a table of the embedded model and any others given.
pub fn models(args: ModelsArgs) -> Result<ExitCode> {
    let registry = Registry::load(&crate::config::sources(&args.models, None)).context("loading models")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let models = registry.all();
        let entries: Vec<ModelEntry> =
            models.iter().enumerate().map(|(i, m)| ModelEntry::new(&m.info, i == 0)).collect();
        wire::write(&mut out, &Envelope { success: true, message: "Models loaded on this server.", data: entries })?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<20} {:<12} {:<8} {:>7} {:>6} {:<9} {:<5} SOURCE",
        "ID", "FAMILY", "TASK", "CLASSES", "SIZE", "PRECISION", "SIZES"
    )?;
    for (i, m) in registry.all().iter().enumerate() {
        let info = &m.info;
        let id = if i == 0 { format!("{} *", info.id) } else { info.id.clone() };
        let sizes = if info.any_size { "any" } else { "fixed" };
        writeln!(
            out,
            "{:<20} {:<12} {:<8} {:>7} {:>6} {:<9} {:<5} {}",
            id,
            info.family.as_deref().unwrap_or("-"),
            info.task.as_str(),
            info.names.len(),
            info.input_size,
            info.precision,
            sizes,
            info.source
        )?;
        if let Some(reason) = &info.precision_reason {
            writeln!(out, "{:<20} precision {} ({reason})", "", info.precision)?;
        }
    }
    writeln!(out, "\n* default model (POST /v1/predict). Classes: GET /v1/models or `yolod models --json`.")?;
    Ok(ExitCode::SUCCESS)
}
