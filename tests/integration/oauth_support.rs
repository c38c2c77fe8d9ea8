//! Helpers for the token, introspection, revocation and discovery tests:
//! a server on a manual clock, resource servers with key pairs generated
//! here, clients registered through the same path as the CLI, and form
//! requests per endpoint.

use std::sync::Arc;

use chrono::Utc;
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, ES256};
use reqwest::StatusCode;
use serde_json::Value;
use tessera::clients::{ClientMetadata, Registrar};
use tessera::clock::{Clock, ManualClock};
use tessera::config::Config;
use tessera::resources::ResourceRequest;

use crate::harness::{Backend, TestApp, TestStore};

/// A server whose clock the test moves.
pub struct OauthApp {
    pub app: TestApp,
    pub clock: Arc<ManualClock>,
}

impl OauthApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_configured(backend, Config::default()).await
    }

    pub async fn spawn_configured(backend: Backend, config: Config) -> Self {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let store = TestStore::new(backend).await;
        let app =
            TestApp::spawn_configured(store, config, Arc::clone(&clock) as Arc<dyn Clock>).await;
        Self { app, clock }
    }

    pub fn issuer(&self) -> &str {
        &self.app.state.config.issuer
    }
}

/// Key type of a resource server's encryption key.
#[derive(Clone, Copy, Debug)]
pub enum KeyType {
    Ec,
    Rsa,
}

/// A registered resource server and what the test keeps of it.
pub struct Resource {
    pub identifier: String,
    /// Its encryption key pair as a private JWK, with `kid`.
    pub private_jwk: Jwk,
    pub kid: String,
    pub introspection_id: String,
    pub introspection_secret: String,
}

/// Registers a resource server with `scopes` and a fresh EC P-256 key.
pub async fn add_resource(oauth: &OauthApp, identifier: &str, scopes: &[&str]) -> Resource {
    let request = ResourceRequest {
        identifier: identifier.to_owned(),
        name: "Test API".into(),
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        ..ResourceRequest::default()
    };
    add_resource_with(oauth, KeyType::Ec, request).await
}

/// Registers `request` with a fresh key pair of `key_type` as its
/// encryption key.
pub async fn add_resource_with(
    oauth: &OauthApp,
    key_type: KeyType,
    mut request: ResourceRequest,
) -> Resource {
    let identifier = request.identifier.clone();
    let kid = format!("{identifier}#enc");
    let (mut private_jwk, mut public_jwk) = match key_type {
        KeyType::Ec => {
            let pair = EcKeyPair::generate(EcCurve::P256).unwrap();
            (pair.to_jwk_key_pair(), pair.to_jwk_public_key())
        }
        KeyType::Rsa => {
            let pair = RsaKeyPair::generate(2048).unwrap();
            (pair.to_jwk_key_pair(), pair.to_jwk_public_key())
        }
    };
    private_jwk.set_key_id(&kid);
    public_jwk.set_key_id(&kid);
    request.jwk = Some(serde_json::from_str(&public_jwk.to_string()).unwrap());
    let state = &oauth.app.state;
    let created = tessera::resources::create(
        state.store.as_ref(),
        &state.data_keys.digester,
        state.registry.key_sets(),
        &request,
        oauth.clock.now(),
    )
    .await
    .unwrap();
    Resource {
        identifier,
        private_jwk,
        kid,
        introspection_id: created.resource.introspection_client_id.clone(),
        introspection_secret: created.introspection_secret.expose().to_owned(),
    }
}

/// A registered client and its secret, when it has one.
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

/// Metadata of a `client_credentials` client using `auth_method`.
pub fn service(auth_method: &str, scopes: &str, default_resource: Option<&str>) -> ClientMetadata {
    ClientMetadata {
        client_name: Some("Service".into()),
        grant_types: Some(vec!["client_credentials".into()]),
        scope: Some(scopes.to_owned()),
        token_endpoint_auth_method: Some(auth_method.to_owned()),
        default_resource: default_resource.map(str::to_owned),
        ..ClientMetadata::default()
    }
}

