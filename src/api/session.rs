//! Page sessions: an API key exchanged for a cookie (SECURITY.md, "The
//! page"). An `<img>` of the MJPEG stream and an `EventSource` cannot send
//! the `x-api-key` header, so the page signs in once (`POST /ui/login`) and
//! the browser sends `yolod_session` with each request: HttpOnly (scripts
//! cannot read it), SameSite=Strict (other sites' pages do not send it),
//! twelve hours long.
//!
//! A session remembers which key opened it, as that key's digest: when a
//! SIGHUP re-reads the key file and the key is gone, its sessions stop
//! working at once. Only the SHA-256 of each token is kept, so the table
//! gives no usable token away, and at most [`MAX_SESSIONS`] live at a time
//! (a new one replaces the one closest to expiring).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::auth::Keys;

/// The cookie's name.
pub const COOKIE: &str = "yolod_session";
/// How long a session lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 64;

struct Session {
    /// The digest of the key that opened it.
    key: [u8; 32],
    expires: Instant,
}

/// The live sessions, by the SHA-256 of their token.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Opens a session for `key` when `keys` accepts it; returns the new
    /// token (64 hex digits), or `None` for a key that `keys` refuses.
    pub fn open(&self, keys: &Keys, key: &str) -> std::io::Result<Option<String>> {
        let Some(key) = keys.digest_of(key) else { return Ok(None) };
        let mut random = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
        let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut table = self.lock();
        table.retain(|_, s| s.expires > now);
        if table.len() >= MAX_SESSIONS {
            let oldest = table.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                table.remove(&oldest);
            }
        }
        table.insert(digest(&token), Session { key, expires: now + LIFETIME });
        Ok(Some(token))
    }

    /// Whether `token` names a live session whose key `keys` still holds.
    pub fn allows(&self, keys: &Keys, token: &str) -> bool {
        let table = self.lock();
        table.get(&digest(token)).is_some_and(|s| s.expires > Instant::now() && keys.holds(&s.key))
    }

    /// Ends the session of `token`, if there is one.
    pub fn close(&self, token: &str) {
        self.lock().remove(&digest(token));
    }

    /// Sessions in the table (expired ones included until the next sign-in).
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The `yolod_session` value in a `Cookie` header.
pub fn token_in(cookie_header: Option<&str>) -> Option<&str> {
    cookie_header?.split(';').filter_map(|c| c.trim().split_once('=')).find(|(name, _)| *name == COOKIE).map(|(_, v)| v)
}

/// The `Set-Cookie` value that stores `token`.
pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict", LIFETIME.as_secs())
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_only_for_a_configured_key_and_lives_while_the_key_does() {
        let keys = Keys::new(["alpha", "beta"]);
        let sessions = Sessions::default();
        assert_eq!(sessions.open(&keys, "gamma").unwrap(), None);
        let token = sessions.open(&keys, "beta").unwrap().unwrap();
        assert_eq!(token.len(), 64);
        assert!(sessions.allows(&keys, &token));
        assert!(!sessions.allows(&keys, &token[..63]));
        // The key file is re-read without "beta": its session ends with it.
        assert!(!sessions.allows(&Keys::new(["alpha"]), &token));
        let other = sessions.open(&keys, "alpha").unwrap().unwrap();
        assert_ne!(token, other);
        sessions.close(&other);
        assert!(!sessions.allows(&keys, &other));
        assert!(sessions.allows(&keys, &token));
    }

    #[test]
    fn the_table_is_bounded() {
        let keys = Keys::new(["k"]);
        let sessions = Sessions::default();
        let first = sessions.open(&keys, "k").unwrap().unwrap();
        for _ in 0..MAX_SESSIONS {
            sessions.open(&keys, "k").unwrap().unwrap();
        }
        assert_eq!(sessions.count(), MAX_SESSIONS);
        assert!(!sessions.allows(&keys, &first), "the oldest session made room");
    }

    #[test]
    fn the_cookie_is_found_among_others_and_set_strictly() {
        assert_eq!(token_in(Some("a=1; yolod_session=abc; b=2")), Some("abc"));
        assert_eq!(token_in(Some("yolod_sessionx=abc")), None);
        assert_eq!(token_in(None), None);
        let set = set_cookie("abc");
        for part in ["yolod_session=abc", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
