//! Store conformance for grants, pending authorizations, authorization
//! codes and refresh tokens, on both backends.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tessera::store::{
    AccessTokenKey, AccessTokenRecord, AuthorizationCodeRecord, AuthorizationFilter,
    CodeConsumption, GrantRecord, PendingAuthorization, RefreshRotation, RefreshTokenRecord,
};

use super::token_key;
use crate::harness::TestStore;

conformance!(
    grant_round_trips,
    pending_authorization_expires_and_deletes,
    code_is_consumed_once_by_its_client,
    code_race_has_one_winner,
    refresh_token_rotates_once_by_its_client,
    code_and_refresh_lookups_change_nothing,
    grant_revocation_removes_refresh_and_access_tokens,
    client_deletion_removes_its_grants,
    live_grants_filter_by_user_and_client,
    grants_revoked_by_filter_take_their_tokens,
    client_access_tokens_are_revoked_together,
    access_token_recorded_after_revocation_reads_revoked,
    refresh_token_inserted_during_revocation_is_not_left,
);

fn at(seconds: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn grant(id: &str) -> GrantRecord {
    GrantRecord {
        id: id.to_owned(),
        client_id: "rp1".into(),
        user_id: uuid::Uuid::new_v4(),
        scopes: vec!["openid".into(), "offline_access".into()],
        resource: Some("https://rs1.test/".into()),
        auth_time: at(-5),
        amr: vec!["pwd".into()],
        sid: "sid-1".into(),
        created_at: at(0),
        expires_at: at(86_400),
        revoked_at: None,
    }
}

fn code(digest: &str, grant_id: &str) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        digest: digest.to_owned(),
        grant_id: grant_id.to_owned(),
        client_id: "rp1".into(),
        redirect_uri: "https://rp.test/cb".into(),
        code_challenge: Some("challenge".into()),
        nonce: Some("n-1".into()),
        expires_at: at(60),
        consumed_at: None,
    }
}

fn refresh_token(digest: &str, grant_id: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        digest: digest.to_owned(),
        grant_id: grant_id.to_owned(),
        client_id: "rp1".into(),
        issued_at: at(0),
        expires_at: at(3600),
        rotated_at: None,
    }
}

async fn grant_round_trips(test: TestStore) {
    let store = test.store;
    let mut second = grant("g2");
    second.resource = None;
    second.amr = Vec::new();
    for record in [grant("g1"), second] {
        store.insert_grant(&record).await.unwrap();
        assert_eq!(store.grant(&record.id).await.unwrap(), Some(record));
    }
    assert_eq!(store.grant("unknown").await.unwrap(), None);
}

async fn pending_authorization_expires_and_deletes(test: TestStore) {
    let store = test.store;
    let pending = PendingAuthorization {
        id_digest: "p1".into(),
        tx_digest: "t1".into(),
        client_id: "rp1".into(),
        request: "{}".into(),
        expires_at: at(600),
    };
    store.insert_pending_authorization(&pending).await.unwrap();
    assert_eq!(
        store.pending_authorization("p1", at(0)).await.unwrap(),
        Some(pending)
    );
    assert_eq!(
        store.pending_authorization("p1", at(600)).await.unwrap(),
        None
    );
    assert!(store.delete_pending_authorization("p1").await.unwrap());
    assert!(!store.delete_pending_authorization("p1").await.unwrap());
}

async fn code_is_consumed_once_by_its_client(test: TestStore) {
    let store = test.store;
    store.insert_grant(&grant("g1")).await.unwrap();
    store
        .insert_authorization_code(&code("c1", "g1"))
        .await
        .unwrap();

    // Another client consumes nothing and is no replay.
    let other = store
        .consume_authorization_code("c1", "rp2", at(1))
        .await
        .unwrap();
    assert_eq!(other, CodeConsumption::Unknown);

    let first = store
        .consume_authorization_code("c1", "rp1", at(1))
        .await
        .unwrap();
    let CodeConsumption::Consumed(record) = first else {
        panic!("expected the code, got {first:?}");
    };
    assert_eq!(record.consumed_at, Some(at(1)));
    assert_eq!(record.nonce.as_deref(), Some("n-1"));
    let second = store
        .consume_authorization_code("c1", "rp1", at(2))
        .await
        .unwrap();
    assert_eq!(
        second,
        CodeConsumption::Replayed {
            grant_id: "g1".into()
        }
    );

    // An expired code is unknown.
    store
        .insert_authorization_code(&code("c2", "g1"))
        .await
        .unwrap();
    let late = store
        .consume_authorization_code("c2", "rp1", at(60))
        .await
        .unwrap();
    assert_eq!(late, CodeConsumption::Unknown);
}

