//! Store conformance: every case runs against SQLite and PostgreSQL.
//!
//! A case is an async function taking a fresh, migrated [`TestStore`]; the
//! `conformance!` macro generates one test per backend for it.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use tessera::crypto::{DataKeyError, DataKeys, MasterKey};
use tessera::store::group_commit::AccessTokenWriter;
use tessera::store::{self, AccessTokenKey, AccessTokenRecord, StoreError, WrappedDataKey};

use crate::harness::TestStore;
use crate::key_store::{
    failed_key_change_writes_nothing, key_changes_update_and_delete, key_rows_round_trip,
    private_key_column_holds_no_key_material,
};

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = crate::harness::TestStore::new(crate::harness::Backend::Sqlite).await;
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = crate::harness::TestStore::new(crate::harness::Backend::Postgres).await;
                    super::$case(store).await;
                }
            )*
        }
    };
}

conformance!(
    ping_succeeds,
    pool_usage_counts_checked_out_connections,
    migrate_is_idempotent,
    schema_check_passes_after_migrate,
    schema_newer_than_binary_is_rejected,
    generation_starts_at_zero,
    generation_counts_bumps_per_topic,
    concurrent_bumps_are_all_counted,
    lease_goes_to_one_holder,
    lease_is_taken_over_after_expiry,
    lease_is_renewed_by_its_holder,
    released_lease_is_free,
    concurrent_lease_race_has_one_winner,
    data_key_insert_keeps_first,
    data_key_rewrap_replaces_rows,
    data_key_rewrap_of_unknown_purpose_fails,
    data_keys_are_shared_and_survive_rotation,
    wrong_master_key_is_rejected,
    access_token_record_round_trips,
    access_token_jti_is_unique,
    access_token_from_before_header_jti_is_found_by_digest,
    access_token_revoke_needs_owner,
    access_tokens_insert_as_one_batch,
    failed_access_token_batch_stores_nothing,
    group_commit_stores_concurrent_records,
    group_commit_fails_only_the_bad_record,
    grant_revocation_covers_its_tokens,
    prune_removes_only_expired_in_batches,
    assertion_jti_is_single_use_per_client,
    assertion_jti_race_has_one_winner,
    expired_assertion_jtis_are_pruned,
    maintenance_prunes_past_one_batch,
    key_rows_round_trip,
    key_changes_update_and_delete,
    failed_key_change_writes_nothing,
    private_key_column_holds_no_key_material,
    username_is_unique,
    failures_lock_at_threshold,
    session_round_trip,
    login_transaction_is_decided_and_taken_once,
    consent_is_saved_per_user_and_client,
    audit_events_are_listed_newest_first,
);

