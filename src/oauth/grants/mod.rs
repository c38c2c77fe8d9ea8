//! The grants behind the authorization code flow: codes issued at
//! `/authorize`, their exchange, refresh-token rotation, and the tokens
//! each of them issues. Each rule is a function over `AppState`, so it is
//! testable without HTTP; the token endpoint dispatches to them.

pub mod code;
pub mod issue;
pub mod refresh;

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::http::error::{ErrorCode, OAuthError};
use crate::server::AppState;
use crate::store::{AuditEvent, StoreError};

pub(crate) const INVALID_GRANT: OAuthError = OAuthError::new(
    ErrorCode::InvalidGrant,
    "the grant is invalid, expired, revoked or was issued to another client",
);

/// Logs a store failure and returns the fixed server error.
pub(crate) fn store_failed(error: &StoreError, step: &'static str) -> OAuthError {
    tracing::error!(error = ?error, step, "store failed");
    OAuthError::server_error()
}

/// The origin of a request (client address and request id), for the audit
/// log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The client's address (see `crate::http::client_ip`); `None` when a
    /// grant runs without an HTTP request.
    pub ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl RequestOrigin {
    /// Builds the origin of a request from `ip` with `headers`.
    pub fn new(ip: IpAddr, headers: &HeaderMap) -> Self {
        Self {
            ip: Some(ip),
            request_id: crate::http::request_id(headers).map(str::to_owned),
        }
    }
}

/// Records an audit event; a failure to record is logged, not returned,
/// so the response the client gets does not depend on it.
pub(crate) async fn audit(
    state: &AppState,
    origin: &RequestOrigin,
    kind: &str,
    subject: Option<String>,
    client_id: &str,
) {
    let event = AuditEvent {
        time: state.clock.now(),
        kind: kind.to_owned(),
        subject,
        client_id: Some(client_id.to_owned()),
        ip: origin.ip.map(|ip| ip.to_string()),
        request_id: origin.request_id.clone(),
    };
    if let Err(error) = state.store.record_audit_event(&event).await {
        tracing::error!(error = ?error, kind, "cannot record an audit event");
    }
}