async fn code_race_has_one_winner(test: TestStore) {
    let store = test.store;
    store.insert_grant(&grant("g1")).await.unwrap();
    store
        .insert_authorization_code(&code("c1", "g1"))
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .consume_authorization_code("c1", "rp1", at(1))
                .await
                .unwrap()
        }));
    }
    let mut consumed = 0;
    for task in tasks {
        match task.await.unwrap() {
            CodeConsumption::Consumed(_) => consumed += 1,
            CodeConsumption::Replayed { .. } => {}
            CodeConsumption::Unknown => panic!("a used code must read as a replay"),
        }
    }
    assert_eq!(consumed, 1);
}

async fn refresh_token_rotates_once_by_its_client(test: TestStore) {
    let store = test.store;
    store.insert_grant(&grant("g1")).await.unwrap();
    store
        .insert_refresh_token(&refresh_token("r1", "g1"))
        .await
        .unwrap();

    let other = store
        .rotate_refresh_token("r1", "rp2", at(1))
        .await
        .unwrap();
    assert_eq!(other, RefreshRotation::Unknown);
    let first = store
        .rotate_refresh_token("r1", "rp1", at(1))
        .await
        .unwrap();
    assert!(matches!(first, RefreshRotation::Rotated(_)), "{first:?}");
    let again = store
        .rotate_refresh_token("r1", "rp1", at(2))
        .await
        .unwrap();
    let RefreshRotation::AlreadyRotated(record) = again else {
        panic!("expected a rotated token, got {again:?}");
    };
    assert_eq!(record.rotated_at, Some(at(1)));

    store
        .insert_refresh_token(&refresh_token("r2", "g1"))
        .await
        .unwrap();
    let expired = store
        .rotate_refresh_token("r2", "rp1", at(3600))
        .await
        .unwrap();
    assert_eq!(expired, RefreshRotation::Unknown);
}

async fn code_and_refresh_lookups_change_nothing(test: TestStore) {
    let store = test.store;
    store.insert_grant(&grant("g1")).await.unwrap();
    store
        .insert_authorization_code(&code("c1", "g1"))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh_token("r1", "g1"))
        .await
        .unwrap();

    for _ in 0..2 {
        let found = store.authorization_code("c1", "rp1", at(1)).await.unwrap();
        assert_eq!(found, Some(code("c1", "g1")));
        let found = store.refresh_token("r1", "rp1", at(1)).await.unwrap();
        assert_eq!(found, Some(refresh_token("r1", "g1")));
    }
    assert_eq!(
        store.authorization_code("c1", "rp2", at(1)).await.unwrap(),
        None
    );
    assert_eq!(store.refresh_token("r1", "rp2", at(1)).await.unwrap(), None);
    assert_eq!(
        store.authorization_code("c1", "rp1", at(60)).await.unwrap(),
        None
    );
    assert_eq!(
        store.refresh_token("r1", "rp1", at(3600)).await.unwrap(),
        None
    );

    // Used and rotated ones stay visible, even past their expiry, so that
    // presenting them again reads as a replay.
    let consumed = store
        .consume_authorization_code("c1", "rp1", at(1))
        .await
        .unwrap();
    assert!(matches!(consumed, CodeConsumption::Consumed(_)));
    let rotated = store
        .rotate_refresh_token("r1", "rp1", at(1))
        .await
        .unwrap();
    assert!(matches!(rotated, RefreshRotation::Rotated(_)));
    let used = store.authorization_code("c1", "rp1", at(90)).await.unwrap();
    assert_eq!(used.unwrap().consumed_at, Some(at(1)));
    let old = store.refresh_token("r1", "rp1", at(4000)).await.unwrap();
    assert_eq!(old.unwrap().rotated_at, Some(at(1)));
}

