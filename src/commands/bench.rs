//! `yolod bench`: per-stage latency (min / p50 / p90) on one image, or the
//! network alone with `--inference-only`.

use std::cell::RefCell;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::load_model;
use crate::camera::pixel::{FormatChoice, PixelFormat, RawFrame};
use crate::camera::{Frame, h264};
use crate::cli::BenchArgs;
use crate::engine::{self, Picture};
use crate::model::Model;
use crate::model::Params;
use crate::model::timings::{Stage, TOTAL, Timings};
use crate::vision::decode::{self, DecodeLimits, Reduced, Rgb};
use crate::vision::letterbox::Source;
use crate::wire;

/// The table's columns: the stages of a prediction, the JSON answer, the whole run.
fn columns() -> impl Iterator<Item = &'static str> {
    Stage::ALL.into_iter().map(Stage::name).chain(["json", TOTAL])
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    let load_start = Instant::now();
    let model = load_model(&args.inference.model, args.inference.precision.precision, args.inference.size)?;
    let load = load_start.elapsed();
    let bytes = match &args.image {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => synthetic_jpeg(),
    };
    let input = BenchInput::new(bytes, &args)?;
    let params = Params { size: args.inference.size, ..Params::default() };
    let limits = DecodeLimits::default();
    let decoded = input.decode(&model, &params, limits, args.convert_first).context("decoding the bench image")?;
    let (width, height) = decoded.with_source(|s| Ok(s.size()))?;
    let prepared = decoded.with_source(|s| model.prepare(s, params.size))?;
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
            let decoded = input.decode(&model, &params, limits, args.convert_first)?;
            t[Stage::Decode] = s.elapsed();
            let s = Instant::now();
            let prepared = decoded.with_source(|source| model.prepare(source, params.size))?;
            t[Stage::Preprocess] = s.elapsed();
            let s = Instant::now();
            let outputs = model.infer(&prepared)?;
            t[Stage::Inference] = s.elapsed();
            let s = Instant::now();
            let objects = model.postprocess(&prepared, &outputs, &params)?;
            t[Stage::Postprocess] = s.elapsed();
            let s = Instant::now();
            let objects = wire::objects(&objects, &model.info.names, false, width, height);
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
            "load_ms": load.as_secs_f64() * 1e3, "input": input.describe(width, height),
            "stages_ms": stages,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "model {} ({}), {}x{}, {} iterations after {} warm-up, load+optimise {:.0} ms; {}",
            model.info.id,
            model.info.precision,
            size,
            size,
            samples.len(),
            args.warmup,
            load.as_secs_f64() * 1e3,
            input.describe(width, height),
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

/// What `bench` decodes each run: an encoded image (the API's path and a
/// camera's MJPEG path), or a raw camera frame (the camera's conversion).
enum BenchInput {
    Encoded(Vec<u8>),
    /// `--format MJPG`: a camera's JPEG, decoded as small as the letterbox allows.
    CameraJpeg(Vec<u8>),
    Frame(Frame),
    /// `--h264`: a stream decoded picture by picture, as an RTSP camera's.
    H264(RefCell<H264Stream>),
}

/// An H.264 stream cut into NAL units, and where its decoder is in it.
struct H264Stream {
    units: Vec<Vec<u8>>,
    next: usize,
    decoder: h264::Decoder,
}

impl H264Stream {
    fn new(bytes: &[u8]) -> Result<H264Stream> {
        let units: Vec<Vec<u8>> = openh264::nal_units(bytes).map(<[u8]>::to_vec).collect();
        anyhow::ensure!(!units.is_empty(), "no H.264 NAL unit (is it Annex B, e.g. ffmpeg's -f h264?)");
        Ok(H264Stream { units, next: 0, decoder: h264::Decoder::new().map_err(anyhow::Error::msg)? })
    }

    /// Feeds NAL units until the decoder gives a picture; at the stream's end
    /// it starts over (at its first key frame).
    fn next_picture(&mut self) -> Result<Frame> {
        for _ in 0..=self.units.len() {
            let unit = &self.units[self.next];
            self.next = (self.next + 1) % self.units.len();
            if let Some(frame) = self.decoder.decode(unit).map_err(anyhow::Error::msg)? {
                return Ok(frame);
            }
        }
        anyhow::bail!("a whole pass over the H.264 stream gave no picture")
    }
}

impl BenchInput {
    fn new(bytes: Vec<u8>, args: &BenchArgs) -> Result<BenchInput> {
        if args.h264 {
            return Ok(BenchInput::H264(RefCell::new(H264Stream::new(&bytes)?)));
        }
        let format = args.format.and_then(FormatChoice::pixel_format);
        let Some(format) = format else {
            return Ok(BenchInput::Encoded(bytes));
        };
        if format == PixelFormat::Mjpeg {
            return Ok(BenchInput::CameraJpeg(bytes));
        }
        let (width, height) = args.frame_size.context("a raw frame (--format) needs its --frame-size WIDTHxHEIGHT")?;
        Ok(BenchInput::Frame(Frame { number: 0, width, height, stride: 0, format, data: bytes }))
    }

    /// The stage the table calls `decode`, as the engine runs it: an image
    /// is decoded to RGB; a raw frame is only checked, then read in place by
    /// the letterbox (preprocess).
    fn decode(&self, model: &Model, params: &Params, limits: DecodeLimits, convert_first: bool) -> Result<Decoded<'_>> {
        Ok(match self {
            BenchInput::Encoded(bytes) => Decoded::Rgb(decode::decode(bytes, limits)?),
            BenchInput::CameraJpeg(bytes) => match engine::camera_jpeg(bytes.clone(), model, params, limits)? {
                Picture::Jpeg { reduced, .. } => Decoded::Reduced(reduced),
                picture => Decoded::Rgb(picture.into_rgb()?),
            },
            BenchInput::Frame(frame) if convert_first => Decoded::Rgb(frame.to_rgb()?.context("a raw frame")?),
            BenchInput::Frame(frame) => Decoded::Raw(frame.raw()?.context("a raw frame")?),
            BenchInput::H264(stream) => Decoded::Owned(stream.borrow_mut().next_picture()?),
        })
    }

    fn describe(&self, width: u32, height: u32) -> String {
        match self {
            BenchInput::Encoded(bytes) => format!("{width}x{height} image, {} bytes", bytes.len()),
            BenchInput::CameraJpeg(bytes) => format!("{width}x{height} camera JPEG, {} bytes", bytes.len()),
            BenchInput::Frame(f) => format!("{width}x{height} {} frame", String::from_utf8_lossy(&f.format.fourcc())),
            BenchInput::H264(stream) => {
                let stream = stream.borrow();
                let bytes: usize = stream.units.iter().map(Vec::len).sum();
                format!("{width}x{height} H.264 stream, {} NAL units, {bytes} bytes", stream.units.len())
            }
        }
    }
}

enum Decoded<'a> {
    Rgb(Rgb),
    Reduced(Reduced),
    Raw(RawFrame<'a>),
    /// A decoded H.264 picture (I420), read in place as the camera's are.
    Owned(Frame),
}

impl Decoded<'_> {
    /// Calls `f` with the picture as the letterbox reads it.
    fn with_source<T>(&self, f: impl FnOnce(&dyn Source) -> Result<T>) -> Result<T> {
        match self {
            Decoded::Rgb(rgb) => f(rgb),
            Decoded::Reduced(reduced) => f(reduced),
            Decoded::Raw(raw) => f(raw),
            Decoded::Owned(frame) => f(&frame.raw()?.context("a decoded frame")?),
        }
    }
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
