//! The camera loop, camera to log stream: takes the latest frame, runs it
//! through the shared inference engine (`Model::predict` is the inference
//! pipeline), writes one JSON line per processed frame. The same
//! engine serves HTTP, so a camera is just another client of the workers.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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

/// A frame's number and its JPEG, as made for viewers.
pub type Encoded = (u64, Arc<Vec<u8>>);

/// A running camera as the API sees it: the capture's counters and the
/// latest processed frame.
pub struct Camera {
    pub stats: Arc<CameraStats>,
    /// The most recently processed frame and its detections, for `GET /v1/snapshot`.
    pub last: Mutex<Option<Arc<Snapshot>>>,
    /// Rung when `last` changes and when the streams end.
    changed: Condvar,
    /// Set at shutdown: the viewers' streams end.
    streams_ended: AtomicBool,
    /// The latest JPEG made for viewers, plain (`[0]`) and annotated
    /// (`[1]`), with its frame number: viewers of one camera share it.
    pub encoded: Mutex<[Option<Encoded>; 2]>,
    /// Pictures encoded for viewers (none while nobody watches, and none
    /// for plain viewers of a JPEG camera, who get the camera's own bytes).
    pub frames_encoded: AtomicU64,
    /// Viewers of the MJPEG stream connected now.
    pub viewers: AtomicUsize,
}

impl Camera {
    /// A camera about to start: no frame yet.
    pub fn new(config: &CameraConfig) -> Arc<Camera> {
        Arc::new(Camera {
            stats: Arc::new(CameraStats::new(config)),
            last: Mutex::new(None),
            changed: Condvar::new(),
            streams_ended: AtomicBool::new(false),
            encoded: Mutex::new([None, None]),
            frames_encoded: AtomicU64::new(0),
            viewers: AtomicUsize::new(0),
        })
    }

    /// Makes `snapshot` the latest frame and wakes the viewers.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
        self.changed.notify_all();
    }

    /// The latest frame, if any has been processed.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to `timeout` for a frame newer than `after` (any frame when
    /// `None`); `None` on timeout or once the streams have ended.
    pub fn next_after(&self, after: Option<u64>, timeout: Duration) -> Option<Arc<Snapshot>> {
        let newer = |last: &Option<Arc<Snapshot>>| last.as_ref().is_some_and(|s| after.is_none_or(|a| s.frame > a));
        let guard = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |last| !newer(last) && !self.streams_ended.load(Ordering::SeqCst))
            .unwrap_or_else(|e| e.into_inner());
        if self.streams_ended.load(Ordering::SeqCst) { None } else { guard.clone().filter(|_| newer(&guard)) }
    }

    /// Ends the viewers' streams (shutdown).
    pub fn end_streams(&self) {
        let _guard = self.last.lock().unwrap_or_else(|e| e.into_inner());
        self.streams_ended.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    pub fn streams_ended(&self) -> bool {
        self.streams_ended.load(Ordering::SeqCst)
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
                camera.publish(snapshot.clone());
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
