//! `GET /v1/stream.mjpeg?camera=NAME&annotate=true`: a camera's processed
//! frames as an MJPEG stream (`multipart/x-mixed-replace`), what the page's
//! `<img>` tiles show.
//!
//! - A picture is encoded only when a viewer asks for the next one, so a
//!   camera nobody watches encodes nothing; viewers of one camera share
//!   each encoded picture. Annotated pictures of a JPEG camera are drawn at
//!   the scale the network read the frame (`viewer_jpeg`).
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
use crate::vision::Object;

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

/// The picture a viewer gets. Annotated, a camera's JPEG is drawn on the
/// smaller decode the network read (1/2, 1/4 or 1/8 of the frame, made
/// when the frame was processed): no second decode, and a quarter of the
/// pixels or fewer to draw and encode, at about the size a tile shows.
/// Otherwise as [`jpeg`] makes it for `/v1/snapshot`.
fn viewer_jpeg(snapshot: &Snapshot, annotate: bool) -> Result<Vec<u8>, ApiError> {
    match &snapshot.image {
        Picture::Jpeg { reduced, .. } if annotate => {
            let mut picture = reduced.rgb.clone();
            let sx = picture.width as f32 / reduced.width as f32;
            let sy = picture.height as f32 / reduced.height as f32;
            let objects: Vec<Object> = snapshot.objects.iter().map(|o| scaled(o, sx, sy)).collect();
            crate::annotate::draw(&mut picture, &objects, &snapshot.model.info.names);
            crate::annotate::to_jpeg(&picture).map_err(|e| ApiError::Internal(format!("jpeg: {e}")))
        }
        _ => jpeg(snapshot, annotate),
    }
}

/// `object` in a picture scaled by `sx` across and `sy` down.
fn scaled(object: &Object, sx: f32, sy: f32) -> Object {
    let mut o = object.clone();
    let b = &mut o.detection.bbox;
    (b.x1, b.x2, b.y1, b.y2) = (b.x1 * sx, b.x2 * sx, b.y1 * sy, b.y2 * sy);
    for (x, y) in o.segments.iter_mut().flatten() {
        (*x, *y) = (*x * sx, *y * sy);
    }
    if let Some(k) = &mut o.keypoints {
        k.x.iter_mut().for_each(|x| *x *= sx);
        k.y.iter_mut().for_each(|y| *y *= sy);
    }
    o
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
    let made = Arc::new(viewer_jpeg(snapshot, annotate)?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::pose::Keypoints;
    use crate::vision::{BBox, Detection};

    #[test]
    fn scaling_an_object_scales_its_box_outline_and_keypoints() {
        let detection =
            Detection { class: 5, confidence: 0.9, bbox: BBox { x1: 10.0, y1: 20.0, x2: 110.0, y2: 220.0 }, anchor: 3 };
        let object = Object {
            segments: Some(vec![(10.0, 20.0), (110.0, 220.0)]),
            keypoints: Some(Keypoints { x: vec![50.0], y: vec![100.0], visible: vec![0.9] }),
            ..Object::new(detection.clone(), detection.bbox)
        };
        let half = scaled(&object, 0.5, 0.25);
        assert_eq!(half.detection.bbox, BBox { x1: 5.0, y1: 5.0, x2: 55.0, y2: 55.0 });
        assert_eq!(half.segments.unwrap(), vec![(5.0, 5.0), (55.0, 55.0)]);
        let k = half.keypoints.unwrap();
        assert_eq!((k.x[0], k.y[0], k.visible[0]), (25.0, 25.0, 0.9));
        assert_eq!((half.detection.class, half.detection.confidence), (5, 0.9));
    }
}
