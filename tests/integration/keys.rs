//! The key ring against real stores: a year of scheduled rotations driven
//! by a manual clock, two instances racing on one PostgreSQL, and the
//! signing, verification and decryption API.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use josekit::jwk::JwkSet;
use josekit::jws::{EdDSA, JwsVerifier, ES256, PS256, RS256};
use josekit::jwt::JwtPayload;
use tessera::clock::{Clock, ManualClock};
use tessera::config::{Config, HumanDuration};
use tessera::crypto::{DataKeys, MasterKey};
use tessera::keys::{
    EncryptionAlg, KeyAlg, KeyError, KeyManager, KeySettings, KeyState, SigningAlg, VerifyError,
};
use tessera::store::{self, Store};

use crate::harness::{Backend, TestStore};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

async fn manager_on(
    store: Arc<dyn Store>,
    master: &MasterKey,
    clock: Arc<ManualClock>,
    config: &Config,
) -> KeyManager {
    let data_keys = DataKeys::load_or_create(store.as_ref(), master, clock.now())
        .await
        .unwrap();
    KeyManager::new(
        store,
        data_keys.sealer,
        clock,
        KeySettings::from_config(config),
    )
}

/// A JWKS document as a verifier caching it would hold it: verifiers by kid.
struct CachedJwks {
    verifiers: HashMap<String, Box<dyn JwsVerifier>>,
}

impl CachedJwks {
    fn parse(body: &str) -> Self {
        let set = JwkSet::from_bytes(body.as_bytes()).unwrap();
        let mut verifiers: HashMap<String, Box<dyn JwsVerifier>> = HashMap::new();
        for jwk in set.keys() {
            assert_eq!(jwk.parameter("d"), None);
            let kid = jwk.key_id().unwrap().to_owned();
            let verifier: Box<dyn JwsVerifier> = match jwk.algorithm().unwrap() {
                "RS256" => Box::new(RS256.verifier_from_jwk(jwk).unwrap()),
                "ES256" => Box::new(ES256.verifier_from_jwk(jwk).unwrap()),
                "PS256" => Box::new(PS256.verifier_from_jwk(jwk).unwrap()),
                "EdDSA" => Box::new(EdDSA.verifier_from_jwk(jwk).unwrap()),
                _ => {
                    assert_eq!(jwk.key_use(), Some("enc"));
                    continue;
                }
            };
            assert!(verifiers.insert(kid, verifier).is_none(), "duplicate kid");
        }
        Self { verifiers }
    }

    fn verifies(&self, token: &Token) -> bool {
        self.verifiers.get(&token.kid).is_some_and(|verifier| {
            josekit::jws::deserialize_compact(&token.jws, verifier.as_ref()).is_ok()
        })
    }
}

struct Token {
    jws: String,
    kid: String,
    signed_step: usize,
}

