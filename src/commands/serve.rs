//! `yolod serve`: load and optimise every model, bind, say ready, serve
//! until SIGTERM / Ctrl-C, then drain and exit 0.

use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};

use crate::api::server::{self, State};
use crate::cli::ServeArgs;
use crate::config::ServeConfig;
use crate::engine::Engine;
use crate::model::registry::Registry;

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let started = Instant::now();
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
    let engine = Engine::start(config.workers, config.queue, config.decode);
    let listener = tiny_http::Server::http(config.listen)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the SIGTERM/SIGINT handler")?;
    if config.open_to_network {
        eprintln!("yolod: WARNING: --no-auth on {}: anyone who can reach this address can use the API", config.listen);
    }
    let state = Arc::new(State::new(registry, engine, config.http.clone()));
    let running = server::start(listener, state);
    eprintln!(
        "yolod: ready on http://{} in {} ms ({} workers, queue {}, auth {})",
        config.listen,
        started.elapsed().as_millis(),
        config.workers,
        config.queue,
        if config.http.keys.is_empty() { "off" } else { "on" }
    );
    let _ = stop_rx.recv();
    eprintln!("yolod: stopping: finishing in-flight requests (up to {:?})", config.shutdown_timeout);
    let left = running.shutdown(config.shutdown_timeout);
    if left > 0 {
        eprintln!("yolod: {left} request(s) still running at the shutdown timeout were abandoned");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("yolod: stopped");
    Ok(ExitCode::SUCCESS)
}
