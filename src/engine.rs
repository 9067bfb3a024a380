//! The inference core shared by HTTP and the CLI: a fixed pool of workers
//! behind a bounded queue. A full queue is refused at once, never waited on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::model::{Model, Params, Stage, Timings};
use crate::vision::Object;
use crate::vision::decode::{self, DecodeError, DecodeLimits, Rgb};

/// What to run the model on.
pub enum Input {
    /// Encoded image bytes (JPEG, PNG, ...), decoded on the worker.
    Encoded(Vec<u8>),
    /// An already decoded frame.
    Rgb(Rgb),
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
    /// The decoded image, handed back for pictures and snapshots (a move, not a copy).
    pub image: Rgb,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The image could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
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
        Input::Encoded(bytes) => decode::decode(&bytes, limits)?,
        Input::Rgb(rgb) => rgb,
    };
    timings[Stage::Decode] = start.elapsed();
    let objects = job.model.predict(&image, &job.params, &mut timings).map_err(|e| match e.downcast() {
        Ok(budget) => JobError::SizeBudget(budget),
        Err(e) => JobError::Failed(format!("{e:#}")),
    })?;
    Ok(Output { width: image.width, height: image.height, objects, timings, image })
}

/// The text of a panic payload, when it has one.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
