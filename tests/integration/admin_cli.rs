//! `tessera clients` and `tessera resources` against a real store, next to
//! a running server: validation shared with `/register`, key files with
//! private material, and changes seen by the server's cache.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::Jwk;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::config::{Config, RegistrationPolicy, RegistrationSettings};

use crate::harness::key_server::KeyServer;
use crate::harness::{Backend, TestApp, TestStore};

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");

/// Runs `tessera` against the store and master key of `app`.
pub async fn tessera(app: &TestApp, args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TESSERA_")) {
        command.env_remove(name);
    }
    command
        .env("TESSERA_DATABASE_URL", &app.store.url)
        .env("TESSERA_MASTER_KEY", &app.master_key);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn json_output(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn assert_rejected(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(last.contains(needle), "expected {needle:?} in: {stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
}

async fn spawn_open() -> TestApp {
    let config = Config {
        registration: RegistrationSettings {
            policy: RegistrationPolicy::Open,
        },
        ..Config::default()
    };
    TestApp::spawn_with_config(TestStore::new(Backend::Sqlite).await, config).await
}

fn write(folder: &Path, name: &str, contents: &str) -> String {
    let path = folder.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

fn ec_private() -> Value {
    Value::Object(
        Jwk::generate_ec_key(EcCurve::P256)
            .unwrap()
            .as_ref()
            .clone(),
    )
}

fn ec_public() -> Value {
    let key = Jwk::generate_ec_key(EcCurve::P256).unwrap();
    Value::Object(key.to_public_key().unwrap().as_ref().clone())
}

#[tokio::test]
async fn cli_rejects_fragments_and_script_schemes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let uris = [
        "https://rp.test/cb#x",
        "JaVaScRiPt:alert(1)//",
        "data:text/html,x",
        "http://rp.test/cb",
        "myapp:/cb",
        "rp.test/cb",
    ];
    for uri in uris {
        let output = tessera(
            &app,
            &[
                "--json",
                "clients",
                "create",
                "--name",
                "RP",
                "--redirect-uri",
                uri,
            ],
        )
        .await;
        assert_rejected(&output, "invalid_redirect_uri");
        assert_rejected(&output, "redirect_uris: ");
    }
    assert!(app.store.store.clients().await.unwrap().is_empty());
}

/// Key files with private or symmetric material, each with the words the
/// error must contain.
fn private_key_files() -> Vec<(&'static str, String, &'static str)> {
    let rsa = Jwk::generate_rsa_key(2048).unwrap();
    vec![
        ("ec-with-d.json", ec_private().to_string(), "private member \"d\""),
        (
            "rsa-private.json",
            Value::Object(rsa.as_ref().clone()).to_string(),
            "private member",
        ),
        (
            "oct.json",
            json!({ "kty": "oct", "k": "c2VjcmV0LXNlY3JldA" }).to_string(),
            "private member \"k\"",
        ),
        (
            "private.pem",
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n".to_owned(),
            "PEM private key",
        ),
        (
            "mixed-set.json",
            json!({ "keys": [ec_public(), ec_private()] }).to_string(),
            "key 1 of the JWK Set",
        ),
    ]
}

#[tokio::test]
async fn cli_rejects_private_key_files() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let folder = tempfile::tempdir().unwrap();
    for (name, contents, needle) in private_key_files() {
        let path = write(folder.path(), name, &contents);
        let resource = tessera(
            &app,
            &[
                "resources",
                "create",
                "--identifier",
                "https://rs1.test/",
                "--name",
                "RS1",
                "--jwk-file",
                &path,
            ],
        )
        .await;
        assert_rejected(&resource, needle);

        let client = tessera(
            &app,
            &[
                "clients",
                "create",
                "--name",
                "RP3",
                "--grant-type",
                "client_credentials",
                "--auth-method",
                "private_key_jwt",
                "--jwks-file",
                &path,
            ],
        )
        .await;
        assert_rejected(&client, needle);
    }
    assert!(app.store.store.resource_servers().await.unwrap().is_empty());
    assert!(app.store.store.clients().await.unwrap().is_empty());
}

#[tokio::test]
async fn resource_create_prints_introspection_credentials_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let folder = tempfile::tempdir().unwrap();
    let key = ec_public();
    let path = write(folder.path(), "rs1.json", &key.to_string());
    let created = json_output(
        &tessera(
            &app,
            &[
                "--json",
                "resources",
                "create",
                "--identifier",
                "https://rs1.test/",
                "--name",
                "RS1",
                "--jwk-file",
                &path,
                "--scope",
                "api.read",
                "--access-token-ttl",
                "5m",
            ],
        )
        .await,
    );
    assert_eq!(created["identifier"], "https://rs1.test/");
    let client_id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    assert_eq!(created["signing_alg"], "ES256");
    assert_eq!(created["access_token_ttl_seconds"], 300);

    let stored = app
        .store
        .store
        .resource_server_by_introspection_client(client_id)
        .await
        .unwrap()
        .unwrap();
    assert!(tessera::resources::verify_introspection_secret(
        &stored,
        secret,
        &app.state.data_keys.digester
    ));

    let shown =
        json_output(&tessera(&app, &["resources", "show", "https://rs1.test/", "--json"]).await);
    assert!(shown.get("client_secret").is_none());
    assert!(shown.get("introspection_secret_digest").is_none());
    let jwk = shown["jwk"].as_object().unwrap();
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        assert!(!jwk.contains_key(member), "{member} in {shown}");
    }
    let expected_kid = tessera::public_keys::thumbprint(key.as_object().unwrap()).unwrap();
    assert_eq!(jwk["kid"], json!(expected_kid));

    let built_in = tessera(
        &app,
        &[
            "resources",
            "create",
            "--identifier",
            "https://rs2.test/",
            "--name",
            "RS2",
            "--jwk-file",
            &path,
            "--scope",
            "openid",
        ],
    )
    .await;
    assert_rejected(&built_in, "built-in scope");

    let listed = json_output(&tessera(&app, &["--json", "resources", "list"]).await);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let deleted = tessera(&app, &["resources", "delete", "https://rs1.test/"]).await;
    assert!(deleted.status.success());
    let missing = tessera(&app, &["resources", "show", "https://rs1.test/"]).await;
    assert_rejected(&missing, "not found");
}

