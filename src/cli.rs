//! The command line: clap-derive structs whose doc comments are the `--help`
//! text; every option can also come from a `YOLOD_*` environment variable
//! (so a systemd `EnvironmentFile` configures the service). No I/O here.

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};

use crate::model::Params;

/// yolod: YOLO object detection for edge devices. Serves the Ultralytics HUB
/// inference API locally (POST /v1/predict/MODEL_ID), with a COCO YOLOv8n built in.
#[derive(Debug, Parser)]
#[command(name = "yolod", version = crate::version::LONG, propagate_version = true)]
#[command(
    after_help = "Examples:\n  yolod serve                                 # API on 127.0.0.1:8080, built-in yolov8n\n  curl -F image=@bus.jpg localhost:8080/v1/predict/yolov8n\n  yolod predict bus.jpg zidane.jpg            # one JSON line per image\n  yolod serve --listen 0.0.0.0:8080 --api-key-file /etc/yolod/keys"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Threads each inference is split across (tract's pool: the matrix
    /// products and yolod's own int8 passes). Default: every core (at most
    /// 4) for `capture` and for `serve` with one camera, where the latency
    /// of one frame is what counts; 1 otherwise, so that `serve` gets its
    /// parallelism from --workers instead: more throughput under load.
    /// (BENCHMARKS.md, "One frame on four cores").
    #[arg(long, global = true, value_name = "N", env = "YOLOD_MATMUL_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub matmul_threads: Option<u16>,
    /// How much yolod says on stderr: error, warn, info (start-up, cameras,
    /// stops) or debug (plans, rewrites, per-request detail). Other crates
    /// log at warn unless RUST_LOG (e.g. `tract_core=debug`) says otherwise.
    /// Under systemd each line carries its journald priority.
    #[arg(long, global = true, value_name = "LEVEL", env = "YOLOD_LOG_LEVEL", default_value = "info")]
    pub log_level: LogLevel,
    /// A TOML file of settings: keys are the long option names (`queue = 4`,
    /// `api-key-file = "/etc/yolod/keys"`), lists are arrays, and each
    /// `[[camera]]` table adds a camera (`source = "/dev/video0"`). Options
    /// given as flags or YOLOD_* variables win over the file.
    #[arg(long, global = true, value_name = "FILE", env = "YOLOD_CONFIG")]
    pub config: Option<PathBuf>,
}

impl Cli {
    /// Parses the command line (exiting with clap's message on an error),
    /// then fills in what it left to the defaults from `--config`.
    pub fn parse_with_config() -> Cli {
        Self::try_parse_with_config(std::env::args_os().collect()).unwrap_or_else(|e| e.exit())
    }

    /// [`Cli::parse_with_config`] on given arguments (the first is the program name).
    pub fn try_parse_with_config(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let command = || Cli::command().long_version(crate::version::long_with_cpu());
        let mut cmd = command();
        let matches = cmd.try_get_matches_from_mut(&args)?;
        let merged = crate::config_file::merge(&cmd, &matches, &args)?;
        let matches = match merged.args {
            Some(args) => command().try_get_matches_from(args)?,
            None => matches,
        };
        let mut cli = Cli::from_arg_matches(&matches)?;
        match &mut cli.command {
            Command::Serve(args) => args.camera.tables = merged.cameras,
            Command::Capture(args) => args.camera.tables = merged.cameras,
            _ => {}
        }
        Ok(cli)
    }
}

/// The levels of `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(level: LogLevel) -> log::LevelFilter {
        match level {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HUB inference API over HTTP.
    Serve(Box<ServeArgs>),
    /// Detect objects in image files; prints one JSON line per image.
    Predict(PredictArgs),
    /// List the models (built-in and loaded): task, classes, input size.
    Models(ModelsArgs),
    /// Time each stage (decode, preprocess, inference, postprocess, JSON).
    Bench(BenchArgs),
    /// Detect objects in camera frames; one JSON line per frame to a log stream.
    Capture(CaptureArgs),
}

