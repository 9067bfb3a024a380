//! The set of models a process serves: the embedded default plus any files
//! named on the command line or found in the models directory, which SIGHUP
//! rescans.

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, anyhow, bail};

use super::precision::{self, Choice, Cpu, Precision};
use super::{GivenNames, Model, meta};

/// The COCO YOLOv8n compiled into the binary (see models/README.md), in two
/// precisions under one id: which one runs is chosen per CPU ([`Embedded`]).
pub const EMBEDDED_ID: &str = "yolov8n";
/// models/yolov8n.onnx and models/int8/yolov8n-convint.onnx, their float
/// tensors split into byte planes (`planes`) and deflated by build.rs: 2.8 MB
/// less binary for one inflate and one pass at load (the sizes are in
/// BENCHMARKS.md).
const EMBEDDED_FP32_DEFLATED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/yolov8n.onnx.deflate"));
const EMBEDDED_INT8_DEFLATED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/yolov8n-convint.onnx.deflate"));

/// The embedded fp32 or int8 ONNX file, inflated.
pub fn embedded_onnx(int8: bool) -> Vec<u8> {
    let deflated = if int8 { EMBEDDED_INT8_DEFLATED } else { EMBEDDED_FP32_DEFLATED };
    // build.rs wrote these bytes from files it had just read: failing here
    // is a broken build, not bad input.
    let mut onnx = miniz_oxide::inflate::decompress_to_vec(deflated).expect("the embedded model inflates");
    let spans = super::planes::float_tensors(&onnx);
    super::planes::join(&mut onnx, &spans);
    onnx
}

/// The built-in model in the precision chosen for this CPU.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub choice: Choice,
}

impl Embedded {
    /// Resolves `asked` on the CPU this process runs on.
    pub fn new(asked: Precision) -> Embedded {
        Embedded { choice: precision::choose(asked, Cpu::detect()) }
    }

    pub fn bytes(&self) -> Vec<u8> {
        embedded_onnx(self.choice.int8)
    }

    fn source(&self) -> &'static str {
        if self.choice.int8 { "embedded yolov8n-convint.onnx" } else { "embedded yolov8n.onnx" }
    }

    /// Loads it, its first plan optimised for `warm` (or the export size).
    pub fn load_warm(&self, warm: Option<u32>) -> Result<Model> {
        let mut model = Model::load_warm(EMBEDDED_ID, self.source(), &self.bytes(), warm)?;
        model.info.precision_reason = Some(self.choice.reason.clone());
        // Its metadata carries only names and stride (models/README.md).
        model.info.family = Some("YOLOv8n".into());
        Ok(model)
    }
}

impl Default for Embedded {
    fn default() -> Embedded {
        Embedded::new(Precision::Auto)
    }
}

/// The one id no model may have: `/v1/vision/custom/list` (the DeepStack
/// model list) would hide `/v1/vision/custom/{id}`, and DeepStack ids match
/// ignoring case.
pub const LIST_ID: &str = "list";

/// Loaded models by id; the first is the default for `POST /v1/predict`.
pub struct Registry {
    models: RwLock<Vec<Arc<Model>>>,
    /// The models directory, rescanned by [`Registry::rescan`].
    dir: Option<PathBuf>,
}

/// What a rescan changed.
#[derive(Debug, Default)]
pub struct Rescan {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Files that could not be loaded (each message names its file); the
    /// models already serving are kept.
    pub failed: Vec<String>,
}

/// Where to find models.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Individual files, served under their file stem.
    pub files: Vec<PathBuf>,
    /// A directory whose `*.onnx` files are all served.
    pub dir: Option<PathBuf>,
    /// Serve this id (of the files above, or the embedded one) as the default.
    pub default: Option<String>,
    /// The built-in model's precision.
    pub embedded: Embedded,
}

impl Registry {
    /// Loads and optimises every model, in parallel; any failure names its file.
    pub fn load(sources: &Sources) -> Result<Registry> {
        let mut files = sources.files.clone();
        if let Some(dir) = &sources.dir {
            files.extend(onnx_files(dir)?);
        }
        let mut ids: Vec<String> = vec![EMBEDDED_ID.to_string()];
        for file in &files {
            let id = model_id(file)?;
            if id.eq_ignore_ascii_case(LIST_ID) {
                bail!(
                    "model file {} would be served as {id:?}, a name the DeepStack model list (/v1/vision/custom/list) takes; rename the file",
                    file.display()
                );
            }
            if ids.contains(&id) {
                bail!("two models are named {id:?} (model ids are file stems); rename {}", file.display());
            }
            ids.push(id);
        }
        let loaded: Vec<Result<Model>> = std::thread::scope(|scope| {
            let embedded = scope.spawn(|| sources.embedded.load_warm(None));
            let others: Vec<_> =
                files.iter().zip(&ids[1..]).map(|(file, id)| scope.spawn(move || load_file(id, file))).collect();
            // load_file catches tract's panics; this is for any that slips past.
            std::iter::once(embedded)
                .chain(others)
                .zip(std::iter::once(Path::new("the embedded model")).chain(files.iter().map(PathBuf::as_path)))
                .map(|(h, file)| {
                    h.join().unwrap_or_else(|panic| {
                        Err(anyhow!("loading model {}: {}", file.display(), crate::engine::panic_message(&panic)))
                    })
                })
                .collect()
        });
        let mut models = loaded.into_iter().map(|m| m.map(Arc::new)).collect::<Result<Vec<_>>>()?;
        if let Some(default) = &sources.default {
            let Some(pos) = models.iter().position(|m| &m.info.id == default) else {
                bail!("default model {default:?} is not loaded (loaded: {})", ids.join(", "));
            };
            let chosen = models.remove(pos);
            models.insert(0, chosen);
        }
        Ok(Registry { models: RwLock::new(models), dir: sources.dir.clone() })
    }

