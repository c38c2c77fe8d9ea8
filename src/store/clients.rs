//! OAuth clients and the initial access tokens that open dynamic
//! registration. Every write bumps the `clients` change counter in the same
//! transaction, so caches in every instance notice it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// Change-counter topic bumped by every client write.
pub const CLIENTS_TOPIC: &str = "clients";

/// Token endpoint authentication method (RFC 7591 section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|method| method.as_str() == value)
    }

    /// Returns whether the method uses a server-generated client secret.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

/// OIDC Dynamic Registration `application_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    Web,
    Native,
}

impl ApplicationType {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Web => "web",
            ApplicationType::Native => "native",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "web" => Some(ApplicationType::Web),
            "native" => Some(ApplicationType::Native),
            _ => None,
        }
    }
}

/// A registered client as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    pub client_id: String,
    /// Display name; may be empty for a self-registered client.
    pub name: String,
    pub application_type: ApplicationType,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    /// Scopes the client may request.
    pub scopes: Vec<String>,
    pub auth_method: AuthMethod,
    /// Digest of the client secret, for `client_secret_basic` and `_post`.
    pub secret_digest: Option<String>,
    /// Public JWK Set for `private_key_jwt`, registered inline.
    pub jwks: Option<serde_json::Value>,
    /// URL of the client's JWK Set for `private_key_jwt`.
    pub jwks_uri: Option<String>,
    /// Resource server identifier used when a request names no `resource`.
    pub default_resource: Option<String>,
    pub id_token_signed_response_alg: String,
    /// First-party clients skip the consent page.
    pub first_party: bool,
    pub require_pkce: bool,
    /// Registered through `POST /register` rather than by an administrator.
    pub self_registered: bool,
    /// Digest of the RFC 7592 registration access token.
    pub registration_token_digest: Option<String>,
    /// Browser origins (serialized as in RFC 6454 section 6.2) that may call
    /// the token, userinfo, revocation and introspection endpoints as this
    /// client.
    pub allowed_origins: Vec<String>,
    /// Access-token lifetime in seconds; `None` leaves it to the resource
    /// server or `tokens.access_token_ttl`.
    pub access_token_ttl_seconds: Option<i64>,
    /// Refresh-token idle lifetime in seconds; `None` means
    /// `tokens.refresh_token_idle_ttl`.
    pub refresh_token_idle_ttl_seconds: Option<i64>,
    /// Lifetime in seconds of a grant's refresh tokens, counted from the
    /// user's approval; `None` means `tokens.refresh_token_absolute_ttl`.
    pub refresh_token_absolute_ttl_seconds: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An initial access token (RFC 7591 section 3) as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialAccessToken {
    pub digest: String,
    pub remaining_uses: i64,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait ClientStore {
    /// Stores a new client; fails with `AlreadyExists` if its id is taken.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;

    /// Returns the client `client_id`, if it exists.
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;

    /// Returns every client, ordered by creation time.
    async fn clients(&self) -> Result<Vec<Client>, StoreError>;

    /// Overwrites every field of a stored client except `client_id` and
    /// `created_at`; fails with `NotFound` if it does not exist.
    async fn update_client(&self, client: &Client) -> Result<(), StoreError>;

    /// Replaces the secret digest of a client; fails with `NotFound` if it
    /// does not exist.
    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Returns every origin that some client allows, each once, sorted.
    async fn allowed_origins(&self) -> Result<Vec<String>, StoreError>;

    /// Deletes a client with its grants, codes and refresh tokens, in one
    /// transaction; returns whether it existed.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;

    async fn insert_initial_access_token(
        &self,
        token: &InitialAccessToken,
    ) -> Result<(), StoreError>;

    /// Takes one use of the initial access token with `digest`, in one
    /// atomic statement. Returns false when the token is unknown, expired at
    /// `now` or used up.
    async fn consume_initial_access_token(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
