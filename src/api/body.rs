//! A predict request's body, whatever its Content-Type, reduced to an
//! optional image and a list of text fields.

use super::error::{ApiError, echo};
use super::multipart::{self, Limits};

/// The parts of a body that predict cares about.
#[derive(Debug, Default, PartialEq)]
pub struct Body<'a> {
    /// The uploaded image bytes, if any.
    pub image: Option<&'a [u8]>,
    /// Text fields in the order sent.
    pub fields: Vec<(String, String)>,
}

/// File field names accepted for the image: HUB's `image` and the newer `file`.
const IMAGE_FIELDS: [&str; 2] = ["image", "file"];

/// Splits `body` by its Content-Type. A urlencoded or missing Content-Type
/// whose bytes are an image is taken as a raw image: that is what
/// `curl --data-binary @img.jpg` sends without `-H 'Content-Type: image/jpeg'`.
pub fn parse<'a>(content_type: Option<&str>, body: &'a [u8], limits: Limits) -> Result<Body<'a>, ApiError> {
    let mime = content_type.map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match mime.as_deref() {
        _ if body.is_empty() => Ok(Body::default()),
        Some("multipart/form-data") => {
            let ct = content_type.unwrap_or_default();
            let boundary = multipart::boundary(ct).ok_or(multipart::MultipartError::MissingBoundary)?;
            let mut out = Body::default();
            for part in multipart::parse(body, &boundary, limits)? {
                if IMAGE_FIELDS.contains(&part.name.as_str()) {
                    if out.image.is_none() {
                        out.image = Some(part.data);
                    }
                } else if !part.is_file() {
                    let value = std::str::from_utf8(part.data).map_err(|_| ApiError::InvalidField {
                        field: echo(&part.name),
                        value: "(not UTF-8)".into(),
                        valid: "text fields must be UTF-8".into(),
                    })?;
                    out.fields.push((part.name, value.to_string()));
                }
            }
            Ok(out)
        }
        Some("application/x-www-form-urlencoded") | None if looks_like_image(body) => {
            Ok(Body { image: Some(body), fields: vec![] })
        }
        Some("application/x-www-form-urlencoded") => {
            if body.len() > limits.max_field_bytes * limits.max_parts.max(1) {
                return Err(ApiError::InvalidField {
                    field: "body".into(),
                    value: format!("{} bytes", body.len()),
                    valid: "form fields are limited in size".into(),
                });
            }
            Ok(Body { image: None, fields: form_urlencoded::parse(body).into_owned().collect() })
        }
        Some(m) if m.starts_with("image/") || m == "application/octet-stream" => {
            Ok(Body { image: Some(body), fields: vec![] })
        }
        None => Err(ApiError::UnsupportedMediaType("(none)".into())),
        Some(m) => Err(ApiError::UnsupportedMediaType(echo(m))),
    }
}

fn looks_like_image(body: &[u8]) -> bool {
    image::guess_format(body).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_parts: 16, max_field_bytes: 1024 };
    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n....";

    #[test]
    fn multipart_image_and_fields_are_split() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\n320\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n--b--\r\n";
        let out = parse(Some("multipart/form-data; boundary=b"), body, LIMITS).unwrap();
        assert_eq!(out.image, Some(&b"PNGDATA"[..]));
        assert_eq!(out.fields, vec![("size".to_string(), "320".to_string())]);
    }

    #[test]
    fn urlencoded_fields_are_decoded() {
        let out =
            parse(Some("application/x-www-form-urlencoded"), b"url=http%3A%2F%2Fx%2Fa.jpg&conf=0.5", LIMITS).unwrap();
        assert_eq!(out.fields[0], ("url".into(), "http://x/a.jpg".into()));
        assert_eq!(out.image, None);
    }

    #[test]
    fn raw_images_are_taken_by_type_or_by_sniffing() {
        for ct in
            [Some("image/jpeg"), Some("application/octet-stream"), Some("application/x-www-form-urlencoded"), None]
        {
            assert_eq!(parse(ct, PNG_MAGIC, LIMITS).unwrap().image, Some(PNG_MAGIC), "{ct:?}");
        }
    }

    #[test]
    fn other_types_are_415_and_empty_bodies_are_empty() {
        assert_eq!(parse(Some("text/plain"), b"hello", LIMITS).unwrap_err().status(), 415);
        assert_eq!(parse(None, b"hello", LIMITS).unwrap_err().status(), 415);
        assert_eq!(parse(Some("text/plain"), b"", LIMITS).unwrap(), Body::default());
    }

    #[test]
    fn multipart_without_boundary_is_400() {
        assert_eq!(parse(Some("multipart/form-data"), b"--x", LIMITS).unwrap_err().status(), 400);
    }
}
