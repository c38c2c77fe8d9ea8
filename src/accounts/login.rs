//! One password login attempt, with brute-force protection.
//!
//! Every attempt that reaches the password check computes exactly one
//! argon2 hash, whether the account exists, is disabled, is locked or has an
//! unusable stored hash, and every failure looks the same to the client.
//! Attempts are refused before hashing only for reasons that do not depend
//! on the account: a missing or over-long field, a client address over its
//! failure limit, or a full hashing queue.
//!
//! A hash made with older parameters is checked at its older cost until the
//! right password upgrades it, so such accounts respond faster than others
//! until their next successful login.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::password::{PasswordError, MAX_PASSWORD_BYTES};
use super::users::{normalize_username, MAX_USERNAME_BYTES};
use super::Accounts;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{AuditEvent, FailurePolicy, Store, StoreError, UserRecord};
use crate::telemetry::metrics;

pub use crate::audit::kind::{LOGIN_FAILURE, LOGIN_LOCKOUT, LOGIN_SUCCESS};

/// A login form as submitted.
pub struct LoginAttempt<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub ip: IpAddr,
    pub client_id: &'a str,
    pub request_id: Option<&'a str>,
}

/// The result of a login attempt.
#[derive(Debug)]
pub enum LoginResult {
    Success(Box<UserRecord>),
    /// Wrong password, or an unknown, disabled or locked account: all four
    /// get this same result.
    Failed,
    /// A field is missing or too long; nothing was hashed.
    Invalid,
    /// The client address has too many recent failures.
    AddressBlocked {
        retry_after: Duration,
    },
    /// Every hashing slot is taken and the queue is full.
    Busy,
}

impl LoginResult {
    /// Returns the `result` label of the login attempt metric.
    fn metric_label(&self) -> &'static str {
        match self {
            Self::Success(_) => "success",
            Self::Failed => "failure",
            Self::Invalid => "invalid",
            Self::AddressBlocked { .. } => "address_blocked",
            Self::Busy => "busy",
        }
    }
}

/// Checks a login attempt, counts its failure or success, and records its
/// result in the metrics.
pub async fn authenticate(
    accounts: &Accounts,
    store: &dyn Store,
    config: &Config,
    clock: &dyn Clock,
    attempt: LoginAttempt<'_>,
) -> Result<LoginResult, StoreError> {
    let result = check_attempt(accounts, store, config, clock, attempt).await?;
    metrics::login_attempt(result.metric_label());
    Ok(result)
}

async fn check_attempt(
    accounts: &Accounts,
    store: &dyn Store,
    config: &Config,
    clock: &dyn Clock,
    attempt: LoginAttempt<'_>,
) -> Result<LoginResult, StoreError> {
    let policy = &config.login;
    let now = clock.now();
    let ip_key = format!("ip:{}", attempt.ip);
    let ip_failures = accounts.throttle.failures(&ip_key, now);
    if ip_failures >= policy.ip_lockout_threshold {
        let end = accounts.throttle.window_end(&ip_key).unwrap_or(now);
        let retry_after = (end - now).to_std().unwrap_or(Duration::from_secs(1));
        return Ok(LoginResult::AddressBlocked { retry_after });
    }

    let (Some(raw_username), Some(password)) = (attempt.username, attempt.password) else {
        accounts.throttle.record_failure(&ip_key, now);
        return Ok(LoginResult::Invalid);
    };
    if raw_username.len() > MAX_USERNAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
        accounts.throttle.record_failure(&ip_key, now);
        return Ok(LoginResult::Invalid);
    }
    // A name that cannot be normalised matches no account but still costs
    // one hash, like an unknown name.
    let username = normalize_username(raw_username).ok();
    let name_key = format!("user:{}", username.as_deref().unwrap_or(raw_username));

    let name_failures = accounts.throttle.failures(&name_key, now);
    let delay = accounts
        .throttle
        .delay(name_failures)
        .max(accounts.throttle.delay(ip_failures));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let user = match &username {
        Some(username) => store.user_by_username(username).await?,
        None => None,
    };
    let now = clock.now();
    let usable = user
        .as_ref()
        .filter(|user| !user.disabled && user.locked_until.is_none_or(|until| until <= now));
    let account = user
        .as_ref()
        .map(|user| user.id.to_string())
        .unwrap_or_default();
    let stored = usable.map(|user| user.password_hash.as_str());
    let verification = match accounts.hasher.verify(password, stored, &account).await {
        Ok(verification) => verification,
        Err(PasswordError::Busy) => return Ok(LoginResult::Busy),
        Err(PasswordError::TooLong) => return Ok(LoginResult::Invalid),
        Err(error) => {
            tracing::error!(%error, "password verification failed");
            return Ok(LoginResult::Failed);
        }
    };

    if let (true, Some(user)) = (verification.matched, usable) {
        accounts.throttle.clear(&name_key);
        store.clear_login_failures(user.id).await?;
        if verification.needs_rehash {
            upgrade_hash(accounts, store, user, password, now).await;
        }
        audit(store, &attempt, LOGIN_SUCCESS, Some(user), now).await;
        return Ok(LoginResult::Success(Box::new(user.clone())));
    }

    accounts.throttle.record_failure(&ip_key, now);
    accounts.throttle.record_failure(&name_key, now);
    audit(store, &attempt, LOGIN_FAILURE, user.as_ref(), now).await;
    if let Some(user) = usable {
        let counted = store
            .record_login_failure(user.id, failure_policy(config, now))
            .await?;
        if counted.is_some_and(|count| count.locked_now) {
            tracing::warn!(user_id = %user.id, "account locked after repeated failed logins");
            metrics::login_lockout();
            audit(store, &attempt, LOGIN_LOCKOUT, Some(user), now).await;
        }
    }
    Ok(LoginResult::Failed)
}

