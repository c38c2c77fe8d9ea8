//! Tessera's JWKS and signatures checked by a JOSE library written
//! elsewhere: node's `jose` package, run with `node` on a script in
//! `tests/interop` (installed by `scripts/install-deps`).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Duration;
use josekit::jwt::JwtPayload;
use serde_json::Value;
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;
use tessera::keys::{KeyAlg, SigningAlg};

use crate::harness::{Backend, TestApp, TestStore};

pub fn interop_folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Runs the `jose` verification script on `tokens`; one result per token.
async fn verify_with_node(jwks_url: &str, issuer: &str, tokens: &[String]) -> Vec<Value> {
    let folder = interop_folder();
    assert!(
        folder.join("node_modules/jose").exists(),
        "node's jose package is missing: run scripts/install-deps (npm ci in tests/interop)"
    );
    let output = tokio::process::Command::new("node")
        .current_dir(&folder)
        .arg("verify-jwt.mjs")
        .arg(jwks_url)
        .arg(issuer)
        .args(tokens)
        .output()
        .await
        .expect("node runs; install Node.js 20 or later");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_jose_verifies_tessera_tokens() {
    let mut config = Config::default();
    config.keys.signing_algs = SigningAlg::ALL.to_vec();
    let issuer = config.issuer.clone();
    let store = TestStore::new(Backend::Sqlite).await;
    let app = TestApp::spawn_configured(store, config, Arc::new(SystemClock)).await;
    let ring = app.keys.ring();
    let now = SystemClock.now();
    let snapshot = ring.snapshot().unwrap();

    let sign_at = |alg: SigningAlg, subject: &str, now: chrono::DateTime<chrono::Utc>| {
        let mut claims = JwtPayload::new();
        claims.set_issuer(&issuer);
        claims.set_subject(subject);
        claims.set_issued_at(&now.into());
        claims.set_expires_at(&(now + Duration::minutes(10)).into());
        ring.sign_jwt(alg, "JWT", &claims, now).unwrap()
    };
    let sign = |alg: SigningAlg, subject: &str| sign_at(alg, subject, now);
    let mut tokens: Vec<String> = SigningAlg::ALL
        .iter()
        .map(|alg| sign(*alg, alg.as_str()))
        .collect();

    // A changed signature byte must fail.
    let valid = sign(SigningAlg::ES256, "tampered");
    let (signed, signature) = valid.rsplit_once('.').unwrap();
    let mut bytes = signature.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    tokens.push(format!("{signed}.{}", String::from_utf8(bytes).unwrap()));

    // A token signed by a key revoked afterwards must fail too.
    let revoked_token = sign(SigningAlg::RS256, "revoked");
    let revoked_kid = snapshot
        .current(KeyAlg::Signing(SigningAlg::RS256), now)
        .unwrap()
        .kid
        .clone();
    app.keys.revoke(&revoked_kid).await.unwrap();
    tokens.push(revoked_token);

    let results = verify_with_node(&app.url("/jwks"), &issuer, &tokens).await;
    assert_eq!(results.len(), tokens.len());
    for (alg, result) in SigningAlg::ALL.iter().zip(&results) {
        let expected_kid = &snapshot.current(KeyAlg::Signing(*alg), now).unwrap().kid;
        if *alg == SigningAlg::RS256 {
            // Its key is revoked by now.
            assert_eq!(result["verified"], false, "{alg}: {result}");
            continue;
        }
        assert_eq!(result["verified"], true, "{alg}: {result}");
        assert_eq!(result["header"]["alg"], alg.as_str());
        assert_eq!(result["header"]["kid"], expected_kid.as_str());
        assert_eq!(result["header"]["typ"], "JWT");
        assert_eq!(result["payload"]["sub"], alg.as_str());
        assert_eq!(result["payload"]["iss"], issuer.as_str());
    }
    let tampered = &results[SigningAlg::ALL.len()];
    assert_eq!(tampered["verified"], false);
    assert_eq!(tampered["code"], "ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
    let revoked = &results[SigningAlg::ALL.len() + 1];
    assert_eq!(revoked["verified"], false);
    assert_eq!(revoked["code"], "ERR_JWKS_NO_MATCHING_KEY");

    // The new current RS256 key verifies in jose as well.
    let fresh = sign_at(SigningAlg::RS256, "fresh", SystemClock.now());
    let results = verify_with_node(&app.url("/jwks"), &issuer, &[fresh]).await;
    assert_eq!(results[0]["verified"], true, "{}", results[0]);
    assert_ne!(results[0]["header"]["kid"], revoked_kid.as_str());
}
