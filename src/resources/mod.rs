//! Resource servers: validation and creation, with the introspection
//! credentials each one gets.
//!
//! The encryption key is either one inline public JWK or a `jwks_uri`. A
//! `jwks_uri` is fetched once at creation, so a set that is unreachable,
//! contains private material, or has no usable encryption key is rejected
//! before anything is stored.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::audit::{kind, record_change, Change, CLI_ACTOR};
use crate::clients::metadata::{check_resource_uri, is_scope_token, BUILT_IN_SCOPES};
use crate::clients::names::check_name;
use crate::clients::new_client_id;
use crate::crypto::{random_token, Digester};
use crate::public_keys::{check_public_jwk, url_allowed, KeyPurpose, KeySetFetcher};
use crate::secret::SecretString;
use crate::store::{EncryptionKeySource, ResourceServer, Store, StoreError};

/// Signing algorithms a resource server may ask for; ES256 is the default
/// because RS256 signing costs far more.
pub const SUPPORTED_SIGNING_ALGS: &[&str] = &["ES256", "RS256", "PS256", "EdDSA"];
/// Maximum access-token lifetime a resource server may set.
pub const MAX_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// A resource server as requested by an operator.
#[derive(Clone, Debug, Default)]
pub struct ResourceRequest {
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub access_token_ttl: Option<Duration>,
    pub signing_alg: Option<String>,
    /// One inline public JWK (already read from `--jwk-file`).
    pub jwk: Option<Value>,
    pub jwks_uri: Option<String>,
}

/// A created resource server with its introspection secret, shown once.
#[derive(Debug)]
pub struct CreatedResource {
    pub resource: ResourceServer,
    pub introspection_secret: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> ResourceError {
    ResourceError::Invalid {
        field,
        message: message.into(),
    }
}

/// Validates `request`, fetches its key set when it names a `jwks_uri`,
/// and stores the resource server with fresh introspection credentials.
pub async fn create(
    store: &dyn Store,
    digester: &Digester,
    fetcher: &KeySetFetcher,
    request: &ResourceRequest,
    now: DateTime<Utc>,
) -> Result<CreatedResource, ResourceError> {
    check_resource_uri(&request.identifier).map_err(|reason| invalid("identifier", reason))?;
    if request.name.is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    check_name(&request.name).map_err(|reason| invalid("name", reason))?;
    let scopes = check_scopes(&request.scopes)?;
    let access_token_ttl_seconds = match request.access_token_ttl {
        None => None,
        Some(ttl) if ttl.is_zero() || ttl > MAX_ACCESS_TOKEN_TTL => {
            return Err(invalid(
                "access_token_ttl",
                "must be above zero and at most 24h",
            ))
        }
        Some(ttl) => Some(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
    };
    let signing_alg = request.signing_alg.as_deref().unwrap_or("ES256");
    if !SUPPORTED_SIGNING_ALGS.contains(&signing_alg) {
        return Err(invalid(
            "signing_alg",
            format!(
                "{signing_alg:?} is not supported; use one of {}",
                SUPPORTED_SIGNING_ALGS.join(", ")
            ),
        ));
    }
    let encryption_key = check_key_source(fetcher, request).await?;

    let secret = SecretString::new(random_token());
    let resource = ResourceServer {
        identifier: request.identifier.clone(),
        name: request.name.clone(),
        scopes,
        access_token_ttl_seconds,
        signing_alg: signing_alg.to_owned(),
        encryption_key,
        introspection_client_id: new_client_id(),
        introspection_secret_digest: digester.digest(secret.expose()),
        created_at: now,
        updated_at: now,
    };
    store.insert_resource_server(&resource).await?;
    tracing::info!(identifier = %resource.identifier, "resource server created");
    let change = Change {
        kind: kind::RESOURCE_CREATED,
        actor: CLI_ACTOR.to_owned(),
        client_id: None,
        detail: Some(resource.identifier.clone()),
    };
    record_change(store, change, now).await;
    Ok(CreatedResource {
        resource,
        introspection_secret: secret,
    })
}

fn check_scopes(scopes: &[String]) -> Result<Vec<String>, ResourceError> {
    let mut unique: Vec<String> = Vec::new();
    for scope in scopes {
        if !is_scope_token(scope) {
            return Err(invalid(
                "scope",
                format!("{scope:?} is not a valid scope (RFC 6749 appendix A.4)"),
            ));
        }
        if BUILT_IN_SCOPES.contains(&scope.as_str()) {
            return Err(invalid(
                "scope",
                format!("{scope:?} is a built-in scope and cannot belong to a resource server"),
            ));
        }
        if !unique.contains(scope) {
            unique.push(scope.clone());
        }
    }
    Ok(unique)
}

async fn check_key_source(
    fetcher: &KeySetFetcher,
    request: &ResourceRequest,
) -> Result<EncryptionKeySource, ResourceError> {
    match (&request.jwk, &request.jwks_uri) {
        (Some(jwk), None) => {
            let checked = check_public_jwk(jwk, KeyPurpose::Encryption)
                .map_err(|err| invalid("jwk", err.to_string()))?;
            Ok(EncryptionKeySource::Jwk(Value::Object(checked)))
        }
        (None, Some(uri)) => {
            if !url_allowed(uri) {
                return Err(invalid(
                    "jwks_uri",
                    format!(
                        "{uri:?} must be an absolute https URL without a fragment \
                         (http only for 127.0.0.1, [::1] or localhost)"
                    ),
                ));
            }
            let (keys, _) = fetcher
                .fetch(uri, KeyPurpose::Encryption)
                .await
                .map_err(|err| invalid("jwks_uri", err.to_string()))?;
            if keys.is_empty() {
                return Err(invalid(
                    "jwks_uri",
                    format!("the JWK Set at {uri} has no encryption key"),
                ));
            }
            Ok(EncryptionKeySource::JwksUri(uri.clone()))
        }
        (Some(_), Some(_)) => Err(invalid(
            "jwks_uri",
            "give either a JWK or a jwks_uri, not both",
        )),
        (None, None) => Err(invalid(
            "jwk",
            "an encryption key is required: give a JWK or a jwks_uri",
        )),
    }
}

/// Checks presented introspection credentials in constant time.
pub fn verify_introspection_secret(
    resource: &ResourceServer,
    secret: &str,
    digester: &Digester,
) -> bool {
    digester.verify(secret, &resource.introspection_secret_digest)
}
