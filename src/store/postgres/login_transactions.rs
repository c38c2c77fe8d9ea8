//! Login transactions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PostgresStore;
use crate::store::login_transactions::{
    LoginOutcome, LoginTransactionRecord, LoginTransactionStore,
};
use crate::store::{join_words, split_words, StoreError};

const COLUMNS: &str = "id_digest, client_id, client_name, first_party, scopes, login_hint, \
    prompt_consent, return_path, csrf_digest, created_at, expires_at, decision, user_id, \
    auth_time, amr, granted_scopes";

#[derive(sqlx::FromRow)]
struct TransactionRow {
    id_digest: String,
    client_id: String,
    client_name: String,
    first_party: bool,
    scopes: String,
    login_hint: Option<String>,
    prompt_consent: bool,
    return_path: String,
    csrf_digest: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    decision: Option<String>,
    user_id: Option<Uuid>,
    auth_time: Option<DateTime<Utc>>,
    amr: Option<String>,
    granted_scopes: Option<String>,
}

impl From<TransactionRow> for LoginTransactionRecord {
    fn from(row: TransactionRow) -> Self {
        let outcome = match (row.decision.as_deref(), row.user_id) {
            (Some("approved"), Some(user_id)) => Some(LoginOutcome::Approved {
                user_id,
                auth_time: row.auth_time.unwrap_or(row.created_at),
                amr: split_words(row.amr.as_deref().unwrap_or_default()),
                granted_scopes: split_words(row.granted_scopes.as_deref().unwrap_or_default()),
            }),
            (Some("denied"), Some(user_id)) => Some(LoginOutcome::Denied { user_id }),
            _ => None,
        };
        Self {
            id_digest: row.id_digest,
            client_id: row.client_id,
            client_name: row.client_name,
            first_party: row.first_party,
            scopes: split_words(&row.scopes),
            login_hint: row.login_hint,
            prompt_consent: row.prompt_consent,
            return_path: row.return_path,
            csrf_digest: row.csrf_digest,
            created_at: row.created_at,
            expires_at: row.expires_at,
            outcome,
        }
    }
}

#[async_trait]
impl LoginTransactionStore for PostgresStore {
    async fn insert_login_transaction(
        &self,
        transaction: &LoginTransactionRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_transactions (id_digest, client_id, client_name, first_party,
                 scopes, login_hint, prompt_consent, return_path, csrf_digest, created_at,
                 expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&transaction.id_digest)
        .bind(&transaction.client_id)
        .bind(&transaction.client_name)
        .bind(transaction.first_party)
        .bind(join_words(&transaction.scopes))
        .bind(&transaction.login_hint)
        .bind(transaction.prompt_consent)
        .bind(&transaction.return_path)
        .bind(&transaction.csrf_digest)
        .bind(transaction.created_at)
        .bind(transaction.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn login_transaction(
        &self,
        id_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<LoginTransactionRecord>, StoreError> {
        let row: Option<TransactionRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM login_transactions WHERE id_digest = $1 AND expires_at > $2"
        ))
        .bind(id_digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(LoginTransactionRecord::from))
    }

    async fn set_login_csrf(
        &self,
        id_digest: &str,
        csrf_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE login_transactions SET csrf_digest = $2
             WHERE id_digest = $1 AND expires_at > $3 AND decision IS NULL",
        )
        .bind(id_digest)
        .bind(csrf_digest)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn complete_login_transaction(
        &self,
        id_digest: &str,
        outcome: &LoginOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (decision, user_id, auth_time, amr, granted) = match outcome {
            LoginOutcome::Approved {
                user_id,
                auth_time,
                amr,
                granted_scopes,
            } => (
                "approved",
                *user_id,
                Some(*auth_time),
                Some(join_words(amr)),
                Some(join_words(granted_scopes)),
            ),
            LoginOutcome::Denied { user_id } => ("denied", *user_id, None, None, None),
        };
        let result = sqlx::query(
            "UPDATE login_transactions
             SET decision = $2, user_id = $3, auth_time = $4, amr = $5, granted_scopes = $6,
                 csrf_digest = NULL
             WHERE id_digest = $1 AND expires_at > $7 AND decision IS NULL",
        )
        .bind(id_digest)
        .bind(decision)
        .bind(user_id)
        .bind(auth_time)
        .bind(amr)
        .bind(granted)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_expired_login_transactions(
        &self,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM login_transactions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn take_login_transaction(
        &self,
        id_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<LoginTransactionRecord>, StoreError> {
        let row: Option<TransactionRow> = sqlx::query_as(&format!(
            "DELETE FROM login_transactions
             WHERE id_digest = $1 AND expires_at > $2 AND decision IS NOT NULL
             RETURNING {COLUMNS}"
        ))
        .bind(id_digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(LoginTransactionRecord::from))
    }
}
