//! Names on the bus: labels, cameras and the host as topic levels, the
//! topics yolod publishes, and the Home Assistant discovery configs that
//! point at them. Pure: strings in, strings and JSON out.

use serde::Serialize;

/// Checks a `--mqtt-topic` or `--mqtt-discovery-prefix`: levels joined by
/// `/`, none empty, no wildcards.
pub fn check_base(what: &str, topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.split('/').any(str::is_empty) {
        return Err(format!("{what} {topic:?} has an empty level (no leading, trailing or double '/')"));
    }
    if topic.contains(['+', '#', '\0']) {
        return Err(format!("{what} {topic:?} must not contain '+', '#' or NUL"));
    }
    Ok(())
}

/// What identifies this yolod on the bus and in Home Assistant.
#[derive(Debug, Clone)]
pub struct Names {
    /// `--mqtt-topic`, e.g. `yolod`.
    pub base: String,
    /// `--mqtt-discovery-prefix`, e.g. `homeassistant`.
    pub discovery: String,
    /// The host's name, slugged: one Home Assistant device per host.
    pub host: String,
}

impl Names {
    /// `yolod/available`: `online` / `offline`, retained.
    pub fn availability(&self) -> String {
        format!("{}/available", self.base)
    }

    /// `yolod/<camera>/<label>`: the count, retained.
    pub fn count(&self, camera: &str, label: &str) -> String {
        format!("{}/{camera}/{label}", self.base)
    }

    /// `yolod/<camera>/<label>/snapshot`: a JPEG, retained.
    pub fn snapshot(&self, camera: &str, label: &str) -> String {
        format!("{}/{camera}/{label}/snapshot", self.base)
    }

    /// `yolod/<camera>/detections`: the JSON line of a frame.
    pub fn detections(&self, camera: &str) -> String {
        format!("{}/{camera}/detections", self.base)
    }

    /// `homeassistant/status`: Home Assistant's birth and will.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery)
    }

    fn node(&self) -> String {
        format!("yolod_{}", self.host)
    }

    /// The discovery configs of one camera: a `binary_sensor` (occupancy)
    /// and a count `sensor` per label, as `(topic, JSON)`.
    pub fn discovery_configs(&self, camera: &str, labels: &[String]) -> Vec<(String, Vec<u8>)> {
        let device = Device {
            identifiers: [self.node()],
            name: format!("yolod {}", self.host),
            manufacturer: "yolod",
            model: "yolod object detection",
            sw_version: env!("CARGO_PKG_VERSION"),
        };
        let availability = self.availability();
        let mut out = Vec::with_capacity(labels.len() * 2);
        for label in labels {
            let object = format!("{camera}_{label}");
            let state_topic = self.count(camera, label);
            let occupancy = Config {
                name: format!("{camera} {}", label.replace('_', " ")),
                unique_id: format!("{}_{object}_occupancy", self.node()),
                state_topic: state_topic.clone(),
                availability_topic: &availability,
                payload_available: "online",
                payload_not_available: "offline",
                device: &device,
                device_class: Some("occupancy"),
                value_template: Some("{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}"),
                payload_on: Some("ON"),
                payload_off: Some("OFF"),
                state_class: None,
                icon: None,
            };
            let count = Config {
                name: format!("{camera} {} count", label.replace('_', " ")),
                unique_id: format!("{}_{object}_count", self.node()),
                state_topic,
                device_class: None,
                value_template: None,
                payload_on: None,
                payload_off: None,
                state_class: Some("measurement"),
                icon: Some("mdi:counter"),
                ..occupancy
            };
            let topic = |component: &str| format!("{}/{component}/{}/{object}/config", self.discovery, self.node());
            out.push((topic("binary_sensor"), serde_json::to_vec(&occupancy).expect("plain JSON")));
            out.push((topic("sensor"), serde_json::to_vec(&count).expect("plain JSON")));
        }
        out
    }
}

/// The `device` block every entity carries: one device per host.
#[derive(Debug, Serialize)]
struct Device {
    identifiers: [String; 1],
    name: String,
    manufacturer: &'static str,
    model: &'static str,
    sw_version: &'static str,
}

/// An MQTT discovery config (the keys both components use, and theirs).
#[derive(Debug, Serialize)]
struct Config<'a> {
    name: String,
    unique_id: String,
    state_topic: String,
    availability_topic: &'a str,
    payload_available: &'static str,
    payload_not_available: &'static str,
    device: &'a Device,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_template: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_on: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_off: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon: Option<&'static str>,
}

/// Whether a `homeassistant/status` payload announces Home Assistant's
/// start (so the configs and states are sent again).
pub fn ha_came_online(payload: &[u8]) -> bool {
    payload.trim_ascii().eq_ignore_ascii_case(b"online")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names { base: "yolod".into(), discovery: "homeassistant".into(), host: "pi5".into() }
    }

    #[test]
    fn base_topics_refuse_wildcards_and_empty_levels() {
        assert!(check_base("--mqtt-topic", "yolod").is_ok());
        assert!(check_base("--mqtt-topic", "home/yolod-kitchen").is_ok());
        for bad in ["", "/yolod", "yolod/", "a//b", "yolod/+", "yolod/#"] {
            assert!(check_base("--mqtt-topic", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn topics_follow_the_base_camera_and_label() {
        let n = names();
        assert_eq!(n.availability(), "yolod/available");
        assert_eq!(n.count("video0", "person"), "yolod/video0/person");
        assert_eq!(n.snapshot("video0", "person"), "yolod/video0/person/snapshot");
        assert_eq!(n.detections("video0"), "yolod/video0/detections");
        assert_eq!(n.ha_status(), "homeassistant/status");
    }

    #[test]
    fn each_label_gets_an_occupancy_binary_sensor_and_a_count_sensor() {
        let configs = names().discovery_configs("video0", &["person".into(), "traffic_light".into()]);
        let topics: Vec<&str> = configs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/binary_sensor/yolod_pi5/video0_person/config",
                "homeassistant/sensor/yolod_pi5/video0_person/config",
                "homeassistant/binary_sensor/yolod_pi5/video0_traffic_light/config",
                "homeassistant/sensor/yolod_pi5/video0_traffic_light/config",
            ]
        );
        let parse = |i: usize| serde_json::from_slice::<serde_json::Value>(&configs[i].1).unwrap();
        let (binary, count) = (parse(0), parse(1));
        assert_eq!(binary["device_class"], "occupancy");
        assert_eq!(binary["state_topic"], "yolod/video0/person");
        assert_eq!(binary["payload_on"], "ON");
        assert_eq!(binary["unique_id"], "yolod_pi5_video0_person_occupancy");
        assert_eq!(binary["availability_topic"], "yolod/available");
        assert_eq!(binary["device"]["identifiers"][0], "yolod_pi5");
        assert_eq!(binary["device"]["sw_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(count["unique_id"], "yolod_pi5_video0_person_count");
        assert_eq!(count["state_class"], "measurement");
        assert!(count.get("device_class").is_none() && count.get("payload_on").is_none());
        assert_eq!(parse(2)["name"], "video0 traffic light");
    }

    #[test]
    fn home_assistant_online_is_recognised() {
        assert!(ha_came_online(b"online") && ha_came_online(b" Online\n"));
        assert!(!ha_came_online(b"offline") && !ha_came_online(b""));
    }
}
