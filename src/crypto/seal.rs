//! AES-256-GCM sealing with a random 96-bit nonce stored before the
//! ciphertext. The associated data binds a blob to its purpose or row, so a
//! ciphertext copied to another row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::random_bytes;

const NONCE_LEN: usize = 12;

/// Seals and opens blobs under one 256-bit key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

/// A blob that does not decrypt: wrong key, wrong associated data, or tampered.
#[derive(Debug, thiserror::Error)]
#[error("decryption failed: wrong key or corrupted data")]
pub struct SealError;

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// Encrypts `plaintext`, returning nonce followed by ciphertext and tag.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let payload = Payload {
            msg: plaintext,
            aad: associated_data,
        };
        // AES-GCM encryption fails only for inputs of more than 64 GiB.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), payload)
            .unwrap_or_default();
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&ciphertext);
        blob
    }

    /// Decrypts a blob made by [`Sealer::seal`] with the same associated data.
    pub fn open(
        &self,
        blob: &[u8],
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if blob.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: associated_data,
        };
        self.cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| SealError)
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips() {
        let sealer = Sealer::new(&[7; 32]);
        let blob = sealer.seal(b"private key", b"kid-1");
        assert_eq!(
            sealer.open(&blob, b"kid-1").unwrap().as_slice(),
            b"private key"
        );
    }

    #[test]
    fn open_rejects_other_associated_data() {
        let sealer = Sealer::new(&[7; 32]);
        let blob = sealer.seal(b"private key", b"kid-1");
        assert!(sealer.open(&blob, b"kid-2").is_err());
    }

    #[test]
    fn open_rejects_other_key() {
        let blob = Sealer::new(&[7; 32]).seal(b"private key", b"");
        assert!(Sealer::new(&[8; 32]).open(&blob, b"").is_err());
    }

    #[test]
    fn open_rejects_tampering_and_short_input() {
        let sealer = Sealer::new(&[7; 32]);
        let mut blob = sealer.seal(b"private key", b"");
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert!(sealer.open(&blob, b"").is_err());
        assert!(sealer.open(&[0; 5], b"").is_err());
    }

    #[test]
    fn ciphertext_hides_plaintext() {
        let blob = Sealer::new(&[7; 32]).seal(b"BEGIN PRIVATE KEY", b"");
        assert!(!blob.windows(5).any(|window| window == b"BEGIN"));
    }
}
