//! Cameras that are a command's stdout (`exec:rpicam-vid ... -o -`, the
//! route to Pi camera modules, which need libcamera) or yolod's own stdin
//! (`-`): concatenated JPEG pictures, split by [`super::mjpeg`].
//!
//! The command is run directly (its words split by shell quoting rules; no
//! shell), with stdin closed and its stderr logged line by line under the
//! camera's name. It is ended on stop or when it stalls: SIGTERM, then
//! SIGKILL after a grace period. It also gets SIGKILL from the kernel if
//! yolod itself dies (PR_SET_PDEATHSIG), so it is never left orphaned.
#![allow(unsafe_code)]

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::mjpeg::{Item, Splitter};
use super::pixel::PixelFormat;
use super::{Event, Frame, PipeLayout};

/// A command that writes nothing for this long is ended and restarted.
const STALL: Duration = Duration::from_secs(20);
/// Time a command gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);
/// At most this many stderr lines of a command are logged per minute.
const STDERR_LINES_PER_MINUTE: u32 = 30;

/// Runs `words` and reads pictures from its stdout until `stop` (Ok), the
/// command's exit or a stall (Err).
pub fn stream(
    camera: &str,
    words: &[String],
    layout: PipeLayout,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> io::Result<()> {
    let program = &words[0];
    let mut command = Command::new(program);
    command.args(&words[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => io::Error::new(e.kind(), format!("command not found: {program}")),
        _ => io::Error::new(e.kind(), format!("cannot run {program}: {e}")),
    })?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let pid = child.id();
    let child = Arc::new(Mutex::new(child));
    let last_byte = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let log_thread = spawn_stderr_logger(camera.to_string(), program.clone(), stderr);
    // Opened once bytes arrive, not at spawn: a command that starts and
    // fails at once (a camera that is not there) is never "connected".
    let description = format!("{} from {program} (pid {pid})", describe(layout));
    let mut opened = false;
    let on_event = &mut |event: Event| {
        if !opened {
            opened = true;
            on_event(Event::Opened(description.clone()));
        }
        on_event(event);
    };
    let result = std::thread::scope(|scope| {
        let watcher = {
            let (child, last_byte, finished) = (child.clone(), last_byte.clone(), finished.clone());
            scope.spawn(move || watch(&child, stop, &last_byte, &finished))
        };
        let epoch = Instant::now();
        let result = read_pipe(stdout, layout, on_event, &|| {
            last_byte.store(epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
        });
        finished.store(true, Ordering::SeqCst);
        let stalled = watcher.join().unwrap_or(false);
        (result, stalled, epoch)
    });
    let (result, stalled, _) = result;
    end(&mut child.lock().unwrap_or_else(|e| e.into_inner()));
    let status = child.lock().unwrap_or_else(|e| e.into_inner()).wait()?;
    let _ = log_thread.join();
    if stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    result?;
    if stalled {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{program} wrote nothing for {} s and was ended", STALL.as_secs()),
        ));
    }
    Err(io::Error::other(format!("{program} exited ({status})")))
}

/// Reads yolod's stdin until it ends (Ok) or `stop`.
pub fn stdin(layout: PipeLayout, on_event: &mut dyn FnMut(Event)) -> io::Result<()> {
    on_event(Event::Opened(format!("{} on stdin", describe(layout))));
    read_pipe(io::stdin().lock(), layout, on_event, &|| {})
}

fn describe(layout: PipeLayout) -> String {
    match layout {
        PipeLayout::Mjpeg { .. } => "MJPEG".into(),
        PipeLayout::I420 { width, height, stride } => format!("I420 {width}x{height} stride {stride}"),
    }
}

fn read_pipe(
    input: impl Read,
    layout: PipeLayout,
    on_event: &mut dyn FnMut(Event),
    on_bytes: &dyn Fn(),
) -> io::Result<()> {
    match layout {
        PipeLayout::Mjpeg { max_picture } => read_pictures(input, max_picture, on_event, on_bytes),
        PipeLayout::I420 { width, height, stride } => read_raw(input, width, height, stride, on_event, on_bytes),
    }
}

