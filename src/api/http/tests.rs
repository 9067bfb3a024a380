use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;

/// Echoes what it got: `METHOD TARGET len=N x=HEADER` then the body.
/// `/slow` holds its slot for 1 s; `/light` is light; `/skip` reads no body.
struct Echo;

impl Handler for Echo {
    fn handle(&self, request: Request<'_>) -> Response {
        let mut body = Vec::new();
        let read = if request.target == "/skip" { Ok(0) } else { request.body.read_to_end(&mut body) };
        if request.target == "/slow" {
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut text = format!(
            "{} {} len={:?} x={} read={}\n",
            request.method,
            request.target,
            request.body_len,
            request.header("x-test").unwrap_or("-"),
            match read {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("error: {e}"),
            }
        )
        .into_bytes();
        text.extend_from_slice(&body);
        let headers =
            vec![("X-Evil".to_string(), "a\r\nSet-Cookie: x".to_string()), ("X-Fine".to_string(), "yes".to_string())];
        Response { status: 200, headers, body: Body::Full(text), close: false }
    }

    fn refuse(&self, refusal: &Refusal) -> Response {
        let status = match refusal {
            Refusal::BadRequest(_) => 400,
            Refusal::HeadTooLarge { .. } => 431,
            Refusal::HeadTimeout { .. } => 408,
            Refusal::TooManyConnections => 503,
        };
        Response { status, headers: vec![], body: Body::Full(format!("{refusal:?}").into_bytes()), close: true }
    }

    fn light(&self, _method: &str, target: &str) -> bool {
        target == "/light"
    }
}

fn start(limits: Limits) -> (Server, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (Server::start(listener, limits, Arc::new(Echo)).unwrap(), addr)
}

fn limits() -> Limits {
    Limits { max_head: 1024, read_timeout: Duration::from_secs(5), max_connections: 16, handler_slots: 2 }
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response with a Content-Length body: (head, body).
fn read_response(s: &mut TcpStream) -> (String, String) {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head: {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head, String::from_utf8(body).unwrap())
}

/// Everything until the server closes.
fn read_all(s: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let (_server, addr) = start(limits());
    let mut s = connect(addr);
    s.write_all(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Test: one\r\n\r\nhello").unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Connection: keep-alive\r\n"), "{head}");
    assert_eq!(body, "POST /a len=Some(5) x=one read=ok\nhello");
    // Two at once, the second closing.
    s.write_all(b"GET /b?q=1 HTTP/1.1\r\n\r\nPOST /c HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        .unwrap();
    assert_eq!(read_response(&mut s).1, "GET /b?q=1 len=Some(0) x=- read=ok\n");
    let (head, body) = read_response(&mut s);
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert_eq!(body, "POST /c len=Some(2) x=- read=ok\nhi");
    assert_eq!(read_all(&mut s), "", "closed after Connection: close");
}

#[test]
fn chunked_bodies_are_decoded_with_extensions_and_trailers() {
    let (_server, addr) = start(limits());
    let mut s = connect(addr);
    s.write_all(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).1, "POST /c len=None x=- read=ok\nhello world");
    // The connection carries on after a chunked body.
    s.write_all(b"GET /next HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).1, "GET /next len=Some(0) x=- read=ok\n");
}

#[test]
fn a_bad_chunk_size_is_an_error_for_the_handler_and_the_connection_closes() {
    let (_server, addr) = start(limits());
    let mut s = connect(addr);
    s.write_all(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n").unwrap();
    let (head, body) = read_response(&mut s);
    assert!(body.contains("read=error: bad chunk size"), "{body}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
}

/// Each size line or line ending a strict parser refuses is refused here too:
/// a proxy in front must not read a different body than yolod does.
#[test]
fn chunked_framing_is_strict_about_signs_spaces_empty_lines_and_bare_lf() {
    for (body, why) in [
        ("+5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("-5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        (" 5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("\t5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("0x5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("5 6\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("10000000000000000\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("5\nhello\r\n0\r\n\r\n", "bare LF"),
        ("5\r\nhello\n0\r\n\r\n", "bare LF"),
        ("5\r\nhello\r\n0\n\r\n", "bare LF"),
        ("5\r\nhello\r\n0\r\nX-T: 1\n\r\n", "bare LF"),
    ] {
        let out = String::from_utf8(replay(
            format!("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}GET /after HTTP/1.1\r\n\r\n")
                .as_bytes(),
            limits(),
        ))
        .unwrap();
        assert!(out.contains("error: ") && out.contains(why), "{body:?} -> {out}");
        assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{body:?}: the connection carried on -> {out}");
    }
    // What strict parsers accept still works: upper-case hex, leading zeros,
    // whitespace between the size and an extension.
    let out = String::from_utf8(replay(
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0A\r\n0123456789\r\n05 ;x=y\r\nhello\r\n0\r\n\r\n",
        limits(),
    ))
    .unwrap();
    assert!(out.starts_with("HTTP/1.1 200 ") && out.ends_with("\r\n\r\n15"), "{out}");
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (_server, addr) = start(limits());
    let mut s = connect(addr);
    s.write_all(b"POST /e HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"abc").unwrap();
    assert_eq!(read_response(&mut s).1, "POST /e len=Some(3) x=- read=ok\nabc");
}

#[test]
fn an_unread_body_closes_the_connection_instead_of_being_taken_for_a_request() {
    let (_server, addr) = start(limits());
    let mut s = connect(addr);
    s.write_all(b"POST /skip HTTP/1.1\r\nContent-Length: 22\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n").unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(!read_all(&mut s).contains("smuggled"));
}

#[test]
fn ambiguous_or_broken_heads_get_400() {
    let (_server, addr) = start(limits());
    for head in [
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "NOT HTTP AT ALL\r\n\r\n",
    ] {
        let mut s = connect(addr);
        s.write_all(head.as_bytes()).unwrap();
        let all = read_all(&mut s);
        assert!(all.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head:?} -> {all:?}");
        assert!(all.contains("BadRequest"), "{all}");
    }
}

#[test]
fn a_head_over_the_limit_gets_431_without_being_read_whole() {
    let (_server, addr) = start(limits());
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    // A single endless header line: the server must stop it at max_head.
    let line = format!("X-Big: {}", "a".repeat(4096));
    let _ = s.write_all(line.as_bytes());
    let all = read_all(&mut s);
    assert!(all.starts_with("HTTP/1.1 431 "), "{all:?}");
    assert!(all.contains("HeadTooLarge { limit: 1024 }"), "{all}");
    // Too many headers, each small, is the same refusal.
    let mut s = connect(addr);
    let many: String = (0..70).map(|i| format!("H{i}: v\r\n")).collect();
    s.write_all(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).unwrap();
    assert!(read_all(&mut s).starts_with("HTTP/1.1 431 "));
}

#[test]
fn a_head_must_arrive_whole_within_the_read_timeout_however_it_dribbles() {
    let (_server, addr) = start(Limits { read_timeout: Duration::from_secs(1), ..limits() });
    let mut s = connect(addr);
    let started = Instant::now();
    // A byte every 100 ms: never idle for a second, but never finished.
    let mut answer = String::new();
    for b in b"GET / HTTP/1.1\r\nX-Slow: ".iter().chain([b'a'; 100].iter()) {
        if s.write_all(&[*b]).is_err() {
            answer = read_all(&mut s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_millis(1500) {
            answer = read_all(&mut s);
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    assert!(answer.contains("HeadTimeout { secs: 1 }"), "{answer}");
}

#[test]
fn a_silent_connection_is_closed_without_an_answer() {
    let (_server, addr) = start(Limits { read_timeout: Duration::from_millis(500), ..limits() });
    let mut s = connect(addr);
    let started = Instant::now();
    assert_eq!(read_all(&mut s), "");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn connections_over_the_limit_get_503_and_the_rest_are_served() {
    let (_server, addr) = start(Limits { max_connections: 2, ..limits() });
    let held: Vec<TcpStream> = (0..2).map(|_| connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = connect(addr);
    let all = read_all(&mut extra);
    assert!(all.starts_with("HTTP/1.1 503 "), "{all:?}");
    assert!(all.contains("TooManyConnections"), "{all}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let mut s = connect(addr);
    s.write_all(b"GET /ok HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_response(&mut s).0.starts_with("HTTP/1.1 200 "));
}

#[test]
fn light_requests_answer_while_every_handler_slot_is_busy() {
    let (_server, addr) = start(Limits { handler_slots: 1, ..limits() });
    let slow = std::thread::spawn(move || {
        let mut s = connect(addr);
        s.write_all(b"GET /slow HTTP/1.1\r\n\r\n").unwrap();
        read_response(&mut s)
    });
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut s = connect(addr);
    s.write_all(b"GET /light HTTP/1.1\r\n\r\n").unwrap();
    read_response(&mut s);
    assert!(started.elapsed() < Duration::from_millis(500), "a light request waited {:?}", started.elapsed());
    // A heavy one waits for the slot.
    let started = Instant::now();
    s.write_all(b"GET /heavy HTTP/1.1\r\n\r\n").unwrap();
    read_response(&mut s);
    assert!(started.elapsed() >= Duration::from_millis(500), "a heavy request did not wait: {:?}", started.elapsed());
    slow.join().unwrap();
}

#[test]
fn header_values_with_line_breaks_are_dropped_and_head_has_no_body() {
    let (_server, addr) = start(limits());
    let mut s = connect(addr);
    s.write_all(b"HEAD /h HTTP/1.1\r\n\r\n").unwrap();
    let (head, _) = {
        // HEAD: Content-Length says what GET would send, but nothing follows.
        let mut bytes = Vec::new();
        let mut byte = [0u8];
        while !bytes.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            bytes.push(byte[0]);
        }
        (String::from_utf8(bytes).unwrap(), ())
    };
    assert!(head.contains("X-Fine: yes\r\n"), "{head}");
    assert!(!head.contains("Set-Cookie"), "{head}");
    assert!(head.contains("Content-Length: 32\r\n"), "{head}");
    s.write_all(b"GET /then HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_response(&mut s).1.starts_with("GET /then"));
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked_for() {
    let (_server, addr) = start(limits());
    let mut s = connect(addr);
    s.write_all(b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    let all = read_all(&mut s);
    assert!(all.contains("Connection: close\r\n") && all.ends_with("GET /old len=Some(0) x=- read=ok\n"), "{all}");
    let mut s = connect(addr);
    s.write_all(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    assert!(read_response(&mut s).0.contains("Connection: keep-alive\r\n"));
}

#[test]
fn stopping_closes_the_listener() {
    let (server, addr) = start(limits());
    server.stop();
    assert!(TcpStream::connect(addr).is_err(), "still accepting after stop");
}

#[test]
fn a_replayed_connection_answers_each_request_in_turn() {
    let input = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\nGET / HTTP/1.1\r\nContent-Length: x\r\n\r\n";
    let out = String::from_utf8(replay(input, limits())).unwrap();
    // Each answer: its status and its body.
    let answers: Vec<(&str, &str)> =
        out.split("HTTP/1.1 ").skip(1).map(|a| (&a[..3], a.split_once("\r\n\r\n").unwrap().1)).collect();
    assert_eq!(answers[..2], [("200", "3"), ("200", "2")], "{out}");
    assert_eq!(answers[2].0, "400", "{out}");
    assert!(answers[2].1.contains("Content-Length is not a number"), "{out}");
}
