//! The opt-in `url` input: fetch an image over http(s) with a time and size
//! limit, never from loopback, private or link-local addresses unless the
//! operator allows it. The address policy sits in the resolver, so it also
//! holds for every redirect and cannot be dodged by DNS tricks between check and connect.
//!
//! Proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, lower case too)
//! are ignored here. Through a proxy the resolver would see only the proxy's
//! address: a proxy on the LAN would then fetch any internal target for the
//! client, and a proxy on loopback would make every `url=` fail as if the
//! target were private. The device fetches directly or not at all.

use std::net::IpAddr;
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// How the operator allows URL input.
#[derive(Debug, Clone, Copy)]
pub struct UrlPolicy {
    /// Also allow loopback, private (RFC 1918, ULA) and link-local targets.
    pub allow_private: bool,
    pub timeout: Duration,
    pub max_bytes: u64,
}

#[derive(Debug)]
struct PolicyResolver {
    allow_private: bool,
    inner: DefaultResolver,
}

impl Resolver for PolicyResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let all = self.inner.resolve(uri, config, timeout)?;
        let mut allowed = self.empty();
        for addr in all.iter().filter(|a| self.allow_private || is_public(a.ip())) {
            allowed.push(*addr);
        }
        if allowed.is_empty() {
            return Err(ureq::Error::Io(std::io::Error::other(
                "the host resolves only to loopback, private or link-local addresses, which this server does not fetch from",
            )));
        }
        Ok(allowed)
    }
}

/// Whether `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link local
        }
    }
}

/// Fetches `url` under `policy`; the error text is safe to show the client.
pub fn fetch(url: &str, policy: UrlPolicy) -> Result<Vec<u8>, String> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err("only http:// and https:// URLs are fetched".into());
    }
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(policy.timeout))
        .max_redirects(3)
        .http_status_as_error(false)
        .user_agent(concat!("yolod/", env!("CARGO_PKG_VERSION")))
        // Not the environment's proxy (see the top of this file).
        .proxy(None)
        .build();
    let resolver = PolicyResolver { allow_private: policy.allow_private, inner: DefaultResolver::default() };
    let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), resolver);
    let mut response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(_) => format!("no answer within {} s", policy.timeout.as_secs_f32()),
        other => other.to_string(),
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the server answered {status}"));
    }
    response.body_mut().with_config().limit(policy.max_bytes).read_to_vec().map_err(|e| match e {
        ureq::Error::BodyExceedsLimit(_) => format!("the image is over {} bytes", policy.max_bytes),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn non_http_schemes_are_refused_without_network() {
        let policy = UrlPolicy { allow_private: false, timeout: Duration::from_secs(1), max_bytes: 10 };
        for url in ["file:///etc/passwd", "ftp://x/y.jpg", "gopher://x", "/etc/passwd"] {
            assert_eq!(fetch(url, policy).unwrap_err(), "only http:// and https:// URLs are fetched");
        }
    }

    #[test]
    fn loopback_targets_are_refused_by_default() {
        let policy = UrlPolicy { allow_private: false, timeout: Duration::from_secs(2), max_bytes: 10 };
        let err = fetch("http://127.0.0.1:9/x.jpg", policy).unwrap_err();
        assert!(err.contains("loopback"), "{err}");
    }
}
