//! Fetching and caching JWK Sets published at a `jwks_uri`.
//!
//! A set is cached for the lifetime its `Cache-Control: max-age` gives
//! (clamped to [`MIN_MAX_AGE`]..[`MAX_MAX_AGE`], [`DEFAULT_MAX_AGE`] when
//! absent). An unknown `kid` triggers a refetch at most once per
//! [`FETCH_COOLDOWN`] per URL, so requests naming random `kid`s cannot each
//! cause a download. Concurrent misses wait for one shared fetch. After a
//! failed fetch, the last good set is used until its lifetime runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{alg_purpose, check_public_jwks, secret_material, KeyPurpose};
use crate::clock::Clock;

/// Minimum time between two fetches of one URL.
pub const FETCH_COOLDOWN: Duration = Duration::from_secs(60);
/// Cache lifetime of a set served without `max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Minimum cache lifetime, whatever `Cache-Control` the server sends.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(60);
/// Maximum cache lifetime, whatever `Cache-Control` the server sends.
pub const MAX_MAX_AGE: Duration = Duration::from_secs(86_400);
/// Upper bound on one fetch, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set accepted, in bytes.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Failure to obtain the key set of a URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "JWKS URL {0} is not allowed: use https (http only for 127.0.0.1, [::1] or localhost)"
    )]
    UrlNotAllowed(String),
    #[error("fetching the JWK Set from {url} failed: {message}")]
    Failed { url: String, message: String },
    #[error(
        "the JWK Set from {url} is unavailable; the last fetch failed less than {cooldown:?} ago"
    )]
    CoolingDown { url: String, cooldown: Duration },
}

/// A URL and whether its keys are for signatures (else encryption).
type EntryKey = (String, bool);

#[derive(Default)]
struct Entry {
    keys: Vec<Map<String, Value>>,
    expires_at: Option<DateTime<Utc>>,
    last_attempt: Option<DateTime<Utc>>,
}

/// Fetches and caches JWK Sets per URL.
#[derive(Clone)]
pub struct KeySetFetcher {
    /// `None` when the TLS backend failed to start; every fetch then fails.
    http: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    entries: Arc<Mutex<HashMap<EntryKey, Arc<tokio::sync::Mutex<Entry>>>>>,
}