/// Which models to load besides the built-in yolov8n.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// An extra ONNX model to serve, under its file stem as MODEL_ID
    /// (repeatable; the variable takes a comma-separated list). Class names
    /// come from its metadata, or from FILE's stem + `.names` beside it (one
    /// name per line), which takes the metadata's place.
    #[arg(long = "model", value_name = "FILE", env = "YOLOD_MODEL_FILES", value_delimiter = ',')]
    pub model_files: Vec<PathBuf>,
    /// Serve every *.onnx file in this directory, each under its file stem.
    #[arg(long, value_name = "DIR", env = "YOLOD_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

/// Which of the built-in model's two files runs.
#[derive(Debug, Args)]
pub struct PrecisionArg {
    /// Precision of the built-in yolov8n: auto runs int8 on arm64 cores with
    /// the dot-product extension (Pi 5, Jetson Orin: about 0.4x the cycles
    /// of fp32, 96-100% of its detections) and on the Cortex-A72/A57 (Pi 4,
    /// Jetson Nano: a few % fewer), fp32 elsewhere (Pi 3 and Zero 2 W's A53,
    /// x86_64). A --model FILE runs as it is.
    #[arg(long, value_name = "P", env = "YOLOD_PRECISION", default_value = "auto")]
    pub precision: crate::model::precision::Precision,
}

#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    /// Print the GET /v1/models JSON (with class names) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on. Anything but loopback needs an API key (or --no-auth).
    #[arg(long, value_name = "ADDR", env = "YOLOD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub models: ModelArgs,
    /// The model answering POST /v1/predict (default: the built-in yolov8n).
    #[arg(long, value_name = "ID", env = "YOLOD_DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// Inference worker threads [default: number of CPUs, at most 4].
    #[arg(long, value_name = "N", env = "YOLOD_WORKERS")]
    pub workers: Option<usize>,
    /// Requests allowed to wait for a worker; more get 503 with Retry-After.
    #[arg(long, value_name = "N", env = "YOLOD_QUEUE", default_value_t = 8)]
    pub queue: usize,
    /// Requests handled at once (each may hold a whole body in memory); more
    /// wait their turn. Health probes and /metrics never wait.
    #[arg(long, value_name = "N", env = "YOLOD_HTTP_THREADS", default_value_t = 8)]
    pub http_threads: usize,
    /// Open connections at most; more are answered 503 and closed.
    #[arg(long, value_name = "N", env = "YOLOD_MAX_CONNECTIONS", default_value_t = 256)]
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes; larger ones get 431.
    #[arg(long, value_name = "BYTES", env = "YOLOD_MAX_HEADER", default_value = "16K", value_parser = parse_bytes)]
    pub max_header: u64,
    /// Objects kept per image at most, the most confident first: caps the
    /// answers of both APIs, camera lines and the event stream. Frigate's
    /// deepstack detector needs 20 or fewer (a 21st object crashes it).
    #[arg(long, value_name = "N", env = "YOLOD_MAX_DETECTIONS", default_value_t = crate::model::MAX_DETECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=10_000).map(|n| n as usize))]
    pub max_detections: usize,
    /// Largest request body, in bytes (suffixes K, M, G: 10M = 10 MiB); larger ones get 413.
    #[arg(long, value_name = "BYTES", env = "YOLOD_MAX_BODY", default_value = "10M", value_parser = parse_bytes)]
    pub max_body: u64,
    /// Largest decoded image, in pixels (width x height); larger ones get 400.
    #[arg(long, value_name = "N", env = "YOLOD_MAX_PIXELS", default_value_t = 40_000_000)]
    pub max_pixels: u64,
    /// An accepted API key, sent by clients in the x-api-key header (repeatable;
    /// YOLOD_API_KEYS takes a comma-separated list).
    #[arg(long = "api-key", value_name = "KEY", env = "YOLOD_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<String>,
    /// A file of accepted API keys, one per line ('#' starts a comment).
    #[arg(long, value_name = "FILE", env = "YOLOD_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Serve without API keys on a non-loopback address (anyone on the network may use it).
    #[arg(long, env = "YOLOD_NO_AUTH")]
    pub no_auth: bool,
    /// Accept the `url` argument: the server then fetches images over http(s).
    #[arg(long, env = "YOLOD_ALLOW_URL")]
    pub allow_url: bool,
    /// With --allow-url, also fetch from loopback, private and link-local addresses.
    #[arg(long, env = "YOLOD_ALLOW_PRIVATE_URLS", requires = "allow_url")]
    pub allow_private_urls: bool,
    /// With --allow-url, seconds allowed for the whole fetch.
    #[arg(long, value_name = "SECS", env = "YOLOD_URL_TIMEOUT", default_value_t = 10.0)]
    pub url_timeout: f64,
    /// Seconds a connection may wait before sending a request, and a started
    /// request head may take to arrive whole (408 after); also the longest
    /// silence while a body arrives or an answer is read.
    #[arg(long, value_name = "SECS", env = "YOLOD_READ_TIMEOUT", default_value_t = 10.0)]
    pub read_timeout: f64,
    /// Seconds a whole request body may take to arrive; slower ones get 408,
    /// so a client trickling its upload cannot hold an HTTP thread for long.
    #[arg(long, value_name = "SECS", env = "YOLOD_BODY_TIMEOUT", default_value_t = 30.0)]
    pub body_timeout: f64,
    /// Let web pages from this origin call the API from a browser (repeatable,
    /// or comma-separated; `*` for any). Without it no CORS headers are sent.
    #[arg(long = "cors-origin", value_name = "ORIGIN", env = "YOLOD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Answer GET / with the JSON status only, for browsers too: no page
    /// (live cameras, a try-it upload, models and health; see the README).
    #[arg(long, env = "YOLOD_NO_UI")]
    pub no_ui: bool,
    #[command(flatten)]
    pub camera: CameraArgs,
    #[command(flatten)]
    pub mqtt: MqttArgs,
    /// Seconds to let in-flight requests finish on SIGTERM / Ctrl-C.
    #[arg(long, value_name = "SECS", env = "YOLOD_SHUTDOWN_TIMEOUT", default_value_t = 10.0)]
    pub shutdown_timeout: f64,
}

