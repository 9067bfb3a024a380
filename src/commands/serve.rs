//! `yolod serve`: load and optimise every model, bind, say ready, serve
//! until SIGTERM / Ctrl-C, then drain and exit 0. SIGHUP reloads (the log
//! file, the key file, the models directory) and never stops it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::api::server;
use crate::api::state::State;
use crate::camera_loop::{self, Camera};
use crate::cli::ServeArgs;
use crate::config::{KeySources, ServeConfig};
use crate::engine::Engine;
use crate::model::registry::Registry;
use crate::publish::Publisher;
use crate::service::{self, Notifier};
use crate::signals::{self, Signal};

/// On a clean stop, the longest wait for the broker to take `offline`.
const MQTT_GOODBYE: Duration = Duration::from_secs(3);

/// A worker on one job longer than this is stuck: the watchdog stops pinging.
const STUCK_JOB: Duration = Duration::from_secs(60);

/// Blocks until SIGTERM/SIGINT, reloading on each SIGHUP. Meanwhile, with a
/// systemd watchdog, pings `WATCHDOG=1` at half its period, but only while
/// no inference worker is stuck — so a wedged process is restarted instead
/// of kept alive.
fn wait_for_stop(signals: &mpsc::Receiver<Signal>, notifier: &Notifier, state: &State, keys: &KeySources) {
    let watchdog = service::watchdog_interval();
    let period = watchdog.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
    let mut last_ping = Instant::now();
    loop {
        match signals.recv_timeout(period) {
            Ok(Signal::Reload) => {
                notifier.notify("RELOADING=1");
                reload(state, keys);
                notifier.notify("READY=1");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let Some(interval) = watchdog else { continue };
                if last_ping.elapsed() + period / 2 < interval {
                    continue;
                }
                last_ping = Instant::now();
                if state.engine.stalled(STUCK_JOB) {
                    log::error!("an inference worker is stuck; not pinging the watchdog");
                } else {
                    notifier.notify("WATCHDOG=1");
                }
            }
            _ => return,
        }
    }
}

/// SIGHUP: reopen the log file, re-read the key file, rescan the models
/// directory. Each part that fails is logged and keeps what it had; the
/// listener and the requests in flight are not touched.
fn reload(state: &State, keys: &KeySources) {
    log::info!("SIGHUP: reloading");
    if let Some(sink) = state.log_sink.get() {
        if let Err(e) = sink.lock().unwrap_or_else(|e| e.into_inner()).reopen() {
            log::error!("reload: cannot reopen the log file ({e}); still writing to the old one");
        }
    }
    if keys.file.is_some() {
        match keys.load() {
            Ok(new) => *state.keys.write().unwrap_or_else(|e| e.into_inner()) = new,
            Err(e) => log::error!("reload: {e:#}; the keys in force are kept"),
        }
    }
    match state.registry.rescan() {
        Ok(change) => {
            for failure in &change.failed {
                log::error!("reload: {failure}");
            }
            if !change.added.is_empty() || !change.removed.is_empty() {
                log::info!(
                    "reload: models added: [{}], removed: [{}]",
                    change.added.join(", "),
                    change.removed.join(", ")
                );
            }
        }
        Err(e) => log::error!("reload: {e:#}; the models in force are kept"),
    }
    log::info!("reloaded");
}

pub fn serve(args: ServeArgs, activated: Option<std::net::TcpListener>) -> Result<ExitCode> {
    let started = Instant::now();
    // First: SIGHUP must not end the process while models load.
    let signals = signals::listen()?;
    let config = ServeConfig::from_args(&args)?;
    log::info!("version {}: loading models", env!("CARGO_PKG_VERSION"));
    let registry = Registry::load(&config.sources)?;
    for (i, m) in registry.all().iter().enumerate() {
        let info = &m.info;
        log::info!(
            "model {}{}: {}, {} classes, {}x{} ({}), {}, from {}",
            info.id,
            if i == 0 { " (default)" } else { "" },
            info.task.as_str(),
            info.names.len(),
            info.input_size,
            info.input_size,
            if info.any_size { "any size" } else { "fixed size" },
            info.precision_label(),
            info.source
        );
    }
    let (socket, address) = match activated {
        Some(socket) => {
            let address = socket.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "the systemd socket".into());
            (socket, address)
        }
        None => {
            let socket = std::net::TcpListener::bind(config.listen)
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            (socket, config.listen.to_string())
        }
    };
    let engine = Engine::start(config.workers, config.queue, config.decode);
    if config.open_to_network {
        log::warn!("--no-auth on {}: anyone who can reach this address can use the API", config.listen);
    }
    let models: Vec<String> = registry.all().iter().map(|m| m.info.id.clone()).collect();
    let (mut camera_jobs, sink) =
        super::capture::camera_jobs(config.cameras, &registry.default_model(), None, config.http.max_detections)?;
    let cameras: Vec<Arc<Camera>> = camera_jobs.iter().map(|j| Camera::new(&j.config)).collect();
    let publisher = match config.mqtt {
        Some(mqtt) => {
            let names: Vec<String> = cameras.iter().map(|c| c.stats.name.clone()).collect();
            let publisher = Publisher::start(mqtt, &names)?;
            for job in &mut camera_jobs {
                job.observer = Some(publisher.clone());
            }
            Some(publisher)
        }
        None => None,
    };
    let state = Arc::new(State::new(registry, engine, config.http.clone(), cameras.clone()));
    if let Some(publisher) = &publisher {
        let _ = state.mqtt.set(publisher.clone());
    }
    let sink = Arc::new(Mutex::new(sink));
    let _ = state.log_sink.set(sink.clone());
    let camera_stop = Arc::new(AtomicBool::new(false));
    let camera_threads: Vec<_> = camera_jobs
        .into_iter()
        .zip(cameras)
        .map(|(job, camera)| {
            let (state, sink, stop) = (state.clone(), sink.clone(), camera_stop.clone());
            std::thread::spawn(move || {
                camera_loop::run(job, &state.engine, &sink, camera, stop, &|line| state.hub.publish(line))
            })
        })
        .collect();
    let running = server::start(socket, state.clone()).context("starting the HTTP server")?;
    log::info!(
        "ready on http://{address} in {} ms ({} workers, queue {}, auth {})",
        started.elapsed().as_millis(),
        config.workers,
        config.queue,
        if config.http.keys.is_empty() { "off" } else { "on" }
    );
    let notifier = Notifier::from_env();
    notifier.notify(&format!("READY=1\nSTATUS=serving {} on http://{address}", models.join(", ")));
    signals.started();
    wait_for_stop(&signals.events, &notifier, &state, &config.key_sources);
    notifier.notify(&format!(
        "STOPPING=1\nSTATUS=stopping: finishing in-flight requests (up to {:?})",
        config.shutdown_timeout
    ));
    log::info!("stopping: finishing in-flight requests (up to {:?})", config.shutdown_timeout);
    camera_stop.store(true, Ordering::SeqCst);
    for t in camera_threads {
        let _ = t.join();
    }
    if let Some(publisher) = &publisher {
        publisher.shutdown(MQTT_GOODBYE);
    }
    let left = running.shutdown(config.shutdown_timeout);
    if left > 0 {
        log::error!("{left} request(s) still running at the shutdown timeout were abandoned");
        return Ok(ExitCode::FAILURE);
    }
    log::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
