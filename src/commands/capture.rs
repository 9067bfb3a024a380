//! `yolod capture`: camera frames to JSON lines, until Ctrl-C / SIGTERM or
//! `--frames N`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use super::load_model;
use crate::camera::pixel::PixelFormat;
use crate::camera::{CameraConfig, CameraStats};
use crate::cli::{CameraArgs, CaptureArgs};
use crate::engine::Engine;
use crate::model::{MAX_DETECTIONS, Model, Params};
use crate::pipeline::{self, CameraJob};
use crate::sink::{Emit, Sink, Target};
use crate::vision::decode::DecodeLimits;

/// The validated camera side of the options: one job per camera, and the
/// sink. Each frame keeps at most `max_detections` objects.
pub fn camera_jobs(
    args: &CameraArgs,
    model: &Arc<Model>,
    max_frames: Option<u64>,
    max_detections: usize,
) -> Result<(Vec<CameraJob>, Sink)> {
    let format = match args.format.to_ascii_lowercase().as_str() {
        "auto" => None,
        f => {
            Some(PixelFormat::parse(f).with_context(|| format!("--format {f:?}: use auto, MJPG, YUYV, NV12 or RGB3"))?)
        }
    };
    if args.fps.is_some_and(|f| !(f > 0.0 && f.is_finite())) {
        bail!("--fps must be a positive number");
    }
    if !(0.01..=1.0).contains(&args.confidence) {
        bail!("--camera-confidence must be within 0.01 - 1.0");
    }
    let emit = Emit::parse(&args.emit).expect("clap restricts --emit");
    let target = if args.log == "-" {
        Target::Stdout
    } else {
        Target::File { path: args.log.clone().into(), max_bytes: args.log_max_bytes, keep: args.log_keep }
    };
    let sink = Sink::open(target).with_context(|| format!("opening the log stream {}", args.log))?;
    let jobs = args
        .cameras
        .iter()
        .map(|device| CameraJob {
            config: CameraConfig { device: device.clone(), size: args.frame_size, format, fps: args.fps },
            model: model.clone(),
            params: Params { max_detections, ..Params::new(args.imgsz, args.confidence, 0.45) },
            emit,
            max_frames,
            observer: None,
        })
        .collect();
    Ok((jobs, sink))
}

pub fn capture(args: CaptureArgs) -> Result<ExitCode> {
    if args.camera.cameras.is_empty() {
        bail!("give a camera with --camera /dev/video0");
    }
    let model = load_model(&args.model, args.precision.precision, args.camera.imgsz)?;
    let (jobs, sink) = camera_jobs(&args.camera, &model, args.frames, MAX_DETECTIONS)?;
    let sink = Mutex::new(sink);
    let engine = Engine::start(jobs.len(), jobs.len(), DecodeLimits::default());
    let stop = Arc::new(AtomicBool::new(false));
    let signals = crate::signals::listen()?;
    signals.started();
    let handler_stop = stop.clone();
    // SIGHUP is ignored here (the log file is reopened only by serve); it must not stop a capture.
    std::thread::spawn(move || {
        while let Ok(signal) = signals.events.recv() {
            if signal == crate::signals::Signal::Stop {
                handler_stop.store(true, Ordering::SeqCst);
            }
        }
    });
    let all_stats: Vec<Arc<CameraStats>> = std::thread::scope(|scope| {
        jobs.into_iter()
            .map(|job| {
                let stats =
                    Arc::new(CameraStats { source: job.config.device.display().to_string(), ..Default::default() });
                let (engine, sink, stop, s) = (&engine, &sink, stop.clone(), stats.clone());
                scope.spawn(move || pipeline::run(job, engine, sink, s, stop, &|_| {}));
                stats
            })
            .collect()
    });
    engine.shutdown();
    for s in &all_stats {
        log::info!(
            "camera {}: {} frames captured, {} processed, {} dropped, {} reconnects",
            s.source,
            s.captured.load(Ordering::SeqCst),
            s.processed.load(Ordering::SeqCst),
            s.dropped.load(Ordering::SeqCst),
            s.reconnects.load(Ordering::SeqCst)
        );
    }
    let failed = sink.lock().unwrap_or_else(|e| e.into_inner()).failed;
    if failed > 0 {
        log::error!("{failed} log lines could not be written");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
