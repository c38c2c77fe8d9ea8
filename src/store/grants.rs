//! Grants and what descends from them: pending authorization requests,
//! authorization codes and refresh tokens. Codes and refresh tokens are
//! stored as digests and consumed by one atomic statement whose condition
//! includes the owning client, so a secret presented by another client
//! consumes nothing and counts as no replay.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;

/// An authorization request waiting for the login and consent pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingAuthorization {
    /// Digest of the id carried in the return path.
    pub id_digest: String,
    /// Digest of the login transaction's id.
    pub tx_digest: String,
    pub client_id: String,
    /// The validated request, as JSON.
    pub request: String,
    pub expires_at: DateTime<Utc>,
}

/// One authorization of a client by a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: String,
    pub client_id: String,
    pub user_id: Uuid,
    /// The scopes granted; refreshes may narrow them, never widen them.
    pub scopes: Vec<String>,
    /// The RFC 8707 resource named at authorization, if any.
    pub resource: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    /// The OIDC session id (`sid`) of the browser session.
    pub sid: String,
    pub created_at: DateTime<Utc>,
    /// No refresh succeeds after this instant.
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One authorization code, bound to its grant and request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationCodeRecord {
    pub digest: String,
    pub grant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// The S256 PKCE challenge, when one was sent.
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// The result of consuming a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeConsumption {
    /// The code was unused and unexpired; it is now used.
    Consumed(AuthorizationCodeRecord),
    /// The client presented its own code a second time.
    Replayed { grant_id: String },
    /// No such code for this client, or it expired.
    Unknown,
}

/// One refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub digest: String,
    pub grant_id: String,
    pub client_id: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the token was exchanged for its successor.
    pub rotated_at: Option<DateTime<Utc>>,
}

/// The result of presenting a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was current; it is now rotated.
    Rotated(RefreshTokenRecord),
    /// The token was rotated before, at `rotated_at`.
    AlreadyRotated(RefreshTokenRecord),
    /// No such token for this client, or it expired.
    Unknown,
}

/// Selects grants or consents by user, by client, or both; a `None` field
/// matches any value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizationFilter {
    pub user_id: Option<Uuid>,
    pub client_id: Option<String>,
}

impl AuthorizationFilter {
    /// Selects the records of one user.
    pub fn user(user_id: Uuid) -> Self {
        Self {
            user_id: Some(user_id),
            client_id: None,
        }
    }

    /// Selects the records of one client.
    pub fn client(client_id: &str) -> Self {
        Self {
            user_id: None,
            client_id: Some(client_id.to_owned()),
        }
    }

    /// Selects the records of one user for one client.
    pub fn user_and_client(user_id: Uuid, client_id: &str) -> Self {
        Self {
            user_id: Some(user_id),
            client_id: Some(client_id.to_owned()),
        }
    }
}

#[async_trait]
pub trait GrantStore {
    async fn insert_pending_authorization(
        &self,
        pending: &PendingAuthorization,
    ) -> Result<(), StoreError>;

    /// Returns the unexpired pending request with this digest.
    async fn pending_authorization(
        &self,
        id_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingAuthorization>, StoreError>;

    /// Deletes a pending request; returns whether it existed.
    async fn delete_pending_authorization(&self, id_digest: &str) -> Result<bool, StoreError>;

    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), StoreError>;

    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError>;

    /// Revokes a grant with its refresh tokens and access tokens, in one
    /// transaction; returns whether the grant was live before. A refresh
    /// token inserted concurrently is either deleted with the others or
    /// inserted after the commit, so a `grant` read after the insert
    /// returns the revocation, and token issuance revokes again.
    async fn revoke_grant(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Returns the grants matching `filter` that are neither revoked nor
    /// expired at `now`, newest first.
    async fn live_grants(
        &self,
        filter: &AuthorizationFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<GrantRecord>, StoreError>;

    /// Revokes every unrevoked grant matching `filter` with its refresh
    /// and access tokens, in one transaction; returns the revoked ids.
    /// Concurrent refresh-token inserts behave as in `revoke_grant`.
    async fn revoke_grants(
        &self,
        filter: &AuthorizationFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;

    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError>;

    /// Returns the code `digest` of `client_id`, used or not, without
    /// changing it; `None` when there is none or it expired unused.
    async fn authorization_code(
        &self,
        digest: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError>;

    /// Marks the code `digest` of `client_id` used, in one atomic statement.
    async fn consume_authorization_code(
        &self,
        digest: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<CodeConsumption, StoreError>;

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> Result<(), StoreError>;

    /// Returns the refresh token `digest` of `client_id`, rotated or not,
    /// without changing it; `None` when there is none or it expired
    /// unrotated.
    async fn refresh_token(
        &self,
        digest: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;

    /// Marks the refresh token `digest` of `client_id` rotated, in one
    /// atomic statement.
    async fn rotate_refresh_token(
        &self,
        digest: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<RefreshRotation, StoreError>;
}
