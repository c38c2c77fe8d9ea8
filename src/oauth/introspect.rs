//! `POST /introspect` (RFC 7662).
//!
//! The caller authenticates as a confidential client (by the method it
//! registered) or as a resource server with the introspection credentials
//! `resources create` printed (Basic or in the body). A client sees the tokens issued to it; a
//! resource server sees the access tokens whose `aud` is its identifier.
//! Anything else (unknown, expired, revoked, not meant for the caller, or
//! not a token at all) is `{"active": false}` with no other member.
//!
//! Tokens are found by the digest of the presented string, so nothing is
//! parsed or decrypted: a malformed or forged token simply matches no
//! record. `token_type_hint` is ignored, as section 2.1 allows.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;

use std::net::IpAddr;

use super::client_auth::{self, AuthError, AuthFailure};
use super::credentials::PresentedCredentials;
use crate::http::client_ip::ClientIp;
use crate::http::cors::{self, CorsClient};
use crate::http::error::{no_store, OAuthError};
use crate::http::form::OAuthForm;
use crate::http::rate_limit::{CallerKey, Endpoint};
use crate::resources::verify_introspection_secret;
use crate::server::AppState;
use crate::store::{AccessTokenRecord, ResourceServer};
use crate::tokens::access::record_key;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new().route(
        "/introspect",
        cors::for_clients(post(introspect), state, &["POST"]),
    )
}

/// Who asks.
#[derive(Debug)]
pub enum Caller {
    Client(String),
    ResourceServer(String),
}

/// An introspection response (RFC 7662 section 2.2).
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

impl Introspection {
    pub fn inactive() -> Self {
        Self::default()
    }

    /// Describes `record` to `caller`: active only while the token is
    /// usable at `now` and meant for the caller.
    pub fn of(
        record: Option<&AccessTokenRecord>,
        caller: &Caller,
        issuer: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let Some(record) = record else {
            return Self::inactive();
        };
        let visible = match caller {
            Caller::Client(client_id) => &record.client_id == client_id,
            Caller::ResourceServer(identifier) => &record.audience == identifier,
        };
        if !visible || !record.is_active(now) {
            return Self::inactive();
        }
        Self {
            active: true,
            scope: Some(record.scope.clone()),
            client_id: Some(record.client_id.clone()),
            sub: Some(record.subject.clone()),
            aud: Some(record.audience.clone()),
            iss: Some(issuer.to_owned()),
            exp: Some(record.expires_at.timestamp()),
            iat: Some(record.issued_at.timestamp()),
            jti: Some(record.jti.clone()),
            token_type: Some("Bearer"),
        }
    }
}

impl IntoResponse for Introspection {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::OK, axum::Json(self)).into_response();
        no_store(response.headers_mut());
        response
    }
}