/// Reads raw I420 frames of one fixed size until the input ends; a frame
/// cut short by the end is corrupt.
fn read_raw(
    mut input: impl Read,
    width: u32,
    height: u32,
    stride: u32,
    on_event: &mut dyn FnMut(Event),
    on_bytes: &dyn Fn(),
) -> io::Result<()> {
    let len = super::pixel::i420_frame_len(width as usize, height as usize, stride as usize);
    loop {
        let mut data = vec![0; len];
        let mut got = 0;
        while got < len {
            match input.read(&mut data[got..]) {
                Ok(0) => {
                    if got > 0 {
                        on_event(Event::Corrupt(format!("the input ended inside a frame ({got} of {len} bytes)")));
                    }
                    return Ok(());
                }
                Ok(n) => {
                    got += n;
                    on_bytes();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        on_event(Event::Frame(Frame { number: 0, width, height, stride, format: PixelFormat::I420, data }));
    }
}

/// Splits `input` into pictures until it ends.
fn read_pictures(
    mut input: impl Read,
    max_picture: usize,
    on_event: &mut dyn FnMut(Event),
    on_bytes: &dyn Fn(),
) -> io::Result<()> {
    let mut splitter = Splitter::new(max_picture);
    let mut chunk = vec![0; 64 * 1024];
    let mut since_picture = 0usize;
    loop {
        let n = match input.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if let Some(item) = splitter.finish() {
                super::deliver(item, on_event);
            }
            return Ok(());
        }
        on_bytes();
        splitter.feed(&chunk[..n]);
        since_picture += n;
        while let Some(item) = splitter.next_item() {
            if matches!(item, Item::Picture(_)) {
                since_picture = 0;
            }
            super::deliver(item, on_event);
        }
        if since_picture > 2 * max_picture {
            return Err(super::mjpeg::no_pictures(since_picture));
        }
    }
}

/// Ends the command on `stop` or when it stalls; returns whether it stalled.
fn watch(child: &Mutex<Child>, stop: &AtomicBool, last_byte_ms: &AtomicU64, finished: &AtomicBool) -> bool {
    let epoch = Instant::now();
    while !finished.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        let quiet = epoch.elapsed().saturating_sub(Duration::from_millis(last_byte_ms.load(Ordering::SeqCst)));
        let stalled = quiet > STALL;
        if stop.load(Ordering::SeqCst) || stalled {
            end(&mut child.lock().unwrap_or_else(|e| e.into_inner()));
            return stalled;
        }
    }
    false
}

/// SIGTERM, then SIGKILL if the command is still there after [`GRACE`].
fn end(child: &mut Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child, which is not yet reaped (try_wait
    // said it runs), so the pid cannot have been reused.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let until = Instant::now() + GRACE;
    while Instant::now() < until {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
}

/// Logs the command's stderr under the camera's name, at most
/// [`STDERR_LINES_PER_MINUTE`] lines a minute (the rest are counted).
fn spawn_stderr_logger(
    camera: String,
    program: String,
    stderr: impl Read + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut window = Instant::now();
        let (mut logged, mut skipped) = (0u32, 0u64);
        for line in BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            if window.elapsed() > Duration::from_secs(60) {
                if skipped > 0 {
                    log::info!("camera {camera}: {skipped} more lines from {program} were not logged");
                }
                (window, logged, skipped) = (Instant::now(), 0, 0);
            }
            if logged >= STDERR_LINES_PER_MINUTE {
                skipped += 1;
                continue;
            }
            logged += 1;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if !text.is_empty() {
                log::info!(
                    "camera {camera}: {program}: {}",
                    super::source::redact(&text.chars().take(500).collect::<String>())
                );
            }
        }
    })
}