async fn grant_revocation_removes_refresh_and_access_tokens(test: TestStore) {
    let store = test.store;
    store.insert_grant(&grant("g1")).await.unwrap();
    store
        .insert_refresh_token(&refresh_token("r1", "g1"))
        .await
        .unwrap();
    let access = AccessTokenRecord {
        jti: "j1".into(),
        digest: "a1".into(),
        client_id: "rp1".into(),
        subject: "u1".into(),
        grant_id: Some("g1".into()),
        grant_type: "authorization_code".into(),
        audience: "https://rs1.test/".into(),
        scope: "openid".into(),
        issued_at: at(0),
        expires_at: at(600),
        revoked_at: None,
    };
    store.insert_access_token(&access).await.unwrap();

    assert!(store.revoke_grant("g1", at(5)).await.unwrap());
    assert!(!store.revoke_grant("g1", at(6)).await.unwrap());
    assert_eq!(
        store.grant("g1").await.unwrap().unwrap().revoked_at,
        Some(at(5))
    );
    let rotation = store
        .rotate_refresh_token("r1", "rp1", at(7))
        .await
        .unwrap();
    assert_eq!(rotation, RefreshRotation::Unknown);
    let record = store
        .find_access_token(&AccessTokenKey::new("j1", "a1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.revoked_at, Some(at(5)));
}

async fn client_deletion_removes_its_grants(test: TestStore) {
    let store = test.store;
    store
        .insert_client(&super::clients::sample_client("rp1"))
        .await
        .unwrap();
    store.insert_grant(&grant("g1")).await.unwrap();
    store
        .insert_authorization_code(&code("c1", "g1"))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh_token("r1", "g1"))
        .await
        .unwrap();

    assert!(store.delete_client("rp1").await.unwrap());
    assert_eq!(store.grant("g1").await.unwrap(), None);
    let consumed = store
        .consume_authorization_code("c1", "rp1", at(1))
        .await
        .unwrap();
    assert_eq!(consumed, CodeConsumption::Unknown);
    let rotation = store
        .rotate_refresh_token("r1", "rp1", at(1))
        .await
        .unwrap();
    assert_eq!(rotation, RefreshRotation::Unknown);
}

fn grant_of(id: &str, user_id: uuid::Uuid, client_id: &str) -> GrantRecord {
    GrantRecord {
        user_id,
        client_id: client_id.to_owned(),
        ..grant(id)
    }
}

fn access_token(jti: &str, client_id: &str, grant_id: Option<&str>) -> AccessTokenRecord {
    AccessTokenRecord {
        jti: jti.to_owned(),
        digest: format!("digest-{jti}"),
        client_id: client_id.to_owned(),
        subject: "someone".into(),
        grant_id: grant_id.map(str::to_owned),
        grant_type: "authorization_code".into(),
        audience: "https://rs1.test/".into(),
        scope: "read".into(),
        issued_at: at(0),
        expires_at: at(600),
        revoked_at: None,
    }
}

async fn live_grants_filter_by_user_and_client(test: TestStore) {
    let store = test.store;
    let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut older = grant_of("g-alice-rp1", alice, "rp1");
    older.created_at = at(-10);
    let expired = GrantRecord {
        expires_at: at(50),
        ..grant_of("g-alice-expired", alice, "rp1")
    };
    let revoked = grant_of("g-alice-revoked", alice, "rp2");
    for record in [
        older,
        grant_of("g-alice-rp2", alice, "rp2"),
        grant_of("g-bob-rp1", bob, "rp1"),
        expired,
        revoked,
    ] {
        store.insert_grant(&record).await.unwrap();
    }
    store.revoke_grant("g-alice-revoked", at(1)).await.unwrap();

    let ids = |grants: Vec<GrantRecord>| -> Vec<String> {
        grants.into_iter().map(|grant| grant.id).collect()
    };
    let now = at(100);
    let by_alice = store
        .live_grants(&AuthorizationFilter::user(alice), now)
        .await
        .unwrap();
    assert_eq!(ids(by_alice), ["g-alice-rp2", "g-alice-rp1"]);
    let by_rp1 = store
        .live_grants(&AuthorizationFilter::client("rp1"), now)
        .await
        .unwrap();
    assert_eq!(ids(by_rp1), ["g-bob-rp1", "g-alice-rp1"]);
    let both = AuthorizationFilter::user_and_client(bob, "rp2");
    assert!(store.live_grants(&both, now).await.unwrap().is_empty());
    let every = store
        .live_grants(&AuthorizationFilter::default(), now)
        .await
        .unwrap();
    assert_eq!(every.len(), 3);
}

async fn grants_revoked_by_filter_take_their_tokens(test: TestStore) {
    let store = test.store;
    let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for record in [
        grant_of("g-alice-rp1", alice, "rp1"),
        grant_of("g-alice-rp2", alice, "rp2"),
        grant_of("g-bob-rp1", bob, "rp1"),
    ] {
        store.insert_grant(&record).await.unwrap();
        let mut refresh = refresh_token(&format!("r-{}", record.id), &record.id);
        refresh.client_id.clone_from(&record.client_id);
        store.insert_refresh_token(&refresh).await.unwrap();
        let token = access_token(
            &format!("a-{}", record.id),
            &record.client_id,
            Some(&record.id),
        );
        store.insert_access_token(&token).await.unwrap();
    }

    let filter = AuthorizationFilter::user_and_client(alice, "rp1");
    let revoked = store.revoke_grants(&filter, at(5)).await.unwrap();
    assert_eq!(revoked, ["g-alice-rp1"]);
    assert!(store
        .revoke_grants(&filter, at(6))
        .await
        .unwrap()
        .is_empty());

    let refresh = store.refresh_token("r-g-alice-rp1", "rp1", at(7)).await;
    assert_eq!(refresh.unwrap(), None);
    let token = store.find_access_token(&token_key("a-g-alice-rp1")).await;
    assert_eq!(token.unwrap().unwrap().revoked_at, Some(at(5)));
    for untouched in ["g-alice-rp2", "g-bob-rp1"] {
        let record = store.grant(untouched).await.unwrap().unwrap();
        assert_eq!(record.revoked_at, None, "{untouched}");
        let key = token_key(&format!("a-{untouched}"));
        let token = store.find_access_token(&key).await.unwrap().unwrap();
        assert_eq!(token.revoked_at, None, "{untouched}");
    }

    let all_of_alice = store
        .revoke_grants(&AuthorizationFilter::user(alice), at(8))
        .await
        .unwrap();
    assert_eq!(all_of_alice, ["g-alice-rp2"]);
}

async fn client_access_tokens_are_revoked_together(test: TestStore) {
    let store = test.store;
    for (jti, client_id) in [("a1", "rp1"), ("a2", "rp1"), ("a3", "rp2")] {
        let token = access_token(jti, client_id, None);
        store.insert_access_token(&token).await.unwrap();
    }
    assert_eq!(
        store
            .revoke_client_access_tokens("rp1", at(3))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .revoke_client_access_tokens("rp1", at(4))
            .await
            .unwrap(),
        0
    );
    let other = store
        .find_access_token(&token_key("a3"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.revoked_at, None);
    let first = store
        .find_access_token(&token_key("a1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.revoked_at, Some(at(3)));
}

async fn access_token_recorded_after_revocation_reads_revoked(test: TestStore) {
    let store = test.store;
    store.insert_grant(&grant("g-revoked")).await.unwrap();
    store.insert_grant(&grant("g-live")).await.unwrap();
    assert!(store.revoke_grant("g-revoked", at(5)).await.unwrap());
    // As when the token's insert commits after the revocation's update.
    for token in [
        access_token("late", "rp1", Some("g-revoked")),
        access_token("live", "rp1", Some("g-live")),
        access_token("no-grant", "rp1", None),
    ] {
        store.insert_access_token(&token).await.unwrap();
    }

    let late = store
        .find_access_token(&token_key("late"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(late.revoked_at, Some(at(5)));
    assert_eq!(late.grant_id.as_deref(), Some("g-revoked"));
    for untouched in ["live", "no-grant"] {
        let key = token_key(untouched);
        let record = store.find_access_token(&key).await.unwrap().unwrap();
        assert_eq!(record.revoked_at, None, "{untouched}");
    }
    // The token's own revocation comes first.
    assert!(store
        .revoke_access_token(&token_key("live"), "rp1", at(7))
        .await
        .unwrap());
    let live = store
        .find_access_token(&token_key("live"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.revoked_at, Some(at(7)));
}

/// Races a revocation against a refresh-token insert followed by a grant
/// read, as token issuance does. The insert must be deleted by the
/// revocation, or else the read after it must see the grant revoked.
async fn refresh_token_inserted_during_revocation_is_not_left(test: TestStore) {
    let store: Arc<dyn tessera::store::Store> = test.store;
    let mut left_unseen = Vec::new();
    for round in 0..40 {
        let id = format!("g{round}");
        let record = grant(&id);
        store.insert_grant(&record).await.unwrap();
        // Even rounds revoke the one grant, odd rounds every grant of its user.
        let revoke = {
            let (store, id) = (Arc::clone(&store), id.clone());
            let filter = AuthorizationFilter::user(record.user_id);
            tokio::spawn(async move {
                if round % 2 == 0 {
                    store.revoke_grant(&id, at(5)).await.map(|_| ())
                } else {
                    store.revoke_grants(&filter, at(5)).await.map(|_| ())
                }
            })
        };
        let digest = format!("r{round}");
        store
            .insert_refresh_token(&refresh_token(&digest, &id))
            .await
            .unwrap();
        let seen_revoked = store
            .grant(&id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some();
        revoke.await.unwrap().unwrap();
        let left = store.refresh_token(&digest, "rp1", at(6)).await.unwrap();
        if left.is_some() && !seen_revoked {
            left_unseen.push(id);
        }
    }
    assert!(
        left_unseen.is_empty(),
        "refresh tokens left after revocation, their grant read as live: {left_unseen:?}"
    );
}
