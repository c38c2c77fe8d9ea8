//! Different operations on one user's grants at once, on both stores.
//!
//! User `u1` starts with 20 live grants across two confidential clients,
//! `rp1` and `rp2`. Then, for [`RUN`], these run side by side:
//!
//! - 10 workers refresh, each its own refresh-token chain, and start a new
//!   grant when theirs is revoked;
//! - 5 revoke random access and refresh tokens of `u1` at `/revoke`;
//! - 2 log in with the password and log out again (RP-initiated);
//! - 1 revokes every grant of `u1` through the store every 1.5 s, as the
//!   administrator's `grants revoke` and `consents revoke` do;
//! - 5 redeem freshly minted codes and 5 introspect random tokens;
//! - the session sweeper and the pruner of expired records run every
//!   second, which `tessera serve` does every minute.
//!
//! Operators of other servers saw lock-order deadlocks, "database is
//! locked" errors and lost revocations under this mix. Their replay runs
//! 60 s; 12 s per backend keeps the suite fast and still makes about 3,000
//! (PostgreSQL) to 5,000 (SQLite) requests on a 2-core machine.
//!
//! Every token request goes over HTTP with `client_secret_basic`, so the
//! statuses are the server's. Rate limits are off, because they would
//! return 429 before the store is reached. `rp2`'s access tokens live 3 s,
//! so the pruner deletes records while revocations update them.
//!
//! The test passes when no response is a 5xx (except 503 with
//! `Retry-After` from `/revoke`, whose retry then succeeds) and no request
//! exceeds `http.request_timeout`. No refresh, code exchange or
//! introspection that started after a revocation was confirmed may find
//! the grant alive. Once everything stops, the store, `/token` and
//! `/introspect` must agree on every token. The statuses and latencies per
//! operation go to standard error
//! (`cargo test --test integration contention -- --nocapture`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use tessera::clients::ClientMetadata;
use tessera::config::{Config, HumanDuration, RateLimit};
use tessera::store::{AuthorizationFilter, Client};
use tessera::tokens::access::record_key;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::authorize::{param, query, register_client, spawn_on, Browser, PASSWORD, VERIFIER};
use crate::harness::{Backend, TestApp};
use crate::login::{add_user, fast_config};

/// How long the workers run.
const RUN: Duration = Duration::from_secs(12);

/// How often the administrator revokes every grant of `u1`.
const ADMIN_INTERVAL: Duration = Duration::from_millis(1500);

/// How often the sweeper and the pruner run.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

