//! Store conformance cases for Tessera's own keys; listed in the
//! `conformance!` invocation, so each runs on SQLite and PostgreSQL.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use josekit::jwk::Jwk;
use tessera::clock::ManualClock;
use tessera::config::Config;
use tessera::crypto::{DataKeys, MasterKey};
use tessera::keys::{KeyManager, KeySettings};
use tessera::store::{KeyChanges, KeyTimes, StoreError, StoredKey};

use crate::harness::TestStore;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn key(kid: &str, created: i64) -> StoredKey {
    StoredKey {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        key_use: "sig".to_owned(),
        public_jwk: format!("{{\"kty\":\"EC\",\"kid\":\"{kid}\"}}"),
        sealed_private_key: vec![1, 2, 3, 0, 255],
        times: KeyTimes {
            created_at: at(created),
            activates_at: at(created + 60),
            retires_at: None,
            removes_at: None,
            revoked_at: None,
        },
    }
}

pub async fn key_rows_round_trip(test: TestStore) {
    assert!(test.store.jose_keys().await.unwrap().is_empty());
    let later = key("b", 10);
    let mut earlier = key("a", 5);
    earlier.times.retires_at = Some(at(100));
    earlier.times.removes_at = Some(at(200));
    earlier.times.revoked_at = Some(at(150));
    let changes = KeyChanges {
        inserted: vec![later.clone(), earlier.clone()],
        ..KeyChanges::default()
    };
    test.store.apply_key_changes(&changes).await.unwrap();
    assert_eq!(test.store.jose_keys().await.unwrap(), vec![earlier, later]);
}

pub async fn key_changes_update_and_delete(test: TestStore) {
    let first = key("a", 0);
    let second = key("b", 1);
    let insert = KeyChanges {
        inserted: vec![first.clone(), second],
        ..KeyChanges::default()
    };
    test.store.apply_key_changes(&insert).await.unwrap();

    let times = KeyTimes {
        activates_at: at(500),
        retires_at: Some(at(600)),
        removes_at: Some(at(700)),
        revoked_at: Some(at(650)),
        // Not updated: the row keeps its creation time.
        created_at: at(999),
    };
    let change = KeyChanges {
        updated: vec![("a".to_owned(), times)],
        deleted: vec!["b".to_owned()],
        ..KeyChanges::default()
    };
    test.store.apply_key_changes(&change).await.unwrap();
    let stored = test.store.jose_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].times,
        KeyTimes {
            created_at: first.times.created_at,
            ..times
        }
    );
}

pub async fn failed_key_change_writes_nothing(test: TestStore) {
    let existing = key("a", 0);
    let insert = KeyChanges {
        inserted: vec![existing.clone()],
        ..KeyChanges::default()
    };
    test.store.apply_key_changes(&insert).await.unwrap();

    let unknown_update = KeyChanges {
        inserted: vec![key("new", 1)],
        updated: vec![("missing".to_owned(), key("x", 2).times)],
        ..KeyChanges::default()
    };
    let err = test
        .store
        .apply_key_changes(&unknown_update)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    let duplicate = KeyChanges {
        inserted: vec![key("other", 1), key("a", 3)],
        ..KeyChanges::default()
    };
    assert!(test.store.apply_key_changes(&duplicate).await.is_err());
    assert_eq!(test.store.jose_keys().await.unwrap(), vec![existing]);
}

/// The sealed column contains ciphertext only: no PEM, no JWK member names,
/// and none of the private key's DER or JWK bytes.
pub async fn private_key_column_holds_no_key_material(test: TestStore) {
    let master = MasterKey::generate();
    let data_keys = DataKeys::load_or_create(test.store.as_ref(), &master, at(0))
        .await
        .unwrap();
    let config = Config::default();
    let mut settings = KeySettings::from_config(&config);
    settings.slots.push(tessera::keys::KeyAlg::Signing(
        tessera::keys::SigningAlg::EdDSA,
    ));
    let manager = KeyManager::new(
        Arc::clone(&test.store),
        data_keys.sealer.clone(),
        Arc::new(ManualClock::new(at(0))),
        settings,
    );
    manager.bootstrap().await.unwrap();

    let raw = raw_private_keys(&test.url).await;
    // Current and next for RS256, ES256, EdDSA and the encryption key.
    assert_eq!(raw.len(), 8);
    for (kid, blob) in raw {
        assert!(!contains(&blob, b"-----BEGIN"), "{kid}: PEM in clear");
        assert!(!contains(&blob, b"\"d\""), "{kid}: JWK member in clear");
        assert!(!contains(&blob, kid.as_bytes()), "{kid}: kid in clear");

        let plain = data_keys.sealer.open(&blob, kid.as_bytes()).unwrap();
        let jwk = Jwk::from_bytes(plain.as_slice()).unwrap();
        let d = jwk.parameter("d").and_then(|d| d.as_str()).unwrap();
        assert!(!contains(&blob, d.as_bytes()), "{kid}: d in clear");
        let der = private_der(&jwk);
        assert!(der.len() > 32, "{kid}: DER computed");
        assert!(!contains(&blob, &der), "{kid}: DER in clear");
        // Any 16-byte window of the DER would do to leak part of the key.
        assert!(
            der.windows(16).all(|window| !contains(&blob, window)),
            "{kid}: part of the DER in clear"
        );
    }

    // A blob moved to another row does not open: the kid is bound to it.
    let stored = test.store.jose_keys().await.unwrap();
    let moved = data_keys
        .sealer
        .open(&stored[0].sealed_private_key, stored[1].kid.as_bytes());
    assert!(moved.is_err());
}

fn private_der(jwk: &Jwk) -> Vec<u8> {
    use josekit::jwk::alg::ec::EcKeyPair;
    use josekit::jwk::alg::ed::EdKeyPair;
    use josekit::jwk::alg::rsa::RsaKeyPair;
    use josekit::jwk::KeyPair;
    match jwk.key_type() {
        "RSA" => RsaKeyPair::from_jwk(jwk).unwrap().to_der_private_key(),
        "EC" => EcKeyPair::from_jwk(jwk).unwrap().to_der_private_key(),
        "OKP" => EdKeyPair::from_jwk(jwk).unwrap().to_der_private_key(),
        other => panic!("unexpected key type {other}"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Reads kid and the sealed private key column straight from the database.
async fn raw_private_keys(url: &str) -> Vec<(String, Vec<u8>)> {
    use sqlx::Connection;
    let sql = "SELECT kid, sealed_private_key FROM jose_keys";
    if url.starts_with("postgres") {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql)
            .fetch_all(&mut connection)
            .await
            .unwrap()
    } else {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql)
            .fetch_all(&mut connection)
            .await
            .unwrap()
    }
}
