//! The page at `/`, its sign-in, and the MJPEG stream its tiles show, from
//! the outside: a real camera (ffmpeg looping bus.jpg through `exec:`),
//! real sockets. The browser test (tests/e2e/ui.sh) runs the page itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

/// An exec: camera looping bus.jpg as MJPEG at 5 fps.
fn camera() -> String {
    format!(
        "exec:ffmpeg -nostdin -loglevel error -re -loop 1 -framerate 5 -i '{}' -f mjpeg -q:v 4 -",
        fixture("images/bus.jpg").display()
    )
}

fn addr(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// One request on its own connection, answered whole (never redirected).
fn raw(server: &Server, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut socket = TcpStream::connect(addr(server)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(body).unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head");
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, answer[split + 4..].to_vec())
}

fn metric(server: &Server, line_start: &str) -> f64 {
    let text = String::from_utf8(get(&server.url("/metrics"), &[]).body).unwrap();
    let line = text.lines().find(|l| l.starts_with(line_start)).unwrap_or_else(|| panic!("{line_start}\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Waits until the camera has processed `n` frames.
fn wait_frames(server: &Server, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric(server, "yolod_camera_frames_total{camera=\"ffmpeg\",kind=\"processed\"}") < n {
        assert!(Instant::now() < deadline, "the camera processed no frames:\n{}", server.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An MJPEG viewer on a raw socket.
struct Viewer {
    reader: BufReader<TcpStream>,
}

impl Viewer {
    fn open(server: &Server, query: &str, extra: &str) -> Result<Viewer, String> {
        let socket = TcpStream::connect(addr(server)).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut reader = BufReader::new(socket);
        write!(reader.get_mut(), "GET /v1/stream.mjpeg?{query} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").unwrap();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head);
        }
        assert!(head.contains("multipart/x-mixed-replace; boundary=yolodframe"), "{head}");
        Ok(Viewer { reader })
    }

    /// The next picture and its frame number.
    fn next(&mut self) -> (u64, Vec<u8>) {
        let mut boundary = String::new();
        self.reader.read_line(&mut boundary).unwrap();
        assert_eq!(boundary, "--yolodframe\r\n");
        let (mut length, mut frame) = (0, 0);
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                length = v.trim().parse().unwrap();
            }
            if let Some(v) = line.strip_prefix("X-Frame: ") {
                frame = v.trim().parse().unwrap();
            }
        }
        let mut jpeg = vec![0; length + 2];
        self.reader.read_exact(&mut jpeg).unwrap();
        assert_eq!(&jpeg[length..], b"\r\n");
        jpeg.truncate(length);
        (frame, jpeg)
    }
}

#[test]
fn browsers_get_the_page_other_clients_the_json_status_and_no_ui_turns_the_page_off() {
    let server = Server::start(&["--camera", &camera(), "--size", "320"]);
    wait_frames(&server, 2.0);
    let html = get(&server.url("/"), &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")]);
    assert_eq!(html.status, 200);
    assert!(html.header("content-type").unwrap().starts_with("text/html"));
    let text = String::from_utf8(html.body).unwrap();
    // The status part is in the HTML itself, so it reads without JavaScript:
    // the camera tile with its live stream and its current objects.
    assert!(text.contains(r#"data-camera="ffmpeg""#), "{text}");
    assert!(text.contains(r#"src="/v1/stream.mjpeg?camera=ffmpeg&amp;annotate=true""#));
    assert!(text.contains(r#"<span class="label">bus</span>"#), "{text}");
    assert!(text.contains("<th scope=\"row\">yolov8n (default)</th>"));
    assert!(!text.contains("Sign in"));
    for asset in ["/ui/app.js", "/ui/style.css"] {
        let answer = get(&server.url(asset), &[]);
        assert_eq!(answer.status, 200, "{asset}");
        assert!(text.contains(asset));
    }
    let status = get(&server.url("/"), &[]).json();
    assert!(status.success);
    let camera = &status.data["cameras"][0];
    assert_eq!(camera["name"], "ffmpeg");
    assert_eq!(camera["state"], "streaming");
    let names: Vec<&str> = camera["objects"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"bus") && names.contains(&"person"), "{names:?}");
    assert!(status.data["latency"].as_array().unwrap().iter().any(|s| s["stage"] == "inference"));
    drop(server);

    let server = Server::start(&["--no-ui"]);
    let answer = get(&server.url("/"), &[("accept", "text/html")]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json().data["models"][0], "yolov8n");
}

#[test]
fn frames_are_encoded_only_while_a_viewer_watches_and_viewers_are_capped() {
    // --http-threads 2: one handler slot for streams, one kept for the API.
    let server = Server::start(&["--camera", &camera(), "--size", "320", "--http-threads", "2"]);
    wait_frames(&server, 3.0);
    let encoded = "yolod_camera_frames_encoded_total{camera=\"ffmpeg\"}";
    assert_eq!(metric(&server, encoded), 0.0, "nobody watched, yet pictures were encoded");

    let mut viewer = Viewer::open(&server, "camera=ffmpeg&annotate=true", "").unwrap();
    let (first, jpeg) = viewer.next();
    let (second, _) = viewer.next();
    assert!(second > first, "frames {first} then {second}");
    // Drawn on the 1/2-scale decode the network read at --size 320 (bus.jpg
    // is 810x1080), not on a second, full decode.
    let picture = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((picture.width(), picture.height()), (405, 540));
    assert!(!jpeg.windows(4).any(|w| w == b"Lavc"), "annotated pictures are drawn on and encoded by yolod");
    assert!(metric(&server, encoded) >= 2.0);
    assert_eq!(metric(&server, "yolod_camera_viewers{camera=\"ffmpeg\"}"), 1.0);

    // The one stream slot is taken: a second viewer, or an event stream, waits.
    let refused = Viewer::open(&server, "camera=ffmpeg", "").err().expect("a second viewer was let in");
    assert!(refused.starts_with("HTTP/1.1 503") && refused.contains("Retry-After"), "{refused}");
    assert_eq!(get(&server.url("/v1/stream"), &[]).status, 503);
    // ... and the API still answers beside it.
    assert_eq!(get(&server.url("/v1/models"), &[]).status, 200);

    drop(viewer);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, "yolod_camera_viewers{camera=\"ffmpeg\"}") != 0.0 {
        assert!(Instant::now() < deadline, "the viewer's slot was not given back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = metric(&server, encoded);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(metric(&server, encoded), after, "encoding went on with nobody watching");
    // The plain stream is the camera's own JPEG, not a second encode.
    let mut plain = Viewer::open(&server, "camera=ffmpeg", "").unwrap();
    assert!(plain.next().1.windows(4).any(|w| w == b"Lavc"));
    plain.next();
    assert_eq!(metric(&server, encoded), after, "the camera's own JPEG was counted as encoded");
    assert_eq!(Viewer::open(&server, "camera=nope", "").err().unwrap().split(' ').nth(1), Some("404"));
}

#[test]
fn a_viewer_does_not_hold_up_a_clean_stop() {
    let mut server = Server::start(&["--camera", &camera(), "--size", "320"]);
    wait_frames(&server, 1.0);
    let mut viewer = Viewer::open(&server, "camera=ffmpeg", "").unwrap();
    viewer.next();
    let started = Instant::now();
    signal(server.pid(), "TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(started.elapsed() < Duration::from_secs(8), "stopping took {:?}", started.elapsed());
}

fn signal(pid: u32, signal: &str) {
    assert!(
        std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap().success()
    );
}

#[test]
fn with_keys_the_page_is_a_sign_in_form_until_a_key_becomes_a_session_cookie() {
    let keys = tempfile("keys", "right-key\nother-key\n");
    let mut server = Server::start(&["--camera", &camera(), "--size", "320", "--api-key-file", keys.to_str().unwrap()]);
    wait_frames(&server, 1.0);
    let browser = "Accept: text/html\r\n";
    let (status, _, page) =
        raw(&server, &format!("GET / HTTP/1.1\r\nHost: x\r\n{browser}Connection: close\r\n\r\n"), b"");
    let page = String::from_utf8(page).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains(r#"action="/ui/login""#));
    for private in ["ffmpeg", "stream.mjpeg", "yolov8n", "try-form"] {
        assert!(!page.contains(private), "the signed-out page shows {private}");
    }
    // The JSON status says only what it always said.
    let status_json = get(&server.url("/"), &[]).json();
    assert!(status_json.data.get("cameras").is_none(), "{:?}", status_json.data);
    assert_eq!(Viewer::open(&server, "camera=ffmpeg", "").err().unwrap().split(' ').nth(1), Some("401"));

    let login = |key: &str| {
        let body = format!("key={key}");
        raw(
            &server,
            &format!(
                "POST /ui/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
            body.as_bytes(),
        )
    };
    let (status, _, wrong) = login("wrong-key");
    assert_eq!(status, 401);
    assert!(String::from_utf8(wrong).unwrap().contains("That key is not accepted."));
    let (status, head, _) = login("right-key");
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("\r\nLocation: /\r\n"));
    let set_cookie = head.lines().find(|l| l.starts_with("Set-Cookie: ")).unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    let cookie = set_cookie["Set-Cookie: ".len()..].split(';').next().unwrap().to_string();
    let cookie_header = format!("Cookie: {cookie}\r\n");

    let (status, _, page) =
        raw(&server, &format!("GET / HTTP/1.1\r\nHost: x\r\n{browser}{cookie_header}Connection: close\r\n\r\n"), b"");
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(r#"data-camera="ffmpeg""#) && page.contains("Sign out"), "{page}");
    let mut viewer = Viewer::open(&server, "camera=ffmpeg&annotate=true", &cookie_header).unwrap();
    viewer.next();
    drop(viewer);

    // A POST with only the cookie is refused unless the page's own header
    // comes with it: a form on another site cannot add one.
    let (ct, body) = Multipart::new().file("file", "bus.jpg", &image("bus.jpg")).finish();
    let predict = |extra: &str| {
        raw(
            &server,
            &format!(
                "POST /v1/predict/yolov8n HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\
                 {cookie_header}{extra}Connection: close\r\n\r\n",
                body.len()
            ),
            &body,
        )
        .0
    };
    assert_eq!(predict(""), 401);
    assert_eq!(predict("x-yolod-page: 1\r\n"), 200);

    // The key leaves the file and SIGHUP re-reads it: its session ends too.
    std::fs::write(&keys, "other-key\n").unwrap();
    signal(server.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while predict("x-yolod-page: 1\r\n") != 401 {
        assert!(Instant::now() < deadline, "the session outlived its key");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, head, _) = login("other-key");
    let cookie = head.lines().find(|l| l.starts_with("Set-Cookie: ")).unwrap()["Set-Cookie: ".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get_models = |cookie: &str| {
        raw(
            &server,
            &format!("GET /v1/models HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"),
            b"",
        )
        .0
    };
    assert_eq!(get_models(&cookie), 200);
    let (status, head, _) = raw(
        &server,
        &format!(
            "POST /ui/logout HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    assert_eq!(status, 303);
    assert!(head.contains("Max-Age=0"));
    assert_eq!(get_models(&cookie), 401, "signed out, yet the cookie still works");
    assert_eq!(server.wait_exit(Duration::from_millis(10)), None);
}

fn tempfile(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("yolod-page-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}