fn at(seconds: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

async fn ping_succeeds(test: TestStore) {
    test.store.ping().await.unwrap();
}

/// Opens the backend's own store type on the test database, so that the
/// test can check a connection out of the pool whose usage it reads.
async fn pool_usage_counts_checked_out_connections(test: TestStore) {
    if test.url.starts_with("sqlite:") {
        let store = store::SqliteStore::connect(&test.url).await.unwrap();
        check_pool_usage(&store, store.pool()).await;
    } else {
        let store = store::PostgresStore::connect(&test.url).await.unwrap();
        check_pool_usage(&store, store.pool()).await;
    }
}

async fn check_pool_usage<DB: sqlx::Database>(store: &dyn store::Store, pool: &sqlx::Pool<DB>) {
    store.ping().await.unwrap();
    // A connection goes back to the pool in a task of its own.
    let settled = wait_for_usage(store, |usage| usage.in_use == 0 && usage.idle >= 1).await;
    assert!(settled.max >= settled.idle, "{settled:?}");

    let checked_out = pool.acquire().await.unwrap();
    let usage = store.pool_usage();
    assert_eq!(usage.in_use, 1, "{usage:?}");
    assert_eq!(usage.max, settled.max, "{usage:?}");

    drop(checked_out);
    wait_for_usage(store, |usage| usage.in_use == 0).await;
}

/// Polls the pool usage for up to 5 seconds until `done` returns true.
async fn wait_for_usage(
    store: &dyn store::Store,
    done: impl Fn(&store::PoolUsage) -> bool,
) -> store::PoolUsage {
    for _ in 0..100 {
        let usage = store.pool_usage();
        if done(&usage) {
            return usage;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("pool usage never settled: {:?}", store.pool_usage());
}

async fn migrate_is_idempotent(test: TestStore) {
    test.store.migrate().await.unwrap();
    test.store.migrate().await.unwrap();
}

async fn schema_check_passes_after_migrate(test: TestStore) {
    test.store.check_schema().await.unwrap();
}

async fn schema_newer_than_binary_is_rejected(test: TestStore) {
    let insert = "INSERT INTO _sqlx_migrations \
        (version, description, success, checksum, execution_time) \
        VALUES (99999, 'from the future', TRUE, '', 0)";
    run_sql(&test.url, insert).await;

    let reopened = store::open(&test.url).await.unwrap();
    let check = reopened.check_schema().await.unwrap_err();
    assert!(
        matches!(check, StoreError::SchemaTooNew { found: 99999, .. }),
        "{check:?}"
    );
    let migrate = reopened.migrate().await.unwrap_err();
    assert!(
        matches!(migrate, StoreError::SchemaTooNew { found: 99999, .. }),
        "{migrate:?}"
    );
    assert!(migrate.to_string().contains("newer than this binary"));
}

async fn generation_starts_at_zero(test: TestStore) {
    assert_eq!(test.store.generation("clients").await.unwrap(), 0);
}

async fn generation_counts_bumps_per_topic(test: TestStore) {
    assert_eq!(test.store.bump_generation("clients").await.unwrap(), 1);
    assert_eq!(test.store.bump_generation("clients").await.unwrap(), 2);
    assert_eq!(test.store.bump_generation("keys").await.unwrap(), 1);
    assert_eq!(test.store.generation("clients").await.unwrap(), 2);
    assert_eq!(test.store.generation("keys").await.unwrap(), 1);
}

async fn concurrent_bumps_are_all_counted(test: TestStore) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&test.store);
            tokio::spawn(async move { store.bump_generation("race").await.unwrap() })
        })
        .collect();
    let mut values = Vec::new();
    for task in tasks {
        values.push(task.await.unwrap());
    }
    values.sort();
    assert_eq!(values, (1..=20).collect::<Vec<i64>>());
}

async fn lease_goes_to_one_holder(test: TestStore) {
    let store = &test.store;
    assert!(store
        .try_acquire_lease("rotate", "a", at(0), at(30))
        .await
        .unwrap());
    assert!(!store
        .try_acquire_lease("rotate", "b", at(10), at(40))
        .await
        .unwrap());
    assert!(store
        .try_acquire_lease("other", "b", at(10), at(40))
        .await
        .unwrap());
}

async fn lease_is_taken_over_after_expiry(test: TestStore) {
    let store = &test.store;
    assert!(store
        .try_acquire_lease("rotate", "a", at(0), at(30))
        .await
        .unwrap());
    assert!(!store
        .try_acquire_lease("rotate", "b", at(30), at(60))
        .await
        .unwrap());
    assert!(store
        .try_acquire_lease("rotate", "b", at(31), at(61))
        .await
        .unwrap());
    assert!(!store
        .try_acquire_lease("rotate", "a", at(32), at(62))
        .await
        .unwrap());
}

async fn lease_is_renewed_by_its_holder(test: TestStore) {
    let store = &test.store;
    assert!(store
        .try_acquire_lease("rotate", "a", at(0), at(30))
        .await
        .unwrap());
    assert!(store
        .try_acquire_lease("rotate", "a", at(20), at(50))
        .await
        .unwrap());
    // The renewal moved the expiry, so b still waits at 40.
    assert!(!store
        .try_acquire_lease("rotate", "b", at(40), at(70))
        .await
        .unwrap());
}

async fn released_lease_is_free(test: TestStore) {
    let store = &test.store;
    assert!(store
        .try_acquire_lease("rotate", "a", at(0), at(30))
        .await
        .unwrap());
    store.release_lease("rotate", "b").await.unwrap();
    assert!(!store
        .try_acquire_lease("rotate", "b", at(1), at(31))
        .await
        .unwrap());
    store.release_lease("rotate", "a").await.unwrap();
    assert!(store
        .try_acquire_lease("rotate", "b", at(2), at(32))
        .await
        .unwrap());
}

