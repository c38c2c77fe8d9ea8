//! Tessera's own keys: signing keys per algorithm and one encryption key
//! pair, rotated on a schedule, sealed at rest, published as a JWKS.
//!
//! - [`lifecycle`]: key states and due transitions as pure functions.
//! - [`generate`]: key generation, public halves and thumbprint kids.
//! - [`ring`]: the in-memory ring and the sign, verify and decrypt API.
//! - `es256`: ES256 signing with the `ring` crate, faster than josekit's.
//! - [`jwks`]: the JWKS document and its ETag.
//! - [`scheduler`]: reloads, scheduled rotations under a store lease, and
//!   the operations behind `tessera keys rotate` and `revoke`.
//! - `observed`: the key rotation and key age metrics.

mod alg;
mod es256;
pub mod generate;
pub mod jwks;
pub mod lifecycle;
mod observed;
pub mod ring;
pub mod scheduler;

pub use alg::{EncryptionAlg, KeyAlg, SigningAlg};
pub use jwks::JwksDocument;
pub use lifecycle::{KeyState, RotationRefused, Schedule};
pub use ring::{EncryptionKey, KeyRing, VerifiedJws};
pub use scheduler::{KeyManager, KeySettings, KeySummary};

use crate::store::StoreError;

/// Errors from key management and signing.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key ring is not loaded yet")]
    NotLoaded,
    #[error("no current {0} key; add the algorithm to keys.signing_algs to get one")]
    NoCurrentKey(KeyAlg),
    #[error("{0} is not configured; configured algorithms are keys.signing_algs and keys.encryption_alg")]
    NotConfigured(KeyAlg),
    #[error("key {0} not found among the published keys; `tessera keys list` shows them")]
    UnknownKey(String),
    #[error("key type {0:?} is not supported")]
    UnsupportedKeyType(String),
    #[error("stored key {kid} is unusable: {reason}")]
    Corrupt { kid: String, reason: String },
    #[error(
        "another process held the key-rotation lease for the whole 30 s wait; the lease \
         frees when that process's key change ends, or 5 minutes after it was taken if \
         that process died; try again then"
    )]
    LeaseBusy,
    #[error(transparent)]
    Refused(#[from] RotationRefused),
    #[error("key generation failed")]
    Generation(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Jose(#[from] josekit::JoseError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The reason a JWS did not verify. Messages never include the token.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the key ring is not loaded yet")]
    NotLoaded,
    #[error("the token is not a JWS in compact serialization")]
    Malformed,
    #[error("the JWS header has no kid")]
    MissingKid,
    #[error("no published signing key has kid {0:?}")]
    UnknownKid(String),
    #[error("key {0:?} is not a signing key")]
    NotASigningKey(String),
    #[error("key {kid:?} signs with {expected} only")]
    AlgorithmMismatch { kid: String, expected: SigningAlg },
    #[error("the signature is invalid")]
    BadSignature,
}
