//! `POST /token` with the client credentials grant over real HTTP: tokens
//! opened by node's `jose` with the resource server's private key, the
//! record behind each token, and every error code with its status.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::clients::ClientMetadata;
use tessera::keys::{KeyAlg, SigningAlg};
use tessera::resources::ResourceRequest;
use tessera::tokens::access::record_key;

use crate::harness::Backend;
use crate::oauth_support::{
    access_token, add_client, add_resource, add_resource_with, assert_oauth_error, post_form,
    post_raw, service, token, Auth, KeyType, OauthApp, Resource,
};

const FORM: &str = "application/x-www-form-urlencoded";

/// Runs `decrypt-verify.mjs`: decrypts each token with `resource`'s private
/// key and verifies the inner JWT against `/jwks`.
async fn open_with_node(oauth: &OauthApp, resource: &Resource, tokens: &[String]) -> Vec<Value> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        folder.join("node_modules/jose").exists(),
        "node's jose package is missing: run scripts/install-deps (npm ci in tests/interop)"
    );
    let output = tokio::process::Command::new("node")
        .current_dir(&folder)
        .arg("decrypt-verify.mjs")
        .arg(oauth.app.url("/jwks"))
        .arg(oauth.issuer())
        .arg(&resource.identifier)
        .arg(resource.private_jwk.to_string())
        .args(tokens)
        .output()
        .await
        .expect("node runs; install Node.js 20 or later");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Returns the kid of Tessera's current signing key for `alg`.
fn current_signing_kid(oauth: &OauthApp, alg: SigningAlg) -> String {
    let snapshot = oauth.app.keys.ring().snapshot().unwrap();
    let now = tessera::clock::Clock::now(oauth.clock.as_ref());
    snapshot
        .current(KeyAlg::Signing(alg), now)
        .unwrap()
        .kid
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_open_with_node_jose() {
    let oauth = OauthApp::spawn(Backend::Sqlite).await;
    let ec_api = add_resource(&oauth, "https://rs1.test/", &["api.read", "api.write"]).await;
    let rsa_api = add_resource_with(
        &oauth,
        KeyType::Rsa,
        ResourceRequest {
            identifier: "https://rs2.test/api".into(),
            name: "RSA API".into(),
            scopes: vec!["reports".into()],
            access_token_ttl: Some(Duration::from_secs(120)),
            signing_alg: Some("RS256".into()),
            ..ResourceRequest::default()
        },
    )
    .await;
    let client = add_client(
        &oauth,
        service("client_secret_basic", "api.read reports", None),
    )
    .await;
    let auth = Auth::Basic(&client.id, &client.secret);

    let cases = [
        (
            &ec_api,
            "ECDH-ES+A256KW",
            SigningAlg::ES256,
            "api.read",
            600,
        ),
        (&rsa_api, "RSA-OAEP-256", SigningAlg::RS256, "reports", 120),
    ];
    for (resource, key_management, signing_alg, scope, lifetime) in cases {
        let response = token(&oauth, auth, &[("resource", &resource.identifier)]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["pragma"], "no-cache");
        assert!(response.headers().get("etag").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], lifetime);
        assert_eq!(body["scope"], scope);
        let access_token = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(access_token.split('.').count(), 5, "a JWE in compact form");

        let opened = open_with_node(&oauth, resource, std::slice::from_ref(&access_token)).await;
        let opened = &opened[0];
        assert_eq!(opened["verified"], true, "{opened}");
        let outer = &opened["outerHeader"];
        assert_eq!(outer["alg"], key_management);
        assert_eq!(outer["enc"], "A256GCM");
        assert_eq!(outer["cty"], "JWT");
        assert_eq!(outer["kid"], resource.kid.as_str());
        assert!(outer.get("zip").is_none());
        let inner = &opened["innerHeader"];
        assert_eq!(inner["typ"], "at+jwt");
        assert_eq!(inner["alg"], signing_alg.as_str());
        assert_eq!(inner["kid"], current_signing_kid(&oauth, signing_alg));

        let claims = &opened["payload"];
        let now = tessera::clock::Clock::now(oauth.clock.as_ref()).timestamp();
        assert_eq!(claims["iss"], oauth.issuer());
        assert_eq!(claims["sub"], client.id.as_str());
        assert_eq!(claims["client_id"], client.id.as_str());
        assert_eq!(claims["aud"], resource.identifier.as_str());
        assert_eq!(claims["scope"], scope);
        assert_eq!(claims["iat"], now);
        assert_eq!(claims["exp"], now + lifetime);
        // A time-ordered UUID, repeated in the JWE header (RFC 7519
        // section 5.3) for the record lookup.
        let jti = uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).unwrap();
        assert_eq!(jti.get_version_num(), 7);
        assert_eq!(outer["jti"], claims["jti"]);
        let mut members: Vec<&String> = claims.as_object().unwrap().keys().collect();
        members.sort();
        assert_eq!(
            members,
            [
                "aud",
                "client_id",
                "exp",
                "iat",
                "iss",
                "jti",
                "scope",
                "sub"
            ]
        );

        // The record is found by the `jti` in the JWE header and the digest
        // of the whole token string.
        let key = record_key(&access_token, &oauth.app.state.data_keys.digester);
        let record = oauth.app.state.store.find_access_token(&key).await;
        let record = record.unwrap().expect("the token is recorded");
        assert_eq!(record.jti, claims["jti"].as_str().unwrap());
        assert_eq!(record.audience, resource.identifier);
        assert_eq!(record.grant_type, "client_credentials");
        assert_eq!(record.expires_at.timestamp(), now + lifetime);
    }

    // A token for one resource server does not open with another's key.
    let for_rsa = access_token(&oauth, auth, &[("resource", &rsa_api.identifier)]).await;
    let opened = open_with_node(&oauth, &ec_api, &[for_rsa]).await;
    assert_eq!(opened[0]["verified"], false);
}

