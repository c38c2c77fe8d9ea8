//! CORS over HTTP: preflights pass for origins some client allows, actual
//! responses name the origin only for the client that authenticated, and
//! the discovery documents and JWKS are open to any origin.

use std::time::{Duration, Instant};

use reqwest::header::{
    HeaderMap, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tessera::clients::ClientMetadata;

use crate::authorize::{code_for, exchange, spawn_on, Browser, PASSWORD, VERIFIER};
use crate::harness::{Backend, TestApp};
use crate::login::{add_user, fast_config};
use crate::oauth_support::{add_client, add_resource, service, OauthApp, TestClient};

const ORIGIN_A: &str = "https://a.app.test";
const ORIGIN_B: &str = "http://localhost:5173";
const ELSEWHERE: &str = "https://evil.test";

/// Starts a server with one resource server and two `client_credentials`
/// clients: A allows [`ORIGIN_A`] and B allows [`ORIGIN_B`].
async fn setup(backend: Backend) -> (OauthApp, TestClient, TestClient) {
    let oauth = OauthApp::spawn(backend).await;
    add_resource(&oauth, "https://rs1.test/", &["api.read"]).await;
    let with_origin = |origin: &str| ClientMetadata {
        allowed_origins: vec![origin.to_owned()],
        ..service("client_secret_basic", "api.read", Some("https://rs1.test/"))
    };
    let a = add_client(&oauth, with_origin(ORIGIN_A)).await;
    let b = add_client(&oauth, with_origin(ORIGIN_B)).await;
    (oauth, a, b)
}

/// Sends a CORS preflight for `method` on `path` from `origin`.
async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

/// Posts `params` to `path` as `client` from a page of `origin`.
async fn post_from(
    app: &TestApp,
    path: &str,
    origin: &str,
    client: &TestClient,
    params: &[(&str, &str)],
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("origin", origin)
        .basic_auth(&client.id, Some(&client.secret))
        .form(params)
        .send()
        .await
        .unwrap()
}

fn allowed_origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|value| value.to_str().unwrap())
}

fn varies_by_origin(headers: &HeaderMap) -> bool {
    headers
        .get_all("vary")
        .iter()
        .flat_map(|value| value.to_str().unwrap().split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("origin"))
}

async fn preflight_passes_for_registered_origins(backend: Backend) {
    let (oauth, _, _) = setup(backend).await;
    let app = &oauth.app;

    for path in ["/token", "/revoke", "/introspect"] {
        let response = preflight(app, path, ORIGIN_A, "POST").await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
        let headers = response.headers();
        assert_eq!(allowed_origin(headers), Some(ORIGIN_A), "{path}");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_METHODS], "POST", "{path}");
        assert_eq!(
            headers[ACCESS_CONTROL_ALLOW_HEADERS],
            "authorization, content-type"
        );
        assert_eq!(headers[ACCESS_CONTROL_MAX_AGE], "600");
        assert!(headers.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        assert!(varies_by_origin(headers), "{path}");
    }
    let userinfo = preflight(app, "/userinfo", ORIGIN_B, "GET").await;
    assert_eq!(allowed_origin(userinfo.headers()), Some(ORIGIN_B));
    assert_eq!(
        userinfo.headers()[ACCESS_CONTROL_ALLOW_METHODS],
        "GET, POST"
    );

    // An unknown origin, a method the endpoint does not take, and a
    // registered origin written another way all get no allow headers.
    let refused = [
        ("/token", ELSEWHERE, "POST"),
        ("/token", ORIGIN_A, "DELETE"),
        ("/token", "https://A.app.test", "POST"),
        ("/token", "https://a.app.test/", "POST"),
        ("/userinfo", ELSEWHERE, "GET"),
    ];
    for (path, origin, method) in refused {
        let response = preflight(app, path, origin, method).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let headers = response.headers();
        let case = format!("{method} {path} from {origin}");
        assert!(allowed_origin(headers).is_none(), "{case}");
        assert!(
            headers.get(ACCESS_CONTROL_ALLOW_METHODS).is_none(),
            "{case}"
        );
        assert!(
            headers.get(ACCESS_CONTROL_ALLOW_HEADERS).is_none(),
            "{case}"
        );
        assert!(headers.get(ACCESS_CONTROL_MAX_AGE).is_none(), "{case}");
    }
}

#[tokio::test]
async fn preflight_passes_for_registered_origins_on_sqlite() {
    preflight_passes_for_registered_origins(Backend::Sqlite).await;
}

