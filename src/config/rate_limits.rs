//! `[rate_limits]`: one rate and burst per class of request. The limits
//! themselves live in `crate::http::rate_limit`.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The slowest accepted rate: one request a day.
const MIN_PER_SECOND: f64 = 1.0 / 86_400.0;

/// The fastest accepted rate; governor counts time in nanoseconds.
const MAX_PER_SECOND: f64 = 1_000_000.0;

/// The rate limit of each class of request, kept per instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Keys (clients or addresses) tracked per class; see `RateLimits`.
    pub max_keys: usize,
    /// `POST /token`, per authenticated client.
    pub token: RateLimit,
    /// `POST /introspect`, per authenticated client or resource server.
    pub introspect: RateLimit,
    /// `POST /revoke`, per authenticated client.
    pub revoke: RateLimit,
    /// Failed client authentications at those three endpoints, per address.
    pub failed_client_auth: RateLimit,
    /// `POST /login`, per address.
    pub login: RateLimit,
    /// `/register` and `/register/{client_id}`, per address.
    pub register: RateLimit,
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second; 0 turns the limit off.
    pub per_second: f64,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

impl RateLimit {
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    pub fn is_off(&self) -> bool {
        self.per_second == 0.0
    }

    fn validate(&self, class: &str) -> Result<(), ConfigError> {
        let rate = self.per_second;
        let in_range = (MIN_PER_SECOND..=MAX_PER_SECOND).contains(&rate);
        if !(rate == 0.0 || in_range) {
            return Err(ConfigError::value(
                &format!("rate_limits.{class}.per_second"),
                rate,
                "use 0 (no limit) or a rate from 0.0000116 (one a day) to 1000000",
            ));
        }
        if self.burst == 0 {
            return Err(ConfigError::value(
                &format!("rate_limits.{class}.burst"),
                self.burst,
                "use at least 1",
            ));
        }
        Ok(())
    }
}

impl Default for RateLimitSettings {
    // Each default is well above what one well-behaved client or address
    // sends, so only runaway loops and floods meet it.
    fn default() -> Self {
        Self {
            max_keys: 100_000,
            token: RateLimit::new(100.0, 500),
            introspect: RateLimit::new(500.0, 1_000),
            revoke: RateLimit::new(50.0, 100),
            failed_client_auth: RateLimit::new(5.0, 20),
            login: RateLimit::new(10.0, 50),
            register: RateLimit::new(1.0, 10),
        }
    }
}

impl RateLimitSettings {
    /// Returns each class with its name.
    pub fn classes(&self) -> [(&'static str, RateLimit); 6] {
        [
            ("token", self.token),
            ("introspect", self.introspect),
            ("revoke", self.revoke),
            ("failed_client_auth", self.failed_client_auth),
            ("login", self.login),
            ("register", self.register),
        ]
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_keys == 0 {
            return Err(ConfigError::value(
                "rate_limits.max_keys",
                self.max_keys,
                "use at least 1",
            ));
        }
        for (class, limit) in self.classes() {
            limit.validate(class)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_env as load;
    use crate::config::Config;

    #[test]
    fn partial_class_keeps_other_default() {
        let config = load(&[("TESSERA_RATE_LIMITS__TOKEN__PER_SECOND", "0")]).unwrap();
        assert!(config.rate_limits.token.is_off());
        assert_eq!(config.rate_limits.token.burst, 500);
        assert!(!config.rate_limits.login.is_off());
    }

    #[test]
    fn file_sets_a_class_partly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "[rate_limits.login]\nburst = 3\n").unwrap();
        let (config, ignored) = Config::load_from(Some(&path), []).unwrap();
        assert!(ignored.is_empty());
        assert_eq!(config.rate_limits.login.burst, 3);
        assert_eq!(config.rate_limits.login.per_second, 10.0);
        std::fs::write(&path, "[rate_limits.login]\nburst_size = 3\n").unwrap();
        let error = Config::load_from(Some(&path), []).unwrap_err();
        assert!(error.to_string().contains("burst_size"), "{error}");
    }

    #[test]
    fn rates_and_bursts_are_checked() {
        for rate in ["-1", "nan", "inf", "1e7", "0.000001"] {
            let message = load(&[("TESSERA_RATE_LIMITS__REGISTER__PER_SECOND", rate)]).unwrap_err();
            assert!(
                message.contains("rate_limits.register.per_second"),
                "{rate}: {message}"
            );
        }
        let config = load(&[("TESSERA_RATE_LIMITS__REGISTER__PER_SECOND", "0.5")]).unwrap();
        assert_eq!(config.rate_limits.register.per_second, 0.5);
        let message = load(&[("TESSERA_RATE_LIMITS__LOGIN__BURST", "0")]).unwrap_err();
        assert!(message.contains("rate_limits.login.burst"), "{message}");
        let message = load(&[("TESSERA_RATE_LIMITS__MAX_KEYS", "0")]).unwrap_err();
        assert!(message.contains("rate_limits.max_keys"), "{message}");
    }
}
