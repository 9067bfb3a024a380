//! `yolod capture`: camera frames to JSON lines, until Ctrl-C / SIGTERM or
//! `--frames N`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use super::load_model;
use crate::camera::pixel::PixelFormat;
use crate::camera::source::{self, Source};
use crate::camera::{CameraConfig, CameraStats};
use crate::cli::{CameraArgs, CaptureArgs};
use crate::config_file::CameraTable;
use crate::engine::Engine;
use crate::model::{MAX_DETECTIONS, Model, Params};
use crate::pipeline::{self, CameraJob};
use crate::sink::{Emit, Sink, Target};
use crate::vision::decode::DecodeLimits;

/// The validated camera side of the options: one job per camera (the
/// file's `[[camera]]` tables, then `--camera`'s sources), and the sink.
/// Each frame keeps at most `max_detections` objects.
pub fn camera_jobs(
    args: &CameraArgs,
    model: &Arc<Model>,
    max_frames: Option<u64>,
    max_detections: usize,
) -> Result<(Vec<CameraJob>, Sink)> {
    let flag_tables = args.cameras.iter().map(|s| CameraTable { source: s.clone(), ..Default::default() });
    let tables: Vec<CameraTable> = args.tables.iter().cloned().chain(flag_tables).collect();
    let mut settings = Vec::with_capacity(tables.len());
    for (i, table) in tables.iter().enumerate() {
        let which = || match &table.name {
            Some(name) => format!("camera {name}"),
            None => format!("camera {} ({})", i + 1, source::redact(&table.source)),
        };
        settings.push(one_camera(args, table).with_context(which)?);
    }
    let names = source::unique_names(&settings.iter().map(|(c, ..)| c.name.clone()).collect::<Vec<_>>());
    if settings.iter().filter(|(c, ..)| matches!(c.source, Source::Stdin)).count() > 1 {
        bail!("only one camera can read stdin (-)");
    }
    let target = if args.log == "-" {
        Target::Stdout
    } else {
        Target::File { path: args.log.clone().into(), max_bytes: args.log_max_bytes, keep: args.log_keep }
    };
    let sink = Sink::open(target).with_context(|| format!("opening the log stream {}", args.log))?;
    let jobs = settings
        .into_iter()
        .zip(names)
        .map(|((mut config, size, confidence, emit), name)| {
            config.name = name;
            CameraJob {
                config,
                model: model.clone(),
                params: Params { max_detections, ..Params::new(size, confidence, 0.45) },
                emit,
                max_frames,
                observer: None,
            }
        })
        .collect();
    Ok((jobs, sink))
}

/// One camera's settings: its table's values over the global flags.
fn one_camera(args: &CameraArgs, table: &CameraTable) -> Result<(CameraConfig, u32, f32, Emit)> {
    let source = Source::parse(&table.source).map_err(anyhow::Error::msg)?;
    let name = match &table.name {
        Some(name) => {
            source::check_name(name).map_err(anyhow::Error::msg)?;
            name.clone()
        }
        None => source.default_name(),
    };
    let format = table.format.unwrap_or(args.format).pixel_format();
    let fps = table.fps.or(args.fps);
    if fps.is_some_and(|f| !(f > 0.0 && f.is_finite())) {
        bail!("fps must be a positive number");
    }
    let frame_size = match &table.frame_size {
        Some(s) => Some(crate::cli::parse_frame_size(s).map_err(anyhow::Error::msg)?),
        None => args.frame_size,
    };
    let size = match table.size {
        Some(n) => crate::cli::parse_inference_size(&n.to_string()).map_err(anyhow::Error::msg)?,
        None => args.imgsz,
    };
    let confidence = table.confidence.unwrap_or(args.confidence);
    if !(0.01..=1.0).contains(&confidence) {
        bail!("confidence must be within 0.01 - 1.0");
    }
    let emit = table.emit.unwrap_or(args.emit);
    let credentials = match &table.credentials_file {
        None => None,
        Some(path) => {
            if !matches!(source, Source::Http(_)) {
                bail!("credentials_file is for http:// sources");
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the credentials file {}", path.display()))?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if !line.contains(':') {
                bail!("the credentials file {} must hold user:password on its first line", path.display());
            }
            Some(line)
        }
    };
    if matches!(source, Source::Exec(_) | Source::Stdin) {
        match format {
            None | Some(PixelFormat::Mjpeg) => {}
            Some(PixelFormat::I420) if frame_size.is_some() => {}
            Some(PixelFormat::I420) => bail!("raw I420 needs the frame size, e.g. frame_size = \"640x480\""),
            Some(other) => bail!("exec: and - read MJPEG, or raw I420 with a frame size; not {other:?}"),
        }
    } else if matches!(source, Source::Http(_)) && !matches!(format, None | Some(PixelFormat::Mjpeg)) {
        bail!("http:// sources send MJPEG or JPEG snapshots; leave the format at auto");
    }
    let config = CameraConfig { source, name, credentials, size: frame_size, format, fps };
    Ok((config, size, confidence, emit))
}

pub fn capture(args: CaptureArgs) -> Result<ExitCode> {
    if args.camera.cameras.is_empty() && args.camera.tables.is_empty() {
        bail!("give a camera with --camera SOURCE (e.g. /dev/video0; see yolod capture --help)");
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
                let stats = Arc::new(CameraStats::new(&job.config));
                let (engine, sink, stop, s) = (&engine, &sink, stop.clone(), stats.clone());
                scope.spawn(move || pipeline::run(job, engine, sink, s, stop, &|_| {}));
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