/// Simulates a year of the default schedule (30-day rotation, keys published
/// a day ahead). Every token signed at any step verifies against every JWKS
/// a client could have cached while the token lives, which means documents
/// fetched from one cache lifetime before signing until the token expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn year_of_rotations_keeps_every_token_verifiable() {
    let test = TestStore::new(Backend::Sqlite).await;
    let clock = Arc::new(ManualClock::new(start()));
    let mut config = Config::default();
    // One step per cache lifetime, so the JWKS fetched one step before a
    // token is signed is still cached when the token arrives. A step took
    // about 3 ms in a debug build on a 2-core machine: a year took 27 s.
    config.keys.jwks_max_age = HumanDuration::from_secs(60 * 60);
    config.keys.reload_interval = HumanDuration::from_secs(1);
    let step = Duration::hours(1);
    let token_lifetime = Duration::from_std(config.tokens.id_token_ttl.as_duration()).unwrap();
    let lifetime_steps = (token_lifetime.num_seconds() / step.num_seconds()) as usize;
    let manager = manager_on(
        test.store.clone(),
        &MasterKey::generate(),
        clock.clone(),
        &config,
    )
    .await;
    manager.bootstrap().await.unwrap();
    let ring = manager.ring();

    let mut documents: Vec<CachedJwks> = Vec::new();
    let mut etags: HashMap<String, usize> = HashMap::new();
    let mut served: Vec<usize> = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    let mut kids_used: HashMap<SigningAlg, Vec<String>> = HashMap::new();
    let steps = (Duration::days(365).num_seconds() / step.num_seconds()) as usize;

    for index in 0..=steps {
        let now = clock.now();
        manager.tick().await.unwrap();
        let document = ring.jwks(now).unwrap();
        let next_index = documents.len();
        let id = *etags.entry(document.etag.clone()).or_insert(next_index);
        if id == next_index {
            documents.push(CachedJwks::parse(&document.body));
        }
        served.push(id);

        for alg in [SigningAlg::RS256, SigningAlg::ES256] {
            let mut claims = JwtPayload::new();
            claims.set_issued_at(&now.into());
            claims.set_expires_at(&(now + token_lifetime).into());
            let jws = ring.sign_jwt(alg, "JWT", &claims, now).unwrap();
            let header = josekit::jwt::decode_header(&jws).unwrap();
            let kid = header.claim("kid").unwrap().as_str().unwrap().to_owned();
            let used = kids_used.entry(alg).or_default();
            if used.last() != Some(&kid) {
                used.push(kid.clone());
            }
            tokens.push(Token {
                jws,
                kid,
                signed_step: index,
            });
        }
        // Tessera itself still verifies the tokens that expire now.
        for token in tokens
            .iter()
            .filter(|token| token.signed_step + lifetime_steps == index)
        {
            assert!(ring.verify(&token.jws, now).is_ok(), "step {index}");
        }
        clock.advance(step);
    }

    let mut checked = 0;
    for token in &tokens {
        let first = token.signed_step.saturating_sub(1);
        let last = (token.signed_step + lifetime_steps).min(steps);
        // Consecutive steps mostly serve the same document; check each
        // distinct one once.
        let mut ids: Vec<usize> = served[first..=last].to_vec();
        ids.dedup();
        for id in ids {
            assert!(
                documents[id].verifies(token),
                "token of kid {} signed at step {} fails with JWKS document {id}, served \
                 between steps {first} and {last}",
                token.kid,
                token.signed_step
            );
            checked += 1;
        }
    }
    // Some tokens met two documents: one before and one after a change.
    assert!(checked > tokens.len(), "{checked}");
    assert!(documents.len() > 24, "{} documents", documents.len());
    for (alg, kids) in &kids_used {
        // Day 0, then every 30 days: 13 signing keys in 365 days.
        assert_eq!(kids.len(), 13, "{alg}: {kids:?}");
    }
    // Retired keys leave: the store does not grow with every rotation.
    let stored = test.store.jose_keys().await.unwrap();
    assert!(stored.len() <= 9, "{} keys stored", stored.len());
}

