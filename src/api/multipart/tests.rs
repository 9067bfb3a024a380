//! Unit tests of the multipart parser (kept apart: the parser file stays short).
use super::*;

const CD: &str = "Content-Disposition: form-data; name=a";

fn parse_with<'a>(body: &'a (impl AsRef<[u8]> + ?Sized), b: &str) -> Result<Vec<Part<'a>>, E> {
    parse(body.as_ref(), b, Limits { max_parts: 8, max_field_bytes: 64 })
}

fn ok(body: &(impl AsRef<[u8]> + ?Sized)) -> Vec<Part<'_>> {
    parse_with(body, "b").unwrap()
}

fn err(body: impl AsRef<[u8]>) -> E {
    parse_with(&body, "b").unwrap_err()
}

/// A body with boundary `b` and one part.
fn one(headers: &str, data: &str) -> String {
    format!("--b\r\n{headers}\r\n\r\n{data}\r\n--b--")
}

/// name, filename, content type, data
fn fields<'p>(p: &'p Part) -> (&'p str, Option<&'p str>, Option<&'p str>, &'p [u8]) {
    let (f, c) = (p.filename.as_deref(), p.content_type.as_deref());
    (&p.name, f, c, p.data)
}

#[test]
fn curl_style_body() {
    let b = "------------------------d74496d66958873e";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"bus.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n\u{ff}\u{d8}JPEG\r\n--{b}\r\n\
         Content-Disposition: form-data; name=\"size\"\r\n\r\n640\r\n--{b}--\r\n"
    );
    let parts = parse_with(&body, b).unwrap();
    let jpeg = "\u{ff}\u{d8}JPEG".as_bytes();
    let image = ("image", Some("bus.jpg"), Some("image/jpeg"), jpeg);
    assert_eq!(fields(&parts[0]), image);
    assert_eq!(fields(&parts[1]), ("size", None, None, &b"640"[..]));
    assert!(parts[0].is_file() && !parts[1].is_file() && parts.len() == 2);
}

#[test]
fn requests_style_body() {
    let b = "9f1c2a7e3b5d4c6e8f0a1b2c3d4e5f60";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\n640\r\n--{b}\r\n\
         Content-Disposition: form-data; name=\"image\"; filename=\"bus.jpg\"\r\n\r\n\
         JPEG\r\n--{b}--\r\n"
    );
    let parts = parse_with(&body, b).unwrap();
    assert_eq!(fields(&parts[0]), ("size", None, None, &b"640"[..]));
    let image = ("image", Some("bus.jpg"), None, &b"JPEG"[..]);
    assert_eq!(fields(&parts[1]), image);
}

#[test]
fn boundary_bare_quoted_and_case_insensitive() {
    for (ct, want) in [
        ("multipart/form-data; boundary=abc123", Some("abc123")),
        ("Multipart/Form-Data;BOUNDARY=\"a\\b\"", Some("ab")),
        ("multipart/form-data; charset=x; Boundary=\"x y\"", Some("x y")),
        (" MULTIPART/FORM-DATA ; boundary = zz ; ", Some("zz")),
        ("multipart/form-data; boundary=\"a\\\"b\"", None), // '"' is not a bchar
    ] {
        assert_eq!(boundary(ct).as_deref(), want, "{ct}");
    }
}

#[test]
fn boundary_special_chars() {
    let b = "'()+_,-./:=?";
    let ct = format!("multipart/form-data; boundary=\"{b}\"");
    assert_eq!(boundary(&ct).as_deref(), Some(b));
    let body = format!("--{b}\r\n{CD}\r\n\r\nx\r\n--{b}--");
    assert_eq!(parse_with(&body, b).unwrap()[0].data, b"x");
}

#[test]
fn boundary_param_absent_or_invalid() {
    let long = format!("multipart/form-data; boundary={}", "x".repeat(71));
    for ct in [
        "multipart/form-data",
        "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"unterminated",
        "multipart/form-data; boundary=\"trailing \"",
        "multipart/form-data; boundary=a<b",
        "multipart/form-data; boundary=a; boundary=b",
        &long,
    ] {
        assert_eq!(boundary(ct), None, "{ct}");
    }
}

#[test]
fn wrong_content_type() {
    for ct in ["multipart/mixed; boundary=a", "image/jpeg; boundary=a", "text/plain", ""] {
        assert_eq!(boundary(ct), None, "{ct}");
    }
}

#[test]
fn lf_only() {
    let body = b"--b\nContent-Disposition: form-data; name=\"a\"\n\nhello\n--b\n\
                 content-disposition: form-data; name=c\n\n\n--b--\n";
    let parts = ok(body);
    assert_eq!((parts[0].data, parts[1].data), (&b"hello"[..], &b""[..]));
}

#[test]
fn preamble_epilogue_and_padding() {
    let body = format!("pre --b\r\n--b not\r\n--b \t\r\n{CD}\r\n\r\n1\r\n--b--x\r\n--b\r\n");
    let parts = ok(&body);
    assert_eq!((parts.len(), parts[0].data), (1, &b"1"[..]));
}