async fn introspect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    cors: CorsClient,
    headers: HeaderMap,
    form: OAuthForm,
) -> Response {
    match handle(&state, ip, &cors, &headers, &form).await {
        Ok(introspection) => introspection.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    ip: IpAddr,
    cors: &CorsClient,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Introspection, OAuthError> {
    let authenticated = match client_auth::read_credentials(headers, form) {
        Ok(presented) => authenticate_caller(state, cors, &presented).await,
        Err(error) => Err(error),
    };
    let caller =
        state.rate_limits.admit(
            Endpoint::Introspect,
            ip,
            authenticated,
            |caller| match caller {
                Caller::Client(client_id) => CallerKey::Client(client_id.clone()),
                Caller::ResourceServer(identifier) => CallerKey::ResourceServer(identifier.clone()),
            },
        )?;
    let token = form.require("token", "token is missing")?;
    let key = record_key(token, &state.data_keys.digester);
    let record = state.store.find_access_token(&key).await.map_err(|error| {
        tracing::error!(error = ?error, "access token lookup failed");
        OAuthError::for_store(&error)
    })?;
    let record = match record {
        Some(record) if client_deleted(state, &record.client_id).await? => None,
        other => other,
    };
    Ok(Introspection::of(
        record.as_ref(),
        &caller,
        &state.config.issuer,
        state.clock.now(),
    ))
}

/// Checks whether the client a token was issued to no longer exists. An
/// instance may issue a token in the moments before its client cache sees
/// a deletion made elsewhere, after the deletion revoked the recorded
/// tokens, so such a token is inactive by this check instead.
async fn client_deleted(state: &AppState, client_id: &str) -> Result<bool, OAuthError> {
    let client = state.registry.client(client_id).await.map_err(|error| {
        tracing::error!(error = ?error, %client_id, "client lookup failed");
        OAuthError::for_store(&error)
    })?;
    Ok(client.is_none())
}

/// Authenticates a client, or else a resource server by its introspection
/// credentials when the id names no client. A client is named to `cors`;
/// resource servers have no allowed origins.
async fn authenticate_caller(
    state: &AppState,
    cors: &CorsClient,
    presented: &PresentedCredentials,
) -> Result<Caller, OAuthError> {
    // RFC 7662 section 2.1 requires authentication, and a public client's
    // id alone authenticates nothing.
    if let PresentedCredentials::PublicClient { client_id } = presented {
        return Err(AuthError::Rejected {
            client_id: client_id.clone(),
            failure: AuthFailure::PublicClient,
        }
        .into());
    }
    match client_auth::authenticate(state, presented).await {
        Ok(client) => {
            cors.set_client(&client);
            Ok(Caller::Client(client.client_id.clone()))
        }
        Err(error) if error.is_unknown_client() => match presented {
            PresentedCredentials::Basic { client_id, secret }
            | PresentedCredentials::Post { client_id, secret } => {
                let resource = resource_server(state, client_id).await?;
                match resource {
                    Some(resource)
                        if verify_introspection_secret(
                            &resource,
                            secret.expose(),
                            &state.data_keys.digester,
                        ) =>
                    {
                        Ok(Caller::ResourceServer(resource.identifier))
                    }
                    Some(_) => Err(AuthError::Rejected {
                        client_id: client_id.clone(),
                        failure: AuthFailure::WrongSecret,
                    }
                    .into()),
                    None => Err(error.into()),
                }
            }
            _ => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    }
}

async fn resource_server(
    state: &AppState,
    introspection_client_id: &str,
) -> Result<Option<ResourceServer>, OAuthError> {
    state
        .store
        .resource_server_by_introspection_client(introspection_client_id)
        .await
        .map_err(|error| {
            tracing::error!(error = ?error, "resource server lookup failed");
            OAuthError::for_store(&error)
        })
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn record(now: DateTime<Utc>) -> AccessTokenRecord {
        AccessTokenRecord {
            jti: "j1".into(),
            digest: "d1".into(),
            client_id: "svc".into(),
            subject: "svc".into(),
            grant_id: None,
            grant_type: "client_credentials".into(),
            audience: "https://rs1.test/".into(),
            scope: "read".into(),
            issued_at: now,
            expires_at: now + Duration::minutes(10),
            revoked_at: None,
        }
    }

    #[test]
    fn owner_and_audience_see_active_token() {
        let now = Utc::now();
        let record = record(now);
        for caller in [
            Caller::Client("svc".into()),
            Caller::ResourceServer("https://rs1.test/".into()),
        ] {
            let seen = Introspection::of(Some(&record), &caller, "https://as.test", now);
            assert!(seen.active, "{caller:?}");
            assert_eq!(seen.aud.as_deref(), Some("https://rs1.test/"));
            assert_eq!(seen.iss.as_deref(), Some("https://as.test"));
            assert_eq!(seen.exp, Some(record.expires_at.timestamp()));
        }
    }

    #[test]
    fn others_dead_and_unknown_tokens_are_inactive() {
        let now = Utc::now();
        let mut revoked = record(now);
        revoked.revoked_at = Some(now);
        let owner = Caller::Client("svc".into());
        let cases = [
            (Some(record(now)), Caller::Client("other".into()), now),
            (
                Some(record(now)),
                Caller::ResourceServer("https://rs2.test/".into()),
                now,
            ),
            (Some(record(now)), owner, now + Duration::minutes(10)),
            (Some(revoked), Caller::Client("svc".into()), now),
            (None, Caller::Client("svc".into()), now),
        ];
        for (record, caller, at) in cases {
            let seen = Introspection::of(record.as_ref(), &caller, "https://as.test", at);
            assert_eq!(seen, Introspection::inactive(), "{caller:?}");
            let json = serde_json::to_value(&seen).unwrap();
            assert_eq!(json, serde_json::json!({ "active": false }));
        }
    }
}
