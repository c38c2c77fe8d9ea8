//! Ending what users allowed clients: revoking grants, withdrawing
//! consents, disabling users and ending a deleted client's tokens. The
//! CLI, the account page and client deletion all go through here, so each
//! change revokes the same records and writes the same audit events.
//!
//! Revoking a grant deletes its refresh tokens and marks its recorded
//! access tokens revoked in one transaction, so introspection returns
//! `active: false` for them at once. Resource servers that verify tokens
//! locally keep accepting them until they expire.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::{self, kind};
use crate::store::{AuditEvent, AuthorizationFilter, Store, StoreError, UserRecord};

/// The records one withdrawal, disabling or client deletion ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ended {
    /// Ids of the grants revoked.
    pub grants: Vec<String>,
    /// Consents deleted.
    pub consents: u64,
    /// Browser sessions ended.
    pub sessions: u64,
    /// Access tokens marked revoked apart from those of revoked grants.
    pub access_tokens: u64,
}

/// Revokes one grant; returns whether it was live before.
pub async fn revoke_grant(
    store: &dyn Store,
    grant_id: &str,
    actor: String,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(grant) = store.grant(grant_id).await? else {
        return Ok(false);
    };
    if !store.revoke_grant(grant_id, now).await? {
        return Ok(false);
    }
    let event = AuditEvent {
        subject: Some(grant.user_id.to_string()),
        client_id: Some(grant.client_id),
        actor: Some(actor),
        detail: Some(format!("grant {grant_id}")),
        ..AuditEvent::new(kind::GRANT_REVOKED, now)
    };
    audit::record(store, &event).await;
    Ok(true)
}

/// Withdraws what `user_id` allowed `client_id`: deletes the consent and
/// revokes every grant of that user to that client, so the client's
/// refresh tokens stop working and it must ask again.
pub async fn withdraw_consent(
    store: &dyn Store,
    user_id: Uuid,
    client_id: &str,
    actor: String,
    now: DateTime<Utc>,
) -> Result<Ended, StoreError> {
    let filter = AuthorizationFilter::user_and_client(user_id, client_id);
    let consents = store.delete_consents(&filter).await?;
    let grants = store.revoke_grants(&filter, now).await?;
    if consents == 0 && grants.is_empty() {
        return Ok(Ended::default());
    }
    let event = AuditEvent {
        subject: Some(user_id.to_string()),
        client_id: Some(client_id.to_owned()),
        actor: Some(actor),
        detail: Some(revoked_detail(&grants)),
        ..AuditEvent::new(kind::CONSENT_WITHDRAWN, now)
    };
    audit::record(store, &event).await;
    Ok(Ended {
        grants,
        consents,
        ..Ended::default()
    })
}

/// Disables `user`: their password is no longer accepted, their browser
/// sessions end and every grant they gave is revoked. Consents are kept,
/// so re-enabling the user does not ask them again.
pub async fn disable_user(
    store: &dyn Store,
    user: &UserRecord,
    actor: String,
    now: DateTime<Utc>,
) -> Result<Ended, StoreError> {
    store.set_user_disabled(user.id, true, now).await?;
    let sessions = store.delete_user_sessions(user.id).await?;
    let grants = store
        .revoke_grants(&AuthorizationFilter::user(user.id), now)
        .await?;
    let event = AuditEvent {
        subject: Some(user.id.to_string()),
        actor: Some(actor),
        detail: Some(format!(
            "{sessions} session(s) ended, {}",
            revoked_detail(&grants)
        )),
        ..AuditEvent::new(kind::USER_DISABLED, now)
    };
    audit::record(store, &event).await;
    Ok(Ended {
        grants,
        sessions,
        ..Ended::default()
    })
}

/// Ends what remains of a deleted client. The store deletes its grants with
/// their codes and refresh tokens together with the client. This marks
/// every access token issued to it revoked, whatever the grant type, and
/// deletes the consents users gave it. Call it after the client record is
/// deleted. An instance whose client cache has not yet seen the deletion
/// may still issue a client-credentials token for up to 2 seconds, and
/// introspection treats such a token as inactive because its client is
/// gone.
pub async fn end_client(
    store: &dyn Store,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<Ended, StoreError> {
    let access_tokens = store.revoke_client_access_tokens(client_id, now).await?;
    let consents = store
        .delete_consents(&AuthorizationFilter::client(client_id))
        .await?;
    Ok(Ended {
        access_tokens,
        consents,
        ..Ended::default()
    })
}

/// Describes revoked grants for an audit event: their number, never more
/// than the count, so the detail stays short.
fn revoked_detail(grants: &[String]) -> String {
    format!("{} grant(s) revoked", grants.len())
}
