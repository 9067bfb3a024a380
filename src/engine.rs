//! The inference core shared by HTTP and the CLI: a fixed pool of workers
//! behind a bounded queue. A full queue is refused at once, never waited on.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::camera::Frame;
use crate::camera::pixel::{PixelFormat, ShortFrame};
use crate::model::{Model, Params, Stage, Timings};
use crate::vision::Object;
use crate::vision::decode::{self, DecodeError, DecodeLimits, Reduced, Rgb};
use crate::vision::letterbox::{Letterbox, Source};

/// What to run the model on.
pub enum Input {
    /// Encoded image bytes (JPEG, PNG, ...), decoded on the worker.
    Encoded(Vec<u8>),
    /// An already decoded frame.
    Rgb(Rgb),
    /// A camera frame: MJPEG is decoded, raw pixels (YUYV, NV12, I420,
    /// RGB24) are letterboxed in place.
    Frame(Frame),
}

/// The picture a prediction ran on, handed back for snapshots and pictures
/// (a move, not a copy). A camera's frame stays as it came, and is
/// converted or decoded in full only when somebody asks for a picture of it.
#[derive(Debug)]
pub enum Picture {
    Rgb(Rgb),
    /// Raw pixels, never MJPEG.
    Frame(Frame),
    /// A camera's JPEG, and the smaller decode the network was fed from.
    Jpeg {
        data: Vec<u8>,
        reduced: Reduced,
    },
}

/// Why a kept picture could not be turned into RGB (not expected: the same
/// bytes went through the network).
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error(transparent)]
    Frame(#[from] ShortFrame),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl Picture {
    /// The picture as RGB8 at its full size: borrowed, or converted from the
    /// raw frame, or decoded from the JPEG.
    pub fn to_rgb(&self) -> Result<Cow<'_, Rgb>, PictureError> {
        Ok(match self {
            Picture::Rgb(rgb) => Cow::Borrowed(rgb),
            Picture::Frame(frame) => Cow::Owned(frame.to_rgb()?.expect("a Picture::Frame is never MJPEG")),
            Picture::Jpeg { data, .. } => Cow::Owned(decode::decode(data, DecodeLimits::default())?),
        })
    }

    pub fn into_rgb(self) -> Result<Rgb, PictureError> {
        match self {
            Picture::Rgb(rgb) => Ok(rgb),
            other => Ok(other.to_rgb()?.into_owned()),
        }
    }
}

pub struct Job {
    pub model: Arc<Model>,
    pub input: Input,
    pub params: Params,
}

/// A finished prediction, boxes in the image's pixels.
#[derive(Debug)]
pub struct Output {
    pub width: u32,
    pub height: u32,
    pub objects: Vec<Object>,
    pub timings: Timings,
    /// The picture, handed back for pictures and snapshots.
    pub image: Picture,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The image could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The raw frame is shorter than its layout.
    #[error(transparent)]
    ShortFrame(#[from] ShortFrame),
    /// The input size needs a new plan and the model's ration of new plans is used up.
    #[error(transparent)]
    SizeBudget(#[from] crate::model::plans::SizeBudget),
    /// Inference failed or panicked; a bug, details for the log.
    #[error("{0}")]
    Failed(String),
}

pub type JobResult = Result<Output, JobError>;

/// The queue was full.
#[derive(Debug)]
pub struct Busy;

struct Queued {
    job: Job,
    reply: mpsc::Sender<JobResult>,
}

pub struct Engine {
    tx: Mutex<Option<SyncSender<Queued>>>,
    waiting: Arc<AtomicUsize>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Per worker, when its current job started (None when idle).
    busy_since: Arc<Vec<Mutex<Option<Instant>>>>,
}

impl Engine {
    /// Starts `workers` threads sharing a queue of `queue` waiting jobs.
    pub fn start(workers: usize, queue: usize, limits: DecodeLimits) -> Engine {
        let (tx, rx) = mpsc::sync_channel::<Queued>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicUsize::new(0));
        let workers = workers.max(1);
        let busy_since: Arc<Vec<Mutex<Option<Instant>>>> = Arc::new((0..workers).map(|_| Mutex::new(None)).collect());
        let handles = (0..workers)
            .map(|i| {
                let (rx, waiting, busy_since) = (rx.clone(), waiting.clone(), busy_since.clone());
                std::thread::Builder::new()
                    .name(format!("infer-{i}"))
                    .spawn(move || worker(&rx, &waiting, &busy_since[i], limits))
                    .expect("spawning an inference worker")
            })
            .collect();
        Engine { tx: Mutex::new(Some(tx)), waiting, workers: Mutex::new(handles), busy_since }
    }

    /// Queues `job`; the receiver yields its result. `Busy` when the queue is full or closed.
    pub fn try_submit(&self, job: Job) -> Result<Receiver<JobResult>, Busy> {
        let (reply, result) = mpsc::channel();
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let tx = guard.as_ref().ok_or(Busy)?;
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(Queued { job, reply }) {
            Ok(()) => Ok(result),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(Busy)
            }
        }
    }

