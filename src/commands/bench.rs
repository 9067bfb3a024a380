//! `yolod bench`: per-stage latency (min / p50 / p90) on one image, or the
//! network alone with `--inference-only`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::load_model;
use crate::cli::BenchArgs;
use crate::model::Params;
use crate::model::timings::{Stage, TOTAL, Timings};
use crate::vision::decode::{self, DecodeLimits};
use crate::wire;

/// The table's columns: the stages of a prediction, the JSON answer, the whole run.
fn columns() -> impl Iterator<Item = &'static str> {
    Stage::ALL.into_iter().map(Stage::name).chain(["json", TOTAL])
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    let load_start = Instant::now();
    let model = load_model(&args.inference.model, args.inference.precision.precision, args.inference.size)?;
    let load = load_start.elapsed();
    let encoded = match &args.image {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => synthetic_jpeg(),
    };
    let params = Params { size: args.inference.size, ..Params::default() };
    let limits = DecodeLimits::default();
    let image = decode::decode(&encoded, limits).context("decoding the bench image")?;
    let prepared = model.prepare(&image, params.size)?;
    // One row per run, a duration per column.
    let mut samples: Vec<Vec<Duration>> = Vec::with_capacity(args.iterations);
    let mut last_progress = Instant::now();
    let total_runs = args.warmup + args.iterations;
    for run in 0..total_runs {
        let mut t = Timings::default();
        let mut json = Duration::ZERO;
        let start = Instant::now();
        if args.inference_only {
            let s = Instant::now();
            std::hint::black_box(model.infer(&prepared)?);
            t[Stage::Inference] = s.elapsed();
        } else {
            let s = Instant::now();
            let image = decode::decode(&encoded, limits)?;
            t[Stage::Decode] = s.elapsed();
            let s = Instant::now();
            let prepared = model.prepare(&image, params.size)?;
            t[Stage::Preprocess] = s.elapsed();
            let s = Instant::now();
            let outputs = model.infer(&prepared)?;
            t[Stage::Inference] = s.elapsed();
            let s = Instant::now();
            let objects = model.postprocess(&prepared, &outputs, &params)?;
            t[Stage::Postprocess] = s.elapsed();
            let s = Instant::now();
            let objects = wire::objects(&objects, &model.info.names, false, image.width, image.height);
            std::hint::black_box(wire::to_vec(&objects));
            json = s.elapsed();
        }
        let total = start.elapsed();
        if run >= args.warmup {
            samples.push(t.iter().map(|(_, d)| d).chain([json, total]).collect());
        }
        if last_progress.elapsed() > Duration::from_secs(5) {
            log::info!("bench: {}/{} runs ({} warm-up)", run + 1, total_runs, args.warmup);
            last_progress = Instant::now();
        }
    }
    let size = model.network_size(params.size);
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut stages = serde_json::Map::new();
        for (i, name) in columns().enumerate() {
            let (min, p50, p90) = summary(&samples, i);
            stages.insert(name.to_string(), serde_json::json!({"min": min, "p50": p50, "p90": p90}));
        }
        let line = serde_json::json!({
            "runtime": "yolod", "model": model.info.id, "precision": model.info.precision,
            "size": size, "iterations": samples.len(), "inference_only": args.inference_only,
            "load_ms": load.as_secs_f64() * 1e3, "stages_ms": stages,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "model {} ({}), {}x{}, {} iterations after {} warm-up, load+optimise {:.0} ms",
            model.info.id,
            model.info.precision,
            size,
            size,
            samples.len(),
            args.warmup,
            load.as_secs_f64() * 1e3
        )?;
        writeln!(out, "{:<12} {:>9} {:>9} {:>9}", "stage (ms)", "min", "p50", "p90")?;
        for (i, name) in columns().enumerate() {
            if args.inference_only && name != Stage::Inference.name() {
                continue;
            }
            let (min, p50, p90) = summary(&samples, i);
            writeln!(out, "{name:<12} {min:>9.2} {p50:>9.2} {p90:>9.2}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// min, p50, p90 of stage `i` in milliseconds (nearest rank).
fn summary(samples: &[Vec<Duration>], i: usize) -> (f64, f64, f64) {
    let mut v: Vec<f64> = samples.iter().map(|s| s[i].as_secs_f64() * 1e3).collect();
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (v[0], rank(0.5), rank(0.9))
}

/// A deterministic 810x1080 JPEG (bus.jpg's size) for runs without an image.
fn synthetic_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(810, 1080, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x ^ y) % 256) as u8])
    });
    let mut buf = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut buf, image::ImageFormat::Jpeg)
        .expect("encoding a JPEG in memory");
    buf.into_inner()
}
