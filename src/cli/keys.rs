//! `tessera keys list | rotate | revoke`: inspect and change Tessera's own
//! signing and encryption keys in the store that the servers share.
//!
//! Running instances notice a change within `keys.reload_interval` through
//! the store's `keys` generation counter.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use serde_json::json;

use super::Output;
use crate::audit::{kind, record_change, Change, CLI_ACTOR};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{DataKeys, MasterKey};
use crate::keys::{KeyAlg, KeyManager, KeySettings, KeyState, KeySummary};
use crate::store::{self, Store};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the published keys: kid, algorithm, use, state and times.
    List,
    /// Promote each next key now, retire the current one and publish a
    /// fresh next key.
    Rotate(RotateArgs),
    /// Remove a key from the JWKS at once; tokens it signed stop verifying.
    Revoke {
        /// The key id, as `tessera keys list` shows it.
        // Thumbprint kids are base64url and may start with `-`.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// Rotate only this algorithm (RS256, ES256, PS256, EdDSA,
    /// ECDH-ES+A256KW or RSA-OAEP-256); without it, every signing algorithm.
    #[arg(long, value_name = "ALG", value_parser = parse_alg)]
    pub alg: Option<KeyAlg>,
    /// Promote at once, even while JWKS caches may not hold the next key
    /// yet; for a compromised key.
    #[arg(long)]
    pub force: bool,
}

fn parse_alg(name: &str) -> Result<KeyAlg, String> {
    KeyAlg::from_name(name).ok_or_else(|| {
        format!(
            "unknown algorithm {name:?}; use RS256, ES256, PS256, EdDSA, ECDH-ES+A256KW or \
             RSA-OAEP-256"
        )
    })
}

pub async fn run(config: &Config, command: KeysCommand, output: &Output) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let result = match command {
        KeysCommand::List => list(store.as_ref(), output).await,
        KeysCommand::Rotate(args) => rotate(config, &store, args, output).await,
        KeysCommand::Revoke { kid } => revoke(config, &store, &kid, output).await,
    };
    store.close().await;
    result
}

/// Opens the configured store and checks that it is migrated.
pub(super) async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::open(&config.database_url()).await?;
    store.check_schema().await?;
    Ok(store)
}

async fn manager(config: &Config, store: &Arc<dyn Store>) -> anyhow::Result<KeyManager> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let master_key = MasterKey::load(config, false)?;
    let data_keys = DataKeys::load_or_create(store.as_ref(), &master_key, clock.now()).await?;
    Ok(KeyManager::new(
        Arc::clone(store),
        data_keys.sealer,
        clock,
        KeySettings::from_config(config),
    ))
}

async fn summaries(store: &dyn Store) -> anyhow::Result<Vec<KeySummary>> {
    let stored = store.jose_keys().await.context("cannot read the keys")?;
    Ok(KeySummary::list(&stored, SystemClock.now()))
}

async fn list(store: &dyn Store, output: &Output) -> anyhow::Result<()> {
    let keys = summaries(store).await?;
    output.print(&keys, || table(&keys))
}

async fn rotate(
    config: &Config,
    store: &Arc<dyn Store>,
    args: RotateArgs,
    output: &Output,
) -> anyhow::Result<()> {
    let manager = manager(config, store).await?;
    let rotated = manager.rotate(args.alg, args.force).await?;
    let keys = summaries(store.as_ref()).await?;
    let names: Vec<&str> = rotated.iter().map(|alg| alg.as_str()).collect();
    tracing::info!(algs = ?names, force = args.force, "keys rotated");
    let change = Change {
        kind: kind::KEY_ROTATED,
        actor: CLI_ACTOR.to_owned(),
        client_id: None,
        detail: Some(names.join(" ")),
    };
    record_change(store.as_ref(), change, SystemClock.now()).await;
    output.print(&keys, || {
        format!(
            "rotated {}: each next key is now current and a fresh next key is published\n{}",
            names.join(", "),
            table(&keys)
        )
    })
}

async fn revoke(
    config: &Config,
    store: &Arc<dyn Store>,
    kid: &str,
    output: &Output,
) -> anyhow::Result<()> {
    let manager = manager(config, store).await?;
    let revocation = manager.revoke(kid).await?;
    let keys = summaries(store.as_ref()).await?;
    tracing::info!(kid, alg = %revocation.alg, "key revoked");
    let change = Change {
        kind: kind::KEY_REVOKED,
        actor: CLI_ACTOR.to_owned(),
        client_id: None,
        detail: Some(kid.to_owned()),
    };
    record_change(store.as_ref(), change, SystemClock.now()).await;
    let promoted = revocation.previous_state == KeyState::Current;
    let document = json!({
        "revoked": kid,
        "alg": revocation.alg.as_str(),
        "use": revocation.alg.key_use(),
        "previous_state": revocation.previous_state,
        "next_promoted": promoted,
        "keys": keys,
    });
    let reload = config.keys.reload_interval;
    output.print(&document, || {
        let mut text = format!(
            "revoked key {kid} ({}, was {}). It is no longer in the JWKS, and tokens it \
             signed no longer verify, at Tessera or at any verifier once its JWKS cache \
             refreshes. Running instances drop it within {reload}.",
            revocation.alg,
            revocation.previous_state.as_str()
        );
        if promoted {
            text.push_str(" The next key is now current.");
        }
        format!("{text}\n{}", table(&keys))
    })
}

fn table(keys: &[KeySummary]) -> String {
    let mut lines = vec![format!(
        "{:<43}  {:<14}  {:<3}  {:<7}  {:<20}  {:<20}  {:<20}  {:<20}",
        "KID", "ALG", "USE", "STATE", "PUBLISHED", "ACTIVATES", "RETIRES", "REMOVED"
    )];
    for key in keys {
        lines.push(format!(
            "{:<43}  {:<14}  {:<3}  {:<7}  {:<20}  {:<20}  {:<20}  {:<20}",
            key.kid,
            key.alg,
            key.key_use,
            key.state.as_str(),
            time(Some(key.published_at)),
            time(Some(key.activates_at)),
            time(key.retires_at),
            time(key.removed_at),
        ));
    }
    if keys.is_empty() {
        lines.push("(no keys yet: `tessera serve` creates them at start-up)".to_owned());
    }
    lines.join("\n")
}

fn time(value: Option<DateTime<Utc>>) -> String {
    value.map_or_else(
        || "-".to_owned(),
        |time| time.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}
