//! Prometheus metrics: the process-wide recorder, the name of every series
//! and the one-line helpers that the rest of Tessera calls.
//!
//! Names follow the Prometheus conventions: a `tessera_` prefix, `_total`
//! on counters and `_seconds` on durations. Label values come from small
//! fixed sets (route templates, status codes, grant types, algorithms,
//! registered resource identifiers), never from a token, code, user name
//! or secret. Until [`install`] runs, every helper is a no-op of the
//! `metrics` crate, so a server without `metrics_listen` pays almost
//! nothing for them.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::PoolUsage;

pub const HTTP_REQUESTS: &str = "tessera_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "tessera_http_request_duration_seconds";
pub const ACCESS_TOKENS_ISSUED: &str = "tessera_access_tokens_issued_total";
pub const LOGIN_ATTEMPTS: &str = "tessera_login_attempts_total";
pub const LOGIN_LOCKOUTS: &str = "tessera_login_lockouts_total";
pub const REFRESH_TOKEN_REUSES: &str = "tessera_refresh_token_reuses_total";
pub const AUTHORIZATION_CODE_REPLAYS: &str = "tessera_authorization_code_replays_total";
pub const KEY_ROTATIONS: &str = "tessera_key_rotations_total";
pub const SIGNING_KEY_AGE: &str = "tessera_signing_key_age_seconds";
pub const STORE_CONNECTIONS: &str = "tessera_store_connections";
pub const STORE_MAX_CONNECTIONS: &str = "tessera_store_max_connections";

/// Route label of requests that matched no route, so that scanners probing
/// random paths cannot create new series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Values of the `result` label of [`LOGIN_ATTEMPTS`].
pub const LOGIN_RESULTS: [&str; 5] = ["success", "failure", "invalid", "address_blocked", "busy"];

/// Upper bounds of the request latency buckets, in seconds: fine below
/// 10 ms, where token requests should finish, up to the 30 s request
/// timeout.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets between
/// scrapes, so that memory stays bounded when nothing scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder, once per process, and returns the
/// handle that renders it. Later calls return the same handle, which lets
/// tests start several servers in one process.
pub fn install() -> PrometheusHandle {
    HANDLE.get_or_init(build_and_install).clone()
}

fn build_and_install() -> PrometheusHandle {
    // Only an empty bucket list fails, and the list is a constant.
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION.into()),
            &LATENCY_BUCKETS,
        )
        .unwrap_or_else(|_| PrometheusBuilder::new());
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(error) = metrics::set_global_recorder(recorder) {
        tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
    }
    describe();

    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            upkeep.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; scrapes still fold samples");
    }
    handle
}

/// Registers the help text of every series, and starts the counters of
/// fixed label sets at zero, so that they are exported before their first
/// event and `rate()` counts that event.
fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from receiving a request to sending its response headers."
    );
    describe_counter!(
        ACCESS_TOKENS_ISSUED,
        "Access tokens issued, by grant type and audience."
    );
    describe_counter!(LOGIN_ATTEMPTS, "Password login attempts, by result.");
    describe_counter!(
        LOGIN_LOCKOUTS,
        "Accounts locked after repeated failed logins."
    );
    describe_counter!(
        REFRESH_TOKEN_REUSES,
        "Rotated refresh tokens presented again, each revoking its grant."
    );
    describe_counter!(
        AUTHORIZATION_CODE_REPLAYS,
        "Used authorization codes presented again, each revoking its grant."
    );
    describe_counter!(
        KEY_ROTATIONS,
        "New current keys this instance has seen, by algorithm."
    );
    describe_gauge!(
        SIGNING_KEY_AGE,
        metrics::Unit::Seconds,
        "Time since the current signing key of each algorithm started signing."
    );
    describe_gauge!(STORE_CONNECTIONS, "Database pool connections, by state.");
    describe_gauge!(STORE_MAX_CONNECTIONS, "Largest size of the database pool.");

    for result in LOGIN_RESULTS {
        counter!(LOGIN_ATTEMPTS, "result" => result).increment(0);
    }
    counter!(LOGIN_LOCKOUTS).increment(0);
    counter!(REFRESH_TOKEN_REUSES).increment(0);
    counter!(AUTHORIZATION_CODE_REPLAYS).increment(0);
}

/// Records one answered HTTP request. `route` is the matched route
/// template, `None` when no route matched.
pub fn http_request(method: &'static str, route: Option<&str>, status: u16, elapsed: Duration) {
    let route = route.unwrap_or(UNMATCHED_ROUTE).to_owned();
    let status = status.to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_REQUEST_DURATION, &labels).record(elapsed.as_secs_f64());
}

/// Records an issued access token. `audience` is a registered resource
/// identifier or the issuer.
pub fn access_token_issued(grant_type: &str, audience: &str) {
    counter!(
        ACCESS_TOKENS_ISSUED,
        "grant_type" => grant_type.to_owned(),
        "audience" => audience.to_owned(),
    )
    .increment(1);
}

/// Records a login attempt. `result` is one of [`LOGIN_RESULTS`].
pub fn login_attempt(result: &'static str) {
    counter!(LOGIN_ATTEMPTS, "result" => result).increment(1);
}

pub fn login_lockout() {
    counter!(LOGIN_LOCKOUTS).increment(1);
}

pub fn refresh_token_reuse() {
    counter!(REFRESH_TOKEN_REUSES).increment(1);
}

pub fn authorization_code_replay() {
    counter!(AUTHORIZATION_CODE_REPLAYS).increment(1);
}

/// Adds `count` key rotations of `alg`. A `count` of 0 only creates the
/// series.
pub fn key_rotations(alg: &'static str, count: u64) {
    counter!(KEY_ROTATIONS, "alg" => alg).increment(count);
}

pub fn signing_key_age(alg: &'static str, age: Duration) {
    gauge!(SIGNING_KEY_AGE, "alg" => alg).set(age.as_secs_f64());
}

pub fn store_pool(usage: PoolUsage) {
    gauge!(STORE_CONNECTIONS, "state" => "in_use").set(f64::from(usage.in_use));
    gauge!(STORE_CONNECTIONS, "state" => "idle").set(f64::from(usage.idle));
    gauge!(STORE_MAX_CONNECTIONS).set(f64::from(usage.max));
}
