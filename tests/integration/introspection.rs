//! `POST /introspect` and `POST /revoke` over real HTTP: who sees which
//! token, dead and malformed tokens, and revocation by the owner only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Duration;
use josekit::jwt::JwtPayload;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::clock::Clock;
use tessera::keys::SigningAlg;

use crate::harness::Backend;
use crate::oauth_support::{
    access_token, add_client, add_resource, assert_oauth_error, introspect, post_form, service,
    Auth, OauthApp, Resource, TestClient,
};

/// Resource servers A and B, clients `one` and `two` with the scopes of
/// both, and a token for A issued to `one`.
struct Setup {
    oauth: OauthApp,
    a: Resource,
    b: Resource,
    one: TestClient,
    two: TestClient,
    token: String,
}

async fn setup(backend: Backend) -> Setup {
    let oauth = OauthApp::spawn(backend).await;
    let a = add_resource(&oauth, "https://a.test/", &["a.read"]).await;
    let b = add_resource(&oauth, "https://b.test/", &["b.read"]).await;
    let one = add_client(
        &oauth,
        service("client_secret_basic", "a.read b.read", None),
    )
    .await;
    let two = add_client(&oauth, service("client_secret_post", "a.read b.read", None)).await;
    let token = access_token(
        &oauth,
        Auth::Basic(&one.id, &one.secret),
        &[("resource", "https://a.test/")],
    )
    .await;
    Setup {
        oauth,
        a,
        b,
        one,
        two,
        token,
    }
}

impl Setup {
    fn as_a(&self) -> Auth<'_> {
        Auth::Basic(&self.a.introspection_id, &self.a.introspection_secret)
    }

    fn as_b(&self) -> Auth<'_> {
        Auth::Post(&self.b.introspection_id, &self.b.introspection_secret)
    }

    fn as_one(&self) -> Auth<'_> {
        Auth::Basic(&self.one.id, &self.one.secret)
    }

    fn as_two(&self) -> Auth<'_> {
        Auth::Post(&self.two.id, &self.two.secret)
    }
}

fn inactive() -> Value {
    json!({ "active": false })
}

async fn audience_and_owner_see_token(backend: Backend) {
    let setup = setup(backend).await;
    let now = setup.oauth.clock.now().timestamp();
    for auth in [setup.as_a(), setup.as_one()] {
        let seen = introspect(&setup.oauth, auth, &setup.token).await;
        assert_eq!(seen["active"], true, "{seen}");
        assert_eq!(seen["scope"], "a.read");
        assert_eq!(seen["client_id"], setup.one.id.as_str());
        assert_eq!(seen["sub"], setup.one.id.as_str());
        assert_eq!(seen["aud"], "https://a.test/");
        assert_eq!(seen["iss"], setup.oauth.issuer());
        assert_eq!(seen["iat"], now);
        assert_eq!(seen["exp"], now + 600);
        assert_eq!(seen["token_type"], "Bearer");
        let jti = uuid::Uuid::parse_str(seen["jti"].as_str().unwrap()).unwrap();
        assert_eq!(jti.get_version_num(), 7);
    }
    // Resource server B and client two do not see it.
    for auth in [setup.as_b(), setup.as_two()] {
        assert_eq!(
            introspect(&setup.oauth, auth, &setup.token).await,
            inactive()
        );
    }
}

#[tokio::test]
async fn token_for_a_is_inactive_for_b_on_sqlite() {
    audience_and_owner_see_token(Backend::Sqlite).await;
}

#[tokio::test]
async fn token_for_a_is_inactive_for_b_on_postgres() {
    audience_and_owner_see_token(Backend::Postgres).await;
}

