//! systemd integration, the one place that talks to the service manager:
//! the notify protocol over `NOTIFY_SOCKET` (READY, STATUS, WATCHDOG,
//! STOPPING) and socket activation (`LISTEN_FDS`).
#![allow(unsafe_code)]

use std::net::TcpListener;
use std::os::fd::FromRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The first file descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: i32 = 3;

/// Sends sd_notify messages; a no-op when not run by systemd.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
                None => SocketAddr::from_pathname(&path).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        Notifier { target }
    }

    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one datagram of newline-separated `KEY=value` assignments.
    pub fn notify(&self, message: &str) {
        if let Some((socket, addr)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
                log::warn!("sd_notify failed: {e}");
            }
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when the
/// watchdog is on and meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_string_lossy().trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// The listening socket systemd passed us (`yolod.socket`), if any. Checks
/// `LISTEN_PID` so a socket meant for a parent is never taken.
pub fn activated_listener() -> Option<TcpListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.trim().parse().ok()?;
    let fds: i32 = std::env::var("LISTEN_FDS").ok()?.trim().parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: systemd guarantees fd 3 is an open socket handed to this pid
    // (checked above); we take ownership of it exactly once.
    let listener = unsafe { TcpListener::from_raw_fd(LISTEN_FDS_START) };
    // SAFETY: unsetting the variables before any other thread reads them, as
    // sd_listen_fds(unset_environment=1) does, so children do not inherit them.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    Some(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_bound_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("yolod-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier =
            Notifier { target: Some((UnixDatagram::unbound().unwrap(), SocketAddr::from_pathname(&path).unwrap())) };
        notifier.notify("READY=1\nSTATUS=serving");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
    }

    #[test]
    fn without_notify_socket_nothing_is_sent() {
        let n = Notifier { target: None };
        assert!(!n.is_active());
        n.notify("READY=1");
    }
}