    /// A registry holding exactly these models (tests, benchmarks).
    pub fn from_models(models: Vec<Arc<Model>>) -> Registry {
        assert!(!models.is_empty(), "a registry needs at least one model");
        Registry { models: RwLock::new(models), dir: None }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Model>>> {
        self.models.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn default_model(&self) -> Arc<Model> {
        self.read()[0].clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Model>> {
        self.read().iter().find(|m| m.info.id == id).cloned()
    }

    /// The models now loaded, the default first.
    pub fn all(&self) -> Vec<Arc<Model>> {
        self.read().clone()
    }

    /// Loads the `*.onnx` files new in the models directory and drops the
    /// models whose file has left it (never the default). Requests keep
    /// being served meanwhile: models are loaded outside the lock, and a
    /// request already holding a dropped model finishes with it.
    pub fn rescan(&self) -> Result<Rescan> {
        let mut change = Rescan::default();
        let Some(dir) = &self.dir else { return Ok(change) };
        let files = onnx_files(dir)?;
        let current = self.all();
        let mut added = Vec::new();
        for file in &files {
            let id = match model_id(file) {
                Ok(id) => id,
                Err(e) => {
                    change.failed.push(format!("{e:#}"));
                    continue;
                }
            };
            if current.iter().any(|m| m.info.id == id) {
                continue;
            }
            match load_file(&id, file) {
                Ok(model) => added.push(Arc::new(model)),
                Err(e) => change.failed.push(format!("{e:#}")),
            }
        }
        let from_dir = |m: &Model| Path::new(&m.info.source).parent() == Some(dir.as_path());
        let gone = |m: &Model| from_dir(m) && !files.iter().any(|f| f.display().to_string() == m.info.source);
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        let default = models[0].info.id.clone();
        models.retain(|m| {
            let drop = m.info.id != default && gone(m);
            if drop {
                change.removed.push(m.info.id.clone());
            }
            !drop
        });
        for model in added {
            if !models.iter().any(|m| m.info.id == model.info.id) {
                change.added.push(model.info.id.clone());
                models.push(model);
            }
        }
        Ok(change)
    }
}

/// Loads one model file under `id`; errors name the file.
pub fn load_file(id: &str, file: &Path) -> Result<Model> {
    load_file_warm(id, file, None)
}

/// As `load_file`, with its first plan optimised for `warm` (see `Model::load_warm`).
pub fn load_file_warm(id: &str, file: &Path, warm: Option<u32>) -> Result<Model> {
    let bytes = std::fs::read(file).with_context(|| format!("reading model {}", file.display()))?;
    let given = given_names(file).with_context(|| format!("loading model {}", file.display()))?;
    // Some malformed graphs make tract panic rather than fail: the panic is
    // reported like any other load error, naming the file.
    catch_unwind(AssertUnwindSafe(|| Model::load_named(id, &file.display().to_string(), &bytes, warm, given)))
        .unwrap_or_else(|panic| {
            Err(anyhow!(
                "tract panicked on it ({}); the file is not a model yolod can run",
                crate::engine::panic_message(&panic)
            ))
        })
        .with_context(|| format!("loading model {}", file.display()))
}

/// The longest names file read: 10,000 classes of 100 bytes.
const MAX_NAMES_FILE: u64 = 1 << 20;

/// The class names in `<stem>.names` beside a model file, when there is one.
fn given_names(file: &Path) -> Result<Option<GivenNames>> {
    let path = crate::model::names_file(file);
    let handle = match std::fs::File::open(&path) {
        Ok(handle) => handle,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading names file {}", path.display())),
    };
    let mut text = String::new();
    handle
        .take(MAX_NAMES_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading names file {} (UTF-8 text, one class name per line)", path.display()))?;
    if text.len() as u64 > MAX_NAMES_FILE {
        bail!("names file {} is over {} bytes", path.display(), MAX_NAMES_FILE);
    }
    let names = meta::parse_names_file(&text).map_err(|e| anyhow!("names file {}: {e}", path.display()))?;
    Ok(Some(GivenNames { source: path.display().to_string(), names }))
}

/// The MODEL_ID of a file: its stem, restricted to URL-safe characters.
pub fn model_id(file: &Path) -> Result<String> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if stem.is_empty() || !stem.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        bail!(
            "model file name {} must be made of letters, digits, '-', '_' or '.' (it becomes the MODEL_ID in URLs)",
            file.display()
        );
    }
    Ok(stem.to_string())
}

fn onnx_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading models directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_models_inflate_to_the_files_in_models() {
        for (int8, file) in [(false, "models/yolov8n.onnx"), (true, "models/int8/yolov8n-convint.onnx")] {
            let file = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
            assert!(embedded_onnx(int8) == file, "int8 {int8}");
        }
    }

    #[test]
    fn model_ids_are_url_safe_file_stems() {
        assert_eq!(model_id(Path::new("/m/yolov8s-int8.onnx")).unwrap(), "yolov8s-int8");
        assert!(model_id(Path::new("/m/my model.onnx")).is_err());
        assert!(model_id(Path::new("/m/%2e%2e.onnx")).is_err());
    }
}
