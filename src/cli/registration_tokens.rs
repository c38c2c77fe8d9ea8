//! `tessera registration-tokens`: initial access tokens that open dynamic
//! client registration (RFC 7591 section 3) when `registration.policy` is
//! `token`. Only their HMAC digests are stored.

use anyhow::bail;
use serde_json::json;

use super::admin::Admin;
use super::Output;
use crate::audit::{self, kind, Change, CLI_ACTOR};
use crate::config::{Config, HumanDuration, RegistrationPolicy};
use crate::crypto::random_token;
use crate::store::InitialAccessToken;

#[derive(Debug, clap::Subcommand)]
pub enum RegistrationTokensCommand {
    /// Create an initial access token; prints it once.
    Create(CreateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// How long the token is valid (`90s`, `10m`, `12h`, `30d`).
    #[arg(long, default_value = "1d", value_name = "DURATION")]
    pub ttl: HumanDuration,
    /// How many registrations the token allows.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub uses: u32,
}

pub async fn run(
    config: &Config,
    output: &Output,
    command: RegistrationTokensCommand,
) -> anyhow::Result<()> {
    if config.registration.policy != RegistrationPolicy::Token {
        tracing::warn!(
            policy = ?config.registration.policy,
            "registration.policy is not \"token\", so POST /register does not ask for this token"
        );
    }
    let admin = Admin::open(config).await?;
    let RegistrationTokensCommand::Create(args) = command;
    let result = create(&admin, output, args).await;
    admin.close().await;
    result
}

async fn create(admin: &Admin, output: &Output, args: CreateArgs) -> anyhow::Result<()> {
    if args.ttl.is_zero() || args.uses == 0 {
        bail!("--ttl and --uses must be above zero");
    }
    let token = random_token();
    let now = admin.clock.now();
    let expires_at = now + args.ttl.as_chrono();
    admin
        .store
        .insert_initial_access_token(&InitialAccessToken {
            digest: admin.data_keys.digester.digest(&token),
            remaining_uses: i64::from(args.uses),
            expires_at,
            created_at: now,
        })
        .await?;
    let change = Change {
        kind: kind::REGISTRATION_TOKEN_CREATED,
        actor: CLI_ACTOR.to_owned(),
        client_id: None,
        detail: Some(format!(
            "{} use(s), expires {}",
            args.uses,
            expires_at.to_rfc3339()
        )),
    };
    audit::record_change(admin.store.as_ref(), change, now).await;
    output.print(
        &json!({
            "initial_access_token": token,
            "expires_at": expires_at.to_rfc3339(),
            "uses": args.uses,
        }),
        || format!("initial_access_token: {token}\n(shown once; valid until {expires_at})"),
    )
}