/// Two instances with their own pools on one PostgreSQL, both due at once,
/// perform each transition once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_rotate_exactly_once() {
    let test = TestStore::new(Backend::Postgres).await;
    let other = store::open(&test.url).await.unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let config = Config::default();
    let master = MasterKey::generate();
    let first = Arc::new(manager_on(test.store.clone(), &master, clock.clone(), &config).await);
    let second = Arc::new(manager_on(other, &master, clock.clone(), &config).await);

    let (a, b) = tokio::join!(
        tokio::spawn({
            let first = Arc::clone(&first);
            async move { first.bootstrap().await }
        }),
        tokio::spawn({
            let second = Arc::clone(&second);
            async move { second.bootstrap().await }
        }),
    );
    a.unwrap().unwrap();
    b.unwrap().unwrap();
    // Current and next for RS256, ES256 and the encryption key.
    assert_eq!(test.store.jose_keys().await.unwrap().len(), 6);

    for round in 1..=4 {
        let next_activation = test
            .store
            .jose_keys()
            .await
            .unwrap()
            .iter()
            .filter(|key| {
                tessera::keys::lifecycle::state(&key.times, clock.now()) == KeyState::Next
            })
            .map(|key| key.times.activates_at)
            .min()
            .unwrap();
        clock.set(next_activation + Duration::seconds(1));
        let before = test.store.jose_keys().await.unwrap().len();
        let (a, b) = tokio::join!(
            tokio::spawn({
                let first = Arc::clone(&first);
                async move { first.tick().await }
            }),
            tokio::spawn({
                let second = Arc::clone(&second);
                async move { second.tick().await }
            }),
        );
        a.unwrap().unwrap();
        b.unwrap().unwrap();
        first.tick().await.unwrap();
        second.tick().await.unwrap();

        let keys = test.store.jose_keys().await.unwrap();
        let now = clock.now();
        for slot in [
            KeyAlg::Signing(SigningAlg::RS256),
            KeyAlg::Signing(SigningAlg::ES256),
            KeyAlg::Encryption(EncryptionAlg::EcdhEsA256kw),
        ] {
            let states: Vec<KeyState> = keys
                .iter()
                .filter(|key| key.alg == slot.as_str())
                .map(|key| tessera::keys::lifecycle::state(&key.times, now))
                .collect();
            let count = |wanted| states.iter().filter(|state| **state == wanted).count();
            assert_eq!(count(KeyState::Current), 1, "round {round} {slot}");
            assert_eq!(count(KeyState::Next), 1, "round {round} {slot}: {states:?}");
        }
        // One new next key per slot; the retired ones before the last round
        // have been deleted once their retention ended.
        let created = keys
            .iter()
            .filter(|key| key.times.created_at == now)
            .count();
        assert_eq!(created, 3, "round {round}: {before} keys before");
        let first_ring = first.ring().snapshot().unwrap();
        let second_ring = second.ring().snapshot().unwrap();
        assert_eq!(first_ring.generation, second_ring.generation);
    }
}

async fn ring_with(config: &Config) -> (TestStore, KeyManager, Arc<ManualClock>) {
    let test = TestStore::new(Backend::Sqlite).await;
    let clock = Arc::new(ManualClock::new(start()));
    let manager = manager_on(
        test.store.clone(),
        &MasterKey::generate(),
        clock.clone(),
        config,
    )
    .await;
    manager.bootstrap().await.unwrap();
    (test, manager, clock)
}

fn all_signing_algs() -> Config {
    let mut config = Config::default();
    config.keys.signing_algs = SigningAlg::ALL.to_vec();
    config
}

#[tokio::test]
async fn ring_signs_with_current_key_of_each_alg() {
    let (_test, manager, clock) = ring_with(&all_signing_algs()).await;
    let ring = manager.ring();
    let now = clock.now();
    let snapshot = ring.snapshot().unwrap();
    for alg in SigningAlg::ALL {
        let current = snapshot.current(KeyAlg::Signing(alg), now).unwrap();
        let token = ring.sign(alg, "at+jwt", b"{\"sub\":\"u1\"}", now).unwrap();
        let verified = ring.verify(&token, now).unwrap();
        assert_eq!(verified.kid, current.kid, "{alg}");
        assert_eq!(verified.alg, alg);
        assert_eq!(verified.header.token_type(), Some("at+jwt"));
        assert_eq!(verified.header.key_id(), Some(current.kid.as_str()));
        assert_eq!(verified.header.algorithm(), Some(alg.as_str()));
        assert_eq!(verified.payload, b"{\"sub\":\"u1\"}");
    }
}

#[tokio::test]
async fn unconfigured_alg_has_no_current_key() {
    let (_test, manager, clock) = ring_with(&Config::default()).await;
    let err = manager
        .ring()
        .sign(SigningAlg::EdDSA, "JWT", b"{}", clock.now())
        .unwrap_err();
    assert!(matches!(err, KeyError::NoCurrentKey(_)), "{err:?}");
}