/// Cameras and where their detections go.
#[derive(Debug, Args)]
pub struct CameraArgs {
    /// A camera to read (repeatable), by its source: /dev/videoN (V4L2);
    /// `http://[USER:PASS@]HOST/PATH` (an MJPEG stream, or a JPEG snapshot URL
    /// polled at --fps); `rtsp://[USER:PASS@]HOST:554/PATH` (an IP camera's
    /// H.264 or MJPEG stream over TCP; pick its sub-stream, e.g. 640x360);
    /// exec:COMMAND ARGS (MJPEG on the command's stdout,
    /// e.g. "exec:rpicam-vid -t 0 -n --codec mjpeg -o -" for a Pi camera
    /// module); - (MJPEG on stdin). YOLOD_CAMERAS takes one source per line.
    /// Names and per-camera settings: `[[camera]]` tables in --config.
    #[arg(long = "camera", value_name = "SOURCE", env = "YOLOD_CAMERAS", value_delimiter = '\n')]
    pub cameras: Vec<String>,
    /// Frame size to ask a V4L2 camera for, e.g. 1280x720 (the driver picks
    /// the nearest); for raw I420 frames, their size.
    #[arg(long = "frame-size", value_name = "WxH", env = "YOLOD_CAMERA_FRAME_SIZE", value_parser = parse_frame_size)]
    pub frame_size: Option<(u32, u32)>,
    /// Pixel format: for a V4L2 camera auto (MJPG, then YUYV, NV12, RGB3) or
    /// one of those or I420; for exec: and -, auto (MJPEG) or I420 (raw
    /// frames, e.g. rpicam-vid --codec yuv420, with --frame-size).
    #[arg(long, value_name = "FORMAT", env = "YOLOD_CAMERA_FORMAT", default_value = "auto", ignore_case = true)]
    pub format: crate::camera::pixel::FormatChoice,
    /// Most frames per second to process; newer frames replace older ones
    /// meanwhile. A snapshot URL is fetched at this rate (default 1).
    #[arg(long, value_name = "N", env = "YOLOD_CAMERA_FPS")]
    pub fps: Option<f64>,
    /// Inference size for camera frames (32 - 1280), as the API's `size`.
    #[arg(long = "size", visible_alias = "imgsz", value_name = "N", env = "YOLOD_CAMERA_SIZE", default_value_t = Params::DEFAULT_SIZE, value_parser = parse_inference_size)]
    pub imgsz: u32,
    /// Minimum class score kept for camera frames.
    #[arg(long = "camera-confidence", value_name = "F", env = "YOLOD_CAMERA_CONFIDENCE", default_value_t = Params::DEFAULT_CONFIDENCE, value_parser = Params::parse_confidence)]
    pub confidence: f32,
    /// Where the JSON lines go: `-` for stdout (journald under systemd), or a file (appended).
    #[arg(long, value_name = "FILE|-", env = "YOLOD_LOG", default_value = "-")]
    pub log: String,
    /// Rotate the log file when it would pass this size (K/M/G suffixes).
    #[arg(long, value_name = "BYTES", env = "YOLOD_LOG_MAX_BYTES", default_value = "64M", value_parser = parse_bytes)]
    pub log_max_bytes: u64,
    /// Rotated files kept (FILE.1 ... FILE.N).
    #[arg(long, value_name = "N", env = "YOLOD_LOG_KEEP", default_value_t = 3)]
    pub log_keep: usize,
    /// Which frames to write.
    #[arg(long, value_name = "WHICH", env = "YOLOD_EMIT", default_value = "all")]
    pub emit: crate::sink::Emit,
    /// The `[[camera]]` tables of the --config file, before the --camera sources.
    #[arg(skip)]
    pub tables: Vec<crate::config_file::CameraTable>,
}

