//! Precedence of token lifetimes: a client's override, else a resource
//! server's (access tokens only), else the configured default.
//!
//! - Access token: when the client and the resource server both set one,
//!   the shorter wins, so neither side gets tokens that live longer than
//!   it asked for. A token for Tessera's own userinfo endpoint has no
//!   resource server, so the client's override or `tokens.access_token_ttl`
//!   applies.
//! - Refresh token, idle: each rotation gives the new token this long, but
//!   never past the end of its grant.
//! - Refresh token, absolute: fixed on the grant when the user approves
//!   (`GrantRecord::expires_at`), so a later change to the client applies
//!   to new grants only.

use chrono::Duration;

use crate::config::TokenLifetimes;
use crate::store::{Client, ResourceServer};

/// Returns the lifetime of an access token issued to `client` for
/// `resource` (`None` for Tessera's own userinfo endpoint).
pub fn access_token_ttl(
    defaults: &TokenLifetimes,
    client: &Client,
    resource: Option<&ResourceServer>,
) -> Duration {
    let resource_ttl = resource.and_then(|resource| resource.access_token_ttl_seconds);
    match (client.access_token_ttl_seconds, resource_ttl) {
        (Some(client_ttl), Some(resource_ttl)) => Duration::seconds(client_ttl.min(resource_ttl)),
        (Some(ttl), None) | (None, Some(ttl)) => Duration::seconds(ttl),
        (None, None) => defaults.access_token_ttl.as_chrono(),
    }
}

/// Returns how long an unused refresh token of `client` stays valid.
pub fn refresh_token_idle_ttl(defaults: &TokenLifetimes, client: &Client) -> Duration {
    client.refresh_token_idle_ttl_seconds.map_or_else(
        || defaults.refresh_token_idle_ttl.as_chrono(),
        Duration::seconds,
    )
}

/// Returns how long after approval the refresh tokens of a grant of
/// `client` keep working, however often they rotate.
pub fn refresh_token_absolute_ttl(defaults: &TokenLifetimes, client: &Client) -> Duration {
    client.refresh_token_absolute_ttl_seconds.map_or_else(
        || defaults.refresh_token_absolute_ttl.as_chrono(),
        Duration::seconds,
    )
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::store::{ApplicationType, AuthMethod, EncryptionKeySource};

    fn client(access: Option<i64>, idle: Option<i64>, absolute: Option<i64>) -> Client {
        Client {
            client_id: "c1".into(),
            name: "C1".into(),
            application_type: ApplicationType::Web,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            response_types: Vec::new(),
            scopes: Vec::new(),
            auth_method: AuthMethod::None,
            secret_digest: None,
            jwks: None,
            jwks_uri: None,
            default_resource: None,
            id_token_signed_response_alg: "RS256".into(),
            first_party: false,
            require_pkce: true,
            self_registered: false,
            registration_token_digest: None,
            allowed_origins: Vec::new(),
            access_token_ttl_seconds: access,
            refresh_token_idle_ttl_seconds: idle,
            refresh_token_absolute_ttl_seconds: absolute,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn resource(access: Option<i64>) -> ResourceServer {
        ResourceServer {
            identifier: "https://rs.test/".into(),
            name: "RS".into(),
            scopes: Vec::new(),
            access_token_ttl_seconds: access,
            signing_alg: "ES256".into(),
            encryption_key: EncryptionKeySource::Jwk(json!({})),
            introspection_client_id: "rs".into(),
            introspection_secret_digest: "d".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn access_token_ttl_takes_the_shorter_override() {
        let defaults = TokenLifetimes::default();
        let global = defaults.access_token_ttl.as_chrono();
        let cases = [
            (None, None, global),
            (Some(120), None, Duration::seconds(120)),
            (None, Some(900), Duration::seconds(900)),
            (Some(120), Some(900), Duration::seconds(120)),
            (Some(3600), Some(900), Duration::seconds(900)),
        ];
        for (client_ttl, resource_ttl, expected) in cases {
            let ttl = access_token_ttl(
                &defaults,
                &client(client_ttl, None, None),
                Some(&resource(resource_ttl)),
            );
            assert_eq!(
                ttl, expected,
                "client {client_ttl:?}, resource {resource_ttl:?}"
            );
        }
        let own = access_token_ttl(&defaults, &client(None, None, None), None);
        assert_eq!(own, global);
        let own = access_token_ttl(&defaults, &client(Some(60), None, None), None);
        assert_eq!(own, Duration::seconds(60));
    }

    #[test]
    fn refresh_ttls_fall_back_to_the_configuration() {
        let defaults = TokenLifetimes::default();
        let plain = client(None, None, None);
        assert_eq!(
            refresh_token_idle_ttl(&defaults, &plain),
            defaults.refresh_token_idle_ttl.as_chrono()
        );
        assert_eq!(
            refresh_token_absolute_ttl(&defaults, &plain),
            defaults.refresh_token_absolute_ttl.as_chrono()
        );
        let custom = client(None, Some(1800), Some(3600));
        assert_eq!(
            refresh_token_idle_ttl(&defaults, &custom),
            Duration::seconds(1800)
        );
        assert_eq!(
            refresh_token_absolute_ttl(&defaults, &custom),
            Duration::seconds(3600)
        );
    }
}