const SCOPE: &str = "&scope=openid%20offline_access";
const REDIRECT_URI: &str = "https://rp.test/cb";
const POST_LOGOUT_URI: &str = "https://rp.test/bye";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_operations_on_one_user_sqlite() {
    mixed_operations_on_one_user(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_operations_on_one_user_postgres() {
    mixed_operations_on_one_user(Backend::Postgres).await;
}

/// A registered client and its secret.
struct Rp {
    client: Client,
    secret: String,
}

/// One token response: its tokens and the grant they belong to.
#[derive(Clone, Debug)]
struct Issued {
    rp: usize,
    access: String,
    refresh: Option<String>,
    grant: String,
}

/// A revocation the test saw confirmed: by a 200 from `/revoke` or by the
/// store call returning.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Revoked {
    Grant(String),
    AccessToken(String),
}

/// One HTTP request or store call and its outcome. `status` is 0 when no
/// response came back; store calls record 200 or 500.
struct Call {
    op: &'static str,
    status: u16,
    elapsed: Duration,
    retry_after: bool,
    body: String,
}

/// A token request or introspection that found a grant alive, and when it
/// started.
struct SawAlive {
    op: &'static str,
    grant: String,
    access_token: Option<String>,
    started: Instant,
}

/// What the workers share and record.
struct Shared {
    app: TestApp,
    http: reqwest::Client,
    rps: Vec<Rp>,
    user_id: Uuid,
    deadline: Instant,
    calls: Mutex<Vec<Call>>,
    issued: Mutex<Vec<Issued>>,
    /// Refresh tokens the test exchanged successfully, so rotated.
    rotated: Mutex<HashSet<String>>,
    /// Each confirmed revocation and when it was confirmed.
    revoked: Mutex<Vec<(Revoked, Instant)>>,
    alive: Mutex<Vec<SawAlive>>,
    /// 503 responses from `/revoke` whose retries all failed.
    unresolved_retries: Mutex<u32>,
}

impl Shared {
    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn record(&self, op: &'static str, status: u16, elapsed: Duration, retry: bool, body: &str) {
        self.calls.lock().unwrap().push(Call {
            op,
            status,
            elapsed,
            retry_after: retry,
            body: body.chars().take(300).collect(),
        });
    }

    fn confirm(&self, revoked: Revoked) {
        let now = Instant::now();
        self.revoked.lock().unwrap().push((revoked, now));
    }

    /// Picks one of the 60 newest token responses.
    fn pick(&self) -> Option<Issued> {
        let issued = self.issued.lock().unwrap();
        if issued.is_empty() {
            return None;
        }
        let recent = issued.len().min(60);
        let index = issued.len() - 1 - rand::random::<usize>() % recent;
        Some(issued[index].clone())
    }

    /// Sends a form to `path` as client `rp` with `client_secret_basic`
    /// and records the outcome under `op`.
    async fn post(
        &self,
        op: &'static str,
        path: &str,
        rp: usize,
        form: &[(&str, &str)],
    ) -> (u16, Option<u64>, String) {
        let rp = &self.rps[rp];
        let started = Instant::now();
        let sent = self
            .http
            .post(self.app.url(path))
            .basic_auth(&rp.client.client_id, Some(&rp.secret))
            .form(form)
            .send()
            .await;
        let (status, retry_after, body) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok()?.parse().ok());
                let body = response.text().await.unwrap_or_default();
                (status, retry_after, body)
            }
            Err(error) => (0, None, error.to_string()),
        };
        self.record(op, status, started.elapsed(), retry_after.is_some(), &body);
        (status, retry_after, body)
    }

    /// Records a successful token response and returns it.
    async fn issued(&self, rp: usize, body: &str) -> Issued {
        let tokens: Value = serde_json::from_str(body).unwrap();
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let state = &self.app.state;
        let key = record_key(&access, &state.data_keys.digester);
        let record = state.store.find_access_token(&key).await.unwrap();
        let issued = Issued {
            rp,
            access,
            refresh: tokens["refresh_token"].as_str().map(str::to_owned),
            grant: record.unwrap().grant_id.unwrap(),
        };
        self.issued.lock().unwrap().push(issued.clone());
        issued
    }

    /// Exchanges `code` of client `rp` at `/token` and returns the tokens
    /// and the ID token, or `None` on an error response.
    async fn redeem(&self, rp: usize, code: &str) -> Option<(Issued, String)> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ];
        let started = Instant::now();
        let (status, _, body) = self.post("code", "/token", rp, &form).await;
        if status != 200 {
            return None;
        }
        let id_token = serde_json::from_str::<Value>(&body).unwrap()["id_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let issued = self.issued(rp, &body).await;
        self.alive.lock().unwrap().push(SawAlive {
            op: "code",
            grant: issued.grant.clone(),
            access_token: None,
            started,
        });
        Some((issued, id_token))
    }

    /// Runs an authorization for client `rp` in `browser` (logging in when
    /// the browser has no session) and returns the code. The outcome is
    /// recorded under `op`: the status of the response that left Tessera.
    async fn authorize(
        &self,
        op: &'static str,
        browser: &mut Browser,
        rp: usize,
    ) -> Option<String> {
        let started = Instant::now();
        let page = browser
            .run(&query(&self.rps[rp].client, SCOPE), "u1", true)
            .await;
        let code = page
            .location
            .as_deref()
            .filter(|location| location.starts_with(REDIRECT_URI))
            .and_then(|location| param(location, "code"));
        let status = page.status.as_u16();
        let body = match &code {
            Some(_) => String::new(),
            None => format!("{:?} {}", page.location, page.body),
        };
        self.record(op, status, started.elapsed(), false, &body);
        code
    }

    /// Starts a grant for client `rp` through `browser` and returns its
    /// tokens.
    async fn new_grant(&self, browser: &mut Browser, rp: usize) -> Option<Issued> {
        let code = self.authorize("authorize", browser, rp).await?;
        Some(self.redeem(rp, &code).await?.0)
    }

    fn browser(&self) -> Browser {
        Browser {
            client: self.http.clone(),
            base: self.app.url(""),
            cookies: Vec::new(),
        }
    }
}

