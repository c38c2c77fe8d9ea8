//! The client address behind a proxy: `X-Forwarded-For` counts only when
//! the TCP peer (here 127.0.0.1) is in `http.trusted_proxies`, for the
//! login limit, the login audit event and the token endpoint's audit event.

use reqwest::StatusCode;
use tessera::clients::{register, ClientMetadata, Registrar};
use tessera::config::{Config, RateLimit};
use tessera::store::AuditEvent;

use crate::authorize::{code_for, spawn_on, Browser as AuthorizeBrowser, PASSWORD, VERIFIER};
use crate::harness::{Backend, TestApp};
use crate::login::{add_user, fast_config, new_transaction, spawn, Browser};

/// Returns a login configuration that allows one `POST /login` per address
/// and hour, and trusts 127.0.0.1 as a proxy when `trusted` is set.
fn config(trusted: bool) -> Config {
    let mut config = fast_config();
    config.rate_limits.login = RateLimit::new(1.0 / 3600.0, 1);
    if trusted {
        config.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    }
    config
}

/// Sends a wrong password for `lee` with `X-Forwarded-For: forwarded_for`.
async fn failed_login(app: &TestApp, forwarded_for: &str) -> StatusCode {
    let tx = new_transaction(app, true, "openid").await;
    let browser = Browser::open_login(app, &tx).await;
    let form = [
        ("tx", tx.as_str()),
        ("csrf", browser.csrf.as_str()),
        ("username", "lee"),
        ("password", "wrong"),
    ];
    app.client
        .post(app.url("/login"))
        .header("cookie", browser.cookie_header())
        .header("x-forwarded-for", forwarded_for)
        .form(&form)
        .send()
        .await
        .unwrap()
        .status()
}

async fn latest_event(app: &TestApp, kind: &str) -> AuditEvent {
    let events = app.state.store.recent_audit_events(20).await.unwrap();
    events
        .into_iter()
        .find(|event| event.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_peer_forwards_the_client_address() {
    let app = spawn(config(true)).await;
    add_user(&app, "lee", "lee-pw-1").await;

    // The left entry is whatever the client sent; the proxy appended the
    // right one, which is the address counted.
    let status = failed_login(&app, "198.51.100.1, 203.0.113.9").await;
    assert_eq!(status, StatusCode::OK);
    let event = latest_event(&app, "login.failure").await;
    assert_eq!(event.ip.as_deref(), Some("203.0.113.9"));

    let status = failed_login(&app, "203.0.113.10").await;
    assert_eq!(status, StatusCode::OK, "another address has its own budget");
    let status = failed_login(&app, "203.0.113.9").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_peer_header_is_ignored() {
    let app = spawn(config(false)).await;
    add_user(&app, "lee", "lee-pw-1").await;

    let status = failed_login(&app, "203.0.113.9").await;
    assert_eq!(status, StatusCode::OK);
    let event = latest_event(&app, "login.failure").await;
    assert_eq!(event.ip.as_deref(), Some("127.0.0.1"));

    let status = failed_login(&app, "203.0.113.10").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged header does not buy a new budget"
    );
}

/// A replayed code at `/token` writes its audit event with the client
/// address: the forwarded one behind a trusted proxy, the peer otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_audit_event_records_client_address() {
    for (trusted, expected) in [(true, "203.0.113.9"), (false, "127.0.0.1")] {
        let mut config = fast_config();
        if trusted {
            config.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        }
        let app = spawn_on(Backend::Sqlite, config).await;
        add_user(&app, "u1", PASSWORD).await;
        let metadata = ClientMetadata {
            client_name: Some("Example Calendar".into()),
            redirect_uris: vec!["https://rp.test/cb".into()],
            scope: Some("openid".into()),
            grant_types: Some(vec!["authorization_code".into()]),
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
        let mut browser = AuthorizeBrowser::new(&app);
        let code = code_for(&mut browser, &client, "&scope=openid").await;

        let mut statuses = Vec::new();
        for request_id in ["exchange-1", "exchange-2"] {
            let response = app
                .client
                .post(app.url("/token"))
                .basic_auth(&client.client_id, Some(secret.expose()))
                .header("x-forwarded-for", "203.0.113.9")
                .header("x-request-id", request_id)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", "https://rp.test/cb"),
                    ("code_verifier", VERIFIER),
                ])
                .send()
                .await
                .unwrap();
            statuses.push(response.status());
        }
        assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
        let event = latest_event(&app, "authorization_code.replay").await;
        assert_eq!(event.ip.as_deref(), Some(expected), "trusted: {trusted}");
        assert_eq!(event.request_id.as_deref(), Some("exchange-2"));
    }
}
