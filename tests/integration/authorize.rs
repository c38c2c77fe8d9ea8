//! The authorization code flow end to end: `/authorize` with the login and
//! consent pages, the code exchange, refresh-token rotation and the ID
//! token, on real servers.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tessera::clients::{register, ClientMetadata, Registrar};
use tessera::clock::SystemClock;
use tessera::config::{Config, HumanDuration};
use tessera::http::error::OAuthError;
use tessera::oauth::grants::code::{exchange_code, CodeExchange};
use tessera::oauth::grants::issue::TokenResponse;
use tessera::oauth::grants::refresh::{refresh, RefreshRequest};
use tessera::store::Client;
use tessera::tokens::access::record_key;

use crate::harness::{Backend, TestApp, TestStore};
use crate::login::{add_user, fast_config};

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const PASSWORD: &str = "correct horse battery staple";

/// `rp1`: a confidential client with the OpenID scopes and two loopback
/// redirect URIs besides its web one.
pub async fn add_client(app: &TestApp, scope: &str, first_party: bool) -> Client {
    let metadata = ClientMetadata {
        client_name: Some("Example Calendar".into()),
        redirect_uris: vec![
            "https://rp.test/cb".into(),
            "http://127.0.0.1/callback".into(),
            "http://[::1]/callback".into(),
        ],
        post_logout_redirect_uris: vec!["https://rp.test/bye".into()],
        scope: Some(scope.into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        first_party,
        ..ClientMetadata::default()
    };
    let state = &app.state;
    register(
        state.store.as_ref(),
        &state.data_keys.digester,
        &metadata,
        Registrar::Administrator,
        state.clock.now(),
    )
    .await
    .unwrap()
    .client
}

/// Registers a client with `metadata` as an administrator would; returns it
/// with its secret (empty for a client without one).
pub async fn register_client(app: &TestApp, metadata: ClientMetadata) -> (Client, String) {
    let state = &app.state;
    let registered = register(
        state.store.as_ref(),
        &state.data_keys.digester,
        &metadata,
        Registrar::Administrator,
        state.clock.now(),
    )
    .await
    .unwrap();
    let secret = registered
        .client_secret
        .map(|secret| secret.expose().to_owned())
        .unwrap_or_default();
    (registered.client, secret)
}

pub async fn spawn_on(backend: Backend, config: Config) -> TestApp {
    TestApp::spawn_configured(TestStore::new(backend).await, config, Arc::new(SystemClock)).await
}

/// Builds the query of an authorization request for `client` with PKCE.
pub fn query(client: &Client, extra: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={}&redirect_uri=https%3A%2F%2Frp.test%2Fcb\
         &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        client.client_id
    )
}

/// A browser: cookies kept across requests, redirects seen one by one.
pub struct Browser {
    pub client: reqwest::Client,
    /// Scheme, host and port that paths are resolved against. Changing it
    /// moves the browser to another instance, cookies and all, as a load
    /// balancer would.
    pub base: String,
    pub cookies: Vec<String>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            client: app.client.clone(),
            base: app.url(""),
            cookies: Vec::new(),
        }
    }

    /// Creates a browser for the server at `base` (`http://host:port`), which need
    /// not run in this process.
    pub fn at(base: &str) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            client,
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    async fn absorb(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies
                .retain(|cookie| !cookie.starts_with(&format!("{name}=")));
            self.cookies.push(pair);
        }
        let status = response.status();
        let headers = response.headers().clone();
        let location = headers
            .get(LOCATION)
            .map(|value| value.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        Page {
            status,
            location,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookies.join("; "))
            .send()
            .await
            .unwrap();
        self.absorb(response).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookies.join("; "))
            .form(form)
            .send()
            .await
            .unwrap();
        self.absorb(response).await
    }

    /// Follows redirects on Tessera, logging in and approving consent as
    /// asked, until a response leaves Tessera; returns that response.
    pub async fn run(&mut self, start: &str, username: &str, approve: bool) -> Page {
        let mut page = self.get(start).await;
        for _ in 0..10 {
            if let Some(location) = page.location.clone() {
                if !location.starts_with('/') {
                    return page;
                }
                page = self.get(&location).await;
                continue;
            }
            if page.status != StatusCode::OK || !page.body.contains("name=\"csrf\"") {
                return page;
            }
            let tx = field(&page.body, "tx");
            let csrf = field(&page.body, "csrf");
            page = if page.body.contains("name=\"password\"") {
                self.post(
                    "/login",
                    &[
                        ("tx", &tx),
                        ("csrf", &csrf),
                        ("username", username),
                        ("password", PASSWORD),
                    ],
                )
                .await
            } else {
                let decision = if approve { "approve" } else { "deny" };
                self.post(
                    "/consent",
                    &[("tx", &tx), ("csrf", &csrf), ("decision", decision)],
                )
                .await
            };
        }
        panic!("too many redirects");
    }
}

/// Returns the value of the hidden input `name` in a page.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

