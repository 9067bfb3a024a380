//! Stage two of the options: validated, resolved settings. Reading the API
//! key file happens here, at start-up (and again on SIGHUP, see [`KeySources`]),
//! and so does reading the cameras' credentials files.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::api::auth::Keys;
use crate::api::fetch::UrlPolicy;
use crate::api::multipart;
use crate::api::state::HttpConfig;
use crate::camera::CameraConfig;
use crate::camera::pixel::PixelFormat;
use crate::camera::source::{self, Source};
use crate::cli::{CameraArgs, ModelArgs, ServeArgs};
use crate::config_file::CameraTable;
use crate::model::Params;
use crate::model::registry::{Embedded, Sources};
use crate::publish::{self, MqttConfig};
use crate::sink::{Emit, Target};
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
    /// The cameras, if any, and their log stream.
    pub cameras: CamerasConfig,
    /// The MQTT publisher's settings, with `--mqtt`.
    pub mqtt: Option<MqttConfig>,
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

/// How many threads one inference is split across when --matmul-threads
/// is not given, and why. With one camera (`capture`, or `serve` with one
/// camera) the latency of a frame counts: every core, at most 4. Otherwise
/// 1, and `serve` runs one inference per worker: more throughput, since
/// the parts of an inference that stay serial cost a split pool time.
pub fn default_matmul_threads(command: &crate::cli::Command) -> (usize, &'static str) {
    use crate::cli::Command;
    let cameras = match command {
        Command::Serve(args) => args.camera.cameras.len() + args.camera.tables.len(),
        Command::Capture(args) => args.camera.cameras.len() + args.camera.tables.len(),
        _ => 0,
    };
    match cameras {
        1 => (default_workers(), "one camera: the latency of a frame"),
        _ => (1, "one inference per worker"),
    }
}

/// The variable `serve` read its extra model files from before
/// `YOLOD_MODEL_FILES`; in `predict`, `capture` and `bench` it names the
/// model to run.
const OLD_MODEL_FILES: &str = "YOLOD_MODEL";

pub fn sources(args: &ModelArgs, default: Option<String>) -> Sources {
    let mut files = args.model_files.clone();
    // Set in /etc/default/yolod (a conffile users have edited) it keeps
    // working for one release, with a warning.
    if files.is_empty() && std::env::var_os("YOLOD_MODEL_FILES").is_none() {
        if let Some(old) = std::env::var_os(OLD_MODEL_FILES).filter(|v| !v.is_empty()) {
            log::warn!(
                "{OLD_MODEL_FILES} is read as YOLOD_MODEL_FILES (extra model files to serve); rename it: \
                 {OLD_MODEL_FILES} will only name the model that predict, capture and bench run"
            );
            files =
                old.to_string_lossy().split(',').filter(|f| !f.trim().is_empty()).map(|f| f.trim().into()).collect();
        }
    }
    Sources { files, dir: args.models_dir.clone(), default, embedded: Embedded::new(args.precision.precision) }
}

impl ServeConfig {
    pub fn from_args(args: &ServeArgs) -> Result<ServeConfig> {
        let mqtt = MqttConfig::from_args(&args.mqtt, &publish::config::host_name())?;
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
        let cameras = CamerasConfig::from_args(&args.camera)?;
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
                ui: !args.no_ui,
            },
            shutdown_timeout: Duration::from_secs_f64(args.shutdown_timeout),
            open_to_network,
            key_sources,
            cameras,
            mqtt,
        })
    }
}

/// One camera, validated: its `[[camera]]` table's values over the global
/// camera flags.
#[derive(Debug, Clone)]
pub struct CameraSettings {
    /// What to open and ask for; the name is unique among the cameras.
    pub camera: CameraConfig,
    /// Inference size (32 - 1280).
    pub size: u32,
    /// Minimum class score kept (0.01 - 1.0).
    pub confidence: f32,
    /// Which frames are written.
    pub emit: Emit,
}

/// The camera side of the options (`capture`, and `serve`'s cameras), validated.
#[derive(Debug, Clone)]
pub struct CamerasConfig {
    /// The file's `[[camera]]` tables, then `--camera`'s sources.
    pub cameras: Vec<CameraSettings>,
    /// Where the cameras' JSON lines go.
    pub log: Target,
}

