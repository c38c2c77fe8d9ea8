//! Tessera's signing keys, fetched from its JWK Set and cached.
//!
//! The set is cached for its `Cache-Control: max-age` (at most a day; five
//! minutes when the header has none). A token whose `kid` is not in the
//! cached set causes a refetch, at most once per `refetch_interval`, so
//! tokens naming made-up kids cannot turn every request into a fetch.
//! Concurrent requests wait for one shared fetch. When a fetch fails, the
//! cached set stays in use until its max-age ends and verification fails
//! after that, so a key Tessera removed stops verifying here by then.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{EdDSA, JwsVerifier, ES256, PS256, RS256};
use reqwest::header::CACHE_CONTROL;
use serde::Deserialize;
use tokio::sync::Mutex;

/// The JWS algorithms Tessera signs access tokens with. No `none` and no
/// HMAC algorithm: a verifier that accepted those would trust tokens that
/// anybody (or anybody holding the public key) could make.
pub const SIGNING_ALGORITHMS: [&str; 4] = ["ES256", "RS256", "PS256", "EdDSA"];

/// Cache lifetime of a set served without `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// Maximum cache lifetime, whatever `max-age` the server sends.
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Shortest time between two fetches for any reason, so that `max-age=0`
/// or a failing server costs at most one fetch per second.
const MIN_FETCH_GAP: Duration = Duration::from_secs(1);
/// Upper bound on one request to Tessera, connecting included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The location of the JWK Set.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// The `jwks_uri` of `{issuer}/.well-known/openid-configuration`.
    Discovery { issuer: String },
    /// A fixed URL, for deployments that reach Tessera at another address
    /// than its issuer (a container network, say).
    JwksUri(String),
}

/// A failure to find the key a token names.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no signing key with this kid is published")]
    UnknownKid,
    #[error("Tessera's signing keys are unavailable")]
    Unavailable,
}

/// Tessera's published signing keys as verifiers, by `kid`.
pub struct SigningKeys {
    http: reqwest::Client,
    source: KeySource,
    refetch_interval: Duration,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    jwks_uri: Option<String>,
    verifiers: HashMap<String, Arc<dyn JwsVerifier>>,
    expires_at: Option<Instant>,
    last_fetch: Option<Instant>,
}

impl Cache {
    fn is_fresh(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|expires_at| now < expires_at)
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl SigningKeys {
    /// Fetches nothing yet: the first token triggers the first fetch.
    pub fn new(source: KeySource, refetch_interval: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            source,
            refetch_interval,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// Returns the verifier of the published key `kid`, fetching the set
    /// when the cache has expired or, rate-limited, when `kid` is unknown.
    pub async fn verifier(&self, kid: &str) -> Result<Arc<dyn JwsVerifier>, KeyError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let fresh = cache.is_fresh(now);
        if fresh {
            if let Some(verifier) = cache.verifiers.get(kid) {
                return Ok(Arc::clone(verifier));
            }
        }

        let gap = if fresh {
            self.refetch_interval
        } else {
            MIN_FETCH_GAP
        };
        let may_fetch = cache
            .last_fetch
            .is_none_or(|last| now.duration_since(last) >= gap);
        if may_fetch {
            cache.last_fetch = Some(now);
            match self.fetch(&mut cache).await {
                Ok((verifiers, max_age)) => {
                    tracing::info!(keys = verifiers.len(), ?max_age, "fetched Tessera's JWKS");
                    cache.verifiers = verifiers;
                    cache.expires_at = Some(Instant::now() + max_age);
                }
                Err(error) => tracing::warn!(error = %format!("{error:#}"), "JWKS fetch failed"),
            }
        }

        if !cache.is_fresh(Instant::now()) {
            return Err(KeyError::Unavailable);
        }
        cache
            .verifiers
            .get(kid)
            .map(Arc::clone)
            .ok_or(KeyError::UnknownKid)
    }

    async fn fetch(
        &self,
        cache: &mut Cache,
    ) -> anyhow::Result<(HashMap<String, Arc<dyn JwsVerifier>>, Duration)> {
        let jwks_uri = match (&cache.jwks_uri, &self.source) {
            (Some(uri), _) => uri.clone(),
            (None, KeySource::JwksUri(uri)) => uri.clone(),
            (None, KeySource::Discovery { issuer }) => self.discover(issuer).await?,
        };
        cache.jwks_uri = Some(jwks_uri.clone());

        let response = self.http.get(&jwks_uri).send().await?.error_for_status()?;
        let max_age = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .clamp(MIN_FETCH_GAP, MAX_MAX_AGE);
        let body = response.bytes().await?;
        let set = JwkSet::from_bytes(&body)
            .map_err(|error| anyhow::anyhow!("{jwks_uri} is not a JWK Set: {error}"))?;
        Ok((verifiers(set.keys()), max_age))
    }

    async fn discover(&self, issuer: &str) -> anyhow::Result<String> {
        let url = format!("{issuer}/.well-known/openid-configuration");
        let response = self.http.get(&url).send().await?.error_for_status()?;
        let discovery: Discovery = response.json().await?;
        // OpenID Connect Discovery 1.0 section 4.3: the document must name
        // the issuer it was fetched for.
        if discovery.issuer != issuer {
            anyhow::bail!("{url} names issuer {}, expected {issuer}", discovery.issuer);
        }
        Ok(discovery.jwks_uri)
    }
}

/// Builds a verifier for every signing key with a `kid` and an allowed
/// `alg`; keys for encryption (`use: enc`) and keys without `alg`, which
/// Tessera never publishes, are skipped.
fn verifiers(keys: Vec<&Jwk>) -> HashMap<String, Arc<dyn JwsVerifier>> {
    let mut verifiers = HashMap::new();
    for jwk in keys {
        let (Some(kid), Some(alg)) = (jwk.key_id(), jwk.algorithm()) else {
            continue;
        };
        if jwk.key_use().is_some_and(|key_use| key_use != "sig") {
            continue;
        }
        let verifier: Result<Arc<dyn JwsVerifier>, _> = match alg {
            "ES256" => ES256.verifier_from_jwk(jwk).map(|v| Arc::new(v) as _),
            "RS256" => RS256.verifier_from_jwk(jwk).map(|v| Arc::new(v) as _),
            "PS256" => PS256.verifier_from_jwk(jwk).map(|v| Arc::new(v) as _),
            "EdDSA" => EdDSA.verifier_from_jwk(jwk).map(|v| Arc::new(v) as _),
            _ => continue,
        };
        match verifier {
            Ok(verifier) => {
                verifiers.entry(kid.to_owned()).or_insert(verifier);
            }
            Err(error) => tracing::warn!(kid, alg, %error, "skipped an unusable JWKS key"),
        }
    }
    verifiers
}

/// Reads `max-age` from a `Cache-Control` value (RFC 9111 section 5.2.2.1);
/// `no-store` and `no-cache` count as zero.
fn max_age(cache_control: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let directive = directive.to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive.strip_prefix("max-age=") {
            max_age = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}
