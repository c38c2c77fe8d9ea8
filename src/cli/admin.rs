//! Store access for administrative commands: open the configured store,
//! make sure its schema is current, and unwrap the data keys.

use std::sync::Arc;

use anyhow::Context;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{DataKeys, MasterKey};
use crate::store::{self, Backend, Store};

/// Store, data keys and clock of an administrative command.
pub struct Admin {
    pub store: Arc<dyn Store>,
    pub data_keys: DataKeys,
    pub clock: Arc<dyn Clock>,
}

impl Admin {
    /// Opens the store. SQLite is migrated on the spot, as `serve` would;
    /// PostgreSQL must already be migrated with `tessera migrate`.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let url = config.database_url();
        let store = store::open(&url).await?;
        if store.backend() == Backend::Sqlite {
            store
                .migrate()
                .await
                .context("cannot migrate the database")?;
        } else {
            store.check_schema().await?;
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // As with `serve`, only the SQLite default may create a master key,
        // and only for a database that has no data keys yet: a restored
        // database needs its own key, and a new one would only hide it.
        let fresh = store.data_keys().await?.is_empty();
        let master_key = MasterKey::load(config, config.database_url.is_none() && fresh)?;
        let data_keys = DataKeys::load_or_create(store.as_ref(), &master_key, clock.now())
            .await
            .with_context(|| {
                format!("cannot load the data keys from {}", store::redact_url(&url))
            })?;
        Ok(Self {
            store,
            data_keys,
            clock,
        })
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}
