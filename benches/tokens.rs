//! The cryptographic floor of a token request: signing an access token,
//! encrypting it to a resource server, both together through Tessera's
//! minting path, and checking client credentials.
//!
//! `cargo bench --bench tokens`; `docs/benchmarks.md` records the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsHeader, JwsSigner, JwsVerifier, ES256, PS256, RS256};
use tessera::crypto::Digester;
use tessera::keys::generate::generate;
use tessera::keys::{EncryptionAlg, KeyAlg, SigningAlg};
use tessera::tokens::access::{mint_for, AccessTokenClaims, AccessTokenRequest};
use tessera::tokens::jwe::Recipient;

/// RSA key size of Tessera's default RSA keys.
const RSA_BITS: u32 = 2048;

fn claims() -> AccessTokenClaims {
    let request = AccessTokenRequest {
        issuer: "https://id.example.com",
        subject: "svc-bench",
        audience: "https://api.example.com/",
        client_id: "svc-bench",
        scope: "read write",
        lifetime: Duration::minutes(10),
        auth_time: None,
    };
    AccessTokenClaims::new(&request, Utc::now())
}

/// Generates a key pair for `alg` and returns its signer, verifier and kid,
/// as the key ring stores them.
fn signer(alg: SigningAlg) -> (Box<dyn JwsSigner>, Box<dyn JwsVerifier>, String) {
    let key = generate(KeyAlg::Signing(alg), RSA_BITS).unwrap();
    let (signer, verifier): (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) = match alg {
        SigningAlg::RS256 => (
            Box::new(RS256.signer_from_jwk(&key.private_jwk).unwrap()),
            Box::new(RS256.verifier_from_jwk(&key.public_jwk).unwrap()),
        ),
        SigningAlg::PS256 => (
            Box::new(PS256.signer_from_jwk(&key.private_jwk).unwrap()),
            Box::new(PS256.verifier_from_jwk(&key.public_jwk).unwrap()),
        ),
        SigningAlg::ES256 => (
            Box::new(ES256.signer_from_jwk(&key.private_jwk).unwrap()),
            Box::new(ES256.verifier_from_jwk(&key.public_jwk).unwrap()),
        ),
        SigningAlg::EdDSA => (
            Box::new(EdDSA.signer_from_jwk(&key.private_jwk).unwrap()),
            Box::new(EdDSA.verifier_from_jwk(&key.public_jwk).unwrap()),
        ),
    };
    (signer, verifier, key.kid)
}

/// Generates a resource server's public encryption key for `alg`.
fn recipient(alg: EncryptionAlg) -> Jwk {
    generate(KeyAlg::Encryption(alg), RSA_BITS)
        .unwrap()
        .public_jwk
}

/// Signs `payload` with the header the key ring writes: `alg`, `kid`, `typ`.
fn sign(signer: &dyn JwsSigner, kid: &str, typ: &str, payload: &[u8]) -> String {
    let mut header = JwsHeader::new();
    header.set_token_type(typ);
    header.set_key_id(kid);
    josekit::jws::serialize_compact(payload, &header, signer).unwrap()
}

fn signing(c: &mut Criterion) {
    let payload = serde_json::to_vec(&claims()).unwrap();
    let mut group = c.benchmark_group("sign");
    for alg in SigningAlg::ALL {
        let (signer, _, kid) = signer(alg);
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| sign(signer.as_ref(), &kid, "at+jwt", black_box(&payload)))
        });
    }
    group.finish();
}

fn encryption(c: &mut Criterion) {
    let (signer, _, kid) = signer(SigningAlg::ES256);
    let jws = sign(
        signer.as_ref(),
        &kid,
        "at+jwt",
        &serde_json::to_vec(&claims()).unwrap(),
    );
    let jti = claims().jti;
    let mut group = c.benchmark_group("encrypt");
    for alg in [EncryptionAlg::EcdhEsA256kw, EncryptionAlg::RsaOaep256] {
        let recipient = Recipient::new(&recipient(alg)).unwrap();
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| recipient.encrypt(black_box(&jws), Some(&jti)).unwrap())
        });
    }
    group.finish();
}

/// Claims, JSON, signature and encryption: the work of one access token
/// between client authentication and the store write.
fn minting(c: &mut Criterion) {
    let mut group = c.benchmark_group("mint");
    for key_management in [EncryptionAlg::EcdhEsA256kw, EncryptionAlg::RsaOaep256] {
        let recipient = Recipient::new(&recipient(key_management)).unwrap();
        for alg in SigningAlg::ALL {
            let (signer, _, kid) = signer(alg);
            let id = BenchmarkId::new(alg.as_str(), key_management.as_str());
            group.bench_function(id, |b| {
                b.iter(|| {
                    let sign = |typ: &str, payload: &[u8]| {
                        Ok::<_, std::convert::Infallible>(sign(signer.as_ref(), &kid, typ, payload))
                    };
                    mint_for(&claims(), sign, &recipient).unwrap()
                })
            });
        }
    }
    group.finish();
}

/// Client authentication: an HMAC-SHA-256 digest comparison for a client
/// secret, and the signature check of a `private_key_jwt` assertion.
fn client_authentication(c: &mut Criterion) {
    let mut group = c.benchmark_group("client_auth");
    let digester = Digester::new(&[7; 32]);
    let secret = "Tq0x3l8dXnYf8yq0Ck2cQ0l2cKk6W4n9bq5o7v3J1sM";
    let stored = digester.digest(secret);
    group.bench_function("client_secret", |b| {
        b.iter(|| assert!(digester.verify(black_box(secret), &stored)))
    });
    for alg in [SigningAlg::ES256, SigningAlg::RS256] {
        let (signer, verifier, kid) = signer(alg);
        let assertion = sign(signer.as_ref(), &kid, "JWT", br#"{"iss":"c","sub":"c"}"#);
        group.bench_function(format!("private_key_jwt/{}", alg.as_str()), |b| {
            b.iter(|| {
                josekit::jws::deserialize_compact(black_box(&assertion), verifier.as_ref()).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, signing, encryption, minting, client_authentication);
criterion_main!(benches);