#[tokio::test]
async fn preflight_passes_for_registered_origins_on_postgres() {
    preflight_passes_for_registered_origins(Backend::Postgres).await;
}

async fn responses_name_only_the_clients_origin(backend: Backend) {
    let (oauth, a, _) = setup(backend).await;
    let app = &oauth.app;
    let grant = [("grant_type", "client_credentials")];

    let own = post_from(app, "/token", ORIGIN_A, &a, &grant).await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(allowed_origin(own.headers()), Some(ORIGIN_A));
    assert!(varies_by_origin(own.headers()));
    assert!(own
        .headers()
        .get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
        .is_none());
    let body: Value = own.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();

    // B's origin passes a preflight, but this request authenticated as A.
    let other = post_from(app, "/token", ORIGIN_B, &a, &grant).await;
    assert_eq!(other.status(), StatusCode::OK);
    assert!(allowed_origin(other.headers()).is_none());
    assert!(varies_by_origin(other.headers()));
    let elsewhere = post_from(app, "/token", ELSEWHERE, &a, &grant).await;
    assert!(allowed_origin(elsewhere.headers()).is_none());

    // An error after authentication stays readable by the client's app;
    // a failed authentication names no client.
    let error = post_from(
        app,
        "/token",
        ORIGIN_A,
        &a,
        &[("grant_type", "client_credentials"), ("scope", "api.write")],
    )
    .await;
    assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    assert_eq!(allowed_origin(error.headers()), Some(ORIGIN_A));
    let body: Value = error.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
    let impostor = TestClient {
        id: a.id.clone(),
        secret: "wrong".into(),
    };
    let rejected = post_from(app, "/token", ORIGIN_A, &impostor, &grant).await;
    assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
    assert!(allowed_origin(rejected.headers()).is_none());

    let introspected = post_from(app, "/introspect", ORIGIN_A, &a, &[("token", &token)]).await;
    assert_eq!(introspected.status(), StatusCode::OK);
    assert_eq!(allowed_origin(introspected.headers()), Some(ORIGIN_A));
    let introspected = post_from(app, "/introspect", ORIGIN_B, &a, &[("token", &token)]).await;
    assert!(allowed_origin(introspected.headers()).is_none());
    let revoked = post_from(app, "/revoke", ORIGIN_A, &a, &[("token", &token)]).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(allowed_origin(revoked.headers()), Some(ORIGIN_A));
    let revoked = post_from(app, "/revoke", ORIGIN_B, &a, &[("token", &token)]).await;
    assert!(allowed_origin(revoked.headers()).is_none());
}

#[tokio::test]
async fn responses_name_only_the_clients_origin_on_sqlite() {
    responses_name_only_the_clients_origin(Backend::Sqlite).await;
}

#[tokio::test]
async fn responses_name_only_the_clients_origin_on_postgres() {
    responses_name_only_the_clients_origin(Backend::Postgres).await;
}

