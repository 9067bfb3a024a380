//! The `--config FILE` (TOML) layer of the options.
//!
//! Precedence is flags, then `YOLOD_*` variables, then this file, then the
//! built-in defaults. The file's keys are the long flag names (`queue = 4`,
//! `api-key-file = "/etc/yolod/keys"`; `api_key_file` works too), so every
//! option that has a flag has a key, with the same validation: a key fills
//! in its flag only where neither the command line nor a variable set it,
//! and clap parses the result again. Lists are TOML arrays; a `true`
//! switch is the bare flag. Keys that only another command knows (a shared
//! file for `serve` and `capture`) are skipped; a key that no command knows
//! is an error, so a typo is not silently ignored.
//!
//! `[[camera]]` tables each add a camera, with its own settings
//! ([`CameraTable`]); the global camera flags are their defaults.

use std::ffi::OsString;
use std::path::Path;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use serde::Deserialize;

/// The flag holding the file's path (global, so `yolod serve --config F` works).
pub const CONFIG_ARG: &str = "config";

/// One `[[camera]]` table: a source and the settings that differ from the
/// global camera flags (`--fps`, `--size`, ...), which are its defaults.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CameraTable {
    /// As `--camera` takes it: /dev/videoN, http://..., rtsp://..., exec:..., or -.
    pub source: String,
    /// `[a-z0-9_-]+`; default: a slug of the source.
    pub name: Option<String>,
    /// A file holding `user:password` for an HTTP or RTSP source (kept out of the URL, so out of `ps` and logs).
    #[serde(alias = "credentials-file")]
    pub credentials_file: Option<std::path::PathBuf>,
    /// As `--fps`.
    pub fps: Option<f64>,
    /// As `--frame-size`, e.g. "1280x720".
    #[serde(alias = "frame-size")]
    pub frame_size: Option<String>,
    /// As `--format` (any case).
    #[serde(default, deserialize_with = "format_choice")]
    pub format: Option<crate::camera::pixel::FormatChoice>,
    /// As `--size`: the inference size.
    pub size: Option<u32>,
    /// As `--camera-confidence`.
    pub confidence: Option<f32>,
    /// As `--emit`.
    #[serde(default, deserialize_with = "emit")]
    pub emit: Option<crate::sink::Emit>,
}

/// A table's `format`, parsed as `--format` parses it.
fn format_choice<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::camera::pixel::FormatChoice>, D::Error> {
    value_enum(d, "format", true)
}

/// A table's `emit`, parsed as `--emit` parses it.
fn emit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<crate::sink::Emit>, D::Error> {
    value_enum(d, "emit", false)
}

/// A string naming one of a [`clap::ValueEnum`]'s values, as its flag takes
/// it; the error lists the values allowed.
fn value_enum<'de, D, T>(d: D, key: &str, ignore_case: bool) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: clap::ValueEnum,
{
    let s = String::deserialize(d)?;
    T::from_str(&s, ignore_case).map(Some).map_err(|_| {
        let allowed: Vec<String> =
            T::value_variants().iter().filter_map(T::to_possible_value).map(|v| v.get_name().to_string()).collect();
        serde::de::Error::custom(format!("{key} {s:?}: use one of {}", allowed.join(", ")))
    })
}

/// What the file adds: flags for clap to parse again (None when the file
/// sets no flag), and its camera tables.
#[derive(Debug, Default)]
pub struct Merged {
    pub args: Option<Vec<OsString>>,
    pub cameras: Vec<CameraTable>,
}

/// `args` with the file's settings added as flags, and its `[[camera]]`
/// tables; nothing when no `--config` was given.
pub fn merge(cmd: &Command, matches: &ArgMatches, args: &[OsString]) -> Result<Merged, clap::Error> {
    let Some((sub_name, sub)) = matches.subcommand() else { return Ok(Merged::default()) };
    let Some(path) = sub.get_one::<std::path::PathBuf>(CONFIG_ARG) else { return Ok(Merged::default()) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| clap::Error::raw(ErrorKind::Io, format!("--config {}: {e}\n", path.display())))?;
    let mut table: toml::Table = text.parse().map_err(|e| invalid(path, &format!("{e}")))?;
    let sub_cmd = cmd.find_subcommand(sub_name).expect("clap matched this subcommand");
    let cameras = match table.remove("camera") {
        Some(value) => camera_tables(sub_cmd, value).map_err(|e| invalid(path, &e))?,
        None => Vec::new(),
    };
    let extra = flags_from_table(cmd, sub_cmd, sub, &table).map_err(|e| invalid(path, &e))?;
    if extra.is_empty() {
        return Ok(Merged { args: None, cameras });
    }
    // Before a `--`, if any: what follows it is positional.
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut out = args[..at].to_vec();
    out.extend(extra);
    out.extend_from_slice(&args[at..]);
    Ok(Merged { args: Some(out), cameras })
}