    /// Runs `job` and waits for it, blocking while the queue is full (CLI use).
    pub fn run(&self, job: Job) -> JobResult {
        let (reply, result) = mpsc::channel();
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let tx = tx.ok_or_else(|| JobError::Failed("engine is stopped".into()))?;
        self.waiting.fetch_add(1, Ordering::SeqCst);
        tx.send(Queued { job, reply }).map_err(|_| JobError::Failed("engine is stopped".into()))?;
        result.recv().map_err(|_| JobError::Failed("worker vanished".into()))?
    }

    /// Jobs queued and not yet picked up by a worker.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Whether some worker has been on one job for longer than `limit`
    /// (stuck): the watchdog stops vouching for the process then.
    pub fn stalled(&self, limit: Duration) -> bool {
        self.busy_since
            .iter()
            .any(|b| b.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|since| since.elapsed() > limit))
    }

    /// Stops taking jobs, lets queued ones finish, and joins the workers.
    pub fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}

fn worker(
    rx: &Mutex<Receiver<Queued>>,
    waiting: &AtomicUsize,
    busy_since: &Mutex<Option<Instant>>,
    limits: DecodeLimits,
) {
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(Queued { job, reply }) = next else { return };
        waiting.fetch_sub(1, Ordering::SeqCst);
        *busy_since.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let result = catch_unwind(AssertUnwindSafe(|| process(job, limits)))
            .unwrap_or_else(|panic| Err(JobError::Failed(format!("inference panicked: {}", panic_message(&panic)))));
        *busy_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let _ = reply.send(result);
    }
}

/// Splits every matrix product of every later inference across `threads`
/// threads of one shared pool (tract's multithreaded executor); 1 leaves
/// each inference on the thread that runs it.
pub fn split_matmuls(threads: usize) {
    use tract_linalg::multithread::{Executor, set_default_executor};
    if threads > 1 {
        set_default_executor(Executor::multithread_with_name(threads, "matmul"));
    }
}

