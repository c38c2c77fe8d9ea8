//! The in-memory key ring: every stored key unsealed once per reload, the
//! signing and verification API the token code calls, Tessera's own
//! encryption key, and the JWKS document with its ETag.
//!
//! The ring keeps keys with their times rather than fixed states, so a
//! `next` key starts signing at its activation instant without a reload.

use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use josekit::jwe::JweDecrypter;
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsSigner, JwsVerifier};
use josekit::jwt::JwtPayload;

use super::jwks::JwksDocument;
use super::lifecycle::{self, KeyState};
use super::{generate, EncryptionAlg, KeyAlg, KeyError, SigningAlg, VerifyError};
use crate::crypto::Sealer;
use crate::store::{KeyTimes, StoredKey};

/// The keys of one load from the store.
pub struct Snapshot {
    /// The store's `keys` generation counter read before the rows.
    pub generation: i64,
    keys: Vec<LoadedKey>,
}

/// One unsealed key.
pub struct LoadedKey {
    pub kid: String,
    pub alg: KeyAlg,
    pub times: KeyTimes,
    /// The public members only.
    pub public_jwk: Jwk,
    material: Material,
}

enum Material {
    Signing {
        signer: Box<dyn JwsSigner>,
        verifier: Box<dyn JwsVerifier>,
    },
    Encryption {
        decrypter: Box<dyn JweDecrypter>,
    },
}

/// The public half of Tessera's current encryption key.
#[derive(Clone, Debug)]
pub struct EncryptionKey {
    pub kid: String,
    pub alg: EncryptionAlg,
    pub public_jwk: Jwk,
}

/// A JWS whose signature checked out against a published key.
#[derive(Clone, Debug)]
pub struct VerifiedJws {
    pub kid: String,
    pub alg: SigningAlg,
    pub header: JwsHeader,
    pub payload: Vec<u8>,
}

/// Associated data that binds a sealed private key to its row.
pub fn sealing_context(kid: &str) -> Vec<u8> {
    kid.as_bytes().to_vec()
}

impl LoadedKey {
    /// Unseals a stored key and checks that its halves belong together.
    pub fn open(stored: &StoredKey, sealer: &Sealer) -> Result<Self, KeyError> {
        let corrupt = |reason: &str| KeyError::Corrupt {
            kid: stored.kid.clone(),
            reason: reason.to_owned(),
        };
        let alg = KeyAlg::parse(&stored.alg, &stored.key_use)
            .ok_or_else(|| corrupt("unknown algorithm or use"))?;
        let plain = sealer
            .open(&stored.sealed_private_key, &sealing_context(&stored.kid))
            .map_err(|_| corrupt("the private key does not decrypt under the data key"))?;
        let private_jwk = Jwk::from_bytes(plain.as_slice())
            .map_err(|_| corrupt("the private key is not a JWK"))?;
        let public_jwk = generate::public_jwk(&private_jwk)?;
        let stored_public = Jwk::from_bytes(stored.public_jwk.as_bytes())
            .map_err(|_| corrupt("the public key is not a JWK"))?;
        if public_jwk != stored_public || public_jwk.key_id() != Some(stored.kid.as_str()) {
            return Err(corrupt("the public key does not match the private key"));
        }
        let material = material(alg, &private_jwk, &public_jwk)?;
        Ok(Self {
            kid: stored.kid.clone(),
            alg,
            times: stored.times,
            public_jwk,
            material,
        })
    }

    pub fn state(&self, now: DateTime<Utc>) -> KeyState {
        lifecycle::state(&self.times, now)
    }
}

