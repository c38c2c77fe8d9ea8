//! Browser sessions: a random id in a cookie, a row keyed by its digest.
//!
//! A session ends `login.session_idle_timeout` after its last use or
//! `login.session_absolute_timeout` after login, whichever comes first. The
//! id is replaced at every login, so an id planted before login is useless
//! after it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::Config;
use crate::crypto::{random_token, Digester};
use crate::store::{SessionRecord, Store, StoreError};

/// Cookie name over https: `__Host-` makes the browser require `Secure`,
/// `Path=/` and no `Domain` (RFC 6265bis section 4.1.3.2).
const SECURE_COOKIE: &str = "__Host-tessera_session";
/// Cookie name for an http issuer on loopback, where `Secure` is not set.
const PLAIN_COOKIE: &str = "tessera_session";

/// The authentication method recorded for a password login (RFC 8176).
pub const AMR_PASSWORD: &str = "pwd";

/// Returns whether cookies get `Secure`: always, unless the issuer is http,
/// which configuration allows only on loopback.
pub fn secure_cookies(config: &Config) -> bool {
    !config.issuer.starts_with("http://")
}

pub fn session_cookie_name(config: &Config) -> &'static str {
    if secure_cookies(config) {
        SECURE_COOKIE
    } else {
        PLAIN_COOKIE
    }
}

/// Builds a `Set-Cookie` value with Tessera's cookie attributes.
pub fn cookie_header(
    config: &Config,
    name: &str,
    value: &str,
    same_site: &str,
    max_age_secs: i64,
) -> String {
    let secure = if secure_cookies(config) {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age_secs}{secure}"
    )
}

/// Starts a session for `user_id`, ending `previous` (the id from the
/// request's cookie) if there was one. Returns the new id for the cookie.
pub async fn start_session(
    store: &dyn Store,
    digester: &Digester,
    config: &Config,
    user_id: Uuid,
    previous: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(String, SessionRecord), StoreError> {
    if let Some(previous) = previous {
        store.delete_session(&digester.digest(previous)).await?;
    }
    let id = random_token();
    let session = SessionRecord {
        id_digest: digester.digest(&id),
        user_id,
        auth_time: now,
        amr: vec![AMR_PASSWORD.to_owned()],
        created_at: now,
        last_seen_at: now,
        expires_at: now + config.login.session_absolute_timeout.as_chrono(),
    };
    store.insert_session(&session).await?;
    Ok((id, session))
}

/// Returns the live session for a cookie value and records its use, or
/// `None` when it is unknown or past either timeout.
pub async fn current_session(
    store: &dyn Store,
    digester: &Digester,
    config: &Config,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<SessionRecord>, StoreError> {
    let digest = digester.digest(id);
    let Some(session) = store.session(&digest).await? else {
        return Ok(None);
    };
    let idle_end = session.last_seen_at + config.login.session_idle_timeout.as_chrono();
    if now >= session.expires_at || now >= idle_end {
        store.delete_session(&digest).await?;
        return Ok(None);
    }
    store.touch_session(&digest, now).await?;
    Ok(Some(session))
}
