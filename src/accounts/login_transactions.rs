//! The internal API through which the authorization endpoint hands a
//! browser to the login and consent pages, and reads back the outcome.
//!
//! The transaction id travels in `?tx=`; only its digest is stored. Once
//! the user approves or denies, the pages record the outcome and redirect
//! to the transaction's return path, a relative path on Tessera fixed when
//! the transaction was created and never taken from the browser's request.

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::crypto::{random_token, Digester};
use crate::store::{LoginTransactionRecord, Store, StoreError};

/// Maximum length of a transaction id accepted from a request. Issued ids
/// have 43 characters.
pub const MAX_TRANSACTION_ID_BYTES: usize = 64;

/// The request details the authorization endpoint passes when it sends a
/// browser to log in.
#[derive(Clone, Debug)]
pub struct NewLoginTransaction {
    pub client_id: String,
    pub client_name: String,
    pub first_party: bool,
    pub scopes: Vec<String>,
    pub login_hint: Option<String>,
    /// The request had `prompt=consent`.
    pub prompt_consent: bool,
    /// Path (with query) on Tessera, starting with a single `/`.
    pub return_path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginTransactionError {
    #[error("invalid return path: it must be a relative path starting with one `/`")]
    InvalidReturnPath,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a transaction and returns its id, for `/login?tx=ID`.
pub async fn create_login_transaction(
    store: &dyn Store,
    digester: &Digester,
    config: &Config,
    new: NewLoginTransaction,
    now: DateTime<Utc>,
) -> Result<String, LoginTransactionError> {
    if !is_relative_path(&new.return_path) {
        return Err(LoginTransactionError::InvalidReturnPath);
    }
    let id = random_token();
    let record = LoginTransactionRecord {
        id_digest: digester.digest(&id),
        client_id: new.client_id,
        client_name: new.client_name,
        first_party: new.first_party,
        scopes: new.scopes,
        login_hint: new.login_hint,
        prompt_consent: new.prompt_consent,
        return_path: new.return_path,
        csrf_digest: None,
        created_at: now,
        expires_at: now + config.login.transaction_ttl.as_chrono(),
        outcome: None,
    };
    store.insert_login_transaction(&record).await?;
    Ok(id)
}

/// Loads an unexpired transaction by the id from a request.
pub async fn find_login_transaction(
    store: &dyn Store,
    digester: &Digester,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<LoginTransactionRecord>, StoreError> {
    if id.is_empty() || id.len() > MAX_TRANSACTION_ID_BYTES {
        return Ok(None);
    }
    store.login_transaction(&digester.digest(id), now).await
}

/// Removes a decided transaction and returns it with its outcome, once.
pub async fn take_login_outcome(
    store: &dyn Store,
    digester: &Digester,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<LoginTransactionRecord>, StoreError> {
    if id.is_empty() || id.len() > MAX_TRANSACTION_ID_BYTES {
        return Ok(None);
    }
    store
        .take_login_transaction(&digester.digest(id), now)
        .await
}

/// Returns the URL path to redirect to: the issuer's path followed by
/// `return_path`.
pub fn return_location(config: &Config, return_path: &str) -> String {
    format!("{}{}", issuer_path(config), return_path)
}

/// Returns the issuer's path without a trailing slash (empty for a bare
/// host).
pub fn issuer_path(config: &Config) -> String {
    url::Url::parse(&config.issuer)
        .map(|url| url.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// Checks for a path on this server: one leading `/`, no scheme, no
/// authority, no backslash and no control character.
fn is_relative_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_must_be_local() {
        for good in ["/authorize/resume?tx=1", "/"] {
            assert!(is_relative_path(good), "{good}");
        }
        for bad in [
            "https://evil.test/",
            "//evil.test/",
            "/\\evil.test",
            "evil",
            "",
            "/a\nb",
        ] {
            assert!(!is_relative_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn location_keeps_issuer_path() {
        let config = Config {
            issuer: "https://id.example.com/tenant-a".into(),
            ..Config::default()
        };
        assert_eq!(return_location(&config, "/x?y=1"), "/tenant-a/x?y=1");
        assert_eq!(return_location(&Config::default(), "/x"), "/x");
    }
}
