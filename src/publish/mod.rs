//! Outputs besides the log: camera detections to an MQTT broker, with Home
//! Assistant discovery. The camera loop hands each processed frame to the
//! [`Publisher`] (a [`camera_loop::Observer`]); it decides what changed and
//! queues it in a bounded outbox; one thread (`client.rs`) owns the
//! connection and sends. Nothing in the core imports this module.

mod client;
pub mod config;
pub mod outbox;
pub mod topics;
pub mod url;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::camera_loop::{self, Snapshot};
use crate::slug::{Style, slug};
pub use config::MqttConfig;
use outbox::{Counts, Outbox};

/// A queued message's body: bytes, or a frame whose annotated JPEG is made
/// off the camera thread (by the connection thread) before it is sent.
enum Payload {
    Bytes(Vec<u8>),
    Frame(Arc<Snapshot>),
}

struct Message {
    payload: Payload,
    /// Retained messages (states, configs) go at QoS 1, the rest at QoS 0.
    retain: bool,
}

/// What the camera threads and the connection thread share.
#[derive(Default)]
struct Queue {
    outbox: Outbox<Message>,
    /// The current payload of every retained state topic (counts, snapshots),
    /// sent again on each connect and when Home Assistant restarts.
    retained: BTreeMap<String, Vec<u8>>,
    /// The discovery configs of the cameras seen so far.
    discovery: Vec<(String, Vec<u8>)>,
    /// Each camera's counts as last queued.
    cameras: HashMap<String, Counts>,
}

/// Connection state and counters, for `/readyz` and `/metrics`.
#[derive(Default)]
struct Stats {
    connected: AtomicBool,
    published: AtomicU64,
    reconnects: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The publisher's state as `/readyz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The broker URL without its password.
    pub broker: String,
    pub connected: bool,
    /// The last connection error (kept after a reconnect), if any.
    pub last_error: Option<String>,
    /// Messages handed to the connection.
    pub published: u64,
    /// Messages replaced by a newer one for their topic before they could be sent.
    pub dropped: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Messages waiting (at most one per topic).
    pub queued: usize,
}

struct Shared {
    config: MqttConfig,
    queue: Mutex<Queue>,
    stats: Stats,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a camera's discovery configs (once per camera).
    fn register(&self, queue: &mut Queue, camera: &str) {
        if queue.cameras.contains_key(camera) {
            return;
        }
        queue.cameras.insert(camera.to_string(), Counts::default());
        for (topic, config) in self.config.names.discovery_configs(camera, &self.config.labels) {
            queue.outbox.push(&topic, Message { payload: Payload::Bytes(config.clone()), retain: true });
            queue.discovery.push((topic, config));
        }
    }

    /// Queues availability, every discovery config and every retained state,
    /// except where a newer message already waits: after a (re)connect and
    /// when Home Assistant comes online.
    fn announce(&self) {
        let mut queue = self.lock();
        let Queue { outbox, retained, discovery, .. } = &mut *queue;
        let bytes = |b: &Vec<u8>| Message { payload: Payload::Bytes(b.clone()), retain: true };
        outbox.push_if_absent(&self.config.names.availability(), bytes(&b"online".to_vec()));
        for (topic, payload) in discovery.iter().map(|(t, p)| (t, p)).chain(retained.iter()) {
            outbox.push_if_absent(topic, bytes(payload));
        }
    }

    /// Turns queued frames into annotated JPEGs (outside the lock), so that
    /// no raw frame waits in the outbox through an outage.
    fn encode_frames(&self) {
        let frames: Vec<(String, Arc<Snapshot>)> = self
            .lock()
            .outbox
            .iter_mut()
            .filter_map(|(t, m)| match &m.payload {
                Payload::Frame(f) => Some((t.to_string(), f.clone())),
                Payload::Bytes(_) => None,
            })
            .collect();
        let mut encoded: Vec<(Arc<Snapshot>, Vec<u8>)> = Vec::new();
        for (_, frame) in &frames {
            if !encoded.iter().any(|(f, _)| Arc::ptr_eq(f, frame)) {
                encoded.push((frame.clone(), annotated_jpeg(frame)));
            }
        }
        let mut queue = self.lock();
        for (topic, frame) in frames {
            let jpeg = &encoded.iter().find(|(f, _)| Arc::ptr_eq(f, &frame)).expect("encoded above").1;
            let Some(message) = queue.outbox.get_mut(&topic) else { continue };
            if matches!(&message.payload, Payload::Frame(f) if Arc::ptr_eq(f, &frame)) {
                message.payload = Payload::Bytes(jpeg.clone());
                queue.retained.insert(topic, jpeg.clone());
            }
        }
    }
}

