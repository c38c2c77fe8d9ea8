//! `tessera migrate`: apply pending migrations.

use anyhow::Context;
use serde_json::json;

use super::Output;
use crate::config::Config;
use crate::store;

pub async fn run(config: &Config, output: &Output) -> anyhow::Result<()> {
    let url = config.database_url();
    let store = store::open(&url).await?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    store.close().await;
    tracing::info!(backend = store.backend().as_str(), "database migrated");
    output.print(
        &json!({ "migrated": true, "backend": store.backend().as_str() }),
        || {
            format!(
                "pending migrations applied; the {} database schema is current",
                store.backend().as_str()
            )
        },
    )
}
