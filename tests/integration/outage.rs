//! PostgreSQL stopped in the middle of a load run and started again: the
//! server responds with 503 (never another 5xx) while the database is down,
//! recovers without a restart, and leaves no half-written grant behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tessera::clients::{register, ClientMetadata, Registrar};
use tessera::config::{Config, RateLimit};
use tessera::resources::ResourceRequest;
use tessera::store;

use crate::authorize::{param, query, Browser, PASSWORD, VERIFIER};
use crate::harness::postgres::PgCluster;
use crate::harness::{TestApp, TestStore};
use crate::login::{add_user, fast_config};

const RESOURCE: &str = "https://api.test/";
/// Concurrent workers of each kind.
const WORKERS: usize = 3;
/// How long the database stays down.
const OUTAGE: Duration = Duration::from_secs(3);
/// The longest a request may wait for a database connection: the
/// PostgreSQL pool's acquire timeout (1 s) plus scheduling slack. A request
/// started while the database has been down for longer than this before
/// it comes back cannot succeed.
const ACQUIRE_LIMIT: Duration = Duration::from_millis(1500);
/// How long the run may take to recover after the database is back.
const RECOVERY_LIMIT: Duration = Duration::from_secs(15);

/// One completed request: what it was, its status, and when it started.
#[derive(Clone, Debug)]
struct Answer {
    request: &'static str,
    status: StatusCode,
    started: Instant,
    took: Duration,
}

/// Everything the workers saw, shared between them.
#[derive(Default)]
struct Log {
    answers: Vec<Answer>,
    /// Access tokens from 200 token responses, with the client that got them.
    tokens: Vec<(String, usize)>,
    /// Every code `/authorize` returned.
    codes: Vec<String>,
    /// Codes whose exchange returned 503, to be tried after recovery.
    pending: Vec<String>,
}

struct Run {
    app: TestApp,
    /// Credentials by index: 0 is the service client, 1 the relying party.
    clients: Vec<(String, String)>,
    relying_party: tessera::store::Client,
    cookies: Vec<String>,
    log: Mutex<Log>,
    stop: AtomicBool,
}

impl Run {
    fn record(&self, request: &'static str, status: StatusCode, started: Instant) {
        let answer = Answer {
            request,
            status,
            started,
            took: started.elapsed(),
        };
        self.log.lock().unwrap().answers.push(answer);
    }

    async fn token(&self, client: usize, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let (id, secret) = &self.clients[client];
        let response = self
            .app
            .client
            .post(self.app.url("/token"))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn introspect(&self, client: usize, token: &str) -> (StatusCode, Value) {
        let (id, secret) = &self.clients[client];
        let response = self
            .app
            .client
            .post(self.app.url("/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn exchange(&self, code: &str) -> (StatusCode, Value) {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "https://rp.test/cb"),
            ("code_verifier", VERIFIER),
        ];
        self.token(1, &form).await
    }

    async fn client_credentials_worker(&self) {
        let form = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
        while !self.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let (status, body) = self.token(0, &form).await;
            self.record("client_credentials", status, started);
            if status == StatusCode::OK {
                let token = body["access_token"].as_str().unwrap().to_owned();
                self.log.lock().unwrap().tokens.push((token, 0));
            }
        }
    }

    async fn code_worker(&self) {
        let mut browser = Browser::at(&self.app.url(""));
        browser.cookies = self.cookies.clone();
        let start = query(
            &self.relying_party,
            "&scope=openid%20offline_access&state=s",
        );
        while !self.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let page = browser.get(&start).await;
            self.record("authorize", page.status, started);
            let Some(code) = page.location.as_deref().and_then(|url| param(url, "code")) else {
                continue;
            };
            self.log.lock().unwrap().codes.push(code.clone());

            let started = Instant::now();
            let (status, body) = self.exchange(&code).await;
            self.record("authorization_code", status, started);
            let mut log = self.log.lock().unwrap();
            match status {
                StatusCode::OK => {
                    let token = body["access_token"].as_str().unwrap().to_owned();
                    log.tokens.push((token, 1));
                }
                StatusCode::SERVICE_UNAVAILABLE => log.pending.push(code),
                _ => {}
            }
        }
    }

