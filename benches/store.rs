//! Code and refresh-token redemption against the store: the atomic
//! consume or rotate statement of each grant, and the access-token record
//! every token request writes. SQLite always; PostgreSQL too when
//! `BENCH_DATABASE_URL` names a database the bench may fill.
//!
//! `cargo bench --bench store`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use tessera::store::{
    self, AccessTokenRecord, AuthorizationCodeRecord, CodeConsumption, GrantRecord,
    RefreshRotation, RefreshTokenRecord, Store,
};

/// Source of unique digests across iterations and runs.
static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

fn grant(id: &str) -> GrantRecord {
    let now = Utc::now();
    GrantRecord {
        id: id.to_owned(),
        client_id: "bench-client".into(),
        user_id: uuid::Uuid::new_v4(),
        scopes: vec!["openid".into(), "offline_access".into()],
        resource: None,
        auth_time: now,
        amr: vec!["pwd".into()],
        sid: "sid".into(),
        created_at: now,
        expires_at: now + Duration::days(1),
        revoked_at: None,
    }
}

/// Inserts a grant with one code and one refresh token; returns their
/// digests.
async fn seed(store: &dyn Store) -> (String, String) {
    let grant_id = unique("grant");
    store.insert_grant(&grant(&grant_id)).await.unwrap();
    let now = Utc::now();
    let code = AuthorizationCodeRecord {
        digest: unique("code"),
        grant_id: grant_id.clone(),
        client_id: "bench-client".into(),
        redirect_uri: "https://rp.example/cb".into(),
        code_challenge: Some("challenge".into()),
        nonce: None,
        expires_at: now + Duration::minutes(1),
        consumed_at: None,
    };
    store.insert_authorization_code(&code).await.unwrap();
    let refresh = RefreshTokenRecord {
        digest: unique("refresh"),
        grant_id,
        client_id: "bench-client".into(),
        issued_at: now,
        expires_at: now + Duration::days(1),
        rotated_at: None,
    };
    store.insert_refresh_token(&refresh).await.unwrap();
    (code.digest, refresh.digest)
}

fn access_token() -> AccessTokenRecord {
    let now = Utc::now();
    // Time-ordered, as the server's (`AccessTokenClaims::new`).
    let jti = uuid::Uuid::now_v7().to_string();
    AccessTokenRecord {
        digest: format!("digest-{jti}"),
        jti,
        client_id: "bench-client".into(),
        subject: "bench-client".into(),
        grant_id: None,
        grant_type: "client_credentials".into(),
        audience: "https://api.example.com/".into(),
        scope: "read".into(),
        issued_at: now,
        expires_at: now + Duration::minutes(10),
        revoked_at: None,
    }
}

fn bench_backend(c: &mut Criterion, runtime: &tokio::runtime::Runtime, name: &str, url: &str) {
    let store: Arc<dyn Store> = runtime.block_on(async {
        let store = store::open(url).await.unwrap();
        store.migrate().await.unwrap();
        store
    });
    let mut group = c.benchmark_group(format!("store/{name}"));
    // Seeding is left out of the measured time: `iter_custom` times only
    // the loop over the statements under test.
    group.bench_function("consume_code", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let store = Arc::clone(&store);
            async move {
                let mut codes = Vec::new();
                for _ in 0..iters {
                    codes.push(seed(store.as_ref()).await.0);
                }
                let started = Instant::now();
                for digest in codes {
                    let now = Utc::now();
                    let consumed = store.consume_authorization_code(&digest, "bench-client", now);
                    assert!(matches!(
                        consumed.await.unwrap(),
                        CodeConsumption::Consumed(_)
                    ));
                }
                started.elapsed()
            }
        })
    });
    group.bench_function("rotate_refresh_token", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let store = Arc::clone(&store);
            async move {
                let mut tokens = Vec::new();
                for _ in 0..iters {
                    tokens.push(seed(store.as_ref()).await.1);
                }
                let started = Instant::now();
                for digest in tokens {
                    let now = Utc::now();
                    let rotated = store.rotate_refresh_token(&digest, "bench-client", now);
                    assert!(matches!(
                        rotated.await.unwrap(),
                        RefreshRotation::Rotated(_)
                    ));
                }
                started.elapsed()
            }
        })
    });
    group.bench_function("insert_access_token", |b| {
        b.to_async(runtime).iter(|| {
            let store = Arc::clone(&store);
            async move { store.insert_access_token(&access_token()).await.unwrap() }
        })
    });
    group.finish();
    runtime.block_on(store.close());
}

fn redemption(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/bench.db", folder.path().display());
    bench_backend(c, &runtime, "sqlite", &sqlite);
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        bench_backend(c, &runtime, "postgres", &url);
    }
}

criterion_group!(benches, redemption);
criterion_main!(benches);