#[tokio::test]
async fn resource_with_jwks_uri_is_fetched_and_checked() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let server = KeyServer::start(json!({ "keys": [ec_public()] })).await;
    let url = server.url();
    let created = json_output(
        &tessera(
            &app,
            &[
                "--json",
                "resources",
                "create",
                "--identifier",
                "https://rs3.test/",
                "--name",
                "RS3",
                "--jwks-uri",
                &url,
            ],
        )
        .await,
    );
    assert_eq!(created["jwks_uri"], json!(url));
    assert_eq!(server.hits(), 1);

    server.set_body(json!({ "keys": [ec_public(), ec_private()] }));
    let rejected = tessera(
        &app,
        &[
            "resources",
            "create",
            "--identifier",
            "https://rs4.test/",
            "--name",
            "RS4",
            "--jwks-uri",
            &url,
        ],
    )
    .await;
    assert_rejected(&rejected, "private member");
}

/// The same metadata through `/register` and through the CLI gives records
/// that differ only in id, secrets, timestamps and origin.
#[tokio::test]
async fn register_and_cli_make_the_same_record() {
    let app = spawn_open().await;
    let request = json!({
        "client_name": "Same App",
        "redirect_uris": ["https://same.test/cb", "http://127.0.0.1/cb"],
        "post_logout_redirect_uris": ["https://same.test/bye"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile offline_access",
        "token_endpoint_auth_method": "client_secret_post",
        "id_token_signed_response_alg": "ES256",
    });
    let response = app
        .client
        .post(app.url("/register"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered: Value = response.json().await.unwrap();

    let created = json_output(
        &tessera(
            &app,
            &[
                "--json",
                "clients",
                "create",
                "--name",
                "Same App",
                "--redirect-uri",
                "https://same.test/cb",
                "--redirect-uri",
                "http://127.0.0.1/cb",
                "--post-logout-redirect-uri",
                "https://same.test/bye",
                "--scope",
                "openid",
                "--scope",
                "profile",
                "--scope",
                "offline_access",
                "--auth-method",
                "client_secret_post",
                "--id-token-alg",
                "ES256",
            ],
        )
        .await,
    );

    let store = &app.store.store;
    let by_register = store
        .client(registered["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let by_cli = store
        .client(created["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_register.name, by_cli.name);
    assert_eq!(by_register.application_type, by_cli.application_type);
    assert_eq!(by_register.redirect_uris, by_cli.redirect_uris);
    assert_eq!(
        by_register.post_logout_redirect_uris,
        by_cli.post_logout_redirect_uris
    );
    assert_eq!(by_register.grant_types, by_cli.grant_types);
    assert_eq!(by_register.response_types, by_cli.response_types);
    assert_eq!(by_register.scopes, by_cli.scopes);
    assert_eq!(by_register.auth_method, by_cli.auth_method);
    assert_eq!(by_register.jwks, by_cli.jwks);
    assert_eq!(by_register.jwks_uri, by_cli.jwks_uri);
    assert_eq!(by_register.default_resource, by_cli.default_resource);
    assert_eq!(
        by_register.id_token_signed_response_alg,
        by_cli.id_token_signed_response_alg
    );
    assert_eq!(by_register.first_party, by_cli.first_party);
    assert_eq!(by_register.require_pkce, by_cli.require_pkce);
    assert!(by_register.self_registered);
    assert!(!by_cli.self_registered);

    let registry = &app.state.registry;
    let digester = &app.state.data_keys.digester;
    for (id, secret) in [
        (&by_register.client_id, &registered["client_secret"]),
        (&by_cli.client_id, &created["client_secret"]),
    ] {
        let secret = secret.as_str().unwrap();
        let found = registry
            .authenticate_secret(id, secret, digester)
            .await
            .unwrap();
        assert!(found.is_some(), "{id}");
    }
}

/// Polls `check` every 50 ms for up to 3 s; returns how long it took to
/// become true.
async fn time_until<F, Fut>(mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn server_cache_sees_cli_changes_within_two_seconds() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let created = json_output(
        &tessera(
            &app,
            &[
                "--json",
                "clients",
                "create",
                "--name",
                "RP",
                "--redirect-uri",
                "https://rp.test/cb",
            ],
        )
        .await,
    );
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let old_secret = created["client_secret"].as_str().unwrap().to_owned();
    let registry = app.state.registry.clone();
    let digester = app.state.data_keys.digester.clone();
    // Cache the client before the change.
    assert!(registry
        .authenticate_secret(&client_id, &old_secret, &digester)
        .await
        .unwrap()
        .is_some());

    let rotated =
        json_output(&tessera(&app, &["--json", "clients", "rotate-secret", &client_id]).await);
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    let seen = time_until(|| {
        let registry = registry.clone();
        let digester = digester.clone();
        let client_id = client_id.clone();
        let old_secret = old_secret.clone();
        async move {
            registry
                .authenticate_secret(&client_id, &old_secret, &digester)
                .await
                .unwrap()
                .is_none()
        }
    })
    .await;
    let seen = seen.expect("old secret still accepted after 3 s");
    assert!(seen <= Duration::from_secs(2), "took {seen:?}");
    assert!(registry
        .authenticate_secret(&client_id, &new_secret, &digester)
        .await
        .unwrap()
        .is_some());

    let deleted = tessera(&app, &["clients", "delete", &client_id]).await;
    assert!(deleted.status.success());
    let gone = time_until(|| {
        let registry = registry.clone();
        let client_id = client_id.clone();
        async move { registry.client(&client_id).await.unwrap().is_none() }
    })
    .await;
    let gone = gone.expect("deleted client still cached after 3 s");
    assert!(gone <= Duration::from_secs(2), "took {gone:?}");
}

#[tokio::test]
async fn public_client_has_no_secret_to_rotate() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let created = json_output(
        &tessera(
            &app,
            &[
                "--json",
                "clients",
                "create",
                "--name",
                "SPA",
                "--public",
                "--redirect-uri",
                "https://pub.test/cb",
            ],
        )
        .await,
    );
    assert!(created.get("client_secret").is_none());
    assert_eq!(created["token_endpoint_auth_method"], "none");
    let client_id = created["client_id"].as_str().unwrap();
    let rotate = tessera(&app, &["clients", "rotate-secret", client_id]).await;
    assert_rejected(&rotate, "uses no client secret");

    let shown = json_output(&tessera(&app, &["clients", "show", client_id, "--json"]).await);
    assert!(shown.get("secret_digest").is_none());
    assert_eq!(
        shown["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        shown["scopes"],
        json!(["openid", "profile", "email", "offline_access"])
    );
}

#[tokio::test]
async fn client_flags_reach_the_record() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let missing = tessera(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "Console",
            "--redirect-uri",
            "https://console.test/cb",
            "--default-resource",
            "https://rs1.test/",
        ],
    )
    .await;
    assert_rejected(&missing, "default_resource: no resource server");

    let folder = tempfile::tempdir().unwrap();
    let path = write(folder.path(), "rs1.json", &ec_public().to_string());
    let resource = tessera(
        &app,
        &[
            "resources",
            "create",
            "--identifier",
            "https://rs1.test/",
            "--name",
            "RS1",
            "--jwk-file",
            &path,
        ],
    )
    .await;
    assert!(resource.status.success(), "{resource:?}");
    let created = json_output(
        &tessera(
            &app,
            &[
                "--json",
                "clients",
                "create",
                "--name",
                "Console",
                "--redirect-uri",
                "https://console.test/cb",
                "--default-resource",
                "https://rs1.test/",
                "--first-party",
                "--allow-no-pkce",
            ],
        )
        .await,
    );
    assert_eq!(created["default_resource"], "https://rs1.test/");
    assert_eq!(created["first_party"], true);
    assert_eq!(created["require_pkce"], false);

    let public_without_pkce = tessera(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "SPA",
            "--public",
            "--redirect-uri",
            "https://pub.test/cb",
            "--allow-no-pkce",
        ],
    )
    .await;
    assert_rejected(&public_without_pkce, "allow_no_pkce");
}

#[tokio::test]
async fn client_origins_and_lifetimes_reach_the_record() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let create = |extra: &'static [&'static str]| {
        let mut args = vec![
            "--json",
            "clients",
            "create",
            "--name",
            "SPA",
            "--public",
            "--redirect-uri",
            "https://spa.test/cb",
        ];
        args.extend_from_slice(extra);
        args
    };
    let rejected = [
        (
            &["--allowed-origin", "https://spa.test/"][..],
            "must not end with a slash",
        ),
        (
            &["--allowed-origin", "https://spa.test/app"][..],
            "must not contain a path",
        ),
        (
            &["--allowed-origin", "http://spa.test"][..],
            "only for loopback hosts",
        ),
        (
            &["--access-token-ttl", "2d"][..],
            "access_token_ttl: must be above zero and at most 24h",
        ),
        (
            &[
                "--refresh-token-idle-ttl",
                "2h",
                "--refresh-token-absolute-ttl",
                "1h",
            ][..],
            "refresh_token_idle_ttl: must be at most refresh_token_absolute_ttl",
        ),
    ];
    for (extra, needle) in rejected {
        assert_rejected(&tessera(&app, &create(extra)).await, needle);
    }
    let unparsable = tessera(&app, &create(&["--access-token-ttl", "10 parsecs"])).await;
    assert_eq!(unparsable.status.code(), Some(2), "{unparsable:?}");

    let created = json_output(
        &tessera(
            &app,
            &create(&[
                "--allowed-origin",
                "https://spa.test",
                "--allowed-origin",
                "http://localhost:5173",
                "--access-token-ttl",
                "5m",
                "--refresh-token-idle-ttl",
                "1h",
                "--refresh-token-absolute-ttl",
                "1d",
            ]),
        )
        .await,
    );
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let shown = json_output(&tessera(&app, &["--json", "clients", "show", &client_id]).await);
    let listed = json_output(&tessera(&app, &["--json", "clients", "list"]).await);
    for view in [&created, &shown, &listed[0]] {
        assert_eq!(
            view["allowed_origins"],
            json!(["https://spa.test", "http://localhost:5173"])
        );
        assert_eq!(view["access_token_ttl_seconds"], 300);
        assert_eq!(view["refresh_token_idle_ttl_seconds"], 3600);
        assert_eq!(view["refresh_token_absolute_ttl_seconds"], 86_400);
    }

    let events = app.state.store.recent_audit_events(10).await.unwrap();
    let created_event = events
        .iter()
        .find(|event| event.kind == "client.created")
        .unwrap();
    assert_eq!(
        created_event.detail.as_deref(),
        Some(
            "allowed_origins https://spa.test http://localhost:5173; access_token_ttl 300s; \
             refresh_token_idle_ttl 3600s; refresh_token_absolute_ttl 86400s"
        )
    );
}

#[tokio::test]
async fn initial_access_token_opens_registration_once() {
    let config = Config {
        registration: RegistrationSettings {
            policy: RegistrationPolicy::Token,
        },
        ..Config::default()
    };
    let app = TestApp::spawn_with_config(TestStore::new(Backend::Sqlite).await, config).await;
    let issued = json_output(
        &tessera(
            &app,
            &["--json", "registration-tokens", "create", "--ttl", "10m"],
        )
        .await,
    );
    let token = issued["initial_access_token"].as_str().unwrap();
    assert_eq!(issued["uses"], 1);
    let request = json!({ "grant_types": ["client_credentials"], "scope": "api.read" });
    let register = || {
        app.client
            .post(app.url("/register"))
            .bearer_auth(token)
            .json(&request)
            .send()
    };
    assert_eq!(register().await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(register().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}
