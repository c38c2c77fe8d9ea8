//! The grants behind the authorization code flow: codes issued at
//! `/authorize`, their exchange, refresh-token rotation, and the tokens
//! each of them issues. Each rule is a function over `AppState`, so it is
//! testable without HTTP; the token endpoint dispatches to them.

pub mod code;
pub mod issue;
pub mod refresh;

use crate::http::error::{ErrorCode, OAuthError};
use crate::server::AppState;
use crate::store::{AuditEvent, StoreError};

pub(crate) const INVALID_GRANT: OAuthError = OAuthError::new(
    ErrorCode::InvalidGrant,
    "the grant is invalid, expired, revoked or was issued to another client",
);

/// Logs a store failure and returns the fixed error for it: 503 while the
/// database is unavailable, else 500.
pub(crate) fn store_failed(error: &StoreError, step: &'static str) -> OAuthError {
    tracing::error!(error = ?error, step, "store failed");
    OAuthError::for_store(error)
}

/// Records an audit event about `client_id`'s grant; a failure to record
/// is logged, not returned, so the response the client gets does not
/// depend on it.
pub(crate) async fn audit(state: &AppState, kind: &str, subject: Option<String>, client_id: &str) {
    let event = AuditEvent {
        subject,
        client_id: Some(client_id.to_owned()),
        actor: Some(crate::audit::client_actor(client_id)),
        ..AuditEvent::new(kind, state.clock.now())
    };
    crate::audit::record(state.store.as_ref(), &event).await;
}