/// Parses a camera's inference size; a `WxH` value gets a pointer to
/// --frame-size (which `--size` meant before it became the inference size).
pub fn parse_inference_size(s: &str) -> Result<u32, String> {
    if s.contains(['x', 'X']) {
        return Err(format!(
            "{s:?}: --size is the inference size (e.g. 640), as the API's size; the camera's frame size is --frame-size {s}"
        ));
    }
    Params::parse_size(s).map_err(|valid| format!("{s:?}: {valid}"))
}

/// Publishing camera detections to an MQTT broker (Home Assistant).
#[derive(Debug, Default, Args)]
pub struct MqttArgs {
    /// Publish camera detections to this MQTT broker, with Home Assistant
    /// discovery: `mqtt://[user[:pass]@]host[:port]` (port 1883), or
    /// `mqtts://...` for TLS (port 8883, the system's CAs). Escape '@', ':'
    /// and '/' in credentials as %40, %3A, %2F.
    #[arg(long = "mqtt", value_name = "URL", env = "YOLOD_MQTT", hide_env_values = true)]
    pub url: Option<String>,
    /// A file holding the broker password (its first line), instead of one
    /// in the URL; the user still comes from the URL.
    #[arg(long = "mqtt-password-file", value_name = "FILE", env = "YOLOD_MQTT_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// The topic everything is published under: TOPIC/available,
    /// TOPIC/CAMERA/LABEL (the count), TOPIC/CAMERA/LABEL/snapshot,
    /// TOPIC/CAMERA/detections. Give each yolod host its own.
    #[arg(long = "mqtt-topic", value_name = "TOPIC", env = "YOLOD_MQTT_TOPIC", default_value = "yolod")]
    pub topic: String,
    /// The class names published per camera, each a count, a snapshot and
    /// two Home Assistant entities (comma-separated).
    #[arg(
        long = "mqtt-labels",
        value_name = "LABELS",
        env = "YOLOD_MQTT_LABELS",
        value_delimiter = ',',
        default_value = "person,car,truck,bicycle,motorcycle,bus,dog,cat,bird"
    )]
    pub labels: Vec<String>,
    /// Home Assistant's MQTT discovery prefix.
    #[arg(
        long = "mqtt-discovery-prefix",
        value_name = "PREFIX",
        env = "YOLOD_MQTT_DISCOVERY_PREFIX",
        default_value = "homeassistant"
    )]
    pub discovery_prefix: String,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub camera: CameraArgs,
    /// A loaded model id or an ONNX file.
    #[arg(long, value_name = "ID|FILE", env = "YOLOD_MODEL", default_value = "yolov8n")]
    pub model: String,
    /// Stop after this many processed frames (for scripts and tests).
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_frame_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT, e.g. 640x480"))?;
    match (w.trim().parse::<u32>(), h.trim().parse::<u32>()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 && w <= 16384 && h <= 16384 => Ok((w, h)),
        _ => Err(format!("{s:?} is not WIDTHxHEIGHT, e.g. 640x480")),
    }
}

