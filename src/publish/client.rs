//! The one thread that owns the broker connection: rumqttc's synchronous
//! `Connection` (a current-thread tokio runtime inside) is polled here, it
//! connects with backoff, sends the outbox while connected, answers Home
//! Assistant's birth message, and on a clean stop says `offline`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, RecvTimeoutError,
    TlsConfiguration, Transport,
};

use super::{Payload, Shared, topics};

/// How long one poll waits while connected, so the outbox is looked at often.
const TICK: Duration = Duration::from_millis(100);
/// Reconnect backoff: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));
/// rumqttc's request channel: what it holds beyond our outbox, bounded.
const CHANNEL: usize = 16;
/// QoS 1 messages awaiting their acknowledgement, at most.
const INFLIGHT: u16 = 16;
/// Largest message sent (a snapshot JPEG) and received (`homeassistant/status`).
const MAX_OUTGOING: usize = 8 << 20;
const MAX_INCOMING: usize = 64 << 10;

/// The running connection thread.
pub struct Handle {
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
}

impl Handle {
    /// Asks the thread to say `offline` and disconnect; waits at most `wait`.
    pub fn stop(self, wait: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        if self.done.recv_timeout(wait).is_err() {
            log::warn!("MQTT: the broker connection did not close within {wait:?}; leaving it to the last will");
        }
    }
}

/// The client options: credentials, the last will (`offline`, retained), TLS.
pub fn options(config: &super::MqttConfig) -> Result<MqttOptions> {
    let broker = &config.broker;
    // rumqttc joins host and port as "host:port": an IPv6 address needs its brackets.
    let host = if broker.host.contains(':') { format!("[{}]", broker.host) } else { broker.host.clone() };
    let id = format!("yolod-{}-{}", config.names.host, std::process::id());
    let mut options = MqttOptions::new(id, host, broker.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(INFLIGHT)
        .set_max_packet_size(MAX_INCOMING, MAX_OUTGOING)
        .set_last_will(LastWill::new(config.names.availability(), "offline", QoS::AtLeastOnce, true));
    if let Some(user) = &broker.user {
        options.set_credentials(user, broker.password.clone().unwrap_or_default());
    }
    if broker.tls {
        options.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(tls_config()?))));
    }
    Ok(options)
}

/// TLS through ring (never aws-lc), trusting the system's CA store (where
/// a private CA can be added; `SSL_CERT_FILE` also works) and Mozilla's roots.
fn tls_config() -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    log::debug!("MQTT TLS: {added} CA certificates from the system, {} from webpki-roots", roots.len() - added);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS for mqtts://")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Starts the connection thread.
pub fn spawn(shared: Arc<Shared>, options: MqttOptions) -> Result<Handle> {
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done) = mpsc::channel();
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || {
            run(&shared, options, &flag);
            let _ = done_tx.send(());
        })
        .context("starting the MQTT thread")?;
    Ok(Handle { stop, done })
}

/// What went wrong, in words; credentials problems say so.
fn describe(e: &ConnectionError) -> (String, bool) {
    match e {
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword) => {
            ("the broker refused the user name or password".into(), true)
        }
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => {
            ("the broker refused the connection as not authorised (check the user name and password)".into(), true)
        }
        ConnectionError::ConnectionRefused(code) => (format!("the broker refused the connection ({code:?})"), false),
        other => (other.to_string(), false),
    }
}

