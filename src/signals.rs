//! The one signal thread: SIGTERM and SIGINT mean stop (refuse new work,
//! drain, exit 0); SIGHUP means reload and never stops the process. The
//! thread only tells them apart and hands them to whoever waits (serve's
//! main loop, capture's); the work happens there, outside any handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM, SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The signals, once installed: `events` yields them in order.
pub struct Listener {
    pub events: Receiver<Signal>,
    started: Arc<AtomicBool>,
}

impl Listener {
    /// From now on a stop signal waits for the receiver. Until then (while
    /// models load) it ends the process as its default action would: the
    /// start-up has nothing to drain.
    pub fn started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }
}

/// Installs the handlers and starts the signal thread. From this call on,
/// SIGHUP no longer ends the process, even before `started`.
pub fn listen() -> Result<Listener> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).context("installing the signal handlers")?;
    let (tx, events) = mpsc::channel();
    let started = Arc::new(AtomicBool::new(false));
    let running = started.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let event = if signal == SIGHUP { Signal::Reload } else { Signal::Stop };
                if event == Signal::Stop && !running.load(Ordering::SeqCst) {
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                }
                if tx.send(event).is_err() {
                    return;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(Listener { events, started })
}