    async fn readiness_worker(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let status = self.app.get("/readyz").await.status();
            self.record("readyz", status, started);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Counts the statuses of each kind of request started since `since`.
    fn summary_since(&self, since: Instant) -> String {
        let log = self.log.lock().unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for answer in log.answers.iter().filter(|answer| answer.started >= since) {
            *counts
                .entry((answer.request, answer.status.as_u16()))
                .or_insert(0) += 1;
        }
        format!("{counts:?}")
    }

    /// Returns whether every kind of request succeeded since `since`.
    fn recovered_since(&self, since: Instant) -> bool {
        let log = self.log.lock().unwrap();
        [
            "client_credentials",
            "authorize",
            "authorization_code",
            "readyz",
        ]
        .iter()
        .all(|request| {
            log.answers.iter().any(|answer| {
                answer.request == *request
                    && answer.started >= since
                    && (answer.status.is_success() || answer.status == StatusCode::FOUND)
            })
        })
    }
}

async fn setup(cluster: &PgCluster) -> Run {
    let url = cluster.admin_url();
    let store = store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let mut config: Config = fast_config();
    config.rate_limits.token = RateLimit::new(0.0, 1);
    config.rate_limits.introspect = RateLimit::new(0.0, 1);
    let test_store = TestStore {
        store,
        url,
        _folder: None,
    };
    let app = TestApp::spawn_with_config(test_store, config).await;
    let state = &app.state;
    let now = state.clock.now();

    let key = josekit::jwk::Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256).unwrap();
    let public = key.to_public_key().unwrap();
    let request = ResourceRequest {
        identifier: RESOURCE.to_owned(),
        name: "API".into(),
        scopes: vec!["api.read".into()],
        jwk: Some(serde_json::from_str(&public.to_string()).unwrap()),
        ..ResourceRequest::default()
    };
    let digester = &state.data_keys.digester;
    let key_sets = state.registry.key_sets();
    tessera::resources::create(state.store.as_ref(), digester, key_sets, &request, now)
        .await
        .unwrap();
    let metadata = ClientMetadata {
        client_name: Some("Batch job".into()),
        grant_types: Some(vec!["client_credentials".into()]),
        scope: Some("api.read".into()),
        ..ClientMetadata::default()
    };
    let service = register(
        state.store.as_ref(),
        digester,
        &metadata,
        Registrar::Administrator,
        now,
    )
    .await
    .unwrap();
    let service = (
        service.client.client_id.clone(),
        service.client_secret.unwrap().expose().to_owned(),
    );

