//! Accounts: users, argon2id passwords, login with brute-force protection,
//! sessions, login transactions, consent, and the login and consent pages.

pub mod consent;
pub mod login;
pub mod login_transactions;
mod pages;
pub mod password;
pub mod sessions;
pub mod sweeper;
pub mod throttle;
pub mod users;

pub(crate) use pages::live_session;
pub use pages::router;

use crate::config::Config;
use password::{PasswordError, PasswordHasher};
use throttle::FailureThrottle;

/// The in-memory parts of the accounts module, shared by all requests.
pub struct Accounts {
    pub hasher: PasswordHasher,
    pub throttle: FailureThrottle,
}

impl Accounts {
    /// Builds the hasher (computing its dummy hash) and an empty throttle.
    pub async fn new(config: &Config) -> Result<Self, PasswordError> {
        Ok(Self {
            hasher: PasswordHasher::new(&config.argon2).await?,
            throttle: FailureThrottle::new(&config.login),
        })
    }
}
