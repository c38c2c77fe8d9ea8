//! The audit log: security-relevant events recorded in the store, with
//! time, kind, actor, client, subject, client IP and request id. An event
//! never contains a password, token, code or other secret.
//!
//! Recording is best effort: a failure is logged and never turns the
//! request that caused the event into an error. An event recorded while a
//! request is handled gets that request's client IP and request id from
//! [`with_request_context`], unless it names its own.
//!
//! Access tokens issued by the client credentials grant get no event: each
//! is already recorded with its client, audience, scope and time in the
//! access-token records, and an extra write per token would halve the
//! grant's throughput.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::http::client_ip::resolve;
use crate::server::AppState;
use crate::store::{AuditEvent, Store};

/// The request an event happens in.
#[derive(Clone, Debug)]
struct RequestContext {
    ip: Option<String>,
    request_id: Option<String>,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// Middleware that makes the request's client IP (resolved through
/// `http.trusted_proxies`) and request id available to the events recorded
/// while it is handled. It must run inside the layer that sets the request
/// id.
pub async fn with_request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let http = &state.config.http;
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            let headers = request.headers();
            resolve(
                peer.ip(),
                headers,
                &http.trusted_proxies,
                http.client_ip_header,
            )
        });
    let context = RequestContext {
        ip: ip.map(|ip| ip.to_string()),
        request_id: request_id(request.headers()),
    };
    REQUEST.scope(context, next.run(request)).await
}

/// Event kinds, as dotted names.
pub mod kind {
    pub const LOGIN_SUCCESS: &str = "login.success";
    pub const LOGIN_FAILURE: &str = "login.failure";
    pub const LOGIN_LOCKOUT: &str = "login.lockout";
    pub const CONSENT_GRANTED: &str = "consent.granted";
    pub const SESSION_ENDED: &str = "session.ended";
    pub const TOKENS_ISSUED: &str = "tokens.issued";
    pub const CODE_REPLAY: &str = "authorization_code.replay";
    pub const REFRESH_REUSE: &str = "refresh_token.reuse";
    pub const GRANT_REVOKED: &str = "grant.revoked";
    pub const CONSENT_WITHDRAWN: &str = "consent.withdrawn";
    pub const USER_DISABLED: &str = "user.disabled";
    pub const USER_ENABLED: &str = "user.enabled";
    pub const REGISTRATION_TOKEN_CREATED: &str = "registration_token.created";
    pub const ACCESS_TOKEN_REVOKED: &str = "access_token.revoked";
    pub const CLIENT_CREATED: &str = "client.created";
    pub const CLIENT_UPDATED: &str = "client.updated";
    pub const CLIENT_SECRET_ROTATED: &str = "client.secret_rotated";
    pub const CLIENT_DELETED: &str = "client.deleted";
    pub const RESOURCE_CREATED: &str = "resource.created";
    pub const RESOURCE_DELETED: &str = "resource.deleted";
    pub const KEY_CREATED: &str = "key.created";
    pub const KEY_ROTATED: &str = "key.rotated";
    pub const KEY_REVOKED: &str = "key.revoked";
    pub const MASTER_KEY_ROTATED: &str = "master_key.rotated";
    pub const BACKUP_CREATED: &str = "backup.created";
}

/// Actor of events caused by an operator's command.
pub const CLI_ACTOR: &str = "cli";

/// Actor of events the server causes on its own, such as scheduled keys.
pub const SERVER_ACTOR: &str = "server";

/// Records `event`, logging a failure instead of returning it.
pub async fn record(store: &dyn Store, event: &AuditEvent) {
    let mut event = event.clone();
    // Outside a request (the CLI, background tasks) there is no context.
    let _ = REQUEST.try_with(|context| {
        if event.ip.is_none() {
            event.ip.clone_from(&context.ip);
        }
        if event.request_id.is_none() {
            event.request_id.clone_from(&context.request_id);
        }
    });
    if let Err(error) = store.record_audit_event(&event).await {
        tracing::error!(%error, kind = %event.kind, "cannot record an audit event");
    }
}

/// A configuration change: what changed and who changed it.
pub struct Change<'a> {
    pub kind: &'a str,
    pub actor: String,
    /// The changed client, when a client changed.
    pub client_id: Option<&'a str>,
    /// The other thing that changed: a resource identifier, a key id, or a
    /// client's allowed origins and lifetime overrides.
    pub detail: Option<String>,
}

/// Records a configuration change made by an operator, a client or the
/// server itself.
pub async fn record_change(store: &dyn Store, change: Change<'_>, now: DateTime<Utc>) {
    let event = AuditEvent {
        client_id: change.client_id.map(str::to_owned),
        actor: Some(change.actor),
        detail: change.detail,
        ..AuditEvent::new(change.kind, now)
    };
    record(store, &event).await;
}

/// Returns the request id the request-id layer set or kept, if any.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Returns the actor string of a user.
pub fn user_actor(user_id: impl std::fmt::Display) -> String {
    format!("user:{user_id}")
}

/// Returns the actor string of a client.
pub fn client_actor(client_id: &str) -> String {
    format!("client:{client_id}")
}