/// Registers a confidential client for the code flow with refresh tokens
/// and keeps its secret.
async fn add_rp(app: &TestApp, name: &str, access_token_ttl: Option<Duration>) -> Rp {
    let metadata = ClientMetadata {
        client_name: Some(name.into()),
        redirect_uris: vec![REDIRECT_URI.into()],
        post_logout_redirect_uris: vec![POST_LOGOUT_URI.into()],
        scope: Some("openid offline_access".into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        access_token_ttl,
        ..ClientMetadata::default()
    };
    let (client, secret) = register_client(app, metadata).await;
    assert!(!secret.is_empty(), "a confidential client gets a secret");
    Rp { secret, client }
}

fn config() -> Config {
    let mut config = fast_config();
    let off = RateLimit::new(0.0, 1);
    let limits = &mut config.rate_limits;
    for limit in [
        &mut limits.token,
        &mut limits.introspect,
        &mut limits.revoke,
        &mut limits.failed_client_auth,
        &mut limits.login,
    ] {
        *limit = off;
    }
    config.http.request_timeout = HumanDuration::from_secs(30);
    config
}

async fn mixed_operations_on_one_user(backend: Backend) {
    let app = spawn_on(backend, config()).await;
    let user = add_user(&app, "u1", PASSWORD).await;
    let rps = vec![
        add_rp(&app, "rp1", None).await,
        add_rp(&app, "rp2", Some(Duration::from_secs(3))).await,
    ];
    let timeout = app.state.config.http.request_timeout.as_duration();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout + Duration::from_secs(5))
        .build()
        .unwrap();
    let mut shared = Shared {
        app,
        http,
        rps,
        user_id: user.id,
        deadline: Instant::now(),
        calls: Mutex::default(),
        issued: Mutex::default(),
        rotated: Mutex::default(),
        revoked: Mutex::default(),
        alive: Mutex::default(),
        unresolved_retries: Mutex::default(),
    };

    // Twenty live grants, alternating between the clients.
    let mut browser = shared.browser();
    let mut chains = Vec::new();
    for index in 0..20 {
        let grant = shared.new_grant(&mut browser, index % 2).await;
        chains.push(grant.expect("setup grant"));
    }
    shared.calls.lock().unwrap().clear();
    shared.deadline = Instant::now() + RUN;
    let shared = Arc::new(shared);

    let mut workers = JoinSet::new();
    for chain in chains.into_iter().take(10) {
        workers.spawn(refresher(
            Arc::clone(&shared),
            chain,
            browser.cookies.clone(),
        ));
    }
    for _ in 0..5 {
        workers.spawn(revoker(Arc::clone(&shared)));
        workers.spawn(redeemer(Arc::clone(&shared)));
        workers.spawn(introspector(Arc::clone(&shared)));
    }
    for index in 0..2 {
        workers.spawn(logout_and_login(Arc::clone(&shared), index));
    }
    workers.spawn(administrator(Arc::clone(&shared)));
    workers.spawn(sweeper(Arc::clone(&shared)));
    while let Some(joined) = workers.join_next().await {
        joined.expect("worker finishes without panicking");
    }

    print_summary(backend, &shared);
    check_statuses(&shared, timeout);
    check_no_lost_revocation(&shared);
    check_final_state(&shared).await;
}

/// Refreshes one chain until the deadline; when its grant is revoked,
/// starts a new one through the browser's session.
async fn refresher(shared: Arc<Shared>, mut chain: Issued, cookies: Vec<String>) {
    let mut browser = shared.browser();
    browser.cookies = cookies;
    while shared.running() {
        let token = chain.refresh.clone().unwrap();
        let started = Instant::now();
        let form = [("grant_type", "refresh_token"), ("refresh_token", &token)];
        let (status, _, body) = shared.post("refresh", "/token", chain.rp, &form).await;
        if status == 200 {
            shared.rotated.lock().unwrap().insert(token);
            shared.alive.lock().unwrap().push(SawAlive {
                op: "refresh",
                grant: chain.grant.clone(),
                access_token: None,
                started,
            });
            chain = shared.issued(chain.rp, &body).await;
            continue;
        }
        // The grant is gone (or the request failed, which the checks
        // report): continue on a new grant of the same client.
        while shared.running() {
            if let Some(fresh) = shared.new_grant(&mut browser, chain.rp).await {
                chain = fresh;
                break;
            }
        }
    }
}

