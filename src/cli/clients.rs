//! `tessera clients`: create, list, show, rotate-secret and delete.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::admin::Admin;
use super::Output;
use crate::authorizations;
use crate::clients::{self, ClientMetadata, Registrar, RegistrationError};
use crate::config::{Config, HumanDuration};
use crate::public_keys::{read_key_file, KeyPurpose};
use crate::store::Client;

#[derive(Debug, clap::Subcommand)]
pub enum ClientsCommand {
    /// Register a client; prints its id and, once, its secret.
    Create(Box<CreateArgs>),
    /// List every client.
    List,
    /// Show one client.
    Show {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Issue a new client secret, printed once; the old one stops working.
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Delete a client.
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Display name shown on the consent page.
    #[arg(long)]
    pub name: String,
    /// Redirect URI (repeatable): https, http on loopback, or a private-use
    /// scheme with a dot for native apps.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URI for RP-initiated logout (repeatable).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Grant type (repeatable); authorization_code and refresh_token when
    /// none is given.
    #[arg(long = "grant-type", value_name = "G")]
    pub grant_types: Vec<String>,
    /// Scope the client may request (repeatable).
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,
    /// A public client (same as `--auth-method none`).
    #[arg(long, conflicts_with = "auth_method")]
    pub public: bool,
    /// Token endpoint authentication: client_secret_basic (default),
    /// client_secret_post, private_key_jwt or none.
    #[arg(long, value_name = "M")]
    pub auth_method: Option<String>,
    /// URL of the client's JWK Set, for private_key_jwt.
    #[arg(long, value_name = "URI", conflicts_with = "jwks_file")]
    pub jwks_uri: Option<String>,
    /// File with the client's public JWK or JWK Set, for private_key_jwt.
    #[arg(long, value_name = "F")]
    pub jwks_file: Option<PathBuf>,
    /// Resource server identifier used when a request names no resource.
    #[arg(long, value_name = "URI")]
    pub default_resource: Option<String>,
    /// ID token signing algorithm: RS256 (default), ES256, PS256 or EdDSA.
    #[arg(long, value_name = "A")]
    pub id_token_alg: Option<String>,
    /// Skip the consent page for this client.
    #[arg(long)]
    pub first_party: bool,
    /// Let this confidential client use the code flow without PKCE.
    #[arg(long)]
    pub allow_no_pkce: bool,
    /// Browser origin whose scripts may call the token, userinfo, revocation
    /// and introspection endpoints as this client (repeatable), written as
    /// browsers send it: https://app.example.com, http only on loopback.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// Access-token lifetime (`90s`, `10m`, `12h`), at most 24h; the shorter
    /// one wins when the resource server sets one too.
    #[arg(long, value_name = "DURATION")]
    pub access_token_ttl: Option<HumanDuration>,
    /// How long an unused refresh token stays valid; each refresh renews it.
    /// Default: `tokens.refresh_token_idle_ttl`.
    #[arg(long, value_name = "DURATION")]
    pub refresh_token_idle_ttl: Option<HumanDuration>,
    /// How long after the user's approval a grant's refresh tokens work,
    /// however often they rotate. Default: `tokens.refresh_token_absolute_ttl`.
    #[arg(long, value_name = "DURATION")]
    pub refresh_token_absolute_ttl: Option<HumanDuration>,
}

pub async fn run(config: &Config, output: &Output, command: ClientsCommand) -> anyhow::Result<()> {
    let admin = Admin::open(config).await?;
    let result = dispatch(&admin, output, command).await;
    admin.close().await;
    result
}

async fn dispatch(admin: &Admin, output: &Output, command: ClientsCommand) -> anyhow::Result<()> {
    match command {
        ClientsCommand::Create(args) => create(admin, output, *args).await,
        ClientsCommand::List => {
            let clients = admin.store.clients().await?;
            let views: Vec<Value> = clients.iter().map(client_view).collect();
            output.print(&views, || {
                clients
                    .iter()
                    .map(|client| format!("{}\t{}", client.client_id, client.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        ClientsCommand::Show { client_id } => {
            let client = admin
                .store
                .client(&client_id)
                .await?
                .with_context(|| format!("client {client_id} not found"))?;
            let view = client_view(&client);
            output.print(&view, || pretty(&view))
        }
        ClientsCommand::RotateSecret { client_id } => {
            let secret = clients::rotate_secret(
                admin.store.as_ref(),
                &admin.data_keys.digester,
                &client_id,
                admin.clock.now(),
            )
            .await?;
            output.print(
                &json!({ "client_id": client_id, "client_secret": secret.expose() }),
                || {
                    format!(
                        "client_secret: {}\n(shown once; store it now)",
                        secret.expose()
                    )
                },
            )
        }
        ClientsCommand::Delete { client_id } => {
            if !admin.store.delete_client(&client_id).await? {
                bail!("client {client_id} not found");
            }
            let now = admin.clock.now();
            let ended = authorizations::end_client(admin.store.as_ref(), &client_id, now).await?;
            let access_tokens = ended.access_tokens;
            tracing::info!(%client_id, access_tokens, "client deleted");
            let actor = crate::audit::CLI_ACTOR.to_owned();
            let kind = crate::audit::kind::CLIENT_DELETED;
            clients::record_change(admin.store.as_ref(), kind, &client_id, actor, now).await;
            let json = json!({
                "client_id": client_id,
                "deleted": true,
                "revoked_access_tokens": access_tokens,
            });
            output.print(&json, || {
                format!("deleted client {client_id} with its grants; revoked {access_tokens} access token(s)")
            })
        }
    }
}

async fn create(admin: &Admin, output: &Output, args: CreateArgs) -> anyhow::Result<()> {
    let jwks = match &args.jwks_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --jwks-file {}", path.display()))?;
            let keys = read_key_file(&text, KeyPurpose::Signature)
                .with_context(|| format!("--jwks-file {} is rejected", path.display()))?;
            Some(json!({ "keys": keys }))
        }
    };
    let auth_method = if args.public {
        Some("none".to_owned())
    } else {
        args.auth_method.clone()
    };
    let grant_types = if args.grant_types.is_empty() {
        vec!["authorization_code".to_owned(), "refresh_token".to_owned()]
    } else {
        args.grant_types.clone()
    };
    // A private-use scheme marks a native app (RFC 8252 section 7.1).
    let native = args
        .redirect_uris
        .iter()
        .filter_map(|uri| {
            uri.split_once(':')
                .map(|(scheme, _)| scheme.to_ascii_lowercase())
        })
        .any(|scheme| scheme.contains('.'));
    let metadata = ClientMetadata {
        client_name: Some(args.name.clone()),
        application_type: Some(if native { "native" } else { "web" }.to_owned()),
        redirect_uris: args.redirect_uris.clone(),
        post_logout_redirect_uris: args.post_logout_redirect_uris.clone(),
        grant_types: Some(grant_types),
        response_types: None,
        scope: (!args.scopes.is_empty()).then(|| args.scopes.join(" ")),
        token_endpoint_auth_method: auth_method,
        jwks,
        jwks_uri: args.jwks_uri.clone(),
        id_token_signed_response_alg: args.id_token_alg.clone(),
        allowed_origins: args.allowed_origins.clone(),
        default_resource: args.default_resource.clone(),
        first_party: args.first_party,
        allow_no_pkce: args.allow_no_pkce,
        access_token_ttl: args.access_token_ttl.map(|ttl| ttl.as_duration()),
        refresh_token_idle_ttl: args.refresh_token_idle_ttl.map(|ttl| ttl.as_duration()),
        refresh_token_absolute_ttl: args.refresh_token_absolute_ttl.map(|ttl| ttl.as_duration()),
    };
    if args.name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    let registered = clients::register(
        admin.store.as_ref(),
        &admin.data_keys.digester,
        &metadata,
        Registrar::Administrator,
        admin.clock.now(),
    )
    .await
    .map_err(|err| match err {
        RegistrationError::Metadata(err) => {
            anyhow::anyhow!(
                "cannot create client: {} ({})",
                err.description,
                err.code.as_str()
            )
        }
        RegistrationError::Store(err) => anyhow::Error::new(err).context("cannot create client"),
    })?;

    let mut view = client_view(&registered.client);
    if let Some(secret) = &registered.client_secret {
        view["client_secret"] = json!(secret.expose());
    }
    output.print(&view, || {
        let mut text = format!("created client {}", registered.client.client_id);
        if let Some(secret) = &registered.client_secret {
            text.push_str(&format!(
                "\nclient_secret: {}\n(shown once; store it now)",
                secret.expose()
            ));
        }
        text
    })
}

/// Everything about a client except its secret digests.
pub fn client_view(client: &Client) -> Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "application_type": client.application_type.as_str(),
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "response_types": client.response_types,
        "scopes": client.scopes,
        "token_endpoint_auth_method": client.auth_method.as_str(),
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "default_resource": client.default_resource,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "first_party": client.first_party,
        "require_pkce": client.require_pkce,
        "self_registered": client.self_registered,
        "allowed_origins": client.allowed_origins,
        "access_token_ttl_seconds": client.access_token_ttl_seconds,
        "refresh_token_idle_ttl_seconds": client.refresh_token_idle_ttl_seconds,
        "refresh_token_absolute_ttl_seconds": client.refresh_token_absolute_ttl_seconds,
        "created_at": client.created_at.to_rfc3339(),
        "updated_at": client.updated_at.to_rfc3339(),
    })
}

/// Renders a view as `key: value` lines for people.
pub fn pretty(view: &Value) -> String {
    let Some(members) = view.as_object() else {
        return view.to_string();
    };
    members
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}: {text}"),
            other => format!("{key}: {other}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
