//! `private_key_jwt` client assertions over real HTTP: single use across
//! every endpoint, lifetime and claim rules, audiences from configuration
//! only, and broken or unsigned JOSE headers.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jws::JwsHeader;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::clock::Clock;
use tokio::sync::Barrier;

use crate::harness::key_server::KeyServer;
use crate::harness::Backend;
use crate::oauth_support::{
    add_client, add_resource, assert_oauth_error, assertion_params, post_form, service, Auth,
    ClientKey, OauthApp, TestClient,
};

/// A server with `https://rs1.test/`, and `private_key_jwt` clients `rp3`
/// (keys served at a `jwks_uri`) and `rp4` (keys registered inline).
struct Setup {
    oauth: OauthApp,
    rp3: TestClient,
    k3: ClientKey,
    rp4: TestClient,
    k4: ClientKey,
    key_server: KeyServer,
}

async fn setup(backend: Backend) -> Setup {
    // These tests send dozens of rejected assertions from one address,
    // which the failed-authentication limit would turn into 429s.
    let mut config = tessera::config::Config::default();
    config.rate_limits.failed_client_auth = tessera::config::RateLimit::new(0.0, 1);
    let oauth = OauthApp::spawn_configured(backend, config).await;
    add_resource(&oauth, "https://rs1.test/", &["api.read"]).await;
    let k3 = ClientKey::generate("k3");
    let key_server = KeyServer::start(k3.jwks()).await;
    let mut metadata = service("private_key_jwt", "api.read", Some("https://rs1.test/"));
    metadata.jwks_uri = Some(key_server.url());
    let rp3 = add_client(&oauth, metadata).await;
    let k4 = ClientKey::generate("k4");
    let mut metadata = service("private_key_jwt", "api.read", Some("https://rs1.test/"));
    metadata.jwks = Some(k4.jwks());
    let rp4 = add_client(&oauth, metadata).await;
    Setup {
        oauth,
        rp3,
        k3,
        rp4,
        k4,
        key_server,
    }
}

impl Setup {
    fn now(&self) -> i64 {
        self.oauth.clock.now().timestamp()
    }

    /// Valid claims for `client`: `aud` the issuer, `exp` in 60 s.
    fn claims(&self, client: &TestClient, jti: &str) -> Value {
        json!({
            "iss": client.id, "sub": client.id, "aud": self.oauth.issuer(),
            "exp": self.now() + 60, "iat": self.now(), "jti": jti,
        })
    }

    async fn post(&self, path: &str, assertion: &str, extra: &[(&str, &str)]) -> reqwest::Response {
        let params = assertion_params(assertion);
        let mut all: Vec<(&str, &str)> = params
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        all.extend_from_slice(extra);
        post_form(&self.oauth, path, Auth::Nothing, &all).await
    }

    async fn token(&self, assertion: &str) -> reqwest::Response {
        self.post("/token", assertion, &[("grant_type", "client_credentials")])
            .await
    }
}

async fn assert_rejected(response: reqwest::Response) {
    let headers = assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // The challenge names Basic, the one HTTP scheme of client
    // authentication, as on every 401 of these endpoints.
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
}

