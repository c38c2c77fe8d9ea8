//! `tessera backup --out FILE`: an online, consistent copy of the SQLite
//! database, taken while servers keep using it.
//!
//! The copy is written to a temporary file beside FILE (mode 0600) and
//! moved into place only once complete and synced, so FILE never holds a
//! partial backup. Without `--force` an existing FILE is never replaced,
//! even one created while the copy was being written. PostgreSQL is
//! backed up with `pg_dump`, which this command points to.
//!
//! The master key is not part of the copy: a backup restores only with the
//! master key the database was wrapped under at the time of the backup.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::json;

use super::Output;
use crate::audit::{kind, record_change, Change, CLI_ACTOR};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::random_token;
use crate::store::{Backend, SqliteStore};

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// File to write the copy of the SQLite database to; created readable
    /// by its owner only.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

const POSTGRES_HINT: &str = "`tessera backup` copies SQLite databases only; back up PostgreSQL \
    with pg_dump, for example `pg_dump --format=custom --file=tessera.dump \
    \"$TESSERA_DATABASE_URL\"`, and restore with pg_restore (README, \"Backup and restore\")";

pub async fn run(config: &Config, args: BackupArgs, output: &Output) -> anyhow::Result<()> {
    let url = config.database_url();
    if Backend::of_url(&url) == Backend::Postgres {
        bail!(POSTGRES_HINT);
    }
    let database = SqliteStore::database_file(&url)?;
    if !database.is_file() {
        bail!(
            "database file {} does not exist; give the server's configuration \
             (database_url or data_dir) to back up its database",
            database.display()
        );
    }
    let out = absolute(&args.out)?;
    check_target(&database, &out, args.force)?;

    let store = SqliteStore::connect(&url).await?;
    let written = write_backup(&store, &out, args.force).await;
    if written.is_ok() {
        let change = Change {
            kind: kind::BACKUP_CREATED,
            actor: CLI_ACTOR.to_owned(),
            client_id: None,
            detail: Some(out.display().to_string()),
        };
        record_change(&store, change, SystemClock.now()).await;
    }
    crate::store::Store::close(&store).await;
    let bytes = written?;

    tracing::info!(out = %out.display(), bytes, "database backed up");
    output.print(&json!({ "out": out, "bytes": bytes }), || {
        format!(
            "wrote a backup of {} ({bytes} bytes) to {}. It restores only with the master key \
             this database uses now; keep that key safe and apart from the backup.",
            database.display(),
            out.display()
        )
    })
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("invalid backup path {}", path.display()))
}

/// Rejects a target that exists (unless `force`), whose folder is missing,
/// or that is the live database or one of its WAL and shared-memory files.
fn check_target(database: &Path, out: &Path, force: bool) -> anyhow::Result<()> {
    let Some(folder) = out.parent() else {
        bail!("invalid backup path {}: it names no file", out.display());
    };
    if !folder.is_dir() {
        bail!(
            "cannot write the backup to {}: folder {} does not exist; create it first",
            out.display(),
            folder.display()
        );
    }
    let live = std::fs::canonicalize(database)
        .with_context(|| format!("cannot resolve database file {}", database.display()))?;
    let resolved = std::fs::canonicalize(folder)
        .with_context(|| format!("cannot resolve folder {}", folder.display()))?
        .join(out.file_name().unwrap_or_default());
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = live.clone().into_os_string();
        name.push(suffix);
        if resolved == Path::new(&name) {
            bail!(
                "cannot write the backup to {}: it is the live database's own file; \
                 choose another path",
                out.display()
            );
        }
    }
    if out.exists() && !force {
        bail!(
            "{} already exists; choose another path, or give --force to replace it",
            out.display()
        );
    }
    Ok(())
}

/// Copies the database to a temporary file beside `out`, syncs it and
/// moves it to `out`; returns the size of the backup in bytes.
async fn write_backup(store: &SqliteStore, out: &Path, force: bool) -> anyhow::Result<u64> {
    let folder = out.parent().unwrap_or(Path::new("."));
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    let partial = folder.join(format!(".{name}.partial-{}", &random_token()[..12]));
    create_private_file(&partial)?;

    let copied = copy_to(store, &partial, out, force).await;
    if copied.is_err() {
        std::fs::remove_file(&partial).ok();
    }
    copied?;
    let bytes = std::fs::metadata(out)
        .with_context(|| format!("cannot read the size of {}", out.display()))?
        .len();
    Ok(bytes)
}

async fn copy_to(
    store: &SqliteStore,
    partial: &Path,
    out: &Path,
    force: bool,
) -> anyhow::Result<()> {
    store
        .backup_into(partial)
        .await
        .with_context(|| format!("cannot copy the database to {}", partial.display()))?;
    std::fs::File::open(partial)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("cannot sync {}", partial.display()))?;
    if force {
        std::fs::rename(partial, out)
            .with_context(|| format!("cannot move the backup to {}", out.display()))?;
    } else {
        // A hard link fails if `out` appeared since it was checked, where a
        // rename would silently replace it.
        std::fs::hard_link(partial, out).with_context(|| {
            format!(
                "cannot create {}; if it exists now, choose another path or give --force",
                out.display()
            )
        })?;
        std::fs::remove_file(partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    if let Some(folder) = out.parent() {
        // Makes the new directory entry durable too.
        std::fs::File::open(folder)
            .and_then(|dir| dir.sync_all())
            .ok();
    }
    Ok(())
}

fn create_private_file(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(())
}
