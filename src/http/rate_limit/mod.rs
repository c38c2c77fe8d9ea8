//! Request rate limits, one token bucket per class and key (`rate_limits.*`).
//!
//! They are kept in memory per instance, so N instances allow N times the
//! configured rates. The classes and their keys:
//!
//! - `/token`, `/introspect` and `/revoke` count a request against its
//!   caller once client authentication has succeeded: the client, or the
//!   resource server at `/introspect`. A public client proves nothing by
//!   its id, so its requests count against the pair of id and address.
//! - A failed client authentication at those endpoints counts against the
//!   sender's address (`failed_client_auth`) and never against the client
//!   it named. A flood of wrong secrets for a victim's `client_id` thus
//!   spends the sender's budget, and the victim's requests still pass.
//! - `POST /login`, `/register` and `/register/{client_id}` count against
//!   the address, before any other work.
//!
//! Addresses come from [`crate::http::client_ip`]. An IPv6 address counts
//! by its /64 prefix, the block one host or site usually gets, so a client
//! cannot multiply its budget by changing the low bits.
//!
//! Over the limit, a request gets 429 with `Retry-After` in whole seconds
//! (at least 1). On the OAuth endpoints the body is the RFC 6749 JSON error
//! `temporarily_unavailable`.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{RateLimit, RateLimitSettings};
use crate::http::error::OAuthError;
use crate::store::{AuthMethod, Client};

mod limiter;

use limiter::KeyedLimiter;

/// How often keys whose bucket has refilled are dropped.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// An endpoint limited per authenticated caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Introspect,
    Revoke,
}

/// Whose budget an authenticated request spends.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum CallerKey {
    /// A confidential client, by `client_id`.
    Client(String),
    /// A public client, by `client_id` and the sender's address key.
    PublicClient(String, IpAddr),
    /// A resource server at `/introspect`, by its identifier.
    ResourceServer(String),
}

impl CallerKey {
    /// Returns the key of `client`, whose request came from `ip`.
    pub fn client(client: &Client, ip: IpAddr) -> Self {
        if client.auth_method == AuthMethod::None {
            Self::PublicClient(client.client_id.clone(), address_key(ip))
        } else {
            Self::Client(client.client_id.clone())
        }
    }
}

/// A request over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    /// Whole seconds until a request would pass, at least 1.
    pub retry_after: u64,
}

impl RateLimited {
    fn after(wait: Duration) -> Self {
        let mut seconds = wait.as_secs();
        if wait.subsec_nanos() > 0 {
            seconds += 1;
        }
        Self {
            retry_after: seconds.max(1),
        }
    }
}

impl From<RateLimited> for OAuthError {
    fn from(limited: RateLimited) -> Self {
        OAuthError::too_many_requests(limited.retry_after)
    }
}

/// One class: its limiter (none when the class is off) and the requests it
/// rejected since the last sweep.
struct Class<K: std::hash::Hash + Eq + Clone> {
    name: &'static str,
    limiter: Option<KeyedLimiter<K>>,
    rejected: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone> Class<K> {
    fn new(name: &'static str, limit: RateLimit, max_keys: usize) -> Self {
        Self {
            name,
            limiter: KeyedLimiter::new(limit, max_keys),
            rejected: AtomicU64::new(0),
        }
    }

    fn check(&self, key: &K) -> Result<(), RateLimited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check(key).map_err(|wait| {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            RateLimited::after(wait)
        })
    }

    /// Sweeps the table and logs how many requests were rejected since the
    /// last sweep, so a flood costs one log line per interval.
    fn sweep(&self) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        let keys = limiter.retain_recent();
        let rejected = self.rejected.swap(0, Ordering::Relaxed);
        if rejected > 0 {
            tracing::warn!(
                class = self.name,
                rejected,
                keys,
                "requests rejected by a rate limit"
            );
        }
    }
}