/// Revokes a random recent access or refresh token of `u1` every 100 ms
/// or so, retrying a 503 after its `Retry-After`.
async fn revoker(shared: Arc<Shared>) {
    while shared.running() {
        tokio::time::sleep(Duration::from_millis(50 + rand::random::<u64>() % 100)).await;
        let Some(issued) = shared.pick() else {
            continue;
        };
        let (token, revoked) = match (&issued.refresh, rand::random::<bool>()) {
            (Some(refresh), true) => (refresh.clone(), Revoked::Grant(issued.grant.clone())),
            _ => (
                issued.access.clone(),
                Revoked::AccessToken(issued.access.clone()),
            ),
        };
        let form = [("token", token.as_str())];
        let mut attempts = 0;
        loop {
            let (status, retry_after, _) = shared.post("revoke", "/revoke", issued.rp, &form).await;
            if status == 200 {
                shared.confirm(revoked);
                break;
            }
            attempts += 1;
            match retry_after {
                Some(seconds) if status == 503 && attempts < 5 => {
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                }
                _ => {
                    *shared.unresolved_retries.lock().unwrap() += u32::from(status == 503);
                    break;
                }
            }
        }
    }
}

/// Redeems freshly minted codes of `u1` for either client.
async fn redeemer(shared: Arc<Shared>) {
    let mut browser = shared.browser();
    while shared.running() {
        let rp = rand::random::<usize>() % 2;
        shared.new_grant(&mut browser, rp).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Introspects random recent access tokens as the client they were issued to.
async fn introspector(shared: Arc<Shared>) {
    while shared.running() {
        let Some(issued) = shared.pick() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let started = Instant::now();
        let form = [("token", issued.access.as_str())];
        let (status, _, body) = shared
            .post("introspect", "/introspect", issued.rp, &form)
            .await;
        if status == 200 && serde_json::from_str::<Value>(&body).unwrap()["active"] == true {
            shared.alive.lock().unwrap().push(SawAlive {
                op: "introspect",
                grant: issued.grant,
                access_token: Some(issued.access),
                started,
            });
        }
    }
}

/// Logs `u1` in with the password, logs out with the ID token as hint
/// (RP-initiated logout), and starts again with a fresh browser.
async fn logout_and_login(shared: Arc<Shared>, rp: usize) {
    while shared.running() {
        let mut browser = shared.browser();
        let Some(code) = shared.authorize("login", &mut browser, rp).await else {
            continue;
        };
        let Some((_, id_token)) = shared.redeem(rp, &code).await else {
            continue;
        };
        let started = Instant::now();
        let page = browser
            .get(&format!(
                "/logout?id_token_hint={id_token}&client_id={}&post_logout_redirect_uri={}",
                shared.rps[rp].client.client_id,
                url::form_urlencoded::byte_serialize(POST_LOGOUT_URI.as_bytes())
                    .collect::<String>()
            ))
            .await;
        let left = page.location.as_deref() == Some(POST_LOGOUT_URI);
        let body = if left { String::new() } else { page.body };
        shared.record(
            "logout",
            page.status.as_u16(),
            started.elapsed(),
            false,
            &body,
        );
    }
}

/// Revokes every grant of `u1` through the store, as `tessera grants
/// revoke` and `tessera consents revoke` do, every [`ADMIN_INTERVAL`].
async fn administrator(shared: Arc<Shared>) {
    let state = &shared.app.state;
    let filter = AuthorizationFilter::user(shared.user_id);
    while shared.running() {
        tokio::time::sleep(ADMIN_INTERVAL).await;
        let started = Instant::now();
        let revoked = state.store.revoke_grants(&filter, state.clock.now()).await;
        let elapsed = started.elapsed();
        match revoked {
            Ok(ids) => {
                shared.record("admin", 200, elapsed, false, "");
                for id in ids {
                    shared.confirm(Revoked::Grant(id));
                }
            }
            Err(error) => shared.record("admin", 500, elapsed, false, &format!("{error:?}")),
        }
    }
}

/// Runs what `tessera serve` runs in the background, the session and login
/// transaction sweeper and the pruner of expired records, every second.
async fn sweeper(shared: Arc<Shared>) {
    let state = &shared.app.state;
    let retention = state.config.audit.retention.as_chrono();
    while shared.running() {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        let now = state.clock.now();
        let idle_before = now - state.config.login.session_idle_timeout.as_chrono();
        let started = Instant::now();
        let results = [
            state.store.delete_expired_sessions(now, idle_before).await,
            state.store.delete_expired_login_transactions(now).await,
            tessera::maintenance::prune_expired(
                state.store.as_ref(),
                state.clock.as_ref(),
                retention,
            )
            .await,
        ];
        let elapsed = started.elapsed();
        for result in results {
            match result {
                Ok(_) => shared.record("sweep", 200, elapsed, false, ""),
                Err(error) => shared.record("sweep", 500, elapsed, false, &format!("{error:?}")),
            }
        }
    }
}

/// Prints the count of each status, the p99 and the maximum latency per
/// operation.
fn print_summary(backend: Backend, shared: &Shared) {
    let calls = shared.calls.lock().unwrap();
    let mut by_op: BTreeMap<&str, (BTreeMap<u16, u32>, Vec<Duration>)> = BTreeMap::new();
    for call in calls.iter() {
        let entry = by_op.entry(call.op).or_default();
        *entry.0.entry(call.status).or_default() += 1;
        entry.1.push(call.elapsed);
    }
    eprintln!(
        "contention on {backend:?}, {} calls in {RUN:?}:",
        calls.len()
    );
    for (op, (statuses, mut latencies)) in by_op {
        latencies.sort();
        let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
        let max = latencies[latencies.len() - 1];
        eprintln!("  {op:<10} {statuses:?} p99 {p99:?} max {max:?}");
    }
}

/// Asserts that every call got an expected status within the timeout.
fn check_statuses(shared: &Shared, timeout: Duration) {
    let calls = shared.calls.lock().unwrap();
    let bodies = |keep: &dyn Fn(&Call) -> bool| -> (usize, Vec<String>) {
        let matching: Vec<&Call> = calls.iter().filter(|call| keep(call)).collect();
        let samples = matching
            .iter()
            .take(5)
            .map(|call| format!("{} {} {}", call.op, call.status, call.body))
            .collect();
        (matching.len(), samples)
    };

    let (count, samples) = bodies(&|call| call.status == 0);
    assert_eq!(count, 0, "requests without a response: {samples:?}");
    let (count, samples) = bodies(&|call| call.status == 408 || call.elapsed >= timeout);
    assert_eq!(count, 0, "requests over http.request_timeout: {samples:?}");
    let (count, samples) = bodies(&|call| {
        call.status >= 500 && !(call.op == "revoke" && call.status == 503 && call.retry_after)
    });
    assert_eq!(count, 0, "5xx responses or failed store calls: {samples:?}");
    let (count, samples) = bodies(&|call| call.op == "revoke" && call.status == 503);
    let unresolved = *shared.unresolved_retries.lock().unwrap();
    assert_eq!(
        unresolved, 0,
        "503s from /revoke whose retries failed ({count} 503s): {samples:?}"
    );

    let (count, samples) = bodies(&|call| {
        matches!(call.op, "refresh" | "code")
            && call.status != 200
            && !(call.status == 400 && call.body.contains("\"invalid_grant\""))
    });
    assert_eq!(
        count, 0,
        "token responses other than 200 or invalid_grant: {samples:?}"
    );
    let (count, samples) = bodies(&|call| call.op == "introspect" && call.status != 200);
    assert_eq!(
        count, 0,
        "introspection responses other than 200: {samples:?}"
    );
    let (count, samples) = bodies(&|call| call.op == "revoke" && call.status / 100 == 4);
    assert_eq!(count, 0, "revocation responses with 4xx: {samples:?}");
    let (count, samples) = bodies(&|call| {
        matches!(call.op, "authorize" | "login" | "logout") && !call.body.is_empty()
    });
    assert_eq!(
        count, 0,
        "browser steps that did not return to the client: {samples:?}"
    );
}

/// Asserts that no refresh and no introspection that started after a
/// revocation was confirmed found the revoked grant or token alive.
fn check_no_lost_revocation(shared: &Shared) {
    let mut confirmed: HashMap<Revoked, Instant> = HashMap::new();
    for (revoked, at) in shared.revoked.lock().unwrap().iter() {
        let earliest = confirmed.entry(revoked.clone()).or_insert(*at);
        *earliest = (*earliest).min(*at);
    }
    let alive = shared.alive.lock().unwrap();
    let revoked_before =
        |key: Revoked, started: Instant| confirmed.get(&key).is_some_and(|at| *at < started);
    let lost: Vec<&SawAlive> = alive
        .iter()
        .filter(|seen| revoked_before(Revoked::Grant(seen.grant.clone()), seen.started))
        .collect();
    let lost_count = |op: &str| lost.iter().filter(|seen| seen.op == op).count();
    let lost_tokens = alive
        .iter()
        .filter_map(|seen| Some((seen.access_token.clone()?, seen.started)))
        .filter(|(token, started)| revoked_before(Revoked::AccessToken(token.clone()), *started))
        .count();
    for (op, what) in [
        ("refresh", "refreshes that succeeded"),
        ("code", "code exchanges that succeeded"),
        ("introspect", "access tokens that introspected active"),
    ] {
        assert_eq!(
            lost_count(op),
            0,
            "{what} after their grant's revocation was confirmed ({} revocations confirmed)",
            confirmed.len()
        );
    }
    assert_eq!(
        lost_tokens, 0,
        "active introspections after the token's revocation was confirmed"
    );
}

/// With every worker stopped, asserts that the store, `/token` and
/// `/introspect` agree on every token issued during the run.
async fn check_final_state(shared: &Shared) {
    let state = &shared.app.state;
    let store = state.store.as_ref();
    let now = state.clock.now();
    let issued = shared.issued.lock().unwrap().clone();
    let rotated = shared.rotated.lock().unwrap().clone();
    let revoked_tokens: HashSet<String> = shared
        .revoked
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(revoked, _)| match revoked {
            Revoked::AccessToken(token) => Some(token.clone()),
            Revoked::Grant(_) => None,
        })
        .collect();
    let mut grant_revoked: HashMap<String, bool> = HashMap::new();
    for grant in issued.iter().map(|issued| &issued.grant) {
        if !grant_revoked.contains_key(grant) {
            let record = store.grant(grant).await.unwrap().unwrap();
            grant_revoked.insert(grant.clone(), record.revoked_at.is_some());
        }
    }

    // A refresh token the store would still rotate belongs to a live grant.
    let mut usable_of_revoked = Vec::new();
    for entry in &issued {
        let Some(refresh) = &entry.refresh else {
            continue;
        };
        let digest = state.data_keys.digester.digest(refresh);
        let client_id = &shared.rps[entry.rp].client.client_id;
        let record = store.refresh_token(&digest, client_id, now).await.unwrap();
        let unrotated = record.is_some_and(|record| record.rotated_at.is_none());
        if unrotated && grant_revoked[&entry.grant] {
            usable_of_revoked.push(entry.grant.clone());
        }
    }
    assert!(
        usable_of_revoked.is_empty(),
        "{} unrotated refresh tokens of revoked grants are stored: {usable_of_revoked:?}",
        usable_of_revoked.len()
    );

    // No access token of a revoked grant, or revoked itself, is active.
    let mut active_of_revoked = 0;
    let mut active_revoked_tokens = 0;
    for entry in &issued {
        let form = [("token", entry.access.as_str())];
        let (status, _, body) = shared.post("final", "/introspect", entry.rp, &form).await;
        assert_eq!(status, 200, "final introspection: {body}");
        let active = serde_json::from_str::<Value>(&body).unwrap()["active"] == true;
        active_of_revoked += usize::from(active && grant_revoked[&entry.grant]);
        active_revoked_tokens += usize::from(active && revoked_tokens.contains(&entry.access));
    }
    assert_eq!(
        active_of_revoked,
        0,
        "access tokens of revoked grants introspect active ({} tokens issued)",
        issued.len()
    );
    assert_eq!(
        active_revoked_tokens, 0,
        "access tokens revoked at /revoke introspect active"
    );

    // Every unrotated refresh token refreshes exactly when its grant is
    // live, and the new access token introspects active.
    let mut disagreements = Vec::new();
    for entry in &issued {
        let Some(refresh) = entry.refresh.as_deref() else {
            continue;
        };
        if rotated.contains(refresh) {
            continue;
        }
        let live = !grant_revoked[&entry.grant];
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
        let (status, _, body) = shared.post("final", "/token", entry.rp, &form).await;
        let refreshed = status == 200;
        if refreshed != live {
            disagreements.push(format!("grant live {live}, refresh {status} {body}"));
            continue;
        }
        if !refreshed {
            continue;
        }
        let fresh = shared.issued(entry.rp, &body).await;
        let form = [("token", fresh.access.as_str())];
        let (_, _, body) = shared.post("final", "/introspect", entry.rp, &form).await;
        let active = serde_json::from_str::<Value>(&body).unwrap()["active"] == true;
        // `rp2`'s tokens may expire before the introspection on a slow run.
        let key = record_key(&fresh.access, &state.data_keys.digester);
        let record = store.find_access_token(&key).await.unwrap();
        let unexpired = record.is_some_and(|record| state.clock.now() < record.expires_at);
        if !active && unexpired {
            disagreements.push(format!("refreshed, but introspection says {body}"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} unrotated refresh tokens where /token, /introspect and the grant disagree: {:?}",
        disagreements.len(),
        &disagreements[..disagreements.len().min(5)]
    );
}