#[tokio::test]
async fn verify_selects_key_by_kid_and_alg_only() {
    let (_test, manager, clock) = ring_with(&Config::default()).await;
    let ring = manager.ring();
    let now = clock.now();
    let token = ring.sign(SigningAlg::ES256, "JWT", b"{}", now).unwrap();
    let (header, rest) = token.split_once('.').unwrap();
    let reheader = |json: &str| {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        format!("{encoded}.{rest}")
    };
    let kid = ring.verify(&token, now).unwrap().kid;
    let enc_kid = ring.encryption_key(now).unwrap().kid;
    let rs_kid = ring
        .snapshot()
        .unwrap()
        .current(KeyAlg::Signing(SigningAlg::RS256), now)
        .unwrap()
        .kid
        .clone();

    let cases = [
        (reheader(r#"{"alg":"ES256"}"#), VerifyError::MissingKid),
        (
            reheader(r#"{"alg":"ES256","kid":"unknown"}"#),
            VerifyError::UnknownKid("unknown".into()),
        ),
        (
            reheader(&format!(r#"{{"alg":"ES256","kid":"{enc_kid}"}}"#)),
            VerifyError::NotASigningKey(enc_kid.clone()),
        ),
        (
            reheader(&format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#)),
            VerifyError::AlgorithmMismatch {
                kid: kid.clone(),
                expected: SigningAlg::ES256,
            },
        ),
        (
            reheader(&format!(r#"{{"alg":"none","kid":"{kid}"}}"#)),
            VerifyError::AlgorithmMismatch {
                kid: kid.clone(),
                expected: SigningAlg::ES256,
            },
        ),
        (
            reheader(&format!(r#"{{"alg":"RS256","kid":"{rs_kid}"}}"#)),
            VerifyError::BadSignature,
        ),
        ("not-a-token".to_owned(), VerifyError::Malformed),
        (format!("{header}.e30.AAAA"), VerifyError::BadSignature),
    ];
    for (token, expected) in cases {
        assert_eq!(ring.verify(&token, now).unwrap_err(), expected);
    }
}

#[tokio::test]
async fn revoked_key_stops_verifying() {
    let (_test, manager, clock) = ring_with(&Config::default()).await;
    let ring = manager.ring();
    let now = clock.now();
    let token = ring.sign(SigningAlg::RS256, "JWT", b"{}", now).unwrap();
    let kid = ring.verify(&token, now).unwrap().kid;

    clock.advance(Duration::minutes(1));
    let revocation = manager.revoke(&kid).await.unwrap();
    assert_eq!(revocation.previous_state, KeyState::Current);
    let now = clock.now();
    let err = ring.verify(&token, now).unwrap_err();
    assert_eq!(err, VerifyError::UnknownKid(kid.clone()));
    assert!(!ring.jwks(now).unwrap().body.contains(&kid));

    // The promoted key signs at once.
    let fresh = ring.sign(SigningAlg::RS256, "JWT", b"{}", now).unwrap();
    assert_ne!(ring.verify(&fresh, now).unwrap().kid, kid);
}

#[tokio::test]
async fn encryption_key_decrypts_what_is_encrypted_to_it() {
    for alg in EncryptionAlg::ALL {
        let mut config = Config::default();
        config.keys.encryption_alg = alg;
        let (_test, manager, clock) = ring_with(&config).await;
        let ring = manager.ring();
        let now = clock.now();
        let key = ring.encryption_key(now).unwrap();
        assert_eq!(key.alg, alg);
        assert_eq!(key.public_jwk.key_use(), Some("enc"));
        assert_eq!(key.public_jwk.parameter("d"), None);

        let mut header = josekit::jwe::JweHeader::new();
        header.set_content_encryption("A256GCM");
        header.set_key_id(key.kid.clone());
        let encrypter: Box<dyn josekit::jwe::JweEncrypter> = match alg {
            EncryptionAlg::EcdhEsA256kw => Box::new(
                josekit::jwe::ECDH_ES_A256KW
                    .encrypter_from_jwk(&key.public_jwk)
                    .unwrap(),
            ),
            EncryptionAlg::RsaOaep256 => Box::new(
                josekit::jwe::RSA_OAEP_256
                    .encrypter_from_jwk(&key.public_jwk)
                    .unwrap(),
            ),
        };
        let jwe = josekit::jwe::serialize_compact(b"inner", &header, encrypter.as_ref()).unwrap();
        let decrypter = ring.decrypter(&key.kid, now).unwrap();
        let (plain, _) = josekit::jwe::deserialize_compact(&jwe, decrypter.as_ref()).unwrap();
        assert_eq!(plain, b"inner", "{alg}");

        let signing_kid = ring.verify(
            &ring.sign(SigningAlg::ES256, "JWT", b"{}", now).unwrap(),
            now,
        );
        assert!(ring.decrypter(&signing_kid.unwrap().kid, now).is_none());
    }
}

/// A ring opened with another data key fails to load and writes nothing:
/// it never replaces keys it cannot read with new ones.
#[tokio::test]
async fn wrong_sealing_key_fails_without_new_keys() {
    let (test, _manager, clock) = ring_with(&Config::default()).await;
    let before = test.store.jose_keys().await.unwrap();
    let other_sealer = tessera::crypto::Sealer::new(&[9; 32]);
    let stranger = KeyManager::new(
        test.store.clone(),
        other_sealer,
        clock,
        KeySettings::from_config(&Config::default()),
    );
    let err = stranger.bootstrap().await.unwrap_err();
    assert!(matches!(err, KeyError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("does not decrypt"), "{err}");
    assert_eq!(test.store.jose_keys().await.unwrap(), before);
}

/// Stored key times are instants: a database whose default time zone is far
/// from UTC changes none of them, and the schedule stays on UTC. (sqlx also
/// sets each session's zone to UTC, and TIMESTAMPTZ stores instants.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_times_ignore_database_time_zone() {
    use sqlx::Connection;

    let test = TestStore::new(Backend::Postgres).await;
    let name = test.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&test.url).await.unwrap();
    let alter = format!("ALTER DATABASE \"{name}\" SET timezone TO 'Pacific/Chatham'");
    sqlx::query(&alter).execute(&mut admin).await.unwrap();

    let chatham = store::open(&test.url).await.unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let config = Config::default();
    let manager = manager_on(
        chatham.clone(),
        &MasterKey::generate(),
        clock.clone(),
        &config,
    )
    .await;
    manager.bootstrap().await.unwrap();
    let keys = chatham.jose_keys().await.unwrap();
    let rotation = Duration::days(30);
    for key in &keys {
        assert_eq!(key.times.created_at, start(), "{}", key.kid);
        let state = tessera::keys::lifecycle::state(&key.times, start());
        match state {
            KeyState::Current => assert_eq!(key.times.retires_at, Some(start() + rotation)),
            KeyState::Next => assert_eq!(key.times.activates_at, start() + rotation),
            other => panic!("unexpected state {other:?}"),
        }
    }
}

/// An instance starting while a crashed one still holds the rotation lease
/// starts with the stored keys, and performs the due transitions once the
/// lease has expired.
#[tokio::test]
async fn start_up_with_usable_keys_needs_no_lease() {
    let test = TestStore::new(Backend::Sqlite).await;
    let clock = Arc::new(ManualClock::new(start()));
    let config = Config::default();
    let master = MasterKey::generate();
    let first = manager_on(test.store.clone(), &master, clock.clone(), &config).await;
    first.bootstrap().await.unwrap();

    // Past the next keys' activation, so new next keys are due.
    clock.advance(Duration::days(31));
    let now = clock.now();
    let crashed = test
        .store
        .try_acquire_lease("key-rotation", "crashed", now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert!(crashed);
    let second = manager_on(test.store.clone(), &master, clock.clone(), &config).await;
    tokio::time::timeout(std::time::Duration::from_secs(5), second.bootstrap())
        .await
        .expect("start-up does not wait for the lease")
        .unwrap();
    let token = second
        .ring()
        .sign(SigningAlg::ES256, "JWT", b"{}", now)
        .unwrap();
    assert!(second.ring().verify(&token, now).is_ok());

    second.tick().await.unwrap();
    assert_eq!(test.store.jose_keys().await.unwrap().len(), 6);

    clock.advance(Duration::minutes(6));
    second.tick().await.unwrap();
    let now = clock.now();
    let next_keys = test
        .store
        .jose_keys()
        .await
        .unwrap()
        .iter()
        .filter(|key| tessera::keys::lifecycle::state(&key.times, now) == KeyState::Next)
        .count();
    assert_eq!(next_keys, 3);
}
