//! User accounts: username rules and account administration.
//!
//! Usernames are compared in a normalised form: NFKC, then Unicode lower
//! case, then NFKC again, following the PRECIS UsernameCaseMapped profile
//! (RFC 8265 section 3.3). `Ｕser1` (fullwidth) and `USER1` both become
//! `user1`, so two accounts can never differ only in case or width.

use chrono::{DateTime, Utc};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use super::password::{PasswordError, PasswordHasher};
use crate::store::{Store, StoreError, UserRecord};

/// Maximum username length in bytes before normalisation.
pub const MAX_USERNAME_BYTES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("invalid username: {0}")]
    InvalidUsername(&'static str),
    #[error("invalid email address: it must contain one @ and no spaces")]
    InvalidEmail,
    #[error("username {0:?} is already taken")]
    Taken(String),
    #[error("user {0:?} not found")]
    NotFound(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Normalises a username for storage and lookup, or returns why it is
/// invalid.
pub fn normalize_username(raw: &str) -> Result<String, UserError> {
    if raw.len() > MAX_USERNAME_BYTES {
        return Err(UserError::InvalidUsername("longer than 256 bytes"));
    }
    let folded: String = raw
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfkc()
        .collect();
    if folded.is_empty() {
        return Err(UserError::InvalidUsername("empty"));
    }
    if folded.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UserError::InvalidUsername(
            "contains a space or control character",
        ));
    }
    Ok(folded)
}

/// The fields of a new account.
#[derive(Debug, Default)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// Creates an account with a hashed password.
pub async fn create_user(
    store: &dyn Store,
    hasher: &PasswordHasher,
    new: NewUser,
    password: &str,
    now: DateTime<Utc>,
) -> Result<UserRecord, UserError> {
    let username = normalize_username(&new.username)?;
    if let Some(email) = &new.email {
        let at_count = email.matches('@').count();
        if at_count != 1 || email.starts_with('@') || email.ends_with('@') || email.contains(' ') {
            return Err(UserError::InvalidEmail);
        }
    }
    let password_hash = hasher.hash(password).await?;
    let user = UserRecord {
        id: Uuid::new_v4(),
        username,
        email: new.email,
        email_verified: false,
        given_name: new.given_name,
        family_name: new.family_name,
        disabled: false,
        password_hash,
        failed_logins: 0,
        locked_until: None,
        created_at: now,
        updated_at: now,
    };
    match store.insert_user(&user).await {
        Ok(()) => Ok(user),
        Err(StoreError::AlreadyExists { .. }) => Err(UserError::Taken(user.username)),
        Err(other) => Err(other.into()),
    }
}

/// Finds an account by any spelling of its username.
pub async fn find_user(store: &dyn Store, raw: &str) -> Result<UserRecord, UserError> {
    let username = normalize_username(raw)?;
    store
        .user_by_username(&username)
        .await?
        .ok_or(UserError::NotFound(username))
}

/// Replaces an account's password; this also lifts a lockout.
pub async fn set_password(
    store: &dyn Store,
    hasher: &PasswordHasher,
    raw_username: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<UserRecord, UserError> {
    let user = find_user(store, raw_username).await?;
    let hash = hasher.hash(password).await?;
    if !store.set_password_hash(user.id, &hash, now).await? {
        return Err(UserError::NotFound(user.username));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_case_and_width() {
        let cases = [
            ("Alice", "alice"),
            ("ALICE", "alice"),
            ("\u{ff21}lice", "alice"),
            ("J\u{fc}rgen", "j\u{fc}rgen"),
            ("Ju\u{308}rgen", "j\u{fc}rgen"),
            ("\u{212b}ngstr\u{f6}m", "\u{e5}ngstr\u{f6}m"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_username(raw).unwrap(), expected, "{raw}");
        }
    }

    #[test]
    fn usernames_reject_empty_space_and_long() {
        for raw in ["", "a b", "tab\there", "nul\u{0}", "\u{3000}"] {
            assert!(normalize_username(raw).is_err(), "{raw:?}");
        }
        assert!(normalize_username(&"a".repeat(257)).is_err());
        assert!(normalize_username(&"a".repeat(256)).is_ok());
    }
}