#[tokio::test]
async fn assertion_is_accepted_once_at_every_endpoint() {
    let setup = setup(Backend::Sqlite).await;
    let assertion = setup.k3.sign(&setup.claims(&setup.rp3, "j-fixed-1"));
    let response = setup.token(&assertion).await;
    assert_eq!(response.status(), StatusCode::OK);

    setup.oauth.clock.advance(chrono::Duration::seconds(1));
    assert_rejected(setup.token(&assertion).await).await;
    assert_rejected(
        setup
            .post("/introspect", &assertion, &[("token", "x")])
            .await,
    )
    .await;
    assert_rejected(setup.post("/revoke", &assertion, &[("token", "x")]).await).await;

    // `jti`s belong to their client: rp4 may use the same one.
    let other = setup.k4.sign(&setup.claims(&setup.rp4, "j-fixed-1"));
    assert_eq!(setup.token(&other).await.status(), StatusCode::OK);

    // The token endpoint URL is an accepted audience too, and client_id in
    // the body may name the client.
    let mut claims = setup.claims(&setup.rp4, "j-2");
    claims["aud"] = json!([format!("{}/token", setup.oauth.issuer())]);
    let response = setup
        .post(
            "/token",
            &setup.k4.sign(&claims),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &setup.rp4.id),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn parallel_copies_succeed_once(backend: Backend) {
    let setup = Arc::new(setup(backend).await);
    let assertion = setup.k4.sign(&setup.claims(&setup.rp4, "j-parallel"));
    let barrier = Arc::new(Barrier::new(20));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let setup = Arc::clone(&setup);
        let barrier = Arc::clone(&barrier);
        let assertion = assertion.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            setup.token(&assertion).await.status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let accepted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let rejected = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(accepted, 1, "{statuses:?}");
    assert_eq!(rejected, 19, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_assertion_copies_succeed_once_on_sqlite() {
    parallel_copies_succeed_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_assertion_copies_succeed_once_on_postgres() {
    parallel_copies_succeed_once(Backend::Postgres).await;
}

#[tokio::test]
async fn assertion_claim_rules() {
    let setup = setup(Backend::Sqlite).await;
    let now = setup.now();
    let issuer = setup.oauth.issuer().to_owned();
    let rp4 = setup.rp4.id.clone();
    let edit = |jti: &str, change: &dyn Fn(&mut Value)| {
        let mut claims = setup.claims(&setup.rp3, jti);
        change(&mut claims);
        claims
    };
    let cases = [
        edit("c1", &|c| drop(c.as_object_mut().unwrap().remove("jti"))),
        edit("c2", &|c| drop(c.as_object_mut().unwrap().remove("exp"))),
        edit("c3", &|c| c["exp"] = json!(now + 10 * 365 * 86_400)),
        edit("c4", &|c| c["exp"] = json!(now + 3600)),
        edit("c5", &|c| c["iat"] = json!(now - 7200)),
        edit("c6", &|c| c["sub"] = json!(rp4)),
        edit("c7", &|c| drop(c.as_object_mut().unwrap().remove("iss"))),
        edit("c8", &|c| c["sub"] = json!("some-user-sub")),
        edit("c9", &|c| c["aud"] = json!([issuer, "https://evil.test"])),
        edit("c10", &|c| c["exp"] = json!(now - 120)),
        edit("c11", &|c| c["aud"] = json!("https://evil.test/token")),
    ];
    for claims in cases {
        let response = setup.token(&setup.k3.sign(&claims)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{claims}");
        assert_rejected(response).await;
    }
    // Signed by the other client's key.
    let claims = setup.claims(&setup.rp3, "c12");
    assert_rejected(setup.token(&setup.k4.sign(&claims)).await).await;
}

#[tokio::test]
async fn assertion_audience_ignores_request_headers() {
    let setup = setup(Backend::Sqlite).await;
    for (index, (name, value)) in [("host", "evil.test"), ("x-forwarded-host", "evil.test")]
        .into_iter()
        .enumerate()
    {
        let mut claims = setup.claims(&setup.rp3, &format!("forwarded-{index}"));
        claims["aud"] = json!("https://evil.test/token");
        let params = assertion_params(&setup.k3.sign(&claims));
        let response = setup
            .oauth
            .app
            .client
            .post(setup.oauth.app.url("/token"))
            .header(name, value)
            .form(&[
                ("grant_type", "client_credentials"),
                (params[0].0, params[0].1.as_str()),
                (params[1].0, params[1].1.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_rejected(response).await;
    }
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Assertions whose JOSE header is broken, unsigned, keyed with the public
/// key, or brings its own key; each is signed or shaped as an attacker
/// would.
fn forged_assertions(setup: &Setup, canary: &str) -> Vec<String> {
    let claims = setup.claims(&setup.rp3, "forged");
    let payload = encode(&claims);
    let mut forged = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        forged.push(format!("{}.{payload}.", encode(&json!({ "alg": alg }))));
    }
    for header in [
        json!({ "alg": null }),
        json!({}),
        json!({ "alg": 42 }),
        json!({ "alg": ["ES256"] }),
        json!({ "alg": "" }),
        json!([]),
        json!({ "alg": "XS512" }),
    ] {
        forged.push(format!("{}.{payload}.c2ln", encode(&header)));
    }

    // HMAC keyed with the client's public key, in several encodings.
    let public = setup.k3.pair.to_jwk_public_key();
    let public_json = public.to_string();
    let der = setup.k3.pair.to_der_public_key();
    let pem = String::from_utf8(setup.k3.pair.to_pem_public_key()).unwrap();
    let x = URL_SAFE_NO_PAD
        .decode(public.parameter("x").unwrap().as_str().unwrap())
        .unwrap();
    let y = URL_SAFE_NO_PAD
        .decode(public.parameter("y").unwrap().as_str().unwrap())
        .unwrap();
    let mut xy = x.clone();
    xy.extend_from_slice(&y);
    let secrets: Vec<Vec<u8>> = vec![
        der,
        pem.clone().into_bytes(),
        pem.trim_end().as_bytes().to_vec(),
        public_json.into_bytes(),
        xy,
    ];
    for secret in &secrets {
        for alg in [
            josekit::jws::HS256,
            josekit::jws::HS384,
            josekit::jws::HS512,
        ] {
            let signer = alg.signer_from_bytes(secret).unwrap();
            let mut header = JwsHeader::new();
            header.set_key_id(&setup.k3.kid);
            let token =
                josekit::jws::serialize_compact(claims.to_string().as_bytes(), &header, &signer)
                    .unwrap();
            forged.push(token);
        }
    }

    // An attacker key that travels in the header or is named by URL.
    let attacker = ClientKey::generate("attacker");
    let attacker_public = attacker.jwks()["keys"][0].clone();
    let signer = josekit::jws::ES256
        .signer_from_jwk(&attacker.pair.to_jwk_private_key())
        .unwrap();
    for (name, value) in [
        ("jwk", attacker_public),
        ("jku", json!(canary)),
        ("x5u", json!(canary)),
        ("x5c", json!(["MIIBfake"])),
    ] {
        let mut header = JwsHeader::new();
        header.set_key_id("attacker");
        header.set_claim(name, Some(value)).unwrap();
        forged.push(
            josekit::jws::serialize_compact(claims.to_string().as_bytes(), &header, &signer)
                .unwrap(),
        );
    }

    // Structure.
    let valid = setup.k3.sign(&claims);
    let parts: Vec<&str> = valid.split('.').collect();
    forged.push(format!("{}.{}", parts[0], parts[1]));
    forged.push(format!("{valid}.x"));
    forged.push(format!("{valid}.x.y.z"));
    forged.push(format!("{}=.{}.{}", parts[0], parts[1], parts[2]));
    forged.push(format!("{} .{}.{}", parts[0], parts[1], parts[2]));
    forged.push(format!("{}.{}.{}*", parts[0], parts[1], parts[2]));
    forged.push(format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode("not json"),
        parts[1],
        parts[2]
    ));
    forged
}

#[tokio::test]
async fn forged_assertion_headers_are_rejected() {
    let setup = setup(Backend::Sqlite).await;
    let canary = KeyServer::start(json!({ "keys": [] })).await;
    let forged = forged_assertions(&setup, &canary.url());
    assert!(forged.len() > 30);
    for (index, assertion) in forged.iter().enumerate() {
        let response = setup.token(assertion).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "forged assertion {index}"
        );
        assert_rejected(response).await;
    }
    assert_eq!(canary.hits(), 0, "the canary received a request");

    // The genuine key still works afterwards, with the set fetched once.
    let genuine = setup.k3.sign(&setup.claims(&setup.rp3, "genuine"));
    assert_eq!(setup.token(&genuine).await.status(), StatusCode::OK);
    assert!(setup.key_server.hits() <= 2, "{}", setup.key_server.hits());
}
