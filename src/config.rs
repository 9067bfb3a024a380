//! Stage two of the options: validated, resolved settings. Reading the API
//! key file happens here, at start-up (and again on SIGHUP, see [`KeySources`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::api::auth::Keys;
use crate::api::fetch::UrlPolicy;
use crate::api::multipart;
use crate::api::server::HttpConfig;
use crate::cli::{ModelArgs, ServeArgs};
use crate::model::registry::{Embedded, Sources};
use crate::vision::decode::DecodeLimits;

/// Everything `yolod serve` runs with.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub sources: Sources,
    pub workers: usize,
    pub queue: usize,
    pub decode: DecodeLimits,
    pub http: HttpConfig,
    pub shutdown_timeout: Duration,
    /// Warn at start-up: a non-loopback listener without keys.
    pub open_to_network: bool,
    /// Where the keys come from, to read them again on SIGHUP.
    pub key_sources: KeySources,
}

/// The keys given on the command line and the key file, if any.
#[derive(Debug, Clone)]
pub struct KeySources {
    keys: Vec<String>,
    pub file: Option<PathBuf>,
}

impl KeySources {
    /// The keys given, with the key file read now.
    pub fn load(&self) -> Result<Keys> {
        let mut keys = self.keys.clone();
        if let Some(file) = &self.file {
            keys.extend(read_key_file(file)?);
        }
        Ok(Keys::new(keys.iter().map(|k| k.trim())))
    }
}

/// Default inference workers: one per CPU, at most 4 (a Pi 4/5 has 4 cores).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
}

pub fn sources(args: &ModelArgs, default: Option<String>) -> Sources {
    Sources {
        files: args.model_files.clone(),
        dir: args.models_dir.clone(),
        default,
        embedded: Embedded::new(args.precision.precision),
    }
}

impl ServeConfig {
    pub fn from_args(args: ServeArgs) -> Result<ServeConfig> {
        let listen = args
            .listen
            .to_socket_addrs()
            .with_context(|| format!("--listen {:?} is not an address like 127.0.0.1:8080", args.listen))?
            .next()
            .with_context(|| format!("--listen {:?} resolves to no address", args.listen))?;
        let key_sources = KeySources { keys: args.api_keys.clone(), file: args.api_key_file.clone() };
        let keys = key_sources.load()?;
        let open_to_network = !listen.ip().is_loopback() && keys.is_empty();
        if open_to_network && !args.no_auth {
            bail!(
                "refusing to listen on {listen} without an API key: anyone on the network could use it.\n\
                 Give keys with --api-key / --api-key-file / YOLOD_API_KEYS, or pass --no-auth to accept that."
            );
        }
        let workers = args.workers.unwrap_or_else(default_workers);
        ensure!(workers >= 1, "--workers must be at least 1");
        ensure!(args.http_threads >= 1, "--http-threads must be at least 1");
        ensure!(args.max_connections >= 1, "--max-connections must be at least 1");
        ensure!((1024..=1 << 20).contains(&args.max_header), "--max-header must be between 1K and 1M");
        ensure!(args.max_body >= 1024, "--max-body must be at least 1K");
        ensure!(args.url_timeout > 0.0 && args.url_timeout.is_finite(), "--url-timeout must be positive");
        ensure!(args.read_timeout > 0.0 && args.read_timeout.is_finite(), "--read-timeout must be positive");
        ensure!(args.body_timeout > 0.0 && args.body_timeout.is_finite(), "--body-timeout must be positive");
        for origin in &args.cors_origins {
            ensure!(
                origin == "*" || origin.starts_with("http://") || origin.starts_with("https://"),
                "--cors-origin {origin:?} is not an origin like http://pi.local:3000 (or *)"
            );
        }
        ensure!(
            args.shutdown_timeout >= 0.0 && args.shutdown_timeout.is_finite(),
            "--shutdown-timeout must be 0 or more"
        );
        let url_policy = args.allow_url.then(|| UrlPolicy {
            allow_private: args.allow_private_urls,
            timeout: Duration::from_secs_f64(args.url_timeout),
            max_bytes: args.max_body,
        });
        Ok(ServeConfig {
            listen,
            sources: sources(&args.models, args.default_model.clone()),
            workers,
            queue: args.queue,
            decode: DecodeLimits { max_pixels: args.max_pixels, ..DecodeLimits::default() },
            http: HttpConfig {
                keys,
                max_body: args.max_body,
                max_detections: args.max_detections,
                multipart: multipart::Limits { max_parts: 16, max_field_bytes: 64 * 1024 },
                url_policy,
                http_threads: args.http_threads,
                workers,
                body_timeout: Duration::from_secs_f64(args.body_timeout),
                read_timeout: Duration::from_secs_f64(args.read_timeout),
                max_connections: args.max_connections,
                max_header: args.max_header as usize,
                cors_origins: args.cors_origins.iter().map(|o| o.trim_end_matches('/').to_string()).collect(),
            },
            shutdown_timeout: Duration::from_secs_f64(args.shutdown_timeout),
            open_to_network,
            key_sources,
        })
    }
}

/// Reads one key per line; blank lines and `#` comments are skipped. Warns
/// when the file is readable by others than its owner.
fn read_key_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading --api-key-file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                log::warn!("API key file {} is readable by other users; chmod 600 it", path.display());
            }
        }
    }
    let keys: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    ensure!(!keys.is_empty(), "--api-key-file {} holds no key", path.display());
    Ok(keys)
}