fn failure_policy(config: &Config, now: DateTime<Utc>) -> FailurePolicy {
    let policy = &config.login;
    FailurePolicy {
        now,
        window_start: now - policy.failure_window.as_chrono(),
        threshold: i32::try_from(policy.lockout_threshold).unwrap_or(i32::MAX),
        lock_until: now + policy.lockout_duration.as_chrono(),
    }
}

/// Replaces a hash made with older parameters. A failure is logged and the
/// login still succeeds, since the old hash remains valid.
async fn upgrade_hash(
    accounts: &Accounts,
    store: &dyn Store,
    user: &UserRecord,
    password: &str,
    now: DateTime<Utc>,
) {
    let new_hash = match accounts.hasher.hash(password).await {
        Ok(hash) => hash,
        Err(error) => {
            tracing::warn!(user_id = %user.id, %error, "cannot rehash password with current parameters");
            return;
        }
    };
    match store
        .upgrade_password_hash(user.id, &user.password_hash, &new_hash, now)
        .await
    {
        Ok(true) => tracing::info!(user_id = %user.id, "password rehashed with current parameters"),
        Ok(false) => {}
        Err(error) => tracing::warn!(user_id = %user.id, %error, "cannot store rehashed password"),
    }
}

/// Records a login audit event.
async fn audit(
    store: &dyn Store,
    attempt: &LoginAttempt<'_>,
    kind: &str,
    user: Option<&UserRecord>,
    now: DateTime<Utc>,
) {
    let subject = user.map(|user| user.id.to_string());
    let event = AuditEvent {
        // Only a successful login shows who acted.
        actor: subject
            .as_deref()
            .filter(|_| kind == LOGIN_SUCCESS)
            .map(crate::audit::user_actor),
        subject,
        // A sign-in to the account page names no client.
        client_id: Some(attempt.client_id)
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        ip: Some(attempt.ip.to_string()),
        request_id: attempt.request_id.map(str::to_owned),
        ..AuditEvent::new(kind, now)
    };
    crate::audit::record(store, &event).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::LOGIN_RESULTS;

    /// Every result maps to a label that the metrics start at zero, and no
    /// two results share one.
    #[test]
    fn metric_labels_are_declared_results() {
        let now = Utc::now();
        let user = UserRecord {
            id: uuid::Uuid::nil(),
            username: "u".into(),
            email: None,
            email_verified: false,
            given_name: None,
            family_name: None,
            disabled: false,
            password_hash: String::new(),
            failed_logins: 0,
            locked_until: None,
            created_at: now,
            updated_at: now,
        };
        let results = [
            LoginResult::Success(Box::new(user)),
            LoginResult::Failed,
            LoginResult::Invalid,
            LoginResult::AddressBlocked {
                retry_after: Duration::from_secs(1),
            },
            LoginResult::Busy,
        ];
        let labels: Vec<&str> = results.iter().map(LoginResult::metric_label).collect();
        assert_eq!(labels, LOGIN_RESULTS);
    }
}
