//! Diagnostics through the `log` facade, written to stderr one line each.
//!
//! Under systemd (`JOURNAL_STREAM` names our stderr) every line starts with
//! an sd-daemon priority, so journald files it at the right level:
//! `<3>` error, `<4>` warning, `<5>` notice (our `info`), `<7>` debug and
//! trace. Nothing diagnostic is written at `<6>` info: that priority belongs
//! to the detection lines on stdout, so `journalctl -p info..info` reads only
//! detections and `journalctl -p notice` only diagnostics. Elsewhere lines
//! read `yolod: ...`, with `warning:` or `error:` before the message.
//!
//! Levels: `--log-level` sets yolod's own; other crates (tract, ureq) log at
//! `warn` and above unless `RUST_LOG` says otherwise. `RUST_LOG` takes a
//! level (`debug`) or a list of `target=level` (`yolod=debug,tract=info`).

use std::io::Write;
use std::os::unix::fs::MetadataExt;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The crate's own target prefix (`log` targets are module paths).
const OWN: &str = "yolod";

/// Where one line's level goes: which targets, which level.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    /// A target prefix; `None` matches every target.
    target: Option<String>,
    level: LevelFilter,
}

/// The installed logger.
struct Logger {
    /// Most specific first.
    directives: Vec<Directive>,
    journal: bool,
}

/// What the environment says about logging, read once at the top of `main`
/// before any thread exists.
#[derive(Debug, Clone, Default)]
pub struct LogEnv {
    /// `RUST_LOG`, if set.
    pub rust_log: Option<String>,
    /// Whether stderr is the journal stream that `JOURNAL_STREAM` names.
    pub stderr_is_journal: bool,
}

impl LogEnv {
    /// Reads `RUST_LOG` and `JOURNAL_STREAM`, and compares the latter with
    /// the device and inode of our stderr (systemd's documented check: a
    /// process that inherited the variable but not the stream must not
    /// prefix). Detection lines on stdout need no prefix: journald files
    /// unprefixed lines at info, the unit's default.
    pub fn read() -> LogEnv {
        let journal = std::env::var("JOURNAL_STREAM").ok().and_then(|v| parse_journal_stream(&v));
        let stderr_is_journal = journal.is_some_and(|(dev, ino)| {
            std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
        });
        LogEnv { rust_log: std::env::var("RUST_LOG").ok(), stderr_is_journal }
    }
}

/// `JOURNAL_STREAM` is `DEVICE:INODE`, both decimal.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Parses a `RUST_LOG`-style list. A bare level applies to every target.
fn parse_directives(spec: &str) -> Result<Vec<Directive>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (target, level) = match part.split_once('=') {
            Some((t, l)) => (Some(t.trim().to_owned()), l.trim()),
            None => (None, part),
        };
        let level: LevelFilter = level
            .parse()
            .map_err(|_| format!("{level:?} is not a log level (off, error, warn, info, debug, trace)"))?;
        out.push(Directive { target, level });
    }
    Ok(out)
}

/// The directives in force: `RUST_LOG`'s, then yolod's own level, then warn
/// for everything else; sorted so that the longest matching target wins.
fn directives(own: LevelFilter, rust_log: Option<&str>) -> Result<Vec<Directive>, String> {
    let mut list = rust_log.map(parse_directives).transpose()?.unwrap_or_default();
    let has_own = list.iter().any(|d| d.target.as_deref() == Some(OWN));
    if !has_own {
        // --log-level sets yolod's level; a bare RUST_LOG level raises it too.
        let bare = list.iter().find(|d| d.target.is_none()).map(|d| d.level);
        list.push(Directive { target: Some(OWN.into()), level: bare.map_or(own, |b| b.max(own)) });
    }
    if !list.iter().any(|d| d.target.is_none()) {
        list.push(Directive { target: None, level: LevelFilter::Warn });
    }
    list.sort_by_key(|d| std::cmp::Reverse(d.target.as_ref().map_or(0, |t| t.len() + 1)));
    Ok(list)
}

impl Logger {
    fn level_for(&self, target: &str) -> LevelFilter {
        self.directives
            .iter()
            .find(|d| {
                d.target
                    .as_deref()
                    .is_none_or(|t| target == t || target.strip_prefix(t).is_some_and(|rest| rest.starts_with("::")))
            })
            .map_or(LevelFilter::Off, |d| d.level)
    }
}

/// The sd-daemon priority of a diagnostic: never `<6>`, which is kept for
/// detection lines.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 5,
        Level::Debug | Level::Trace => 7,
    }
}

