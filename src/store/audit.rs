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
    /// The acting party: `user:<id>`, `client:<id>`, `cli` or `server`.
    pub actor: Option<String>,
    /// A short, secret-free description, such as a key id or the scopes a
    /// user approved.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// Starts an event of `kind` at `time` with every other field empty.
    pub fn new(kind: &str, time: DateTime<Utc>) -> Self {
        Self {
            time,
            kind: kind.to_owned(),
            subject: None,
            client_id: None,
            ip: None,
            request_id: None,
            actor: None,
            detail: None,
        }
    }
}

#[async_trait]
pub trait AuditStore {
    async fn record_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Returns up to `limit` events, newest first.
    async fn recent_audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError>;

    /// Deletes up to `limit` events older than `before`; returns how many.
    async fn prune_audit_events(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}
