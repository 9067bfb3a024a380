//! The camera loop, camera to log stream: takes the latest frame, runs it
//! through the shared inference engine (`Model::predict` is the inference
//! pipeline), writes one JSON line per processed frame. The same
//! engine serves HTTP, so a camera is just another client of the workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::camera::{self, CameraConfig, CameraStats, Latest};
use crate::engine::Picture;
use crate::engine::{Engine, Input, Job, JobError};
use crate::model::{Model, Params};
use crate::sink::{self, Emit, Filter, Sink};
use crate::vision::Object;
use crate::wire::{self, FrameLine, Speed};

/// The latest processed frame of a camera, as `/v1/snapshot` shows it.
pub struct Snapshot {
    pub frame: u64,
    pub model: Arc<Model>,
    pub objects: Vec<Object>,
    pub image: Picture,
}

/// A running camera as the API sees it: the capture's counters and the
/// latest processed frame.
pub struct Camera {
    pub stats: Arc<CameraStats>,
    /// The most recently processed frame and its detections, for `GET /v1/snapshot`.
    pub last: Mutex<Option<Arc<Snapshot>>>,
}

impl Camera {
    /// A camera about to start: no frame yet.
    pub fn new(config: &CameraConfig) -> Arc<Camera> {
        Arc::new(Camera { stats: Arc::new(CameraStats::new(config)), last: Mutex::new(None) })
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot(frame {}, {} objects)", self.frame, self.objects.len())
    }
}

/// Told about every processed frame (the MQTT publisher): the camera's
/// name, the frame, and its JSON line when `--emit` let it through.
pub trait Observer: Send + Sync {
    fn processed(&self, camera: &str, frame: &Arc<Snapshot>, line: Option<&[u8]>);
}

/// Everything one camera loop needs.
pub struct CameraJob {
    pub config: CameraConfig,
    pub model: Arc<Model>,
    pub params: Params,
    pub emit: Emit,
    /// Stop after this many processed frames (then sets `stop`).
    pub max_frames: Option<u64>,
    /// Besides the log: who else hears of each processed frame.
    pub observer: Option<Arc<dyn Observer>>,
}

/// Runs until `stop` is set (or `max_frames` are processed). Lines go to
/// `sink`; each is also handed to `publish` (the SSE hub).
pub fn run(
    job: CameraJob,
    engine: &Engine,
    sink: &Mutex<Sink>,
    camera: Arc<Camera>,
    stop: Arc<AtomicBool>,
    publish: &dyn Fn(&[u8]),
) {
    let stats = camera.stats.clone();
    let latest = Arc::new(Latest::default());
    let capture = camera::spawn_capture(job.config.clone(), latest.clone(), stats.clone(), stop.clone());
    let min_gap = job.config.fps.filter(|f| *f > 0.0).map(|f| Duration::from_secs_f64(1.0 / f));
    let finite = !job.config.source.reopens();
    let (name, source) = (stats.name.clone(), stats.source.clone());
    let mut filter = Filter::new(job.emit);
    let mut last_start: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        if let (Some(gap), Some(t)) = (min_gap, last_start) {
            // --fps caps processing: frames arriving meanwhile replace each other.
            while t.elapsed() < gap && !stop.load(Ordering::SeqCst) {
                std::thread::sleep((gap - t.elapsed()).min(Duration::from_millis(50)));
            }
        }
        let Some(frame) = latest.take(Duration::from_millis(200)) else {
            if stats.ended.load(Ordering::SeqCst) {
                break;
            }
            continue;
        };
        let number = frame.number;
        last_start = Some(Instant::now());
        let result = engine.run(Job { model: job.model.clone(), input: Input::Frame(frame), params: job.params });
        match &result {
            Err(JobError::Decode(e)) => {
                corrupt_frame(&stats, &name, number, e);
                continue;
            }
            Err(JobError::ShortFrame(e)) => {
                corrupt_frame(&stats, &name, number, e);
                continue;
            }
            _ => {}
        }
        let processed = stats.processed.fetch_add(1, Ordering::SeqCst) + 1;
        let line = match result {
            Ok(out) => {
                let line = if !filter.pass(out.objects.iter().map(|o| o.detection.class)) {
                    None
                } else {
                    let timings = out.timings;
                    let line = FrameLine {
                        ts: sink::time::now_rfc3339(),
                        camera: &name,
                        source: &source,
                        frame: number,
                        width: out.width,
                        height: out.height,
                        model: &job.model.info.id,
                        speed: Speed(timings),
                        success: true,
                        message: "Inference complete.",
                        data: wire::objects(&out.objects, &job.model.info.names, false, out.width, out.height),
                    };
                    Some(wire::to_vec(&line))
                };
                let snapshot = Arc::new(Snapshot {
                    frame: number,
                    model: job.model.clone(),
                    objects: out.objects,
                    image: out.image,
                });
                *camera.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot.clone());
                if let Some(observer) = &job.observer {
                    observer.processed(&name, &snapshot, line.as_deref());
                }
                line
            }
            Err(e) => {
                log::warn!("camera {name}: frame {number}: {e}");
                None
            }
        };
        if let Some(line) = line {
            let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = sink.write_line(&line) {
                if sink.failed == 1 || sink.failed % 100 == 0 {
                    log::error!("log stream write failed ({} lines lost so far): {e}", sink.failed);
                }
            }
            drop(sink);
            publish(&line);
        }
        if job.max_frames.is_some_and(|n| processed >= n) {
            stop.store(true, Ordering::SeqCst);
        }
    }
    if finite {
        // stdin cannot be interrupted: its thread is left to end with the process.
        drop(capture);
    } else {
        let _ = capture.join();
    }
}

/// Counts a frame refused before inference, and says so in the log: the
/// first time, then every hundredth.
fn corrupt_frame(stats: &CameraStats, name: &str, number: u64, why: &dyn std::fmt::Display) {
    let n = stats.corrupt.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 || n % 100 == 0 {
        log::warn!("camera {name}: frame {number} dropped: {why} ({n} corrupt frames so far)");
    }
}
