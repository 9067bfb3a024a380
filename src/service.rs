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
/// `LISTEN_PID` so a socket meant for a parent is never taken. Call it at
/// the top of `main`, before any thread exists: it unsets `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES` (as `sd_listen_fds(1)` does, so that
/// children do not inherit them), and does so only while the process has
/// one thread (see [`env_edit`]). Called twice, the second call finds
/// nothing, so fd 3 is taken at most once.
pub fn take_activated_listener() -> Option<TcpListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.trim().parse().ok()?;
    let fds: i32 = std::env::var("LISTEN_FDS").ok()?.trim().parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    let unset = env_edit(|| {
        // SAFETY: `env_edit` runs this only while no other thread exists
        // that could read or write the environment at the same time.
        unsafe {
            std::env::remove_var("LISTEN_PID");
            std::env::remove_var("LISTEN_FDS");
            std::env::remove_var("LISTEN_FDNAMES");
        }
    });
    if !unset {
        // Taking fd 3 without unsetting the variables could take it twice.
        log::warn!("socket activation ignored: it must be taken before any thread starts");
        return None;
    }
    // SAFETY: systemd guarantees fd 3 is an open socket handed to this pid
    // (checked above); the variables are gone, so no later call takes it again.
    Some(unsafe { TcpListener::from_raw_fd(LISTEN_FDS_START) })
}

/// Runs `edit` (which changes the environment) only if this process has a
/// single thread, and says whether it ran. `setenv` and `unsetenv` race with
/// every `getenv` on other threads (tract's pool, the model loaders, DNS
/// lookups), so editing the environment is sound only while no other thread
/// exists; a thread count of 1 cannot grow while this one is busy here.
pub fn env_edit(edit: impl FnOnce()) -> bool {
    let alone = std::fs::read_dir("/proc/self/task").map(|tasks| tasks.count() == 1).unwrap_or(false);
    if alone {
        edit();
    }
    alone
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

    /// The test harness runs tests on threads of their own: the environment
    /// must not be edited here, and the edit must not run.
    #[test]
    fn the_environment_is_edited_only_while_the_process_has_one_thread() {
        let parked = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let mut ran = false;
        assert!(!env_edit(|| ran = true));
        assert!(!ran);
        parked.join().unwrap();
    }

    #[test]
    fn without_notify_socket_nothing_is_sent() {
        let n = Notifier { target: None };
        assert!(!n.is_active());
        n.notify("READY=1");
    }
}