/// The frame with its detections drawn, as JPEG (empty if encoding failed:
/// an empty retained message clears the old snapshot rather than keep a wrong one).
fn annotated_jpeg(frame: &Snapshot) -> Vec<u8> {
    let picture = frame.image.to_rgb().map_err(|e| e.to_string()).and_then(|image| {
        let mut picture = image.into_owned();
        crate::annotate::draw(&mut picture, &frame.objects, &frame.model.info.names);
        crate::annotate::to_jpeg(&picture).map_err(|e| e.to_string())
    });
    picture.unwrap_or_else(|e| {
        log::warn!("MQTT: snapshot of frame {} not encoded: {e}", frame.frame);
        Vec::new()
    })
}

/// The MQTT side of `yolod serve`: an observer of every camera.
pub struct Publisher {
    shared: Arc<Shared>,
    connection: Mutex<Option<client::Handle>>,
}

impl Publisher {
    /// Starts the connection thread. `cameras` are the names known at start
    /// (their discovery configs go out on connect); others are added when
    /// their first frame arrives. Never waits for the broker.
    pub fn start(config: MqttConfig, cameras: &[String]) -> Result<Arc<Publisher>> {
        let options = client::options(&config)?;
        let shared = Arc::new(Shared { config, queue: Mutex::default(), stats: Stats::default() });
        {
            let mut queue = shared.lock();
            for camera in cameras {
                shared.register(&mut queue, &slug(camera, Style::TopicLevel));
            }
        }
        let handle = client::spawn(shared.clone(), options)?;
        Ok(Arc::new(Publisher { shared, connection: Mutex::new(Some(handle)) }))
    }

    pub fn status(&self) -> Status {
        let (dropped, queued) = {
            let queue = self.shared.lock();
            (queue.outbox.dropped, queue.outbox.len())
        };
        let stats = &self.shared.stats;
        Status {
            broker: self.shared.config.broker.redacted(),
            connected: stats.connected.load(Ordering::SeqCst),
            last_error: stats.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            published: stats.published.load(Ordering::SeqCst),
            dropped,
            reconnects: stats.reconnects.load(Ordering::SeqCst),
            queued,
        }
    }

    /// Clean stop: `offline` on the availability topic, then a disconnect
    /// (so the broker does not send the last will), waiting at most `wait`.
    pub fn shutdown(&self, wait: Duration) {
        if let Some(handle) = self.connection.lock().unwrap_or_else(|e| e.into_inner()).take() {
            handle.stop(wait);
        }
    }
}

impl camera_loop::Observer for Publisher {
    fn processed(&self, camera: &str, frame: &Arc<Snapshot>, line: Option<&[u8]>) {
        let camera = slug(camera, Style::TopicLevel);
        let names = &self.shared.config.names;
        let labels = &self.shared.config.labels;
        let class_names = &frame.model.info.names;
        let classes: Vec<String> = frame
            .objects
            .iter()
            .map(|o| slug(class_names.get(o.detection.class).map_or("", String::as_str), Style::TopicLevel))
            .collect();
        let counts = outbox::count_labels(labels, classes.iter().map(String::as_str));
        let mut queue = self.shared.lock();
        self.shared.register(&mut queue, &camera);
        let changes = queue.cameras.get_mut(&camera).expect("registered above").update(&counts);
        for change in changes {
            let label = &labels[change.label];
            let topic = names.count(&camera, label);
            let payload = change.count.to_string().into_bytes();
            queue.retained.insert(topic.clone(), payload.clone());
            queue.outbox.push(&topic, Message { payload: Payload::Bytes(payload), retain: true });
            if change.rose {
                let message = Message { payload: Payload::Frame(frame.clone()), retain: true };
                queue.outbox.push(&names.snapshot(&camera, label), message);
            }
        }
        if let Some(line) = line {
            let message = Message { payload: Payload::Bytes(line.to_vec()), retain: false };
            queue.outbox.push(&names.detections(&camera), message);
        }
    }
}