fn material(alg: KeyAlg, private_jwk: &Jwk, public_jwk: &Jwk) -> Result<Material, KeyError> {
    use josekit::jwe::{ECDH_ES_A256KW, RSA_OAEP_256};
    use josekit::jws::{EdDSA, ES256, PS256, RS256};

    let (signer, verifier): (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) = match alg {
        KeyAlg::Signing(SigningAlg::RS256) => (
            Box::new(RS256.signer_from_jwk(private_jwk)?),
            Box::new(RS256.verifier_from_jwk(public_jwk)?),
        ),
        KeyAlg::Signing(SigningAlg::PS256) => (
            Box::new(PS256.signer_from_jwk(private_jwk)?),
            Box::new(PS256.verifier_from_jwk(public_jwk)?),
        ),
        KeyAlg::Signing(SigningAlg::ES256) => (
            Box::new(super::es256::Es256Signer::from_jwk(private_jwk)?),
            Box::new(ES256.verifier_from_jwk(public_jwk)?),
        ),
        KeyAlg::Signing(SigningAlg::EdDSA) => (
            Box::new(EdDSA.signer_from_jwk(private_jwk)?),
            Box::new(EdDSA.verifier_from_jwk(public_jwk)?),
        ),
        KeyAlg::Encryption(EncryptionAlg::EcdhEsA256kw) => {
            let decrypter = Box::new(ECDH_ES_A256KW.decrypter_from_jwk(private_jwk)?);
            return Ok(Material::Encryption { decrypter });
        }
        KeyAlg::Encryption(EncryptionAlg::RsaOaep256) => {
            let decrypter = Box::new(RSA_OAEP_256.decrypter_from_jwk(private_jwk)?);
            return Ok(Material::Encryption { decrypter });
        }
    };
    Ok(Material::Signing { signer, verifier })
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("times", &self.times)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Unseals every stored key. One key that does not open fails the load,
    /// so a wrong data key never passes for an empty ring.
    pub fn open(generation: i64, stored: &[StoredKey], sealer: &Sealer) -> Result<Self, KeyError> {
        let keys = stored
            .iter()
            .map(|key| LoadedKey::open(key, sealer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { generation, keys })
    }

    pub fn keys(&self) -> &[LoadedKey] {
        &self.keys
    }

    /// Returns the `current` key of `alg` at `now`.
    pub fn current(&self, alg: KeyAlg, now: DateTime<Utc>) -> Option<&LoadedKey> {
        self.keys
            .iter()
            .filter(|key| key.alg == alg && key.state(now) == KeyState::Current)
            .max_by_key(|key| key.times.activates_at)
    }

    /// Returns the key `kid` if the JWKS publishes it at `now`.
    fn published(&self, kid: &str, now: DateTime<Utc>) -> Option<&LoadedKey> {
        self.keys
            .iter()
            .find(|key| key.kid == kid && lifecycle::is_published(&key.times, now))
    }
}

/// The key ring shared by every request handler of an instance.
#[derive(Default)]
pub struct KeyRing {
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    jwks: RwLock<Option<Arc<JwksDocument>>>,
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns whether keys were loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.snapshot().is_some()
    }

    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the keys; the JWKS is rebuilt for `now`.
    pub fn replace(&self, snapshot: Snapshot, now: DateTime<Utc>) {
        let snapshot = Arc::new(snapshot);
        let document = Arc::new(JwksDocument::build(&snapshot, now));
        *self
            .snapshot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(snapshot);
        *self
            .jwks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(document);
    }

    /// Returns the JWKS for `now`, rebuilt only when a key left or joined
    /// the published set since it was built.
    pub fn jwks(&self, now: DateTime<Utc>) -> Option<Arc<JwksDocument>> {
        let snapshot = self.snapshot()?;
        let cached = self
            .jwks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(document) = cached {
            if document.generation == snapshot.generation && document.is_valid_at(now) {
                return Some(document);
            }
        }
        let document = Arc::new(JwksDocument::build(&snapshot, now));
        *self
            .jwks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::clone(&document));
        Some(document)
    }

    /// Signs `payload` as a JWS compact token with the `current` key of
    /// `alg`; the protected header carries `alg`, `kid` and `typ`.
    pub fn sign(
        &self,
        alg: SigningAlg,
        typ: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<String, KeyError> {
        let snapshot = self.snapshot().ok_or(KeyError::NotLoaded)?;
        let no_key = || KeyError::NoCurrentKey(KeyAlg::Signing(alg));
        let key = snapshot
            .current(KeyAlg::Signing(alg), now)
            .ok_or_else(no_key)?;
        let Material::Signing { signer, .. } = &key.material else {
            return Err(no_key());
        };
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(key.kid.clone());
        Ok(josekit::jws::serialize_compact(
            payload,
            &header,
            signer.as_ref(),
        )?)
    }

    /// Signs `claims` as a JWT; see [`KeyRing::sign`].
    pub fn sign_jwt(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &JwtPayload,
        now: DateTime<Utc>,
    ) -> Result<String, KeyError> {
        self.sign(alg, typ, claims.to_string().as_bytes(), now)
    }

    /// Verifies a JWS compact token against the keys published at `now`.
    /// The header must name a published signing key by `kid` and that key's
    /// `alg`; there is no fallback to trying every key.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedJws, VerifyError> {
        let snapshot = self.snapshot().ok_or(VerifyError::NotLoaded)?;
        let header = peek_header(token)?;
        let kid = header
            .get("kid")
            .and_then(|kid| kid.as_str())
            .ok_or(VerifyError::MissingKid)?;
        let alg = header.get("alg").and_then(|alg| alg.as_str());
        let key = snapshot
            .published(kid, now)
            .ok_or_else(|| VerifyError::UnknownKid(kid.to_owned()))?;
        let (KeyAlg::Signing(key_alg), Material::Signing { verifier, .. }) =
            (key.alg, &key.material)
        else {
            return Err(VerifyError::NotASigningKey(kid.to_owned()));
        };
        if alg != Some(key_alg.as_str()) {
            return Err(VerifyError::AlgorithmMismatch {
                kid: kid.to_owned(),
                expected: key_alg,
            });
        }
        let (payload, header) = josekit::jws::deserialize_compact(token, verifier.as_ref())
            .map_err(|_| VerifyError::BadSignature)?;
        Ok(VerifiedJws {
            kid: key.kid.clone(),
            alg: key_alg,
            header,
            payload,
        })
    }

    /// Tessera's `current` encryption key, for tokens addressed to itself.
    pub fn encryption_key(&self, now: DateTime<Utc>) -> Option<EncryptionKey> {
        let snapshot = self.snapshot()?;
        snapshot
            .keys
            .iter()
            .filter(|key| matches!(key.alg, KeyAlg::Encryption(_)))
            .filter(|key| key.state(now) == KeyState::Current)
            .max_by_key(|key| key.times.activates_at)
            .and_then(|key| match key.alg {
                KeyAlg::Encryption(alg) => Some(EncryptionKey {
                    kid: key.kid.clone(),
                    alg,
                    public_jwk: key.public_jwk.clone(),
                }),
                KeyAlg::Signing(_) => None,
            })
    }

    /// Returns the decrypter of Tessera's encryption key `kid` while the JWKS
    /// publishes it (`next`, `current` or `retired`). The caller checks the
    /// JWE's `alg`, `enc` and `zip` headers before decrypting.
    pub fn decrypter(&self, kid: &str, now: DateTime<Utc>) -> Option<Box<dyn JweDecrypter>> {
        let snapshot = self.snapshot()?;
        match &snapshot.published(kid, now)?.material {
            Material::Encryption { decrypter } => Some(decrypter.clone()),
            Material::Signing { .. } => None,
        }
    }
}

/// Decodes the protected header of a JWS compact token without verifying it.
fn peek_header(token: &str) -> Result<serde_json::Map<String, serde_json::Value>, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}
