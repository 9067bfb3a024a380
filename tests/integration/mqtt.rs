//! MQTT against a real broker (Debian's mosquitto on a free loopback port),
//! without a camera: availability, the last will, `offline` on SIGTERM, a
//! broker that comes late or goes away, refused credentials. Skipped with a
//! message when mosquitto is not installed (tests/setup.sh installs it).
//! The camera side (counts, snapshots, discovery) is tests/e2e/mqtt.sh.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Server, get};

fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// A mosquitto on `port`, killed on drop.
struct Broker {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Broker {
    /// Starts it; a missing mosquitto fails the test (tests/setup.sh installs it).
    fn start(port: u16, extra: &str) -> Broker {
        let (Some(mosquitto), Some(_)) = (tool("mosquitto"), tool("mosquitto_sub")) else {
            panic!("mosquitto / mosquitto_sub not installed: tests/setup.sh installs them");
        };
        let dir = std::env::temp_dir().join(format!("yolod-mqtt-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\npersistence false\n{extra}")).unwrap();
        let child = Command::new(mosquitto).arg("-c").arg(&conf).stderr(Stdio::null()).spawn().unwrap();
        let broker = Broker { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// The retained message of `topic` (empty if none), as `mosquitto_sub` gets it.
    fn retained(&self, topic: &str, auth: &[&str]) -> String {
        let out = Command::new(tool("mosquitto_sub").unwrap())
            .args(["-p", &self.port.to_string(), "-t", topic, "-C", "1", "-W", "1"])
            .args(auth)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until `topic`'s retained message is `want`.
    fn expect(&self, topic: &str, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got = self.retained(topic, &[]);
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{topic}: {got:?} after {within:?}, expected {want:?}");
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn mqtt_status(server: &Server) -> serde_json::Value {
    let answer = get(&server.url("/readyz"), &[]);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    body["data"]["mqtt"].clone()
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn availability_is_online_then_the_last_will_says_offline_after_kill_9() {
    let port = free_port();
    let broker = Broker::start(port, "allow_anonymous true\n");
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut server = Server::start(&["--mqtt", &url, "--mqtt-topic", "t1"]);
    broker.expect("t1/available", "online", Duration::from_secs(10));
    Command::new("kill").args(["-9", &server.pid().to_string()]).status().unwrap();
    server.wait_exit(Duration::from_secs(5));
    broker.expect("t1/available", "offline", Duration::from_secs(10));
}

#[test]
fn sigterm_says_offline_and_exits_0() {
    let port = free_port();
    let broker = Broker::start(port, "allow_anonymous true\n");
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut server = Server::start(&["--mqtt", &url]);
    broker.expect("yolod/available", "online", Duration::from_secs(10));
    Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    assert_eq!(broker.retained("yolod/available", &[]), "offline");
    assert!(server.stderr.lock().unwrap().contains("MQTT: said offline and disconnected"));
}

#[test]
fn a_broker_that_comes_late_or_goes_away_never_costs_readiness_and_is_reconnected() {
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let server = Server::start(&["--mqtt", &url]);
    wait_until("an error about the absent broker", Duration::from_secs(10), || {
        mqtt_status(&server)["last_error"].is_string()
    });
    assert_eq!(mqtt_status(&server)["connected"], false);
    let broker = Broker::start(port, "allow_anonymous true\n");
    broker.expect("yolod/available", "online", Duration::from_secs(20));
    assert_eq!(mqtt_status(&server)["connected"], true);
    drop(broker);
    wait_until("the lost broker in /readyz", Duration::from_secs(10), || mqtt_status(&server)["connected"] == false);
    let metrics = String::from_utf8(get(&server.url("/metrics"), &[]).body).unwrap();
    assert!(metrics.contains("\nyolod_mqtt_connected 0\n"), "{metrics}");
    // A fresh broker (nothing retained): yolod publishes its availability again.
    let broker = Broker::start(port, "allow_anonymous true\n");
    broker.expect("yolod/available", "online", Duration::from_secs(20));
    let status = mqtt_status(&server);
    assert_eq!(status["connected"], true);
    assert!(status["reconnects"].as_u64().unwrap() >= 1, "{status}");
}

#[test]
fn refused_credentials_are_an_error_line_without_the_password_and_show_in_readyz() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("yolod-mqtt-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passwd = dir.join("passwd");
    let mosquitto_passwd = tool("mosquitto_passwd").expect("mosquitto_passwd: tests/setup.sh installs mosquitto");
    let made = Command::new(mosquitto_passwd).args(["-b", "-c"]).arg(&passwd).args(["ha", "right-pw"]).status();
    assert!(made.unwrap().success());
    let extra = format!("allow_anonymous false\npassword_file {}\n", passwd.display());
    let broker = Broker::start(port, &extra);
    let secret = dir.join("mqtt-password");
    std::fs::write(&secret, "wrong-pw-123\n").unwrap();
    let url = format!("mqtt://ha@127.0.0.1:{port}");
    let server = Server::start(&["--mqtt", &url, "--mqtt-password-file", secret.to_str().unwrap()]);
    wait_until("the refusal in the log", Duration::from_secs(10), || server.stderr.lock().unwrap().contains("refused"));
    let log = server.stderr.lock().unwrap().clone();
    let line = log.lines().find(|l| l.contains("refused")).unwrap();
    assert!(line.contains("error") && line.contains(&format!("mqtt://ha@127.0.0.1:{port}")), "{line}");
    assert!(!log.contains("wrong-pw-123"), "{log}");
    let status = mqtt_status(&server);
    assert_eq!(status["connected"], false);
    assert!(status["last_error"].as_str().unwrap().contains("user name and password"), "{status}");
    assert!(!status.to_string().contains("wrong-pw-123"));
    // The right password from the same file, in the URL form: connects.
    drop(server);
    let url = format!("mqtt://ha:right-pw@127.0.0.1:{port}");
    let _server = Server::start(&["--mqtt", &url]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.retained("yolod/available", &["-u", "ha", "-P", "right-pw"]) != "online" {
        assert!(Instant::now() < deadline, "the right password did not connect");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
