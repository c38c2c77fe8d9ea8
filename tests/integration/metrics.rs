//! `tessera serve --metrics-listen`: the real binary runs a scripted flow
//! over HTTP. The flow has client credentials, a bad client secret, failed
//! and successful logins, a code exchange, a refresh, a refresh token
//! reuse, a code replay and a key rotation. The test then parses the
//! Prometheus exposition of the metrics listener and checks that every
//! series moved by the expected amount.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::Jwk;
use prometheus_parse::{Scrape, Value};
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::authorize::{field, CHALLENGE, VERIFIER};
use crate::harness::process::{free_port, spawn, stop, tessera, wait_for};

const MASTER_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const RESOURCE: &str = "https://api.metrics.test";
const REDIRECT_URI: &str = "http://127.0.0.1/cb";
const PASSWORD: &str = "metrics-test-password";

/// Environment shared by every command: the master key, cheap argon2
/// parameters, no login delay, and a lockout after two failures.
fn environment(listen: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TESSERA_MASTER_KEY", MASTER_KEY.to_owned()),
        ("TESSERA_LISTEN", listen.to_owned()),
        ("TESSERA_ISSUER", format!("http://{listen}")),
        ("TESSERA_ARGON2__MEMORY_KIB", "64".to_owned()),
        ("TESSERA_ARGON2__ITERATIONS", "1".to_owned()),
        ("TESSERA_LOGIN__BASE_DELAY", "0s".to_owned()),
        ("TESSERA_LOGIN__LOCKOUT_THRESHOLD", "2".to_owned()),
    ]
}

/// Runs a command to completion with `input` on standard input, and
/// returns its standard output as JSON.
async fn run_json(
    folder: &Path,
    env: &[(&str, String)],
    args: &[&str],
    input: &str,
) -> serde_json::Value {
    use std::io::Write;
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let mut command = tessera(folder, args, &env);
    let input = input.to_owned();
    let output: Output = tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

/// The registered parties of the flow.
struct Setup {
    service_id: String,
    service_secret: String,
    web_id: String,
    web_secret: String,
}

async fn register(folder: &Path, env: &[(&str, String)]) -> Setup {
    run_json(folder, env, &["migrate"], "").await;
    for name in ["alice", "bob"] {
        let args = ["users", "create", "--username", name, "--password-stdin"];
        run_json(folder, env, &args, &format!("{PASSWORD}\n")).await;
    }

    let key = Jwk::generate_ec_key(EcCurve::P256).unwrap();
    let jwk = serde_json::Value::Object(key.to_public_key().unwrap().as_ref().clone());
    let jwk_file = folder.join("resource.jwk");
    std::fs::write(&jwk_file, jwk.to_string()).unwrap();
    let jwk_path = jwk_file.display().to_string();
    let args = [
        "--json",
        "resources",
        "create",
        "--identifier",
        RESOURCE,
        "--name",
        "Metrics API",
        "--jwk-file",
        &jwk_path,
        "--scope",
        "read",
    ];
    run_json(folder, env, &args, "").await;

    let args = [
        "--json",
        "clients",
        "create",
        "--name",
        "Metrics service",
        "--grant-type",
        "client_credentials",
        "--scope",
        "read",
        "--default-resource",
        RESOURCE,
    ];
    let service = run_json(folder, env, &args, "").await;
    let args = [
        "--json",
        "clients",
        "create",
        "--name",
        "Metrics web",
        "--redirect-uri",
        REDIRECT_URI,
        "--scope",
        "openid",
        "--scope",
        "offline_access",
        "--first-party",
    ];
    let web = run_json(folder, env, &args, "").await;
    let text = |value: &serde_json::Value, name: &str| value[name].as_str().unwrap().to_owned();
    Setup {
        service_id: text(&service, "client_id"),
        service_secret: text(&service, "client_secret"),
        web_id: text(&web, "client_id"),
        web_secret: text(&web, "client_secret"),
    }
}

/// A browser on the main listener: cookies kept, redirects not followed.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            client,
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    async fn absorb(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies
                .retain(|cookie| !cookie.starts_with(&format!("{name}=")));
            self.cookies.push(pair);
        }
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|value| value.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        Page {
            status,
            location,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookies.join("; "))
            .send()
            .await
            .unwrap();
        self.absorb(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookies.join("; "))
            .form(form)
            .send()
            .await
            .unwrap();
        self.absorb(response).await
    }

    /// Starts an authorization request and returns its login page.
    async fn login_page(&mut self, client_id: &str) -> Page {
        let start = format!(
            "/authorize?response_type=code&client_id={client_id}\
             &redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&scope=openid%20offline_access\
             &state=metrics-state&code_challenge={CHALLENGE}&code_challenge_method=S256"
        );
        let mut page = self.get(&start).await;
        while let Some(location) = page.location.clone() {
            page = self.get(&location).await;
        }
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page
    }

    /// Posts a login form on `page`.
    async fn log_in(&mut self, page: &Page, username: &str, password: &str) -> Page {
        let tx = field(&page.body, "tx");
        let csrf = field(&page.body, "csrf");
        let form = [
            ("tx", tx.as_str()),
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ];
        self.post("/login", &form).await
    }

    /// Follows redirects on Tessera until one leaves for the client, and
    /// returns the code it carries.
    async fn follow_to_code(&mut self, mut page: Page) -> String {
        for _ in 0..10 {
            let location = page.location.clone().expect("a redirect");
            if location.starts_with(REDIRECT_URI) {
                let url = url::Url::parse(&location).unwrap();
                let code = url.query_pairs().find(|(name, _)| name == "code");
                return code.expect("a code").1.into_owned();
            }
            page = self.get(&location).await;
        }
        panic!("too many redirects");
    }
}