    add_user(&app, "u1", PASSWORD).await;
    let metadata = ClientMetadata {
        client_name: Some("Relying Party".into()),
        redirect_uris: vec!["https://rp.test/cb".into()],
        scope: Some("openid offline_access".into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        first_party: true,
        ..ClientMetadata::default()
    };
    let registered = register(
        state.store.as_ref(),
        digester,
        &metadata,
        Registrar::Administrator,
        now,
    )
    .await
    .unwrap();
    let secret = registered.client_secret.unwrap().expose().to_owned();
    let relying_party = registered.client;
    let mut browser = Browser::new(&app);
    let page = browser
        .run(
            &query(&relying_party, "&scope=openid%20offline_access"),
            "u1",
            true,
        )
        .await;
    assert!(page.location.unwrap().starts_with("https://rp.test/cb"));
    Run {
        clients: vec![service, (relying_party.client_id.clone(), secret)],
        relying_party,
        cookies: browser.cookies.clone(),
        app,
        log: Mutex::new(Log::default()),
        stop: AtomicBool::new(false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_and_recovers() {
    let mut cluster = tokio::task::spawn_blocking(PgCluster::start)
        .await
        .unwrap()
        .unwrap();
    let run = Arc::new(setup(&cluster).await);
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let cc = Arc::clone(&run);
        workers.push(tokio::spawn(
            async move { cc.client_credentials_worker().await },
        ));
        let code = Arc::clone(&run);
        workers.push(tokio::spawn(async move { code.code_worker().await }));
    }
    let ready = Arc::clone(&run);
    workers.push(tokio::spawn(async move { ready.readiness_worker().await }));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopping = Instant::now();
    let mut cluster = tokio::task::spawn_blocking(move || {
        cluster.pause().unwrap();
        cluster
    })
    .await
    .unwrap();
    let stopped = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let starting = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.resume().unwrap();
        cluster
    })
    .await
    .unwrap();
    let restarted = Instant::now();
    while !run.recovered_since(restarted) {
        assert!(
            restarted.elapsed() < RECOVERY_LIMIT,
            "no recovery within {RECOVERY_LIMIT:?}: {}",
            run.summary_since(restarted)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered_after = restarted.elapsed();
    run.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let log = std::mem::take(&mut *run.log.lock().unwrap());
    report(&log.answers, stopping, stopped, starting, recovered_after);
    check_statuses(&log.answers, stopped, starting);
    check_grants(&run, &log).await;
    drop(cluster);
}

/// Prints what the run saw, for the test output.
fn report(
    answers: &[Answer],
    stopping: Instant,
    stopped: Instant,
    starting: Instant,
    recovered_after: Duration,
) {
    let first_503 = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::SERVICE_UNAVAILABLE)
        .map(|answer| answer.started)
        .min();
    let slowest_503 = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::SERVICE_UNAVAILABLE)
        .map(|answer| answer.took)
        .max();
    let count = |status: StatusCode| answers.iter().filter(|a| a.status == status).count();
    eprintln!(
        "{} requests: {} ok, {} 503; pg_ctl stop took {:?}; first 503 for a request \
         started {:?} after the stop began; database down for {:?}; every kind of request \
         succeeded again {recovered_after:?} after the restart; slowest 503 took {:?}",
        answers.len(),
        count(StatusCode::OK) + count(StatusCode::FOUND),
        count(StatusCode::SERVICE_UNAVAILABLE),
        stopped - stopping,
        first_503.map(|at| at.saturating_duration_since(stopping)),
        starting - stopped,
        slowest_503,
    );
}

/// Checks that every answer is a success or 503, that requests which
/// could not reach the database before it came back got 503, and that
/// those 503s came within the acquire timeout.
fn check_statuses(answers: &[Answer], stopped: Instant, starting: Instant) {
    for answer in answers {
        let expected = match answer.request {
            "authorize" => [StatusCode::FOUND, StatusCode::SERVICE_UNAVAILABLE],
            _ => [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE],
        };
        assert!(expected.contains(&answer.status), "{answer:?}");
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(
                answer.took < ACQUIRE_LIMIT + Duration::from_secs(1),
                "{answer:?}"
            );
        }
    }
    let hopeless = starting - ACQUIRE_LIMIT;
    for request in ["client_credentials", "authorize", "readyz"] {
        let down: Vec<&Answer> = answers
            .iter()
            .filter(|answer| {
                answer.request == request && answer.started >= stopped && answer.started < hopeless
            })
            .collect();
        assert!(!down.is_empty(), "no {request} request during the outage");
        for answer in down {
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
        }
    }
}

/// Checks every grant the run produced: each token response's access
/// token is recorded, each code interrupted by the outage is redeemable
/// once or `invalid_grant`, and no code is redeemable twice.
async fn check_grants(run: &Run, log: &Log) {
    for (token, client) in &log.tokens {
        let (status, body) = run.introspect(*client, token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["active"], true,
            "a token was returned without its record"
        );
    }
    let mut redeemed_late = 0;
    for code in &log.pending {
        let (status, body) = run.exchange(code).await;
        match status {
            StatusCode::OK => {
                redeemed_late += 1;
                let token = body["access_token"].as_str().unwrap();
                let (_, introspected) = run.introspect(1, token).await;
                assert_eq!(introspected["active"], true, "{introspected}");
            }
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("pending code returned {other}: {body}"),
        }
    }
    eprintln!(
        "{} codes, {} interrupted by the outage, {redeemed_late} of those redeemed afterwards",
        log.codes.len(),
        log.pending.len()
    );
    for code in &log.codes {
        let (status, body) = run.exchange(code).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "code redeemed twice: {body}"
        );
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
}
