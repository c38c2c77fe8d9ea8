//! A relying party written outside this project, node's `openid-client` v6
//! (strict, and certified for the OpenID Connect Basic RP profile),
//! completes against a running Tessera. It covers discovery, the
//! authorization code flow with PKCE, state and nonce, the token exchange
//! with ID token validation, userinfo, refresh with rotation, replay of a
//! rotated refresh token, and RP-initiated logout.
//!
//! `tests/interop/relying-party.mjs` runs the library. It prints the
//! authorization URL; this test logs the user in and approves consent with
//! the HTTP [`Browser`], hands the redirect back to node, and checks what
//! node prints. It then follows the logout URL node built and checks that
//! the session is gone.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tessera::accounts::users::{create_user, NewUser};
use tessera::clients::{register, ClientMetadata, Registrar};
use tessera::store::UserRecord;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

use crate::authorize::{param, Browser, CHALLENGE, PASSWORD};
use crate::harness::{Backend, TestApp, TestStore};
use crate::interop::interop_folder;
use crate::login::fast_config;

const SCOPE: &str = "openid profile email offline_access";
const CONFIDENTIAL_REDIRECT: &str = "https://rp.example/callback";
/// A native app's loopback redirect: registered without a port, used with
/// one (RFC 8252 section 7.3).
const REGISTERED_LOOPBACK: &str = "http://127.0.0.1/callback";
const LOOPBACK_REDIRECT: &str = "http://127.0.0.1:49152/callback";
const POST_LOGOUT_REDIRECT: &str = "https://rp.example/signed-out";

/// How long one step of the node script may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A registered client as the relying party is configured with it.
struct RegisteredClient {
    id: String,
    /// `None` for a public client, which authenticates with `none`.
    secret: Option<String>,
    redirect_uri: &'static str,
}

async fn add_client(
    app: &TestApp,
    auth_method: &str,
    redirect_uri: &str,
) -> (String, Option<String>) {
    let metadata = ClientMetadata {
        client_name: Some("openid-client".into()),
        redirect_uris: vec![redirect_uri.to_owned()],
        post_logout_redirect_uris: vec![POST_LOGOUT_REDIRECT.to_owned()],
        scope: Some(SCOPE.into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        token_endpoint_auth_method: Some(auth_method.to_owned()),
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
    let secret = registered
        .client_secret
        .map(|secret| secret.expose().to_owned());
    (registered.client.client_id, secret)
}

async fn confidential_client(app: &TestApp) -> RegisteredClient {
    let (id, secret) = add_client(app, "client_secret_basic", CONFIDENTIAL_REDIRECT).await;
    assert!(secret.is_some(), "a confidential client gets a secret");
    RegisteredClient {
        id,
        secret,
        redirect_uri: CONFIDENTIAL_REDIRECT,
    }
}

async fn public_client(app: &TestApp) -> RegisteredClient {
    let (id, secret) = add_client(app, "none", REGISTERED_LOOPBACK).await;
    assert!(secret.is_none(), "a public client gets no secret");
    RegisteredClient {
        id,
        secret,
        redirect_uri: LOOPBACK_REDIRECT,
    }
}

async fn add_user(app: &TestApp) -> UserRecord {
    let new = NewUser {
        username: "alice".into(),
        email: Some("alice@example.com".into()),
        given_name: Some("Alice".into()),
        family_name: Some("Liddell".into()),
    };
    let state = &app.state;
    create_user(
        state.store.as_ref(),
        &state.accounts.hasher,
        new,
        PASSWORD,
        state.clock.now(),
    )
    .await
    .unwrap()
}

/// The node script, its pipes and its collected standard error.
struct RelyingParty {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
}

impl RelyingParty {
    fn start(issuer: &str, client: &RegisteredClient) -> Self {
        let folder = interop_folder();
        assert!(
            folder.join("node_modules/openid-client").exists(),
            "node's openid-client package is missing: run scripts/install-deps \
             (npm ci in tests/interop)"
        );
        let mut command = tokio::process::Command::new("node");
        command
            .current_dir(&folder)
            .arg("relying-party.mjs")
            .args([issuer, &client.id, client.redirect_uri])
            .args([POST_LOGOUT_REDIRECT, SCOPE])
            .env_remove("RP_CLIENT_SECRET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(secret) = &client.secret {
            command.env("RP_CLIENT_SECRET", secret);
        }
        let mut child = command
            .spawn()
            .expect("node runs; install Node.js 20 or later");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            stderr.read_to_string(&mut text).await.ok();
            text
        });
        Self {
            child,
            stdin: Some(stdin),
            stdout,
            stderr,
        }
    }

    /// Reads the next line node prints and checks that it is `step`. If
    /// node exits first, fails with node's standard error.
    async fn expect(&mut self, step: &str) -> Value {
        let Ok(line) = tokio::time::timeout(STEP_TIMEOUT, self.stdout.next_line()).await else {
            self.child.kill().await.unwrap();
            let stderr = (&mut self.stderr).await.unwrap();
            panic!("node printed no {step} within {STEP_TIMEOUT:?}: {stderr}");
        };
        let Some(line) = line.unwrap() else {
            let status = self.child.wait().await.unwrap();
            let stderr = (&mut self.stderr).await.unwrap();
            panic!("node exited ({status}) before {step}: {stderr}");
        };
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["step"], step, "{value}");
        value
    }

    /// Sends the callback URL, the only line node reads, and closes its
    /// standard input.
    async fn send_callback(&mut self, url: &str) {
        let mut stdin = self.stdin.take().expect("the callback is sent once");
        stdin
            .write_all(format!("{url}\n").as_bytes())
            .await
            .unwrap();
        stdin.shutdown().await.unwrap();
    }

    /// Waits for node to exit and checks that it succeeded.
    async fn finish(mut self) {
        let status = tokio::time::timeout(STEP_TIMEOUT, self.child.wait())
            .await
            .expect("node exits")
            .unwrap();
        let stderr = self.stderr.await.unwrap();
        assert!(status.success(), "node failed ({status}): {stderr}");
    }
}