/// Posts to `/token` with HTTP Basic client authentication.
async fn token(
    base: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Scrapes and parses the metrics listener.
async fn scrape(metrics: &str) -> (Scrape, String) {
    let response = reqwest::get(format!("{metrics}/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    (Scrape::parse(lines).unwrap(), text)
}

/// Returns the value of the sample `name` whose labels include `labels`,
/// `None` when there is none. Histograms give their `+Inf` bucket count.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matches = |sample: &&prometheus_parse::Sample| {
        sample.metric == name
            && labels
                .iter()
                .all(|(label, wanted)| sample.labels.get(label) == Some(*wanted))
    };
    let sample = scrape.samples.iter().find(matches)?;
    Some(match &sample.value {
        Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
        Value::Histogram(buckets) => buckets
            .iter()
            .find(|bucket| bucket.less_than.is_infinite())
            .map_or(0.0, |bucket| bucket.count),
        Value::Summary(_) => panic!("{name} is a summary, not a histogram"),
    })
}

fn type_of(scrape: &Scrape, name: &str) -> Option<&'static str> {
    scrape
        .samples
        .iter()
        .find(|sample| sample.metric == name)
        .map(|sample| match sample.value {
            Value::Counter(_) => "counter",
            Value::Gauge(_) => "gauge",
            Value::Histogram(_) => "histogram",
            Value::Summary(_) => "summary",
            Value::Untyped(_) => "untyped",
        })
}