impl CamerasConfig {
    /// Checks every camera's settings and reads their credentials files.
    pub fn from_args(args: &CameraArgs) -> Result<CamerasConfig> {
        let flag_tables = args.cameras.iter().map(|s| CameraTable { source: s.clone(), ..Default::default() });
        let tables: Vec<CameraTable> = args.tables.iter().cloned().chain(flag_tables).collect();
        let mut cameras = Vec::with_capacity(tables.len());
        for (i, table) in tables.iter().enumerate() {
            let which = || match &table.name {
                Some(name) => format!("camera {name}"),
                None => format!("camera {} ({})", i + 1, source::redact(&table.source)),
            };
            cameras.push(one_camera(args, table).with_context(which)?);
        }
        let names = source::unique_names(&cameras.iter().map(|c| c.camera.name.clone()).collect::<Vec<_>>());
        for (camera, name) in cameras.iter_mut().zip(names) {
            camera.camera.name = name;
        }
        if cameras.iter().filter(|c| matches!(c.camera.source, Source::Stdin)).count() > 1 {
            bail!("only one camera can read stdin (-)");
        }
        let log = if args.log == "-" {
            Target::Stdout
        } else {
            Target::File { path: args.log.clone().into(), max_bytes: args.log_max_bytes, keep: args.log_keep }
        };
        Ok(CamerasConfig { cameras, log })
    }
}

/// One camera's settings: its table's values over the global flags.
fn one_camera(args: &CameraArgs, table: &CameraTable) -> Result<CameraSettings> {
    let source = Source::parse(&table.source).map_err(anyhow::Error::msg)?;
    let name = match &table.name {
        Some(name) => {
            source::check_name(name).map_err(anyhow::Error::msg)?;
            name.clone()
        }
        None => source.default_name(),
    };
    let format = table.format.unwrap_or(args.format).pixel_format();
    let fps = table.fps.or(args.fps);
    if fps.is_some_and(|f| !(f > 0.0 && f.is_finite())) {
        bail!("fps must be a positive number");
    }
    let frame_size = match &table.frame_size {
        Some(s) => Some(crate::cli::parse_frame_size(s).map_err(anyhow::Error::msg)?),
        None => args.frame_size,
    };
    let size = match table.size {
        Some(n) => crate::cli::parse_inference_size(&n.to_string()).map_err(anyhow::Error::msg)?,
        None => args.imgsz,
    };
    let confidence = Params::check_confidence(table.confidence.unwrap_or(args.confidence))
        .map_err(|valid| anyhow!("confidence: {valid}"))?;
    let emit = table.emit.unwrap_or(args.emit);
    let credentials = match &table.credentials_file {
        None => None,
        Some(path) => {
            if !matches!(source, Source::Http(_) | Source::Rtsp(_)) {
                bail!("credentials_file is for http:// and rtsp:// sources");
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the credentials file {}", path.display()))?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if !line.contains(':') {
                bail!("the credentials file {} must hold user:password on its first line", path.display());
            }
            Some(line)
        }
    };
    if matches!(source, Source::Exec(_) | Source::Stdin) {
        match format {
            None | Some(PixelFormat::Mjpeg) => {}
            Some(PixelFormat::I420) if frame_size.is_some() => {}
            Some(PixelFormat::I420) => bail!("raw I420 needs the frame size, e.g. frame_size = \"640x480\""),
            Some(other) => bail!("exec: and - read MJPEG, or raw I420 with a frame size; not {other:?}"),
        }
    } else if matches!(source, Source::Http(_)) && !matches!(format, None | Some(PixelFormat::Mjpeg)) {
        bail!("http:// sources send MJPEG or JPEG snapshots; leave the format at auto");
    } else if matches!(source, Source::Rtsp(_)) && (table.format.is_some() || table.frame_size.is_some()) {
        bail!(
            "an rtsp:// camera sends what its stream is set to (pick its sub-stream); leave format and frame_size unset"
        );
    }
    let camera = CameraConfig { source, name, credentials, size: frame_size, format, fps };
    Ok(CameraSettings { camera, size, confidence, emit })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};

    /// `CamerasConfig` of `yolod capture ARGS`.
    fn cameras(args: &[&str]) -> Result<CamerasConfig> {
        let argv = ["yolod", "capture"].iter().chain(args).map(Into::into).collect();
        match Cli::try_parse_with_config(argv).unwrap().command {
            Command::Capture(capture) => CamerasConfig::from_args(&capture.camera),
            other => panic!("not capture: {other:?}"),
        }
    }

    #[test]
    fn camera_flags_become_one_setting_per_camera_with_unique_names() {
        let config = cameras(&["--camera", "exec:ffmpeg -i a -", "--camera", "exec:ffmpeg -i b -", "--emit=changes"]);
        let config = config.unwrap();
        let names: Vec<&str> = config.cameras.iter().map(|c| c.camera.name.as_str()).collect();
        assert_eq!(names, ["ffmpeg", "ffmpeg-2"]);
        assert!(config.cameras.iter().all(|c| c.emit == Emit::Changes && c.size == 640 && c.camera.format.is_none()));
        assert!(matches!(config.log, Target::Stdout));
    }

    #[test]
    fn bad_camera_settings_name_the_camera() {
        let err = cameras(&["--camera", "exec:cat", "--format", "yuyv"]).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "camera 1 (exec:cat): exec: and - read MJPEG, or raw I420 with a frame size; not Yuyv"
        );
        let err = cameras(&["--camera", "-", "--camera", "-"]).unwrap_err();
        assert_eq!(err.to_string(), "only one camera can read stdin (-)");
    }
}
