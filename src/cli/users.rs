//! `tessera users`: create, list, show, disable, enable and set passwords.

use std::io::BufRead;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use serde::Serialize;

use super::Output;
use crate::accounts::password::PasswordHasher;
use crate::accounts::users::{create_user, find_user, set_password, NewUser};
use crate::authorizations;
use crate::config::Config;
use crate::secret::SecretString;
use crate::store::{self, AuditEvent, Store, UserRecord};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// Read the password as one line from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List every user.
    List,
    /// Show one user.
    Show { username: String },
    /// Disable a user: their password is no longer accepted, their
    /// sessions end and their grants are revoked.
    Disable { username: String },
    /// Enable a disabled user again; revoked grants stay revoked.
    Enable { username: String },
    /// Replace a user's password (read from standard input); this also
    /// lifts a lockout.
    SetPassword {
        username: String,
        /// Read the password as one line from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// A user as printed: never the password hash.
#[derive(Serialize)]
struct UserView {
    sub: String,
    username: String,
    email: Option<String>,
    email_verified: bool,
    given_name: Option<String>,
    family_name: Option<String>,
    disabled: bool,
    locked_until: Option<chrono::DateTime<Utc>>,
    created_at: chrono::DateTime<Utc>,
    updated_at: chrono::DateTime<Utc>,
}

impl From<&UserRecord> for UserView {
    fn from(user: &UserRecord) -> Self {
        Self {
            sub: user.id.to_string(),
            username: user.username.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            given_name: user.given_name.clone(),
            family_name: user.family_name.clone(),
            disabled: user.disabled,
            locked_until: user.locked_until,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

pub async fn run(config: &Config, output: &Output, command: UsersCommand) -> anyhow::Result<()> {
    let store = store::open(&config.database_url()).await?;
    store
        .check_schema()
        .await
        .context("the database schema is not current")?;
    let result = dispatch(config, output, store.as_ref(), command).await;
    store.close().await;
    result
}

async fn dispatch(
    config: &Config,
    output: &Output,
    store: &dyn Store,
    command: UsersCommand,
) -> anyhow::Result<()> {
    match command {
        UsersCommand::Create {
            username, email, ..
        } => {
            let password = read_password()?;
            let hasher = PasswordHasher::new(&config.argon2).await?;
            let new = NewUser {
                username,
                email,
                ..NewUser::default()
            };
            let user = create_user(store, &hasher, new, password.expose(), Utc::now()).await?;
            output.print(
                &serde_json::json!({ "username": user.username, "sub": user.id.to_string() }),
                || format!("created user {} (sub {})", user.username, user.id),
            )
        }
        UsersCommand::List => {
            let users = store.list_users().await?;
            let views: Vec<UserView> = users.iter().map(UserView::from).collect();
            output.print(&views, || {
                users
                    .iter()
                    .map(|user| {
                        let state = if user.disabled { " (disabled)" } else { "" };
                        format!("{}  {}{state}", user.id, user.username)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        UsersCommand::Show { username } => {
            let user = find_user(store, &username).await?;
            let view = UserView::from(&user);
            output.print(&view, || {
                serde_json::to_string_pretty(&view).unwrap_or_default()
            })
        }
        UsersCommand::Disable { username } => {
            let user = find_user(store, &username).await?;
            let actor = crate::audit::CLI_ACTOR.to_owned();
            let ended = authorizations::disable_user(store, &user, actor, Utc::now()).await?;
            tracing::info!(sub = %user.id, grants = ended.grants.len(), "user disabled");
            let json = serde_json::json!({
                "username": user.username,
                "disabled": true,
                "ended_sessions": ended.sessions,
                "revoked_grants": ended.grants.len(),
            });
            output.print(&json, || {
                format!(
                    "disabled user {}, ended {} session(s) and revoked {} grant(s)",
                    user.username,
                    ended.sessions,
                    ended.grants.len()
                )
            })
        }
        UsersCommand::Enable { username } => {
            let user = find_user(store, &username).await?;
            let now = Utc::now();
            store.set_user_disabled(user.id, false, now).await?;
            tracing::info!(sub = %user.id, "user enabled");
            let event = AuditEvent {
                subject: Some(user.id.to_string()),
                actor: Some(crate::audit::CLI_ACTOR.to_owned()),
                ..AuditEvent::new(crate::audit::kind::USER_ENABLED, now)
            };
            crate::audit::record(store, &event).await;
            output.print(
                &serde_json::json!({ "username": user.username, "disabled": false }),
                || format!("enabled user {}", user.username),
            )
        }
        UsersCommand::SetPassword { username, .. } => {
            let password = read_password()?;
            let hasher = PasswordHasher::new(&config.argon2).await?;
            let user =
                set_password(store, &hasher, &username, password.expose(), Utc::now()).await?;
            output.print(
                &serde_json::json!({ "username": user.username, "password_changed": true }),
                || format!("changed the password of {}", user.username),
            )
        }
    }
}

/// Reads one line from standard input and drops its line ending.
fn read_password() -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.is_empty() {
        anyhow::bail!("no password on standard input: pipe one line, e.g. `printf '%s\\n' \"$PW\" | tessera users create ...`");
    }
    Ok(SecretString::new(trimmed.to_owned()))
}
