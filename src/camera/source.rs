//! What a `--camera SOURCE` string names (the scheme picks the kind), the
//! camera's default name, and the source as logs may show it (no
//! credentials).

use std::path::PathBuf;

use crate::slug;

/// A camera source, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A V4L2 device, e.g. `/dev/video0`.
    Device(PathBuf),
    /// An MJPEG stream (`multipart/x-mixed-replace`) or a JPEG snapshot URL.
    Http(HttpUrl),
    /// `exec:COMMAND ARGS...`: a command writing MJPEG to its stdout, split
    /// into words by shell quoting rules but never run by a shell.
    Exec(Vec<String>),
    /// `-`: MJPEG on yolod's stdin.
    Stdin,
    /// `rtsp://`: H.264 or MJPEG over RTSP, RTP interleaved on its TCP
    /// connection.
    Rtsp(RtspUrl),
}

/// An `rtsp://` URL, split into what retina is given: the URL without
/// credentials, and the credentials apart (so no error or log line that
/// shows the URL can show them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspUrl {
    /// The URL without `user:password@`.
    pub url: String,
    /// `user:password` from the URL, percent-decoded, if any.
    pub userinfo: Option<String>,
}

/// An `http://` or `https://` URL, in the parts the camera client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub tls: bool,
    /// `user:password` from the URL, if any.
    pub userinfo: Option<String>,
    /// The host as written (an IPv6 address keeps its brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub target: String,
}

impl HttpUrl {
    /// The `Host` header's value.
    pub fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default { self.host.clone() } else { format!("{}:{}", self.host, self.port) }
    }

    /// The host without IPv6 brackets, for connecting.
    pub fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

impl Source {
    /// Parses a source as `--camera` and `[[camera]] source` take it.
    pub fn parse(s: &str) -> Result<Source, String> {
        let s = s.trim();
        if s == "-" {
            return Ok(Source::Stdin);
        }
        if let Some(command) = s.strip_prefix("exec:") {
            let words =
                shlex::split(command).ok_or_else(|| format!("{}: unbalanced quotes in the command", redact(s)))?;
            if words.is_empty() {
                return Err("exec: needs a command, e.g. exec:rpicam-vid -t 0 -n --codec mjpeg -o -".into());
            }
            return Ok(Source::Exec(words));
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            return match scheme.to_ascii_lowercase().as_str() {
                "http" => parse_http(false, rest).map(Source::Http),
                "https" => parse_http(true, rest).map(Source::Http),
                "rtsp" => parse_rtsp(s).map(Source::Rtsp),
                "rtsps" => Err(format!(
                    "{}: RTSP over TLS is not supported; use the camera's rtsp:// URL on the LAN",
                    redact(s)
                )),
                other => Err(format!(
                    "{}: unknown scheme {other:?} (use /dev/videoN, http://, rtsp://, exec: or -)",
                    redact(s)
                )),
            };
        }
        if s.is_empty() {
            return Err("an empty camera source".into());
        }
        Ok(Source::Device(PathBuf::from(s)))
    }

    /// Whether the source can be opened again once it ends (stdin cannot).
    pub fn reopens(&self) -> bool {
        !matches!(self, Source::Stdin)
    }

    /// The default camera name: a slug of the source without credentials
    /// (`video0`, `host-path`, the `exec:` program's name, `stdin`).
    pub fn default_name(&self) -> String {
        let raw = match self {
            Source::Device(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            Source::Http(url) => host_and_stem(url.connect_host(), &url.target),
            Source::Rtsp(rtsp) => match url::Url::parse(&rtsp.url) {
                Ok(u) => host_and_stem(u.host_str().unwrap_or("").trim_matches(['[', ']']), u.path()),
                Err(_) => String::new(),
            },
            Source::Exec(words) => words[0].rsplit('/').next().unwrap_or("").to_string(),
            Source::Stdin => "stdin".into(),
        };
        let name = slug::slug(&raw, slug::Style::CameraName);
        if name.is_empty() { "camera".into() } else { name }
    }
}

/// `host-stem`: the host and the last path segment without its extension.
fn host_and_stem(host: &str, target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').find(|p| !p.is_empty()).unwrap_or("");
    let stem = last.split('.').next().unwrap_or("");
    if stem.is_empty() { host.to_string() } else { format!("{host}-{stem}") }
}

fn parse_rtsp(s: &str) -> Result<RtspUrl, String> {
    let mut url = url::Url::parse(s).map_err(|e| format!("{}: {e}", redact(s)))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{}: rtsp:// needs a host", redact(s)));
    }
    let decode = |part: &str| percent_decode(part).map_err(|e| format!("{}: {e}", redact(s)));
    let userinfo = match (url.username(), url.password()) {
        ("", None) => None,
        (user, password) => Some(format!("{}:{}", decode(user)?, decode(password.unwrap_or(""))?)),
    };
    // Only errors are possible here for URLs that cannot carry credentials,
    // which a parsed rtsp:// URL with a host always can.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(RtspUrl { url: url.to_string(), userinfo })
}