#[tokio::test]
async fn dead_and_foreign_tokens_are_inactive() {
    let setup = setup(Backend::Sqlite).await;

    // A hint names the wrong type: the token is found anyway.
    let response = post_form(
        &setup.oauth,
        "/introspect",
        setup.as_a(),
        &[
            ("token", &setup.token),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["active"], true);

    // A JWT Tessera signed that is no access token (as an ID token is).
    let now = setup.oauth.clock.now();
    let mut claims = JwtPayload::new();
    claims.set_issuer(setup.oauth.issuer());
    claims.set_subject("u1");
    claims.set_expires_at(&(now + Duration::minutes(10)).into());
    let signed = setup
        .oauth
        .app
        .keys
        .ring()
        .sign_jwt(SigningAlg::RS256, "JWT", &claims, now)
        .unwrap();
    for garbage in ["garbage", signed.as_str(), "a.b.c.d.e"] {
        assert_eq!(
            introspect(&setup.oauth, setup.as_a(), garbage).await,
            inactive()
        );
    }

    // Revoked.
    let revoked = access_token(
        &setup.oauth,
        setup.as_one(),
        &[("resource", "https://a.test/")],
    )
    .await;
    let response = post_form(
        &setup.oauth,
        "/revoke",
        setup.as_one(),
        &[("token", &revoked)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        introspect(&setup.oauth, setup.as_a(), &revoked).await,
        inactive()
    );

    // Expired: the record outlives its token until pruned.
    setup.oauth.clock.advance(Duration::seconds(600));
    assert_eq!(
        introspect(&setup.oauth, setup.as_a(), &setup.token).await,
        inactive()
    );
    assert_eq!(
        introspect(&setup.oauth, setup.as_one(), &setup.token).await,
        inactive()
    );
}

#[tokio::test]
async fn introspection_requires_credentials() {
    let setup = setup(Backend::Sqlite).await;
    let token = [("token", setup.token.as_str())];
    let response = post_form(&setup.oauth, "/introspect", Auth::Nothing, &token).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let wrong = Auth::Basic(&setup.a.introspection_id, "wrong");
    let response = post_form(&setup.oauth, "/introspect", wrong, &token).await;
    let headers = assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(headers.contains_key("www-authenticate"));

    // A public client's id alone authenticates nothing.
    let response = post_form(
        &setup.oauth,
        "/introspect",
        Auth::Nothing,
        &[("token", &setup.token), ("client_id", &setup.one.id)],
    )
    .await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let response = post_form(&setup.oauth, "/introspect", setup.as_a(), &[]).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

    let response = post_form(&setup.oauth, "/introspect", setup.as_a(), &token).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert!(response.headers().get("etag").is_none());
}

#[tokio::test]
async fn revocation_by_owner_only() {
    let setup = setup(Backend::Sqlite).await;

    // Another client's revocation answers 200 and changes nothing.
    let response = post_form(
        &setup.oauth,
        "/revoke",
        setup.as_two(),
        &[("token", &setup.token)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let seen = introspect(&setup.oauth, setup.as_a(), &setup.token).await;
    assert_eq!(seen["active"], true);

    // Resource servers cannot revoke.
    let response = post_form(
        &setup.oauth,
        "/revoke",
        setup.as_a(),
        &[("token", &setup.token)],
    )
    .await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    for garbage in ["garbage", "a.b.c", ""] {
        let response = post_form(
            &setup.oauth,
            "/revoke",
            setup.as_one(),
            &[("token", garbage)],
        )
        .await;
        let expected = if garbage.is_empty() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        assert_eq!(response.status(), expected, "{garbage:?}");
    }

    let response = post_form(
        &setup.oauth,
        "/revoke",
        Auth::Nothing,
        &[("token", &setup.token)],
    )
    .await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let response = post_form(
        &setup.oauth,
        "/revoke",
        setup.as_one(),
        &[
            ("token", &setup.token),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        introspect(&setup.oauth, setup.as_a(), &setup.token).await,
        inactive()
    );
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The resource server's `kid` goes into each token's JWE header beside
/// the `jti`. The test's `kid` is the identifier and `#enc`: 1,022 bytes,
/// near the longest accepted.
#[tokio::test]
async fn token_with_long_kid_is_found() {
    let oauth = OauthApp::spawn(Backend::Sqlite).await;
    let identifier = format!("https://long.test/{}", "k".repeat(1000));
    add_resource(&oauth, &identifier, &["long.read"]).await;
    let client = add_client(&oauth, service("client_secret_basic", "long.read", None)).await;
    let auth = || Auth::Basic(&client.id, &client.secret);
    let token = access_token(&oauth, auth(), &[("resource", &identifier)]).await;
    let (header, _) = token.split_once('.').unwrap();
    assert!(header.len() > 1300, "the header holds the kid");

    let seen = introspect(&oauth, auth(), &token).await;
    assert_eq!(seen["active"], true, "{seen}");
    let response = post_form(&oauth, "/revoke", auth(), &[("token", &token)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(introspect(&oauth, auth(), &token).await, inactive());
}

#[tokio::test]
async fn broken_jose_tokens_on_sqlite() {
    broken_jose_tokens_at_introspection_and_revocation(Backend::Sqlite).await;
}

#[tokio::test]
async fn broken_jose_tokens_on_postgres() {
    broken_jose_tokens_at_introspection_and_revocation(Backend::Postgres).await;
}

/// Tokens with broken or unsigned JOSE headers: never a 5xx, never active,
/// never revoking anything.
async fn broken_jose_tokens_at_introspection_and_revocation(backend: Backend) {
    let setup = setup(backend).await;
    let claims = encode(&json!({ "iss": setup.oauth.issuer(), "sub": "u1" }));
    let mut tokens = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        tokens.push(format!("{}.{claims}.", encode(&json!({ "alg": alg }))));
    }
    for header in [
        json!({ "alg": null }),
        json!({}),
        json!([]),
        json!({ "alg": 42 }),
        json!({ "alg": ["ES256"] }),
        json!({ "alg": "" }),
        json!({ "alg": "XS512" }),
        json!({ "alg": "HS256", "kid": "x" }),
        json!({ "alg": "ES256", "jku": "http://127.0.0.1:9/jwks" }),
        json!({ "alg": "dir", "enc": "A128CBC-HS256" }),
        json!({ "alg": "RSA1_5", "enc": "A256GCM" }),
    ] {
        tokens.push(format!("{}.{claims}.c2ln", encode(&header)));
        tokens.push(format!("{}.e30.AA.AA.AA", encode(&header)));
    }
    let (head, rest) = setup.token.split_once('.').unwrap();
    tokens.push(format!("{head}=.{rest}"));
    tokens.push(format!("{head} .{rest}"));
    tokens.push(format!("{}.{rest}", URL_SAFE_NO_PAD.encode("not json")));
    tokens.push(format!("{}.x", setup.token));
    // The genuine header without its `jti`, and with it but another member
    // added: a record is found only by its `jti` with the whole token's
    // digest, and new records never by the digest alone.
    let mut header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap();
    let jti = header.as_object_mut().unwrap().remove("jti");
    assert!(jti.is_some(), "the header carries the jti");
    tokens.push(format!("{}.{rest}", encode(&header)));
    let jti = jti.unwrap();
    header["jti"] = jti.clone();
    header["x"] = json!(1);
    tokens.push(format!("{}.{rest}", encode(&header)));
    // PostgreSQL's text cannot hold NUL, so such a `jti` must not reach it.
    header["jti"] = json!(format!("{}\u{0}", jti.as_str().unwrap()));
    tokens.push(format!("{}.{rest}", encode(&header)));
    tokens.push(format!(
        "{}.e30.AA.AA.AA",
        encode(&json!({ "jti": "\u{0}" }))
    ));

    for token in &tokens {
        let response = post_form(
            &setup.oauth,
            "/introspect",
            setup.as_one(),
            &[("token", token)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{token}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            inactive(),
            "{token}"
        );
        let response =
            post_form(&setup.oauth, "/revoke", setup.as_one(), &[("token", token)]).await;
        assert_eq!(response.status(), StatusCode::OK, "{token}");
    }
    let seen = introspect(&setup.oauth, setup.as_a(), &setup.token).await;
    assert_eq!(seen["active"], true, "the genuine token was revoked");
}
