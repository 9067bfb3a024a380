//! `yolod serve`: load and optimise every model, bind, say ready, serve
//! until SIGTERM / Ctrl-C, then drain and exit 0.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use crate::api::server::{self, State};
use crate::camera::CameraStats;
use crate::cli::{CameraArgs, ServeArgs};
use crate::pipeline;
use crate::config::ServeConfig;
use crate::engine::Engine;
use crate::model::registry::Registry;
use crate::service::{self, Notifier};

/// A worker on one job longer than this is stuck: the watchdog stops pinging.
const STUCK_JOB: Duration = Duration::from_secs(60);

/// Blocks until SIGTERM/SIGINT. Meanwhile, with a systemd watchdog, pings
/// `WATCHDOG=1` at half its period, but only while no inference worker is
/// stuck — so a wedged process is restarted instead of kept alive.
/// Waits for SIGTERM/SIGINT, pinging the watchdog meanwhile. Returns the
/// error when the listener died instead.
fn wait_for_stop(stop: &mpsc::Receiver<()>, notifier: &Notifier, state: &State) -> Option<String> {
    let watchdog = service::watchdog_interval();
    let period = watchdog.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
    let mut last_ping = Instant::now();
    loop {
        match stop.recv_timeout(period) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(e) = state.listener_failed.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                    return Some(e);
                }
                let Some(interval) = watchdog else { continue };
                if last_ping.elapsed() + period / 2 < interval {
                    continue;
                }
                last_ping = Instant::now();
                if state.engine.stalled(STUCK_JOB) {
                    eprintln!("yolod: an inference worker is stuck; not pinging the watchdog");
                } else {
                    notifier.notify("WATCHDOG=1");
                }
            }
            _ => return None,
        }
    }
}

/// How long the server may fail its own `/healthz` before it gives up.
const SELF_CHECK_LIMIT: Duration = Duration::from_secs(30);

/// Asks the server's own `/healthz` every `interval`, for two reasons.
/// `accept()` obeys the listener's SO_RCVTIMEO, and tiny_http's acceptor ends
/// at its first error, timeouts included: the connection keeps it from ever
/// waiting that long. And that acceptor also dies on other errors (it
/// panics on EMFILE) without telling anyone: when no answer has come for
/// `SELF_CHECK_LIMIT`, the listener is marked failed and yolod exits, so
/// that systemd restarts it instead of pinging the watchdog for a deaf server.
fn check_self(listening: SocketAddr, interval: Duration, state: Arc<State>) {
    let target = match listening.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listening.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listening.port()),
        _ => listening,
    };
    let ask = move || -> std::io::Result<bool> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: yolod\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(&head == b"HTTP/1.1 200")
    };
    std::thread::spawn(move || {
        let mut last_ok = Instant::now();
        while !state.is_stopping() {
            std::thread::sleep(interval);
            if matches!(ask(), Ok(true)) {
                last_ok = Instant::now();
            } else if last_ok.elapsed() > SELF_CHECK_LIMIT && !state.is_stopping() {
                let mut failed = state.listener_failed.lock().unwrap_or_else(|e| e.into_inner());
                failed.get_or_insert_with(|| format!("no answer to its own /healthz for {} s", SELF_CHECK_LIMIT.as_secs()));
                return;
            }
        }
    });
}

