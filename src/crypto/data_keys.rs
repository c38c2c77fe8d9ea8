//! Data keys: random 256-bit keys stored in the database wrapped under the
//! master key. The first instance to start creates them; the others read
//! the same rows, so every instance digests and seals alike.

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::{random_bytes, Digester, MasterKey, Sealer};
use crate::store::{Store, StoreError, WrappedDataKey};

/// Purpose of the key that encrypts private keys at rest.
pub const SEALING_PURPOSE: &str = "sealing";
/// Purpose of the key that keys the HMAC digests of secrets.
pub const DIGEST_PURPOSE: &str = "digest";

/// The unwrapped data keys, ready for use.
#[derive(Clone, Debug)]
pub struct DataKeys {
    pub digester: Digester,
    pub sealer: Sealer,
}

#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    #[error(
        "the master key does not decrypt the data keys in the database, so it is not the key \
         this database was set up with; give the key it was set up with, or the one written \
         by the last `tessera master-key rotate` (TESSERA_MASTER_KEY, master_key_file or \
         <data_dir>/master.key)"
    )]
    WrongMasterKey,
    #[error("data key {purpose:?} in the database is malformed")]
    Malformed { purpose: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DataKeys {
    /// Unwraps the stored data keys, creating any that do not exist yet.
    pub async fn load_or_create(
        store: &dyn Store,
        master: &MasterKey,
        now: DateTime<Utc>,
    ) -> Result<Self, DataKeyError> {
        let wrapper = Sealer::new(master.bytes());
        let mut stored = store.data_keys().await?;
        let mut created = false;
        for purpose in [DIGEST_PURPOSE, SEALING_PURPOSE] {
            if stored.iter().any(|key| key.purpose == purpose) {
                continue;
            }
            let key = Zeroizing::new(random_bytes::<32>());
            let wrapped = WrappedDataKey {
                purpose: purpose.to_owned(),
                wrapped: wrapper.seal(key.as_slice(), &associated_data(purpose)),
                created_at: now,
            };
            // Another instance may win the race; then its key is the one used.
            store.insert_data_key(&wrapped).await?;
            created = true;
        }
        if created {
            stored = store.data_keys().await?;
        }
        let digest = unwrap(&wrapper, &stored, DIGEST_PURPOSE)?;
        let sealing = unwrap(&wrapper, &stored, SEALING_PURPOSE)?;
        Ok(Self {
            digester: Digester::new(&digest),
            sealer: Sealer::new(&sealing),
        })
    }

    /// Re-wraps every stored data key from `old` to `new` in one
    /// transaction. Digests and sealed blobs stay valid.
    pub async fn rewrap(
        store: &dyn Store,
        old: &MasterKey,
        new: &MasterKey,
    ) -> Result<usize, DataKeyError> {
        let old_wrapper = Sealer::new(old.bytes());
        let new_wrapper = Sealer::new(new.bytes());
        let stored = store.data_keys().await?;
        let mut rewrapped = Vec::with_capacity(stored.len());
        for key in &stored {
            let plain = unwrap(&old_wrapper, &stored, &key.purpose)?;
            rewrapped.push(WrappedDataKey {
                wrapped: new_wrapper.seal(plain.as_slice(), &associated_data(&key.purpose)),
                ..key.clone()
            });
        }
        store.rewrap_data_keys(&rewrapped).await?;
        Ok(rewrapped.len())
    }
}

/// Binds a wrapped key to its purpose, so the two rows cannot be swapped.
fn associated_data(purpose: &str) -> Vec<u8> {
    format!("tessera data key: {purpose}").into_bytes()
}

fn unwrap(
    wrapper: &Sealer,
    stored: &[WrappedDataKey],
    purpose: &str,
) -> Result<Zeroizing<[u8; 32]>, DataKeyError> {
    let malformed = || DataKeyError::Malformed {
        purpose: purpose.to_owned(),
    };
    let row = stored
        .iter()
        .find(|key| key.purpose == purpose)
        .ok_or_else(malformed)?;
    let plain = wrapper
        .open(&row.wrapped, &associated_data(purpose))
        .map_err(|_| DataKeyError::WrongMasterKey)?;
    let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| malformed())?;
    Ok(Zeroizing::new(bytes))
}
