//! Browser sessions, stored by the digest of their cookie value.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;

/// One session as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// HMAC digest of the session id the cookie carries.
    pub id_digest: String,
    pub user_id: Uuid,
    /// When the user last entered a password (OIDC Core `auth_time`).
    pub auth_time: DateTime<Utc>,
    /// Authentication methods (RFC 8176 `amr` values), e.g. `pwd`.
    pub amr: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute end of the session.
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait SessionStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;

    /// Returns the session with this id digest, expired or not.
    async fn session(&self, id_digest: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Records activity at `now`, for the idle timeout.
    async fn touch_session(&self, id_digest: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Deletes a session; returns whether it existed.
    async fn delete_session(&self, id_digest: &str) -> Result<bool, StoreError>;

    /// Deletes every session of `user_id`; returns how many there were.
    async fn delete_user_sessions(&self, user_id: Uuid) -> Result<u64, StoreError>;

    /// Deletes sessions past their absolute end or idle since before
    /// `idle_before`; returns how many.
    async fn delete_expired_sessions(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}
