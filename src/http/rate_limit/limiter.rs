//! One keyed rate limit (GCRA, from `governor`) over a table of keys with a
//! fixed maximum size.
//!
//! governor drops a key only when `retain_recent` runs, so the caller
//! sweeps every few seconds. While the table is full, a key not in it is
//! judged as if it were new and is not stored: its requests pass, and the
//! keys already tracked keep their limits. Filling the table takes as many
//! distinct clients or addresses as `rate_limits.max_keys`, each active
//! within its bucket's refill time; refusing every new key then would let
//! such a flood lock out every newcomer.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimit;

/// A rate limit per key.
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, BoundedStore<K>, MonotonicClock>,
    clock: MonotonicClock,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// Builds the limiter, or `None` when `limit` is off.
    pub fn new(limit: RateLimit, max_keys: usize) -> Option<Self> {
        if limit.is_off() {
            return None;
        }
        let period = Duration::from_secs_f64(1.0 / limit.per_second);
        let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(limit.burst)?);
        let store = BoundedStore {
            keys: DashMapStateStore::default(),
            max_keys,
            full: AtomicBool::new(false),
        };
        Some(Self {
            limiter: RateLimiter::new(quota, store, MonotonicClock),
            clock: MonotonicClock,
        })
    }

    /// Counts one request for `key`. Over the limit, returns how long until
    /// the next request of `key` would pass.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops the keys whose bucket has refilled, which count as new anyway.
    /// Returns the number of keys left.
    pub fn retain_recent(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.limiter.len()
    }
}

/// governor's DashMap store with at most `max_keys` keys.
struct BoundedStore<K: Hash + Eq + Clone> {
    keys: DashMapStateStore<K>,
    max_keys: usize,
    /// Set once the table was found full, so that is logged once per episode.
    full: AtomicBool,
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if self.keys.len() >= self.max_keys && !self.keys.contains_key(key) {
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_keys = self.max_keys,
                    "rate limit table full; new keys pass unlimited until it is swept"
                );
            }
            return f(None).map(|(outcome, _)| outcome);
        }
        self.keys.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.keys, drop_below);
        if self.keys.len() < self.max_keys {
            self.full.store(false, Ordering::Relaxed);
        }
    }

    fn shrink_to_fit(&self) {
        self.keys.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns a limit that refills one request a day, so no test meets a
    /// refill.
    fn daily(burst: u32, max_keys: usize) -> KeyedLimiter<&'static str> {
        KeyedLimiter::new(RateLimit::new(1.0 / 86_400.0, burst), max_keys).unwrap()
    }

    #[test]
    fn burst_then_rejected_with_wait() {
        let limiter = daily(3, 10);
        for _ in 0..3 {
            assert!(limiter.check(&"a").is_ok());
        }
        let wait = limiter.check(&"a").unwrap_err();
        assert!(wait > Duration::from_secs(86_000), "{wait:?}");
    }

    #[test]
    fn keys_have_separate_budgets() {
        let limiter = daily(1, 10);
        assert!(limiter.check(&"a").is_ok());
        assert!(limiter.check(&"a").is_err());
        assert!(limiter.check(&"b").is_ok());
    }

    #[test]
    fn off_limit_builds_nothing() {
        assert!(KeyedLimiter::<&str>::new(RateLimit::new(0.0, 5), 10).is_none());
    }

    #[test]
    fn full_table_stores_no_new_key() {
        let limiter = daily(1, 2);
        assert!(limiter.check(&"a").is_ok());
        assert!(limiter.check(&"b").is_ok());
        // "c" is not stored, so each of its requests is judged as a first.
        assert!(limiter.check(&"c").is_ok());
        assert!(limiter.check(&"c").is_ok());
        assert!(limiter.check(&"a").is_err());
        assert!(limiter.check(&"b").is_err());
        assert_eq!(limiter.retain_recent(), 2);
    }

    #[test]
    fn refilled_keys_are_swept() {
        let limiter = KeyedLimiter::new(RateLimit::new(1_000.0, 1), 10).unwrap();
        assert!(limiter.check(&"a").is_ok());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(limiter.retain_recent(), 0);
    }
}
