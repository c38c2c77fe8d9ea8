//! Store conformance for listing and deleting consents and ending a user's
//! sessions, on both backends.

use chrono::{TimeZone, Utc};
use tessera::store::{AuthorizationFilter, ConsentRecord, SessionRecord};

use super::user;
use crate::harness::TestStore;

conformance!(
    consents_filter_by_user_and_client,
    consents_delete_by_filter,
    user_sessions_end_together,
);

fn at(seconds: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn session(digest: &str, user_id: uuid::Uuid) -> SessionRecord {
    SessionRecord {
        id_digest: digest.to_owned(),
        user_id,
        auth_time: at(0),
        amr: vec!["pwd".into()],
        created_at: at(0),
        last_seen_at: at(0),
        expires_at: at(1000),
    }
}

async fn consents_filter_by_user_and_client(test: TestStore) {
    let store = test.store;
    let (ivy, jon) = (user("ivy"), user("jon"));
    store.insert_user(&ivy).await.unwrap();
    store.insert_user(&jon).await.unwrap();
    let scopes = ["openid".to_owned(), "email".to_owned()];
    store
        .save_consent(ivy.id, "rp1", &scopes, at(1))
        .await
        .unwrap();
    store
        .save_consent(ivy.id, "rp2", &scopes[..1], at(2))
        .await
        .unwrap();
    store
        .save_consent(jon.id, "rp1", &scopes, at(3))
        .await
        .unwrap();

    let of_ivy = store.consents(&AuthorizationFilter::user(ivy.id)).await;
    assert_eq!(
        of_ivy.unwrap(),
        [
            ConsentRecord {
                user_id: ivy.id,
                client_id: "rp2".into(),
                scopes: vec!["openid".into()],
                updated_at: at(2),
            },
            ConsentRecord {
                user_id: ivy.id,
                client_id: "rp1".into(),
                scopes: scopes.to_vec(),
                updated_at: at(1),
            },
        ]
    );
    let of_rp1 = store.consents(&AuthorizationFilter::client("rp1")).await;
    let users: Vec<_> = of_rp1.unwrap().iter().map(|c| c.user_id).collect();
    assert_eq!(users, [jon.id, ivy.id]);
    let every = store.consents(&AuthorizationFilter::default()).await;
    assert_eq!(every.unwrap().len(), 3);
}

async fn consents_delete_by_filter(test: TestStore) {
    let store = test.store;
    let (kim, lou) = (user("kim"), user("lou"));
    store.insert_user(&kim).await.unwrap();
    store.insert_user(&lou).await.unwrap();
    let scopes = ["openid".to_owned()];
    for (account, client) in [(&kim, "rp1"), (&kim, "rp2"), (&lou, "rp1")] {
        store
            .save_consent(account.id, client, &scopes, at(1))
            .await
            .unwrap();
    }

    let one = AuthorizationFilter::user_and_client(kim.id, "rp1");
    assert_eq!(store.delete_consents(&one).await.unwrap(), 1);
    assert_eq!(store.delete_consents(&one).await.unwrap(), 0);
    assert!(store
        .consented_scopes(kim.id, "rp1")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.consented_scopes(kim.id, "rp2").await.unwrap(), scopes);

    let rp1 = AuthorizationFilter::client("rp1");
    assert_eq!(store.delete_consents(&rp1).await.unwrap(), 1);
    assert!(store
        .consented_scopes(lou.id, "rp1")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.consented_scopes(kim.id, "rp2").await.unwrap(), scopes);
}

async fn user_sessions_end_together(test: TestStore) {
    let store = test.store;
    let (max, ned) = (user("max"), user("ned"));
    store.insert_user(&max).await.unwrap();
    store.insert_user(&ned).await.unwrap();
    for (digest, account) in [("s1", &max), ("s2", &max), ("s3", &ned)] {
        store
            .insert_session(&session(digest, account.id))
            .await
            .unwrap();
    }

    assert_eq!(store.delete_user_sessions(max.id).await.unwrap(), 2);
    assert_eq!(store.delete_user_sessions(max.id).await.unwrap(), 0);
    assert!(store.session("s1").await.unwrap().is_none());
    assert!(store.session("s2").await.unwrap().is_none());
    assert!(store.session("s3").await.unwrap().is_some());
}
