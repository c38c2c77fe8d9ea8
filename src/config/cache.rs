//! Bounds of the in-memory caches of clients and resource servers.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The maximum sizes of the client and resource caches (`cache.*`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// The largest number of clients cached. Past it, the entry loaded
    /// longest ago is dropped.
    pub max_clients: usize,
    /// The largest number of resource servers cached, in the same way.
    pub max_resources: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_clients: 100_000,
            max_resources: 10_000,
        }
    }
}

impl CacheSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("cache.max_clients", self.max_clients),
            ("cache.max_resources", self.max_resources),
        ] {
            if value == 0 {
                return Err(ConfigError::value(key, value, "use at least 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_env as load;

    #[test]
    fn environment_sets_one_bound() {
        let config = load(&[("TESSERA_CACHE__MAX_CLIENTS", "500")]).unwrap();
        assert_eq!(config.cache.max_clients, 500);
        assert_eq!(config.cache.max_resources, 10_000);
    }

    #[test]
    fn zero_bound_is_rejected() {
        for key in ["MAX_CLIENTS", "MAX_RESOURCES"] {
            let message = load(&[(&format!("TESSERA_CACHE__{key}"), "0")]).unwrap_err();
            let setting = format!("cache.{}", key.to_lowercase());
            assert!(message.contains(&setting), "{message}");
        }
    }
}
