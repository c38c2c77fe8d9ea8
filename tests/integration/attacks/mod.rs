//! Attacks from the OAuth 2.0 Security BCP (RFC 9700), the JWT BCP (RFC
//! 8725) and OIDC Core section 16, each sent to a real server over HTTP.
//! `docs/security.md` maps every item of those documents to its test.

mod grants;
mod input;
mod jose;
mod pages;
mod redirect;

use reqwest::StatusCode;
use serde_json::Value;
use tessera::clients::ClientMetadata;
use tessera::config::Config;
use tessera::store::Client;

use crate::authorize::{spawn_on, PASSWORD};
use crate::harness::{Backend, TestApp};
use crate::login::{add_user, fast_config};

/// A server with user `u1` and the confidential client `rp1`, whose
/// redirect URIs are `https://rp.test/cb` and two loopback ones.
pub struct Setup {
    pub app: TestApp,
    pub client: Client,
    pub secret: String,
}

impl Setup {
    pub async fn new(backend: Backend) -> Self {
        Self::configured(backend, fast_config()).await
    }

    pub async fn configured(backend: Backend, config: Config) -> Self {
        let app = spawn_on(backend, config).await;
        add_user(&app, "u1", PASSWORD).await;
        let (client, secret) = add_client(&app, rp1_metadata()).await;
        Self {
            app,
            client,
            secret,
        }
    }

    /// Sends a form to `/token` with `rp1`'s secret in HTTP Basic.
    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url("/token"))
            .basic_auth(&self.client.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

/// Metadata of `rp1`, the same as `authorize::add_client` registers.
pub fn rp1_metadata() -> ClientMetadata {
    ClientMetadata {
        client_name: Some("Example Calendar".into()),
        redirect_uris: vec![
            "https://rp.test/cb".into(),
            "http://127.0.0.1/callback".into(),
            "http://[::1]/callback".into(),
        ],
        post_logout_redirect_uris: vec!["https://rp.test/bye".into()],
        scope: Some("openid email offline_access".into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        ..ClientMetadata::default()
    }
}

pub use crate::authorize::register_client as add_client;

/// Percent-encodes `value` for a query string or form body.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Asserts a JSON OAuth error with `status` and `code`.
pub async fn assert_json_error(response: reqwest::Response, status: StatusCode, code: &str) {
    let received = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(received, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
}