async fn userinfo_names_the_tokens_client_origin(backend: Backend) {
    let app = spawn_on(backend, fast_config()).await;
    add_user(&app, "u1", PASSWORD).await;
    let metadata = ClientMetadata {
        client_name: Some("SPA".into()),
        redirect_uris: vec!["https://rp.test/cb".into()],
        scope: Some("openid email".into()),
        token_endpoint_auth_method: Some("none".into()),
        allowed_origins: vec![ORIGIN_A.into()],
        first_party: true,
        ..ClientMetadata::default()
    };
    let state = &app.state;
    let spa = tessera::clients::register(
        state.store.as_ref(),
        &state.data_keys.digester,
        &metadata,
        tessera::clients::Registrar::Administrator,
        state.clock.now(),
    )
    .await
    .unwrap()
    .client;
    let other = ClientMetadata {
        allowed_origins: vec![ORIGIN_B.into()],
        ..metadata
    };
    tessera::clients::register(
        state.store.as_ref(),
        &state.data_keys.digester,
        &other,
        tessera::clients::Registrar::Administrator,
        state.clock.now(),
    )
    .await
    .unwrap();
    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &spa, "&scope=openid%20email").await;
    let tokens = exchange(&app, &spa, &code, Some(VERIFIER)).await.unwrap();

    for (origin, expected) in [(ORIGIN_A, Some(ORIGIN_A)), (ORIGIN_B, None)] {
        let response = app
            .client
            .get(app.url("/userinfo"))
            .header("origin", origin)
            .bearer_auth(&tokens.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(allowed_origin(response.headers()), expected, "{origin}");
    }
    let invalid = app
        .client
        .get(app.url("/userinfo"))
        .header("origin", ORIGIN_A)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
    assert!(allowed_origin(invalid.headers()).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_names_the_tokens_client_origin_on_sqlite() {
    userinfo_names_the_tokens_client_origin(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_names_the_tokens_client_origin_on_postgres() {
    userinfo_names_the_tokens_client_origin(Backend::Postgres).await;
}

#[tokio::test]
async fn new_origin_passes_preflight_within_two_seconds() {
    let (oauth, _, _) = setup(Backend::Sqlite).await;
    let app = &oauth.app;
    let origin = "https://late.app.test";
    // The union is cached without the origin before the client exists.
    let before = preflight(app, "/token", origin, "POST").await;
    assert!(allowed_origin(before.headers()).is_none());

    // Registered straight in the store, as the CLI does, so the server
    // learns of it only through the change counter.
    add_client(
        &oauth,
        ClientMetadata {
            allowed_origins: vec![origin.to_owned()],
            ..service("client_secret_basic", "api.read", Some("https://rs1.test/"))
        },
    )
    .await;
    let start = Instant::now();
    loop {
        let response = preflight(app, "/token", origin, "POST").await;
        if allowed_origin(response.headers()) == Some(origin) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_millis(2500),
            "the preflight still fails after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn public_documents_allow_any_origin() {
    let oauth = OauthApp::spawn(Backend::Sqlite).await;
    let app = &oauth.app;
    let paths = [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/jwks",
    ];
    for path in paths {
        let response = app
            .client
            .get(app.url(path))
            .header("origin", ELSEWHERE)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(allowed_origin(response.headers()), Some("*"), "{path}");
        assert!(response
            .headers()
            .get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none());

        let response = preflight(app, path, ELSEWHERE, "GET").await;
        assert!(response.status().is_success(), "{path}");
        let headers = response.headers();
        assert_eq!(allowed_origin(headers), Some("*"), "{path}");
        let methods = headers[ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap();
        assert!(methods.contains("GET"), "{path}: {methods}");
    }
}

/// Pages and endpoints that no script should read get no CORS headers, and
/// every response that carries a credential or a token is never cached,
/// while the public documents are cached for a bounded time.
#[tokio::test]
async fn caching_and_cors_follow_each_endpoints_role() {
    let (oauth, a, _) = setup(Backend::Sqlite).await;
    let app = &oauth.app;

    let authorize = preflight(app, "/authorize", ORIGIN_A, "GET").await;
    assert!(allowed_origin(authorize.headers()).is_none());
    let page = app
        .client
        .get(app.url("/authorize?client_id=unknown"))
        .header("origin", ORIGIN_A)
        .send()
        .await
        .unwrap();
    assert!(allowed_origin(page.headers()).is_none());
    let register = preflight(app, "/register", ORIGIN_A, "POST").await;
    assert!(allowed_origin(register.headers()).is_none());

    let params = [("grant_type", "client_credentials")];
    let token = post_from(app, "/token", ORIGIN_A, &a, &params).await;
    assert_eq!(token.status(), StatusCode::OK);
    let access_token = token.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let introspect = post_from(
        app,
        "/introspect",
        ORIGIN_A,
        &a,
        &[("token", access_token.as_str())],
    )
    .await;
    let register = app
        .client
        .post(app.url("/register"))
        .json(&serde_json::json!({ "redirect_uris": ["https://spa.test/cb"] }))
        .send()
        .await
        .unwrap();
    let token_headers = post_from(app, "/token", ORIGIN_A, &a, &params).await;
    for (name, response) in [
        ("token", token_headers),
        ("introspect", introspect),
        ("register", register),
    ] {
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store", "{name}");
        assert!(headers.get("etag").is_none(), "{name}");
    }

    for path in ["/jwks", "/.well-known/openid-configuration"] {
        let response = app.get(path).await;
        let cache = response.headers()["cache-control"].to_str().unwrap();
        let max_age: u64 = cache
            .split(',')
            .find_map(|part| part.trim().strip_prefix("max-age="))
            .unwrap_or_else(|| panic!("{path}: no max-age in {cache}"))
            .parse()
            .unwrap();
        assert!(max_age > 0 && max_age <= 86_400, "{path}: {cache}");
    }
}
