//! The `--mqtt` URL: `mqtt://[user[:pass]@]host[:port]` or `mqtts://...`
//! (TLS). Pure parsing; the password never reaches a message or `Debug`.

use std::fmt;

/// A parsed broker address and its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`: TLS to the broker.
    pub tls: bool,
    /// A host name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl BrokerUrl {
    /// Parses `url`. Errors describe the problem without repeating the URL
    /// (it may hold a password).
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err("the broker URL must start with mqtt:// or mqtts://".into());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err("the broker URL takes no path, query or fragment: mqtt://[user[:pass]@]host[:port]".into());
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (u, None),
                };
                let user = percent_decode(user).ok_or("the user name in the broker URL has a bad %-escape")?;
                if user.is_empty() {
                    return Err("the broker URL has an '@' but no user name before it".into());
                }
                let pass = match pass {
                    Some(p) => Some(percent_decode(p).ok_or("the password in the broker URL has a bad %-escape")?),
                    None => None,
                };
                (Some(user), pass)
            }
        };
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err("the broker port is not a number from 1 to 65535".into()),
            },
        };
        Ok(BrokerUrl { tls, host, port, user, password })
    }

    /// The URL as logs and `/readyz` show it: the user but never the password.
    pub fn redacted(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        let user = self.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{user}{host}:{}", self.port)
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({})", self.redacted())
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(s: &str) -> Result<(String, Option<&str>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("the broker URL has a '[' without its ']'")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the broker address in brackets is not an IPv6 address".into());
        }
        match after {
            "" => (host, None),
            a => (host, Some(a.strip_prefix(':').ok_or("expected ':PORT' after the ']' of the broker address")?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if host.is_empty() || !host.chars().all(valid) {
        // Not echoed: a URL missing its '@' puts the password here.
        return Err("the broker URL has no valid host name or address: mqtt://[user[:pass]@]host[:port]".into());
    }
    Ok((host.to_string(), port))
}

/// Decodes `%XX` escapes (so a password may hold `@`, `:` or `/`).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_alone_gets_the_default_port_of_its_scheme() {
        let u = BrokerUrl::parse("mqtt://broker.lan").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port, u.user, u.password), (false, "broker.lan", 1883, None, None));
        let u = BrokerUrl::parse("mqtts://broker.lan/").unwrap();
        assert_eq!((u.tls, u.port), (true, 8883));
    }

    #[test]
    fn user_password_and_port_are_taken_apart() {
        let u = BrokerUrl::parse("mqtt://ha:s3cret@10.0.0.2:1884").unwrap();
        assert_eq!(u.user.as_deref(), Some("ha"));
        assert_eq!(u.password.as_deref(), Some("s3cret"));
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.2", 1884));
        let u = BrokerUrl::parse("mqtt://ha@localhost").unwrap();
        assert_eq!((u.user.as_deref(), u.password), (Some("ha"), None));
    }

    #[test]
    fn escaped_characters_in_credentials_are_decoded() {
        let u = BrokerUrl::parse("mqtt://h%40me:p%3Aa%2Fss%40@host").unwrap();
        assert_eq!(u.user.as_deref(), Some("h@me"));
        assert_eq!(u.password.as_deref(), Some("p:a/ss@"));
        assert!(BrokerUrl::parse("mqtt://u:%zz@host").is_err());
    }

    #[test]
    fn ipv6_addresses_go_in_brackets() {
        let u = BrokerUrl::parse("mqtt://[::1]:1999").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1999));
        assert_eq!(u.redacted(), "mqtt://[::1]:1999");
        assert!(BrokerUrl::parse("mqtt://[nothost]").is_err());
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in ["http://host", "host:1883", "mqtt://", "mqtt://host:0", "mqtt://host:99999", "mqtt://host/topic"] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(BrokerUrl::parse("mqtt://@host").is_err());
    }

    #[test]
    fn the_password_never_shows_in_messages_or_debug() {
        let u = BrokerUrl::parse("mqtts://ha:hunter2@broker:8884").unwrap();
        assert_eq!(u.redacted(), "mqtts://ha@broker:8884");
        assert!(!format!("{u:?}").contains("hunter2"));
        let e = BrokerUrl::parse("mqtt://ha:hunter2@broker:port").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = BrokerUrl::parse("mqtt://ha:hunter2@bro ker").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        // Without the '@host', the password lands where the port goes.
        let e = BrokerUrl::parse("mqtt://ha:hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
