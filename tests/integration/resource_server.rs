//! The example resource server (`examples/resource_server`) in front of a
//! real Tessera. The example's own modules are compiled into this test
//! binary, so the router and verifier under test are always the current
//! source. They serve on a loopback port and receive tokens from Tessera's
//! token endpoint and tokens forged here.

#[path = "../../examples/resource_server/api.rs"]
mod api;
#[path = "../../examples/resource_server/jwks.rs"]
mod jwks;
#[path = "../../examples/resource_server/keys.rs"]
mod keys;
#[path = "../../examples/resource_server/verify.rs"]
mod verify;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use josekit::jwe::{JweHeader, ECDH_ES, ECDH_ES_A256KW};
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, ES256, HS256};
use serde_json::{json, Value};
use tessera::config::Config;
use tessera::keys::{KeyAlg, SigningAlg};

use crate::harness::{Backend, TestApp, TestStore};
use jwks::{KeySource, SigningKeys};

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");
const IDENTIFIER: &str = "http://127.0.0.1:8081";
/// Shorter than the example's default, so the tests wait one second.
const REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `tessera --json ARGS` on `app`'s store, as an operator would with
/// the server's environment, and returns the JSON it prints.
async fn tessera_cli(app: &TestApp, folder: &Path, args: &[&str]) -> Value {
    let mut command = tokio::process::Command::new(BINARY);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TESSERA_")) {
        command.env_remove(name);
    }
    let output = command
        .current_dir(folder)
        .arg("--json")
        .args(args)
        .env("TESSERA_DATABASE_URL", &app.store.url)
        .env("TESSERA_MASTER_KEY", &app.master_key)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tessera {args:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A resource server registered with Tessera through the CLI, with a key
/// pair from the example's `generate-key`.
struct Registered {
    private_path: PathBuf,
    public_jwk: Jwk,
}

async fn register(app: &TestApp, folder: &Path, identifier: &str, scopes: &[&str]) -> Registered {
    let name = format!("key-{}.jwk", scopes[0]);
    let private_path = folder.join(name);
    let public_path = keys::generate(&private_path).unwrap();
    register_key(app, folder, identifier, scopes, &public_path).await;
    let public_text = std::fs::read_to_string(&public_path).unwrap();
    Registered {
        private_path,
        public_jwk: Jwk::from_bytes(public_text.as_bytes()).unwrap(),
    }
}

async fn register_key(
    app: &TestApp,
    folder: &Path,
    identifier: &str,
    scopes: &[&str],
    public_path: &Path,
) {
    let mut args = vec![
        "resources",
        "create",
        "--identifier",
        identifier,
        "--name",
        identifier,
        "--jwk-file",
        public_path.to_str().unwrap(),
    ];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let created = tessera_cli(app, folder, &args).await;
    assert_eq!(created["identifier"], identifier);
}

/// Registers a `client_credentials` client holding `scopes`; returns its
/// id and secret.
async fn add_client(app: &TestApp, folder: &Path, scopes: &[&str]) -> (String, String) {
    let mut args = vec![
        "clients",
        "create",
        "--name",
        "Calendar sync",
        "--grant-type",
        "client_credentials",
    ];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let created = tessera_cli(app, folder, &args).await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    (id, secret)
}

/// Requests a client-credentials token for `resource` at Tessera.
async fn issue_token(app: &TestApp, client: &(String, String), resource: &str) -> String {
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("grant_type", "client_credentials"), ("resource", resource)])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Serves the example's router on a loopback port for the resource server
/// `IDENTIFIER` whose private key is at `key_file`.
async fn start_api(app: &TestApp, key_file: &Path, source: KeySource) -> SocketAddr {
    let (decrypter, key_management) = keys::load_decrypter(key_file).unwrap();
    let verifier = verify::Verifier::new(
        app.state.config.issuer.clone(),
        IDENTIFIER.to_owned(),
        decrypter,
        key_management,
        SigningKeys::new(source, REFETCH_INTERVAL).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = api::router(Arc::new(verifier));
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// A request to the example API and what came back.
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

/// Calls `/calendar` with `GET`, `POST` (a JSON event) or `POST without a
/// body`.
async fn call(api: SocketAddr, method: &str, token: Option<&str>) -> Reply {
    let url = format!("http://{api}/calendar");
    let client = reqwest::Client::new();
    let mut request = match method {
        "POST" => client.post(url).json(&json!({ "title": "Planning" })),
        "POST without a body" => client.post(url),
        _ => client.get(url),
    };
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        challenge,
        body,
    }
}

/// Asserts a 401 `invalid_token` whose description contains `reason`.
fn assert_invalid_token(reply: &Reply, case: &str, reason: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        reply.body
    );
    let challenge = reply.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer error="invalid_token", error_description=""#),
        "{case}: {challenge}"
    );
    assert!(
        challenge.contains(reason),
        "{case}: expected {reason:?} in {challenge}"
    );
    assert_eq!(reply.body["error"], "invalid_token", "{case}");
}

