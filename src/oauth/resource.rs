//! The `resource` parameter (RFC 8707) and the scopes a token for one
//! resource server may carry.
//!
//! Policy: a client may name a resource server only if it was given at
//! least one of that server's scopes, or the server is the client's default
//! resource. Anything else is `invalid_target` (RFC 8707 section 2). Scope
//! names are global, so a client scope that the resource server defines is
//! grantable for it; the built-in OpenID scopes never are.

use std::ops::Deref;

use crate::clients::metadata::check_resource_uri;
use crate::http::error::{ErrorCode, OAuthError};
use crate::oauth::scope::{Scopes, BUILT_IN_SCOPES};
use crate::store::{Client, ResourceServer};

const INVALID_TARGET: OAuthError = OAuthError::new(
    ErrorCode::InvalidTarget,
    "the requested resource is unknown or not allowed for this client",
);

const NO_AUDIENCE: OAuthError = OAuthError::new(
    ErrorCode::InvalidTarget,
    "name a resource: the client has no default resource",
);

/// Returns the resource identifier a request is for: the `resource`
/// parameter, else the client's default resource. Checks the syntax only
/// (an absolute URI without a fragment).
pub fn requested_resource<'a>(
    client: &'a Client,
    resource: Option<&'a str>,
) -> Result<&'a str, OAuthError> {
    let identifier = resource
        .or(client.default_resource.as_deref())
        .ok_or(NO_AUDIENCE)?;
    check_resource_uri(identifier).map_err(|_| INVALID_TARGET)?;
    Ok(identifier)
}

/// Checks that `client` may obtain tokens for `resource`, the registered
/// server the request named (`None` when none is registered under it).
pub fn check_target<R: Deref<Target = ResourceServer>>(
    client: &Client,
    resource: Option<R>,
) -> Result<R, OAuthError> {
    let resource = resource.ok_or(INVALID_TARGET)?;
    let is_default = client.default_resource.as_deref() == Some(resource.identifier.as_str());
    let holds_scope = client
        .scopes
        .iter()
        .any(|scope| resource.scopes.contains(scope));
    if is_default || holds_scope {
        Ok(resource)
    } else {
        Err(INVALID_TARGET)
    }
}

/// Returns the scopes a token for `resource` gets: the requested scopes
/// that the client was given and the resource server defines, or every
/// such scope when the request named none. Built-in OpenID scopes are
/// dropped. An empty result is `invalid_scope`, so no token carries an
/// empty `scope`.
pub fn grant_scopes(
    requested: Option<&Scopes>,
    client: &Client,
    resource: &ResourceServer,
) -> Result<Scopes, OAuthError> {
    let grantable = |scope: &str| {
        !BUILT_IN_SCOPES.contains(&scope)
            && client.scopes.iter().any(|held| held == scope)
            && resource.scopes.iter().any(|defined| defined == scope)
    };
    let granted = match requested {
        Some(requested) => requested.retain(grantable),
        None => client
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|scope| grantable(scope))
            .collect(),
    };
    if granted.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "none of the requested scopes may be granted for this resource",
        ));
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::store::{ApplicationType, AuthMethod, EncryptionKeySource};

    fn client(scopes: &[&str], default_resource: Option<&str>) -> Client {
        Client {
            client_id: "svc".into(),
            name: "Service".into(),
            application_type: ApplicationType::Web,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["client_credentials".into()],
            response_types: vec![],
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            auth_method: AuthMethod::ClientSecretBasic,
            secret_digest: None,
            jwks: None,
            jwks_uri: None,
            default_resource: default_resource.map(str::to_owned),
            id_token_signed_response_alg: "RS256".into(),
            first_party: false,
            require_pkce: true,
            self_registered: false,
            registration_token_digest: None,
            allowed_origins: Vec::new(),
            access_token_ttl_seconds: None,
            refresh_token_idle_ttl_seconds: None,
            refresh_token_absolute_ttl_seconds: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn resource(identifier: &str, scopes: &[&str]) -> ResourceServer {
        ResourceServer {
            identifier: identifier.into(),
            name: "API".into(),
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            access_token_ttl_seconds: None,
            signing_alg: "ES256".into(),
            encryption_key: EncryptionKeySource::Jwk(json!({})),
            introspection_client_id: "rs".into(),
            introspection_secret_digest: "d".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn resource_parameter_wins_over_default() {
        let client = client(&[], Some("https://rs1.test/"));
        assert_eq!(
            requested_resource(&client, Some("https://rs2.test/")).unwrap(),
            "https://rs2.test/"
        );
        assert_eq!(
            requested_resource(&client, None).unwrap(),
            "https://rs1.test/"
        );
    }

    #[test]
    fn no_resource_and_no_default_is_invalid_target() {
        let err = requested_resource(&client(&["read"], None), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn malformed_resources_are_invalid_target() {
        let client = client(&[], None);
        for value in [
            "relative/path",
            "https://rs.test/#frag",
            "https://rs .test/",
        ] {
            let err = requested_resource(&client, Some(value)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidTarget, "{value}");
        }
    }

    #[test]
    fn target_needs_a_scope_or_default() {
        let api = resource("https://rs1.test/", &["read", "write"]);
        assert!(check_target(&client(&["read"], None), Some(&api)).is_ok());
        assert!(check_target(&client(&[], Some("https://rs1.test/")), Some(&api)).is_ok());
        let err = check_target(&client(&["other"], None), Some(&api)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTarget);
        let err = check_target(&client(&["read"], None), None::<&ResourceServer>).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn scopes_are_limited_to_client_and_resource() {
        let api = resource("https://rs1.test/", &["read", "write", "admin"]);
        let client = client(&["read", "write", "openid", "other"], None);
        let requested = Scopes::parse("read admin other openid unknown").unwrap();
        let granted = grant_scopes(Some(&requested), &client, &api).unwrap();
        assert_eq!(granted.to_string(), "read");
    }

    #[test]
    fn omitted_scope_grants_every_allowed_scope() {
        let api = resource("https://rs1.test/", &["read", "write", "admin"]);
        let client = client(&["write", "read", "openid"], None);
        let granted = grant_scopes(None, &client, &api).unwrap();
        assert_eq!(granted.to_string(), "read write");
    }

    #[test]
    fn nothing_grantable_is_invalid_scope() {
        let api = resource("https://rs1.test/", &["read"]);
        let holder = client(&["read"], None);
        let requested = Scopes::parse("write").unwrap();
        let err = grant_scopes(Some(&requested), &holder, &api).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope);
        let err = grant_scopes(None, &client(&["openid"], None), &api).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope);
    }
}
