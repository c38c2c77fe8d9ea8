//! The HTTP server: probes, request ids, and readiness across an outage.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tessera::store;

use crate::harness::postgres::PgCluster;
use crate::harness::{Backend, TestApp, TestStore};

#[tokio::test]
async fn healthz_answers_ok_on_sqlite() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_answers_ok_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let response = app.get("/readyz").await;
        assert_eq!(response.status(), StatusCode::OK, "{backend:?}");
    }
}

#[tokio::test]
async fn response_carries_request_id() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let generated = app.get("/healthz").await;
    let id = generated.headers().get("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok());

    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");

    // An id that could forge log lines or fields is replaced.
    let long = "a".repeat(129);
    for crafted in ["x}: tessera::fake: FORGED", "a b", long.as_str()] {
        let replaced = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", crafted)
            .send()
            .await
            .unwrap();
        let id = replaced.headers()["x-request-id"].to_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "{crafted:?} became {id:?}"
        );
    }
    let repeated = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "one")
        .header("x-request-id", "two")
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = repeated.headers().get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1);
    assert!(uuid::Uuid::parse_str(ids[0].to_str().unwrap()).is_ok());
}

#[tokio::test]
async fn unknown_path_is_not_found() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(app.get("/nope").await.status(), StatusCode::NOT_FOUND);
}

/// `/readyz` follows the database down and back up without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_database_outage() {
    let mut cluster = tokio::task::spawn_blocking(PgCluster::start)
        .await
        .unwrap()
        .unwrap();
    let url = cluster.admin_url();
    let store = store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let app = TestApp::spawn_with(TestStore {
        store: Arc::clone(&store),
        url,
        _folder: None,
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    let mut cluster = tokio::task::spawn_blocking(move || {
        cluster.pause().unwrap();
        cluster
    })
    .await
    .unwrap();
    let down = app.get("/readyz").await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = down.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.resume().unwrap();
        cluster
    })
    .await
    .unwrap();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = app.get("/readyz").await.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
}

/// An issuer with a path mounts every protocol route under that path and
/// keeps the probes at the root.
#[tokio::test]
async fn issuer_path_prefixes_protocol_routes() {
    let config = tessera::config::Config {
        issuer: "http://127.0.0.1:8080/tenant-a".to_owned(),
        ..tessera::config::Config::default()
    };
    let store = TestStore::new(Backend::Sqlite).await;
    let app = TestApp::spawn_with_config(store, config).await;
    assert_eq!(app.get("/tenant-a/jwks").await.status(), StatusCode::OK);
    assert_eq!(app.get("/jwks").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let login = app.get("/tenant-a/login?tx=unknown").await.status();
    assert_ne!(login, StatusCode::NOT_FOUND);
}

#[test]
fn issuer_path_drops_trailing_slash() {
    use tessera::http::issuer_path;
    assert_eq!(issuer_path("https://id.example.com"), "");
    assert_eq!(issuer_path("https://id.example.com/tenant-a"), "/tenant-a");
    assert_eq!(issuer_path("https://id.example.com/a/b"), "/a/b");
}
