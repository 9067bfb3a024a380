//! The camera seam: a capture thread per camera that keeps only the latest
//! frame, reopening its source with backoff when it fails. Sources: V4L2
//! devices (v4l crate), MJPEG or snapshots over HTTP, RTSP (H.264 or
//! MJPEG), a command's stdout (`exec:`) and stdin (`-`).

pub mod device;
pub mod exec;
pub mod h264;
pub mod http;
pub mod mjpeg;
pub mod pixel;
pub mod rtsp;
pub mod source;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pixel::PixelFormat;

use crate::vision::decode::Rgb;

/// The largest JPEG picture a stream source may send (a 4K MJPEG frame is
/// about 2 MB); a bigger one is dropped as corrupt.
pub const MAX_PICTURE: usize = 32 << 20;

/// What to open and ask for.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    pub source: source::Source,
    /// `[a-z0-9_-]+`, unique among the cameras.
    pub name: String,
    /// `user:password` for an HTTP source, read from its credentials file.
    pub credentials: Option<String>,
    /// Requested frame size; the driver may pick the nearest it has.
    pub size: Option<(u32, u32)>,
    /// A forced pixel format, or None to negotiate (MJPG, YUYV, NV12, RGB24).
    pub format: Option<PixelFormat>,
    /// Most frames per second to process (and to ask the driver for).
    pub fps: Option<f64>,
}

/// One captured frame, as the driver delivered it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Our own count of frames captured from this camera, across reconnects.
    pub number: u64,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub format: PixelFormat,
    pub data: Vec<u8>,
}

impl Frame {
    /// Raw pixels to RGB8 (None for MJPEG, which goes to the image decoder).
    pub fn to_rgb(&self) -> Result<Option<Rgb>, pixel::ShortFrame> {
        let (w, h, s) = (self.width as usize, self.height as usize, self.stride as usize);
        let mut out = Vec::new();
        match self.format {
            PixelFormat::Mjpeg => return Ok(None),
            PixelFormat::Yuyv => pixel::yuyv_to_rgb(&self.data, w, h, s, &mut out)?,
            PixelFormat::Nv12 => pixel::nv12_to_rgb(&self.data, w, h, s, &mut out)?,
            PixelFormat::I420 => pixel::i420_to_rgb(&self.data, w, h, s, &mut out)?,
            PixelFormat::Rgb24 => pixel::rgb24_to_rgb(&self.data, w, h, s, &mut out)?,
        }
        Ok(Some(Rgb { width: self.width, height: self.height, data: out }))
    }

    /// The frame read in place, for the letterbox (None for MJPEG).
    pub fn raw(&self) -> Result<Option<pixel::RawFrame<'_>>, pixel::ShortFrame> {
        let (w, h, s) = (self.width as usize, self.height as usize, self.stride as usize);
        pixel::RawFrame::new(self.format, &self.data, w, h, s)
    }
}

/// What a source reports to the capture thread.
pub enum Event {
    /// Opened (and negotiated), e.g. "MJPG 640x480 stride 0".
    Opened(String),
    Frame(Frame),
    /// A picture the stream cut short or garbled, and why; it is dropped.
    Corrupt(String),
}

/// Counters and state of one camera, shared with /readyz and /metrics.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// The camera's name: lines, SSE, `?camera=`, metrics labels.
    pub name: String,
    /// The source without credentials.
    pub source: String,
    pub captured: AtomicU64,
    pub processed: AtomicU64,
    /// Frames replaced by a newer one before they could be processed.
    pub dropped: AtomicU64,
    /// Frames refused as truncated or corrupt (a cut MJPEG, a short raw
    /// frame): counted and dropped, never inferred.
    pub corrupt: AtomicU64,
    pub reconnects: AtomicU64,
    pub connected: AtomicBool,
    /// The source ended for good (stdin at its end): no more frames come.
    pub ended: AtomicBool,
    /// "MJPG 640x480" once negotiated.
    pub negotiated: Mutex<String>,
    pub last_error: Mutex<String>,
}

/// The single-frame mailbox between capture and processing: latest wins.
#[derive(Default)]
pub struct Latest {
    frame: Mutex<Option<Frame>>,
    ready: Condvar,
}

impl Latest {
    /// Puts `frame`, returning whether an unprocessed one was replaced.
    pub fn put(&self, frame: Frame) -> bool {
        let replaced = self.frame.lock().unwrap_or_else(|e| e.into_inner()).replace(frame).is_some();
        self.ready.notify_one();
        replaced
    }

    /// Takes the newest frame, waiting at most `timeout`.
    pub fn take(&self, timeout: Duration) -> Option<Frame> {
        let guard = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) =
            self.ready.wait_timeout_while(guard, timeout, |f| f.is_none()).unwrap_or_else(|e| e.into_inner());
        guard.take()
    }
}

impl CameraStats {
    /// The stats of a camera about to start.
    pub fn new(config: &CameraConfig) -> CameraStats {
        CameraStats { name: config.name.clone(), source: config.display_source(), ..Default::default() }
    }
}

/// How a pipe's bytes are framed: JPEG pictures, or raw frames of a fixed layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeLayout {
    Mjpeg {
        max_picture: usize,
    },
    /// Raw I420 frames, rows `stride` bytes long.
    I420 {
        width: u32,
        height: u32,
        stride: u32,
    },
}

/// Row alignment of rpicam-vid's raw YUV420 frames.
pub const I420_ROW_ALIGN: u32 = 64;

