//! The control token: HMAC-SHA256 of a fixed label keyed with the cluster cookie, in hex.
//! Whoever knows the cookie can compute it; the page gets it only from the address the
//! command line prints (in the URL fragment, which browsers never send to the server).
//! A different label from the transport's challenge, so the token proves nothing there.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What the token signs.
const LABEL: &[u8] = b"paxoskv observer control v1";

/// The header a control request carries the token in.
pub const HEADER: &str = "x-paxoskv-token";

/// The token of a cluster whose cookie is `cookie`.
#[derive(Clone)]
pub struct ControlToken {
    cookie: Vec<u8>,
}

impl std::fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlToken(..)")
    }
}

impl ControlToken {
    pub fn new(cookie: &str) -> Self {
        ControlToken {
            cookie: cookie.as_bytes().to_vec(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.cookie)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(LABEL);
        mac
    }

    /// The token in lowercase hex (64 characters).
    pub fn hex(&self) -> String {
        self.mac()
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `given` (hex, any case) is the token; compared in constant time.
    pub fn verify(&self, given: &str) -> bool {
        let Some(bytes) = from_hex(given.trim()) else {
            return false;
        };
        self.mac().verify_slice(&bytes).is_ok()
    }
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_depends_on_the_cookie_and_verifies_only_itself() {
        let t = ControlToken::new("secret");
        let hex = t.hex();
        assert_eq!(hex.len(), 64);
        assert!(t.verify(&hex));
        assert!(t.verify(&hex.to_uppercase()));
        assert_ne!(ControlToken::new("other").hex(), hex);
        assert!(!t.verify(&ControlToken::new("other").hex()));
        assert!(!t.verify(""));
        assert!(!t.verify(&hex[..62]));
        assert!(!t.verify("zz"));
        assert!(!t.verify("é1"));
    }
}
