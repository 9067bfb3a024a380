//! `GET /v1/stream.mjpeg?camera=NAME&annotate=true`: a camera's processed
//! frames as an MJPEG stream (`multipart/x-mixed-replace`), what the page's
//! `<img>` tiles show.
//!
//! - A picture is encoded only when a viewer asks for the next one, so a
//!   camera nobody watches encodes nothing; viewers of one camera share
//!   each encoded picture.
//! - A viewer is sent the newest frame once it has taken the previous one:
//!   a slow viewer gets fewer frames, never a queue. One that stops reading
//!   is dropped when a write has waited `--read-timeout`.
//! - Viewers hold a handler slot each, as event-stream clients do; together
//!   they are capped at half of `--http-threads` ([`super::stream::Slots`]).

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::error::ApiError;
use super::stream::SlotGuard;
use crate::camera_loop::{Camera, Snapshot};
use crate::engine::Picture;

/// The multipart boundary between pictures.
pub const BOUNDARY: &str = "yolodframe";
/// How often a waiting stream checks that the server is not stopping.
const WAKE: Duration = Duration::from_secs(1);

/// The JPEG of a processed frame, annotated or not, as `/v1/snapshot`
/// serves it: a camera's own JPEG goes out as it came when not annotated.
pub fn jpeg(snapshot: &Snapshot, annotate: bool) -> Result<Vec<u8>, ApiError> {
    match &snapshot.image {
        Picture::Jpeg { data, .. } if !annotate => Ok(data.to_vec()),
        picture => {
            let image = picture.to_rgb().map_err(|e| ApiError::Internal(e.to_string()))?;
            let encoded = if annotate {
                let mut picture = image.into_owned();
                crate::annotate::draw(&mut picture, &snapshot.objects, &snapshot.model.info.names);
                crate::annotate::to_jpeg(&picture)
            } else {
                crate::annotate::to_jpeg(&image)
            };
            encoded.map_err(|e| ApiError::Internal(format!("jpeg: {e}")))
        }
    }
}

/// The JPEG of `snapshot` for viewers of `camera`, encoded once per frame
/// whoever asks first.
fn shared_jpeg(camera: &Camera, snapshot: &Snapshot, annotate: bool) -> Result<Arc<Vec<u8>>, ApiError> {
    let mut cache = camera.encoded.lock().unwrap_or_else(|e| e.into_inner());
    let slot = &mut cache[annotate as usize];
    if let Some((frame, jpeg)) = slot {
        if *frame == snapshot.frame {
            return Ok(jpeg.clone());
        }
    }
    // Encoding under the lock: a second viewer waits for this picture
    // instead of encoding it again.
    let made = Arc::new(jpeg(snapshot, annotate)?);
    if annotate || !matches!(snapshot.image, Picture::Jpeg { .. }) {
        camera.frames_encoded.fetch_add(1, Ordering::Relaxed);
    }
    *slot = Some((snapshot.frame, made.clone()));
    Ok(made)
}

/// The body of one viewer's stream.
pub struct MjpegStream {
    camera: Arc<Camera>,
    annotate: bool,
    sent: Option<u64>,
    pending: Vec<u8>,
    pos: usize,
    _slot: SlotGuard,
}

impl MjpegStream {
    pub fn new(camera: Arc<Camera>, annotate: bool, slot: SlotGuard) -> MjpegStream {
        camera.viewers.fetch_add(1, Ordering::SeqCst);
        MjpegStream { camera, annotate, sent: None, pending: Vec::new(), pos: 0, _slot: slot }
    }

    /// Waits for a newer frame and makes it the next part; `false` once
    /// the streams have ended.
    fn next_part(&mut self) -> io::Result<bool> {
        let snapshot = loop {
            if self.camera.streams_ended() {
                return Ok(false);
            }
            if let Some(s) = self.camera.next_after(self.sent, WAKE) {
                break s;
            }
        };
        let jpeg = shared_jpeg(&self.camera, &snapshot, self.annotate).map_err(io::Error::other)?;
        self.pending.clear();
        self.pos = 0;
        self.pending.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame: {}\r\n\r\n",
                jpeg.len(),
                snapshot.frame
            )
            .as_bytes(),
        );
        self.pending.extend_from_slice(&jpeg);
        self.pending.extend_from_slice(b"\r\n");
        self.sent = Some(snapshot.frame);
        Ok(true)
    }
}

impl Read for MjpegStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.pending.len() && !self.next_part()? {
            return Ok(0);
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for MjpegStream {
    fn drop(&mut self) {
        self.camera.viewers.fetch_sub(1, Ordering::SeqCst);
    }
}
