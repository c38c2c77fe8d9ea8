//! The audit log.

use async_trait::async_trait;

use super::{from_millis, to_millis, SqliteStore};
use crate::store::audit::{AuditEvent, AuditStore};
use crate::store::StoreError;

type AuditRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (time, kind, subject, client_id, ip, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(to_millis(event.time))
        .bind(&event.kind)
        .bind(&event.subject)
        .bind(&event.client_id)
        .bind(&event.ip)
        .bind(&event.request_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recent_audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT time, kind, subject, client_id, ip, request_id
             FROM audit_events ORDER BY id DESC LIMIT ?1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(time, kind, subject, client_id, ip, request_id)| AuditEvent {
                    time: from_millis(time),
                    kind,
                    subject,
                    client_id,
                    ip,
                    request_id,
                },
            )
            .collect())
    }
}