fn invalid(path: &Path, message: &str) -> clap::Error {
    clap::Error::raw(ErrorKind::ValueValidation, format!("--config {}: {}\n", path.display(), message.trim_end()))
}

/// The flags that the table's keys stand for, skipping those set already.
fn flags_from_table(
    root: &Command,
    sub: &Command,
    matches: &ArgMatches,
    table: &toml::Table,
) -> Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = sub.get_arguments().chain(root.get_arguments()).find(|a| a.get_long() == Some(long.as_str()));
        let Some(arg) = arg else {
            let known_elsewhere =
                root.get_subcommands().any(|c| c.get_arguments().any(|a| a.get_long() == Some(long.as_str())));
            if known_elsewhere {
                continue;
            }
            return Err(format!("unknown key {key:?}: it is not an option of any yolod command (see yolod --help)"));
        };
        if long == CONFIG_ARG {
            return Err("a config file cannot name another one".into());
        }
        let id = arg.get_id().as_str();
        if matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        for item in values(key, value)? {
            match (switch, item.as_str()) {
                (true, "true") => out.push(OsString::from(format!("--{long}"))),
                (true, "false") => {}
                (true, other) => return Err(format!("{key} = {other}: give true or false")),
                (false, _) => out.push(OsString::from(format!("--{long}={item}"))),
            }
        }
    }
    Ok(out)
}

/// A key's value as flag values: scalars as one, arrays as one each.
fn values(key: &str, value: &toml::Value) -> Result<Vec<String>, String> {
    match value {
        toml::Value::String(s) => Ok(vec![s.clone()]),
        toml::Value::Integer(i) => Ok(vec![i.to_string()]),
        toml::Value::Float(f) => Ok(vec![f.to_string()]),
        toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
        toml::Value::Array(items) => {
            items.iter().map(|v| values(key, v)).collect::<Result<Vec<_>, _>>().map(|v| v.concat())
        }
        toml::Value::Datetime(_) | toml::Value::Table(_) => {
            Err(format!("{key}: expected a string, number, boolean or list"))
        }
    }
}

