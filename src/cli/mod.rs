//! Command-line interface: argument parsing and dispatch to subcommands.
//!
//! Every subcommand loads the same configuration ([`Config::load`]), so an
//! operator points the CLI at the running server's store by giving it the
//! same file and environment.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat};

mod admin;
mod audit;
mod backup;
mod clients;
mod grants;
mod keys;
mod master_key;
mod migrate;
mod output;
mod registration_tokens;
mod resources;
mod serve;
mod users;

pub use output::Output;

/// Tessera: an OAuth 2.0 / OpenID Connect authorization server whose access
/// tokens are encrypted to the resource server they are meant for.
#[derive(Debug, Parser)]
#[command(name = "tessera", version)]
pub struct Cli {
    /// TOML configuration file; `TESSERA_*` environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print exactly one JSON document on standard output.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log line format on standard error (overrides `log_format`).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server.
    Serve(serve::ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage OAuth clients.
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// Create initial access tokens for dynamic client registration.
    #[command(subcommand)]
    RegistrationTokens(registration_tokens::RegistrationTokensCommand),
    /// List and revoke what users authorized clients to do.
    #[command(subcommand)]
    Grants(grants::GrantsCommand),
    /// List and withdraw the scopes users approved for clients.
    #[command(subcommand)]
    Consents(grants::ConsentsCommand),
    /// Manage resource servers.
    #[command(subcommand)]
    Resources(resources::ResourcesCommand),
    /// Inspect, rotate and revoke Tessera's signing and encryption keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Re-wrap the data keys under a new master key.
    MasterKey {
        #[command(subcommand)]
        command: master_key::MasterKeyCommand,
    },
    /// Manage user accounts.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Write a consistent copy of the SQLite database to a file while
    /// servers keep running (PostgreSQL: use pg_dump).
    Backup(backup::BackupArgs),
}

/// A failed command: configuration errors exit with 2, everything else with 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(1),
        }
    }
}

/// Parses the process arguments, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli));
    // Dropping the runtime would wait for every blocking task, such as a
    // key generation that a stop during start-up abandoned: 8192-bit RSA
    // can take a minute. Work still running now has no one waiting for it.
    runtime.shutdown_timeout(crate::server::STOP_WAIT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            error.exit_code()
        }
    }
}

/// Joins an error and its causes on one line, skipping a cause whose text
/// its parent already contains (sqlx repeats its source in its message).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Loads configuration, sets up logging and runs `cli.command`.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let (config, ignored_env) = Config::load(cli.config.as_deref())?;
    crate::telemetry::init(cli.log_format.unwrap_or(config.log_format));
    for name in ignored_env {
        tracing::warn!(variable = %name, "ignoring environment variable that matches no configuration key");
    }
    let output = Output::new(cli.json);
    match cli.command {
        Command::Serve(args) => {
            // Read before anything else, so that a bad certificate or key
            // file exits with status 2 before the database is touched.
            let tls = crate::tls::load(&config.tls)?;
            serve::run(config, args, tls).await?
        }
        Command::Migrate => migrate::run(&config, &output).await?,
        Command::Clients(command) => clients::run(&config, &output, command).await?,
        Command::RegistrationTokens(command) => {
            registration_tokens::run(&config, &output, command).await?
        }
        Command::Grants(command) => grants::run_grants(&config, &output, command).await?,
        Command::Consents(command) => grants::run_consents(&config, &output, command).await?,
        Command::Resources(command) => resources::run(&config, &output, command).await?,
        Command::Keys { command } => keys::run(&config, command, &output).await?,
        Command::MasterKey { command } => master_key::run(&config, command, &output).await?,
        Command::Users(command) => users::run(&config, &output, command).await?,
        Command::Audit(command) => audit::run(&config, &output, command).await?,
        Command::Backup(args) => backup::run(&config, args, &output).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_may_start_with_a_hyphen() {
        for args in [
            ["tessera", "keys", "revoke", "-9aQ"],
            ["tessera", "clients", "show", "-xY2"],
            ["tessera", "clients", "delete", "-xY2"],
        ] {
            let parsed = Cli::try_parse_from(args);
            assert!(parsed.is_ok(), "{args:?}: {:?}", parsed.err());
        }
    }
}
