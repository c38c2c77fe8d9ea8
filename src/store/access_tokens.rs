//! Records of issued access tokens, for introspection (RFC 7662),
//! revocation (RFC 7009) and revoking a whole grant.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// One issued access token. The token itself is never stored, only its
/// digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenRecord {
    pub jti: String,
    /// HMAC-SHA-256 digest of the token string (`crate::crypto::Digester`).
    pub digest: String,
    pub client_id: String,
    pub subject: String,
    /// The grant (authorization) it came from; none for client credentials.
    pub grant_id: Option<String>,
    pub grant_type: String,
    /// The `aud` claim: a resource server identifier or the issuer.
    pub audience: String,
    pub scope: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The lookup key of a presented token's record, built by
/// `crate::tokens::access::record_key`. Records are looked up by `jti` and
/// must match `digest` as well. Tokens minted before the `jti` was
/// replicated in their JWE header have none here, so their records, and
/// only theirs, are found by digest alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenKey {
    pub jti: Option<String>,
    pub digest: String,
}

impl AccessTokenKey {
    /// Builds the key of a token whose header carries `jti`.
    pub fn new(jti: &str, digest: &str) -> Self {
        Self {
            jti: Some(jti.to_owned()),
            digest: digest.to_owned(),
        }
    }
}

impl AccessTokenRecord {
    /// Whether the token is usable at `now`: not expired, not revoked.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

#[async_trait]
pub trait AccessTokenStore {
    async fn insert_access_token(&self, record: &AccessTokenRecord) -> Result<(), StoreError> {
        self.insert_access_tokens(std::slice::from_ref(record))
            .await
    }

    /// Records every token in one statement: all of them or, on any
    /// error, none. [`crate::store::group_commit`] gathers the records of
    /// concurrent requests into one call.
    async fn insert_access_tokens(&self, records: &[AccessTokenRecord]) -> Result<(), StoreError>;

    /// Returns the record `key` finds. Its `revoked_at` is the token's own
    /// revocation, else its grant's: a token recorded while its grant was
    /// being revoked reads as revoked once the grant is.
    async fn find_access_token(
        &self,
        key: &AccessTokenKey,
    ) -> Result<Option<AccessTokenRecord>, StoreError>;

    /// Marks the token revoked if `client_id` owns it; returns whether a
    /// token was revoked by this call.
    async fn revoke_access_token(
        &self,
        key: &AccessTokenKey,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Marks every unrevoked token of a grant revoked; returns how many.
    async fn revoke_grant_access_tokens(
        &self,
        grant_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Marks every unrevoked token issued to `client_id` revoked, whatever
    /// its grant; returns how many.
    async fn revoke_client_access_tokens(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Deletes up to `batch` records that expired before `before`; returns
    /// how many were deleted. Callers repeat until it returns less than
    /// `batch`, so no single statement holds locks for long.
    async fn prune_access_tokens(
        &self,
        before: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64, StoreError>;
}
