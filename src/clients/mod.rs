//! OAuth clients: registration through one path for the CLI and
//! `POST /register`, secrets, and secret verification.
//!
//! Client secrets and registration access tokens are 256-bit random tokens,
//! shown once and stored as HMAC-SHA-256 digests under the digest data key.
//! They are checked in constant time ([`Digester::verify`]).

use chrono::{DateTime, Utc};

use crate::audit::{client_actor, kind, Change, CLI_ACTOR};
use crate::crypto::{random_bytes, random_token, Digester};
use crate::secret::SecretString;
use crate::store::{AuthMethod, Client, Store, StoreError};

pub mod metadata;
pub mod names;
pub mod origin;
pub mod redirect_uri;

pub use metadata::{
    validate, ClientLifetimes, ClientMetadata, ErrorCode, MetadataError, Registrar, ValidMetadata,
};

/// A client just registered, with the secrets shown this once.
#[derive(Debug)]
pub struct RegisteredClient {
    pub client: Client,
    pub client_secret: Option<SecretString>,
    pub registration_access_token: Option<SecretString>,
}

/// Registration failure.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Returns a new client id: 128 random bits as unpadded base64url, 22
/// characters, all of them RFC 3986 unreserved. It never starts with `-`,
/// so the CLI does not take it for an option.
pub fn new_client_id() -> String {
    use base64::Engine;
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<16>());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Validates `metadata` and stores a new client. The same function serves
/// the CLI and `POST /register`, so both make the same kind of record.
pub async fn register(
    store: &dyn Store,
    digester: &Digester,
    metadata: &ClientMetadata,
    registrar: Registrar,
    now: DateTime<Utc>,
) -> Result<RegisteredClient, RegistrationError> {
    let protected_names = if registrar.is_self_service() {
        first_party_names(store).await?
    } else {
        Vec::new()
    };
    let valid = validate(metadata, registrar, &protected_names)?;
    if let Some(resource) = &valid.default_resource {
        if store.resource_server(resource).await?.is_none() {
            return Err(MetadataError::metadata(
                "default_resource",
                format!("no resource server {resource:?} is registered"),
            )
            .into());
        }
    }

    let client_secret = valid
        .auth_method
        .uses_secret()
        .then(|| SecretString::new(random_token()));
    let registration_access_token = registrar
        .is_self_service()
        .then(|| SecretString::new(random_token()));
    let client = Client {
        client_id: new_client_id(),
        name: valid.name,
        application_type: valid.application_type,
        redirect_uris: valid.redirect_uris,
        post_logout_redirect_uris: valid.post_logout_redirect_uris,
        grant_types: valid.grant_types,
        response_types: valid.response_types,
        scopes: valid.scopes,
        auth_method: valid.auth_method,
        secret_digest: client_secret
            .as_ref()
            .map(|secret| digester.digest(secret.expose())),
        jwks: valid.jwks,
        jwks_uri: valid.jwks_uri,
        default_resource: valid.default_resource,
        id_token_signed_response_alg: valid.id_token_signed_response_alg,
        first_party: valid.first_party,
        require_pkce: valid.require_pkce,
        self_registered: registrar.is_self_service(),
        registration_token_digest: registration_access_token
            .as_ref()
            .map(|token| digester.digest(token.expose())),
        allowed_origins: valid.allowed_origins,
        access_token_ttl_seconds: valid.lifetimes.access_token_ttl_seconds,
        refresh_token_idle_ttl_seconds: valid.lifetimes.refresh_token_idle_ttl_seconds,
        refresh_token_absolute_ttl_seconds: valid.lifetimes.refresh_token_absolute_ttl_seconds,
        created_at: now,
        updated_at: now,
    };
    store.insert_client(&client).await?;
    tracing::info!(
        client_id = %client.client_id,
        self_registered = client.self_registered,
        "client registered"
    );
    record_settings_change(store, kind::CLIENT_CREATED, &client, registrar, now).await;
    Ok(RegisteredClient {
        client,
        client_secret,
        registration_access_token,
    })
}

