//! HMAC-SHA-256 digests of high-entropy bearer secrets (codes, refresh
//! tokens, client secrets, session ids). Such secrets cannot be guessed, so
//! a keyed fast hash protects a leaked table without a password hash's cost.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Computes and checks digests under the data key for digests.
#[derive(Clone)]
pub struct Digester {
    key: Zeroizing<[u8; 32]>,
}

impl Digester {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: Zeroizing::new(*key),
        }
    }

    /// Returns the digest of `secret` as unpadded base64url (43 characters),
    /// the form stored and looked up in the database.
    pub fn digest(&self, secret: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(secret.as_bytes()))
    }

    /// Checks `secret` against a stored digest in constant time.
    pub fn verify(&self, secret: &str, stored: &str) -> bool {
        let Ok(stored) = URL_SAFE_NO_PAD.decode(stored) else {
            return false;
        };
        self.mac(secret.as_bytes()).ct_eq(stored.as_slice()).into()
    }

    fn mac(&self, message: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this never fails.
        let mut mac = match HmacSha256::new_from_slice(self.key.as_slice()) {
            Ok(mac) => mac,
            Err(_) => return [0; 32],
        };
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for Digester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digester(<key redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_verifies_its_secret_only() {
        let digester = Digester::new(&[1; 32]);
        let stored = digester.digest("secret-a");
        assert!(digester.verify("secret-a", &stored));
        assert!(!digester.verify("secret-b", &stored));
        assert!(!digester.verify("secret-a", "not base64 !"));
    }

    #[test]
    fn digest_depends_on_key() {
        let a = Digester::new(&[1; 32]).digest("secret");
        let b = Digester::new(&[2; 32]).digest("secret");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}
