//! Ending what users allowed clients, on both stores: `grants revoke`,
//! `consents revoke`, `users disable` and `clients delete` through the real
//! CLI, and the account page over HTTP. Each must end the grant's tokens at
//! once: the refresh token fails and introspection returns `active: false`.

use reqwest::StatusCode;
use serde_json::Value;
use tessera::clients::ClientMetadata;
use tessera::http::error::ErrorCode;
use tessera::oauth::grants::issue::TokenResponse;
use tessera::store::Client;
use tessera::tokens::access::record_key;

use crate::admin_cli::tessera;
use crate::authorize::{
    code_for, exchange, field, refresh_with, register_client, spawn_on, Browser, Page, PASSWORD,
    VERIFIER,
};
use crate::harness::{Backend, TestApp};
use crate::login::{add_user, fast_config};

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::harness::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::harness::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_stores!(
    revoked_grant_ends_its_tokens_at_once,
    withdrawn_consent_ends_tokens_and_asks_again,
    disabled_user_cannot_log_in_or_refresh,
    deleted_client_tokens_are_revoked,
    account_page_withdraws_an_app,
);

const SCOPE: &str = "&scope=openid%20email%20offline_access";

/// A server with user `u1` and a confidential client whose secret is kept,
/// so the test can introspect the client's tokens.
struct Setup {
    app: TestApp,
    client: Client,
    secret: String,
}

impl Setup {
    async fn new(backend: Backend) -> Self {
        let app = spawn_on(backend, fast_config()).await;
        add_user(&app, "u1", PASSWORD).await;
        let metadata = ClientMetadata {
            client_name: Some("Example Calendar".into()),
            redirect_uris: vec!["https://rp.test/cb".into()],
            scope: Some("openid email profile offline_access".into()),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
            ..ClientMetadata::default()
        };
        let (client, secret) = register_client(&app, metadata).await;
        assert!(!secret.is_empty(), "a confidential client gets a secret");
        Self {
            app,
            client,
            secret,
        }
    }

    /// Logs `u1` in, approves, and exchanges the code.
    async fn tokens(&self, browser: &mut Browser) -> TokenResponse {
        let code = code_for(browser, &self.client, SCOPE).await;
        exchange(&self.app, &self.client, &code, Some(VERIFIER))
            .await
            .unwrap()
    }