async fn concurrent_lease_race_has_one_winner(test: TestStore) {
    // Separate pools, as separate instances would have.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(store::open(&test.url).await.unwrap());
    }
    let tasks: Vec<_> = stores
        .into_iter()
        .enumerate()
        .flat_map(|(instance, store)| {
            (0..5).map(move |attempt| {
                let store = Arc::clone(&store);
                let holder = format!("instance-{instance}-{attempt}");
                tokio::spawn(async move {
                    store
                        .try_acquire_lease("rotate", &holder, at(0), at(0) + Duration::seconds(30))
                        .await
                        .unwrap()
                })
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

fn wrapped(purpose: &str, byte: u8) -> WrappedDataKey {
    WrappedDataKey {
        purpose: purpose.to_owned(),
        wrapped: vec![byte; 60],
        created_at: at(0),
    }
}

async fn data_key_insert_keeps_first(test: TestStore) {
    assert!(test
        .store
        .insert_data_key(&wrapped("digest", 1))
        .await
        .unwrap());
    assert!(!test
        .store
        .insert_data_key(&wrapped("digest", 2))
        .await
        .unwrap());
    let stored = test.store.data_keys().await.unwrap();
    assert_eq!(stored, vec![wrapped("digest", 1)]);
}

async fn data_key_rewrap_replaces_rows(test: TestStore) {
    test.store
        .insert_data_key(&wrapped("digest", 1))
        .await
        .unwrap();
    test.store
        .insert_data_key(&wrapped("sealing", 1))
        .await
        .unwrap();
    let new = [wrapped("digest", 3), wrapped("sealing", 4)];
    test.store.rewrap_data_keys(&new).await.unwrap();
    assert_eq!(test.store.data_keys().await.unwrap(), new.to_vec());
}

async fn data_key_rewrap_of_unknown_purpose_fails(test: TestStore) {
    test.store
        .insert_data_key(&wrapped("digest", 1))
        .await
        .unwrap();
    let new = [wrapped("digest", 3), wrapped("missing", 4)];
    let err = test.store.rewrap_data_keys(&new).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    // The transaction rolled back, so the first row is unchanged too.
    assert_eq!(
        test.store.data_keys().await.unwrap(),
        vec![wrapped("digest", 1)]
    );
}

async fn data_keys_are_shared_and_survive_rotation(test: TestStore) {
    let master = MasterKey::generate();
    let first = DataKeys::load_or_create(test.store.as_ref(), &master, at(0))
        .await
        .unwrap();
    let second = DataKeys::load_or_create(test.store.as_ref(), &master, at(1))
        .await
        .unwrap();
    let digest = first.digester.digest("client-secret");
    assert!(second.digester.verify("client-secret", &digest));
    let sealed = first.sealer.seal(b"private key", b"kid");

    let rotated = MasterKey::generate();
    let count = DataKeys::rewrap(test.store.as_ref(), &master, &rotated)
        .await
        .unwrap();
    assert_eq!(count, 2);
    let after = DataKeys::load_or_create(test.store.as_ref(), &rotated, at(2))
        .await
        .unwrap();
    assert!(after.digester.verify("client-secret", &digest));
    assert_eq!(
        after.sealer.open(&sealed, b"kid").unwrap().as_slice(),
        b"private key"
    );
    let old = DataKeys::load_or_create(test.store.as_ref(), &master, at(3)).await;
    assert!(matches!(old, Err(DataKeyError::WrongMasterKey)));
}

async fn wrong_master_key_is_rejected(test: TestStore) {
    DataKeys::load_or_create(test.store.as_ref(), &MasterKey::generate(), at(0))
        .await
        .unwrap();
    let before = test.store.data_keys().await.unwrap();
    let other = DataKeys::load_or_create(test.store.as_ref(), &MasterKey::generate(), at(1)).await;
    let err = other.unwrap_err();
    assert!(matches!(err, DataKeyError::WrongMasterKey), "{err:?}");
    assert!(err.to_string().contains("master-key rotate"));
    // Nothing was generated over the existing keys.
    assert_eq!(test.store.data_keys().await.unwrap(), before);
}

fn record(jti: &str, grant: Option<&str>, expires_in: i64) -> AccessTokenRecord {
    AccessTokenRecord {
        jti: jti.to_owned(),
        digest: format!("digest-{jti}"),
        client_id: "client-a".to_owned(),
        subject: "user-1".to_owned(),
        grant_id: grant.map(str::to_owned),
        grant_type: "client_credentials".to_owned(),
        audience: "https://api.example.com/".to_owned(),
        scope: "read write".to_owned(),
        issued_at: at(0),
        expires_at: at(expires_in),
        revoked_at: None,
    }
}

/// Builds the key of a record made by [`record`] or with its digest
/// convention.
pub(crate) fn token_key(jti: &str) -> AccessTokenKey {
    AccessTokenKey::new(jti, &format!("digest-{jti}"))
}

fn key_of(record: &AccessTokenRecord) -> AccessTokenKey {
    AccessTokenKey::new(&record.jti, &record.digest)
}

async fn access_token_record_round_trips(test: TestStore) {
    let stored = record("jti-1", Some("grant-1"), 600);
    test.store.insert_access_token(&stored).await.unwrap();
    let found = test
        .store
        .find_access_token(&token_key("jti-1"))
        .await
        .unwrap();
    assert_eq!(found, Some(stored.clone()));
    assert!(found.unwrap().is_active(at(599)));
    assert!(!stored.is_active(at(600)));
    let misses = [
        token_key("other"),
        // Another token's digest under this `jti`, as in a forged header.
        AccessTokenKey::new("jti-1", "digest-other"),
        // A token without a `jti` in its header finds only records made
        // before tokens carried one.
        AccessTokenKey {
            jti: None,
            digest: "digest-jti-1".to_owned(),
        },
    ];
    for key in misses {
        let found = test.store.find_access_token(&key).await.unwrap();
        assert_eq!(found, None, "{key:?}");
    }
}

async fn access_token_jti_is_unique(test: TestStore) {
    test.store
        .insert_access_token(&record("jti-1", None, 600))
        .await
        .unwrap();
    let mut clash = record("jti-2", None, 600);
    clash.jti = "jti-1".to_owned();
    assert!(test.store.insert_access_token(&clash).await.is_err());
}

/// Records of tokens without a `jti` in their JWE header, which the
/// migration marks and an older release inserts without the marking
/// column, are found, or revoked, by digest alone.
async fn access_token_from_before_header_jti_is_found_by_digest(test: TestStore) {
    for jti in ["1", "2"] {
        let stored = record(jti, None, 600);
        test.store.insert_access_token(&stored).await.unwrap();
    }
    let as_older_release = "INSERT INTO access_tokens (jti, digest, client_id, subject, \
        grant_id, grant_type, audience, scope, issued_at, expires_at, revoked_at) \
        SELECT 'old-' || jti, 'digest-old-' || jti, client_id, subject, grant_id, \
        grant_type, audience, scope, issued_at, expires_at, revoked_at FROM access_tokens";
    run_sql(&test.url, as_older_release).await;
    let by_digest = |jti: &str| AccessTokenKey {
        jti: None,
        digest: format!("digest-{jti}"),
    };

    let found = test.store.find_access_token(&by_digest("old-1")).await;
    assert_eq!(
        found.unwrap().map(|record| record.jti).as_deref(),
        Some("old-1")
    );
    let found = test.store.find_access_token(&token_key("old-1")).await;
    assert!(found.unwrap().is_some(), "a header jti finds it too");
    let found = test.store.find_access_token(&by_digest("1")).await;
    assert_eq!(found.unwrap(), None);

    let store = test.store.as_ref();
    let revoke = |key| async move {
        store
            .revoke_access_token(&key, "client-a", at(5))
            .await
            .unwrap()
    };
    assert!(!revoke(by_digest("1")).await);
    assert!(revoke(by_digest("old-2")).await);
    let old = test.store.find_access_token(&token_key("old-2")).await;
    assert_eq!(old.unwrap().unwrap().revoked_at, Some(at(5)));
    let new = test.store.find_access_token(&token_key("1")).await;
    assert_eq!(new.unwrap().unwrap().revoked_at, None);
}

async fn access_tokens_insert_as_one_batch(test: TestStore) {
    let mut records: Vec<AccessTokenRecord> = (0..40)
        .map(|n| record(&format!("jti-{n}"), None, 600))
        .collect();
    records[7].grant_id = Some("grant-7".to_owned());
    records[9].revoked_at = Some(at(30));
    test.store.insert_access_tokens(&records).await.unwrap();
    for stored in &records {
        let found = test.store.find_access_token(&key_of(stored)).await.unwrap();
        assert_eq!(found.as_ref(), Some(stored));
    }
}

async fn failed_access_token_batch_stores_nothing(test: TestStore) {
    let mut records: Vec<AccessTokenRecord> = (0..3)
        .map(|n| record(&format!("jti-{n}"), None, 600))
        .collect();
    records[2].jti = records[0].jti.clone();
    assert!(test.store.insert_access_tokens(&records).await.is_err());
    for jti in ["jti-0", "jti-1"] {
        let found = test.store.find_access_token(&token_key(jti)).await.unwrap();
        assert_eq!(found, None, "{jti} was stored by a failed batch");
    }
}

/// Sends records from many tasks at once, so the writer groups them.
async fn insert_concurrently(
    writer: &AccessTokenWriter,
    records: Vec<AccessTokenRecord>,
) -> Vec<Result<(), StoreError>> {
    let tasks: Vec<_> = records
        .into_iter()
        .map(|record| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.insert(record).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn group_commit_stores_concurrent_records(test: TestStore) {
    let writer = AccessTokenWriter::spawn(test.store.clone());
    let records: Vec<AccessTokenRecord> = (0..300)
        .map(|n| record(&format!("jti-{n}"), None, 600))
        .collect();
    let results = insert_concurrently(&writer, records.clone()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for stored in &records {
        let found = test.store.find_access_token(&key_of(stored)).await.unwrap();
        assert_eq!(found.as_ref(), Some(stored));
    }
}

/// Checks that a record whose `jti` is taken fails alone, and that the
/// records committed in the same group as it are stored all the same.
async fn group_commit_fails_only_the_bad_record(test: TestStore) {
    test.store
        .insert_access_token(&record("taken", None, 600))
        .await
        .unwrap();
    let writer = AccessTokenWriter::spawn(test.store.clone());
    let mut records: Vec<AccessTokenRecord> = (0..100)
        .map(|n| record(&format!("jti-{n}"), None, 600))
        .collect();
    records[50].jti = "taken".to_owned();
    let results = insert_concurrently(&writer, records.clone()).await;
    for (index, (stored, result)) in records.iter().zip(&results).enumerate() {
        if index == 50 {
            assert!(result.is_err(), "the duplicate jti was accepted");
            continue;
        }
        assert!(result.is_ok(), "record {index}: {result:?}");
        let found = test.store.find_access_token(&key_of(stored)).await.unwrap();
        assert_eq!(found.as_ref(), Some(stored));
    }
}

async fn access_token_revoke_needs_owner(test: TestStore) {
    test.store
        .insert_access_token(&record("jti-1", None, 600))
        .await
        .unwrap();
    let by_other = test
        .store
        .revoke_access_token(&token_key("jti-1"), "client-b", at(5))
        .await;
    assert!(!by_other.unwrap());
    let forged = AccessTokenKey::new("jti-1", "digest-other");
    let by_forged = test
        .store
        .revoke_access_token(&forged, "client-a", at(5))
        .await;
    assert!(!by_forged.unwrap());
    let found = test
        .store
        .find_access_token(&token_key("jti-1"))
        .await
        .unwrap()
        .unwrap();
    assert!(found.is_active(at(5)));

    let by_owner = test
        .store
        .revoke_access_token(&token_key("jti-1"), "client-a", at(6))
        .await;
    assert!(by_owner.unwrap());
    let found = test
        .store
        .find_access_token(&token_key("jti-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, Some(at(6)));
    assert!(!found.is_active(at(7)));
    let again = test
        .store
        .revoke_access_token(&token_key("jti-1"), "client-a", at(8))
        .await;
    assert!(!again.unwrap());
}

async fn grant_revocation_covers_its_tokens(test: TestStore) {
    for (jti, grant) in [
        ("a", Some("g1")),
        ("b", Some("g1")),
        ("c", Some("g2")),
        ("d", None),
    ] {
        test.store
            .insert_access_token(&record(jti, grant, 600))
            .await
            .unwrap();
    }
    assert_eq!(
        test.store
            .revoke_grant_access_tokens("g1", at(10))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        test.store
            .revoke_grant_access_tokens("g1", at(11))
            .await
            .unwrap(),
        0
    );
    for (jti, revoked) in [("a", true), ("b", true), ("c", false), ("d", false)] {
        let found = test.store.find_access_token(&token_key(jti)).await.unwrap();
        assert_eq!(found.unwrap().revoked_at.is_some(), revoked, "{jti}");
    }
}

async fn prune_removes_only_expired_in_batches(test: TestStore) {
    for index in 0..5 {
        let jti = format!("old-{index}");
        test.store
            .insert_access_token(&record(&jti, None, 60))
            .await
            .unwrap();
    }
    test.store
        .insert_access_token(&record("fresh", None, 6000))
        .await
        .unwrap();
    assert_eq!(test.store.prune_access_tokens(at(120), 3).await.unwrap(), 3);
    assert_eq!(test.store.prune_access_tokens(at(120), 3).await.unwrap(), 2);
    assert_eq!(test.store.prune_access_tokens(at(120), 3).await.unwrap(), 0);
    assert!(test
        .store
        .find_access_token(&token_key("fresh"))
        .await
        .unwrap()
        .is_some());
}

async fn assertion_jti_is_single_use_per_client(test: TestStore) {
    let store = &test.store;
    assert!(store
        .consume_assertion_jti("rp3", "j-1", at(60), at(0))
        .await
        .unwrap());
    assert!(!store
        .consume_assertion_jti("rp3", "j-1", at(60), at(1))
        .await
        .unwrap());
    // Another client's identical jti is its own.
    assert!(store
        .consume_assertion_jti("rp4", "j-1", at(60), at(2))
        .await
        .unwrap());
    // Once the stored entry expired, its assertion is dead anyway.
    assert!(store
        .consume_assertion_jti("rp3", "j-1", at(200), at(61))
        .await
        .unwrap());
}

async fn assertion_jti_race_has_one_winner(test: TestStore) {
    let mut stores = Vec::new();
    for _ in 0..2 {
        stores.push(store::open(&test.url).await.unwrap());
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|index| {
            let store = Arc::clone(&stores[index % 2]);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .consume_assertion_jti("rp3", "j-race", at(60), at(0))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
}

async fn expired_assertion_jtis_are_pruned(test: TestStore) {
    let store = &test.store;
    for index in 0..10 {
        let jti = format!("j-{index}");
        store
            .consume_assertion_jti("rp3", &jti, at(60), at(0))
            .await
            .unwrap();
    }
    store
        .consume_assertion_jti("rp3", "j-late", at(300), at(0))
        .await
        .unwrap();
    assert_eq!(store.prune_assertion_jtis(at(61)).await.unwrap(), 10);
    assert!(!store
        .consume_assertion_jti("rp3", "j-late", at(300), at(62))
        .await
        .unwrap());
}

async fn maintenance_prunes_past_one_batch(test: TestStore) {
    let batch = tessera::maintenance::PRUNE_BATCH as usize;
    for index in 0..batch + 5 {
        let jti = format!("old-{index}");
        test.store
            .insert_access_token(&record(&jti, None, 60))
            .await
            .unwrap();
    }
    test.store
        .insert_access_token(&record("fresh", None, 6000))
        .await
        .unwrap();
    test.store
        .consume_assertion_jti("rp3", "j-old", at(60), at(0))
        .await
        .unwrap();
    for (kind, seconds) in [
        ("login.failure", 0),
        ("login.success", 59),
        ("login.lockout", 61),
    ] {
        let event = tessera::store::AuditEvent::new(kind, at(seconds));
        test.store.record_audit_event(&event).await.unwrap();
    }
    let clock = tessera::clock::ManualClock::new(at(120));
    let retention = chrono::Duration::seconds(60);
    let deleted = tessera::maintenance::prune_expired(test.store.as_ref(), &clock, retention)
        .await
        .unwrap();
    assert_eq!(deleted, (batch + 5 + 1 + 2) as u64);
    let kept = test.store.recent_audit_events(10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].kind, "login.lockout");
    assert!(test
        .store
        .find_access_token(&token_key("fresh"))
        .await
        .unwrap()
        .is_some());
}

/// Runs raw SQL on the database behind `url`, bypassing the store.
async fn run_sql(url: &str, sql: &str) {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut connection).await.unwrap();
    } else {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut connection).await.unwrap();
    }
}

mod accounts;
pub mod clients;
mod grants;
fn user(username: &str) -> tessera::store::UserRecord {
    tessera::store::UserRecord {
        id: uuid::Uuid::new_v4(),
        username: username.to_owned(),
        email: Some(format!("{username}@example.test")),
        email_verified: false,
        given_name: Some("Given".into()),
        family_name: None,
        disabled: false,
        password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA".into(),
        failed_logins: 0,
        locked_until: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

async fn username_is_unique(test: TestStore) {
    let first = user("alice");
    test.store.insert_user(&first).await.unwrap();
    let err = test.store.insert_user(&user("alice")).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    let found = test.store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(found, first);
    assert_eq!(test.store.user_by_id(first.id).await.unwrap(), Some(first));
    assert!(test.store.user_by_username("bob").await.unwrap().is_none());
}

async fn failures_lock_at_threshold(test: TestStore) {
    use tessera::store::FailurePolicy;
    let account = user("dave");
    test.store.insert_user(&account).await.unwrap();
    let policy = |seconds| FailurePolicy {
        now: at(seconds),
        window_start: at(seconds - 60),
        threshold: 3,
        lock_until: at(seconds + 300),
    };
    let first = test
        .store
        .record_login_failure(account.id, policy(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.failed_logins, first.locked_now), (1, false));
    test.store
        .record_login_failure(account.id, policy(2))
        .await
        .unwrap();
    let third = test
        .store
        .record_login_failure(account.id, policy(3))
        .await
        .unwrap()
        .unwrap();
    assert!(third.locked_now);
    let stored = test.store.user_by_id(account.id).await.unwrap().unwrap();
    assert_eq!(stored.locked_until, Some(at(303)));

    // A failure after a quiet window starts the count again.
    let later = test
        .store
        .record_login_failure(account.id, policy(500))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((later.failed_logins, later.locked_now), (1, false));
    let missing = test
        .store
        .record_login_failure(uuid::Uuid::new_v4(), policy(1))
        .await;
    assert!(missing.unwrap().is_none());
}

async fn session_round_trip(test: TestStore) {
    let account = user("erin");
    test.store.insert_user(&account).await.unwrap();
    let session = tessera::store::SessionRecord {
        id_digest: "digest-1".into(),
        user_id: account.id,
        auth_time: at(10),
        amr: vec!["pwd".into()],
        created_at: at(10),
        last_seen_at: at(10),
        expires_at: at(1000),
    };
    test.store.insert_session(&session).await.unwrap();
    assert_eq!(
        test.store.session("digest-1").await.unwrap(),
        Some(session.clone())
    );
    test.store.touch_session("digest-1", at(50)).await.unwrap();
    let touched = test.store.session("digest-1").await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, at(50));
    let removed = test
        .store
        .delete_expired_sessions(at(100), at(40))
        .await
        .unwrap();
    assert_eq!(removed, 0);
    assert!(test.store.delete_session("digest-1").await.unwrap());
    assert!(test.store.session("digest-1").await.unwrap().is_none());
}

async fn login_transaction_is_decided_and_taken_once(test: TestStore) {
    use tessera::store::{LoginOutcome, LoginTransactionRecord};
    let account = user("gina");
    test.store.insert_user(&account).await.unwrap();
    let record = LoginTransactionRecord {
        id_digest: "tx-1".into(),
        client_id: "rp1".into(),
        client_name: "RP One".into(),
        first_party: false,
        scopes: vec!["openid".into(), "email".into()],
        login_hint: Some("gina@example.test".into()),
        prompt_consent: true,
        return_path: "/authorize/resume".into(),
        csrf_digest: None,
        created_at: at(0),
        expires_at: at(600),
        outcome: None,
    };
    test.store.insert_login_transaction(&record).await.unwrap();
    assert!(test
        .store
        .set_login_csrf("tx-1", "csrf", at(1))
        .await
        .unwrap());
    let loaded = test
        .store
        .login_transaction("tx-1", at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.csrf_digest.as_deref(), Some("csrf"));
    assert_eq!(loaded.login_hint.as_deref(), Some("gina@example.test"));
    assert!(loaded.prompt_consent);
    assert!(test
        .store
        .login_transaction("tx-1", at(600))
        .await
        .unwrap()
        .is_none());
    assert!(test
        .store
        .take_login_transaction("tx-1", at(2))
        .await
        .unwrap()
        .is_none());

    let outcome = LoginOutcome::Approved {
        user_id: account.id,
        auth_time: at(5),
        amr: vec!["pwd".into()],
        granted_scopes: vec!["openid".into()],
    };
    let deny = LoginOutcome::Denied {
        user_id: account.id,
    };
    let (first, second) = tokio::join!(
        test.store
            .complete_login_transaction("tx-1", &outcome, at(6)),
        test.store.complete_login_transaction("tx-1", &deny, at(6)),
    );
    assert!(
        first.unwrap() ^ second.unwrap(),
        "exactly one decision is recorded"
    );
    let taken = test
        .store
        .take_login_transaction("tx-1", at(7))
        .await
        .unwrap()
        .unwrap();
    assert!(taken.outcome.is_some());
    assert!(test
        .store
        .take_login_transaction("tx-1", at(7))
        .await
        .unwrap()
        .is_none());

    let expiring = LoginTransactionRecord {
        id_digest: "tx-2".into(),
        ..record
    };
    test.store
        .insert_login_transaction(&expiring)
        .await
        .unwrap();
    let early = test.store.delete_expired_login_transactions(at(599)).await;
    assert_eq!(early.unwrap(), 0);
    let due = test.store.delete_expired_login_transactions(at(600)).await;
    assert_eq!(due.unwrap(), 1);
}

async fn consent_is_saved_per_user_and_client(test: TestStore) {
    let account = user("hank");
    test.store.insert_user(&account).await.unwrap();
    assert!(test
        .store
        .consented_scopes(account.id, "rp1")
        .await
        .unwrap()
        .is_empty());
    let scopes = vec!["openid".to_owned(), "email".to_owned()];
    test.store
        .save_consent(account.id, "rp1", &scopes, at(1))
        .await
        .unwrap();
    test.store
        .save_consent(account.id, "rp1", &scopes[..1], at(2))
        .await
        .unwrap();
    assert_eq!(
        test.store
            .consented_scopes(account.id, "rp1")
            .await
            .unwrap(),
        ["openid"]
    );
    assert!(test
        .store
        .consented_scopes(account.id, "rp2")
        .await
        .unwrap()
        .is_empty());
}

async fn audit_events_are_listed_newest_first(test: TestStore) {
    use tessera::store::AuditEvent;
    for (index, kind) in ["login.failure", "login.lockout"].into_iter().enumerate() {
        let event = AuditEvent {
            time: at(index as i64),
            kind: kind.into(),
            subject: Some("user-1".into()),
            client_id: Some("rp1".into()),
            ip: Some("127.0.0.1".into()),
            request_id: Some(format!("req-{index}")),
            actor: Some("user:user-1".into()),
            detail: Some("scope openid".into()),
        };
        test.store.record_audit_event(&event).await.unwrap();
    }
    let events = test.store.recent_audit_events(10).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, ["login.lockout", "login.failure"]);
    assert_eq!(events[0].time, at(1));
    assert_eq!(events[0].request_id.as_deref(), Some("req-1"));
    assert_eq!(events[0].actor.as_deref(), Some("user:user-1"));
    assert_eq!(events[0].detail.as_deref(), Some("scope openid"));
}
