//! Stage two of the MQTT options: the broker URL parsed, the password file
//! read (at start-up), labels and topics checked and slugged.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::topics::{self, Names};
use super::url::BrokerUrl;
use crate::cli::MqttArgs;
use crate::slug::{Style, slug};

/// Everything the publisher runs with.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// The broker and its credentials (`Debug` hides the password).
    pub broker: BrokerUrl,
    /// Topic and discovery names.
    pub names: Names,
    /// Published labels, slugged (`traffic light` -> `traffic_light`), no repeats.
    pub labels: Vec<String>,
}

impl MqttConfig {
    /// `None` without `--mqtt`. `host` is this machine's name (the Home
    /// Assistant device); see [`host_name`].
    pub fn from_args(args: &MqttArgs, host: &str) -> Result<Option<MqttConfig>> {
        let Some(url) = &args.url else {
            if args.password_file.is_some() {
                bail!("--mqtt-password-file needs --mqtt URL (the broker, with the user: mqtt://user@host)");
            }
            return Ok(None);
        };
        let mut broker = BrokerUrl::parse(url).map_err(|e| anyhow::anyhow!("--mqtt: {e}"))?;
        if let Some(file) = &args.password_file {
            if broker.user.is_none() {
                bail!("--mqtt-password-file needs a user in the --mqtt URL: mqtt://USER@host");
            }
            broker.password = Some(read_password_file(file)?);
        }
        topics::check_base("--mqtt-topic", &args.topic).map_err(anyhow::Error::msg)?;
        topics::check_base("--mqtt-discovery-prefix", &args.discovery_prefix).map_err(anyhow::Error::msg)?;
        let mut labels: Vec<String> = Vec::new();
        for label in &args.labels {
            let level = slug(label, Style::TopicLevel);
            if level.is_empty() {
                bail!("--mqtt-labels: {label:?} has no letter or digit");
            }
            if !labels.contains(&level) {
                labels.push(level);
            }
        }
        if labels.is_empty() {
            bail!("--mqtt-labels is empty: give the class names to publish, e.g. person,car");
        }
        let names = Names { base: args.topic.clone(), discovery: args.discovery_prefix.clone(), host: host.into() };
        Ok(Some(MqttConfig { broker, names, labels }))
    }
}

/// This machine's name, slugged (`yolod` if it has none). The unit's
/// `ProcSubset=pid` hides /proc/sys, hence /etc/hostname next.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|name| slug(name.trim(), Style::TopicLevel))
        .find(|slug| !slug.is_empty())
        .unwrap_or_else(|| "yolod".into())
}

/// The first line of the file, without its line end. Warns when others
/// than the owner may read it.
fn read_password_file(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading --mqtt-password-file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                log::warn!("MQTT password file {} is readable by other users; chmod 600 it", path.display());
            }
        }
    }
    let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if password.is_empty() {
        bail!("--mqtt-password-file {} is empty", path.display());
    }
    Ok(password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: Option<&str>) -> MqttArgs {
        MqttArgs {
            url: url.map(String::from),
            password_file: None,
            topic: "yolod".into(),
            labels: vec!["person".into(), "traffic light".into(), "Person".into()],
            discovery_prefix: "homeassistant".into(),
        }
    }

    #[test]
    fn without_a_url_there_is_no_publisher() {
        assert!(MqttConfig::from_args(&args(None), "pi").unwrap().is_none());
    }

    #[test]
    fn labels_are_slugged_once_each() {
        let config = MqttConfig::from_args(&args(Some("mqtt://broker")), "pi").unwrap().unwrap();
        assert_eq!(config.labels, ["person", "traffic_light"]);
        assert_eq!(config.names.host, "pi");
    }

    #[test]
    fn the_password_file_replaces_the_url_password_and_needs_a_user() {
        let path = std::env::temp_dir().join(format!("yolod-mqtt-pass-{}", std::process::id()));
        std::fs::write(&path, "from-file\nignored\n").unwrap();
        let mut a = args(Some("mqtt://ha:from-url@broker"));
        a.password_file = Some(path.clone());
        let config = MqttConfig::from_args(&a, "pi").unwrap().unwrap();
        assert_eq!(config.broker.password.as_deref(), Some("from-file"));
        a.url = Some("mqtt://broker".into());
        let err = MqttConfig::from_args(&a, "pi").unwrap_err().to_string();
        assert!(err.contains("needs a user"), "{err}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn bad_settings_are_refused_before_start() {
        let mut a = args(Some("mqtt://broker"));
        a.topic = "yolod/#".into();
        assert!(MqttConfig::from_args(&a, "pi").is_err());
        let mut a = args(Some("mqtt://broker"));
        a.labels = vec!["  ".into()];
        assert!(MqttConfig::from_args(&a, "pi").is_err());
        assert!(MqttConfig::from_args(&args(Some("tcp://broker")), "pi").is_err());
    }
}