    /// Returns whether `/introspect`, asked by the client, calls `token`
    /// active.
    async fn active(&self, token: &str) -> bool {
        let response = self
            .app
            .client
            .post(self.app.url("/introspect"))
            .basic_auth(&self.client.client_id, Some(&self.secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["active"].as_bool().unwrap()
    }

    /// Runs the CLI against the server's store and returns its JSON output.
    async fn cli(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = tessera(&self.app, &all).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Asserts that refreshing with `token` fails with `invalid_grant`.
    async fn assert_refresh_fails(&self, token: &str) {
        let refused = refresh_with(&self.app, &self.client, token, None).await;
        assert_eq!(refused.unwrap_err().code, ErrorCode::InvalidGrant);
    }
}

async fn revoked_grant_ends_its_tokens_at_once(backend: Backend) {
    let setup = Setup::new(backend).await;
    let mut browser = Browser::new(&setup.app);
    let tokens = setup.tokens(&mut browser).await;
    let refresh = tokens.refresh_token.clone().unwrap();
    assert!(setup.active(&tokens.access_token).await);

    let listed = setup.cli(&["grants", "list", "--user", "U1"]).await;
    let grants = listed.as_array().unwrap();
    assert_eq!(grants.len(), 1, "{listed}");
    assert_eq!(grants[0]["client_id"], setup.client.client_id.as_str());
    let scopes = grants[0]["scopes"].as_array().unwrap();
    assert!(scopes.contains(&Value::from("offline_access")), "{listed}");
    let other = setup.cli(&["grants", "list", "--client", "nobody"]).await;
    assert_eq!(other, Value::Array(Vec::new()));

    let id = grants[0]["id"].as_str().unwrap();
    let revoked = setup.cli(&["grants", "revoke", id]).await;
    assert_eq!(revoked["revoked"], true);

    assert!(!setup.active(&tokens.access_token).await);
    setup.assert_refresh_fails(&refresh).await;
    let listed = setup.cli(&["grants", "list"]).await;
    assert_eq!(listed, Value::Array(Vec::new()));
    let again = tessera(&setup.app, &["grants", "revoke", id]).await;
    assert_eq!(again.status.code(), Some(1));

    let events = setup.app.state.store.recent_audit_events(5).await.unwrap();
    let event = events.iter().find(|e| e.kind == "grant.revoked").unwrap();
    assert_eq!(event.actor.as_deref(), Some("cli"));
    assert_eq!(
        event.client_id.as_deref(),
        Some(setup.client.client_id.as_str())
    );
}

async fn withdrawn_consent_ends_tokens_and_asks_again(backend: Backend) {
    let setup = Setup::new(backend).await;
    let mut browser = Browser::new(&setup.app);
    let tokens = setup.tokens(&mut browser).await;

    let listed = setup.cli(&["consents", "list", "--user", "u1"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["client_id"], setup.client.client_id.as_str());
    let client = setup.client.client_id.as_str();
    let revoked = setup
        .cli(&["consents", "revoke", "--user", "u1", "--client", client])
        .await;
    assert_eq!(revoked["revoked_grants"].as_array().unwrap().len(), 1);

    assert!(!setup.active(&tokens.access_token).await);
    setup
        .assert_refresh_fails(tokens.refresh_token.as_deref().unwrap())
        .await;
    let listed = setup.cli(&["consents", "list"]).await;
    assert_eq!(listed, Value::Array(Vec::new()));

    // The session lives on, but the consent page comes back.
    let query = crate::authorize::query(&setup.client, SCOPE);
    let page = browser.get(&query).await;
    let location = page.location.unwrap();
    assert!(location.contains("/consent?tx="), "{location}");
    let events = setup.app.state.store.recent_audit_events(5).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "consent.withdrawn"));
}

async fn disabled_user_cannot_log_in_or_refresh(backend: Backend) {
    let setup = Setup::new(backend).await;
    let mut browser = Browser::new(&setup.app);
    let tokens = setup.tokens(&mut browser).await;

    let disabled = setup.cli(&["users", "disable", "u1"]).await;
    assert_eq!(disabled["disabled"], true);
    assert_eq!(disabled["ended_sessions"], 1);
    assert_eq!(disabled["revoked_grants"], 1);

    assert!(!setup.active(&tokens.access_token).await);
    setup
        .assert_refresh_fails(tokens.refresh_token.as_deref().unwrap())
        .await;
    // The old session cookie no longer signs in silently.
    let silent = crate::authorize::query(&setup.client, "&scope=openid&prompt=none");
    let page = browser.get(&silent).await;
    let location = page.location.unwrap();
    assert!(location.contains("error=login_required"), "{location}");
    // A fresh login with the right password fails like a wrong one.
    let mut fresh = Browser::new(&setup.app);
    let start = fresh
        .get(&crate::authorize::query(&setup.client, SCOPE))
        .await;
    let login = fresh.get(&start.location.unwrap()).await;
    let form = [
        ("tx", field(&login.body, "tx")),
        ("csrf", field(&login.body, "csrf")),
        ("username", "u1".to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = fresh.post("/login", &form).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.location, None);
    assert!(page.body.contains("Invalid username or password."));

    let events = setup.app.state.store.recent_audit_events(5).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "user.disabled"));

    // Enabled again, the user signs in; the revoked grant stays revoked.
    let enabled = setup.cli(&["users", "enable", "u1"]).await;
    assert_eq!(enabled["disabled"], false);
    let tokens_again = setup.tokens(&mut Browser::new(&setup.app)).await;
    assert!(setup.active(&tokens_again.access_token).await);
    setup
        .assert_refresh_fails(tokens.refresh_token.as_deref().unwrap())
        .await;
}

async fn deleted_client_tokens_are_revoked(backend: Backend) {
    let setup = Setup::new(backend).await;
    let mut browser = Browser::new(&setup.app);
    let tokens = setup.tokens(&mut browser).await;

    let client = setup.client.client_id.as_str();
    let deleted = setup.cli(&["clients", "delete", client]).await;
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["revoked_access_tokens"], 1);

