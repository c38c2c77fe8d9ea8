//! Rate limits over real HTTP: per client at `/token`, failed client
//! authentication per address, and `POST /login` per address. Every limit
//! here refills one request an hour, so no test depends on timing.

use reqwest::StatusCode;
use serde_json::Value;
use tessera::config::{Config, RateLimit};

use crate::harness::Backend;
use crate::login::{add_user, fast_config, new_transaction, spawn, Browser};
use crate::oauth_support::{
    add_client, add_resource, assert_oauth_error, service, token, Auth, OauthApp,
};

/// Refills one request an hour after a burst of `burst`.
fn hourly(burst: u32) -> RateLimit {
    RateLimit::new(1.0 / 3600.0, burst)
}

/// Asserts a 429 with `Retry-After` of at least one whole second; returns
/// the seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    let value = headers["retry-after"].to_str().unwrap();
    let seconds: u64 = value.parse().unwrap();
    assert!(seconds >= 1, "Retry-After {value}");
    seconds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limit_is_per_client() {
    let mut config = Config::default();
    config.rate_limits.token = hourly(2);
    let oauth = OauthApp::spawn_configured(Backend::Sqlite, config).await;
    add_resource(&oauth, "https://api.test/", &["api.read"]).await;
    let metadata = || service("client_secret_basic", "api.read", Some("https://api.test/"));
    let busy = add_client(&oauth, metadata()).await;
    let quiet = add_client(&oauth, metadata()).await;
    let busy_auth = Auth::Basic(&busy.id, &busy.secret);

    for attempt in 1..=2 {
        let response = token(&oauth, busy_auth, &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "request {attempt}");
    }
    let response = token(&oauth, busy_auth, &[]).await;
    let headers = assert_oauth_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
    )
    .await;
    let seconds = retry_after(&headers);
    assert!(seconds > 60, "an hourly refill waits long: {seconds}");

    let response = token(&oauth, Auth::Basic(&quiet.id, &quiet.secret), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Wrong secrets sent for a client's id spend the sender's address budget,
/// so the flood gets 429 while the real client, even from the same
/// address, still gets tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_flood_spares_the_client() {
    let mut config = Config::default();
    config.rate_limits.token = hourly(5);
    config.rate_limits.failed_client_auth = hourly(3);
    let oauth = OauthApp::spawn_configured(Backend::Sqlite, config).await;
    add_resource(&oauth, "https://api.test/", &["api.read"]).await;
    let victim = add_client(
        &oauth,
        service("client_secret_basic", "api.read", Some("https://api.test/")),
    )
    .await;
    let wrong = Auth::Basic(&victim.id, "not-the-secret");

    for attempt in 1..=3 {
        let response = token(&oauth, wrong, &[]).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    for _ in 0..10 {
        let response = token(&oauth, wrong, &[]).await;
        let headers = assert_oauth_error(
            response,
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
        )
        .await;
        retry_after(&headers);
    }
    let response = token(&oauth, Auth::Post(&victim.id, "still-wrong"), &[]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    for attempt in 1..=5 {
        let response = token(&oauth, Auth::Basic(&victim.id, &victim.secret), &[]).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "real request {attempt}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limit_is_per_address() {
    let mut config = fast_config();
    config.rate_limits.login = hourly(2);
    let app = spawn(config).await;
    add_user(&app, "lee", "lee-pw-1").await;
    let tx = new_transaction(&app, true, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;

    for attempt in 1..=2 {
        let (status, _, _) = browser.login("lee", "wrong").await;
        assert_eq!(status, StatusCode::OK, "attempt {attempt}");
    }
    let (status, headers, page) = browser.login("lee", "lee-pw-1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    retry_after(&headers);
    assert!(page.contains("Too many sign-in attempts"), "{page}");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src"));

    // The page itself is not limited, only the form submission.
    let response = app.get(&format!("/login?tx={tx}")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_limit_is_per_address() {
    let mut config = Config::default();
    config.registration.policy = tessera::config::RegistrationPolicy::Open;
    config.rate_limits.register = hourly(1);
    let oauth = OauthApp::spawn_configured(Backend::Sqlite, config).await;
    let register = || {
        oauth
            .app
            .client
            .post(oauth.app.url("/register"))
            .json(&serde_json::json!({
                "redirect_uris": ["https://rp.test/cb"],
                "client_name": "Self-registered",
            }))
            .send()
    };
    assert_eq!(register().await.unwrap().status(), StatusCode::CREATED);
    let headers = assert_oauth_error(
        register().await.unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
    )
    .await;
    retry_after(&headers);
}