/// Returns the path and query of `url`, which must be on `issuer`.
fn path_on(issuer: &str, url: &str) -> String {
    let rest = url
        .strip_prefix(issuer)
        .unwrap_or_else(|| panic!("{url} is not on the issuer {issuer}"));
    assert!(rest.starts_with('/'), "{url}");
    rest.to_owned()
}

/// Runs the whole relying-party flow for `client` and `user` and checks
/// each result.
async fn complete_flow(app: &TestApp, client: &RegisteredClient, user: &UserRecord) {
    let issuer = app.state.config.issuer.clone();
    assert_eq!(issuer, format!("http://{}", app.address));
    let mut rp = RelyingParty::start(&issuer, client);

    let discovery = rp.expect("discovery").await;
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(
        discovery["end_session_endpoint"],
        format!("{issuer}/logout")
    );

    // The browser part: login and consent on Tessera's pages.
    let authorization = rp.expect("authorization_url").await;
    let url = authorization["url"].as_str().unwrap();
    let start = path_on(&issuer, url);
    assert!(start.starts_with("/authorize?"), "{url}");
    assert_eq!(param(url, "client_id").as_deref(), Some(client.id.as_str()));
    assert_eq!(param(url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param(url, "scope").as_deref(), Some(SCOPE));
    assert_eq!(
        param(url, "redirect_uri").as_deref(),
        Some(client.redirect_uri)
    );
    let state = param(url, "state").expect("the request carries state");
    assert!(param(url, "nonce").is_some(), "{url}");
    let mut browser = Browser::new(app);
    let page = browser.run(&start, &user.username, true).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let callback = page.location.expect("a redirect to the client");
    assert!(
        callback.starts_with(&format!("{}?", client.redirect_uri)),
        "{callback}"
    );
    assert_eq!(param(&callback, "state"), Some(state));
    assert_eq!(param(&callback, "iss").as_deref(), Some(issuer.as_str()));
    rp.send_callback(&callback).await;

    let tokens = rp.expect("tokens").await;
    let claims = &tokens["id_token_claims"];
    let subject = user.id.to_string();
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["sub"], subject.as_str());
    assert_eq!(tokens["nonce_matches"], true);
    assert!(claims["auth_time"].is_i64(), "{claims}");
    assert!(claims["sid"].is_string(), "{claims}");
    assert!(claims["at_hash"].is_string(), "{claims}");
    assert_eq!(claims["email"], "alice@example.com");
    // oauth4webapi, under openid-client, lower-cases `token_type`.
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["scope"], "email offline_access openid profile");
    assert!(tokens["expires_in"].as_i64().unwrap() > 0, "{tokens}");
    assert_eq!(tokens["has_refresh_token"], true);

    let userinfo = rp.expect("userinfo").await;
    let userinfo = &userinfo["userinfo"];
    assert_eq!(userinfo["sub"], subject.as_str());
    assert_eq!(userinfo["email"], "alice@example.com");
    assert_eq!(userinfo["email_verified"], false);
    assert_eq!(userinfo["given_name"], "Alice");
    assert_eq!(userinfo["family_name"], "Liddell");
    assert_eq!(userinfo["preferred_username"], "alice");

    let refresh = rp.expect("refresh").await;
    assert_eq!(refresh["rotated"], true);
    assert_eq!(refresh["new_access_token"], true);
    let refreshed = &refresh["id_token_claims"];
    assert_eq!(refreshed["sub"], subject.as_str());
    assert_eq!(refreshed["aud"], client.id.as_str());
    assert_eq!(refreshed["iss"], issuer.as_str());
    assert_eq!(refreshed["auth_time"], claims["auth_time"]);
    assert_eq!(refreshed["sid"], claims["sid"]);
    assert!(refreshed.get("nonce").is_none(), "{refreshed}");

    let replay = rp.expect("replay").await;
    assert_eq!(replay["replayed_error"], "invalid_grant");
    assert_eq!(replay["newest_error"], "invalid_grant");

    let logout = rp.expect("logout_url").await;
    rp.finish().await;
    let url = logout["url"].as_str().unwrap();
    let logout_state = logout["state"].as_str().unwrap();
    let path = path_on(&issuer, url);
    assert!(path.starts_with("/logout?"), "{url}");
    assert_eq!(
        param(url, "post_logout_redirect_uri").as_deref(),
        Some(POST_LOGOUT_REDIRECT)
    );
    assert!(param(url, "id_token_hint").is_some(), "{url}");
    assert_eq!(param(url, "client_id").as_deref(), Some(client.id.as_str()));

    // The session cookie before logout, to show that the server ended the
    // session rather than the browser forgetting it.
    let signed_in_cookies = browser.cookies.clone();
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let location = page.location.expect("a redirect after logout");
    assert_eq!(
        location,
        format!("{POST_LOGOUT_REDIRECT}?state={logout_state}")
    );

    let silent = silent_authorization(client);
    for cookies in [browser.cookies.clone(), signed_in_cookies] {
        browser.cookies = cookies;
        let page = browser.get(&silent).await;
        assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
        let location = page.location.unwrap();
        assert_eq!(
            param(&location, "error").as_deref(),
            Some("login_required"),
            "{location}"
        );
        assert_eq!(param(&location, "state").as_deref(), Some("after-logout"));
    }
}

/// Builds the path of an authorization request with `prompt=none` for
/// `client`.
fn silent_authorization(client: &RegisteredClient) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", client.redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "after-logout")
        .append_pair("prompt", "none")
        .finish();
    format!("/authorize?{query}")
}

async fn spawn(backend: Backend) -> (TestApp, UserRecord) {
    let app = TestApp::spawn_at_own_issuer(TestStore::new(backend).await, fast_config()).await;
    let user = add_user(&app).await;
    (app, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_confidential_flow_on_sqlite() {
    let (app, user) = spawn(Backend::Sqlite).await;
    let client = confidential_client(&app).await;
    complete_flow(&app, &client, &user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_confidential_flow_on_postgres() {
    let (app, user) = spawn(Backend::Postgres).await;
    let client = confidential_client(&app).await;
    complete_flow(&app, &client, &user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_public_flow_with_loopback_redirect() {
    let (app, user) = spawn(Backend::Sqlite).await;
    let client = public_client(&app).await;
    complete_flow(&app, &client, &user).await;
}
