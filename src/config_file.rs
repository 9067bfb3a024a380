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
//! `[[camera]]` tables each add a camera; today they take `source` only.

use std::ffi::OsString;
use std::path::Path;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// The flag holding the file's path (global, so `yolod serve --config F` works).
pub const CONFIG_ARG: &str = "config";

/// Per-camera keys the `[[camera]]` tables accept today.
const CAMERA_KEYS: &[&str] = &["source"];

/// `args` with the file's settings added as flags, for clap to parse again;
/// `None` when no `--config` was given.
pub fn merge(cmd: &Command, matches: &ArgMatches, args: &[OsString]) -> Result<Option<Vec<OsString>>, clap::Error> {
    let Some((sub_name, sub)) = matches.subcommand() else { return Ok(None) };
    let Some(path) = sub.get_one::<std::path::PathBuf>(CONFIG_ARG) else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| clap::Error::raw(ErrorKind::Io, format!("--config {}: {e}\n", path.display())))?;
    let table: toml::Table = text.parse().map_err(|e| invalid(path, &format!("{e}")))?;
    let sub_cmd = cmd.find_subcommand(sub_name).expect("clap matched this subcommand");
    let extra = flags_from_table(cmd, sub_cmd, sub, &table).map_err(|e| invalid(path, &e))?;
    if extra.is_empty() {
        return Ok(None);
    }
    // Before a `--`, if any: what follows it is positional.
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut out = args[..at].to_vec();
    out.extend(extra);
    out.extend_from_slice(&args[at..]);
    Ok(Some(out))
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
        if key == "camera" {
            // Cameras add up: the file's tables, then --camera's.
            out.extend(camera_flags(sub, value)?);
            continue;
        }
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

/// `[[camera]]` tables as `--camera SOURCE` flags.
fn camera_flags(sub: &Command, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let toml::Value::Array(tables) = value else {
        return Err("camera: write each camera as a [[camera]] table with a source".into());
    };
    if !sub.get_arguments().any(|a| a.get_long() == Some("camera")) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let toml::Value::Table(table) = table else {
            return Err("camera: write each camera as a [[camera]] table with a source".into());
        };
        if let Some(key) = table.keys().find(|k| !CAMERA_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "[[camera]] number {}: key {key:?} is not supported (per-camera keys: {})",
                i + 1,
                CAMERA_KEYS.join(", ")
            ));
        }
        let Some(toml::Value::String(source)) = table.get("source") else {
            return Err(format!("[[camera]] number {}: needs source = \"/dev/videoN\"", i + 1));
        };
        out.push(OsString::from(format!("--camera={source}")));
    }
    Ok(out)
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

    #[test]
    fn snake_case_keys_lists_and_global_options() {
        let cli = parse("api_key = [\"a\", \"b\"]\nmatmul-threads = 2\nlog-level = \"debug\"\n", &["serve"]).unwrap();
        assert_eq!(cli.matmul_threads, 2);
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
    fn camera_tables_add_to_the_flags() {
        let toml = "[[camera]]\nsource = \"/dev/video2\"\n\n[[camera]]\nsource = \"/dev/video4\"\n";
        let args = serve(parse(toml, &["serve", "--camera", "/dev/video0"]).unwrap());
        let cameras: Vec<String> = args.camera.cameras.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(cameras, ["/dev/video0", "/dev/video2", "/dev/video4"]);
        let err = parse("[[camera]]\nsource = \"/dev/video2\"\nzoom = 2\n", &["serve"]).unwrap_err();
        assert!(err.to_string().contains("\"zoom\" is not supported"), "{err}");
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
