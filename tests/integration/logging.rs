//! Diagnostics under journald (sd-daemon priority prefixes, never `<6>`),
//! and the --config file's place in the precedence of options.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{BIN, Server};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("yolod-logging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `yolod serve ARGS` with stderr in a file, JOURNAL_STREAM set to
/// `journal(file)`, until it is ready; stops it with SIGTERM and returns
/// what it wrote.
fn serve_to_file(name: &str, args: &[&str], journal: impl Fn(&std::fs::Metadata) -> String) -> String {
    let path = temp(name);
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("JOURNAL_STREAM", journal(&meta))
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&path).unwrap().contains("ready on") {
        assert!(child.try_wait().unwrap().is_none(), "exited:\n{}", std::fs::read_to_string(&path).unwrap());
        assert!(Instant::now() < deadline, "not ready:\n{}", std::fs::read_to_string(&path).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    std::fs::read_to_string(&path).unwrap()
}

/// A key file other users can read: yolod warns about it at start-up.
fn loose_key_file() -> String {
    let keys = temp("keys");
    std::fs::write(&keys, "k1\n").unwrap();
    Command::new("chmod").args(["644", keys.to_str().unwrap()]).status().unwrap();
    keys.display().to_string()
}

#[test]
fn under_journald_every_diagnostic_carries_a_priority_and_none_is_info() {
    let keys = loose_key_file();
    let text = serve_to_file("journal.err", &["--api-key-file", &keys], |m| format!("{}:{}", m.dev(), m.ino()));
    for line in text.lines() {
        let priority = line.strip_prefix('<').and_then(|r| r.split_once('>')).map(|(p, _)| p);
        assert!(matches!(priority, Some("3" | "4" | "5" | "7")), "line without a diagnostic priority: {line:?}");
    }
    assert!(text.lines().any(|l| l.starts_with("<5>ready on")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("<4>API key file")), "{text}");
    assert!(text.lines().any(|l| l == "<5>stopped"), "{text}");
}

#[test]
fn a_journal_stream_that_is_not_our_stderr_gets_no_prefixes() {
    // Inherited from a parent whose stderr was the journal, but ours is a file.
    let text = serve_to_file("plain.err", &[], |m| format!("{}:{}", m.dev(), m.ino() + 1));
    assert!(text.lines().any(|l| l.starts_with("yolod: ready on")), "{text}");
    assert!(!text.contains("<5>"), "{text}");
}

#[test]
fn config_file_then_variable_then_flag() {
    let config = temp("yolod.toml");
    std::fs::write(&config, "queue = 3\nworkers = 1\n").unwrap();
    let config = config.display().to_string();
    let from_file = Server::start(&["--config", &config]);
    assert!(from_file.stderr.lock().unwrap().contains("queue 3"), "{}", from_file.stderr.lock().unwrap());
    drop(from_file);
    let from_env = Server::start_env(&["--config", &config], &[("YOLOD_QUEUE", "5")]);
    assert!(from_env.stderr.lock().unwrap().contains("queue 5"), "{}", from_env.stderr.lock().unwrap());
    drop(from_env);
    let from_flag = Server::start_env(&["--config", &config, "--queue", "7"], &[("YOLOD_QUEUE", "5")]);
    assert!(from_flag.stderr.lock().unwrap().contains("queue 7"), "{}", from_flag.stderr.lock().unwrap());
}

#[test]
fn a_config_file_with_an_unknown_key_stops_start_up_naming_it() {
    let config = temp("typo.toml");
    std::fs::write(&config, "queeue = 3\n").unwrap();
    let out = Command::new(BIN).args(["serve", "--config", config.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key \"queeue\"") && err.contains("typo.toml"), "{err}");
}
