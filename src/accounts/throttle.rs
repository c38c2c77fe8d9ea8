//! In-memory failure counts for login throttling, per account name and per
//! client address. They are kept per instance, like every rate limit, so N
//! instances allow N times the configured rate. The lockout of an existing
//! account is kept in the store instead (see `UserStore`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::LoginPolicy;

/// Keys tracked at most; beyond this, expired entries are dropped, and if
/// that is not enough the map is cleared rather than grown.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last_failure: DateTime<Utc>,
}

/// Failure counts that expire `window` after the last failure.
pub struct FailureThrottle {
    entries: Mutex<HashMap<String, Entry>>,
    window: chrono::Duration,
    base_delay: Duration,
    max_delay: Duration,
}

impl FailureThrottle {
    pub fn new(policy: &LoginPolicy) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            window: policy.failure_window.as_chrono(),
            base_delay: policy.base_delay.as_duration(),
            max_delay: policy.max_delay.as_duration(),
        }
    }

    /// Returns the failures counted for `key` within the window.
    pub fn failures(&self, key: &str, now: DateTime<Utc>) -> u32 {
        let entries = self.lock();
        match entries.get(key) {
            Some(entry) if now - entry.last_failure < self.window => entry.failures,
            _ => 0,
        }
    }

    /// Counts a failure for `key` and returns the new count.
    pub fn record_failure(&self, key: &str, now: DateTime<Utc>) -> u32 {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            let window = self.window;
            entries.retain(|_, entry| now - entry.last_failure < window);
            if entries.len() >= MAX_ENTRIES {
                tracing::warn!(
                    entries = entries.len(),
                    "login throttle table full; clearing it"
                );
                entries.clear();
            }
        }
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            last_failure: now,
        });
        if now - entry.last_failure >= self.window {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        entry.failures
    }

    /// Forgets the failures of `key`, after a successful login.
    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Returns when the window of `key` ends, if it has failures.
    pub fn window_end(&self, key: &str) -> Option<DateTime<Utc>> {
        self.lock()
            .get(key)
            .map(|entry| entry.last_failure + self.window)
    }

    /// Returns the wait before the next attempt after `failures` failures:
    /// none after the first, then `base_delay` doubling per failure up to
    /// `max_delay`.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures < 2 {
            return Duration::ZERO;
        }
        let doublings = (failures - 2).min(16);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn throttle() -> FailureThrottle {
        FailureThrottle::new(&LoginPolicy {
            failure_window: HumanDuration::from_secs(60),
            base_delay: HumanDuration::from_millis(100),
            max_delay: HumanDuration::from_millis(700),
            ..LoginPolicy::default()
        })
    }

    #[test]
    fn delay_doubles_up_to_maximum() {
        let throttle = throttle();
        let millis: Vec<u128> = (0..7).map(|n| throttle.delay(n).as_millis()).collect();
        assert_eq!(millis, [0, 0, 100, 200, 400, 700, 700]);
        assert_eq!(throttle.delay(u32::MAX).as_millis(), 700);
    }

    #[test]
    fn failures_expire_after_window() {
        let throttle = throttle();
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(throttle.record_failure("ip:1", start), 1);
        assert_eq!(throttle.record_failure("ip:1", start), 2);
        assert_eq!(throttle.failures("ip:1", start), 2);
        assert_eq!(throttle.failures("ip:2", start), 0);
        let later = start + chrono::Duration::seconds(61);
        assert_eq!(throttle.failures("ip:1", later), 0);
        assert_eq!(throttle.record_failure("ip:1", later), 1);
        throttle.clear("ip:1");
        assert_eq!(throttle.failures("ip:1", later), 0);
    }
}