/// One diagnostic line, without its newline.
fn format_line(journal: bool, level: Level, target: &str, message: &str) -> String {
    let own = target == OWN || target.starts_with("yolod::");
    let origin = if own { String::new() } else { format!("[{target}] ") };
    if journal {
        let tag = match level {
            Level::Debug | Level::Trace if own => "debug: ",
            _ => "",
        };
        return format!("<{}>{tag}{origin}{message}", priority(level));
    }
    let tag = match level {
        Level::Error => "error: ",
        Level::Warn => "warning: ",
        Level::Info => "",
        Level::Debug => "debug: ",
        Level::Trace => "trace: ",
    };
    format!("yolod: {tag}{origin}{message}")
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level_for(metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = format_line(self.journal, record.level(), record.target(), &record.args().to_string());
        if self.journal {
            // journald reads one entry per line: keep continuation lines at
            // the same priority.
            line = line.replace('\n', &format!("\n<{}>", priority(record.level())));
        }
        line.push('\n');
        // One write per line, so lines from several threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger. `own` is `--log-level`. Fails on a `RUST_LOG` that
/// does not parse (a typo there would otherwise silence what the user asked for).
pub fn init(own: LevelFilter, env: &LogEnv) -> Result<(), String> {
    let directives = directives(own, env.rust_log.as_deref()).map_err(|e| format!("RUST_LOG: {e}"))?;
    let max = directives.iter().map(|d| d.level).max().unwrap_or(LevelFilter::Off);
    let logger = Logger { directives, journal: env.stderr_is_journal };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| e.to_string())?;
    log::set_max_level(max);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger(own: LevelFilter, rust_log: Option<&str>) -> Logger {
        Logger { directives: directives(own, rust_log).unwrap(), journal: false }
    }

    #[test]
    fn own_level_from_the_flag_others_at_warn() {
        let l = logger(LevelFilter::Info, None);
        assert_eq!(l.level_for("yolod::commands::serve"), LevelFilter::Info);
        assert_eq!(l.level_for("yolod"), LevelFilter::Info);
        assert_eq!(l.level_for("tract_core::model"), LevelFilter::Warn);
        // A prefix of a name is not its parent module.
        assert_eq!(l.level_for("yolodx"), LevelFilter::Warn);
    }

    #[test]
    fn rust_log_targets_win_over_the_default() {
        let l = logger(LevelFilter::Info, Some("tract_core=debug, ureq=off"));
        assert_eq!(l.level_for("tract_core::ops"), LevelFilter::Debug);
        assert_eq!(l.level_for("ureq::unversioned"), LevelFilter::Off);
        assert_eq!(l.level_for("yolod::engine"), LevelFilter::Info);
        let bare = logger(LevelFilter::Info, Some("debug"));
        assert_eq!(bare.level_for("rustls"), LevelFilter::Debug);
        assert_eq!(bare.level_for("yolod::engine"), LevelFilter::Debug);
        let own = logger(LevelFilter::Debug, Some("yolod=error"));
        assert_eq!(own.level_for("yolod::engine"), LevelFilter::Error);
    }

    #[test]
    fn a_bad_rust_log_is_an_error() {
        assert!(directives(LevelFilter::Info, Some("verbose")).is_err());
        assert!(directives(LevelFilter::Info, Some("tract=loud")).is_err());
    }

    #[test]
    fn journal_lines_carry_priorities_and_never_info() {
        assert_eq!(format_line(true, Level::Error, "yolod::x", "boom"), "<3>boom");
        assert_eq!(format_line(true, Level::Warn, "yolod::x", "hm"), "<4>hm");
        assert_eq!(format_line(true, Level::Info, "yolod::x", "ready"), "<5>ready");
        assert_eq!(format_line(true, Level::Debug, "yolod::x", "plan"), "<7>debug: plan");
        assert_eq!(format_line(true, Level::Warn, "tract_core", "odd"), "<4>[tract_core] odd");
        for level in [Level::Error, Level::Warn, Level::Info, Level::Debug, Level::Trace] {
            assert_ne!(priority(level), 6, "{level} would mix with detection lines");
        }
    }

    #[test]
    fn terminal_lines_name_the_program_and_the_severity() {
        assert_eq!(format_line(false, Level::Info, "yolod::x", "ready"), "yolod: ready");
        assert_eq!(format_line(false, Level::Warn, "yolod::x", "hm"), "yolod: warning: hm");
        assert_eq!(format_line(false, Level::Error, "ureq", "x"), "yolod: error: [ureq] x");
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("a:1"), None);
    }
}
