//! `tessera grants` and `tessera consents`: what users allowed clients,
//! and ending it.

use anyhow::bail;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use serde::Serialize;

use super::admin::Admin;
use super::Output;
use crate::accounts::users::find_user;
use crate::audit::CLI_ACTOR;
use crate::authorizations;
use crate::config::Config;
use crate::store::{AuthorizationFilter, ConsentRecord, GrantRecord, Store};

#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// List the live grants (neither revoked nor expired), newest first.
    List(FilterArgs),
    /// Revoke a grant with its refresh and access tokens.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ConsentsCommand {
    /// List the scopes users approved for clients, newest first.
    List(FilterArgs),
    /// Withdraw a user's consent to a client and revoke that user's grants
    /// to it.
    Revoke {
        #[arg(long, value_name = "NAME")]
        user: String,
        #[arg(long, value_name = "ID")]
        client: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// Only this user's records.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Only this client's records.
    #[arg(long, value_name = "ID")]
    client: Option<String>,
}

/// A grant as printed.
#[derive(Serialize)]
struct GrantView<'a> {
    id: &'a str,
    client_id: &'a str,
    sub: String,
    scopes: &'a [String],
    resource: Option<&'a str>,
    created_at: String,
    expires_at: String,
}

impl<'a> From<&'a GrantRecord> for GrantView<'a> {
    fn from(grant: &'a GrantRecord) -> Self {
        Self {
            id: &grant.id,
            client_id: &grant.client_id,
            sub: grant.user_id.to_string(),
            scopes: &grant.scopes,
            resource: grant.resource.as_deref(),
            created_at: timestamp(grant.created_at),
            expires_at: timestamp(grant.expires_at),
        }
    }
}

/// A consent as printed.
#[derive(Serialize)]
struct ConsentView<'a> {
    sub: String,
    client_id: &'a str,
    scopes: &'a [String],
    updated_at: String,
}

impl<'a> From<&'a ConsentRecord> for ConsentView<'a> {
    fn from(consent: &'a ConsentRecord) -> Self {
        Self {
            sub: consent.user_id.to_string(),
            client_id: &consent.client_id,
            scopes: &consent.scopes,
            updated_at: timestamp(consent.updated_at),
        }
    }
}

pub async fn run_grants(
    config: &Config,
    output: &Output,
    command: GrantsCommand,
) -> anyhow::Result<()> {
    let admin = Admin::open(config).await?;
    let result = grants(&admin, output, command).await;
    admin.close().await;
    result
}

pub async fn run_consents(
    config: &Config,
    output: &Output,
    command: ConsentsCommand,
) -> anyhow::Result<()> {
    let admin = Admin::open(config).await?;
    let result = consents(&admin, output, command).await;
    admin.close().await;
    result
}

async fn grants(admin: &Admin, output: &Output, command: GrantsCommand) -> anyhow::Result<()> {
    let store = admin.store.as_ref();
    let now = admin.clock.now();
    match command {
        GrantsCommand::List(args) => {
            let filter = filter(store, &args).await?;
            let grants = store.live_grants(&filter, now).await?;
            let views: Vec<GrantView> = grants.iter().map(GrantView::from).collect();
            output.print(&views, || {
                let lines: Vec<String> = views.iter().map(grant_line).collect();
                lines.join("\n")
            })
        }
        GrantsCommand::Revoke { id } => {
            let actor = CLI_ACTOR.to_owned();
            if !authorizations::revoke_grant(store, &id, actor, now).await? {
                bail!("grant {id} not found or already revoked");
            }
            tracing::info!(grant_id = %id, "grant revoked");
            output.print(&serde_json::json!({ "id": id, "revoked": true }), || {
                format!("revoked grant {id}")
            })
        }
    }
}

async fn consents(admin: &Admin, output: &Output, command: ConsentsCommand) -> anyhow::Result<()> {
    let store = admin.store.as_ref();
    match command {
        ConsentsCommand::List(args) => {
            let filter = filter(store, &args).await?;
            let consents = store.consents(&filter).await?;
            let views: Vec<ConsentView> = consents.iter().map(ConsentView::from).collect();
            output.print(&views, || {
                let lines: Vec<String> = views.iter().map(consent_line).collect();
                lines.join("\n")
            })
        }
        ConsentsCommand::Revoke { user, client } => {
            let user = find_user(store, &user).await?;
            let actor = CLI_ACTOR.to_owned();
            let now = admin.clock.now();
            let ended = authorizations::withdraw_consent(store, user.id, &client, actor, now);
            let ended = ended.await?;
            if ended.consents == 0 && ended.grants.is_empty() {
                bail!(
                    "user {} has no consent or grant for client {client}",
                    user.username
                );
            }
            tracing::info!(sub = %user.id, client_id = %client, "consent withdrawn");
            let json = serde_json::json!({
                "sub": user.id.to_string(),
                "client_id": client,
                "revoked_grants": ended.grants,
            });
            output.print(&json, || {
                format!(
                    "withdrew the consent of {} to {client} and revoked {} grant(s)",
                    user.username,
                    ended.grants.len()
                )
            })
        }
    }
}

/// Builds the store filter, resolving `--user` to the user's id.
async fn filter(store: &dyn Store, args: &FilterArgs) -> anyhow::Result<AuthorizationFilter> {
    let user_id = match &args.user {
        Some(name) => Some(find_user(store, name).await?.id),
        None => None,
    };
    Ok(AuthorizationFilter {
        user_id,
        client_id: args.client.clone(),
    })
}

fn grant_line(view: &GrantView) -> String {
    format!(
        "{}  client {}  sub {}  scope \"{}\"  created {}  expires {}",
        view.id,
        view.client_id,
        view.sub,
        view.scopes.join(" "),
        view.created_at,
        view.expires_at
    )
}

fn consent_line(view: &ConsentView) -> String {
    format!(
        "sub {}  client {}  scope \"{}\"  updated {}",
        view.sub,
        view.client_id,
        view.scopes.join(" "),
        view.updated_at
    )
}

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}
