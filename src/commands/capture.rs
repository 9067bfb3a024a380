//! `yolod capture`: camera frames to JSON lines, until Ctrl-C / SIGTERM or
//! `--frames N`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use super::load_model;
use crate::camera_loop::{self, CameraJob};
use crate::cli::CaptureArgs;
use crate::config::CamerasConfig;
use crate::engine::Engine;
use crate::model::{MAX_DETECTIONS, Model, Params};
use crate::sink::{Sink, Target};
use crate::vision::decode::DecodeLimits;

/// One job per validated camera, and their log stream opened. Each frame
/// keeps at most `max_detections` objects.
pub fn camera_jobs(
    cameras: CamerasConfig,
    model: &Arc<Model>,
    max_frames: Option<u64>,
    max_detections: usize,
) -> Result<(Vec<CameraJob>, Sink)> {
    let sink = Sink::open(cameras.log.clone()).with_context(|| match &cameras.log {
        Target::Stdout => "opening the log stream -".to_string(),
        Target::File { path, .. } => format!("opening the log stream {}", path.display()),
    })?;
    let jobs = cameras
        .cameras
        .into_iter()
        .map(|camera| CameraJob {
            config: camera.camera,
            model: model.clone(),
            params: Params { max_detections, ..Params::new(camera.size, camera.confidence, Params::DEFAULT_IOU) },
            emit: camera.emit,
            max_frames,
            observer: None,
        })
        .collect();
    Ok((jobs, sink))
}

pub fn capture(args: CaptureArgs) -> Result<ExitCode> {
    if args.camera.cameras.is_empty() && args.camera.tables.is_empty() {
        bail!("give a camera with --camera SOURCE (e.g. /dev/video0; see yolod capture --help)");
    }
    let cameras = CamerasConfig::from_args(&args.camera)?;
    let model = load_model(&args.model, args.precision.precision, args.camera.imgsz)?;
    let (jobs, sink) = camera_jobs(cameras, &model, args.frames, MAX_DETECTIONS)?;
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
    let all_stats: Vec<_> = std::thread::scope(|scope| {
        jobs.into_iter()
            .map(|job| {
                let camera = camera_loop::Camera::new(&job.config);
                let stats = camera.stats.clone();
                let (engine, sink, stop) = (&engine, &sink, stop.clone());
                scope.spawn(move || camera_loop::run(job, engine, sink, camera, stop, &|_| {}));
                stats
            })
            .collect()
    });
    engine.shutdown();
    for s in &all_stats {
        log::info!(
            "camera {}: {} frames captured, {} processed, {} dropped, {} corrupt, {} reconnects",
            s.name,
            s.captured.load(Ordering::SeqCst),
            s.processed.load(Ordering::SeqCst),
            s.dropped.load(Ordering::SeqCst),
            s.corrupt.load(Ordering::SeqCst),
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
