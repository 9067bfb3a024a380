//! RTSP cameras: retina (Moonfire NVR's client) with RTP interleaved on the
//! RTSP TCP connection, H.264 decoded in process (`h264`), MJPEG (RFC 2435)
//! handed on as JPEG pictures.
//!
//! retina is async. One tokio runtime, on one thread that drives every RTSP
//! socket and timer, is started with the first RTSP camera; each camera's
//! capture thread blocks on its own session future, so decoding happens on
//! the camera's thread, never on the runtime's.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport};
use retina::codec::{CodecItem, FrameFormat};

use super::source::RtspUrl;
use super::{Event, Frame, MAX_PICTURE, h264};
use crate::camera::pixel::PixelFormat;

/// DESCRIBE, SETUP and PLAY each give up after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A camera that sends no picture for this long is treated as gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait for the next packet looks up to check for a stop.
const POLL: Duration = Duration::from_millis(250);

/// The video encodings read, by their SDP names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    H264,
    Jpeg,
}

impl Codec {
    fn of(encoding: &str) -> Option<Codec> {
        match encoding {
            "h264" => Some(Codec::H264),
            "jpeg" => Some(Codec::Jpeg),
            _ => None,
        }
    }
}

/// The runtime shared by every RTSP camera: a current-thread runtime whose
/// own thread ("rtsp") drives the sockets and timers of all of them, while
/// each capture thread blocks on its session through the handle (with a
/// current-thread runtime, IO and timers work for `Handle::block_on`
/// callers only while another thread is in `Runtime::block_on`, which the
/// "rtsp" thread always is). tokio's multi-thread scheduler stays out of
/// the binary: the same work for less code (rumqttc uses this flavour too).
fn runtime() -> io::Result<&'static tokio::runtime::Handle> {
    static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new().name("rtsp".into()).spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(HANDLE.get_or_init(|| handle))
}

/// Reads the camera at `url` until `stop` (Ok), the stream's end (Ok) or a
/// failure (Err), passing frames and damaged pictures to `on_event`.
pub fn stream(
    url: &RtspUrl,
    credentials: Option<&str>,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> io::Result<()> {
    runtime()?.block_on(session(url, credentials, stop, on_event))
}

/// An error as one log line: retina's own text goes on with the
/// connection's details on further lines, which the camera's log line and
/// `/readyz` do not need.
fn failure(what: &str, e: impl std::fmt::Display) -> io::Error {
    let full = e.to_string();
    let text = full.lines().next().unwrap_or("").trim();
    let hint = if text.contains("401") { " (check the user name and password)" } else { "" };
    io::Error::other(format!("RTSP {what}: {text}{hint}"))
}

/// Runs `step` for at most REQUEST_TIMEOUT.
async fn timed<T, E: std::fmt::Display>(what: &str, step: impl Future<Output = Result<T, E>>) -> io::Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, step).await {
        Ok(result) => result.map_err(|e| failure(what, e)),
        Err(_) => {
            Err(io::Error::new(io::ErrorKind::TimedOut, format!("RTSP {what}: no answer in {REQUEST_TIMEOUT:?}")))
        }
    }
}

async fn session(
    url: &RtspUrl,
    credentials: Option<&str>,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> io::Result<()> {
    let parsed = url::Url::parse(&url.url).map_err(|e| failure("URL", e))?;
    let creds = credentials.or(url.userinfo.as_deref()).map(|c| {
        let (username, password) = c.split_once(':').unwrap_or((c, ""));
        Credentials { username: username.to_string(), password: password.to_string() }
    });
    let options = SessionOptions::default().creds(creds).user_agent(format!("yolod/{}", env!("CARGO_PKG_VERSION")));
    let mut described = timed("DESCRIBE", retina::client::Session::describe(parsed, options)).await?;
    let found = described
        .streams()
        .iter()
        .enumerate()
        .find_map(|(i, s)| (s.media() == "video").then(|| Codec::of(s.encoding_name())).flatten().map(|c| (i, c)));
    let Some((index, codec)) = found else {
        let offered: Vec<String> =
            described.streams().iter().map(|s| format!("{}/{}", s.media(), s.encoding_name())).collect();
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("RTSP: no H.264 or MJPEG video stream (the camera offers {})", offered.join(", ")),
        ));
    };
    let setup = SetupOptions::default()
        .transport(Transport::Tcp(TcpTransportOptions::default()))
        .frame_format(FrameFormat::SIMPLE);
    timed("SETUP", described.setup(index, setup)).await?;
    let playing = timed("PLAY", described.play(PlayOptions::default())).await?;
    let mut demuxed = playing.demuxed().map_err(|e| failure("PLAY", e))?;
    on_event(Event::Opened(format!(
        "{} over RTSP/TCP",
        match codec {
            Codec::H264 => "H.264",
            Codec::Jpeg => "MJPEG",
        }
    )));
    let mut decoder = match codec {
        Codec::H264 => Some(h264::Decoder::new().map_err(io::Error::other)?),
        Codec::Jpeg => None,
    };
    // After a loss or a decode error, P-frames would reference a damaged
    // picture: wait for the next key frame.
    let mut need_key_frame = true;
    let mut last_picture = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let item = match tokio::time::timeout(POLL, demuxed.next()).await {
            Err(_) => {
                if last_picture.elapsed() > IDLE_TIMEOUT {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("RTSP: no picture for {} s", IDLE_TIMEOUT.as_secs()),
                    ));
                }
                continue;
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(failure("stream", e)),
            Ok(Some(Ok(item))) => item,
        };
        let CodecItem::VideoFrame(frame) = item else { continue };
        if frame.stream_id() != index {
            continue;
        }
        last_picture = Instant::now();
        if frame.loss() > 0 {
            on_event(Event::Corrupt(format!("{} RTP packets lost", frame.loss())));
            need_key_frame = true;
        }
        let Some(decoder) = decoder.as_mut() else {
            let data = frame.into_data();
            if data.len() > MAX_PICTURE {
                on_event(Event::Corrupt(format!("a {} byte picture, over the limit", data.len())));
            } else {
                on_event(Event::Frame(jpeg(data)));
            }
            continue;
        };
        if need_key_frame && !frame.is_random_access_point() {
            continue;
        }
        match decoder.decode(frame.data()) {
            Ok(Some(picture)) => {
                need_key_frame = false;
                on_event(Event::Frame(picture));
            }
            Ok(None) => {}
            Err(why) => {
                on_event(Event::Corrupt(why));
                need_key_frame = true;
            }
        }
    }
}

fn jpeg(data: Vec<u8>) -> Frame {
    Frame { number: 0, width: 0, height: 0, stride: 0, format: PixelFormat::Mjpeg, data }
}
