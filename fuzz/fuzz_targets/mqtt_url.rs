//! Fuzzes the `--mqtt` URL parser (configuration, not network input, but it
//! handles a password): no panic, and no error message or redacted form
//! ever contains the password part of what was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yolod::publish::url::BrokerUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let secret = "S3cr3tPw";
    let url = text.replacen("PASS", secret, 1);
    match BrokerUrl::parse(&url) {
        Ok(parsed) => {
            let elsewhere = parsed.host.contains(secret) || parsed.user.as_deref().is_some_and(|u| u.contains(secret));
            assert!(elsewhere || !parsed.redacted().contains(secret), "{}", parsed.redacted());
            assert!(parsed.port > 0);
        }
        Err(message) => assert!(!message.contains(secret), "{message}"),
    }
});
