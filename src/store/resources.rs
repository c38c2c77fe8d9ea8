//! Resource servers: the audiences of access tokens. Every write bumps the
//! `resources` change counter in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// Change-counter topic bumped by every resource-server write.
pub const RESOURCES_TOPIC: &str = "resources";

/// Source of a resource server's encryption key.
#[derive(Clone, Debug, PartialEq)]
pub enum EncryptionKeySource {
    /// One public JWK registered inline.
    Jwk(serde_json::Value),
    /// A JWK Set fetched from this URL.
    JwksUri(String),
}

/// A registered resource server as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceServer {
    /// Absolute URI; the `aud` of its access tokens (RFC 8707).
    pub identifier: String,
    pub name: String,
    /// Scopes that open this resource server.
    pub scopes: Vec<String>,
    /// Lifetime of its access tokens in seconds; `tokens.access_token_ttl`
    /// applies when unset.
    pub access_token_ttl_seconds: Option<i64>,
    /// JWS algorithm of the inner token.
    pub signing_alg: String,
    pub encryption_key: EncryptionKeySource,
    /// Client id the resource server presents at the introspection endpoint.
    pub introspection_client_id: String,
    pub introspection_secret_digest: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait ResourceStore {
    /// Stores a new resource server; fails with `AlreadyExists` if its
    /// identifier is taken.
    async fn insert_resource_server(&self, resource: &ResourceServer) -> Result<(), StoreError>;

    async fn resource_server(&self, identifier: &str)
        -> Result<Option<ResourceServer>, StoreError>;

    /// Finds the resource server whose introspection client id is `client_id`.
    async fn resource_server_by_introspection_client(
        &self,
        client_id: &str,
    ) -> Result<Option<ResourceServer>, StoreError>;

    /// Returns every resource server, ordered by identifier.
    async fn resource_servers(&self) -> Result<Vec<ResourceServer>, StoreError>;

    /// Deletes a resource server; returns whether it existed.
    async fn delete_resource_server(&self, identifier: &str) -> Result<bool, StoreError>;
}
