//! Uploads arrive as `multipart/form-data` (RFC 7578); this parses them strictly and boundedly.

/// Largest header block of one part (header lines, line breaks and the blank line), in bytes.
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Optional whitespace in header values and parameter lists.
const WS: [char; 2] = [' ', '\t'];

/// Bounds applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most parts accepted in one body.
    pub max_parts: usize,
    /// Largest text (non-file) field value, in bytes; file parts are not limited by this.
    pub max_field_bytes: usize,
}

/// One part of a `multipart/form-data` body.
#[derive(Debug)]
pub struct Part<'a> {
    /// The Content-Disposition `name`; never empty.
    pub name: String,
    /// The Content-Disposition `filename`, sent for file uploads (may be empty).
    pub filename: Option<String>,
    /// The part's Content-Type header, if one was sent.
    pub content_type: Option<String>,
    /// The part's content, borrowed from the request body.
    pub data: &'a [u8],
}

impl Part<'_> {
    /// Whether this part is a file upload, i.e. it carries a `filename`.
    #[must_use]
    pub fn is_file(&self) -> bool {
        self.filename.is_some()
    }
}

/// Why a `multipart/form-data` body was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MultipartError {
    /// The boundary is absent, empty, over 70 characters or uses characters RFC 2046 forbids.
    #[error("Content-Type must be multipart/form-data with a boundary of 1-70 characters")]
    MissingBoundary,
    /// No delimiter line for the boundary was found, or the body closes before any part.
    #[error("multipart body has no parts: no `--<boundary>` line matches the Content-Type")]
    NoParts,
    /// The body ends before the closing `--<boundary>--` delimiter line.
    #[error("multipart body lacks the closing `--<boundary>--` line (truncated upload?)")]
    Unterminated,
    /// A part's headers are not `Name: value` lines, or its Content-Disposition is invalid.
    #[error("malformed part headers; need `Content-Disposition: form-data; name=...`")]
    MalformedHeaders,
    /// A part's header block exceeds the size limit.
    #[error("multipart part headers exceed {limit} bytes")]
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A part has no Content-Disposition header, or its `name` is missing or empty.
    #[error("a multipart part has no Content-Disposition name (curl: `-F name=value`)")]
    MissingName,
    /// The body has more parts than allowed.
    #[error("multipart body has more than {limit} parts")]
    TooManyParts {
        /// The most parts accepted.
        limit: usize,
    },
    /// A text (non-file) field is larger than allowed.
    #[error("text field `{name}` is over {limit} bytes; send it as a file: `-F {name}=@file`")]
    FieldTooLarge {
        /// The field's name.
        name: String,
        /// The limit in bytes.
        limit: usize,
    },
}

use MultipartError as E;

/// The boundary parameter of a `multipart/form-data` Content-Type header (case-insensitive type
/// and param name, quoted or bare value, 1-70 chars per RFC 2046), or None.
#[must_use]
pub fn boundary(content_type: &str) -> Option<String> {
    let (ty, params) = split_params(content_type)?;
    if !ty.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let mut found = None;
    for (key, value) in params {
        if key == "boundary" && found.replace(value).is_some() {
            return None; // two boundaries: ambiguous
        }
    }
    found.filter(|b| valid_boundary(b))
}

/// RFC 2046 `boundary`: 1-70 `bchars`, not ending in a space.
fn valid_boundary(b: &str) -> bool {
    (1..=70).contains(&b.len())
        && !b.ends_with(' ')
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

/// Split `body` into parts. Data slices borrow from `body` (no copies of file data).
///
/// # Errors
/// Any [`MultipartError`]: the body is not well-formed or exceeds `limits`.
pub fn parse<'a>(
    body: &'a [u8],
    boundary: &str,
    limits: Limits,
) -> Result<Vec<Part<'a>>, MultipartError> {
    if !valid_boundary(boundary) {
        return Err(E::MissingBoundary);
    }
    let dash = [b"--", boundary.as_bytes()].concat();
    let (_, mut pos, close) = find_delimiter(body, &dash, 0).ok_or(E::NoParts)?;
    if close {
        return Err(E::NoParts);
    }
    let mut parts = Vec::new();
    loop {
        let limit = limits.max_parts;
        if parts.len() >= limit {
            return Err(E::TooManyParts { limit });
        }
        let (mut part, start) = parse_headers(body, pos)?;
        let (line, next, close) = find_delimiter(body, &dash, start).ok_or(E::Unterminated)?;
        // The line break before the delimiter belongs to the delimiter, not to the data.
        let crlf = line >= start + 2 && body[line - 2] == b'\r';
        part.data = &body[start..line.saturating_sub(1 + usize::from(crlf)).max(start)];
        let limit = limits.max_field_bytes;
        if !part.is_file() && part.data.len() > limit {
            return Err(E::FieldTooLarge {
                name: part.name,
                limit,
            });
        }
        parts.push(part);
        if close {
            return Ok(parts); // the epilogue is ignored
        }
        pos = next;
    }
}

/// Finds the first delimiter line starting at line start `p` or later: returns where that line
/// starts, where the line after it starts, and whether it is the close delimiter.
///
/// Linear: `dash` holds no '\n', so each byte is examined by at most one `delimiter_at` call
/// and once by the newline scan.
fn find_delimiter(body: &[u8], dash: &[u8], mut p: usize) -> Option<(usize, usize, bool)> {
    loop {
        if let Some((next, close)) = delimiter_at(body, dash, p) {
            return Some((p, next, close));
        }
        p += find(body.get(p..)?, b'\n')? + 1;
    }
}

