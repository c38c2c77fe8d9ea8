//! Malicious JOSE: forged and re-wrapped JWEs at userinfo and
//! introspection, forged `id_token_hint`s, client assertions with unknown
//! keys, and tokens of one type presented as another (RFC 8725 section 3,
//! OIDC Core section 16).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwe::{self, JweHeader};
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jwk::Jwk;
use josekit::jws::{self, JwsHeader};
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::clients::ClientMetadata;

use super::{add_client, assert_json_error, encode, Setup};
use crate::authorize::{code_for, param, query, Browser, VERIFIER};
use crate::harness::key_server::KeyServer;
use crate::harness::Backend;
use crate::oauth_support::{assertion_params, ClientKey};

/// Tokens issued to `rp1` through the code flow over HTTP.
struct Issued {
    access_token: String,
    id_token: String,
    /// The signed JWT inside the access token.
    inner: String,
}

async fn issue(setup: &Setup, browser: &mut Browser) -> Issued {
    let code = code_for(browser, &setup.client, "&scope=openid%20email").await;
    let response = setup
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://rp.test/cb"),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    let kid = header_of(&access_token)["kid"].as_str().unwrap().to_owned();
    let state = &setup.app.state;
    let decrypter = state.keys.decrypter(&kid, state.clock.now()).unwrap();
    let (inner, _) = jwe::deserialize_compact(&access_token, decrypter.as_ref()).unwrap();
    Issued {
        access_token,
        id_token: tokens["id_token"].as_str().unwrap().to_owned(),
        inner: String::from_utf8(inner).unwrap(),
    }
}

fn header_of(token: &str) -> Value {
    let first = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap()
}

fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Returns Tessera's published key with `use` and `alg`, from `/jwks`.
async fn published_key(setup: &Setup, key_use: &str, alg: &str) -> Jwk {
    let jwks: Value = setup.app.get("/jwks").await.json().await.unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["use"] == key_use && key["alg"] == alg)
        .unwrap_or_else(|| panic!("no {key_use} key for {alg} in {jwks}"))
        .clone();
    Jwk::from_bytes(key.to_string().as_bytes()).unwrap()
}

async fn userinfo_status(setup: &Setup, token: &str) -> (StatusCode, String) {
    let response = setup
        .app
        .client
        .get(setup.app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), challenge)
}

