//! argon2id password hashing (RFC 9106) on the blocking pool.
//!
//! At most `argon2.max_concurrent` hashes run at once, because each uses
//! `argon2.memory_kib` of memory. Up to `argon2.max_queued` further callers
//! wait for a slot, and the rest get [`PasswordError::Busy`]. A verification
//! always computes exactly one hash: when there is no usable stored hash
//! (unknown, disabled or locked account, or a stored hash that is malformed
//! or too expensive), it runs against a dummy hash made at start-up with the
//! configured parameters, so response times do not tell these cases apart.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::config::Argon2Params;

/// Maximum password length in bytes before normalisation. Longer ones are
/// rejected before any hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// How long a caller waits in the queue for a hashing slot.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("the password is empty")]
    Empty,
    #[error("every password hashing slot is taken and the queue is full")]
    Busy,
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// The result of checking a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verification {
    /// True only when a usable stored hash matched.
    pub matched: bool,
    /// True when the matched hash was made with other parameters than the
    /// configured ones, so it should be replaced.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords under a concurrency limit.
pub struct PasswordHasher {
    params: Params,
    ceiling: Ceiling,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    max_queued: usize,
    dummy_hash: String,
    /// Hashes computed by `hash` and `verify` since start-up.
    computed: AtomicU64,
}

/// The largest stored parameters that are computed at all.
#[derive(Clone, Copy, Debug)]
struct Ceiling {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl PasswordHasher {
    /// Builds the hasher and computes its dummy hash on the blocking pool.
    pub async fn new(config: &Argon2Params) -> Result<Self, PasswordError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|err| PasswordError::Hashing(err.to_string()))?;
        let factor = config.ceiling_factor;
        let ceiling = Ceiling {
            memory_kib: config.memory_kib.saturating_mul(factor),
            iterations: config.iterations.saturating_mul(factor),
            parallelism: config.parallelism.saturating_mul(factor),
        };
        let dummy_params = params.clone();
        let dummy_hash = tokio::task::spawn_blocking(move || {
            let password = crate::crypto::random_token();
            hash_with(&dummy_params, password.as_bytes())
        })
        .await
        .map_err(|err| PasswordError::Hashing(err.to_string()))??;
        Ok(Self {
            params,
            ceiling,
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            queued: AtomicUsize::new(0),
            max_queued: config.max_queued,
            dummy_hash,
            computed: AtomicU64::new(0),
        })
    }

    /// Hashes a new password with the configured parameters.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = normalize_password(password)?;
        if password.is_empty() {
            return Err(PasswordError::Empty);
        }
        let permit = self.acquire().await?;
        let params = self.params.clone();
        self.computed.fetch_add(1, Ordering::Relaxed);
        run_blocking(move || {
            let _permit = permit;
            hash_with(&params, password.as_bytes())
        })
        .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when
    /// `stored` is `None` or unusable. `account` names the account in the
    /// error logged for an unusable stored hash.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
        account: &str,
    ) -> Result<Verification, PasswordError> {
        let password = normalize_password(password)?;
        let usable = stored.and_then(|hash| self.check_stored(hash, account));
        let real = usable.is_some();
        let needs_rehash = usable
            .as_ref()
            .is_some_and(|params| !self.is_current(params));
        let hash = match (real, stored) {
            (true, Some(hash)) => hash.to_owned(),
            _ => self.dummy_hash.clone(),
        };
        let permit = self.acquire().await?;
        self.computed.fetch_add(1, Ordering::Relaxed);
        let matched = run_blocking(move || {
            let _permit = permit;
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .await?;
        Ok(Verification {
            matched: matched && real,
            needs_rehash: matched && real && needs_rehash,
        })
    }

    /// Returns how many hashes `hash` and `verify` have computed, so tests
    /// and metrics can check that each login attempt computes exactly one.
    pub fn hashes_computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// Returns the parameters of a stored hash if it is an argon2id hash
    /// within the ceiling. Only the PHC string is parsed: nothing is
    /// allocated for the hash's memory.
    fn check_stored(&self, stored: &str, account: &str) -> Option<Params> {
        let parsed = match PasswordHash::new(stored) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::error!(%account, %error, "stored password hash is malformed, so the login is rejected");
                return None;
            }
        };
        let algorithm_ok = parsed.algorithm.as_str() == "argon2id"
            && parsed.version.is_none_or(|version| version == 0x13);
        let params = match Params::try_from(&parsed) {
            Ok(params) if algorithm_ok => params,
            Ok(_) => {
                tracing::error!(%account, algorithm = %parsed.algorithm, "stored password hash is not argon2id v19, so the login is rejected");
                return None;
            }
            Err(error) => {
                tracing::error!(%account, %error, "stored password hash has invalid parameters, so the login is rejected");
                return None;
            }
        };
        if params.m_cost() > self.ceiling.memory_kib
            || params.t_cost() > self.ceiling.iterations
            || params.p_cost() > self.ceiling.parallelism
        {
            tracing::error!(
                %account,
                memory_kib = params.m_cost(),
                iterations = params.t_cost(),
                parallelism = params.p_cost(),
                "stored password hash exceeds the argon2 ceiling, so the login is rejected"
            );
            return None;
        }
        Some(params)
    }

    fn is_current(&self, params: &Params) -> bool {
        params.m_cost() == self.params.m_cost()
            && params.t_cost() == self.params.t_cost()
            && params.p_cost() == self.params.p_cost()
    }

    /// Takes a hashing slot, waiting in the bounded queue when all are busy.
    async fn acquire(&self) -> Result<OwnedSemaphorePermit, PasswordError> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        let _slot = QueueSlot::take(&self.queued, self.max_queued)?;
        let waited = tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.slots).acquire_owned());
        match waited.await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(PasswordError::Busy),
        }
    }
}