/// Whether the line at `p` is `--boundary--` (close) or `--boundary`, padding and a line break.
fn delimiter_at(body: &[u8], dash: &[u8], p: usize) -> Option<(usize, bool)> {
    let rest = body.get(p..)?.strip_prefix(dash)?;
    if rest.starts_with(b"--") {
        return Some((body.len(), true));
    }
    let pad = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let eol = match &rest[pad..] {
        [b'\r', b'\n', ..] => 2,
        [b'\n', ..] => 1,
        _ => return None,
    };
    Some((p + dash.len() + pad + eol, false))
}

/// Parses the header block starting at `start`: returns the part (without data) and the offset
/// just past the blank line that ends the block.
fn parse_headers<'a>(body: &[u8], start: usize) -> Result<(Part<'a>, usize), E> {
    let window = &body[start..body.len().min(start + MAX_HEADER_BYTES)];
    let (mut disposition, mut content_type) = (None, None);
    let mut p = 0;
    loop {
        let Some(n) = find(&window[p..], b'\n') else {
            let limit = MAX_HEADER_BYTES;
            return Err(if start + window.len() < body.len() {
                E::HeadersTooLarge { limit }
            } else {
                E::Unterminated
            });
        };
        let line = &window[p..p + n];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        p += n + 1;
        if line.is_empty() {
            break;
        }
        let colon = find(line, b':').ok_or(E::MalformedHeaders)?;
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        // Folded lines start with whitespace, so their "name" is not a token: rejected.
        if key.is_empty() || !key.iter().all(|&b| is_tchar(b)) || value.contains(&b'\r') {
            return Err(E::MalformedHeaders);
        }
        let slot = if key.eq_ignore_ascii_case(b"content-disposition") {
            &mut disposition
        } else if key.eq_ignore_ascii_case(b"content-type") {
            &mut content_type
        } else {
            continue;
        };
        let value = String::from_utf8_lossy(value).trim_matches(WS).to_owned();
        if slot.replace(value).is_some() {
            return Err(E::MalformedHeaders);
        }
    }
    let disposition = disposition.ok_or(E::MissingName)?;
    let (ty, params) = split_params(&disposition).ok_or(E::MalformedHeaders)?;
    if !ty.eq_ignore_ascii_case("form-data") {
        return Err(E::MalformedHeaders);
    }
    let (mut name, mut filename) = (None, None);
    for (key, value) in params {
        let slot = match key.as_str() {
            "name" => &mut name,
            "filename" => &mut filename,
            _ => continue, // including `filename*`, which RFC 7578 says not to use
        };
        if slot.replace(value).is_some() {
            return Err(E::MalformedHeaders);
        }
    }
    let name = name.filter(|n| !n.is_empty()).ok_or(E::MissingName)?;
    let content_type = content_type.filter(|c| !c.is_empty());
    Ok((
        Part {
            name,
            filename,
            content_type,
            data: &[],
        },
        start + p,
    ))
}

/// Position of the first `byte` in `hay`.
fn find(hay: &[u8], byte: u8) -> Option<usize> {
    hay.iter().position(|&b| b == byte)
}

/// RFC 9110 token character.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Splits `type; key=value; key="quoted \" value"` into the type and its parameters
/// (keys lowercased), or None if the syntax is invalid.
fn split_params(s: &str) -> Option<(&str, Vec<(String, String)>)> {
    let (ty, mut rest) = s.split_at(s.find(';').unwrap_or(s.len()));
    let ty = ty.trim_matches(WS);
    if ty.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(WS);
        if rest.is_empty() {
            return Some((ty, params));
        }
        rest = rest.strip_prefix(';')?.trim_start_matches(WS);
        if rest.is_empty() {
            return Some((ty, params)); // tolerate a trailing ';'
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim_end_matches(WS);
        if key.is_empty() || !key.bytes().all(is_tchar) {
            return None;
        }
        rest = rest[eq + 1..].trim_start_matches(WS);
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            loop {
                match chars.next()? {
                    (_, '\\') => value.push(chars.next()?.1),
                    (i, '"') => {
                        rest = &quoted[i + 1..];
                        break value;
                    }
                    (_, c) => value.push(c),
                }
            }
        } else {
            let (value, tail) =
                rest.split_at(rest.find([';', ' ', '\t', '"']).unwrap_or(rest.len()));
            rest = tail;
            value.to_owned()
        };
        params.push((key.to_ascii_lowercase(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CD: &str = "Content-Disposition: form-data; name=a";

    fn parse_with<'a>(body: &'a (impl AsRef<[u8]> + ?Sized), b: &str) -> Result<Vec<Part<'a>>, E> {
        parse(
            body.as_ref(),
            b,
            Limits {
                max_parts: 8,
                max_field_bytes: 64,
            },
        )
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
            (
                "multipart/form-data; charset=x; Boundary=\"x y\"",
                Some("x y"),
            ),
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
        for ct in [
            "multipart/mixed; boundary=a",
            "image/jpeg; boundary=a",
            "text/plain",
            "",
        ] {
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
            assert_eq!(
                err(body.strip_suffix(cut).unwrap()),
                E::Unterminated,
                "{cut:?}"
            );
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
}
