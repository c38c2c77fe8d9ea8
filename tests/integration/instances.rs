//! Three `tessera serve` processes on one PostgreSQL database, as behind a
//! load balancer: clients, authorization codes, refresh tokens, browser
//! sessions and keys made at one instance hold at the others, and
//! single-use secrets stay single-use across them.

use std::path::Path;
use std::time::{Duration, Instant};

use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::Jwk;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::authorize::{param, Browser, CHALLENGE, PASSWORD, VERIFIER};
use crate::harness::postgres;
use crate::harness::process::{json_output, run, run_with_input, wait_for, ServeProcess};

const MASTER_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
/// The public address of the deployment, shared by every instance. Nothing
/// listens there: the test talks to each instance directly.
const ISSUER: &str = "http://localhost:8080";
const RESOURCE: &str = "https://api.test/";
const REDIRECT_URI: &str = "https://rp.test/cb";
/// How long a change made at one instance or by the CLI may take to reach
/// the others: caches poll the store's change counters every second.
const PROPAGATION: Duration = Duration::from_secs(2);

/// Three instances sharing one database, issuer and master key, and the
/// CLI environment that reaches the same database.
struct Deployment {
    folder: tempfile::TempDir,
    database_url: String,
    instances: Vec<ServeProcess>,
    http: reqwest::Client,
}