impl CameraConfig {
    /// What an `exec:` or stdin source's bytes are: raw I420 when the
    /// format says so (its frame size is then required, checked at start),
    /// else MJPEG.
    pub fn raw_layout(&self) -> PipeLayout {
        match (self.format, self.size) {
            (Some(PixelFormat::I420), Some((width, height))) => {
                PipeLayout::I420 { width, height, stride: width.next_multiple_of(I420_ROW_ALIGN) }
            }
            _ => PipeLayout::Mjpeg { max_picture: MAX_PICTURE },
        }
    }

    /// The source as logs and lines show it: without credentials.
    pub fn display_source(&self) -> String {
        match &self.source {
            source::Source::Device(path) => path.display().to_string(),
            source::Source::Http(url) => {
                let scheme = if url.tls { "https" } else { "http" };
                source::redact(&format!("{scheme}://{}{}", url.host_header(), url.target))
            }
            source::Source::Exec(words) => source::redact(&format!("exec:{}", words.join(" "))),
            source::Source::Stdin => "-".into(),
            source::Source::Rtsp(rtsp) => source::redact(&rtsp.url),
        }
    }
}

/// Hands what the JPEG splitter found to the capture thread: a whole
/// picture as an MJPEG frame, a cut one as corrupt.
fn deliver(item: mjpeg::Item, on_event: &mut dyn FnMut(Event)) {
    match item {
        mjpeg::Item::Picture(data) => on_event(Event::Frame(Frame {
            number: 0,
            width: 0,
            height: 0,
            stride: 0,
            format: PixelFormat::Mjpeg,
            data,
        })),
        mjpeg::Item::Corrupt(why) => on_event(Event::Corrupt(why.to_string())),
    }
}

/// Opens the source once and streams until `stop` (Ok), its end (Ok), or
/// a failure (Err).
fn stream_once(config: &CameraConfig, stop: &AtomicBool, on_event: &mut dyn FnMut(Event)) -> std::io::Result<()> {
    match &config.source {
        source::Source::Device(_) => device::stream(config, stop, on_event),
        source::Source::Http(url) => {
            http::stream(url, config.credentials.as_deref(), config.fps, MAX_PICTURE, stop, on_event)
        }
        source::Source::Exec(words) => exec::stream(&config.name, words, config.raw_layout(), stop, on_event),
        source::Source::Stdin => exec::stdin(config.raw_layout(), on_event),
        source::Source::Rtsp(url) => rtsp::stream(url, config.credentials.as_deref(), stop, on_event),
    }
}

/// Starts the capture thread for `config`: it runs until `stop` is set,
/// reopening the source with backoff (0.25 s doubling to 5 s) whenever it
/// fails or ends; a source that cannot reopen (stdin) ends the thread.
pub fn spawn_capture(
    config: CameraConfig,
    latest: Arc<Latest>,
    stats: Arc<CameraStats>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("cam-{}", config.name))
        .spawn(move || {
            let name = config.name.clone();
            let mut backoff = Duration::from_millis(250);
            let mut ever_connected = false;
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let result = stream_once(&config, &stop, &mut |event| match event {
                    Event::Opened(description) => {
                        if ever_connected {
                            stats.reconnects.fetch_add(1, Ordering::SeqCst);
                            log::info!("camera {name} is back ({description})");
                        } else {
                            log::info!("camera {name} ({}): {description}", stats.source);
                        }
                        ever_connected = true;
                        *stats.negotiated.lock().unwrap_or_else(|e| e.into_inner()) = description;
                        stats.connected.store(true, Ordering::SeqCst);
                    }
                    Event::Frame(mut frame) => {
                        frame.number = stats.captured.fetch_add(1, Ordering::SeqCst) + 1;
                        if latest.put(frame) {
                            stats.dropped.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Event::Corrupt(why) => {
                        let n = stats.corrupt.fetch_add(1, Ordering::SeqCst) + 1;
                        if n == 1 || n % 100 == 0 {
                            log::warn!("camera {name}: picture dropped: {why} ({n} corrupt so far)");
                        }
                    }
                });
                stats.connected.store(false, Ordering::SeqCst);
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if result.is_ok() && !config.source.reopens() {
                    log::info!("camera {name}: the input ended");
                    stats.ended.store(true, Ordering::SeqCst);
                    break;
                }
                let message = match result {
                    Ok(()) => "stream ended".to_string(),
                    Err(e) => e.to_string(),
                };
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_millis(250);
                }
                log::warn!("camera {name}: {message}; retrying in {:.2} s", backoff.as_secs_f32());
                *stats.last_error.lock().unwrap_or_else(|e| e.into_inner()) = message;
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
        .expect("spawning a capture thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(number: u64) -> Frame {
        Frame { number, width: 1, height: 1, stride: 3, format: PixelFormat::Rgb24, data: vec![1, 2, 3] }
    }

    #[test]
    fn the_latest_frame_wins_and_replacements_are_reported() {
        let latest = Latest::default();
        assert!(!latest.put(frame(1)));
        assert!(latest.put(frame(2)));
        assert_eq!(latest.take(Duration::ZERO).unwrap().number, 2);
        assert!(latest.take(Duration::from_millis(10)).is_none());
    }

    #[test]
    fn a_waiting_taker_wakes_on_put() {
        let latest = Arc::new(Latest::default());
        let l2 = latest.clone();
        let t = std::thread::spawn(move || l2.take(Duration::from_secs(5)).map(|f| f.number));
        std::thread::sleep(Duration::from_millis(50));
        latest.put(frame(7));
        assert_eq!(t.join().unwrap(), Some(7));
    }
}