/// Returns the query parameters of a redirect to the client.
pub fn params(location: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

pub fn param(location: &str, name: &str) -> Option<String> {
    params(location)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

pub async fn exchange(
    app: &TestApp,
    client: &Client,
    code: &str,
    verifier: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    exchange_code(
        &app.state,
        CodeExchange {
            client,
            code,
            redirect_uri: Some("https://rp.test/cb"),
            code_verifier: verifier,
            resource: None,
        },
    )
    .await
}

pub async fn refresh_with(
    app: &TestApp,
    client: &Client,
    token: &str,
    scope: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    refresh(
        &app.state,
        RefreshRequest {
            client,
            refresh_token: token,
            scope,
            resource: None,
        },
    )
    .await
}

/// Decodes the payload of a JWS after checking its signature against the
/// server's key ring.
pub fn verified_claims(app: &TestApp, jws: &str) -> serde_json::Value {
    let verified = app.state.keys.verify(jws, app.state.clock.now()).unwrap();
    serde_json::from_slice(&verified.payload).unwrap()
}

/// Logs `username` in through a full authorization and returns the code.
pub async fn code_for(browser: &mut Browser, client: &Client, extra: &str) -> String {
    let page = browser.run(&query(client, extra), "u1", true).await;
    let location = page.location.expect("redirect to the client");
    assert!(location.starts_with("https://rp.test/cb?"), "{location}");
    param(&location, "code").expect("code")
}

async fn setup(backend: Backend, config: Config) -> (TestApp, Client) {
    let app = spawn_on(backend, config).await;
    add_user(&app, "u1", PASSWORD).await;
    let client = add_client(&app, "openid email profile offline_access", false).await;
    (app, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_issues_id_token_access_token_and_refresh_token() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let extra = "&scope=openid%20email%20offline_access&state=st-1&nonce=n-0S6_WzA2Mj";
    let page = browser.run(&query(&client, extra), "u1", true).await;
    let location = page.location.unwrap();
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(param(&location, "state").as_deref(), Some("st-1"));
    assert_eq!(
        param(&location, "iss").as_deref(),
        Some(app.state.config.issuer.as_str())
    );
    let code = param(&location, "code").unwrap();
    assert_eq!(code.len(), 43);

    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    assert_eq!(tokens.scope, "email offline_access openid");
    assert!(tokens.refresh_token.is_some());
    let id_token = tokens.id_token.as_deref().unwrap();
    let claims = verified_claims(&app, id_token);
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], app.state.config.issuer);
    assert_eq!(claims["aud"], client.client_id);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert!(claims["auth_time"].as_i64().unwrap() > 0);
    assert!(claims["sid"].is_string());
    let digest = Sha256::digest(tokens.access_token.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));

    // The access token is addressed to Tessera itself and decrypts with
    // its own key.
    let kid = jwe_kid(&tokens.access_token);
    let decrypter = app
        .state
        .keys
        .decrypter(&kid, app.state.clock.now())
        .unwrap();
    let (inner, _) =
        josekit::jwe::deserialize_compact(&tokens.access_token, decrypter.as_ref()).unwrap();
    let access = verified_claims(&app, std::str::from_utf8(&inner).unwrap());
    assert_eq!(access["aud"], app.state.config.issuer);
    assert_eq!(access["sub"], claims["sub"]);
    assert_eq!(access["auth_time"], claims["auth_time"]);
}

