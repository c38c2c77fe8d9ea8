//! The audit log through a real flow: which events a login, consent, token
//! exchange, reuse, revocation, registration and CLI commands record, with
//! actor, client, subject, IP and request id, and `tessera audit tail`.

use reqwest::StatusCode;
use serde_json::Value;
use tessera::config::{Config, RegistrationPolicy, RegistrationSettings};

use crate::admin_cli::tessera;
use crate::authorize::{
    add_client, code_for, exchange, field, refresh_with, Browser, PASSWORD, VERIFIER,
};
use crate::harness::{Backend, TestApp, TestStore};
use crate::login::add_user;

/// Returns the events `tessera audit tail --json` prints, oldest first.
async fn tail(app: &TestApp, lines: &str) -> Vec<Value> {
    let output = tessera(app, &["audit", "tail", "-n", lines, "--json"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap()
}

fn find<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|event| event["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_records_who_did_what_without_secrets() {
    let config = Config {
        registration: RegistrationSettings {
            policy: RegistrationPolicy::Open,
        },
        ..Config::default()
    };
    let app = TestApp::spawn_with_config(TestStore::new(Backend::Sqlite).await, config).await;
    let user = add_user(&app, "u1", PASSWORD).await;
    let client = add_client(&app, "openid offline_access", false).await;
    let mut browser = Browser::new(&app);

    let start = browser
        .get(&crate::authorize::query(&client, "&scope=openid"))
        .await;
    let login = browser.get(&start.location.unwrap()).await;
    let (tx, csrf) = (field(&login.body, "tx"), field(&login.body, "csrf"));
    let form = [
        ("tx", tx.as_str()),
        ("csrf", csrf.as_str()),
        ("username", "nobody"),
        ("password", PASSWORD),
    ];
    let failed = browser.post("/login", &form).await;
    assert_eq!(failed.status, StatusCode::OK, "the login page again");
    let code = code_for(&mut browser, &client, "&scope=openid%20offline_access").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    let first = tokens.refresh_token.clone().unwrap();
    refresh_with(&app, &client, &first, None).await.unwrap();
    assert!(refresh_with(&app, &client, &first, None).await.is_err());

    let registered = app
        .client
        .post(app.url("/register"))
        .header("x-request-id", "req-register-1")
        .json(&serde_json::json!({
            "client_name": "Self Service",
            "redirect_uris": ["https://self.test/cb"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let registered: Value = registered.json().await.unwrap();
    let self_id = registered["client_id"].as_str().unwrap();
    let deleted = tessera(&app, &["clients", "delete", self_id]).await;
    assert!(deleted.status.success());
    let rotated = tessera(&app, &["keys", "rotate", "--force"]).await;
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );

    let events = tail(&app, "200").await;
    let times: Vec<&str> = events.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "tail prints oldest first");

    let failure = find(&events, "login.failure");
    assert_eq!(failure["ip"], "127.0.0.1");
    assert!(failure["actor"].is_null(), "{failure}");
    let success = find(&events, "login.success");
    let sub = user.id.to_string();
    assert_eq!(success["subject"], sub.as_str());
    assert_eq!(success["actor"], format!("user:{sub}"));
    assert_eq!(success["client_id"], client.client_id.as_str());
    let consent = find(&events, "consent.granted");
    assert_eq!(consent["detail"], "scope offline_access openid");
    assert_eq!(consent["ip"], "127.0.0.1");
    assert!(consent["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let issued = find(&events, "tokens.issued");
    assert_eq!(issued["subject"], sub.as_str());
    assert_eq!(issued["actor"], format!("client:{}", client.client_id));
    let reuse = find(&events, "refresh_token.reuse");
    assert_eq!(reuse["subject"], sub.as_str());

    let created = events
        .iter()
        .find(|event| event["kind"] == "client.created" && event["client_id"] == self_id)
        .expect("the self-registered client's creation");
    assert_eq!(created["request_id"], "req-register-1");
    assert_eq!(created["actor"], format!("client:{self_id}"));
    let removed = find(&events, "client.deleted");
    assert_eq!(removed["client_id"], self_id);
    assert_eq!(removed["actor"], "cli");
    assert_eq!(find(&events, "key.rotated")["actor"], "cli");
    assert_eq!(find(&events, "key.created")["actor"], "server");

    // No secret reaches the log.
    let text = serde_json::to_string(&events).unwrap();
    let secrets = [
        PASSWORD,
        code.as_str(),
        tokens.access_token.as_str(),
        first.as_str(),
        registered["client_secret"].as_str().unwrap_or("no secret"),
        registered["registration_access_token"].as_str().unwrap(),
    ];
    for secret in secrets {
        assert!(!text.contains(secret), "a secret is in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_lines_and_checks_its_count() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    add_user(&app, "u1", PASSWORD).await;
    let client = add_client(&app, "openid", true).await;
    let mut browser = Browser::new(&app);
    code_for(&mut browser, &client, "&scope=openid").await;
    code_for(&mut browser, &client, "&scope=openid&prompt=login").await;

    let output = tessera(&app, &["audit", "tail", "-n", "2"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[1].contains(" login.success "), "{stdout}");
    assert!(
        lines[1].contains(&format!("client=\"{}\"", client.client_id)),
        "{stdout}"
    );

    for bad in ["0", "10001"] {
        let output = tessera(&app, &["audit", "tail", "-n", bad]).await;
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("out of range"), "{stderr}");
    }
}
