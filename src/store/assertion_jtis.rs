//! Single use of client assertions: each accepted `jti` is stored per client
//! until the assertion expires.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

#[async_trait]
pub trait AssertionJtiStore {
    /// Records `jti` for `client_id` in one atomic statement; returns false
    /// when that client already used it. A `jti` of another client does not
    /// count, so no client can burn another's assertions. An entry whose
    /// expiry passed before `now` is replaced, since its assertion can no
    /// longer be accepted anyway.
    async fn consume_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes entries that expired before `before`; returns how many.
    async fn prune_assertion_jtis(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
