//! Entry point: parse the command line, run the chosen command, map the
//! result to an exit code. Nothing else lives here.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use yolod::cli::{Cli, Command};
use yolod::commands;

/// musl's allocator serialises threads on one lock and returns memory to the
/// kernel eagerly; mimalloc gives the static builds glibc-like speed.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The environment is read and edited here, while main is the only thread.
    yolod::engine::quiet_error_backtraces();
    let activated = yolod::service::take_activated_listener();
    let cli = Cli::parse();
    yolod::engine::split_matmuls(cli.matmul_threads.into());
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
            eprintln!("yolod: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