impl KeySetFetcher {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                tracing::error!(%error, "cannot build the HTTP client; JWK Sets cannot be fetched");
            })
            .ok();
        Self {
            http,
            clock,
            entries: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Returns the keys of the set at `url` for `purpose`, fetching it when
    /// there is no fresh copy and the cooldown allows.
    pub async fn keys(
        &self,
        url: &str,
        purpose: KeyPurpose,
    ) -> Result<Vec<Map<String, Value>>, FetchError> {
        let entry = self.entry(url, purpose);
        let mut entry = entry.lock().await;
        let now = self.clock.now();
        if is_fresh(&entry, now) {
            return Ok(entry.keys.clone());
        }
        self.refresh(url, purpose, &mut entry, now).await?;
        Ok(entry.keys.clone())
    }

    /// Returns the keys of the set at `url` that match `kid` (every key when
    /// `kid` is `None`). An unknown `kid` refetches the set only when the
    /// last fetch is at least [`FETCH_COOLDOWN`] old. Otherwise, or when the
    /// refetch fails, the result is empty and the cached keys are kept.
    pub async fn candidates(
        &self,
        url: &str,
        purpose: KeyPurpose,
        kid: Option<&str>,
    ) -> Result<Vec<Map<String, Value>>, FetchError> {
        let entry = self.entry(url, purpose);
        let mut entry = entry.lock().await;
        let now = self.clock.now();
        if !is_fresh(&entry, now) {
            self.refresh(url, purpose, &mut entry, now).await?;
        }
        let found = matching(&entry.keys, kid);
        if !found.is_empty() || kid.is_none() || !cooldown_over(&entry, now) {
            return Ok(found);
        }
        if let Err(error) = self.refresh(url, purpose, &mut entry, now).await {
            tracing::warn!(%error, "refetch for an unknown kid failed; keeping the cached keys");
        }
        Ok(matching(&entry.keys, kid))
    }

    fn entry(&self, url: &str, purpose: KeyPurpose) -> Arc<tokio::sync::Mutex<Entry>> {
        let key = (url.to_owned(), purpose == KeyPurpose::Signature);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(entries.entry(key).or_default())
    }

    /// Fetches the set into `entry` unless the cooldown forbids it. A
    /// failure leaves the cached keys in place.
    async fn refresh(
        &self,
        url: &str,
        purpose: KeyPurpose,
        entry: &mut Entry,
        now: DateTime<Utc>,
    ) -> Result<(), FetchError> {
        if !cooldown_over(entry, now) {
            return if is_fresh(entry, now) {
                Ok(())
            } else {
                Err(FetchError::CoolingDown {
                    url: url.to_owned(),
                    cooldown: FETCH_COOLDOWN,
                })
            };
        }
        entry.last_attempt = Some(now);
        match self.fetch(url, purpose).await {
            Ok((keys, max_age)) => {
                entry.keys = keys;
                entry.expires_at = Some(now + chrono_duration(max_age));
                tracing::debug!(url, keys = entry.keys.len(), "fetched JWK Set");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(url, %error, "cannot fetch JWK Set");
                if is_fresh(entry, now) {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Downloads, parses and checks the set; returns its keys and lifetime.
    pub async fn fetch(
        &self,
        url: &str,
        purpose: KeyPurpose,
    ) -> Result<(Vec<Map<String, Value>>, Duration), FetchError> {
        if !url_allowed(url) {
            return Err(FetchError::UrlNotAllowed(url.to_owned()));
        }
        let failed = |message: String| FetchError::Failed {
            url: url.to_owned(),
            message,
        };
        let http = self
            .http
            .as_ref()
            .ok_or_else(|| failed("no HTTP client is available".into()))?;
        let mut response = http
            .get(url)
            .header("accept", "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(|err| failed(err.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("status {}", response.status())));
        }
        let max_age = cache_lifetime(response.headers());

        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| failed(err.to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY_BYTES {
                return Err(failed(format!("the body exceeds {MAX_BODY_BYTES} bytes")));
            }
        }

        let set: Value =
            serde_json::from_slice(&body).map_err(|err| failed(format!("not JSON: {err}")))?;
        // Private material anywhere in the set fails the fetch, even in a
        // key for the other purpose: its owner has published a secret.
        if let Some(error) = secret_material(&set) {
            return Err(failed(error.to_string()));
        }
        let set = keys_for(&set, purpose);
        let checked = check_public_jwks(&set, purpose).map_err(|err| failed(err.to_string()))?;
        let keys = checked
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|key| key.as_object().cloned())
                    .collect()
            })
            .unwrap_or_default();
        Ok((keys, max_age))
    }
}

/// Drops the keys whose `use` or `alg` marks them for the other purpose (a
/// client's set may also publish encryption keys).
fn keys_for(set: &Value, purpose: KeyPurpose) -> Value {
    let Some(keys) = set.get("keys").and_then(Value::as_array) else {
        return set.clone();
    };
    let kept: Vec<Value> = keys
        .iter()
        .filter(|key| {
            let use_matches = key
                .get("use")
                .and_then(Value::as_str)
                .is_none_or(|key_use| key_use == purpose.use_value());
            let alg_matches = key
                .get("alg")
                .and_then(Value::as_str)
                .and_then(alg_purpose)
                .is_none_or(|alg_purpose| alg_purpose == purpose);
            use_matches && alg_matches
        })
        .cloned()
        .collect();
    serde_json::json!({ "keys": kept })
}

fn matching(keys: &[Map<String, Value>], kid: Option<&str>) -> Vec<Map<String, Value>> {
    keys.iter()
        .filter(|key| kid.is_none() || key.get("kid").and_then(Value::as_str) == kid)
        .cloned()
        .collect()
}

fn is_fresh(entry: &Entry, now: DateTime<Utc>) -> bool {
    entry.expires_at.is_some_and(|expires_at| now < expires_at)
}

fn cooldown_over(entry: &Entry, now: DateTime<Utc>) -> bool {
    entry
        .last_attempt
        .is_none_or(|last| now - last >= chrono_duration(FETCH_COOLDOWN))
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Returns whether Tessera may fetch keys from `url`: https anywhere, http
/// only on the loopback hosts of RFC 8252 section 8.3.
pub fn url_allowed(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if parsed.fragment().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return false;
    }
    match parsed.scheme() {
        "https" => parsed.host().is_some(),
        "http" => matches!(parsed.host_str(), Some("127.0.0.1" | "[::1]" | "localhost")),
        _ => false,
    }
}

/// Reads `max-age` from `Cache-Control`, clamped; `no-store` and
/// `no-cache` give the shortest lifetime.
fn cache_lifetime(headers: &reqwest::header::HeaderMap) -> Duration {
    let Some(value) = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
    else {
        return DEFAULT_MAX_AGE;
    };
    let mut lifetime = DEFAULT_MAX_AGE;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_MAX_AGE;
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            if let Ok(seconds) = seconds.trim_matches('"').parse::<u64>() {
                lifetime = Duration::from_secs(seconds);
            }
        }
    }
    lifetime.clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, CACHE_CONTROL};

    fn lifetime(value: &str) -> Duration {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        cache_lifetime(&headers)
    }

    #[test]
    fn cache_lifetime_follows_max_age_within_bounds() {
        assert_eq!(lifetime("public, max-age=300"), Duration::from_secs(300));
        assert_eq!(lifetime("max-age=5"), MIN_MAX_AGE);
        assert_eq!(lifetime("max-age=99999999"), MAX_MAX_AGE);
        assert_eq!(lifetime("no-store"), MIN_MAX_AGE);
        assert_eq!(lifetime("public"), DEFAULT_MAX_AGE);
        assert_eq!(cache_lifetime(&HeaderMap::new()), DEFAULT_MAX_AGE);
    }

    #[test]
    fn fetch_urls_need_https_or_loopback() {
        assert!(url_allowed("https://keys.example.com/jwks"));
        assert!(url_allowed("http://127.0.0.1:9000/jwks"));
        assert!(url_allowed("http://[::1]:9000/jwks"));
        assert!(url_allowed("http://localhost/jwks"));
        assert!(!url_allowed("http://keys.example.com/jwks"));
        assert!(!url_allowed("http://localhost.evil.test/jwks"));
        assert!(!url_allowed("https://keys.example.com/jwks#x"));
        assert!(!url_allowed("file:///etc/passwd"));
        assert!(!url_allowed("/jwks"));
    }
}