async fn introspect(setup: &Setup, token: &str) -> Value {
    let response = setup
        .app
        .client
        .post(setup.app.url("/introspect"))
        .basic_auth(&setup.client.client_id, Some(&setup.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Encrypts `payload` to `recipient` with `encrypter`, content type `cty`
/// and, when `zip` is set, a DEFLATE-compressed payload.
fn wrap(
    payload: &str,
    recipient: &Jwk,
    encrypter: &dyn jwe::JweEncrypter,
    cty: Option<&str>,
    zip: bool,
) -> String {
    let mut header = JweHeader::new();
    header.set_content_encryption("A256GCM");
    if let Some(cty) = cty {
        header.set_content_type(cty);
    }
    if zip {
        header.set_compression("DEF");
    }
    if let Some(kid) = recipient.key_id() {
        header.set_key_id(kid);
    }
    jwe::serialize_compact(payload.as_bytes(), &header, encrypter).unwrap()
}

/// Replaces the `epk` of an ECDH-ES token with a point off the P-256
/// curve, keeping the other parts: the invalid-curve attack, which would
/// leak the private key bit by bit to a decrypter that skips the check.
fn with_invalid_curve_point(token: &str) -> String {
    let mut header = header_of(token);
    let zero = URL_SAFE_NO_PAD.encode([0u8; 32]);
    let mut one = [0u8; 32];
    one[31] = 1;
    header["epk"]["x"] = json!(zero);
    header["epk"]["y"] = json!(URL_SAFE_NO_PAD.encode(one));
    let rest = token.split_once('.').unwrap().1;
    format!("{}.{rest}", encode_json(&header))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_jwe_access_tokens_are_rejected() {
    let setup = Setup::new(Backend::Sqlite).await;
    let mut browser = Browser::new(&setup.app);
    let issued = issue(&setup, &mut browser).await;
    let own = published_key(&setup, "enc", "ECDH-ES+A256KW").await;
    let ecdh = jwe::ECDH_ES_A256KW.encrypter_from_jwk(&own).unwrap();
    let attacker_rsa = RsaKeyPair::generate(2048).unwrap();
    let mut rsa_public = attacker_rsa.to_jwk_public_key();
    rsa_public.set_key_id(own.key_id().unwrap());
    // Deprecated in josekit for the padding-oracle attack this test is about.
    #[allow(deprecated)]
    let rsa1_5 = jwe::RSA1_5.encrypter_from_jwk(&rsa_public).unwrap();
    let mut direct_key = own.clone();
    direct_key.set_algorithm("ECDH-ES");
    let direct = jwe::ECDH_ES.encrypter_from_jwk(&direct_key).unwrap();

    // The genuine signed JWT, re-wrapped as an attacker would.
    let inner = issued.inner.as_str();
    let jwt = Some("JWT");
    let genuine_rewrap = wrap(inner, &own, &ecdh, jwt, false);
    let forged = [
        ("RSA1_5", wrap(inner, &rsa_public, &rsa1_5, jwt, false)),
        ("zip DEF", wrap(inner, &own, &ecdh, jwt, true)),
        ("cty json", wrap(inner, &own, &ecdh, Some("json"), false)),
        ("no cty", wrap(inner, &own, &ecdh, None, false)),
        ("ECDH-ES direct", wrap(inner, &own, &direct, jwt, false)),
        ("invalid curve", with_invalid_curve_point(&genuine_rewrap)),
        (
            "invalid curve on the genuine token",
            with_invalid_curve_point(&issued.access_token),
        ),
        ("unrecorded re-wrap", genuine_rewrap.clone()),
        ("bare signed JWT", inner.to_owned()),
        ("ID token", issued.id_token.clone()),
    ];
    for (what, token) in &forged {
        let (status, challenge) = userinfo_status(&setup, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
        let seen = introspect(&setup, token).await;
        assert_eq!(seen, json!({ "active": false }), "{what}");
    }

    // The genuine token still works, so the rejections were not an outage.
    let (status, _) = userinfo_status(&setup, &issued.access_token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_types_are_not_interchangeable() {
    let setup = Setup::new(Backend::Sqlite).await;
    let mut browser = Browser::new(&setup.app);
    let issued = issue(&setup, &mut browser).await;

    // ID token as an access token at userinfo.
    let (status, _) = userinfo_status(&setup, &issued.id_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A valid access token in the query string, which OAuth 2.1 drops, is
    // no credential, in a GET or in a POST. (A POST's form body may carry
    // it: `oidc.rs::userinfo_returns_claims_by_scope`.)
    let in_query = format!("/userinfo?access_token={}", issued.access_token);
    let response = setup.app.get(&in_query).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = setup
        .app
        .client
        .post(setup.app.url(&in_query))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Access tokens as `id_token_hint` at /authorize and at /logout.
    for (what, hint) in [
        ("access token", issued.access_token.as_str()),
        ("inner access JWT", issued.inner.as_str()),
    ] {
        let page = browser
            .get(&query(
                &setup.client,
                &format!("&scope=openid&prompt=none&id_token_hint={}", encode(hint)),
            ))
            .await;
        let location = page.location.unwrap();
        assert_eq!(
            param(&location, "error").as_deref(),
            Some("invalid_request"),
            "{what}: {location}"
        );
        let page = browser
            .get(&format!(
                "/logout?id_token_hint={}&post_logout_redirect_uri={}",
                encode(hint),
                encode("https://rp.test/bye")
            ))
            .await;
        assert!(page.location.is_none(), "{what} ended the session silently");
        assert!(still_signed_in(&setup, &mut browser).await, "{what}");
    }

    // ID and access tokens as client assertions, by a client whose
    // registered keys are Tessera's own signing keys.
    let jwks: Value = setup.app.get("/jwks").await.json().await.unwrap();
    let signing: Vec<Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|key| key["use"] == "sig")
        .cloned()
        .collect();
    let metadata = ClientMetadata {
        client_name: Some("Borrowed keys".into()),
        redirect_uris: vec!["https://rp.test/cb".into()],
        scope: Some("openid".into()),
        token_endpoint_auth_method: Some("private_key_jwt".into()),
        jwks: Some(json!({ "keys": signing })),
        ..ClientMetadata::default()
    };
    let (borrowed, _) = add_client(&setup.app, metadata).await;
    for (what, assertion) in [
        ("ID token", issued.id_token.as_str()),
        ("access token", issued.access_token.as_str()),
        ("inner access JWT", issued.inner.as_str()),
    ] {
        for client_id in [&borrowed.client_id, &setup.client.client_id] {
            let mut form: Vec<(&str, String)> = assertion_params(assertion).into();
            form.push(("grant_type", "authorization_code".into()));
            form.push(("code", "unused".into()));
            form.push(("client_id", client_id.clone()));
            let response = setup
                .app
                .client
                .post(setup.app.url("/token"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_client", "{what}");
        }
    }

    // At introspection only the access token itself is active.
    assert_eq!(introspect(&setup, &issued.id_token).await["active"], false);
    assert_eq!(introspect(&setup, &issued.inner).await["active"], false);
    assert_eq!(
        introspect(&setup, &issued.access_token).await["active"],
        true
    );
}

async fn still_signed_in(setup: &Setup, browser: &mut Browser) -> bool {
    let page = browser
        .get(&query(&setup.client, "&scope=openid&prompt=none"))
        .await;
    param(&page.location.unwrap(), "code").is_some()
}

/// Signs `claims` with an HMAC keyed by `secret`, naming `kid`.
fn hmac_signed(claims: &Value, kid: &str, secret: &[u8]) -> String {
    let signer = jws::HS256.signer_from_bytes(secret).unwrap();
    let mut header = JwsHeader::new();
    header.set_key_id(kid);
    jws::serialize_compact(claims.to_string().as_bytes(), &header, &signer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_id_token_hints_are_rejected() {
    let setup = Setup::new(Backend::Sqlite).await;
    let canary = KeyServer::start(json!({ "keys": [] })).await;
    let mut browser = Browser::new(&setup.app);
    let issued = issue(&setup, &mut browser).await;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(issued.id_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let rsa = published_key(&setup, "sig", "RS256").await;
    let kid = rsa.key_id().unwrap().to_owned();
    let payload = encode_json(&claims);

    let mut forged = Vec::new();
    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "kid": kid });
        forged.push(format!("{}.{payload}.", encode_json(&header)));
        forged.push(format!("{}.{payload}", encode_json(&header)));
    }
    // HS256 keyed with the public RSA key, in the forms a confused
    // verifier might use as the HMAC secret.
    let jwk_text = serde_json::to_string(&rsa).unwrap();
    let modulus = URL_SAFE_NO_PAD
        .decode(rsa.parameter("n").unwrap().as_str().unwrap())
        .unwrap();
    let jwks_text = setup.app.get("/jwks").await.text().await.unwrap();
    for secret in [
        jwk_text.as_bytes(),
        jwks_text.as_bytes(),
        modulus.as_slice(),
        rsa.parameter("n").unwrap().as_str().unwrap().as_bytes(),
    ] {
        forged.push(hmac_signed(&claims, &kid, secret));
    }
    // An attacker key: unknown kid, embedded, or named by URL.
    let attacker = RsaKeyPair::generate(2048).unwrap();
    let signer = jws::RS256
        .signer_from_jwk(&attacker.to_jwk_private_key())
        .unwrap();
    let attacker_public: Value =
        serde_json::from_str(&attacker.to_jwk_public_key().to_string()).unwrap();
    for (kid, member) in [
        ("unknown-kid", None),
        (kid.as_str(), Some(("jwk", attacker_public.clone()))),
        (kid.as_str(), Some(("jku", json!(canary.url())))),
        (kid.as_str(), Some(("x5u", json!(canary.url())))),
        ("attacker", Some(("jku", json!(canary.url())))),
    ] {
        let mut header = JwsHeader::new();
        header.set_key_id(kid);
        if let Some((name, value)) = member {
            header.set_claim(name, Some(value)).unwrap();
        }
        forged
            .push(jws::serialize_compact(claims.to_string().as_bytes(), &header, &signer).unwrap());
    }
    // The genuine signature over another user's claims.
    let mut other = claims.clone();
    other["sub"] = json!("00000000-0000-0000-0000-000000000000");
    let parts: Vec<&str> = issued.id_token.split('.').collect();
    forged.push(format!("{}.{}.{}", parts[0], encode_json(&other), parts[2]));

    for (index, hint) in forged.iter().enumerate() {
        let page = browser
            .get(&query(
                &setup.client,
                &format!("&scope=openid&prompt=none&id_token_hint={}", encode(hint)),
            ))
            .await;
        let location = page.location.unwrap();
        assert_eq!(
            param(&location, "error").as_deref(),
            Some("invalid_request"),
            "hint {index}: {location}"
        );
        let page = browser
            .get(&format!(
                "/logout?id_token_hint={}&post_logout_redirect_uri={}",
                encode(hint),
                encode("https://rp.test/bye")
            ))
            .await;
        assert!(page.location.is_none(), "hint {index} ended the session");
    }
    assert_eq!(canary.hits(), 0, "a header URL was fetched");
    assert!(still_signed_in(&setup, &mut browser).await);

    // The genuine hint is accepted, so the rejections above were the
    // forgeries' own.
    let page = browser
        .get(&query(
            &setup.client,
            &format!(
                "&scope=openid&prompt=none&id_token_hint={}",
                issued.id_token
            ),
        ))
        .await;
    assert!(param(&page.location.unwrap(), "code").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertion_with_unknown_kid_is_rejected() {
    let setup = Setup::new(Backend::Sqlite).await;
    let registered = ClientKey::generate("registered");
    let key_server = KeyServer::start(registered.jwks()).await;
    let metadata = ClientMetadata {
        client_name: Some("Signed".into()),
        redirect_uris: vec!["https://rp.test/cb".into()],
        scope: Some("openid".into()),
        token_endpoint_auth_method: Some("private_key_jwt".into()),
        jwks_uri: Some(key_server.url()),
        ..ClientMetadata::default()
    };
    let (client, _) = add_client(&setup.app, metadata).await;
    let issuer = setup.app.state.config.issuer.clone();
    let now = setup.app.state.clock.now().timestamp();
    let claims = |jti: &str| {
        json!({
            "iss": client.client_id, "sub": client.client_id, "aud": issuer,
            "exp": now + 60, "iat": now, "jti": jti,
        })
    };
    let send = |assertion: String| {
        let mut form: Vec<(&str, String)> = assertion_params(&assertion).into();
        form.push(("grant_type", "authorization_code".into()));
        form.push(("code", "unknown-code".into()));
        form.push(("redirect_uri", "https://rp.test/cb".into()));
        setup
            .app
            .client
            .post(setup.app.url("/token"))
            .form(&form)
            .send()
    };

    // Keys the client never registered, under a new kid or the registered one.
    let stranger = ClientKey::generate("stranger");
    let impostor = ClientKey {
        pair: EcKeyPair::generate(EcCurve::P256).unwrap(),
        kid: "registered".into(),
    };
    for (index, key) in [&stranger, &impostor, &stranger].iter().enumerate() {
        let response = send(key.sign(&claims(&format!("forged-{index}"))))
            .await
            .unwrap();
        assert_json_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    // An unknown kid refetches the set at most once a minute.
    assert!(key_server.hits() <= 2, "{} fetches", key_server.hits());

    // The registered key authenticates: the code is what fails.
    let response = send(registered.sign(&claims("genuine"))).await.unwrap();
    assert_json_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}
