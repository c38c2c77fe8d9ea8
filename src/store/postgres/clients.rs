//! Clients and initial access tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::PostgresStore;
use crate::store::{
    decode_json, decode_list, encode_list, insert_error, ApplicationType, AuthMethod, Client,
    ClientStore, InitialAccessToken, StoreError, CLIENTS_TOPIC,
};

const COLUMNS: &str = "client_id, name, application_type, redirect_uris, \
    post_logout_redirect_uris, grant_types, response_types, scopes, \
    token_endpoint_auth_method, secret_digest, jwks, jwks_uri, default_resource, \
    id_token_signed_response_alg, first_party, require_pkce, self_registered, \
    registration_token_digest, created_at, updated_at, allowed_origins, \
    access_token_ttl_seconds, refresh_token_idle_ttl_seconds, refresh_token_absolute_ttl_seconds";

/// Increments a change counter inside the caller's transaction.
pub(super) async fn bump(connection: &mut PgConnection, topic: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO generations (topic, value) VALUES ($1, 1)
         ON CONFLICT (topic) DO UPDATE SET value = generations.value + 1",
    )
    .bind(topic)
    .execute(connection)
    .await?;
    Ok(())
}

fn client_from_row(row: &PgRow) -> Result<Client, StoreError> {
    let malformed = |message: String| StoreError::Malformed {
        what: "client",
        message,
    };
    let application_type: String = row.try_get("application_type")?;
    let auth_method: String = row.try_get("token_endpoint_auth_method")?;
    let jwks: Option<String> = row.try_get("jwks")?;
    Ok(Client {
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        application_type: ApplicationType::parse(&application_type)
            .ok_or_else(|| malformed(format!("application_type {application_type:?}")))?,
        redirect_uris: decode_list("client", row.try_get("redirect_uris")?)?,
        post_logout_redirect_uris: decode_list(
            "client",
            row.try_get("post_logout_redirect_uris")?,
        )?,
        grant_types: decode_list("client", row.try_get("grant_types")?)?,
        response_types: decode_list("client", row.try_get("response_types")?)?,
        scopes: decode_list("client", row.try_get("scopes")?)?,
        auth_method: AuthMethod::parse(&auth_method)
            .ok_or_else(|| malformed(format!("token_endpoint_auth_method {auth_method:?}")))?,
        secret_digest: row.try_get("secret_digest")?,
        jwks: jwks
            .as_deref()
            .map(|text| decode_json("client", text))
            .transpose()?,
        jwks_uri: row.try_get("jwks_uri")?,
        default_resource: row.try_get("default_resource")?,
        id_token_signed_response_alg: row.try_get("id_token_signed_response_alg")?,
        first_party: row.try_get("first_party")?,
        require_pkce: row.try_get("require_pkce")?,
        self_registered: row.try_get("self_registered")?,
        registration_token_digest: row.try_get("registration_token_digest")?,
        allowed_origins: decode_list("client", row.try_get("allowed_origins")?)?,
        access_token_ttl_seconds: row.try_get("access_token_ttl_seconds")?,
        refresh_token_idle_ttl_seconds: row.try_get("refresh_token_idle_ttl_seconds")?,
        refresh_token_absolute_ttl_seconds: row.try_get("refresh_token_absolute_ttl_seconds")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        let sql = format!(
            "INSERT INTO clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
             $23, $24)"
        );
        sqlx::query(&sql)
            .bind(&client.client_id)
            .bind(&client.name)
            .bind(client.application_type.as_str())
            .bind(encode_list(&client.redirect_uris))
            .bind(encode_list(&client.post_logout_redirect_uris))
            .bind(encode_list(&client.grant_types))
            .bind(encode_list(&client.response_types))
            .bind(encode_list(&client.scopes))
            .bind(client.auth_method.as_str())
            .bind(&client.secret_digest)
            .bind(client.jwks.as_ref().map(|jwks| jwks.to_string()))
            .bind(&client.jwks_uri)
            .bind(&client.default_resource)
            .bind(&client.id_token_signed_response_alg)
            .bind(client.first_party)
            .bind(client.require_pkce)
            .bind(client.self_registered)
            .bind(&client.registration_token_digest)
            .bind(client.created_at)
            .bind(client.updated_at)
            .bind(encode_list(&client.allowed_origins))
            .bind(client.access_token_ttl_seconds)
            .bind(client.refresh_token_idle_ttl_seconds)
            .bind(client.refresh_token_absolute_ttl_seconds)
            .execute(&mut *transaction)
            .await
            .map_err(|err| insert_error(err, "client", &client.client_id))?;
        bump(&mut transaction, CLIENTS_TOPIC).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM clients WHERE client_id = $1");
        let row = sqlx::query(&sql)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM clients ORDER BY created_at, client_id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn update_client(&self, client: &Client) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        let result = sqlx::query(
            "UPDATE clients SET name = $2, application_type = $3, redirect_uris = $4,
                 post_logout_redirect_uris = $5, grant_types = $6, response_types = $7,
                 scopes = $8, token_endpoint_auth_method = $9, secret_digest = $10,
                 jwks = $11, jwks_uri = $12, default_resource = $13,
                 id_token_signed_response_alg = $14, first_party = $15, require_pkce = $16,
                 self_registered = $17, registration_token_digest = $18, updated_at = $19,
                 allowed_origins = $20, access_token_ttl_seconds = $21,
                 refresh_token_idle_ttl_seconds = $22, refresh_token_absolute_ttl_seconds = $23
             WHERE client_id = $1",
        )
        .bind(&client.client_id)
        .bind(&client.name)
        .bind(client.application_type.as_str())
        .bind(encode_list(&client.redirect_uris))
        .bind(encode_list(&client.post_logout_redirect_uris))
        .bind(encode_list(&client.grant_types))
        .bind(encode_list(&client.response_types))
        .bind(encode_list(&client.scopes))
        .bind(client.auth_method.as_str())
        .bind(&client.secret_digest)
        .bind(client.jwks.as_ref().map(|jwks| jwks.to_string()))
        .bind(&client.jwks_uri)
        .bind(&client.default_resource)
        .bind(&client.id_token_signed_response_alg)
        .bind(client.first_party)
        .bind(client.require_pkce)
        .bind(client.self_registered)
        .bind(&client.registration_token_digest)
        .bind(client.updated_at)
        .bind(encode_list(&client.allowed_origins))
        .bind(client.access_token_ttl_seconds)
        .bind(client.refresh_token_idle_ttl_seconds)
        .bind(client.refresh_token_absolute_ttl_seconds)
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() != 1 {
            return Err(StoreError::NotFound {
                what: "client",
                id: client.client_id.clone(),
            });
        }
        bump(&mut transaction, CLIENTS_TOPIC).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        let result = sqlx::query(
            "UPDATE clients SET secret_digest = $2, updated_at = $3 WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(secret_digest)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() != 1 {
            return Err(StoreError::NotFound {
                what: "client",
                id: client_id.to_owned(),
            });
        }
        bump(&mut transaction, CLIENTS_TOPIC).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn allowed_origins(&self) -> Result<Vec<String>, StoreError> {
        let lists: Vec<String> =
            sqlx::query_scalar("SELECT allowed_origins FROM clients WHERE allowed_origins <> '[]'")
                .fetch_all(&self.pool)
                .await?;
        let mut origins = std::collections::BTreeSet::new();
        for list in &lists {
            origins.extend(decode_list("client", list)?);
        }
        Ok(origins.into_iter().collect())
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        // Codes and refresh tokens go with their grants (ON DELETE CASCADE).
        sqlx::query("DELETE FROM grants WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *transaction)
            .await?;
        let result = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *transaction)
            .await?;
        bump(&mut transaction, CLIENTS_TOPIC).await?;
        transaction.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    async fn insert_initial_access_token(
        &self,
        token: &InitialAccessToken,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO initial_access_tokens (digest, remaining_uses, expires_at, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&token.digest)
        .bind(token.remaining_uses)
        .bind(token.expires_at)
        .bind(token.created_at)
        .execute(&self.pool)
        .await
        .map_err(|err| insert_error(err, "initial access token", "(digest)"))?;
        Ok(())
    }

    async fn consume_initial_access_token(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE initial_access_tokens SET remaining_uses = remaining_uses - 1
             WHERE digest = $1 AND remaining_uses > 0 AND expires_at > $2",
        )
        .bind(digest)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
