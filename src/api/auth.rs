//! API keys: checked in constant time against every configured key, so
//! neither the key's content nor which key matched leaks through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The configured keys, kept only as SHA-256 digests (equal length, so the
/// comparison does not leak the key's length either).
#[derive(Clone, Default)]
pub struct Keys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} configured)", self.digests.len())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Keys {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Keys {
        Keys { digests: keys.into_iter().filter(|k| !k.is_empty()).map(digest).collect() }
    }

    /// True when no key is configured (auth off).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` matches a configured key; true when auth is off.
    pub fn allows(&self, presented: Option<&str>) -> bool {
        if self.digests.is_empty() {
            return true;
        }
        let Some(presented) = presented else { return false };
        let d = digest(presented);
        let mut matched = subtle::Choice::from(0);
        for key in &self.digests {
            matched |= key.ct_eq(&d);
        }
        matched.into()
    }

    /// The digest of `presented` when it is a configured key (never when
    /// auth is off: there is no key to remember).
    pub fn digest_of(&self, presented: &str) -> Option<[u8; 32]> {
        (!self.is_empty() && self.allows(Some(presented))).then(|| digest(presented))
    }

    /// Whether the key with this digest is still configured.
    pub fn holds(&self, key: &[u8; 32]) -> bool {
        let mut matched = subtle::Choice::from(0);
        for k in &self.digests {
            matched |= k.ct_eq(key);
        }
        matched.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_keys_allows_everyone() {
        assert!(Keys::new([]).allows(None));
        assert!(Keys::new([""]).is_empty());
    }

    #[test]
    fn any_configured_key_is_accepted_and_others_refused() {
        let keys = Keys::new(["alpha", "beta"]);
        assert!(keys.allows(Some("beta")));
        assert!(keys.allows(Some("alpha")));
        assert!(!keys.allows(Some("alph")));
        assert!(!keys.allows(Some("")));
        assert!(!keys.allows(None));
    }

    #[test]
    fn debug_does_not_print_keys() {
        assert_eq!(format!("{:?}", Keys::new(["secret"])), "Keys(1 configured)");
    }
}
