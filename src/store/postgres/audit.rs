//! The audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::store::audit::{AuditEvent, AuditStore};
use crate::store::StoreError;

#[derive(sqlx::FromRow)]
struct AuditRow {
    time: DateTime<Utc>,
    kind: String,
    subject: Option<String>,
    client_id: Option<String>,
    ip: Option<String>,
    request_id: Option<String>,
    actor: Option<String>,
    detail: Option<String>,
}

impl From<AuditRow> for AuditEvent {
    fn from(row: AuditRow) -> Self {
        Self {
            time: row.time,
            kind: row.kind,
            subject: row.subject,
            client_id: row.client_id,
            ip: row.ip,
            request_id: row.request_id,
            actor: row.actor,
            detail: row.detail,
        }
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn record_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events
                 (time, kind, subject, client_id, ip, request_id, actor, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.time)
        .bind(&event.kind)
        .bind(&event.subject)
        .bind(&event.client_id)
        .bind(&event.ip)
        .bind(&event.request_id)
        .bind(&event.actor)
        .bind(&event.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recent_audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT time, kind, subject, client_id, ip, request_id, actor, detail
             FROM audit_events ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AuditEvent::from).collect())
    }

    async fn prune_audit_events(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM audit_events WHERE id IN
                 (SELECT id FROM audit_events WHERE time < $1 ORDER BY id LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }
}