/// Every rate limit of one instance.
pub struct RateLimits {
    token: Class<CallerKey>,
    introspect: Class<CallerKey>,
    revoke: Class<CallerKey>,
    failed_client_auth: Class<IpAddr>,
    login: Class<IpAddr>,
    register: Class<IpAddr>,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let max_keys = settings.max_keys;
        Self {
            token: Class::new("token", settings.token, max_keys),
            introspect: Class::new("introspect", settings.introspect, max_keys),
            revoke: Class::new("revoke", settings.revoke, max_keys),
            failed_client_auth: Class::new(
                "failed_client_auth",
                settings.failed_client_auth,
                max_keys,
            ),
            login: Class::new("login", settings.login, max_keys),
            register: Class::new("register", settings.register, max_keys),
        }
    }

    /// Counts the authentication outcome of a request to `endpoint` from
    /// `ip`: success against the caller that `caller` names, a rejected
    /// authentication (any 4xx) against the address. A server error counts
    /// nowhere. Returns the outcome, or 429 when the budget is spent.
    pub fn admit<T>(
        &self,
        endpoint: Endpoint,
        ip: IpAddr,
        outcome: Result<T, OAuthError>,
        caller: impl FnOnce(&T) -> CallerKey,
    ) -> Result<T, OAuthError> {
        match outcome {
            Ok(authenticated) => {
                let class = match endpoint {
                    Endpoint::Token => &self.token,
                    Endpoint::Introspect => &self.introspect,
                    Endpoint::Revoke => &self.revoke,
                };
                class.check(&caller(&authenticated))?;
                Ok(authenticated)
            }
            Err(error) if error.status.is_client_error() => {
                self.failed_client_auth.check(&address_key(ip))?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// Counts a `POST /login` from `ip`.
    pub fn check_login(&self, ip: IpAddr) -> Result<(), RateLimited> {
        self.login.check(&address_key(ip))
    }

    /// Counts a `/register` request from `ip`.
    pub fn check_register(&self, ip: IpAddr) -> Result<(), RateLimited> {
        self.register.check(&address_key(ip))
    }

    /// Sweeps every table each [`SWEEP_INTERVAL`], until the task is aborted.
    pub async fn sweep_forever(self: Arc<Self>) {
        let mut interval = tokio::time::interval(SWEEP_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.token.sweep();
            self.introspect.sweep();
            self.revoke.sweep();
            self.failed_client_auth.sweep();
            self.login.sweep();
            self.register.sweep();
        }
    }
}

/// Returns the key an address counts under: an IPv4 address itself, an
/// IPv6 address its /64 prefix.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ErrorCode;

    fn settings(burst: u32) -> RateLimitSettings {
        let daily = RateLimit::new(1.0 / 86_400.0, burst);
        RateLimitSettings {
            max_keys: 100,
            token: daily,
            introspect: daily,
            revoke: daily,
            failed_client_auth: daily,
            login: daily,
            register: daily,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn caller(id: &str) -> impl FnOnce(&&str) -> CallerKey + '_ {
        move |_| CallerKey::Client(id.to_owned())
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(RateLimited::after(Duration::ZERO).retry_after, 1);
        assert_eq!(RateLimited::after(Duration::from_millis(10)).retry_after, 1);
        assert_eq!(
            RateLimited::after(Duration::from_millis(1_001)).retry_after,
            2
        );
        assert_eq!(RateLimited::after(Duration::from_secs(3)).retry_after, 3);
    }

    #[test]
    fn ipv6_counts_by_prefix() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:3:4:5:6")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn failures_spend_the_address_budget_not_the_client() {
        let limits = RateLimits::new(&settings(2));
        let attacker = ip("198.51.100.7");
        let rejected = || Err::<&str, _>(OAuthError::invalid_client());
        for _ in 0..2 {
            let outcome = limits.admit(Endpoint::Token, attacker, rejected(), caller("victim"));
            assert_eq!(outcome.unwrap_err().code, ErrorCode::InvalidClient);
        }
        let outcome = limits.admit(Endpoint::Token, attacker, rejected(), caller("victim"));
        let error = outcome.unwrap_err();
        assert_eq!(error.status.as_u16(), 429);
        assert_eq!(error.code, ErrorCode::TemporarilyUnavailable);
        assert!(error.retry_after.unwrap() >= 1);

        let victim = limits.admit(
            Endpoint::Token,
            ip("203.0.113.9"),
            Ok("ok"),
            caller("victim"),
        );
        assert!(victim.is_ok());
    }

    #[test]
    fn successes_spend_the_caller_budget_per_endpoint() {
        let limits = RateLimits::new(&settings(1));
        let sender = ip("203.0.113.9");
        assert!(limits
            .admit(Endpoint::Token, sender, Ok("ok"), caller("a"))
            .is_ok());
        assert!(limits
            .admit(Endpoint::Token, sender, Ok("ok"), caller("a"))
            .is_err());
        assert!(limits
            .admit(Endpoint::Token, sender, Ok("ok"), caller("b"))
            .is_ok());
        assert!(limits
            .admit(Endpoint::Revoke, sender, Ok("ok"), caller("a"))
            .is_ok());
    }

    #[test]
    fn server_errors_count_nowhere() {
        let limits = RateLimits::new(&settings(1));
        let sender = ip("203.0.113.9");
        for _ in 0..3 {
            let failed = Err::<&str, _>(OAuthError::server_error());
            let error = limits
                .admit(Endpoint::Token, sender, failed, caller("a"))
                .unwrap_err();
            assert_eq!(error.code, ErrorCode::ServerError);
        }
    }

    #[test]
    fn class_off_never_limits() {
        let mut settings = settings(1);
        settings.login = RateLimit::new(0.0, 1);
        let limits = RateLimits::new(&settings);
        for _ in 0..5 {
            assert!(limits.check_login(ip("192.0.2.1")).is_ok());
        }
        assert!(limits.check_register(ip("192.0.2.1")).is_ok());
        assert!(limits.check_register(ip("192.0.2.1")).is_err());
    }
}