/// Turns off backtrace capture for errors (not for panics) unless
/// RUST_LIB_BACKTRACE asks for it. tract's optimiser creates and drops
/// errors as it tries its rewrite rules; with RUST_BACKTRACE=1 in the
/// environment each one captured a backtrace, which made loading the int8
/// model 2.4x slower on x86 (1.56 against 0.65 s) and 2.9x on aarch64 (5.6
/// against 1.9 G instructions). yolod's own errors are messages; panics
/// still print their backtrace with RUST_BACKTRACE=1. Call it first thing
/// in `main`: once another thread exists it changes nothing (the edit would
/// race with that thread's reads of the environment) and returns false.
#[allow(unsafe_code)]
pub fn quiet_error_backtraces() -> bool {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_some() {
        return true;
    }
    crate::service::env_edit(|| {
        // SAFETY: `env_edit` runs this only while the process has one thread.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    })
}

/// Decode (if needed), then predict.
pub fn process(job: Job, limits: DecodeLimits) -> JobResult {
    let mut timings = Timings::default();
    let start = Instant::now();
    let image = match job.input {
        Input::Encoded(bytes) => Picture::Rgb(decode::decode(&bytes, limits)?),
        Input::Rgb(rgb) => Picture::Rgb(rgb),
        Input::Frame(frame) if frame.format == PixelFormat::Mjpeg => {
            camera_jpeg(frame.data, &job.model, &job.params, limits)?
        }
        Input::Frame(frame) => Picture::Frame(frame),
    };
    let raw;
    let source: &dyn Source = match &image {
        Picture::Rgb(rgb) => rgb,
        Picture::Frame(frame) => {
            raw = frame.raw()?.expect("a Picture::Frame is never MJPEG");
            &raw
        }
        Picture::Jpeg { reduced, .. } => reduced,
    };
    timings[Stage::Decode] = start.elapsed();
    let (width, height) = source.size();
    let objects = job.model.predict(source, &job.params, &mut timings).map_err(|e| match e.downcast() {
        Ok(budget) => JobError::SizeBudget(budget),
        Err(e) => JobError::Failed(format!("{e:#}")),
    })?;
    Ok(Output { width, height, objects, timings, image })
}

/// A camera's JPEG, decoded only as large as the letterbox needs (1/2, 1/4
/// or 1/8 in the DCT domain) when it is at least twice the network's input,
/// and in full otherwise. Uploads to the API are always decoded in full.
pub fn camera_jpeg(
    data: Vec<u8>,
    model: &Model,
    params: &Params,
    limits: DecodeLimits,
) -> Result<Picture, DecodeError> {
    let scaled = |w, h| {
        let size = model.network_size(params.size_for(w, h));
        let placed = Letterbox::new(w, h, size, size);
        (placed.scaled_w, placed.scaled_h)
    };
    Ok(match decode::decode_reduced(&data, limits, scaled)? {
        Some(reduced) => Picture::Jpeg { data, reduced },
        None => Picture::Rgb(decode::decode(&data, limits)?),
    })
}

/// The text of a panic payload, when it has one.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::registry;

    /// RGB8 to YUYV with BT.601 limited range (what a webcam sends).
    fn yuyv(rgb: &Rgb) -> Vec<u8> {
        let ycc = |p: &[u8]| {
            let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
            let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
            let cb = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
            let cr = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
            [y, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as u8)
        };
        let w = rgb.width as usize;
        let mut out = Vec::with_capacity(w * rgb.height as usize * 2);
        for row in rgb.data.chunks(w * 3) {
            for pair in row.chunks(6) {
                let (a, b) = (ycc(&pair[..3]), ycc(&pair[3..]));
                let (cb, cr) = ((a[1] as u16 + b[1] as u16).div_ceil(2), (a[2] as u16 + b[2] as u16).div_ceil(2));
                out.extend_from_slice(&[a[0], cb as u8, b[0], cr as u8]);
            }
        }
        out
    }

    /// A camera's JPEG decoded at 1/2 or 1/4 in the DCT domain keeps the
    /// detections of the full decode (issue 19's rule for a camera-only
    /// path: >= 99% kept with IoU >= 0.9), at 320 and 640, on both
    /// evaluation images; the confidences are reported, not held to 0.03.
    #[test]
    fn a_camera_jpeg_decoded_small_keeps_the_full_decodes_detections() {
        let model = Arc::new(Model::load("yolov8n", "embedded", &registry::embedded_onnx(false)).unwrap());
        let (mut kept, mut total, mut reduced, mut worst) = (0, 0, 0, 0f32);
        for size in [320, 640] {
            for name in ["bus.jpg", "zidane.jpg"] {
                let path = format!("{}/tests/fixtures/images/{name}", env!("CARGO_MANIFEST_DIR"));
                let data = std::fs::read(path).unwrap();
                let frame = Frame { number: 1, width: 0, height: 0, stride: 0, format: PixelFormat::Mjpeg, data };
                let params = Params { size, ..Params::default() };
                let run =
                    |input| process(Job { model: model.clone(), input, params }, DecodeLimits::default()).unwrap();
                let full = run(Input::Encoded(frame.data.clone()));
                let small = run(Input::Frame(frame));
                assert_eq!((small.width, small.height), (full.width, full.height));
                if let Picture::Jpeg { reduced: r, .. } = &small.image {
                    assert!(r.rgb.width < r.width, "{name} at {size}");
                    reduced += 1;
                }
                for a in full.objects.iter().map(|o| &o.detection) {
                    total += 1;
                    let same = small.objects.iter().map(|o| &o.detection).filter(|b| b.class == a.class);
                    let best = same.max_by(|x, y| a.bbox.iou(&x.bbox).total_cmp(&a.bbox.iou(&y.bbox)));
                    if let Some(b) = best.filter(|b| a.bbox.iou(&b.bbox) >= 0.9) {
                        kept += 1;
                        worst = worst.max((a.confidence - b.confidence).abs());
                    } else {
                        eprintln!("{name} at {size}: lost {a:?}");
                    }
                }
            }
        }
        // bus.jpg at 640 (810x1080) is not twice the size: decoded in full.
        assert_eq!(reduced, 3, "three of the four runs decode small");
        eprintln!("kept {kept} of {total} detections; confidences at most {worst:.3} apart");
        assert!(total >= 12 && kept * 100 >= total * 99, "kept {kept} of {total}");
    }

    /// A camera's raw frame, letterboxed in place, finds what the same frame
    /// converted to RGB first finds: same classes, IoU >= 0.9 and confidence
    /// within 0.03 (issue 19's accuracy rule), on both evaluation images.
    #[test]
    fn a_raw_frame_read_in_place_detects_what_its_rgb_conversion_detects() {
        let model = Arc::new(Model::load("yolov8n", "embedded", &registry::embedded_onnx(false)).unwrap());
        for name in ["bus.jpg", "zidane.jpg"] {
            let path = format!("{}/tests/fixtures/images/{name}", env!("CARGO_MANIFEST_DIR"));
            let image = decode::decode(&std::fs::read(path).unwrap(), DecodeLimits::default()).unwrap();
            let frame = Frame {
                number: 1,
                width: image.width,
                height: image.height,
                stride: 0,
                format: PixelFormat::Yuyv,
                data: yuyv(&image),
            };
            let params = Params { size: 320, ..Params::default() };
            let run = |input| process(Job { model: model.clone(), input, params }, DecodeLimits::default()).unwrap();
            let converted = run(Input::Rgb(frame.to_rgb().unwrap().unwrap()));
            let in_place = run(Input::Frame(frame));
            assert!(matches!(in_place.image, Picture::Frame(_)), "the frame is kept raw");
            assert_eq!((in_place.width, in_place.height), (image.width, image.height));
            let (a, b) = (&converted.objects, &in_place.objects);
            assert!(a.len() >= 2, "{name}: {} objects", a.len());
            assert_eq!(a.len(), b.len(), "{name}: {a:?}\n{b:?}");
            for a in a.iter().map(|o| &o.detection) {
                let b = b.iter().map(|o| &o.detection).filter(|b| b.class == a.class);
                let b = b.max_by(|x, y| a.bbox.iou(&x.bbox).total_cmp(&a.bbox.iou(&y.bbox))).unwrap();
                assert!(a.bbox.iou(&b.bbox) >= 0.9, "{name}: {a:?} vs {b:?}");
                assert!((a.confidence - b.confidence).abs() <= 0.03, "{name}: {a:?} vs {b:?}");
            }
        }
    }
}
