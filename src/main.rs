//! Entry point: parse the command line, run the chosen command, map the
//! result to an exit code. Nothing else lives here.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use yolod::cli::{Cli, Command};
use yolod::commands;

/// musl's allocator serialises threads on one lock and returns memory to the
/// kernel eagerly; mimalloc gives the static builds glibc-like speed.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Everything read from the environment is read (and edited) here, while
    // main is the only thread (before tract's pools and the model loaders).
    let log_env = yolod::logging::LogEnv::read();
    let cli = Cli::parse_with_config();
    if let Err(e) = yolod::logging::init(cli.log_level.into(), &log_env) {
        eprintln!("yolod: error: {e}");
        return ExitCode::from(2);
    }
    yolod::engine::quiet_error_backtraces();
    let activated = yolod::service::take_activated_listener();
    let (threads, why) = match cli.matmul_threads {
        Some(n) => (n.into(), "--matmul-threads"),
        None => yolod::config::default_matmul_threads(&cli.command),
    };
    if threads > 1 {
        log::info!("each inference is split across {threads} threads ({why})");
    }
    yolod::engine::split_matmuls(threads);
    let result = match cli.command {
        Command::Serve(args) => commands::serve(*args, activated),
        Command::Predict(args) => commands::predict(args),
        Command::Models(args) => commands::models(args),
        Command::Bench(args) => commands::bench(args),
        Command::Capture(args) => commands::capture(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::from(2)
        }
    }
}
