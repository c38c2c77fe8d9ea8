//! The audit log of security-relevant events. An event never contains a
//! password, token or other secret.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// One audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub time: DateTime<Utc>,
    /// The event type, as a dotted name such as `login.failure`.
    pub kind: String,
    /// The user the event concerns (their id), when known.
    pub subject: Option<String>,
    pub client_id: Option<String>,
    /// The client's network address.
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

#[async_trait]
pub trait AuditStore {
    async fn record_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Returns up to `limit` events, newest first.
    async fn recent_audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError>;
}
