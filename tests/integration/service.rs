//! The systemd side, against a stand-in notify socket: READY only once
//! serving, watchdog pings, STOPPING on SIGTERM, exit 0.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::*;

fn recv_until(sock: &UnixDatagram, want: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want} within {timeout:?}; got {seen:?}");
}

#[test]
fn notify_ready_watchdog_and_stopping_then_exit_0() {
    let dir = std::env::temp_dir().join(format!("yolod-sd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut server = Server::start_env(&[], &[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "200000")]);
    let first = recv_until(&sock, "READY=1", Duration::from_secs(10));
    let ready = first.last().unwrap();
    assert!(ready.contains("STATUS=serving yolov8n on http://127.0.0.1:"), "{ready}");
    // READY came after the listener was bound: the API answers right away.
    assert_eq!(get(&server.url("/readyz"), &[]).status, 200);
    recv_until(&sock, "WATCHDOG=1", Duration::from_secs(2));
    let status = std::process::Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    recv_until(&sock, "STOPPING=1", Duration::from_secs(5));
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn watchdog_for_another_pid_is_ignored() {
    let dir = std::env::temp_dir().join(format!("yolod-sd2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let _server = Server::start_env(
        &[],
        &[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")],
    );
    recv_until(&sock, "READY=1", Duration::from_secs(10));
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_millis(600);
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            panic!("unexpected message {:?}", String::from_utf8_lossy(&buf[..n]));
        }
    }
}