/// A place in the wait queue, given back on drop.
struct QueueSlot<'a>(&'a AtomicUsize);

impl<'a> QueueSlot<'a> {
    fn take(queued: &'a AtomicUsize, max: usize) -> Result<Self, PasswordError> {
        let before = queued.fetch_add(1, Ordering::SeqCst);
        let slot = Self(queued);
        if before >= max {
            return Err(PasswordError::Busy);
        }
        Ok(slot)
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Applies the length limit, then NFKC (NIST SP 800-63B section 5.1.1.2).
pub fn normalize_password(password: &str) -> Result<Zeroizing<String>, PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(Zeroizing::new(password.nfkc().collect()))
}

fn hash_with(params: &Params, password: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| PasswordError::Hashing(err.to_string()))
}

/// Runs `work` on the blocking pool inside the caller's tracing span.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|err| PasswordError::Hashing(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Params {
        Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
            max_queued: 1,
            ceiling_factor: 4,
        }
    }

    #[tokio::test]
    async fn hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(&cheap()).await.unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        let right = hasher
            .verify("correct horse", Some(&hash), "u")
            .await
            .unwrap();
        assert!(right.matched);
        assert!(!right.needs_rehash);
        let wrong = hasher
            .verify("wrong horse", Some(&hash), "u")
            .await
            .unwrap();
        assert!(!wrong.matched);
    }

    #[tokio::test]
    async fn compatibility_forms_match_after_nfkc() {
        let hasher = PasswordHasher::new(&cheap()).await.unwrap();
        // U+FB01 (LATIN SMALL LIGATURE FI) is "fi" under NFKC.
        let hash = hasher.hash("\u{fb01}sh").await.unwrap();
        assert!(
            hasher
                .verify("fish", Some(&hash), "u")
                .await
                .unwrap()
                .matched
        );
    }

    #[tokio::test]
    async fn missing_hash_never_matches() {
        let hasher = PasswordHasher::new(&cheap()).await.unwrap();
        let result = hasher.verify("anything", None, "u").await.unwrap();
        assert!(!result.matched);
    }

    #[tokio::test]
    async fn dummy_hash_password_does_not_match() {
        let hasher = PasswordHasher::new(&cheap()).await.unwrap();
        let dummy = hasher.dummy_hash.clone();
        let result = hasher.verify("", Some(&dummy), "u").await.unwrap();
        assert!(!result.matched);
    }

    #[tokio::test]
    async fn older_parameters_need_rehash() {
        let hasher = PasswordHasher::new(&cheap()).await.unwrap();
        let older = Params::new(32, 1, 1, None).unwrap();
        let hash = hash_with(&older, b"pw").unwrap();
        let result = hasher.verify("pw", Some(&hash), "u").await.unwrap();
        assert!(result.matched);
        assert!(result.needs_rehash);
        let wrong = hasher.verify("nope", Some(&hash), "u").await.unwrap();
        assert!(!wrong.needs_rehash);
    }

    #[tokio::test]
    async fn hash_above_ceiling_fails_like_wrong_password() {
        let hasher = PasswordHasher::new(&cheap()).await.unwrap();
        // A real hash of "pw" at m=257 KiB, one above the ceiling of 4 x 64.
        let above = hash_with(&Params::new(257, 1, 1, None).unwrap(), b"pw").unwrap();
        assert!(
            !hasher
                .verify("pw", Some(&above), "u")
                .await
                .unwrap()
                .matched
        );
        let huge = "$argon2id$v=19$m=4194304,t=1000,p=255$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        assert!(!hasher.verify("pw", Some(huge), "u").await.unwrap().matched);
        for malformed in [
            "",
            "$argon2id$v=19$m=,t=1$x$y",
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA",
        ] {
            let result = hasher.verify("pw", Some(malformed), "u").await.unwrap();
            assert!(!result.matched, "{malformed}");
        }
    }

    #[tokio::test]
    async fn long_password_is_rejected_before_hashing() {
        let hasher = PasswordHasher::new(&cheap()).await.unwrap();
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            hasher.verify(&long, None, "u").await,
            Err(PasswordError::TooLong)
        ));
        let limit = "a".repeat(MAX_PASSWORD_BYTES);
        assert!(hasher.hash(&limit).await.is_ok());
    }

    #[tokio::test]
    async fn full_queue_reports_busy() {
        let hasher = PasswordHasher::new(&cheap()).await.unwrap();
        let held = Arc::clone(&hasher.slots).try_acquire_owned().unwrap();
        let hasher = Arc::new(hasher);
        let waiting = {
            let hasher = Arc::clone(&hasher);
            tokio::spawn(async move { hasher.verify("pw", None, "u").await })
        };
        while hasher.queued.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let rejected = hasher.verify("pw", None, "u").await;
        assert!(matches!(rejected, Err(PasswordError::Busy)));
        drop(held);
        assert!(waiting.await.unwrap().is_ok());
        assert_eq!(hasher.queued.load(Ordering::SeqCst), 0);
    }
}
