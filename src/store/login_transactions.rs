//! Login transactions: one browser's pass through the login and consent
//! pages on behalf of an authorization request.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;

/// One login transaction as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginTransactionRecord {
    /// HMAC digest of the transaction id carried in `?tx=`.
    pub id_digest: String,
    pub client_id: String,
    /// The client's display name, shown on the consent page.
    pub client_name: String,
    /// First-party clients skip the consent page.
    pub first_party: bool,
    pub scopes: Vec<String>,
    /// The request's `login_hint`, which prefills the username field.
    pub login_hint: Option<String>,
    /// The request had `prompt=consent`: the consent page lists every
    /// requested scope, approved before or not.
    pub prompt_consent: bool,
    /// Relative path on Tessera to redirect to once the outcome is recorded.
    pub return_path: String,
    /// Digest of the CSRF token of the form last shown for this transaction.
    pub csrf_digest: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub outcome: Option<LoginOutcome>,
}

/// What the user decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    Approved {
        user_id: Uuid,
        auth_time: DateTime<Utc>,
        amr: Vec<String>,
        granted_scopes: Vec<String>,
    },
    Denied {
        user_id: Uuid,
    },
}

#[async_trait]
pub trait LoginTransactionStore {
    async fn insert_login_transaction(
        &self,
        transaction: &LoginTransactionRecord,
    ) -> Result<(), StoreError>;

    /// Returns the transaction if it exists and has not expired at `now`.
    async fn login_transaction(
        &self,
        id_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<LoginTransactionRecord>, StoreError>;

    /// Stores the digest of a newly issued CSRF token for an open
    /// transaction; returns false if it is gone, expired or decided.
    async fn set_login_csrf(
        &self,
        id_digest: &str,
        csrf_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records the outcome of an open, unexpired transaction in one atomic
    /// statement; returns false if it was already decided or is gone.
    async fn complete_login_transaction(
        &self,
        id_digest: &str,
        outcome: &LoginOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes transactions that expired at or before `now`; returns how many.
    async fn delete_expired_login_transactions(
        &self,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Deletes a decided, unexpired transaction and returns it, in one
    /// atomic statement, so its outcome is used once.
    async fn take_login_transaction(
        &self,
        id_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<LoginTransactionRecord>, StoreError>;
}
