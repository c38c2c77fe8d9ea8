//! Tessera's own signing and encryption keys (see `crate::keys`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// The instants that decide a key's state; see `crate::keys::lifecycle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyTimes {
    /// Published in the JWKS from this instant.
    pub created_at: DateTime<Utc>,
    /// Becomes `current` at this instant.
    pub activates_at: DateTime<Utc>,
    /// Stops being `current`; `None` until a successor is scheduled.
    pub retires_at: Option<DateTime<Utc>>,
    /// Leaves the JWKS; `None` while `retires_at` is `None`.
    pub removes_at: Option<DateTime<Utc>>,
    /// Revoked: out of the JWKS at once, verifies nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One key as stored: the public JWK in clear, the private JWK sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    /// JWS or JWE algorithm name, e.g. `ES256` or `ECDH-ES+A256KW`.
    pub alg: String,
    /// `sig` or `enc`, as in the JWK `use` member.
    pub key_use: String,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// The private JWK sealed with the data key for sealing, the kid being
    /// the associated data.
    pub sealed_private_key: Vec<u8>,
    pub times: KeyTimes,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("key_use", &self.key_use)
            .field("times", &self.times)
            .finish_non_exhaustive()
    }
}

/// Changes to the key table written in one transaction, so a rotation's
/// new key and its predecessor's retirement land together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyChanges {
    pub inserted: Vec<StoredKey>,
    /// New times for existing keys, by kid; `created_at` is not updated.
    pub updated: Vec<(String, KeyTimes)>,
    /// Kids of keys to delete, once they have left the JWKS.
    pub deleted: Vec<String>,
}

impl KeyChanges {
    pub fn is_empty(&self) -> bool {
        self.inserted.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

#[async_trait]
pub trait KeyStore {
    /// Returns every stored key, oldest first (by `created_at`, then kid).
    async fn jose_keys(&self) -> Result<Vec<StoredKey>, StoreError>;

    /// Applies `changes` in one transaction. Fails, changing nothing, when an
    /// inserted kid exists or an updated kid does not.
    async fn apply_key_changes(&self, changes: &KeyChanges) -> Result<(), StoreError>;
}
