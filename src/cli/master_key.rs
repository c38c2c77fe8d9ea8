//! `tessera master-key rotate`: re-wrap the data keys under a new master
//! key. Digests, sealed private keys and issued tokens stay valid, because
//! the data keys themselves do not change.
//!
//! The current master key is found as every command finds it. The new one
//! is read from `--new-key-file`, or generated and written to a new file
//! given with `--generate-to` (mode 0600) before anything is re-wrapped, so
//! a failure can never leave the database wrapped under a key that was lost.
//! It is never printed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use zeroize::Zeroizing;

use super::Output;
use crate::audit::{kind, record_change, Change, CLI_ACTOR};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{DataKeys, MasterKey};

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Re-wrap the data keys under a new master key.
    Rotate(RotateArgs),
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct RotateArgs {
    /// File holding the new master key as base64 of 32 bytes.
    #[arg(long, value_name = "FILE")]
    pub new_key_file: Option<PathBuf>,
    /// Generate the new master key and write it to FILE, which must not
    /// exist yet; the file is readable by its owner only.
    #[arg(long, value_name = "FILE")]
    pub generate_to: Option<PathBuf>,
}

pub async fn run(
    config: &Config,
    command: MasterKeyCommand,
    output: &Output,
) -> anyhow::Result<()> {
    let MasterKeyCommand::Rotate(args) = command;
    let store = super::keys::open_store(config).await?;
    let old = MasterKey::load(config, false)?;
    let (new, path) = match (args.new_key_file, args.generate_to) {
        (Some(path), _) => (read_key(&path)?, path),
        (None, Some(path)) => {
            let key = MasterKey::generate();
            key.write_new(&path)?;
            (key, path)
        }
        (None, None) => anyhow::bail!("give --new-key-file FILE or --generate-to FILE"),
    };
    if new.bytes() == old.bytes() {
        anyhow::bail!(
            "the new master key in {} equals the current one; give a different key",
            path.display()
        );
    }
    let result = DataKeys::rewrap(store.as_ref(), &old, &new).await;
    if let Ok(count) = &result {
        let change = Change {
            kind: kind::MASTER_KEY_ROTATED,
            actor: CLI_ACTOR.to_owned(),
            client_id: None,
            detail: Some(format!("{count} data keys re-wrapped")),
        };
        record_change(store.as_ref(), change, SystemClock.now()).await;
    }
    store.close().await;
    let count = result.context("cannot re-wrap the data keys")?;
    tracing::info!(data_keys = count, "master key rotated");
    output.print(
        &json!({ "rewrapped_data_keys": count, "new_key_file": path }),
        || {
            format!(
                "re-wrapped {count} data keys under the new master key in {}. Give every \
                 instance and command that key (TESSERA_MASTER_KEY, master_key_file, or in \
                 place of <data_dir>/master.key) before it next starts; running instances \
                 keep working until then.",
                path.display()
            )
        },
    )
}

fn read_key(path: &Path) -> anyhow::Result<MasterKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read new master key file {}", path.display()))?,
    );
    Ok(MasterKey::from_base64(&text, &path.display().to_string())?)
}
