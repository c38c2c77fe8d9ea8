//! Encrypters for access-token recipients' keys, built once per key and
//! reused by every token request, because building one costs about as much
//! as encrypting or more (see `mint_cost` in `tokens::access`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use josekit::jwk::Jwk;
use serde_json::{Map, Value};

use crate::tokens::jwe::{JweError, Recipient};

/// Most keys kept; the cache starts over when it is full, which only costs
/// rebuilding the encrypters in use.
const MAX_ENTRIES: usize = 1024;

/// Encrypters by the JSON text of their public JWK, so a changed key (a
/// new `kid` at a `jwks_uri`, say) gets its own entry.
#[derive(Debug, Default)]
pub struct RecipientCache {
    entries: Mutex<HashMap<String, Arc<Recipient>>>,
}

impl RecipientCache {
    /// Returns the encrypter for the JWK `members`, building it on a miss.
    pub fn recipient(&self, members: Map<String, Value>) -> Result<Arc<Recipient>, JweError> {
        let text = Value::Object(members.clone()).to_string();
        if let Some(found) = self.lock().get(&text) {
            return Ok(Arc::clone(found));
        }
        let jwk = Jwk::from_map(members).map_err(|_| JweError::UnsupportedKey)?;
        let recipient = Arc::new(Recipient::new(&jwk)?);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(text, Arc::clone(&recipient));
        Ok(recipient)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Recipient>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};

    use super::*;

    fn members(jwk: &Jwk) -> Map<String, Value> {
        jwk.as_ref().clone()
    }

    #[test]
    fn same_key_reuses_encrypter() {
        let cache = RecipientCache::default();
        let key = EcKeyPair::generate(EcCurve::P256)
            .unwrap()
            .to_jwk_public_key();
        let first = cache.recipient(members(&key)).unwrap();
        let second = cache.recipient(members(&key)).unwrap();
        assert!(Arc::ptr_eq(&first, &second));

        let other = EcKeyPair::generate(EcCurve::P256)
            .unwrap()
            .to_jwk_public_key();
        let third = cache.recipient(members(&other)).unwrap();
        assert!(!Arc::ptr_eq(&first, &third));
    }

    #[test]
    fn unusable_key_is_an_error() {
        let cache = RecipientCache::default();
        let mut symmetric = Map::new();
        symmetric.insert("kty".into(), Value::from("oct"));
        symmetric.insert("k".into(), Value::from("AAAA"));
        assert!(cache.recipient(symmetric).is_err());
    }
}
