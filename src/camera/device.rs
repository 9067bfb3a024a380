//! The V4L2 device itself (v4l crate): open, negotiate a format, stream
//! mmap buffers. The only code here that touches /dev/video*.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use v4l::FourCC;
use v4l::buffer::Type;
use v4l::io::traits::CaptureStream;
use v4l::prelude::*;
use v4l::video::Capture;
use v4l::video::capture::Parameters;

use super::pixel::{PREFERENCE, PixelFormat};
use super::{CameraConfig, Event, Frame};

/// Opens the camera and streams frames to `on_event` until `stop` is set
/// (Ok) or the device fails (Err: unplugged, unbound, EIO, timeout).
pub fn stream(config: &CameraConfig, stop: &AtomicBool, on_event: &mut dyn FnMut(Event)) -> io::Result<()> {
    let super::source::Source::Device(path) = &config.source else {
        return Err(io::Error::other("not a V4L2 device"));
    };
    let dev = Device::with_path(path)?;
    let offered: Vec<[u8; 4]> = dev.enum_formats()?.iter().map(|d| d.fourcc.repr).collect();
    let (code, format) = choose(&offered, config.format).ok_or_else(|| {
        let names: Vec<String> = offered.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("no usable pixel format (device offers {}; yolod reads MJPG, YUYV, NV12, RGB3)", names.join(", ")),
        )
    })?;
    let mut wanted = dev.format()?;
    if let Some((w, h)) = config.size {
        wanted.width = w;
        wanted.height = h;
    }
    wanted.fourcc = FourCC::new(&code);
    let got = dev.set_format(&wanted)?;
    if got.fourcc.repr != code {
        return Err(io::Error::other(format!("driver refused {}", String::from_utf8_lossy(&code))));
    }
    if let Some(fps) = config.fps {
        let _ = dev.set_params(&Parameters::with_fps(fps.ceil().max(1.0) as u32));
    }
    let mut stream = MmapStream::with_buffers(&dev, Type::VideoCapture, 4)?;
    stream.set_timeout(Duration::from_secs(3));
    on_event(Event::Opened(format!(
        "{} {}x{} stride {}",
        String::from_utf8_lossy(&code),
        got.width,
        got.height,
        got.stride
    )));
    while !stop.load(Ordering::SeqCst) {
        let (buf, meta) = stream.next()?;
        let used = (meta.bytesused as usize).min(buf.len());
        let used = if used == 0 { buf.len() } else { used };
        on_event(Event::Frame(Frame {
            number: 0,
            width: got.width,
            height: got.height,
            stride: got.stride,
            format,
            data: buf[..used].to_vec(),
        }));
    }
    Ok(())
}

/// The fourcc to ask for: the forced format if offered, else the first of
/// `PREFERENCE` the device offers.
pub fn choose(offered: &[[u8; 4]], forced: Option<PixelFormat>) -> Option<([u8; 4], PixelFormat)> {
    let candidates: Vec<PixelFormat> = match forced {
        Some(f) => vec![f],
        None => PREFERENCE.to_vec(),
    };
    candidates.into_iter().find_map(|want| {
        offered.iter().find(|code| PixelFormat::from_fourcc(code) == Some(want)).map(|code| (*code, want))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_mjpeg_then_yuyv_and_honours_a_forced_format() {
        assert_eq!(choose(&[*b"YUYV", *b"JPEG"], None), Some((*b"JPEG", PixelFormat::Mjpeg)));
        assert_eq!(choose(&[*b"NV12", *b"YUYV"], None), Some((*b"YUYV", PixelFormat::Yuyv)));
        assert_eq!(choose(&[*b"YUYV", *b"MJPG"], Some(PixelFormat::Yuyv)), Some((*b"YUYV", PixelFormat::Yuyv)));
        assert_eq!(choose(&[*b"YUYV"], Some(PixelFormat::Nv12)), None);
        assert_eq!(choose(&[*b"H264"], None), None);
    }
}
