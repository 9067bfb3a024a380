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
        && b.bytes().all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

/// Split `body` into parts. Data slices borrow from `body` (no copies of file data).
///
/// # Errors
/// Any [`MultipartError`]: the body is not well-formed or exceeds `limits`.
pub fn parse<'a>(body: &'a [u8], boundary: &str, limits: Limits) -> Result<Vec<Part<'a>>, MultipartError> {
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
            return Err(E::FieldTooLarge { name: part.name, limit });
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
    let pad = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
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
            return Err(if start + window.len() < body.len() { E::HeadersTooLarge { limit } } else { E::Unterminated });
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
    Ok((Part { name, filename, content_type, data: &[] }, start + p))
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
            let (value, tail) = rest.split_at(rest.find([';', ' ', '\t', '"']).unwrap_or(rest.len()));
            rest = tail;
            value.to_owned()
        };
        params.push((key.to_ascii_lowercase(), value));
    }
}

#[cfg(test)]
mod tests;