async fn token_is_recorded(backend: Backend) {
    let oauth = OauthApp::spawn(backend).await;
    add_resource(&oauth, "https://rs1.test/", &["api.read"]).await;
    let client = add_client(
        &oauth,
        service("client_secret_post", "api.read", Some("https://rs1.test/")),
    )
    .await;
    let issued = access_token(&oauth, Auth::Post(&client.id, &client.secret), &[]).await;
    let key = record_key(&issued, &oauth.app.state.data_keys.digester);
    let record = oauth.app.state.store.find_access_token(&key).await;
    let record = record.unwrap().expect("the token is recorded");
    assert_eq!(record.client_id, client.id);
    assert_eq!(record.subject, client.id);
    assert_eq!(record.audience, "https://rs1.test/");
    assert_eq!(record.scope, "api.read");
    assert!(record.grant_id.is_none());
}

#[tokio::test]
async fn default_resource_token_is_recorded_on_sqlite() {
    token_is_recorded(Backend::Sqlite).await;
}

#[tokio::test]
async fn default_resource_token_is_recorded_on_postgres() {
    token_is_recorded(Backend::Postgres).await;
}

/// Starts a server with `https://rs1.test/` (scopes `api.read`, `api.write`),
/// `https://rs3.test/` (scope `other`) and a Basic client holding
/// `api.read` and `openid` with no default resource.
async fn spawn_with_service() -> (OauthApp, crate::oauth_support::TestClient) {
    let oauth = OauthApp::spawn(Backend::Sqlite).await;
    add_resource(&oauth, "https://rs1.test/", &["api.read", "api.write"]).await;
    add_resource(&oauth, "https://rs3.test/", &["other"]).await;
    let client = add_client(
        &oauth,
        service("client_secret_basic", "api.read openid", None),
    )
    .await;
    (oauth, client)
}

#[tokio::test]
async fn scope_policy_for_client_credentials() {
    let (oauth, client) = spawn_with_service().await;
    let auth = Auth::Basic(&client.id, &client.secret);
    let granted = |params: Vec<(&'static str, &'static str)>| {
        let oauth = &oauth;
        async move {
            let mut all = vec![("resource", "https://rs1.test/")];
            all.extend(params);
            let response = token(oauth, auth, &all).await;
            assert_eq!(response.status(), StatusCode::OK);
            let body: Value = response.json().await.unwrap();
            body["scope"].as_str().unwrap().to_owned()
        }
    };
    // Omitted scope: every client scope the resource server defines.
    assert_eq!(granted(vec![]).await, "api.read");
    // Unknown, not held and built-in scopes are dropped; stray spaces too.
    assert_eq!(
        granted(vec![("scope", " api.read  api.write openid unknown ")]).await,
        "api.read"
    );

    let cases = [
        ("api.write", "invalid_scope"),
        ("openid", "invalid_scope"),
        ("api.read \"x", "invalid_scope"),
    ];
    for (scope, code) in cases {
        let response = token(
            &oauth,
            auth,
            &[("resource", "https://rs1.test/"), ("scope", scope)],
        )
        .await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, code).await;
    }
}

#[tokio::test]
async fn resource_policy_for_client_credentials() {
    let (oauth, client) = spawn_with_service().await;
    let auth = Auth::Basic(&client.id, &client.secret);
    let cases: [&[(&str, &str)]; 6] = [
        &[],
        &[("resource", "https://unknown.test/")],
        &[("resource", "https://rs1.test/#fragment")],
        &[("resource", "/relative")],
        &[("resource", "https://rs3.test/")],
        &[("resource", "https://rs1.test")],
    ];
    for params in cases {
        let response = token(&oauth, auth, params).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_target").await;
    }

    // RFC 8707 allows several resources; Tessera issues one per token.
    let body = "grant_type=client_credentials&resource=https%3A%2F%2Frs1.test%2F\
                &resource=https%3A%2F%2Frs3.test%2F";
    let response = post_raw(&oauth, "/token", auth, Some(FORM), body).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_target").await;
}