/// Replaces the metadata of a self-registered client (RFC 7592 section 2.2),
/// keeping its id, secret and registration access token. A client that
/// changes to a secret-based method without a secret gets one, returned.
pub async fn update_registration(
    store: &dyn Store,
    digester: &Digester,
    current: &Client,
    metadata: &ClientMetadata,
    registrar: Registrar,
    now: DateTime<Utc>,
) -> Result<(Client, Option<SecretString>), RegistrationError> {
    let protected_names = first_party_names(store).await?;
    let valid = validate(metadata, registrar, &protected_names)?;
    let mut new_secret = None;
    let secret_digest = if valid.auth_method.uses_secret() {
        match &current.secret_digest {
            Some(digest) => Some(digest.clone()),
            None => {
                let secret = SecretString::new(random_token());
                let digest = digester.digest(secret.expose());
                new_secret = Some(secret);
                Some(digest)
            }
        }
    } else {
        None
    };
    let client = Client {
        client_id: current.client_id.clone(),
        name: valid.name,
        application_type: valid.application_type,
        redirect_uris: valid.redirect_uris,
        post_logout_redirect_uris: valid.post_logout_redirect_uris,
        grant_types: valid.grant_types,
        response_types: valid.response_types,
        scopes: valid.scopes,
        auth_method: valid.auth_method,
        secret_digest,
        jwks: valid.jwks,
        jwks_uri: valid.jwks_uri,
        default_resource: current.default_resource.clone(),
        id_token_signed_response_alg: valid.id_token_signed_response_alg,
        first_party: false,
        require_pkce: current.require_pkce,
        self_registered: current.self_registered,
        registration_token_digest: current.registration_token_digest.clone(),
        allowed_origins: valid.allowed_origins,
        access_token_ttl_seconds: current.access_token_ttl_seconds,
        refresh_token_idle_ttl_seconds: current.refresh_token_idle_ttl_seconds,
        refresh_token_absolute_ttl_seconds: current.refresh_token_absolute_ttl_seconds,
        created_at: current.created_at,
        updated_at: now,
    };
    store.update_client(&client).await?;
    record_settings_change(store, kind::CLIENT_UPDATED, &client, registrar, now).await;
    Ok((client, new_secret))
}

/// Issues a new secret for a client that authenticates with one. The old
/// secret stops working once caches see the change: within 2 seconds on
/// every instance, because the write bumps the `clients` change counter.
pub async fn rotate_secret(
    store: &dyn Store,
    digester: &Digester,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<SecretString, RotateError> {
    let client = store
        .client(client_id)
        .await?
        .ok_or_else(|| RotateError::NotFound(client_id.to_owned()))?;
    if !client.auth_method.uses_secret() {
        return Err(RotateError::NoSecret {
            client_id: client_id.to_owned(),
            auth_method: client.auth_method,
        });
    }
    let secret = SecretString::new(random_token());
    store
        .set_client_secret(client_id, &digester.digest(secret.expose()), now)
        .await?;
    tracing::info!(%client_id, "client secret rotated");
    let actor = CLI_ACTOR.to_owned();
    record_change(store, kind::CLIENT_SECRET_ROTATED, client_id, actor, now).await;
    Ok(secret)
}

/// Records a change to a client in the audit log.
pub async fn record_change(
    store: &dyn Store,
    kind: &str,
    client_id: &str,
    actor: String,
    now: DateTime<Utc>,
) {
    let change = Change {
        kind,
        actor,
        client_id: Some(client_id),
        detail: None,
    };
    crate::audit::record_change(store, change, now).await;
}

/// Records the creation or update of `client` in the audit log, with its
/// allowed origins and lifetime overrides as the detail. None of them is
/// secret; the secrets and their digests stay out.
async fn record_settings_change(
    store: &dyn Store,
    kind: &str,
    client: &Client,
    registrar: Registrar,
    now: DateTime<Utc>,
) {
    let change = Change {
        kind,
        actor: actor_of(registrar, &client.client_id),
        client_id: Some(&client.client_id),
        detail: settings_detail(client),
    };
    crate::audit::record_change(store, change, now).await;
}

/// Describes the allowed origins and lifetime overrides of `client`, such
/// as `allowed_origins https://app.test; access_token_ttl 300s`, or `None`
/// when it has none.
fn settings_detail(client: &Client) -> Option<String> {
    let mut parts = Vec::new();
    if !client.allowed_origins.is_empty() {
        parts.push(format!(
            "allowed_origins {}",
            client.allowed_origins.join(" ")
        ));
    }
    let lifetimes = [
        ("access_token_ttl", client.access_token_ttl_seconds),
        (
            "refresh_token_idle_ttl",
            client.refresh_token_idle_ttl_seconds,
        ),
        (
            "refresh_token_absolute_ttl",
            client.refresh_token_absolute_ttl_seconds,
        ),
    ];
    for (name, seconds) in lifetimes {
        if let Some(seconds) = seconds {
            parts.push(format!("{name} {seconds}s"));
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Returns who changes a client: an operator through the CLI, or the
/// self-registered client through its registration access token.
fn actor_of(registrar: Registrar, client_id: &str) -> String {
    if registrar.is_self_service() {
        client_actor(client_id)
    } else {
        CLI_ACTOR.to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("client {0} not found")]
    NotFound(String),
    #[error(
        "client {client_id} authenticates with {}, which uses no client secret",
        auth_method.as_str()
    )]
    NoSecret {
        client_id: String,
        auth_method: AuthMethod,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a presented client secret in constant time. Clients that use no
/// secret never match.
pub fn verify_secret(client: &Client, secret: &str, digester: &Digester) -> bool {
    match &client.secret_digest {
        Some(digest) if client.auth_method.uses_secret() => digester.verify(secret, digest),
        _ => false,
    }
}

/// Names of the first-party clients, which self-registered clients may not
/// imitate.
async fn first_party_names(store: &dyn Store) -> Result<Vec<String>, StoreError> {
    Ok(store
        .clients()
        .await?
        .into_iter()
        .filter(|client| client.first_party)
        .map(|client| client.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_never_look_like_options() {
        for _ in 0..2000 {
            let id = new_client_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'), "{id}");
        }
    }
}