impl Deployment {
    async fn start() -> Self {
        let folder = tempfile::tempdir().unwrap();
        let database_url = postgres::fresh_database().await;
        let mut deployment = Self {
            folder,
            database_url,
            instances: Vec::new(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        json_output(&deployment.cli(&["--json", "migrate"]));
        for _ in 0..3 {
            let process = ServeProcess::start(
                deployment.folder.path(),
                &["--no-migrate"],
                &deployment.env(),
            );
            deployment.instances.push(process);
        }
        for instance in &deployment.instances {
            let ready = wait_for(&format!("http://{}/readyz", instance.listen)).await;
            assert_eq!(ready, Some(200), "{}", instance.logs());
        }
        deployment
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("TESSERA_DATABASE_URL", self.database_url.as_str()),
            ("TESSERA_MASTER_KEY", MASTER_KEY),
            ("TESSERA_ISSUER", ISSUER),
            ("TESSERA_REGISTRATION__POLICY", "token"),
            ("TESSERA_ARGON2__MEMORY_KIB", "64"),
            ("TESSERA_ARGON2__ITERATIONS", "1"),
        ]
    }

    fn folder(&self) -> &Path {
        self.folder.path()
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        run(self.folder(), args, &self.env())
    }

    /// Base URL of instance `index` (0, 1 or 2: A, B and C).
    fn base(&self, index: usize) -> String {
        format!("http://{}", self.instances[index].listen)
    }

    fn url(&self, index: usize, path: &str) -> String {
        format!("{}{path}", self.base(index))
    }

    async fn token(&self, index: usize, client: &Credentials, form: &[(&str, &str)]) -> Reply {
        let response = self
            .http
            .post(self.url(index, "/token"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        Reply::read(response).await
    }

    /// Returns whether `token` introspects as active at instance `index`.
    async fn active(&self, index: usize, client: &Credentials, token: &str) -> bool {
        let response = self
            .http
            .post(self.url(index, "/introspect"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["active"].as_bool().unwrap()
    }

    async fn jwks_kids(&self, index: usize) -> Vec<String> {
        let response = self
            .http
            .get(self.url(index, "/jwks"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        let mut kids: Vec<String> = body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect();
        kids.sort();
        kids
    }

    /// Stops every instance and checks that each exited cleanly.
    fn stop(self) {
        for instance in self.instances {
            let (success, logs) = instance.stop();
            assert!(success, "{logs}");
            assert!(logs.contains("tessera stopped"), "{logs}");
        }
    }
}

struct Credentials {
    id: String,
    secret: String,
}

/// A token endpoint response: status and JSON body.
struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let body = response.json().await.unwrap();
        Self { status, body }
    }

    fn string(&self, member: &str) -> String {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self.body[member].as_str().unwrap().to_owned()
    }

    fn assert_error(&self, status: StatusCode, error: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], error, "{}", self.body);
    }
}

/// Polls `check` every 50 ms until it returns true, failing the test if
/// that happens later than [`PROPAGATION`] after `since`; returns the time
/// since `since`.
async fn within(since: Instant, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    loop {
        if check().await {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < PROPAGATION,
            "{what}: not seen within {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the authorization code flow in `browser` and returns the code.
async fn authorize(browser: &mut Browser, client_id: &str, state: &str) -> String {
    let start = format!(
        "/authorize?response_type=code&client_id={client_id}\
         &redirect_uri=https%3A%2F%2Frp.test%2Fcb&scope=openid%20offline_access\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state={state}"
    );
    let page = browser.run(&start, "u1", true).await;
    let location = page.location.expect("redirect to the client");
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some(state));
    assert_eq!(param(&location, "iss").as_deref(), Some(ISSUER));
    param(&location, "code").expect("code")
}

fn code_form(code: &str) -> [(&'static str, &str); 4] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ]
}

/// Adds the user `u1`, the resource server and a code-flow client with
/// the CLI, as an operator would; returns the client.
fn provision(deployment: &Deployment) -> Credentials {
    let user = run_with_input(
        deployment.folder(),
        &[
            "--json",
            "users",
            "create",
            "--username",
            "u1",
            "--password-stdin",
        ],
        &deployment.env(),
        &format!("{PASSWORD}\n"),
    );
    json_output(&user);

    let key = Jwk::generate_ec_key(EcCurve::P256).unwrap();
    let public = Value::Object(key.to_public_key().unwrap().as_ref().clone());
    let jwk_file = deployment.folder().join("api.jwk.json");
    std::fs::write(&jwk_file, public.to_string()).unwrap();
    json_output(&deployment.cli(&[
        "--json",
        "resources",
        "create",
        "--identifier",
        RESOURCE,
        "--name",
        "API",
        "--scope",
        "api.read",
        "--jwk-file",
        jwk_file.to_str().unwrap(),
    ]));

    let client = json_output(&deployment.cli(&[
        "--json",
        "clients",
        "create",
        "--name",
        "Relying Party",
        "--redirect-uri",
        REDIRECT_URI,
    ]));
    Credentials {
        id: client["client_id"].as_str().unwrap().to_owned(),
        secret: client["client_secret"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_one_database() {
    let deployment = Deployment::start().await;
    for index in 0..3 {
        let response = deployment
            .http
            .get(deployment.url(index, "/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap();
        let discovery: Value = response.json().await.unwrap();
        assert_eq!(discovery["issuer"], ISSUER);
        assert_eq!(discovery["token_endpoint"], format!("{ISSUER}/token"));
    }
    let client = provision(&deployment);

    registered_client_reaches_every_instance(&deployment).await;
    code_is_redeemed_once_across_instances(&deployment, &client).await;
    rotated_refresh_token_fails_elsewhere(&deployment, &client).await;
    key_rotation_reaches_every_instance(&deployment).await;
    deployment.stop();
}

/// Checks that a client registered at A gets tokens at B and C, and that
/// once deleted at A it is rejected at B and C after their caches reload.
async fn registered_client_reaches_every_instance(deployment: &Deployment) {
    let issued = json_output(&deployment.cli(&["--json", "registration-tokens", "create"]));
    let initial_token = issued["initial_access_token"].as_str().unwrap();
    let request = json!({
        "client_name": "Batch job",
        "grant_types": ["client_credentials"],
        "scope": "api.read",
    });
    let response = deployment
        .http
        .post(deployment.url(0, "/register"))
        .bearer_auth(initial_token)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered: Value = response.json().await.unwrap();
    let batch = Credentials {
        id: registered["client_id"].as_str().unwrap().to_owned(),
        secret: registered["client_secret"].as_str().unwrap().to_owned(),
    };
    let form = [("grant_type", "client_credentials"), ("resource", RESOURCE)];

    let registered_at = Instant::now();
    for index in [1, 2] {
        let took = within(registered_at, "registered client", async || {
            deployment.token(index, &batch, &form).await.status == StatusCode::OK
        })
        .await;
        eprintln!("client registered at A usable at instance {index} after {took:?}");
        let reply = deployment.token(index, &batch, &form).await;
        assert_eq!(reply.string("token_type"), "Bearer");
        assert_eq!(reply.string("access_token").split('.').count(), 5);
    }

    let registration_token = registered["registration_access_token"].as_str().unwrap();
    let path = format!("/register/{}", batch.id);
    let deleted = deployment
        .http
        .delete(deployment.url(0, &path))
        .bearer_auth(registration_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let deleted_at = Instant::now();
    for index in [1, 2] {
        let took = within(deleted_at, "deleted client", async || {
            let reply = deployment.token(index, &batch, &form).await;
            reply.status == StatusCode::UNAUTHORIZED && reply.body["error"] == "invalid_client"
        })
        .await;
        eprintln!("client deleted at A rejected at instance {index} after {took:?}");
    }
}

/// Checks that a code issued at A and redeemed at B fails when presented
/// again at C, and that this replay revokes the tokens B issued.
async fn code_is_redeemed_once_across_instances(deployment: &Deployment, client: &Credentials) {
    let mut browser = Browser::at(&deployment.base(0));
    let code = authorize(&mut browser, &client.id, "at-a").await;

    let tokens = deployment.token(1, client, &code_form(&code)).await;
    let access_token = tokens.string("access_token");
    let refresh_token = tokens.string("refresh_token");
    assert!(tokens.body["id_token"].is_string(), "{}", tokens.body);
    assert!(deployment.active(0, client, &access_token).await);

    let replay = deployment.token(2, client, &code_form(&code)).await;
    replay.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    for index in 0..3 {
        assert!(
            !deployment.active(index, client, &access_token).await,
            "access token still active at instance {index}"
        );
    }
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let revoked = deployment.token(0, client, &refresh).await;
    revoked.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

/// Checks that the browser session from A carries to B, that a refresh
/// token rotated at A is rejected at B, and that this reuse revokes the
/// grant at C too.
async fn rotated_refresh_token_fails_elsewhere(deployment: &Deployment, client: &Credentials) {
    let mut browser = Browser::at(&deployment.base(0));
    authorize(&mut browser, &client.id, "login-at-a").await;
    browser.base = deployment.base(1);
    let start = format!(
        "/authorize?response_type=code&client_id={}\
         &redirect_uri=https%3A%2F%2Frp.test%2Fcb&scope=openid%20offline_access\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state=at-b",
        client.id
    );
    // Signed in at A and consent given there: B redirects straight back.
    let page = browser.get(&start).await;
    let location = page.location.expect("redirect without login or consent");
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let code = param(&location, "code").unwrap();

    let tokens = deployment.token(2, client, &code_form(&code)).await;
    let first = tokens.string("refresh_token");
    let rotated = deployment
        .token(
            0,
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        )
        .await;
    let second = rotated.string("refresh_token");
    let access_token = rotated.string("access_token");
    assert_ne!(second, first);
    assert!(deployment.active(2, client, &access_token).await);

    let reuse = deployment
        .token(
            1,
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        )
        .await;
    reuse.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let after_reuse = deployment
        .token(
            2,
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", &second)],
        )
        .await;
    after_reuse.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(!deployment.active(1, client, &access_token).await);
}

/// Checks that after `tessera keys rotate` changes the key ring in the
/// database, every instance serves the new JWKS once it reloads.
async fn key_rotation_reaches_every_instance(deployment: &Deployment) {
    let before = deployment.jwks_kids(0).await;
    for index in [1, 2] {
        assert_eq!(deployment.jwks_kids(index).await, before);
    }
    let rotated = json_output(&deployment.cli(&["--json", "keys", "rotate", "--force"]));
    let rotated_at = Instant::now();
    let mut expected: Vec<String> = rotated
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect();
    expected.sort();
    assert_ne!(expected, before);

    for index in 0..3 {
        let took = within(rotated_at, "rotated JWKS", async || {
            deployment.jwks_kids(index).await == expected
        })
        .await;
        eprintln!("rotated keys served at instance {index} after {took:?}");
    }
}