/// `%XX` escapes to bytes, which must then be UTF-8.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or("a bad %-escape in the credentials")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "credentials that are not UTF-8")
}

fn parse_http(tls: bool, rest: &str) -> Result<HttpUrl, String> {
    let scheme = if tls { "https" } else { "http" };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let target = target.split('#').next().unwrap_or("");
    let target = if target.is_empty() || target.starts_with('?') { format!("/{target}") } else { target.to_string() };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let (inside, tail) = after.split_once(']').ok_or_else(|| format!("{scheme}://: unclosed [ in the host"))?;
        (format!("[{inside}]"), tail.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{scheme}:// needs a host"));
    }
    let port = match port {
        None | Some("") => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("{scheme}://: bad port {p:?}"))?,
    };
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("{scheme}://: spaces or control characters in the path; percent-encode them"));
    }
    Ok(HttpUrl { tls, userinfo, host, port, target })
}

/// Gives each camera a unique name: the ones asked for, else the source's
/// slug; a repeated name gets `-2`, `-3`, ... in order.
pub fn unique_names(wanted: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(wanted.len());
    for name in wanted {
        let mut candidate = name.clone();
        let mut n = 1;
        while out.contains(&candidate) {
            n += 1;
            candidate = format!("{name}-{n}");
        }
        out.push(candidate);
    }
    out
}

/// A name given by the user must already be a slug: it becomes part of
/// topics, metric labels and query strings.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(format!("camera name {name:?}: use 1 - 64 of a-z, 0-9, _ and -")) }
}

/// The source as logs, lines and metrics may show it: the user and
/// password of every `scheme://user:pass@` dropped, and the values of
/// query keys that look secret (`pwd=`, `password=`, `token=`, ...)
/// replaced by `***`.
pub fn redact(s: &str) -> String {
    s.split(' ').map(redact_word).collect::<Vec<_>>().join(" ")
}

fn redact_word(word: &str) -> String {
    let mut out = word.to_string();
    if let Some(at) = out.find("://") {
        let start = at + 3;
        let end = out[start..].find(['/', '?', '#']).map_or(out.len(), |i| start + i);
        if let Some(i) = out[start..end].rfind('@') {
            out.replace_range(start..start + i + 1, "");
        }
    }
    let Some(q) = out.find('?') else { return out };
    let (head, query) = out.split_at(q + 1);
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret_key(k) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}{}", query.join("&"))
}

fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "pwd", "token", "secret", "auth", "key", "sig"].iter().any(|s| key.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(s: &str) -> HttpUrl {
        match Source::parse(s).unwrap() {
            Source::Http(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_scheme_picks_the_kind() {
        assert_eq!(Source::parse("/dev/video0").unwrap(), Source::Device("/dev/video0".into()));
        assert_eq!(Source::parse("-").unwrap(), Source::Stdin);
        assert_eq!(
            Source::parse("exec:rpicam-vid -t 0 --codec 'mjpeg' -o -").unwrap(),
            Source::Exec(["rpicam-vid", "-t", "0", "--codec", "mjpeg", "-o", "-"].map(String::from).to_vec())
        );
        assert!(Source::parse("exec:  ").is_err());
        assert!(Source::parse("exec:ffmpeg 'unclosed").is_err());
        assert!(Source::parse("ftp://cam/x").unwrap_err().contains("unknown scheme"));
        assert!(Source::parse("rtsps://u:secret@cam/live").unwrap_err().contains("rtsp://"));
        assert!(!Source::parse("rtsps://u:secret@cam/live").unwrap_err().contains("secret"));
        assert!(Source::parse("rtsp://").is_err());
    }

    #[test]
    fn rtsp_urls_keep_their_credentials_apart() {
        let Source::Rtsp(rtsp) =
            Source::parse("rtsp://admin:p%40ss%3Aw@192.168.1.20:554/Streaming/Channels/102").unwrap()
        else {
            panic!()
        };
        assert_eq!(rtsp.url, "rtsp://192.168.1.20:554/Streaming/Channels/102");
        assert_eq!(rtsp.userinfo.as_deref(), Some("admin:p@ss:w"));
        let source = Source::parse("rtsp://admin:x@cam.lan/h264Preview_01_sub?token=abc").unwrap();
        assert_eq!(source.default_name(), "cam-lan-h264preview_01_sub");
        let Source::Rtsp(plain) = Source::parse("rtsp://[fe80::1]/live.sdp").unwrap() else { panic!() };
        assert_eq!(plain.userinfo, None);
        assert_eq!(Source::Rtsp(plain).default_name(), "fe80-1-live");
        assert!(Source::parse("rtsp://u:%zz@cam/live").unwrap_err().contains("%-escape"));
    }

    #[test]
    fn http_urls_split_into_what_the_client_sends() {
        let u = http("http://admin:pa:ss@192.168.1.20:8080/video.mjpg?x=1#frag");
        assert_eq!(u.userinfo.as_deref(), Some("admin:pa:ss"));
        assert_eq!((u.host.as_str(), u.port, u.target.as_str()), ("192.168.1.20", 8080, "/video.mjpg?x=1"));
        assert_eq!(u.host_header(), "192.168.1.20:8080");
        let u = http("https://cam.local");
        assert_eq!((u.tls, u.port, u.target.as_str(), u.host_header().as_str()), (true, 443, "/", "cam.local"));
        let u = http("http://[::1]:81?snap");
        assert_eq!((u.connect_host(), u.port, u.target.as_str()), ("::1", 81, "/?snap"));
        assert!(Source::parse("http://:80/x").is_err());
        assert!(Source::parse("http://cam:0/").is_err());
        assert!(Source::parse("http://cam:99999/").is_err());
        assert!(Source::parse("http://cam/a b").is_err());
    }

    #[test]
    fn default_names_are_slugs_without_credentials() {
        let name = |s: &str| Source::parse(s).unwrap().default_name();
        assert_eq!(name("/dev/video0"), "video0");
        assert_eq!(name("http://admin:pw@192.168.1.20:8080/Video.MJPG?x=1"), "192-168-1-20-video");
        assert_eq!(name("http://cam.local/"), "cam-local");
        assert_eq!(name("exec:/usr/bin/rpicam-vid -t 0 -o -"), "rpicam-vid");
        assert_eq!(name("-"), "stdin");
        assert_eq!(name("exec:¡¡"), "camera");
    }

    #[test]
    fn repeated_names_are_numbered_in_order() {
        let names = unique_names(&["video0".into(), "cam".into(), "video0".into(), "video0".into()]);
        assert_eq!(names, ["video0", "cam", "video0-2", "video0-3"]);
    }

    #[test]
    fn given_names_must_be_slugs() {
        assert!(check_name("front-door_2").is_ok());
        assert!(check_name("Front").is_err() && check_name("").is_err() && check_name("a b").is_err());
    }

    #[test]
    fn redaction_drops_userinfo_and_secret_query_values() {
        assert_eq!(redact("http://admin:hunter2@cam:81/v.mjpg"), "http://cam:81/v.mjpg");
        assert_eq!(
            redact("http://cam/snapshot.cgi?user=admin&pwd=hunter2&res=1"),
            "http://cam/snapshot.cgi?user=admin&pwd=***&res=1"
        );
        assert_eq!(
            redact("exec:ffmpeg -i rtsp://u:p@cam/live?token=abc -f mjpeg -"),
            "exec:ffmpeg -i rtsp://cam/live?token=*** -f mjpeg -"
        );
        assert_eq!(redact("/dev/video0"), "/dev/video0");
    }
}
