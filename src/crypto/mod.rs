//! Secrets at rest: the master key, the data keys it wraps, HMAC digests of
//! bearer secrets, AES-256-GCM sealing of private keys, and random tokens.
//!
//! The master key never touches the database. It wraps random data keys
//! stored there, so rotating the master key re-wraps two small rows and
//! invalidates no digest, token or private key.

mod data_keys;
mod digest;
mod master_key;
mod random;
mod seal;

pub use data_keys::{DataKeyError, DataKeys, DIGEST_PURPOSE, SEALING_PURPOSE};
pub use digest::Digester;
pub use master_key::{MasterKey, MasterKeyError, MasterKeySource};
pub use random::{random_bytes, random_token};
pub use seal::{SealError, Sealer};