pub fn jwe_kid(token: &str) -> String {
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_without_nonce_has_no_nonce_and_refresh_keeps_auth_time() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid%20offline_access").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let first = verified_claims(&app, tokens.id_token.as_deref().unwrap());
    assert!(first.get("nonce").is_none());

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refreshed = refresh_with(
        &app,
        &client,
        tokens.refresh_token.as_deref().unwrap(),
        None,
    )
    .await
    .unwrap();
    let second = verified_claims(&app, refreshed.id_token.as_deref().unwrap());
    assert!(second.get("nonce").is_none());
    for claim in ["sub", "iss", "aud", "auth_time", "sid"] {
        assert_eq!(first[claim], second[claim], "{claim}");
    }
    assert!(second["iat"].as_i64() > first["iat"].as_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_code_fails_and_revokes_its_tokens() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid%20offline_access").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();

    let replay = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap_err();
    assert_eq!(replay.code, tessera::http::error::ErrorCode::InvalidGrant);
    let key = record_key(&tokens.access_token, &app.state.data_keys.digester);
    let record = app
        .state
        .store
        .find_access_token(&key)
        .await
        .unwrap()
        .unwrap();
    assert!(record.revoked_at.is_some());
    let refused = refresh_with(
        &app,
        &client,
        tokens.refresh_token.as_deref().unwrap(),
        None,
    )
    .await;
    assert!(refused.is_err());
    let events = app.state.store.recent_audit_events(10).await.unwrap();
    assert!(events
        .iter()
        .any(|event| event.kind == "authorization_code.replay"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_presented_by_another_client_consumes_nothing() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let other = add_client(&app, "openid", false).await;
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid").await;
    assert!(exchange(&app, &other, &code, Some(VERIFIER)).await.is_err());
    assert!(exchange(&app, &client, &code, Some(VERIFIER)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_mismatch_and_redirect_uri_variants_fail_at_exchange() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid").await;
    let wrong = "a".repeat(43);
    let mismatch = exchange(&app, &client, &code, Some(&wrong)).await;
    assert_eq!(
        mismatch.unwrap_err().code,
        tessera::http::error::ErrorCode::InvalidGrant
    );
    let missing = exchange(&app, &client, &code, None).await;
    assert!(missing.is_err());

    for redirect_uri in [
        "https://rp.test/cb/",
        "https%3A%2F%2Frp.test%2Fcb",
        "https%253A%252F%252Frp.test%252Fcb",
    ] {
        let result = exchange_code(
            &app.state,
            CodeExchange {
                client: &client,
                code: &code,
                redirect_uri: Some(redirect_uri),
                code_verifier: Some(VERIFIER),
                resource: None,
            },
        )
        .await;
        assert!(result.is_err(), "{redirect_uri}");
    }

    // The failed attempts spent nothing: the correct exchange succeeds and
    // is not taken for a replay.
    let tokens = exchange(&app, &client, &code, Some(VERIFIER)).await;
    assert!(tokens.is_ok(), "{:?}", tokens.err());
    let events = app.state.store.recent_audit_events(10).await.unwrap();
    assert!(!events
        .iter()
        .any(|event| event.kind == "authorization_code.replay"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_wrong_verifier_still_revokes() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();

    let wrong = "b".repeat(43);
    let replay = exchange(&app, &client, &code, Some(&wrong)).await;
    assert!(replay.is_err());
    let key = record_key(&tokens.access_token, &app.state.data_keys.digester);
    let record = app
        .state
        .store
        .find_access_token(&key)
        .await
        .unwrap()
        .unwrap();
    assert!(record.revoked_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exchanges_of_one_code_have_one_winner() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (app, client) = setup(backend, fast_config()).await;
        let app = Arc::new(app);
        let mut browser = Browser::new(&app);
        let code = code_for(&mut browser, &client, "&scope=openid%20offline_access").await;
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (app, client, code, barrier) = (
                Arc::clone(&app),
                client.clone(),
                code.clone(),
                Arc::clone(&barrier),
            );
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                exchange(&app, &client, &code, Some(VERIFIER)).await
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(tokens) => winners.push(tokens),
                Err(error) => assert_eq!(
                    error.code,
                    tessera::http::error::ErrorCode::InvalidGrant,
                    "{backend:?}"
                ),
            }
        }
        assert_eq!(winners.len(), 1, "{backend:?}");
        // The losers were replays: the winner's tokens are revoked.
        let key = record_key(&winners[0].access_token, &app.state.data_keys.digester);
        let record = app
            .state
            .store
            .find_access_token(&key)
            .await
            .unwrap()
            .unwrap();
        assert!(record.revoked_at.is_some(), "{backend:?}");
        let late = exchange(&app, &client, &code, Some(VERIFIER)).await;
        assert!(late.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_narrows_and_refuses_widening() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let code = code_for(
        &mut browser,
        &client,
        "&scope=openid%20email%20offline_access",
    )
    .await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let first = tokens.refresh_token.unwrap();

    let same = refresh_with(&app, &client, &first, None).await.unwrap();
    assert_eq!(same.scope, "email offline_access openid");
    let second = same.refresh_token.unwrap();
    assert_ne!(second, first);

    let narrow = refresh_with(&app, &client, &second, Some("email"))
        .await
        .unwrap();
    assert_eq!(narrow.scope, "email");
    assert!(narrow.id_token.is_none());
    // The rotated token keeps the grant's scope.
    let third = narrow.refresh_token.unwrap();
    let wide = refresh_with(&app, &client, &third, None).await.unwrap();
    assert_eq!(wide.scope, "email offline_access openid");

    let fourth = wide.refresh_token.unwrap();
    let widened = refresh_with(&app, &client, &fourth, Some("email profile"))
        .await
        .unwrap_err();
    assert_eq!(widened.code, tessera::http::error::ErrorCode::InvalidScope);
    let unknown_resource = refresh(
        &app.state,
        RefreshRequest {
            client: &client,
            refresh_token: &fourth,
            scope: None,
            resource: Some("https://api.unknown.test"),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        unknown_resource.code,
        tessera::http::error::ErrorCode::InvalidTarget
    );

    // The failed requests spent nothing: the same token still refreshes.
    let retry = refresh_with(&app, &client, &fourth, Some("email")).await;
    assert!(retry.is_ok(), "{:?}", retry.err());
    let events = app.state.store.recent_audit_events(10).await.unwrap();
    assert!(!events
        .iter()
        .any(|event| event.kind == "refresh_token.reuse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_refresh_token_revokes_the_grant() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid%20offline_access").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let first = tokens.refresh_token.unwrap();
    let rotated = refresh_with(&app, &client, &first, None).await.unwrap();

    let reuse = refresh_with(&app, &client, &first, None).await.unwrap_err();
    assert_eq!(reuse.code, tessera::http::error::ErrorCode::InvalidGrant);
    let successor = refresh_with(
        &app,
        &client,
        rotated.refresh_token.as_deref().unwrap(),
        None,
    )
    .await;
    assert!(successor.is_err(), "the whole grant is revoked");
    let key = record_key(&rotated.access_token, &app.state.data_keys.digester);
    let record = app
        .state
        .store
        .find_access_token(&key)
        .await
        .unwrap()
        .unwrap();
    assert!(record.revoked_at.is_some());
    let events = app.state.store.recent_audit_events(10).await.unwrap();
    assert!(events
        .iter()
        .any(|event| event.kind == "refresh_token.reuse"));
}

/// A client deleted while its refresh token is redeemed takes the grant
/// with it. The trigger deletes the grant as the new access token is
/// recorded, so the new refresh token's insert then fails on the foreign
/// key, as after a deletion between the request's steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_deleted_during_refresh_is_invalid_grant() {
    use sqlx::Connection;

    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid%20offline_access").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let mut connection = sqlx::SqliteConnection::connect(&app.store.url)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER delete_grant AFTER INSERT ON access_tokens
         WHEN NEW.grant_id IS NOT NULL
         BEGIN DELETE FROM grants WHERE id = NEW.grant_id; END",
    )
    .execute(&mut connection)
    .await
    .unwrap();

    let refresh_token = tokens.refresh_token.as_deref().unwrap();
    let error = refresh_with(&app, &client, refresh_token, None)
        .await
        .unwrap_err();

    assert_eq!(error.code, tessera::http::error::ErrorCode::InvalidGrant);
    // Both access tokens of the grant, the first one and the one the
    // failed refresh recorded, are revoked.
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_tokens WHERE grant_id IS NOT NULL AND revoked_at IS NULL",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(active, 0);
}

async fn concurrent_refreshes(backend: Backend, config: Config) -> (usize, bool) {
    let (app, client) = setup(backend, config).await;
    let app = Arc::new(app);
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid%20offline_access").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let token = tokens.refresh_token.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, client, token, barrier) = (
            Arc::clone(&app),
            client.clone(),
            token.clone(),
            Arc::clone(&barrier),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            refresh_with(&app, &client, &token, None).await
        }));
    }
    let mut successes = Vec::new();
    for task in tasks {
        if let Ok(tokens) = task.await.unwrap() {
            successes.push(tokens);
        }
    }
    let any_usable = match successes.first() {
        Some(tokens) => refresh_with(
            &app,
            &client,
            tokens.refresh_token.as_deref().unwrap(),
            None,
        )
        .await
        .is_ok(),
        None => false,
    };
    (successes.len(), any_usable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_has_one_winner_and_revokes_the_grant() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (winners, usable) = concurrent_refreshes(backend, fast_config()).await;
        assert_eq!(winners, 1, "{backend:?}");
        assert!(!usable, "{backend:?}: the grant must be revoked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_within_reuse_interval_all_succeed() {
    let mut config = fast_config();
    config.tokens.refresh_reuse_interval = HumanDuration::from_secs(30);
    let (winners, usable) = concurrent_refreshes(Backend::Sqlite, config).await;
    assert_eq!(winners, 8);
    assert!(usable);
}

/// Asserts the AS error page: 400, no redirect, nothing reflected.
fn assert_error_page(page: &Page, what: &str) {
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{what}");
    assert!(page.location.is_none(), "{what}");
    assert!(page.body.contains("Invalid sign-in request"), "{what}");
    assert!(!page.body.contains("evil"), "{what}");
    assert!(!page.body.contains("<script>alert"), "{what}");
    let csp = page.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_or_redirect_uri_gets_the_error_page_before_other_errors() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let id = &client.client_id;
    let bases = [
        "/authorize?client_id=nope&redirect_uri=https%3A%2F%2Frp.test%2Fcb".to_owned(),
        format!("/authorize?client_id={id}&redirect_uri=https%3A%2F%2Fevil.test%2Fcb"),
        format!("/authorize?client_id={id}"),
        format!("/authorize?client_id={id}&redirect_uri=https%3A%2F%2Frp.test%2Fcb%2F"),
        format!("/authorize?client_id={id}&redirect_uri=https%3A%2F%2Frp.test%2Fcb&redirect_uri=https%3A%2F%2Fevil.test%2Fcb"),
        format!("/authorize?client_id={id}&redirect_uri=https%3A%2F%2Frp.test%2Fcb%22%3E%3Cscript%3Ealert(1)%3C/script%3E"),
        format!("/authorize?client_id={id}&redirect_uri=javascript:alert(1)"),
        "/authorize?client_id=%3Csvg/onload=alert(1)%3E&redirect_uri=https%3A%2F%2Frp.test%2Fcb".to_owned(),
        format!("/authorize?client_id={id}&redirect_uri=https%3A%2F%2FRP.test%2Fcb"),
        format!("/authorize?client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.2%3A5000%2Fcallback"),
        format!("/authorize?client_id={id}&redirect_uri=http%3A%2F%2Flocalhost%3A5000%2Fcallback"),
        format!("/authorize?client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback%3Fx%3D1"),
    ];
    let faults = [
        "&response_type=token",
        "&response_type=code",
        "&response_type=code&code_challenge_method=plain&code_challenge=abc",
        "&response_type=code&scope=openid%00x",
        "&response_type=code&prompt=none%20login",
        "&response_type=code&resource=https%3A%2F%2Frs3.test%2F",
    ];
    for base in &bases {
        for fault in faults {
            let page = browser.get(&format!("{base}{fault}&state=s")).await;
            assert_error_page(&page, &format!("{base}{fault}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_with_valid_client_and_redirect_go_back_with_state_and_iss() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let issuer = app.state.config.issuer.clone();
    let without_pkce = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri=https%3A%2F%2Frp.test%2Fcb&scope=openid&state=s1",
        client.client_id
    );
    let cases = [
        (
            query(&client, "&scope=openid&state=s1")
                .replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (without_pkce, "invalid_request"),
        (
            query(&client, "&scope=openid&state=s1").replace("S256", "plain"),
            "invalid_request",
        ),
        (
            query(&client, "&scope=openid%00x&state=s1"),
            "invalid_scope",
        ),
        (
            query(&client, "&scope=openid&state=s1&prompt=none%20login"),
            "invalid_request",
        ),
        (
            query(
                &client,
                "&scope=openid&state=s1&resource=https%3A%2F%2Frs3.test%2F",
            ),
            "invalid_target",
        ),
        (
            query(&client, "&scope=openid&state=s1&response_mode=bogus"),
            "invalid_request",
        ),
        (query(&client, "&scope=email&state=s1"), "invalid_target"),
        (
            query(
                &client,
                "&scope=openid&state=s1&request=eyJhbGciOiJub25lIn0.e30.",
            ),
            "request_not_supported",
        ),
        (
            query(
                &client,
                "&scope=openid&state=s1&request_uri=https%3A%2F%2Frp.test%2Freq",
            ),
            "request_uri_not_supported",
        ),
    ];
    for (path, error) in cases {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::FOUND, "{path}");
        let location = page.location.unwrap();
        assert!(location.starts_with("https://rp.test/cb?"), "{location}");
        assert_eq!(param(&location, "error").as_deref(), Some(error), "{path}");
        assert_eq!(param(&location, "state").as_deref(), Some("s1"), "{path}");
        assert_eq!(
            param(&location, "iss").as_deref(),
            Some(issuer.as_str()),
            "{path}"
        );
    }

    // A repeated state is echoed in neither form.
    let page = browser
        .get(&query(&client, "&scope=openid&state=a&state=b"))
        .await;
    let location = page.location.unwrap();
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(param(&location, "state"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_none_without_session_is_login_required() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let page = browser
        .get(&query(&client, "&scope=openid&state=xyz&prompt=none"))
        .await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert!(page.body.is_empty());
    let location = page.location.unwrap();
    assert_eq!(param(&location, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&location, "state").as_deref(), Some("xyz"));
    assert!(param(&location, "iss").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reuse_prompt_none_consent_required_and_max_age() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid").await;
    let first = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let first = verified_claims(&app, first.id_token.as_deref().unwrap());

    // A live session and consent: prompt=none answers with a bodiless 302.
    let page = browser
        .get(&query(&client, "&scope=openid&prompt=none&state=r"))
        .await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert!(page.body.is_empty());
    let code = param(page.location.as_deref().unwrap(), "code").unwrap();
    let silent = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let silent = verified_claims(&app, silent.id_token.as_deref().unwrap());
    assert_eq!(silent["auth_time"], first["auth_time"]);

    // A scope not yet approved cannot be granted silently.
    let page = browser
        .get(&query(
            &client,
            "&scope=openid%20offline_access&prompt=none",
        ))
        .await;
    let location = page.location.unwrap();
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("consent_required")
    );

    // max_age=10000 reuses the session; max_age=0 asks for the password.
    let page = browser
        .get(&query(&client, "&scope=openid&max_age=10000"))
        .await;
    assert!(page
        .location
        .unwrap()
        .starts_with("https://rp.test/cb?code="));
    let page = browser
        .get(&query(&client, "&scope=openid&max_age=0"))
        .await;
    assert!(page.location.unwrap().contains("/login?tx="));
    let page = browser
        .get(&query(&client, "&scope=openid&prompt=login"))
        .await;
    assert!(page.location.unwrap().contains("/login?tx="));

    // Over a second after login, max_age=1 asks for the password again.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let page = browser
        .get(&query(&client, "&scope=openid&max_age=1"))
        .await;
    assert!(page.location.unwrap().contains("/login?tx="));
    let code = code_for(&mut browser, &client, "&scope=openid&max_age=1").await;
    let again = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let again = verified_claims(&app, again.id_token.as_deref().unwrap());
    assert!(again["auth_time"].as_i64() > first["auth_time"].as_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_consent_redirects_access_denied_without_state() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let page = browser
        .run(&query(&client, "&scope=openid"), "u1", false)
        .await;
    let location = page.location.unwrap();
    assert_eq!(param(&location, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&location, "state"), None);
    assert!(param(&location, "iss").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_redirect_gets_the_code_on_its_port() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    for (encoded, expected) in [
        (
            "http%3A%2F%2F127.0.0.1%3A58892%2Fcallback",
            "http://127.0.0.1:58892/callback?code=",
        ),
        (
            "http%3A%2F%2F%5B%3A%3A1%5D%3A61023%2Fcallback",
            "http://[::1]:61023/callback?code=",
        ),
    ] {
        let path = query(&client, "&scope=openid").replace("https%3A%2F%2Frp.test%2Fcb", encoded);
        let page = browser.run(&path, "u1", true).await;
        let location = page.location.unwrap();
        assert!(location.starts_with(expected), "{location}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_post_response_is_an_escaped_auto_submitting_page() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    code_for(&mut browser, &client, "&scope=openid").await;
    let page = browser
        .get(&query(
            &client,
            "&scope=openid&response_mode=form_post&state=%3Cscript%3Ex%3C%2Fscript%3E",
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.location.is_none());
    assert_eq!(page.headers["cache-control"], "no-store");
    let csp = page.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("form-action https://rp.test;"), "{csp}");
    assert!(csp.contains("frame-ancestors https://rp.test;"), "{csp}");
    assert!(
        page.body.contains("action=\"https://rp.test/cb\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>x"), "{}", page.body);
    assert!(page.body.contains("name=\"code\""));
    assert!(page.body.contains("<noscript>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_parameters_round_trip_within_limits() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let state = "s".repeat(2048);
    let nonce = "n".repeat(384);
    let code = code_for(
        &mut browser,
        &client,
        &format!("&scope=openid&state={state}&nonce={nonce}"),
    )
    .await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let claims = verified_claims(&app, tokens.id_token.as_deref().unwrap());
    assert_eq!(claims["nonce"], nonce);

    let page = browser
        .get(&query(
            &client,
            &format!("&scope=openid&state={}", "s".repeat(8192)),
        ))
        .await;
    let location = page.location.unwrap();
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(param(&location, "state"), None);
    let page = browser
        .get(&query(
            &client,
            &format!("&scope=openid&login_hint={}", "h".repeat(10_000)),
        ))
        .await;
    assert_eq!(
        param(&page.location.unwrap(), "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_access_needs_consent_and_ends_with_it() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    // Consent to openid email only.
    let code = code_for(&mut browser, &client, "&scope=openid%20email").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    assert!(
        tokens.refresh_token.is_none(),
        "no offline_access, no refresh token"
    );

    // Asking for offline_access shows consent again, without prompt.
    let page = browser
        .get(&query(&client, "&scope=openid%20email%20offline_access"))
        .await;
    assert!(page.location.as_deref().unwrap().contains("/consent?tx="));
    let code = code_for(
        &mut browser,
        &client,
        "&scope=openid%20email%20offline_access",
    )
    .await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    assert_eq!(tokens.scope, "email offline_access openid");
    let refresh_token = tokens.refresh_token.unwrap();

    // Offline access survives logout of the browser session.
    let page = browser
        .get(&format!(
            "/logout?id_token_hint={}",
            tokens.id_token.as_deref().unwrap()
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let rotated = refresh_with(&app, &client, &refresh_token, None)
        .await
        .unwrap();
    let refresh_token = rotated.refresh_token.unwrap();

    // Withdrawn consent ends it.
    let user = app
        .state
        .store
        .user_by_username("u1")
        .await
        .unwrap()
        .unwrap();
    let scopes = vec!["openid".to_owned(), "email".to_owned()];
    app.state
        .store
        .save_consent(user.id, &client.client_id, &scopes, app.state.clock.now())
        .await
        .unwrap();
    let refused = refresh_with(&app, &client, &refresh_token, None)
        .await
        .unwrap_err();
    assert_eq!(refused.code, tessera::http::error::ErrorCode::InvalidGrant);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_access_taken_from_client_ends_refresh() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid%20offline_access").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let mut reduced = client.clone();
    reduced.scopes.retain(|scope| scope != "offline_access");
    let refused = refresh_with(
        &app,
        &reduced,
        tokens.refresh_token.as_deref().unwrap(),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code, tessera::http::error::ErrorCode::InvalidGrant);
}

/// The code and refresh grants through `POST /token` over HTTP, with the
/// client's secret in HTTP Basic, as a relying party sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_exchanges_codes_and_refreshes() {
    let app = spawn_on(Backend::Postgres, fast_config()).await;
    add_user(&app, "u1", PASSWORD).await;
    let metadata = ClientMetadata {
        client_name: Some("Example Calendar".into()),
        redirect_uris: vec!["https://rp.test/cb".into()],
        scope: Some("openid email offline_access".into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        ..ClientMetadata::default()
    };
    let state = &app.state;
    let registered = register(
        state.store.as_ref(),
        &state.data_keys.digester,
        &metadata,
        Registrar::Administrator,
        state.clock.now(),
    )
    .await
    .unwrap();
    let client = registered.client;
    let secret = registered.client_secret.unwrap();

    let mut browser = Browser::new(&app);
    let extra = "&scope=openid%20offline_access&nonce=n-1";
    let code = code_for(&mut browser, &client, extra).await;
    let post = |body: Vec<(&'static str, String)>| {
        app.client
            .post(app.url("/token"))
            .basic_auth(&client.client_id, Some(secret.expose()))
            .form(&body)
            .send()
    };

    let exchanged = post(vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.clone()),
        ("redirect_uri", "https://rp.test/cb".to_owned()),
        ("code_verifier", VERIFIER.to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(exchanged.status(), StatusCode::OK);
    assert_eq!(exchanged.headers()["cache-control"], "no-store");
    let tokens: serde_json::Value = exchanged.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["id_token"].is_string());
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();

    let replayed = post(vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", "https://rp.test/cb".to_owned()),
        ("code_verifier", VERIFIER.to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    let error: serde_json::Value = replayed.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");

    // The replay revoked the grant, so its refresh token is dead too.
    let refreshed = post(vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token),
    ])
    .await
    .unwrap();
    assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST);
    let error: serde_json::Value = refreshed.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");

    // A code that was never issued is invalid_grant for a client that may
    // use the grant.
    let unknown = post(vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", "not-a-code".to_owned()),
        ("redirect_uri", "https://rp.test/cb".to_owned()),
        ("code_verifier", VERIFIER.to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let error: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");

    // A fresh code gives a refresh token that rotates through /token.
    let code = code_for(&mut browser, &client, extra).await;
    let fresh: serde_json::Value = post(vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", "https://rp.test/cb".to_owned()),
        ("code_verifier", VERIFIER.to_owned()),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let first = fresh["refresh_token"].as_str().unwrap().to_owned();
    let rotated = post(vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", first.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: serde_json::Value = rotated.json().await.unwrap();
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);

    // Revoking the refresh token (RFC 7009) ends its grant.
    let revoked = app
        .client
        .post(app.url("/revoke"))
        .basic_auth(&client.client_id, Some(secret.expose()))
        .form(&[
            ("token", second.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let refused = post(vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", second),
    ])
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let key = record_key(
        rotated["access_token"].as_str().unwrap(),
        &app.state.data_keys.digester,
    );
    let record = app
        .state
        .store
        .find_access_token(&key)
        .await
        .unwrap()
        .unwrap();
    assert!(
        record.revoked_at.is_some(),
        "the grant's access token is revoked"
    );
}

/// Registers the resource server `identifier` defining `scopes`, with a
/// fresh EC P-256 encryption key.
async fn add_resource(app: &TestApp, identifier: &str, scopes: &[&str]) {
    let pair =
        josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P256).unwrap();
    let mut public_jwk = pair.to_jwk_public_key();
    public_jwk.set_key_id("enc-1");
    let request = tessera::resources::ResourceRequest {
        identifier: identifier.to_owned(),
        name: "Calendar API".into(),
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        jwk: Some(serde_json::from_str(&public_jwk.to_string()).unwrap()),
        ..tessera::resources::ResourceRequest::default()
    };
    let state = &app.state;
    tessera::resources::create(
        state.store.as_ref(),
        &state.data_keys.digester,
        state.registry.key_sets(),
        &request,
        state.clock.now(),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_token_carries_only_its_servers_scopes() {
    let app = spawn_on(Backend::Sqlite, fast_config()).await;
    add_user(&app, "u1", PASSWORD).await;
    add_resource(&app, "https://calendar.test/", &["calendar.read"]).await;
    add_resource(&app, "https://mail.test/", &["mail.read"]).await;
    let scope = "openid offline_access calendar.read mail.read";
    let client = add_client(&app, scope, true).await;
    let mut browser = Browser::new(&app);
    let extra = "&scope=openid%20offline_access%20calendar.read%20mail.read\
                 &resource=https%3A%2F%2Fcalendar.test%2F";
    let code = code_for(&mut browser, &client, extra).await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    // The response describes the grant; the access token only its audience.
    assert_eq!(
        tokens.scope,
        "calendar.read mail.read offline_access openid"
    );

    let refreshed = refresh_with(
        &app,
        &client,
        tokens.refresh_token.as_deref().unwrap(),
        None,
    )
    .await
    .unwrap();
    for access_token in [&tokens.access_token, &refreshed.access_token] {
        let key = record_key(access_token, &app.state.data_keys.digester);
        let record = app
            .state
            .store
            .find_access_token(&key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.audience, "https://calendar.test/");
        assert_eq!(record.scope, "calendar.read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_consent_asks_again_for_approved_scopes() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    code_for(&mut browser, &client, "&scope=openid%20email").await;

    let page = browser
        .get(&query(&client, "&scope=openid%20email&prompt=consent"))
        .await;
    let location = page.location.unwrap();
    assert!(location.contains("/consent?tx="), "{location}");
    let consent = browser.get(&location).await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(consent.body.contains("Know who you are on this site"));
    assert!(consent.body.contains("See your email address"));
    let approved = browser
        .post(
            "/consent",
            &[
                ("tx", field(&consent.body, "tx").as_str()),
                ("csrf", field(&consent.body, "csrf").as_str()),
                ("decision", "approve"),
            ],
        )
        .await;
    let resume = browser.get(&approved.location.unwrap()).await;
    let location = resume.location.unwrap();
    assert!(
        location.starts_with("https://rp.test/cb?code="),
        "{location}"
    );

    // A first-party client never shows the consent page.
    let first_party = add_client(&app, "openid email", true).await;
    let page = browser
        .get(&query(&first_party, "&scope=openid%20email&prompt=consent"))
        .await;
    let location = page.location.unwrap();
    assert!(
        location.starts_with("https://rp.test/cb?code="),
        "{location}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_hint_prefills_the_username_escaped() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut browser = Browser::new(&app);
    let page = browser
        .get(&query(
            &client,
            "&scope=openid&login_hint=alice%40example.test",
        ))
        .await;
    let login = browser.get(&page.location.unwrap()).await;
    assert!(
        login.body.contains("value=\"alice@example.test\""),
        "{}",
        login.body
    );

    let page = browser
        .get(&query(&client, "&scope=openid&login_hint=u1%22%3E%3Cb%3Ex"))
        .await;
    let login = browser.get(&page.location.unwrap()).await;
    assert!(!login.body.contains("<b>x"), "{}", login.body);
    assert!(login.body.contains("value=\"u1&"), "{}", login.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_token_hint_of_another_user_needs_login() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    add_user(&app, "u2", PASSWORD).await;
    let mut first = Browser::new(&app);
    let code = code_for(&mut first, &client, "&scope=openid").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let hint = tokens.id_token.unwrap();
    let mut second = Browser::new(&app);
    let signed_in = second
        .run(&query(&client, "&scope=openid"), "u2", true)
        .await;
    assert!(signed_in.location.unwrap().contains("code="));

    let silent = format!("&scope=openid&prompt=none&state=h&id_token_hint={hint}");
    let page = second.get(&query(&client, &silent)).await;
    let location = page.location.unwrap();
    assert_eq!(param(&location, "error").as_deref(), Some("login_required"));
    let page = first.get(&query(&client, &silent)).await;
    let location = page.location.unwrap();
    assert!(param(&location, "code").is_some(), "{location}");

    let other = add_client(&app, "openid", false).await;
    for (client, hint) in [(&client, "not-a-token"), (&other, hint.as_str())] {
        let extra = format!("&scope=openid&state=h&id_token_hint={hint}");
        let page = first.get(&query(client, &extra)).await;
        let location = page.location.unwrap();
        assert_eq!(
            param(&location, "error").as_deref(),
            Some("invalid_request")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_link_works_only_in_the_approving_browser() {
    let (app, client) = setup(Backend::Sqlite, fast_config()).await;
    let mut owner = Browser::new(&app);
    let start = owner.get(&query(&client, "&scope=openid")).await;
    let login = owner.get(&start.location.unwrap()).await;
    let (tx, csrf) = (field(&login.body, "tx"), field(&login.body, "csrf"));
    let credentials = [
        ("tx", tx.as_str()),
        ("csrf", csrf.as_str()),
        ("username", "u1"),
        ("password", PASSWORD),
    ];
    let signed_in = owner.post("/login", &credentials).await;
    let consent = owner.get(&signed_in.location.unwrap()).await;
    let (tx, csrf) = (field(&consent.body, "tx"), field(&consent.body, "csrf"));
    let approval = [
        ("tx", tx.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    let approved = owner.post("/consent", &approval).await;
    let resume = approved.location.unwrap();
    assert!(resume.contains("/authorize/resume?"), "{resume}");

    let mut stranger = Browser::new(&app);
    let stolen = stranger.get(&resume).await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert!(stolen.location.is_none());

    let finished = owner.get(&resume).await;
    let location = finished.location.unwrap();
    assert!(param(&location, "code").is_some(), "{location}");
}
