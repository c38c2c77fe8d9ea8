//! `tessera resources`: create, list, show, delete resource servers.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::admin::Admin;
use super::clients::pretty;
use super::Output;
use crate::audit::{kind, record_change, Change, CLI_ACTOR};
use crate::config::{Config, HumanDuration};
use crate::public_keys::{read_key_file, KeyPurpose, KeySetFetcher};
use crate::resources::{self, ResourceRequest};
use crate::store::{EncryptionKeySource, ResourceServer};

#[derive(Debug, clap::Subcommand)]
pub enum ResourcesCommand {
    /// Register a resource server; prints its introspection credentials once.
    Create(CreateArgs),
    /// List every resource server.
    List,
    /// Show one resource server.
    Show { identifier: String },
    /// Delete a resource server.
    Delete { identifier: String },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Absolute URI without a fragment; the `aud` of its access tokens.
    #[arg(long, value_name = "URI")]
    pub identifier: String,
    #[arg(long, value_name = "N")]
    pub name: String,
    /// File with the public encryption key: one JWK, or a JWK Set with one key.
    #[arg(
        long,
        value_name = "F",
        required_unless_present = "jwks_uri",
        conflicts_with = "jwks_uri"
    )]
    pub jwk_file: Option<PathBuf>,
    /// URL of the resource server's JWK Set (https, or http on loopback).
    #[arg(long, value_name = "URI")]
    pub jwks_uri: Option<String>,
    /// Scope that opens this resource server (repeatable).
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,
    /// Access-token lifetime (`90s`, `10m`, `12h`); `tokens.access_token_ttl`
    /// when left out.
    #[arg(long, value_name = "DURATION")]
    pub access_token_ttl: Option<HumanDuration>,
    /// Signing algorithm of its access tokens: ES256 (default), RS256,
    /// PS256 or EdDSA.
    #[arg(long, value_name = "A")]
    pub signing_alg: Option<String>,
}

pub async fn run(
    config: &Config,
    output: &Output,
    command: ResourcesCommand,
) -> anyhow::Result<()> {
    let admin = Admin::open(config).await?;
    let result = dispatch(&admin, output, command).await;
    admin.close().await;
    result
}

async fn dispatch(admin: &Admin, output: &Output, command: ResourcesCommand) -> anyhow::Result<()> {
    match command {
        ResourcesCommand::Create(args) => create(admin, output, args).await,
        ResourcesCommand::List => {
            let resources = admin.store.resource_servers().await?;
            let views: Vec<Value> = resources.iter().map(resource_view).collect();
            output.print(&views, || {
                resources
                    .iter()
                    .map(|resource| format!("{}\t{}", resource.identifier, resource.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        ResourcesCommand::Show { identifier } => {
            let resource = admin
                .store
                .resource_server(&identifier)
                .await?
                .with_context(|| format!("resource server {identifier} not found"))?;
            let view = resource_view(&resource);
            output.print(&view, || pretty(&view))
        }
        ResourcesCommand::Delete { identifier } => {
            if !admin.store.delete_resource_server(&identifier).await? {
                bail!("resource server {identifier} not found");
            }
            tracing::info!(%identifier, "resource server deleted");
            let change = Change {
                kind: kind::RESOURCE_DELETED,
                actor: CLI_ACTOR.to_owned(),
                client_id: None,
                detail: Some(identifier.clone()),
            };
            record_change(admin.store.as_ref(), change, admin.clock.now()).await;
            output.print(
                &json!({ "identifier": identifier, "deleted": true }),
                || format!("deleted resource server {identifier}"),
            )
        }
    }
}

async fn create(admin: &Admin, output: &Output, args: CreateArgs) -> anyhow::Result<()> {
    let jwk = match &args.jwk_file {
        None => None,
        Some(path) => Some(read_single_key(path)?),
    };
    let request = ResourceRequest {
        identifier: args.identifier.clone(),
        name: args.name.clone(),
        scopes: args.scopes.clone(),
        access_token_ttl: args.access_token_ttl.map(|ttl| ttl.as_duration()),
        signing_alg: args.signing_alg.clone(),
        jwk,
        jwks_uri: args.jwks_uri.clone(),
    };
    let fetcher = KeySetFetcher::new(admin.clock.clone());
    let created = resources::create(
        admin.store.as_ref(),
        &admin.data_keys.digester,
        &fetcher,
        &request,
        admin.clock.now(),
    )
    .await
    .context("cannot create resource server")?;

    let mut view = resource_view(&created.resource);
    view["client_id"] = json!(created.resource.introspection_client_id);
    view["client_secret"] = json!(created.introspection_secret.expose());
    output.print(&view, || {
        format!(
            "created resource server {}\nintrospection client_id: {}\nintrospection client_secret: {}\n(shown once; store it now)",
            created.resource.identifier,
            created.resource.introspection_client_id,
            created.introspection_secret.expose()
        )
    })
}

/// Reads `--jwk-file`: one public JWK, or a JWK Set containing exactly one.
fn read_single_key(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --jwk-file {}", path.display()))?;
    let mut keys = read_key_file(&text, KeyPurpose::Encryption)
        .with_context(|| format!("--jwk-file {} is rejected", path.display()))?;
    if keys.len() != 1 {
        bail!(
            "--jwk-file {} contains {} keys; give exactly one encryption key",
            path.display(),
            keys.len()
        );
    }
    Ok(keys.remove(0))
}

/// Everything about a resource server except its secret digest.
pub fn resource_view(resource: &ResourceServer) -> Value {
    let mut view = json!({
        "identifier": resource.identifier,
        "name": resource.name,
        "scopes": resource.scopes,
        "access_token_ttl_seconds": resource.access_token_ttl_seconds,
        "signing_alg": resource.signing_alg,
        "introspection_client_id": resource.introspection_client_id,
        "created_at": resource.created_at.to_rfc3339(),
        "updated_at": resource.updated_at.to_rfc3339(),
    });
    match &resource.encryption_key {
        EncryptionKeySource::Jwk(jwk) => view["jwk"] = jwk.clone(),
        EncryptionKeySource::JwksUri(uri) => view["jwks_uri"] = json!(uri),
    }
    view
}
