//! Discovery documents: `{issuer}/.well-known/openid-configuration` (OIDC
//! Discovery section 4) and `/.well-known/oauth-authorization-server{path}`
//! (RFC 8414 section 3), where `{path}` is the issuer's path.
//!
//! Both list only the endpoints and features that exist, and every URL is
//! built from the configured issuer, never from `Host` or forwarded
//! headers (RFC 8414 section 3.3). Any origin may read them (CORS).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::client_auth::ASSERTION_ALGORITHMS;
use crate::config::{Config, RegistrationPolicy};
use crate::http::cors;
use crate::http::error::OAuthError;
use crate::server::AppState;
use crate::store::ResourceServer;

/// `Cache-Control: max-age` of the documents. They change only with the
/// configuration or the registered scopes.
pub const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(300);

/// Path of the OpenID Provider configuration, under the issuer's path.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// Prefix of the RFC 8414 metadata path; the issuer's path follows it.
pub const AUTHORIZATION_SERVER_PATH: &str = "/.well-known/oauth-authorization-server";

/// Routes the OpenID configuration; the caller mounts it under the
/// issuer's path.
pub fn router() -> Router<AppState> {
    Router::new().route(
        OPENID_CONFIGURATION_PATH,
        get(document).layer(cors::public_documents()),
    )
}

/// Routes the RFC 8414 document at the root, with the issuer's path after
/// the well-known prefix.
pub fn root_router(issuer_path: &str) -> Router<AppState> {
    Router::new().route(
        &format!("{AUTHORIZATION_SERVER_PATH}{issuer_path}"),
        get(document).layer(cors::public_documents()),
    )
}

async fn document(State(state): State<AppState>) -> Response {
    let resources = match state.store.resource_servers().await {
        Ok(resources) => resources,
        Err(error) => {
            tracing::error!(error = ?error, "listing resource servers for discovery failed");
            return OAuthError::for_store(&error).into_response();
        }
    };
    let body = metadata(&state.config, &resources);
    let cache_control = format!("public, max-age={}", DISCOVERY_MAX_AGE.as_secs());
    let mut response = (StatusCode::OK, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// Builds the metadata document for `config`, listing the built-in scopes
/// and the scopes of the registered resource servers.
pub fn metadata(config: &Config, resources: &[ResourceServer]) -> Value {
    let issuer = &config.issuer;
    let mut scopes: Vec<&str> = resources
        .iter()
        .flat_map(|resource| resource.scopes.iter().map(String::as_str))
        .chain(crate::oauth::scope::BUILT_IN_SCOPES)
        .collect();
    scopes.sort_unstable();
    scopes.dedup();

    let client_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    let mut token_methods = client_methods.to_vec();
    token_methods.push("none");

    let mut document = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "token_endpoint": format!("{issuer}/token"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        // OIDC Discovery section 3 defaults `request_uri_parameter_supported`
        // to true, so its absence would promise request_uri.
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": config
            .keys
            .signing_algs
            .iter()
            .map(|alg| alg.as_str())
            .collect::<Vec<_>>(),
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr",
            "azp", "name", "given_name", "family_name", "preferred_username", "email",
            "email_verified"
        ],
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": token_methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "introspection_endpoint_auth_methods_supported": client_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": token_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
    });
    if config.registration.policy != RegistrationPolicy::Closed {
        document["registration_endpoint"] = json!(format!("{issuer}/register"));
    }
    document
}

pub use crate::http::issuer_path;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_path_of_root_and_tenant() {
        assert_eq!(issuer_path("https://id.example.com"), "");
        assert_eq!(issuer_path("https://id.example.com/tenant-a"), "/tenant-a");
        assert_eq!(issuer_path("https://id.example.com/a/b"), "/a/b");
    }

    #[test]
    fn urls_come_from_the_issuer() {
        let config = Config {
            issuer: "https://id.example.com/t1".into(),
            ..Config::default()
        };
        let document = metadata(&config, &[]);
        assert_eq!(document["issuer"], "https://id.example.com/t1");
        assert_eq!(
            document["token_endpoint"],
            "https://id.example.com/t1/token"
        );
        assert_eq!(document["jwks_uri"], "https://id.example.com/t1/jwks");
        assert!(document.get("registration_endpoint").is_none());
    }

    #[test]
    fn open_registration_is_listed() {
        let mut config = Config::default();
        config.registration.policy = RegistrationPolicy::Open;
        let document = metadata(&config, &[]);
        assert_eq!(
            document["registration_endpoint"],
            "http://127.0.0.1:8080/register"
        );
    }
}