/// Registers a client as an administrator would.
pub async fn add_client(oauth: &OauthApp, metadata: ClientMetadata) -> TestClient {
    let state = &oauth.app.state;
    let registered = tessera::clients::register(
        state.store.as_ref(),
        &state.data_keys.digester,
        &metadata,
        Registrar::Administrator,
        oauth.clock.now(),
    )
    .await
    .unwrap();
    TestClient {
        id: registered.client.client_id.clone(),
        secret: registered
            .client_secret
            .map(|secret| secret.expose().to_owned())
            .unwrap_or_default(),
    }
}

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    Nothing,
}

/// Sends a form to `path` with `auth`, encoding `params`.
pub async fn post_form(
    oauth: &OauthApp,
    path: &str,
    auth: Auth<'_>,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let mut params: Vec<(&str, &str)> = params.to_vec();
    let mut request = oauth.app.client.post(oauth.app.url(path));
    match auth {
        Auth::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
        Auth::Post(id, secret) => {
            params.push(("client_id", id));
            params.push(("client_secret", secret));
        }
        Auth::Nothing => {}
    }
    request.form(&params).send().await.unwrap()
}

/// Sends a raw body to `path` with `content_type` (none when `None`).
pub async fn post_raw(
    oauth: &OauthApp,
    path: &str,
    auth: Auth<'_>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = oauth.app.client.post(oauth.app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Auth::Basic(id, secret) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap()
}

/// Requests a client-credentials token.
pub async fn token(oauth: &OauthApp, auth: Auth<'_>, params: &[(&str, &str)]) -> reqwest::Response {
    let mut all = vec![("grant_type", "client_credentials")];
    all.extend_from_slice(params);
    post_form(oauth, "/token", auth, &all).await
}

/// Requests a token and returns the `access_token`, asserting success.
pub async fn access_token(oauth: &OauthApp, auth: Auth<'_>, params: &[(&str, &str)]) -> String {
    let response = token(oauth, auth, params).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Introspects `token` as `auth`; returns the JSON body, asserting 200.
pub async fn introspect(oauth: &OauthApp, auth: Auth<'_>, token: &str) -> Value {
    let response = post_form(oauth, "/introspect", auth, &[("token", token)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// Asserts an OAuth error response (RFC 6749 section 5.2) and returns it.
pub async fn assert_oauth_error(
    response: reqwest::Response,
    status: StatusCode,
    code: &str,
) -> reqwest::header::HeaderMap {
    let received = response.status();
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    assert_eq!(received, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description
            .bytes()
            .all(|byte| matches!(byte, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
        "{description:?}"
    );
    headers
}

/// An ES256 key pair a `private_key_jwt` client signs with.
pub struct ClientKey {
    pub pair: EcKeyPair,
    pub kid: String,
}

impl ClientKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            pair: EcKeyPair::generate(EcCurve::P256).unwrap(),
            kid: kid.to_owned(),
        }
    }

    /// The public JWK Set to register.
    pub fn jwks(&self) -> Value {
        let mut public = self.pair.to_jwk_public_key();
        public.set_key_id(&self.kid);
        public.set_key_use("sig");
        let public: Value = serde_json::from_str(&public.to_string()).unwrap();
        serde_json::json!({ "keys": [public] })
    }

    /// Signs `claims` with ES256 and this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let signer = ES256
            .signer_from_jwk(&self.pair.to_jwk_private_key())
            .unwrap();
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&self.kid);
        josekit::jws::serialize_compact(claims.to_string().as_bytes(), &header, &signer).unwrap()
    }
}

/// The body parameters that present `assertion`.
pub fn assertion_params(assertion: &str) -> [(&'static str, String); 2] {
    [
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion", assertion.to_owned()),
    ]
}