#[tokio::test]
async fn token_endpoint_error_codes() {
    let (oauth, client) = spawn_with_service().await;
    let rs1 = [("resource", "https://rs1.test/")];

    // Every 401 carries the Basic challenge (RFC 7235 section 3.1): a wrong
    // Basic secret, the right secret in the body of a client registered
    // for Basic, an unknown client either way, and no credentials at all.
    for auth in [
        Auth::Basic(&client.id, "wrong"),
        Auth::Post(&client.id, &client.secret),
        Auth::Basic("no-such-client", "secret"),
        Auth::Post("no-such-client", "secret"),
        Auth::Nothing,
    ] {
        let response = token(&oauth, auth, &rs1).await;
        let headers =
            assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert_eq!(
            headers["www-authenticate"],
            "Basic realm=\"tessera\", charset=\"UTF-8\""
        );
    }

    // A Bearer token does not authenticate a client, so the challenge
    // names the scheme that does.
    let response = oauth
        .app
        .client
        .post(oauth.app.url("/token"))
        .bearer_auth("some-access-token")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let headers = assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));

    let auth = Auth::Basic(&client.id, &client.secret);
    let unsupported = [
        vec![("grant_type", "urn:x:unknown")],
        vec![
            ("grant_type", "password"),
            ("username", "u"),
            ("password", "p"),
        ],
    ];
    for params in unsupported {
        let response = post_form(&oauth, "/token", auth, &params).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    }
    // This client has only client_credentials, so the code and refresh
    // grants are unauthorized_client for it.
    let other_grants = [
        vec![("grant_type", "authorization_code"), ("code", "not-a-code")],
        vec![("grant_type", "refresh_token"), ("refresh_token", "x")],
    ];
    for params in other_grants {
        let response = post_form(&oauth, "/token", auth, &params).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    }
    let response = post_form(&oauth, "/token", auth, &[("scope", "api.read")]).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

    // A client without the grant.
    let web = add_client(
        &oauth,
        ClientMetadata {
            redirect_uris: vec!["https://rp.test/cb".into()],
            scope: Some("api.read".into()),
            ..ClientMetadata::default()
        },
    )
    .await;
    let response = token(&oauth, Auth::Basic(&web.id, &web.secret), &rs1).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

#[tokio::test]
async fn repeated_parameters_and_two_auth_methods() {
    let (oauth, client) = spawn_with_service().await;
    let auth = Auth::Basic(&client.id, &client.secret);
    let bodies = [
        "grant_type=client_credentials&grant_type=authorization_code".to_owned(),
        format!(
            "grant_type=client_credentials&client_id={0}&client_id=rp2",
            client.id
        ),
    ];
    for body in bodies {
        let response = post_raw(&oauth, "/token", auth, Some(FORM), body).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }

    // Basic and a client_secret in the body at once.
    let body = format!(
        "grant_type=client_credentials&resource=https%3A%2F%2Frs1.test%2F&client_secret={}",
        client.secret
    );
    let response = post_raw(&oauth, "/token", auth, Some(FORM), body).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn content_types_at_token_endpoint() {
    let (oauth, client) = spawn_with_service().await;
    let auth = Auth::Basic(&client.id, &client.secret);
    let body = "grant_type=client_credentials&resource=https%3A%2F%2Frs1.test%2F";
    for content_type in [
        FORM,
        "application/x-www-form-urlencoded; charset=UTF-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
    ] {
        let response = post_raw(&oauth, "/token", auth, Some(content_type), body).await;
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
    }

    let json_body = json!({ "grant_type": "client_credentials" }).to_string();
    let rejected = [
        (Some("application/json"), json_body),
        (None, body.to_owned()),
        (
            Some("multipart/form-data; boundary=x"),
            "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\n\
             client_credentials\r\n--x--\r\n"
                .to_owned(),
        ),
    ];
    for (content_type, body) in rejected {
        let response = post_raw(&oauth, "/token", auth, content_type, body).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn oversized_token_request_is_413_json() {
    let (oauth, client) = spawn_with_service().await;
    let auth = Auth::Basic(&client.id, &client.secret);
    let body = format!(
        "grant_type=client_credentials&scope={}",
        "a".repeat(1024 * 1024)
    );
    let response = post_raw(&oauth, "/token", auth, Some(FORM), body).await;
    assert_oauth_error(response, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
}