/// Returns a counter's increase between two scrapes. A series missing
/// before counts from 0, and one missing after fails the test.
fn increase(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let end = value(after, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"));
    end - value(before, name, labels).unwrap_or(0.0)
}

/// Polls the metrics listener until `name` with `labels` reaches `target`,
/// for up to 15 seconds, and returns the last scrape.
async fn wait_for_value(metrics: &str, name: &str, labels: &[(&str, &str)], target: f64) -> Scrape {
    for _ in 0..150 {
        let (scrape, _) = scrape(metrics).await;
        if value(&scrape, name, labels).is_some_and(|value| value >= target) {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} {labels:?} never reached {target}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_flow_moves_every_series() {
    let folder = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let metrics_listen = format!("127.0.0.1:{}", free_port());
    let env = environment(&listen);
    let setup = register(folder.path(), &env).await;

    let env_refs: Vec<(&str, &str)> = env
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let server = spawn(
        folder.path(),
        &["serve", "--metrics-listen", &metrics_listen],
        &env_refs,
    );
    let base = format!("http://{listen}");
    let metrics = format!("http://{metrics_listen}");
    assert_eq!(wait_for(&format!("{base}/readyz")).await, Some(200));
    let (before, _) = scrape(&metrics).await;

    // Client credentials: two tokens, then a wrong secret.
    let client_credentials = [("grant_type", "client_credentials")];
    for _ in 0..2 {
        let (status, body) = token(
            &base,
            &setup.service_id,
            &setup.service_secret,
            &client_credentials,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = token(
        &base,
        &setup.service_id,
        "wrong-secret",
        &client_credentials,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Two wrong passwords lock alice out, then bob logs in.
    let mut browser = Browser::new(&base);
    let mut page = browser.login_page(&setup.web_id).await;
    for _ in 0..2 {
        page = browser.log_in(&page, "alice", "wrong-password").await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "a failed login shows the form again"
        );
    }
    let page = browser.login_page(&setup.web_id).await;
    let page = browser.log_in(&page, "bob", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let code = browser.follow_to_code(page).await;

    // Code exchange, refresh, reuse of the rotated refresh token, code replay.
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    let (status, tokens) = token(&base, &setup.web_id, &setup.web_secret, &exchange).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let (status, refreshed) = token(&base, &setup.web_id, &setup.web_secret, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (status, _) = token(&base, &setup.web_id, &setup.web_secret, &refresh).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "reuse of a rotated refresh token"
    );
    let (status, _) = token(&base, &setup.web_id, &setup.web_secret, &exchange).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "replay of a used code");

    // The main listener does not serve the metrics.
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A forced rotation of every signing algorithm, seen by the server
    // within its reload interval, once the first keys are 1.5 s old.
    let age_name = "tessera_signing_key_age_seconds";
    let age = |scrape: &Scrape, alg: &str| value(scrape, age_name, &[("alg", alg)]);
    wait_for_value(&metrics, age_name, &[("alg", "ES256")], 1.5).await;
    let rotation_started = std::time::Instant::now();
    run_json(
        folder.path(),
        &env,
        &["--json", "keys", "rotate", "--force"],
        "",
    )
    .await;
    let rotations =
        value(&before, "tessera_key_rotations_total", &[("alg", "RS256")]).unwrap_or(0.0);
    wait_for_value(
        &metrics,
        "tessera_key_rotations_total",
        &[("alg", "RS256")],
        rotations + 1.0,
    )
    .await;
    let (after, text) = scrape(&metrics).await;
    let since_rotation = rotation_started.elapsed().as_secs_f64();

    let http = "tessera_http_requests_total";
    let token_route =
        |status: &'static str| [("method", "POST"), ("route", "/token"), ("status", status)];
    assert_eq!(increase(&before, &after, http, &token_route("200")), 4.0);
    assert_eq!(increase(&before, &after, http, &token_route("401")), 1.0);
    assert_eq!(increase(&before, &after, http, &token_route("400")), 2.0);
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(increase(&before, &after, http, &unmatched), 1.0);
    let login_route = [("method", "POST"), ("route", "/login"), ("status", "200")];
    assert_eq!(increase(&before, &after, http, &login_route), 2.0);
    let durations = "tessera_http_request_duration_seconds";
    assert_eq!(type_of(&after, durations), Some("histogram"));
    assert_eq!(
        increase(&before, &after, durations, &token_route("200")),
        4.0
    );
    let count = format!("{durations}_count");
    assert_eq!(increase(&before, &after, &count, &token_route("200")), 4.0);

    let issued = "tessera_access_tokens_issued_total";
    let service = [("grant_type", "client_credentials"), ("audience", RESOURCE)];
    assert_eq!(increase(&before, &after, issued, &service), 2.0);
    let code_grant = [
        ("grant_type", "authorization_code"),
        ("audience", base.as_str()),
    ];
    assert_eq!(increase(&before, &after, issued, &code_grant), 1.0);
    let refresh_grant = [("grant_type", "refresh_token"), ("audience", base.as_str())];
    assert_eq!(increase(&before, &after, issued, &refresh_grant), 1.0);

    let logins = "tessera_login_attempts_total";
    assert_eq!(
        increase(&before, &after, logins, &[("result", "failure")]),
        2.0
    );
    assert_eq!(
        increase(&before, &after, logins, &[("result", "success")]),
        1.0
    );
    assert_eq!(
        increase(&before, &after, "tessera_login_lockouts_total", &[]),
        1.0
    );
    assert_eq!(
        increase(&before, &after, "tessera_refresh_token_reuses_total", &[]),
        1.0
    );
    assert_eq!(
        increase(
            &before,
            &after,
            "tessera_authorization_code_replays_total",
            &[]
        ),
        1.0
    );

    for alg in ["RS256", "ES256"] {
        let labels = [("alg", alg)];
        assert_eq!(
            increase(&before, &after, "tessera_key_rotations_total", &labels),
            1.0,
            "{alg}"
        );
    }
    let encryption = [("alg", "ECDH-ES+A256KW")];
    assert_eq!(
        increase(&before, &after, "tessera_key_rotations_total", &encryption),
        0.0
    );
    // Without the rotation the age would be at least 1.5 s more than the
    // time since the rotation started.
    let es256_age = age(&after, "ES256").expect("ES256 key age");
    assert!(es256_age >= 0.0, "{es256_age}");
    assert!(
        es256_age <= since_rotation + 0.25,
        "the rotation reset the age: {es256_age} > {since_rotation}"
    );
    assert!(age(&after, "RS256").is_some());

    let connections = "tessera_store_connections";
    assert_eq!(type_of(&after, connections), Some("gauge"));
    let in_use = value(&after, connections, &[("state", "in_use")]).expect("in-use connections");
    let idle = value(&after, connections, &[("state", "idle")]).expect("idle connections");
    assert!(in_use + idle >= 1.0, "in use {in_use}, idle {idle}");
    // SQLite: 8 shared connections and 1 for the access-token batches.
    assert_eq!(
        value(&after, "tessera_store_max_connections", &[]),
        Some(9.0)
    );

    // No label carries a secret, a code, a token or a user name.
    let secrets = [
        setup.service_secret.as_str(),
        setup.web_secret.as_str(),
        code.as_str(),
        refresh_token.as_str(),
        "alice",
        "bob",
        PASSWORD,
    ];
    for secret in secrets {
        assert!(!text.contains(secret), "the exposition contains {secret}");
    }
    assert!(after.docs.contains_key(http), "{:?}", after.docs.keys());

    let output = stop(server);
    assert!(output.status.success(), "{output:?}");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("metrics listening"), "{logs}");
    let after_stop = reqwest::get(format!("{metrics}/metrics")).await;
    assert!(
        after_stop.is_err(),
        "the metrics listener stopped with the server"
    );
}
