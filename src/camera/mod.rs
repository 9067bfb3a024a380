//! The camera seam: a V4L2 capture thread per camera (v4l crate) that keeps
//! only the latest frame, reconnecting with backoff when the device goes
//! away; and the loop that turns frames into log lines through the shared
//! inference engine.

pub mod device;
pub mod pixel;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pixel::PixelFormat;

use crate::vision::decode::Rgb;

/// What to open and ask for.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    pub device: PathBuf,
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
            PixelFormat::Rgb24 => pixel::rgb24_to_rgb(&self.data, w, h, s, &mut out)?,
        }
        Ok(Some(Rgb { width: self.width, height: self.height, data: out }))
    }
}

/// Counters and state of one camera, shared with /readyz and /metrics.
#[derive(Debug, Default)]
pub struct CameraStats {
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
    /// "MJPG 640x480" once negotiated.
    pub negotiated: Mutex<String>,
    pub last_error: Mutex<String>,
    /// The most recently processed frame and its detections, for `GET /v1/snapshot`.
    pub last: Mutex<Option<Arc<crate::pipeline::Snapshot>>>,
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

/// Starts the capture thread for `config`: it runs until `stop` is set,
/// reopening the same path with backoff (0.25 s doubling to 5 s) whenever
/// the device fails or disappears.
pub fn spawn_capture(
    config: CameraConfig,
    latest: Arc<Latest>,
    stats: Arc<CameraStats>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let name = format!("cam-{}", config.device.display());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut backoff = Duration::from_millis(250);
            let mut ever_connected = false;
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let result = device::stream(&config, &stop, &mut |event| match event {
                    device::Event::Opened(description) => {
                        if ever_connected {
                            stats.reconnects.fetch_add(1, Ordering::SeqCst);
                            log::info!("camera {} is back ({description})", stats.source);
                        } else {
                            log::info!("camera {}: {description}", stats.source);
                        }
                        ever_connected = true;
                        *stats.negotiated.lock().unwrap_or_else(|e| e.into_inner()) = description;
                        stats.connected.store(true, Ordering::SeqCst);
                    }
                    device::Event::Frame(mut frame) => {
                        frame.number = stats.captured.fetch_add(1, Ordering::SeqCst) + 1;
                        if latest.put(frame) {
                            stats.dropped.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                stats.connected.store(false, Ordering::SeqCst);
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let message = match result {
                    Ok(()) => "stream ended".to_string(),
                    Err(e) => e.to_string(),
                };
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_millis(250);
                }
                log::warn!("camera {}: {message}; retrying in {:.2} s", stats.source, backoff.as_secs_f32());
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
