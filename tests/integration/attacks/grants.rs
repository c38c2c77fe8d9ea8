//! PKCE downgrade, code injection and refresh tokens across clients, over
//! the token endpoint (RFC 9700 sections 2.1.1, 4.5, 4.8 and 4.14).

use reqwest::StatusCode;
use serde_json::Value;

use super::{add_client, assert_json_error, rp1_metadata, Setup};
use crate::authorize::{code_for, param, Browser, VERIFIER};
use crate::harness::Backend;

/// Builds the form of a code exchange at `https://rp.test/cb`.
fn exchange_form<'a>(code: &'a str, verifier: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", "https://rp.test/cb"),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    form
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_downgrade_fails_at_token_endpoint() {
    let setup = Setup::new(Backend::Sqlite).await;
    let mut browser = Browser::new(&setup.app);

    // A challenge at /authorize and no verifier at /token.
    let code = code_for(&mut browser, &setup.client, "&scope=openid").await;
    let response = setup.token(&exchange_form(&code, None)).await;
    assert_json_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let response = setup.token(&exchange_form(&code, Some(VERIFIER))).await;
    assert_eq!(response.status(), StatusCode::OK, "the code was spent");

    // A client that may skip PKCE: no challenge at /authorize, then a
    // verifier at /token, as an attacker who strips the challenge would
    // send it.
    let mut metadata = rp1_metadata();
    metadata.allow_no_pkce = true;
    let (legacy, secret) = add_client(&setup.app, metadata).await;
    let path = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri=https%3A%2F%2Frp.test%2Fcb\
         &scope=openid",
        legacy.client_id
    );
    let page = browser.run(&path, "u1", true).await;
    let code = param(&page.location.unwrap(), "code").unwrap();
    let post = |form: Vec<(&'static str, String)>| {
        setup
            .app
            .client
            .post(setup.app.url("/token"))
            .basic_auth(&legacy.client_id, Some(&secret))
            .form(&form)
            .send()
    };
    let with_verifier = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.clone()),
        ("redirect_uri", "https://rp.test/cb".to_owned()),
        ("code_verifier", VERIFIER.to_owned()),
    ];
    assert_json_error(
        post(with_verifier).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let without = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", "https://rp.test/cb".to_owned()),
    ];
    assert_eq!(post(without).await.unwrap().status(), StatusCode::OK);

    // That client still cannot send a `plain` challenge or an unknown method.
    for method in ["plain", "S512", "s256"] {
        let page = browser
            .get(&format!(
                "{path}&code_challenge={VERIFIER}&code_challenge_method={method}"
            ))
            .await;
        let location = page.location.unwrap();
        assert_eq!(
            param(&location, "error").as_deref(),
            Some("invalid_request"),
            "{method}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_code_fails_without_its_verifier() {
    let setup = Setup::new(Backend::Sqlite).await;
    let (other, other_secret) = add_client(&setup.app, rp1_metadata()).await;
    let mut browser = Browser::new(&setup.app);
    let code = code_for(&mut browser, &setup.client, "&scope=openid").await;

    // The attacker's session at the same client has another verifier.
    let attacker_verifier = "A".repeat(43);
    let response = setup
        .token(&exchange_form(&code, Some(&attacker_verifier)))
        .await;
    assert_json_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Another client, even one with the same redirect URI and the right
    // verifier, cannot redeem the code.
    let response = setup
        .app
        .client
        .post(setup.app.url("/token"))
        .basic_auth(&other.client_id, Some(&other_secret))
        .form(&exchange_form(&code, Some(VERIFIER)))
        .send()
        .await
        .unwrap();
    assert_json_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // A public client naming the victim's id gets no code either.
    let response = setup
        .app
        .client
        .post(setup.app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", setup.client.client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", "https://rp.test/cb"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_json_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // None of that spent the code or revoked anything.
    let response = setup.token(&exchange_form(&code, Some(VERIFIER))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = setup.app.state.store.recent_audit_events(20).await.unwrap();
    assert!(!events
        .iter()
        .any(|event| event.kind == "authorization_code.replay"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_of_another_client_is_useless() {
    let setup = Setup::new(Backend::Sqlite).await;
    let (other, other_secret) = add_client(&setup.app, rp1_metadata()).await;
    let mut browser = Browser::new(&setup.app);
    let code = code_for(
        &mut browser,
        &setup.client,
        "&scope=openid%20offline_access",
    )
    .await;
    let tokens: Value = setup
        .token(&exchange_form(&code, Some(VERIFIER)))
        .await
        .json()
        .await
        .unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];

    let response = setup
        .app
        .client
        .post(setup.app.url("/token"))
        .basic_auth(&other.client_id, Some(&other_secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_json_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // The owner's token was neither rotated nor taken for a reuse.
    let response = setup.token(&form).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated: Value = response.json().await.unwrap();
    assert_ne!(rotated["refresh_token"].as_str(), Some(refresh_token));

    // Presenting the old token again now is a reuse, and ends the grant.
    let response = setup.token(&form).await;
    assert_json_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let successor = rotated["refresh_token"].as_str().unwrap();
    let response = setup
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", successor),
        ])
        .await;
    assert_json_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}