#[test]
fn binary_data_with_dashes_crlf_and_partial_boundaries() {
    let data: &[u8] = b"--\r\n--\n--boundar\r\n--boundaryX\r\n x--boundary\r\n\r\r\n\0\xff--";
    let mut body = format!("--boundary\r\n{CD}; filename=\"a.bin\"\r\n\r\n").into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--boundary--\r\n");
    assert_eq!(parse_with(&body, "boundary").unwrap()[0].data, data);
}

#[test]
fn empty_file_and_missing_data_section() {
    let body = format!(
        "--b\r\n{CD}; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n\
         --b\r\n{CD}\r\n\r\n--b--"
    );
    let parts = ok(&body);
    let octet = Some("application/octet-stream");
    assert_eq!(fields(&parts[0]), ("a", Some(""), octet, &b""[..]));
    assert_eq!(fields(&parts[1]), ("a", None, None, &b""[..]));
}

#[test]
fn quoted_params_escapes_and_header_case() {
    let headers = "X-Other: y\r\ncOnTeNt-DiSpOsItIoN:FORM-DATA;NAME=\"a\\\"b\\\\c\";\
                   filename*=UTF-8''x.jpg; filename=\"C d.jpg\"\r\nCONTENT-TYPE:  image/png ";
    let body = one(headers, "x");
    let want = ("a\"b\\c", Some("C d.jpg"), Some("image/png"), &b"x"[..]);
    assert_eq!(fields(&ok(&body)[0]), want);
}

#[test]
fn missing_boundary() {
    let body = one(CD, "x");
    for b in ["", &"b".repeat(71), "b\r\n"] {
        assert_eq!(parse_with(&body, b).unwrap_err(), E::MissingBoundary);
    }
}

#[test]
fn no_parts() {
    assert_eq!(err(""), E::NoParts);
    assert_eq!(err(one(CD, "x").replace("--b", "--other")), E::NoParts);
    assert_eq!(err("--b--\r\n"), E::NoParts);
}

#[test]
fn never_closed() {
    let body = one(CD, "x");
    for cut in ["\r\n--b--", "--b--", "-", "\r\n\r\nx\r\n--b--"] {
        assert_eq!(err(body.strip_suffix(cut).unwrap()), E::Unterminated, "{cut:?}");
    }
    let unclosed = format!("--b\r\n{CD}\r\n\r\nx\r\n--b\r\n");
    assert_eq!(err(unclosed), E::Unterminated);
}

#[test]
fn no_name() {
    for headers in [
        "",
        "Content-Type: text/plain",
        "Content-Disposition: form-data",
        "Content-Disposition: form-data; name=\"\"",
        "Content-Disposition: form-data; filename=a",
    ] {
        assert_eq!(err(one(headers, "x")), E::MissingName, "{headers:?}");
    }
}

#[test]
fn malformed_headers() {
    for headers in [
        "no colon here",
        "Content-Disposition: form-data;\r\n name=a",
        "Bad Name: x\r\nContent-Disposition: form-data; name=a",
        "Content-Disposition: attachment; name=a",
        "Content-Disposition: form-data; name=\"a",
        "Content-Disposition: form-data; name=\"a\"x",
        "Content-Disposition: form-data; name=a; name=b",
        "Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b",
        "Content-Disposition: form-data; name=a\r\nContent-Type: a\rb",
    ] {
        assert_eq!(err(one(headers, "x")), E::MalformedHeaders, "{headers:?}");
    }
}

#[test]
fn too_many_parts() {
    let parts = |n| format!("{}--b--", format!("--b\r\n{CD}\r\n\r\nx\r\n").repeat(n));
    assert_eq!(err(parts(9)), E::TooManyParts { limit: 8 });
    assert_eq!(ok(&parts(8)).len(), 8);
}

#[test]
fn oversized_text_field_but_not_file() {
    let big = "x".repeat(65);
    let (name, limit) = ("a".to_owned(), 64);
    assert_eq!(err(one(CD, &big)), E::FieldTooLarge { name, limit });
    let file = one(&format!("{CD}; filename=f"), &big);
    assert_eq!(ok(&file)[0].data.len(), 65);
    assert_eq!(ok(&one(CD, &big[1..]))[0].data.len(), 64);
}

#[test]
fn header_block_too_large() {
    let filler = |n| one(&format!("X-Filler: {}\r\n{CD}", "y".repeat(n)), "x");
    let limit = MAX_HEADER_BYTES;
    assert_eq!(err(filler(limit)), E::HeadersTooLarge { limit });
    assert_eq!(ok(&filler(limit - 100))[0].data, b"x");
}

#[test]
fn data_borrows_from_body() {
    let body = one(&format!("{CD}; filename=f"), "DATA");
    let p = &ok(&body)[0];
    assert_eq!(p.data.as_ptr(), body[body.len() - 11..].as_ptr());
}