/// Access-token claims as Tessera writes them, for `audience`, valid now.
fn valid_claims(app: &TestApp, audience: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "iss": app.state.config.issuer,
        "sub": "forged-subject",
        "aud": audience,
        "client_id": "forged-client",
        "scope": "calendar.read",
        "iat": now,
        "exp": now + 300,
        "jti": "forged-jti",
    })
}

/// Signs `claims` with Tessera's current ES256 key and `typ`, then
/// encrypts the JWS to `recipient` as Tessera does.
fn forge_with_tessera_key(app: &TestApp, typ: &str, claims: &Value, recipient: &Jwk) -> String {
    let payload = claims.to_string();
    let jws = app
        .keys
        .ring()
        .sign(SigningAlg::ES256, typ, payload.as_bytes(), Utc::now())
        .unwrap();
    tessera::tokens::jwe::encrypt(&jws, recipient).unwrap()
}

/// Returns the kid of Tessera's current ES256 key.
fn current_es256_kid(app: &TestApp) -> String {
    let snapshot = app.keys.ring().snapshot().unwrap();
    let key = snapshot.current(KeyAlg::Signing(SigningAlg::ES256), Utc::now());
    key.unwrap().kid.clone()
}

/// Base64url of `value`'s JSON.
fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Replaces the first character of part `index` of a compact JWE, keeping
/// it valid base64url.
fn tamper(token: &str, index: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let first = if parts[index].starts_with('A') {
        "B"
    } else {
        "A"
    };
    parts[index].replace_range(0..1, first);
    parts.join(".")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_api_checks_tokens() {
    let app =
        TestApp::spawn_at_own_issuer(TestStore::new(Backend::Sqlite).await, Config::default())
            .await;
    let folder = tempfile::tempdir().unwrap();
    let calendar = register(
        &app,
        folder.path(),
        IDENTIFIER,
        &["calendar.read", "calendar.write"],
    )
    .await;

    // `generate-key` wrote a private JWK only its owner reads, with the
    // RFC 7638 thumbprint as kid, and a public JWK without private members.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&calendar.private_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let public: serde_json::Map<String, Value> =
        serde_json::from_str(&calendar.public_jwk.to_string()).unwrap();
    assert!(public.get("d").is_none());
    assert_eq!(public["use"], "enc");
    let thumbprint = tessera::public_keys::thumbprint(&public).unwrap();
    assert_eq!(public["kid"], thumbprint.as_str());

    // Another resource server registered with the same public key: its
    // tokens decrypt here and only `aud` distinguishes them.
    let shared_key_path = calendar.private_path.with_extension("public.jwk");
    register_key(
        &app,
        folder.path(),
        "https://other.test/",
        &["other.read"],
        &shared_key_path,
    )
    .await;
    register(&app, folder.path(), "https://third.test/", &["third.read"]).await;
    let reader = add_client(
        &app,
        folder.path(),
        &["calendar.read", "other.read", "third.read"],
    )
    .await;
    let writer = add_client(&app, folder.path(), &["calendar.read", "calendar.write"]).await;

    let source = KeySource::Discovery {
        issuer: app.state.config.issuer.clone(),
    };
    let api = start_api(&app, &calendar.private_path, source).await;
    let read_token = issue_token(&app, &reader, IDENTIFIER).await;
    let write_token = issue_token(&app, &writer, IDENTIFIER).await;

    // A valid token opens the route its scope allows.
    let reply = call(api, "GET", Some(&read_token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["client_id"], reader.0.as_str());
    assert_eq!(reply.body["subject"], reader.0.as_str());
    let reply = call(api, "POST", Some(&write_token)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["title"], "Planning");
    let reply = call(api, "GET", Some(&write_token)).await;
    assert_eq!(reply.body["events"][0]["created_by"], writer.0.as_str());

    // Without a token: 401 with a bare challenge (RFC 6750 section 3.1).
    let reply = call(api, "GET", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.challenge.as_deref(), Some("Bearer"));

    // The wrong scope: 403 naming the scope that is needed.
    for method in ["POST", "POST without a body"] {
        let reply = call(api, method, Some(&read_token)).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method}: {}",
            reply.body
        );
        assert_eq!(
            reply.challenge.as_deref(),
            Some(r#"Bearer error="insufficient_scope", scope="calendar.write""#),
            "{method}"
        );
    }
    let reply = call(api, "POST without a body", Some(&write_token)).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Tokens Tessera issued for other resource servers.
    let for_other = issue_token(&app, &reader, "https://other.test/").await;
    assert_invalid_token(
        &call(api, "GET", Some(&for_other)).await,
        "same key, other audience",
        "for another resource server",
    );
    let for_third = issue_token(&app, &reader, "https://third.test/").await;
    assert_invalid_token(
        &call(api, "GET", Some(&for_third)).await,
        "encrypted to another key",
        "does not decrypt",
    );

    // A valid token with its ciphertext or authentication tag changed.
    for (case, index) in [("ciphertext", 3), ("tag", 4), ("protected header", 0)] {
        let tampered = tamper(&read_token, index);
        let reply = call(api, "GET", Some(&tampered)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "tampered {case}");
        assert_eq!(reply.body["error"], "invalid_token", "tampered {case}");
    }

    // An encrypted key of 6 bytes: josekit 0.10.3 panics on one shorter
    // than the 8-byte integrity check value of AES key wrap.
    let mut parts: Vec<&str> = read_token.split('.').collect();
    parts[1] = "BwcHBwcH";
    let short_key = parts.join(".");
    assert_invalid_token(
        &call(api, "GET", Some(&short_key)).await,
        "6-byte encrypted key",
        "does not decrypt",
    );

    // Inner JWTs signed here, some with Tessera's own key.
    let recipient = &calendar.public_jwk;
    let now = Utc::now().timestamp();
    let with = |changes: Value| {
        let mut claims = valid_claims(&app, IDENTIFIER);
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    };
    let accepted = [
        ("as Tessera signs it", "at+jwt", with(json!({}))),
        ("typ in capitals", "AT+JWT", with(json!({}))),
        ("typ as a media type", "application/at+jwt", with(json!({}))),
        (
            "expired within the skew",
            "at+jwt",
            with(json!({ "exp": now - 10 })),
        ),
        (
            "issued just ahead",
            "at+jwt",
            with(json!({ "iat": now + 30 })),
        ),
        (
            "audience in an array",
            "at+jwt",
            with(json!({ "aud": ["https://x.test/", IDENTIFIER] })),
        ),
    ];
    for (case, typ, claims) in accepted {
        let token = forge_with_tessera_key(&app, typ, &claims, recipient);
        let reply = call(api, "GET", Some(&token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.body);
    }
    let rejected = [
        (
            "expired",
            "at+jwt",
            with(json!({ "exp": now - 61, "iat": now - 700 })),
            "has expired",
        ),
        (
            "issued in the future",
            "at+jwt",
            with(json!({ "iat": now + 120 })),
            "not valid yet",
        ),
        (
            "not before the future",
            "at+jwt",
            with(json!({ "nbf": now + 120 })),
            "not valid yet",
        ),
        (
            "another issuer",
            "at+jwt",
            with(json!({ "iss": "http://127.0.0.1:1" })),
            "another issuer",
        ),
        (
            "issuer with a slash",
            "at+jwt",
            with(json!({ "iss": format!("{}/", app.state.config.issuer) })),
            "another issuer",
        ),
        (
            "another audience",
            "at+jwt",
            with(json!({ "aud": "https://x.test/" })),
            "another resource server",
        ),
        (
            "no audience",
            "at+jwt",
            with(json!({ "aud": null })),
            "claims",
        ),
        (
            "no expiry",
            "at+jwt",
            with(json!({ "exp": null })),
            "claims",
        ),
        ("plain JWT typ", "JWT", with(json!({})), "`typ`"),
        ("ID token typ", "application/jwt", with(json!({})), "`typ`"),
    ];
    for (case, typ, claims, reason) in rejected {
        let token = forge_with_tessera_key(&app, typ, &claims, recipient);
        assert_invalid_token(&call(api, "GET", Some(&token)).await, case, reason);
    }
    let reply = call(
        api,
        "GET",
        Some(&forge_with_tessera_key(
            &app,
            "at+jwt",
            &with(json!({ "scope": null })),
            recipient,
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "no scope claim");

    // Inner JWTs not signed by a published Tessera key.
    let payload = valid_claims(&app, IDENTIFIER).to_string();
    let tessera_kid = current_es256_kid(&app);
    let stranger = EcKeyPair::generate(EcCurve::P256).unwrap();
    let stranger_signer = ES256.signer_from_jwk(&stranger.to_jwk_key_pair()).unwrap();
    let sign = |header: &JwsHeader| {
        josekit::jws::serialize_compact(payload.as_bytes(), header, &stranger_signer).unwrap()
    };
    let mut unknown_kid = JwsHeader::new();
    unknown_kid.set_token_type("at+jwt");
    unknown_kid.set_key_id("not-a-tessera-key");
    let mut known_kid = unknown_kid.clone();
    known_kid.set_key_id(&tessera_kid);
    let mut no_typ = JwsHeader::new();
    no_typ.set_key_id(&tessera_kid);
    let mut no_kid = JwsHeader::new();
    no_kid.set_token_type("at+jwt");
    // The public JWK as an HMAC secret: the classic algorithm confusion.
    let hmac = HS256
        .signer_from_bytes(calendar.public_jwk.to_string().as_bytes())
        .unwrap();
    let mut hmac_header = known_kid.clone();
    hmac_header.set_algorithm("HS256");
    let unsigned = format!(
        "{}.{}.",
        encode(&json!({ "alg": "none", "typ": "at+jwt", "kid": tessera_kid })),
        URL_SAFE_NO_PAD.encode(&payload)
    );
    let forged = [
        ("unknown kid", sign(&unknown_kid), "unknown key"),
        (
            "Tessera's kid, another key",
            sign(&known_kid),
            "signature is invalid",
        ),
        ("no typ", sign(&no_typ), "`typ`"),
        ("no kid", sign(&no_kid), "`kid`"),
        ("alg none", unsigned, "`alg`"),
        (
            "HS256 with the public key",
            josekit::jws::serialize_compact(payload.as_bytes(), &hmac_header, &hmac).unwrap(),
            "`alg`",
        ),
    ];
    for (case, jws, reason) in forged {
        let token = tessera::tokens::jwe::encrypt(&jws, recipient).unwrap();
        assert_invalid_token(&call(api, "GET", Some(&token)).await, case, reason);
    }

    // Outer JWEs with headers Tessera never sends.
    let inner = app
        .keys
        .ring()
        .sign(SigningAlg::ES256, "at+jwt", payload.as_bytes(), Utc::now())
        .unwrap();
    let ecdh_kw = ECDH_ES_A256KW.encrypter_from_jwk(recipient).unwrap();
    // josekit builds no ECDH-ES encrypter from a key whose `alg` differs.
    let mut without_alg = public.clone();
    without_alg.remove("alg");
    let ecdh_direct = ECDH_ES
        .encrypter_from_jwk(&Jwk::from_map(without_alg).unwrap())
        .unwrap();
    let jwe = |header: &JweHeader, encrypter: &dyn josekit::jwe::JweEncrypter| {
        josekit::jwe::serialize_compact(inner.as_bytes(), header, encrypter).unwrap()
    };
    let mut proper = JweHeader::new();
    proper.set_content_type("JWT");
    proper.set_content_encryption("A256GCM");
    let mut no_cty = JweHeader::new();
    no_cty.set_content_encryption("A256GCM");
    let mut weaker_enc = proper.clone();
    weaker_enc.set_content_encryption("A128GCM");
    let reply = call(api, "GET", Some(&jwe(&proper, &ecdh_kw))).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a JWE built like Tessera's: {}",
        reply.body
    );
    let outer = [
        ("no cty", jwe(&no_cty, &ecdh_kw), "`cty`"),
        ("A128GCM", jwe(&weaker_enc, &ecdh_kw), "`enc`"),
        (
            "ECDH-ES without key wrap",
            jwe(&proper, &ecdh_direct),
            "`alg`",
        ),
        ("a bare JWS", inner.clone(), "not a JWE"),
    ];
    for (case, token, reason) in outer {
        assert_invalid_token(&call(api, "GET", Some(&token)).await, case, reason);
    }

    // Malformed requests (RFC 6750 section 3.1, `invalid_request`).
    let client = reqwest::Client::new();
    let url = format!("http://{api}/calendar");
    let basic = client
        .get(&url)
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(basic.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let requests = [
        (
            "two Authorization headers",
            vec![
                format!("Bearer {read_token}"),
                format!("Bearer {read_token}"),
            ],
        ),
        ("spaces in the token", vec!["Bearer not a token".to_owned()]),
        ("Bearer without a token", vec!["Bearer ".to_owned()]),
    ];
    for (case, values) in requests {
        let mut request = client.get(&url);
        for value in &values {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(
            challenge.starts_with(r#"Bearer error="invalid_request""#),
            "{challenge}"
        );
    }
}

/// Forwards `GET /jwks` to Tessera and counts the requests. A test may
/// replace the `Cache-Control` header or make it fail with a status.
struct JwksProxy {
    url: String,
    hits: Arc<AtomicUsize>,
    cache_control: Arc<Mutex<Option<String>>>,
    failure: Arc<Mutex<Option<StatusCode>>>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    hits: Arc<AtomicUsize>,
    cache_control: Arc<Mutex<Option<String>>>,
    failure: Arc<Mutex<Option<StatusCode>>>,
}

impl JwksProxy {
    async fn start(app: &TestApp) -> Self {
        let state = ProxyState {
            upstream: app.url("/jwks"),
            hits: Arc::default(),
            cache_control: Arc::default(),
            failure: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/jwks", axum::routing::get(forward))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url,
            hits: state.hits,
            cache_control: state.cache_control,
            failure: state.failure,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn forward(State(state): State<ProxyState>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(status) = *state.failure.lock().unwrap() {
        return status.into_response();
    }
    let upstream = reqwest::get(&state.upstream).await.unwrap();
    let replaced = state.cache_control.lock().unwrap().clone();
    let cache_control = match replaced {
        Some(value) => value,
        None => upstream.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .to_owned(),
    };
    let body = upstream.text().await.unwrap();
    ([(header::CACHE_CONTROL, cache_control)], body).into_response()
}

/// Tessera, the example API fetching its JWKS through a counting proxy,
/// and a token for the API.
struct BehindProxy {
    app: TestApp,
    proxy: JwksProxy,
    api: SocketAddr,
    token: String,
    calendar: Registered,
    folder: tempfile::TempDir,
}

async fn spawn_behind_proxy() -> BehindProxy {
    let app =
        TestApp::spawn_at_own_issuer(TestStore::new(Backend::Sqlite).await, Config::default())
            .await;
    let folder = tempfile::tempdir().unwrap();
    let calendar = register(&app, folder.path(), IDENTIFIER, &["calendar.read"]).await;
    let client = add_client(&app, folder.path(), &["calendar.read"]).await;
    let proxy = JwksProxy::start(&app).await;
    let api = start_api(
        &app,
        &calendar.private_path,
        KeySource::JwksUri(proxy.url.clone()),
    )
    .await;
    let token = issue_token(&app, &client, IDENTIFIER).await;
    BehindProxy {
        app,
        proxy,
        api,
        token,
        calendar,
        folder,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_api_picks_up_rotated_key() {
    let BehindProxy {
        app,
        proxy,
        api,
        token,
        calendar,
        folder,
    } = spawn_behind_proxy().await;
    let first_jwks: Value = app.get("/jwks").await.json().await.unwrap();

    // Concurrent requests on an empty cache share one fetch.
    let replies = concurrent_gets(api, &token, 8).await;
    assert!(
        replies.iter().all(|status| *status == StatusCode::OK),
        "{replies:?}"
    );
    assert_eq!(proxy.hits(), 1);
    assert_eq!(call(api, "GET", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(proxy.hits(), 1, "a known kid is served from the cache");

    // An unknown kid causes one refetch per interval, no more.
    let stranger = EcKeyPair::generate(EcCurve::P256).unwrap();
    let signer = ES256.signer_from_jwk(&stranger.to_jwk_key_pair()).unwrap();
    let mut header = JwsHeader::new();
    header.set_token_type("at+jwt");
    header.set_key_id("not-a-tessera-key");
    let payload = valid_claims(&app, IDENTIFIER).to_string();
    let jws = josekit::jws::serialize_compact(payload.as_bytes(), &header, &signer).unwrap();
    let unknown = tessera::tokens::jwe::encrypt(&jws, &calendar.public_jwk).unwrap();
    tokio::time::sleep(REFETCH_INTERVAL).await;
    for _ in 0..3 {
        assert_invalid_token(
            &call(api, "GET", Some(&unknown)).await,
            "unknown kid",
            "unknown key",
        );
    }
    assert_eq!(proxy.hits(), 2);

    // Two forced rotations make current a key published after the cache
    // was filled.
    let es256 = Some(KeyAlg::Signing(SigningAlg::ES256));
    app.keys.rotate(es256, true).await.unwrap();
    app.keys.rotate(es256, true).await.unwrap();
    let rotated_kid = current_es256_kid(&app);
    let first_kids: Vec<&str> = first_jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    assert!(!first_kids.contains(&rotated_kid.as_str()));
    let client = add_client(&app, folder.path(), &["calendar.read"]).await;
    let rotated = issue_token(&app, &client, IDENTIFIER).await;

    // Within the refetch interval the new key is unknown; after it, the
    // refetch finds it.
    assert_invalid_token(
        &call(api, "GET", Some(&rotated)).await,
        "rotated, too early",
        "unknown key",
    );
    assert_eq!(proxy.hits(), 2);
    tokio::time::sleep(REFETCH_INTERVAL).await;
    let reply = call(api, "GET", Some(&rotated)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(proxy.hits(), 3);
    assert_eq!(
        call(api, "GET", Some(&rotated)).await.status,
        StatusCode::OK
    );
    assert_eq!(proxy.hits(), 3);
}

/// Sends `count` concurrent GET requests with `token`; returns the statuses.
async fn concurrent_gets(api: SocketAddr, token: &str, count: usize) -> Vec<StatusCode> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let token = token.to_owned();
        tasks.spawn(async move { call(api, "GET", Some(&token)).await.status });
    }
    tasks.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_api_honours_jwks_max_age() {
    // Bound by name, because `..` would drop the server and key folder.
    let BehindProxy {
        app: _app,
        proxy,
        api,
        token,
        calendar: _calendar,
        folder: _folder,
    } = spawn_behind_proxy().await;
    *proxy.cache_control.lock().unwrap() = Some("public, max-age=1".to_owned());

    assert_eq!(call(api, "GET", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(call(api, "GET", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(proxy.hits(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call(api, "GET", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(
        proxy.hits(),
        2,
        "the set is fetched again once max-age ends"
    );

    // A failed fetch after max-age fails closed: 503, not a stale key.
    *proxy.failure.lock().unwrap() = Some(StatusCode::BAD_GATEWAY);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = call(api, "GET", Some(&token)).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(proxy.hits(), 3);
    *proxy.failure.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call(api, "GET", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(proxy.hits(), 4);
}
