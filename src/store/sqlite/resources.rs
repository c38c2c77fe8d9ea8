//! Resource servers.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::clients::bump;
use super::{from_millis, to_millis, SqliteStore};
use crate::store::{
    decode_json, decode_list, encode_list, insert_error, EncryptionKeySource, ResourceServer,
    ResourceStore, StoreError, RESOURCES_TOPIC,
};

const COLUMNS: &str = "identifier, name, scopes, access_token_ttl_seconds, signing_alg, \
    encryption_jwk, jwks_uri, introspection_client_id, introspection_secret_digest, \
    created_at, updated_at";

fn resource_from_row(row: &SqliteRow) -> Result<ResourceServer, StoreError> {
    let jwk: Option<String> = row.try_get("encryption_jwk")?;
    let jwks_uri: Option<String> = row.try_get("jwks_uri")?;
    let encryption_key = match (jwk, jwks_uri) {
        (Some(jwk), _) => EncryptionKeySource::Jwk(decode_json("resource server", &jwk)?),
        (None, Some(uri)) => EncryptionKeySource::JwksUri(uri),
        (None, None) => {
            return Err(StoreError::Malformed {
                what: "resource server",
                message: "no encryption key".into(),
            })
        }
    };
    Ok(ResourceServer {
        identifier: row.try_get("identifier")?,
        name: row.try_get("name")?,
        scopes: decode_list("resource server", row.try_get("scopes")?)?,
        access_token_ttl_seconds: row.try_get("access_token_ttl_seconds")?,
        signing_alg: row.try_get("signing_alg")?,
        encryption_key,
        introspection_client_id: row.try_get("introspection_client_id")?,
        introspection_secret_digest: row.try_get("introspection_secret_digest")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

#[async_trait]
impl ResourceStore for SqliteStore {
    async fn insert_resource_server(&self, resource: &ResourceServer) -> Result<(), StoreError> {
        let (jwk, jwks_uri) = match &resource.encryption_key {
            EncryptionKeySource::Jwk(jwk) => (Some(jwk.to_string()), None),
            EncryptionKeySource::JwksUri(uri) => (None, Some(uri.clone())),
        };
        let mut transaction = self.begin_write().await?;
        let sql = format!(
            "INSERT INTO resource_servers ({COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        );
        sqlx::query(&sql)
            .bind(&resource.identifier)
            .bind(&resource.name)
            .bind(encode_list(&resource.scopes))
            .bind(resource.access_token_ttl_seconds)
            .bind(&resource.signing_alg)
            .bind(jwk)
            .bind(jwks_uri)
            .bind(&resource.introspection_client_id)
            .bind(&resource.introspection_secret_digest)
            .bind(to_millis(resource.created_at))
            .bind(to_millis(resource.updated_at))
            .execute(&mut *transaction)
            .await
            .map_err(|err| insert_error(err, "resource server", &resource.identifier))?;
        bump(&mut transaction, RESOURCES_TOPIC).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn resource_server(
        &self,
        identifier: &str,
    ) -> Result<Option<ResourceServer>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM resource_servers WHERE identifier = ?1");
        let row = sqlx::query(&sql)
            .bind(identifier)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(resource_from_row).transpose()
    }

    async fn resource_server_by_introspection_client(
        &self,
        client_id: &str,
    ) -> Result<Option<ResourceServer>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM resource_servers WHERE introspection_client_id = ?1");
        let row = sqlx::query(&sql)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(resource_from_row).transpose()
    }

    async fn resource_servers(&self) -> Result<Vec<ResourceServer>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM resource_servers ORDER BY identifier");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(resource_from_row).collect()
    }

    async fn delete_resource_server(&self, identifier: &str) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        let result = sqlx::query("DELETE FROM resource_servers WHERE identifier = ?1")
            .bind(identifier)
            .execute(&mut *transaction)
            .await?;
        bump(&mut transaction, RESOURCES_TOPIC).await?;
        transaction.commit().await?;
        Ok(result.rows_affected() == 1)
    }
}
