use super::*;

#[test]
fn the_page_and_its_files_stay_under_100_kb_and_load_nothing_from_elsewhere() {
    let total = INDEX_HTML.len() + APP_JS.len() + STYLE_CSS.len();
    assert!(total < 100 * 1024, "the page is {total} bytes");
    for (name, text) in [("index.html", INDEX_HTML), ("app.js", APP_JS), ("style.css", STYLE_CSS)] {
        for outside in ["http://", "https://", "//cdn", "@import"] {
            assert!(!text.contains(outside), "{name} names {outside}");
        }
    }
    // Every slot the template has is filled by page().
    for slot in ["<!--refresh-->", "{{auth}}", "{{version}}", "{{signout}}", "{{main}}"] {
        assert!(INDEX_HTML.contains(slot), "{slot}");
    }
}

#[test]
fn escape_makes_text_inert_in_content_and_attributes() {
    assert_eq!(escape(r#"<img src=x onerror="a('b')">&"#), "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;");
    assert_eq!(escape("front-door"), "front-door");
}

#[test]
fn a_signed_out_page_is_only_the_sign_in_form() {
    let response = page(401, &login_form(Some("That key is not accepted.")), false, false);
    assert_eq!(response.status, 401);
    let crate::api::http::Body::Full(body) = response.body else { panic!("streamed") };
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains(r#"action="/ui/login""#));
    assert!(html.contains("That key is not accepted."));
    for private in ["stream.mjpeg", "try-form", "Models", "Health", "Sign out", "http-equiv"] {
        assert!(!html.contains(private), "{private}");
    }
    let csp = response.headers.iter().find(|(k, _)| k == "Content-Security-Policy").unwrap();
    assert!(csp.1.contains("script-src 'self'"));
}
