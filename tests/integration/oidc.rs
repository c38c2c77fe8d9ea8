//! `/userinfo` and RP-initiated `/logout` over HTTP.

use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use tessera::accounts::users::{create_user, NewUser};
use tessera::store::Client;

use crate::authorize::{
    add_client, code_for, exchange, param, query, refresh_with, spawn_on, Browser, PASSWORD,
    VERIFIER,
};
use crate::harness::{Backend, TestApp};
use crate::login::fast_config;

async fn setup() -> (TestApp, Client) {
    let app = spawn_on(Backend::Sqlite, fast_config()).await;
    let state = &app.state;
    let new = NewUser {
        username: "u1".into(),
        email: Some("u1@example.test".into()),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
    };
    create_user(
        state.store.as_ref(),
        &state.accounts.hasher,
        new,
        PASSWORD,
        state.clock.now(),
    )
    .await
    .unwrap();
    let client = add_client(&app, "openid email profile offline_access", false).await;
    (app, client)
}

async fn userinfo(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url("/userinfo"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_returns_claims_by_scope() {
    let (app, client) = setup().await;
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

    let response = userinfo(&app, Some(&tokens.access_token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["email"], "u1@example.test");
    assert_eq!(body["email_verified"], false);
    assert!(body.get("given_name").is_none(), "profile was not granted");
    assert!(body["sub"].is_string());

    let post = app
        .client
        .post(app.url("/userinfo"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::OK);

    // RFC 6750 section 2.2: the token as a form parameter of a POST.
    let in_body = app
        .client
        .post(app.url("/userinfo"))
        .form(&[("access_token", tokens.access_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(in_body.status(), StatusCode::OK);
    let in_body: serde_json::Value = in_body.json().await.unwrap();
    assert_eq!(in_body["sub"], body["sub"]);

    // Both ways at once is a malformed request (RFC 6750 section 2).
    let both = app
        .client
        .post(app.url("/userinfo"))
        .bearer_auth(&tokens.access_token)
        .form(&[("access_token", tokens.access_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    let challenge = both.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );

    // A header token does not depend on the body: a form body that cannot
    // be parsed, or one over 64 KiB, is then ignored.
    let padding = format!("pad={}", "a".repeat(70 * 1024));
    for body in ["a=1&a=2", padding.as_str()] {
        let response = app
            .client
            .post(app.url("/userinfo"))
            .bearer_auth(&tokens.access_token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    // Without a header token, such a body is the request's error: 413 for
    // one over the limit, as on every route.
    let too_large = format!("access_token={}&{padding}", tokens.access_token);
    let response = app
        .client
        .post(app.url("/userinfo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(too_large)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );

    // A token narrowed to `email` still goes to Tessera but lacks openid.
    let narrowed = refresh_with(
        &app,
        &client,
        tokens.refresh_token.as_deref().unwrap(),
        Some("email"),
    )
    .await
    .unwrap();
    let response = userinfo(&app, Some(&narrowed.access_token)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_rejects_missing_invalid_and_revoked_tokens() {
    let (app, client) = setup().await;
    let response = userinfo(&app, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert_eq!(challenge, "Bearer realm=\"tessera\"");

    // A form body without `access_token`, or a body of another type,
    // contains no credentials either.
    for (content_type, body) in [
        ("application/x-www-form-urlencoded", "scope=openid"),
        ("application/json", "{\"access_token\":\"a.b.c.d.e\"}"),
    ] {
        let response = app
            .client
            .post(app.url("/userinfo"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{content_type}"
        );
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(challenge, "Bearer realm=\"tessera\"");
    }

    let response = userinfo(&app, Some("not.a.token.at.all")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid").await;
    let tokens = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .unwrap();
    assert_eq!(
        userinfo(&app, Some(&tokens.access_token)).await.status(),
        StatusCode::OK
    );
    // A replay revokes the grant, and the token with it.
    assert!(exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .is_err());
    let response = userinfo(&app, Some(&tokens.access_token)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Logs in and returns the ID token issued to `client`.
async fn signed_in(browser: &mut Browser, app: &TestApp, client: &Client) -> String {
    let code = code_for(browser, client, "&scope=openid").await;
    let tokens = exchange(app, client, &code, Some(VERIFIER)).await.unwrap();
    tokens.id_token.unwrap()
}

async fn has_session(browser: &mut Browser, client: &Client) -> bool {
    let page = browser
        .get(&query(client, "&scope=openid&prompt=none"))
        .await;
    param(&page.location.unwrap(), "error").is_none()
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_hint_redirects_to_registered_uri_only() {
    let (app, client) = setup().await;
    let other = add_client(&app, "openid", false).await;
    let mut browser = Browser::new(&app);
    let hint = signed_in(&mut browser, &app, &client).await;

    for uri in [
        "https://evil.test/",
        "https://rp.test/bye/",
        "https://rp.test/bye?x=1",
        "https://RP.test/bye",
        "https://rp.test/bye#f",
        "https://rp.test@evil.test/bye",
        "https://rp.test/cb",
    ] {
        let page = browser
            .get(&format!(
                "/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=s",
                encode(uri)
            ))
            .await;
        assert_ne!(page.status, StatusCode::FOUND, "{uri}");
        assert!(page.location.is_none(), "{uri}");
    }
    // Another client's URI, named with that client's id, does not match the hint.
    let page = browser
        .get(&format!(
            "/logout?id_token_hint={hint}&client_id={}&post_logout_redirect_uri={}",
            other.client_id,
            encode("https://rp.test/bye")
        ))
        .await;
    assert!(page.location.is_none());

    let page = browser
        .get(&format!(
            "/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=a%20b",
            encode("https://rp.test/bye")
        ))
        .await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(
        page.location.as_deref(),
        Some("https://rp.test/bye?state=a%20b")
    );
    assert!(!has_session(&mut browser, &client).await);

    let hint = signed_in(&mut browser, &app, &client).await;
    let page = browser
        .get(&format!(
            "/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
            encode("https://rp.test/bye")
        ))
        .await;
    assert_eq!(page.location.as_deref(), Some("https://rp.test/bye"));

    // The same request by POST, as RP-Initiated Logout section 2 allows.
    let hint = signed_in(&mut browser, &app, &client).await;
    let page = browser
        .post(
            "/logout",
            &[
                ("id_token_hint", hint.as_str()),
                ("post_logout_redirect_uri", "https://rp.test/bye"),
                ("state", "p"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(
        page.location.as_deref(),
        Some("https://rp.test/bye?state=p")
    );
    assert!(!has_session(&mut browser, &client).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_without_hint_asks_before_ending_the_session() {
    let (app, client) = setup().await;
    let mut browser = Browser::new(&app);
    signed_in(&mut browser, &app, &client).await;

    let path = format!(
        "/logout?client_id={}&post_logout_redirect_uri={}&state=s1",
        client.client_id,
        encode("https://rp.test/bye")
    );
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.location.is_none());
    assert!(
        has_session(&mut browser, &client).await,
        "not ended before confirmation"
    );

    let page = browser.get(&path).await;
    let csrf = crate::authorize::field(&page.body, "csrf");
    let without_cookie = app
        .client
        .post(app.url("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(without_cookie.status(), StatusCode::FORBIDDEN);

    let page = browser
        .post(
            "/logout",
            &[
                ("csrf", csrf.as_str()),
                ("client_id", client.client_id.as_str()),
                ("post_logout_redirect_uri", "https://rp.test/bye"),
                ("state", "s1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(page.headers[LOCATION], "https://rp.test/bye?state=s1");
    assert!(!has_session(&mut browser, &client).await);

    // No client at all: the signed-out page, never a redirect.
    signed_in(&mut browser, &app, &client).await;
    let page = browser
        .get("/logout?post_logout_redirect_uri=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert!(!page.body.contains("<script>alert"));
    let csrf = crate::authorize::field(&page.body, "csrf");
    let page = browser.post("/logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.location.is_none());
    assert!(page.body.contains("signed out"));
    assert!(!has_session(&mut browser, &client).await);
}