    let store = setup.app.state.store.as_ref();
    let key = record_key(&tokens.access_token, &setup.app.state.data_keys.digester);
    let record = store.find_access_token(&key).await.unwrap().unwrap();
    assert!(record.revoked_at.is_some());
    let filter = tessera::store::AuthorizationFilter::client(client);
    assert!(store.consents(&filter).await.unwrap().is_empty());
    setup
        .assert_refresh_fails(tokens.refresh_token.as_deref().unwrap())
        .await;
}

/// Signs in on `/account` (which first sends the browser to the login page)
/// and returns the account page.
async fn sign_in_to_account(browser: &mut Browser) -> Page {
    let start = browser.get("/account").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let login = browser.get(&start.location.unwrap()).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("your account"));
    let form = [
        ("tx", field(&login.body, "tx")),
        ("csrf", field(&login.body, "csrf")),
        ("username", "u1".to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = browser.post("/login", &form).await;
    assert_eq!(done.location.as_deref(), Some("/account"));
    browser.get("/account").await
}

async fn account_page_withdraws_an_app(backend: Backend) {
    let setup = Setup::new(backend).await;
    let mut app_browser = Browser::new(&setup.app);
    let tokens = setup.tokens(&mut app_browser).await;

    let mut browser = Browser::new(&setup.app);
    let page = sign_in_to_account(&mut browser).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(page.body.contains("Example Calendar"), "{}", page.body);
    assert!(page.body.contains("See your email address"));
    let csrf = field(&page.body, "csrf");
    let client = setup.client.client_id.as_str();

    // A forged or missing token changes nothing.
    for forged in ["", "forged"] {
        let form = [("client_id", client), ("csrf", forged)];
        let refused = browser.post("/account/withdraw", &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
    // The token belongs to the session: another session cannot use it.
    let mut other = Browser::new(&setup.app);
    sign_in_to_account(&mut other).await;
    let form = [("client_id", client), ("csrf", csrf.as_str())];
    let refused = other.post("/account/withdraw", &form).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(setup.active(&tokens.access_token).await);

    let done = browser.post("/account/withdraw", &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(!setup.active(&tokens.access_token).await);
    setup
        .assert_refresh_fails(tokens.refresh_token.as_deref().unwrap())
        .await;
    let page = browser.get("/account").await;
    assert!(!page.body.contains("Example Calendar"));
    assert!(page.body.contains("id=\"no-apps\""));

    let events = setup.app.state.store.recent_audit_events(10).await.unwrap();
    let event = events
        .iter()
        .find(|e| e.kind == "consent.withdrawn")
        .unwrap();
    assert_eq!(
        event.actor.as_deref(),
        event
            .subject
            .as_deref()
            .map(|s| format!("user:{s}"))
            .as_deref()
    );
}

/// A token recorded after `clients delete` revoked the client's tokens (an
/// instance whose cache still held the client issued it) is inactive too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_of_deleted_client_introspects_inactive() {
    use crate::oauth_support::{access_token, add_client, add_resource, introspect, service};
    use crate::oauth_support::{Auth, OauthApp};

    let oauth = OauthApp::spawn(Backend::Sqlite).await;
    let resource = add_resource(&oauth, "https://rs1.test/", &["api.read"]).await;
    let metadata = service("client_secret_basic", "api.read", Some("https://rs1.test/"));
    let client = add_client(&oauth, metadata).await;
    let auth = Auth::Basic(&client.id, &client.secret);
    let token = access_token(&oauth, auth, &[]).await;
    let as_resource = || Auth::Basic(&resource.introspection_id, &resource.introspection_secret);
    assert_eq!(
        introspect(&oauth, as_resource(), &token).await["active"],
        true
    );

    // The client disappears without its tokens being revoked, as when the
    // token was recorded just after `clients delete` ran.
    let state = &oauth.app.state;
    assert!(state.store.delete_client(&client.id).await.unwrap());
    state.registry.invalidate_clients();
    let seen = introspect(&oauth, as_resource(), &token).await;
    assert_eq!(seen["active"], false, "{seen}");
}