/// The `[[camera]]` tables, for a command that reads cameras (others skip them).
fn camera_tables(sub: &Command, value: toml::Value) -> Result<Vec<CameraTable>, String> {
    let toml::Value::Array(tables) = value else {
        return Err("camera: write each camera as a [[camera]] table with a source".into());
    };
    if !sub.get_arguments().any(|a| a.get_long() == Some("camera")) {
        return Ok(Vec::new());
    }
    tables
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            CameraTable::deserialize(table).map_err(|e| format!("[[camera]] number {}: {}", i + 1, e.message()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};

    /// Parses `yolod ARGS --config FILE` with FILE holding `toml`.
    fn parse(toml: &str, args: &[&str]) -> Result<Cli, clap::Error> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("yolod-config-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, toml).unwrap();
        let mut argv: Vec<std::ffi::OsString> = vec!["yolod".into()];
        argv.extend(args.iter().map(Into::into));
        argv.push("--config".into());
        argv.push(path.clone().into());
        let cli = Cli::try_parse_with_config(argv);
        std::fs::remove_file(path).unwrap();
        cli
    }

    fn serve(cli: Cli) -> Box<crate::cli::ServeArgs> {
        match cli.command {
            Command::Serve(args) => args,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn the_file_fills_what_the_flags_left_to_defaults() {
        let args = serve(parse("queue = 3\nmax-body = \"2M\"\nallow-url = true\n", &["serve"]).unwrap());
        assert_eq!(args.queue, 3);
        assert_eq!(args.max_body, 2 << 20);
        assert!(args.allow_url);
    }

    #[test]
    fn a_flag_wins_over_the_file() {
        let args = serve(parse("queue = 3\n", &["serve", "--queue", "7"]).unwrap());
        assert_eq!(args.queue, 7);
    }

    /// One camera, from a flag or a `[[camera]]` table, splits each
    /// inference across the cores; none or two keep one thread per
    /// inference; --matmul-threads is not overridden (main.rs reads it first).
    #[test]
    fn one_camera_splits_each_inference_across_the_cores() {
        let threads = |toml: &str, args: &[&str]| {
            let cli = parse(toml, args).unwrap();
            (cli.matmul_threads, crate::config::default_matmul_threads(&cli.command).0)
        };
        let cores = crate::config::default_workers();
        assert_eq!(threads("", &["capture", "--camera", "/dev/video0"]), (None, cores));
        assert_eq!(threads("[[camera]]\nsource = \"/dev/video0\"\n", &["serve"]), (None, cores));
        assert_eq!(threads("", &["serve"]), (None, 1));
        assert_eq!(threads("", &["serve", "--camera", "/dev/video0", "--camera", "/dev/video2"]), (None, 1));
        assert_eq!(threads("", &["serve", "--matmul-threads", "2", "--camera", "/dev/video0"]).0, Some(2));
    }

    #[test]
    fn snake_case_keys_lists_and_global_options() {
        let cli = parse("api_key = [\"a\", \"b\"]\nmatmul-threads = 2\nlog-level = \"debug\"\n", &["serve"]).unwrap();
        assert_eq!(cli.matmul_threads, Some(2));
        assert_eq!(cli.log_level, crate::cli::LogLevel::Debug);
        assert_eq!(serve(cli).api_keys, ["a", "b"]);
    }

    #[test]
    fn mqtt_keys_fill_their_options_and_a_flag_wins() {
        let toml = "mqtt = \"mqtt://ha@broker\"\nmqtt-labels = [\"person\", \"traffic light\"]\nmqtt-topic = \"x\"\n";
        let args = serve(parse(toml, &["serve", "--mqtt-topic", "yolod/kitchen"]).unwrap());
        assert_eq!(args.mqtt.url.as_deref(), Some("mqtt://ha@broker"));
        assert_eq!(args.mqtt.labels, ["person", "traffic light"]);
        assert_eq!(args.mqtt.topic, "yolod/kitchen");
        assert_eq!(args.mqtt.discovery_prefix, "homeassistant");
    }

    #[test]
    fn camera_tables_come_with_their_own_settings_beside_the_flags() {
        let toml = "fps = 2\n[[camera]]\nsource = \"/dev/video2\"\nname = \"door\"\nfps = 5\nframe-size = \"1280x720\"\n\n\
                    [[camera]]\nsource = \"exec:ffmpeg -i x -f mjpeg -\"\nsize = 320\n";
        let args = serve(parse(toml, &["serve", "--camera", "/dev/video0"]).unwrap());
        assert_eq!(args.camera.cameras, ["/dev/video0"]);
        assert_eq!(args.camera.fps, Some(2.0));
        let tables = &args.camera.tables;
        assert_eq!(tables.len(), 2);
        assert_eq!(
            (tables[0].name.as_deref(), tables[0].fps, tables[0].frame_size.as_deref()),
            (Some("door"), Some(5.0), Some("1280x720"))
        );
        assert_eq!((tables[1].source.as_str(), tables[1].size), ("exec:ffmpeg -i x -f mjpeg -", Some(320)));
        let err = parse("[[camera]]\nsource = \"/dev/video2\"\nzoom = 2\n", &["serve"]).unwrap_err();
        assert!(err.to_string().contains("unknown field `zoom`"), "{err}");
        let err = parse("[[camera]]\nname = \"x\"\n", &["serve"]).unwrap_err();
        assert!(err.to_string().contains("missing field `source`"), "{err}");
        // Commands without cameras skip the tables.
        assert!(parse(toml, &["models"]).is_ok());
    }

    #[test]
    fn a_tables_format_and_emit_take_the_flags_values() {
        use crate::camera::pixel::FormatChoice;
        let toml = "[[camera]]\nsource = \"-\"\nformat = \"i420\"\nemit = \"changes\"\n\n\
                    [[camera]]\nsource = \"/dev/video0\"\nformat = \"RGB24\"\n";
        let args = serve(parse(toml, &["serve"]).unwrap());
        let tables = &args.camera.tables;
        assert_eq!((tables[0].format, tables[0].emit), (Some(FormatChoice::I420), Some(crate::sink::Emit::Changes)));
        assert_eq!((tables[1].format, tables[1].emit), (Some(FormatChoice::Rgb3), None));
        let err = parse("[[camera]]\nsource = \"-\"\nformat = \"h264\"\n", &["serve"]).unwrap_err();
        assert!(err.to_string().contains("format \"h264\": use one of auto, MJPG, YUYV, NV12, I420, RGB3"), "{err}");
        let err = parse("[[camera]]\nsource = \"-\"\nemit = \"some\"\n", &["serve"]).unwrap_err();
        assert!(err.to_string().contains("emit \"some\": use one of all, detections, changes"), "{err}");
    }

    #[test]
    fn keys_of_other_commands_are_skipped_unknown_ones_refused() {
        // `iterations` belongs to bench: a file shared by commands is fine.
        assert_eq!(serve(parse("iterations = 5\nqueue = 2\n", &["serve"]).unwrap()).queue, 2);
        let err = parse("queeue = 2\n", &["serve"]).unwrap_err();
        assert!(err.to_string().contains("unknown key \"queeue\""), "{err}");
    }

    #[test]
    fn bad_values_and_bad_toml_name_the_file() {
        let err = parse("queue = \"many\"\n", &["serve"]).unwrap_err();
        assert!(err.to_string().contains("many"), "{err}");
        let err = parse("queue = \n", &["serve"]).unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
        let err = parse("allow-url = \"yes\"\n", &["serve"]).unwrap_err();
        assert!(err.to_string().contains("give true or false"), "{err}");
    }
}