fn run(shared: &Shared, options: MqttOptions, stop: &AtomicBool) {
    let (client, mut connection) = Client::new(options, CHANNEL);
    let broker = shared.config.broker.redacted();
    let stats = &shared.stats;
    let ha_status = shared.config.names.ha_status();
    let mut backoff = BACKOFF.0;
    let mut ever_connected = false;
    log::info!("MQTT: connecting to {broker}");
    while !stop.load(Ordering::SeqCst) {
        let event = if stats.connected.load(Ordering::SeqCst) {
            match connection.recv_timeout(TICK) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            // Not cut short: a connect cancelled half-way would start over.
            match connection.recv() {
                Ok(event) => Some(event),
                Err(_) => return,
            }
        };
        match event {
            Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                stats.connected.store(true, Ordering::SeqCst);
                backoff = BACKOFF.0;
                if ever_connected {
                    stats.reconnects.fetch_add(1, Ordering::SeqCst);
                }
                ever_connected = true;
                log::info!("MQTT: connected to {broker}");
                if let Err(e) = client.try_subscribe(ha_status.as_str(), QoS::AtLeastOnce) {
                    log::warn!("MQTT: cannot subscribe to {ha_status}: {e}");
                }
                shared.announce();
            }
            Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                if p.topic == ha_status && topics::ha_came_online(&p.payload) {
                    log::info!("MQTT: Home Assistant came online; announcing the entities again");
                    shared.announce();
                }
            }
            Some(Ok(_)) | None => {}
            Some(Err(e)) => {
                let was_connected = stats.connected.swap(false, Ordering::SeqCst);
                let (why, credentials) = describe(&e);
                let repeated = {
                    let mut last = stats.last_error.lock().unwrap_or_else(|e| e.into_inner());
                    let repeated = last.as_deref() == Some(why.as_str());
                    *last = Some(why.clone());
                    repeated
                };
                if was_connected {
                    log::warn!("MQTT: lost the broker {broker}: {why}; reconnecting");
                } else if repeated {
                    log::debug!("MQTT: {broker}: {why}");
                } else if credentials {
                    log::error!("MQTT: {broker}: {why}; detection goes on, retrying every {:?}", BACKOFF.1);
                } else {
                    log::warn!("MQTT: cannot reach the broker {broker}: {why}; detection goes on, retrying");
                }
                let until = Instant::now() + if was_connected { BACKOFF.0 } else { backoff };
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    shared.encode_frames();
                    std::thread::sleep(TICK);
                }
                if !was_connected {
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
        shared.encode_frames();
        if stats.connected.load(Ordering::SeqCst) {
            send_outbox(shared, &client);
        }
    }
    if stats.connected.load(Ordering::SeqCst) {
        say_offline(shared, &client, &mut connection);
    }
}

/// Hands the outbox to the connection, oldest topic first, until it is
/// empty or rumqttc's channel is full.
fn send_outbox(shared: &Shared, client: &Client) {
    let mut queue = shared.lock();
    while let Some((topic, message)) = queue.outbox.front() {
        let Payload::Bytes(bytes) = &message.payload else { break };
        let qos = if message.retain { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        if client.try_publish(topic, qos, message.retain, bytes.clone()).is_err() {
            break;
        }
        queue.outbox.pop();
        shared.stats.published.fetch_add(1, Ordering::SeqCst);
    }
}

/// `offline` (retained), then a DISCONNECT: the broker keeps the will to itself.
fn say_offline(shared: &Shared, client: &Client, connection: &mut rumqttc::Connection) {
    let topic = shared.config.names.availability();
    let sent = client.try_publish(topic, QoS::AtLeastOnce, true, "offline").and_then(|()| client.try_disconnect());
    if let Err(e) = sent {
        log::warn!("MQTT: could not say offline: {e}");
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => {
                log::info!("MQTT: said offline and disconnected");
                return;
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    log::warn!("MQTT: the disconnect was not confirmed; the broker will publish the last will");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_set_up_with_ring_and_trusted_roots() {
        let config = tls_config().unwrap();
        assert!(config.crypto_provider().cipher_suites.iter().any(|s| s.version() == &rustls::version::TLS13));
        let url = super::super::url::BrokerUrl::parse("mqtts://ha:pw@broker.example").unwrap();
        let names =
            super::super::topics::Names { base: "yolod".into(), discovery: "homeassistant".into(), host: "pi".into() };
        let options = options(&super::super::MqttConfig { broker: url, names, labels: vec!["person".into()] }).unwrap();
        assert!(matches!(options.transport(), Transport::Tls(_)));
        assert_eq!(options.broker_address(), ("broker.example".to_string(), 8883));
    }

    #[test]
    fn refused_credentials_are_told_apart_from_other_failures() {
        let (why, credentials) = describe(&ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized));
        assert!(credentials && why.contains("user name and password"), "{why}");
        let (_, credentials) = describe(&ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword));
        assert!(credentials);
        let io = ConnectionError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!describe(&io).1);
    }
}