pub fn serve(mut args: ServeArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let camera_args = std::mem::replace(&mut args.camera, empty_camera_args());
    let config = ServeConfig::from_args(args)?;
    eprintln!("yolod {}: loading models", env!("CARGO_PKG_VERSION"));
    let registry = Registry::load(&config.sources)?;
    for (i, m) in registry.all().iter().enumerate() {
        let info = &m.info;
        eprintln!(
            "yolod: model {}{}: {}, {} classes, {}x{} ({}), {}, from {}",
            info.id,
            if i == 0 { " (default)" } else { "" },
            info.task.as_str(),
            info.names.len(),
            info.input_size,
            info.input_size,
            if info.any_size { "any size" } else { "fixed size" },
            info.precision,
            info.source
        );
    }
    // Taken before any worker thread starts: it edits the environment.
    let activated = service::activated_listener();
    let (socket, address) = match activated {
        Some(socket) => {
            let address = socket.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "the systemd socket".into());
            (socket, address)
        }
        None => {
            let socket = std::net::TcpListener::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
            (socket, config.listen.to_string())
        }
    };
    // Accepted connections inherit these (Linux copies them on accept), so no
    // connection can sit silent on one of tiny_http's threads for longer.
    let options = socket2::SockRef::from(&socket);
    options.set_read_timeout(Some(config.read_timeout)).context("setting the read timeout")?;
    options.set_write_timeout(Some(config.read_timeout)).context("setting the write timeout")?;
    let listening = socket.local_addr().context("reading the listener's address")?;
    let listener = tiny_http::Server::from_listener(socket, None).map_err(|e| anyhow!("{e}"))?;
    let engine = Engine::start(config.workers, config.queue, config.decode);
    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the SIGTERM/SIGINT handler")?;
    if config.open_to_network {
        eprintln!("yolod: WARNING: --no-auth on {}: anyone who can reach this address can use the API", config.listen);
    }
    let models: Vec<String> = registry.all().iter().map(|m| m.info.id.clone()).collect();
    let (camera_jobs, sink) = super::capture::camera_jobs(&camera_args, registry.default_model(), None)?;
    let camera_stats: Vec<Arc<CameraStats>> = camera_jobs
        .iter()
        .map(|j| Arc::new(CameraStats { source: j.config.device.display().to_string(), ..Default::default() }))
        .collect();
    let state = Arc::new(State::new(registry, engine, config.http.clone(), camera_stats.clone()));
    let sink = Arc::new(Mutex::new(sink));
    let _ = state.log_sink.set(sink.clone());
    let camera_stop = Arc::new(AtomicBool::new(false));
    let camera_threads: Vec<_> = camera_jobs
        .into_iter()
        .zip(camera_stats)
        .map(|(job, stats)| {
            let (state, sink, stop) = (state.clone(), sink.clone(), camera_stop.clone());
            std::thread::spawn(move || pipeline::run(job, &state.engine, &sink, stats, stop, &|line| state.hub.publish(line)))
        })
        .collect();
    let running = server::start(listener, state.clone());
    check_self(listening, (config.read_timeout / 4).min(Duration::from_secs(5)), state.clone());
    eprintln!(
        "yolod: ready on http://{address} in {} ms ({} workers, queue {}, auth {})",
        started.elapsed().as_millis(),
        config.workers,
        config.queue,
        if config.http.keys.is_empty() { "off" } else { "on" }
    );
    let notifier = Notifier::from_env();
    notifier.notify(&format!("READY=1\nSTATUS=serving {} on http://{address}", models.join(", ")));
    if let Some(e) = wait_for_stop(&stop_rx, &notifier, &state) {
        eprintln!("yolod: the listener stopped accepting connections ({e}); exiting so that the service manager restarts yolod");
        notifier.notify(&format!("STATUS=listener failed: {e}"));
        return Ok(ExitCode::FAILURE);
    }
    notifier.notify(&format!("STOPPING=1\nSTATUS=stopping: finishing in-flight requests (up to {:?})", config.shutdown_timeout));
    eprintln!("yolod: stopping: finishing in-flight requests (up to {:?})", config.shutdown_timeout);
    camera_stop.store(true, Ordering::SeqCst);
    for t in camera_threads {
        let _ = t.join();
    }
    let left = running.shutdown(config.shutdown_timeout);
    if left > 0 {
        eprintln!("yolod: {left} request(s) still running at the shutdown timeout were abandoned");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("yolod: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Camera options with no camera: what is left in `ServeArgs` once taken.
fn empty_camera_args() -> CameraArgs {
    CameraArgs {
        cameras: vec![],
        frame_size: None,
        format: "auto".into(),
        fps: None,
        imgsz: 640,
        confidence: 0.25,
        log: "-".into(),
        log_max_bytes: 64 << 20,
        log_keep: 3,
        emit: "all".into(),
    }
}