#[derive(Debug, Args)]
pub struct InferenceArgs {
    /// A loaded model id (see `yolod models`) or an ONNX file.
    #[arg(long, value_name = "ID|FILE", env = "YOLOD_MODEL", default_value = "yolov8n")]
    pub model: String,
    /// Inference size, longest side, rounded up to a multiple of 32 (32 - 1280).
    #[arg(long, value_name = "N", default_value_t = Params::DEFAULT_SIZE, value_parser = Params::parse_size)]
    pub size: u32,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub inference: InferenceArgs,
    /// Minimum class score kept (0.01 - 1.0).
    #[arg(long, value_name = "F", default_value_t = Params::DEFAULT_CONFIDENCE, value_parser = Params::parse_confidence)]
    pub confidence: f32,
    /// NMS IoU threshold, per class (0.0 - 0.95).
    #[arg(long, value_name = "F", default_value_t = Params::DEFAULT_IOU, value_parser = Params::parse_iou)]
    pub iou: f32,
    /// Coordinates as fractions of the image's width and height.
    #[arg(long)]
    pub normalize: bool,
    /// Also draw the detections (boxes, labels, masks, skeletons) as JPEG:
    /// to OUT for one image; with several, OUT is a directory (made if
    /// missing) holding NAME.jpg for each image NAME.*.
    #[arg(long, value_name = "OUT")]
    pub annotate: Option<PathBuf>,
    /// Image files (JPEG, PNG, WebP, BMP, GIF, TIFF).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub inference: InferenceArgs,
    /// Timed runs.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub iterations: usize,
    /// Untimed runs first.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub warmup: usize,
    /// Time nothing but the network: decode and letterbox once, outside the loop.
    #[arg(long)]
    pub inference_only: bool,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The image to run on [default: a synthetic 810x1080 picture].
    #[arg(value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Time IMAGE as a camera frame in this pixel format: a raw frame (with
    /// --frame-size) is letterboxed in place; MJPG is a camera's JPEG, decoded
    /// only as large as the network needs. E.g. a YUYV frame from
    /// `ffmpeg -i in.jpg -s 640x480 -pix_fmt yuyv422 -f rawvideo frame.yuv`.
    #[arg(long, value_name = "FOURCC", requires = "image")]
    pub format: Option<crate::camera::pixel::FormatChoice>,
    /// The raw frame's WIDTHxHEIGHT (rows packed, no padding).
    #[arg(long = "frame-size", value_name = "WxH", value_parser = parse_frame_size)]
    pub frame_size: Option<(u32, u32)>,
    /// Time a raw frame the way yolod 0.1 read it, for comparison: converted
    /// to a full-size RGB picture, then letterboxed.
    #[arg(long, requires = "format")]
    pub convert_first: bool,
    /// IMAGE is an H.264 stream (Annex B, as an RTSP camera's), e.g.
    /// `ffmpeg -i clip.mp4 -s 640x360 -c:v libx264 -bf 0 -g 10 -f h264 clip.h264`:
    /// each run decodes the stream's next picture (wrapping at its end), and
    /// decode is the H.264 decode.
    #[arg(long, requires = "image", conflicts_with = "format")]
    pub h264: bool,
}

/// Parses a byte count with an optional K/M/G (binary) suffix.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| format!("{s:?} is not a byte count (e.g. 10485760 or 10M)"))?;
    n.checked_shl(shift).filter(|v| v >> shift == n).ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("10M"), Ok(10 << 20));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_bytes("1234"), Ok(1234));
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("99999999999999G").is_err());
    }

    #[test]
    fn frame_sizes_parse() {
        assert_eq!(parse_frame_size("1280x720"), Ok((1280, 720)));
        assert!(parse_frame_size("1280").is_err() && parse_frame_size("0x5").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
