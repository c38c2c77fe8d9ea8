//! Configuration: built-in defaults, then a TOML file (`--config`), then
//! `TESSERA_*` environment variables, validated once at start-up.
//!
//! Every subcommand reads configuration through [`Config::load`], so the CLI
//! and a running server given the same file and environment agree on the
//! store, the issuer and the master key. A top-level key `name` is overridden
//! by `TESSERA_NAME`; a nested key `section.key` by `TESSERA_SECTION__KEY`,
//! and `section.class.key` by `TESSERA_SECTION__CLASS__KEY`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::keys::{EncryptionAlg, SigningAlg};

mod audit;
mod cache;
mod duration;
mod http;
mod rate_limits;

pub use audit::AuditSettings;
pub use cache::CacheSettings;
pub use duration::HumanDuration;
pub use http::HttpSettings;
pub use rate_limits::{RateLimit, RateLimitSettings};

/// Prefix of the environment variables that override file keys.
const ENV_PREFIX: &str = "TESSERA_";

/// Keys that have no default value, so they are missing from the serialized
/// defaults but may still be set by file or environment.
const OPTIONAL_KEYS: &[&str] = &[
    "database_url",
    "master_key",
    "master_key_file",
    "metrics_listen",
    "tls.cert_file",
    "tls.key_file",
];

/// The validated configuration of one Tessera process.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Issuer identifier (OIDC Core section 2): https, or http on loopback.
    pub issuer: String,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// `postgres://...` or `sqlite://...`; defaults to a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Folder for the SQLite database and the development master key.
    pub data_dir: PathBuf,
    /// Base64 of the 32-byte master key; usually given as `TESSERA_MASTER_KEY`.
    #[serde(skip_serializing)]
    pub master_key: Option<crate::secret::SecretString>,
    /// File holding the master key, read when `master_key` is not set.
    pub master_key_file: Option<PathBuf>,
    /// Address of the Prometheus metrics listener; off when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// `text` (human-readable) or `json` log lines on standard error.
    pub log_format: LogFormat,
    pub tokens: TokenLifetimes,
    pub argon2: Argon2Params,
    pub keys: KeySchedule,
    pub registration: RegistrationSettings,
    pub login: LoginPolicy,
    pub http: HttpSettings,
    pub rate_limits: RateLimitSettings,
    pub audit: AuditSettings,
    pub cache: CacheSettings,
    pub tls: TlsSettings,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Lifetimes of the artifacts Tessera issues.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenLifetimes {
    pub authorization_code_ttl: HumanDuration,
    pub access_token_ttl: HumanDuration,
    pub id_token_ttl: HumanDuration,
    pub refresh_token_idle_ttl: HumanDuration,
    pub refresh_token_absolute_ttl: HumanDuration,
    /// Window in which a just-rotated refresh token may be presented again.
    pub refresh_reuse_interval: HumanDuration,
    /// Clock skew accepted on inbound assertions and added to key retirement.
    pub clock_skew: HumanDuration,
}

/// argon2id cost parameters (RFC 9106), OWASP's recommendation by default.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Params {
    /// Memory per hash in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at the same time; further logins wait in a queue.
    pub max_concurrent: usize,
    /// Logins that may wait for a hashing slot; the next one gets 503.
    pub max_queued: usize,
    /// A stored hash whose memory, iterations or parallelism exceeds this
    /// multiple of the configured value is rejected before it is computed.
    pub ceiling_factor: u32,
}

/// Brute-force protection, sessions and login transactions.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginPolicy {
    /// Failed logins for one account, within `failure_window`, that lock it.
    pub lockout_threshold: u32,
    /// How long a locked account refuses every password.
    pub lockout_duration: HumanDuration,
    /// Failed logins from one client address, within `failure_window`, after
    /// which that address gets 429 until the window has passed.
    pub ip_lockout_threshold: u32,
    /// How long a failed login counts towards delays and lockouts.
    pub failure_window: HumanDuration,
    /// Delay before checking the password after the second failure; it
    /// doubles with each further failure up to `max_delay`.
    pub base_delay: HumanDuration,
    pub max_delay: HumanDuration,
    /// A session unused this long ends.
    pub session_idle_timeout: HumanDuration,
    /// A session ends this long after login, however active.
    pub session_absolute_timeout: HumanDuration,
    /// How long a login transaction (one pass through login and consent) lives.
    pub transaction_ttl: HumanDuration,
}

/// Dynamic client registration (`POST /register`, RFC 7591).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationSettings {
    pub policy: RegistrationPolicy,
}

/// Who may register clients through `POST /register`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    /// Registration is off; only the CLI creates clients.
    #[default]
    Closed,
    /// Anyone may register a client limited to the built-in scopes.
    Open,
    /// A registration needs an initial access token from
    /// `tessera clients initial-access-token`.
    Token,
}

/// Native TLS: with both files set `serve` speaks only HTTPS, with neither
/// only plain HTTP (for a reverse proxy in front, or loopback).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain, the server certificate first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the server certificate: PKCS#8, PKCS#1 (RSA) or
    /// SEC1 (EC), unencrypted.
    pub key_file: Option<PathBuf>,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }

    /// Checks that both files or neither are set. Reading them is left to
    /// `serve`, so other commands run where the files are absent.
    fn validate(&self) -> Result<(), ConfigError> {
        let (missing, present) = match (&self.cert_file, &self.key_file) {
            (Some(_), None) => ("tls.key_file", "tls.cert_file"),
            (None, Some(_)) => ("tls.cert_file", "tls.key_file"),
            _ => return Ok(()),
        };
        Err(ConfigError::Field {
            key: missing.to_owned(),
            message: format!(
                "missing while `{present}` is set; set both to serve HTTPS, or neither to \
                 serve plain HTTP"
            ),
        })
    }
}

/// Signing-key rotation schedule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySchedule {
    /// How long a key stays `current` before the `next` key replaces it.
    pub rotation_period: HumanDuration,
    /// How long a `next` key is published before it signs anything.
    pub publish_ahead: HumanDuration,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: HumanDuration,
    /// How often each instance reloads the key ring from the store.
    pub reload_interval: HumanDuration,
    /// RSA modulus size for RS256, PS256 and RSA-OAEP-256 keys.
    pub rsa_bits: u32,
    /// Algorithms Tessera keeps a signing key for.
    pub signing_algs: Vec<SigningAlg>,
    /// Key management algorithm of Tessera's own encryption key.
    pub encryption_alg: EncryptionAlg,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            data_dir: PathBuf::from("./tessera-data"),
            master_key: None,
            master_key_file: None,
            metrics_listen: None,
            log_format: LogFormat::Text,
            tokens: TokenLifetimes::default(),
            argon2: Argon2Params::default(),
            keys: KeySchedule::default(),
            registration: RegistrationSettings::default(),
            login: LoginPolicy::default(),
            http: HttpSettings::default(),
            rate_limits: RateLimitSettings::default(),
            audit: AuditSettings::default(),
            cache: CacheSettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            authorization_code_ttl: HumanDuration::from_secs(60),
            access_token_ttl: HumanDuration::from_secs(10 * 60),
            id_token_ttl: HumanDuration::from_secs(60 * 60),
            refresh_token_idle_ttl: HumanDuration::from_secs(30 * 86_400),
            refresh_token_absolute_ttl: HumanDuration::from_secs(90 * 86_400),
            refresh_reuse_interval: HumanDuration::from_secs(0),
            clock_skew: HumanDuration::from_secs(60),
        }
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        // OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1.
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 4,
            max_queued: 64,
            ceiling_factor: 4,
        }
    }
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            lockout_threshold: 10,
            lockout_duration: HumanDuration::from_secs(15 * 60),
            ip_lockout_threshold: 100,
            failure_window: HumanDuration::from_secs(15 * 60),
            base_delay: HumanDuration::from_millis(250),
            max_delay: HumanDuration::from_secs(5),
            session_idle_timeout: HumanDuration::from_secs(30 * 60),
            session_absolute_timeout: HumanDuration::from_secs(12 * 3600),
            transaction_ttl: HumanDuration::from_secs(10 * 60),
        }
    }
}

impl Default for KeySchedule {
    fn default() -> Self {
        Self {
            rotation_period: HumanDuration::from_secs(30 * 86_400),
            publish_ahead: HumanDuration::from_secs(86_400),
            jwks_max_age: HumanDuration::from_secs(5 * 60),
            reload_interval: HumanDuration::from_secs(1),
            rsa_bits: 2048,
            signing_algs: vec![SigningAlg::RS256, SigningAlg::ES256],
            encryption_alg: EncryptionAlg::EcdhEsA256kw,
        }
    }
}

/// A configuration value that cannot be used, with the key, the value and
/// what to do about it. The CLI exits with status 2 on this error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration: `{key}`: {message}")]
    Field { key: String, message: String },
    #[error("invalid configuration: `{key}` = {value:?}: {fix}")]
    Value {
        key: String,
        value: String,
        fix: String,
    },
}

impl ConfigError {
    pub(crate) fn value(key: &str, value: impl ToString, fix: impl Into<String>) -> Self {
        Self::Value {
            key: key.to_owned(),
            value: value.to_string(),
            fix: fix.into(),
        }
    }
}

impl Config {
    /// Loads the defaults, the optional file and the process environment.
    ///
    /// Returns the configuration and the names of `TESSERA_*` variables that
    /// match no key, which the caller logs as warnings once logging is set up.
    pub fn load(file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let vars = std::env::vars().filter(|(name, _)| name.starts_with(ENV_PREFIX));
        Self::load_from(file, vars)
    }

    /// Like [`Config::load`], with the environment passed in (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        // Starting from the defaults lets a file or variable set one key of
        // a nested table, such as `rate_limits.token.per_second`, and keep
        // the defaults of its siblings.
        let mut table = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(defaults)) => defaults,
            _ => toml::Table::new(),
        };
        if let Some(path) = file {
            merge_tables(&mut table, read_file(path)?);
        }
        let ignored = apply_env(&mut table, env)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
                ConfigError::Field {
                    key: err.path().to_string(),
                    message: err.inner().message().to_owned(),
                }
            })?;
        config.validate()?;
        Ok((config, ignored))
    }

    /// Returns the database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("tessera.db").display()),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_issuer(&self.issuer)?;
        validate_database_url(&self.database_url())?;
        self.tokens.validate()?;
        self.argon2.validate()?;
        self.keys.validate(&self.tokens)?;
        self.login.validate()?;
        self.http.validate(self.login.max_delay)?;
        self.rate_limits.validate()?;
        self.audit.validate()?;
        self.cache.validate()?;
        self.tls.validate()?;
        self.validate_master_key()?;
        Ok(())
    }

    /// Checks the form of a master key given in the settings, so a malformed
    /// one is a configuration error for every command. Whether it is the
    /// right key is only known once the data keys are unwrapped.
    fn validate_master_key(&self) -> Result<(), ConfigError> {
        let hint = "use base64 of exactly 32 bytes; generate one with `openssl rand -base64 32`";
        if let Some(value) = &self.master_key {
            if crate::crypto::MasterKey::from_base64(value.expose(), "master_key").is_err() {
                return Err(ConfigError::value("master_key", "<redacted>", hint));
            }
        }
        if let Some(path) = &self.master_key_file {
            if !path.is_file() {
                return Err(ConfigError::value(
                    "master_key_file",
                    path.display(),
                    "name an existing file that holds the master key",
                ));
            }
        }
        Ok(())
    }
}

impl TokenLifetimes {
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "tokens.authorization_code_ttl",
                &self.authorization_code_ttl,
            ),
            ("tokens.access_token_ttl", &self.access_token_ttl),
            ("tokens.id_token_ttl", &self.id_token_ttl),
            (
                "tokens.refresh_token_idle_ttl",
                &self.refresh_token_idle_ttl,
            ),
            (
                "tokens.refresh_token_absolute_ttl",
                &self.refresh_token_absolute_ttl,
            ),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::value(key, value, "use a duration above zero"));
            }
        }
        if self.authorization_code_ttl.as_duration() > Duration::from_secs(600) {
            return Err(ConfigError::value(
                "tokens.authorization_code_ttl",
                self.authorization_code_ttl,
                "use at most 10m (RFC 6749 section 4.1.2)",
            ));
        }
        if self.refresh_token_idle_ttl.as_duration() > self.refresh_token_absolute_ttl.as_duration()
        {
            return Err(ConfigError::value(
                "tokens.refresh_token_idle_ttl",
                self.refresh_token_idle_ttl,
                "use at most tokens.refresh_token_absolute_ttl",
            ));
        }
        if self.refresh_reuse_interval.as_duration() > Duration::from_secs(60) {
            return Err(ConfigError::value(
                "tokens.refresh_reuse_interval",
                self.refresh_reuse_interval,
                "use at most 60s",
            ));
        }
        if self.clock_skew.as_duration() > Duration::from_secs(300) {
            return Err(ConfigError::value(
                "tokens.clock_skew",
                self.clock_skew,
                "use at most 5m",
            ));
        }
        Ok(())
    }
}

impl Argon2Params {
    fn validate(&self) -> Result<(), ConfigError> {
        // RFC 9106 section 3.1 bounds; OWASP's floor is m=19 MiB with t=2.
        if self.memory_kib < 8 * self.parallelism.max(1) {
            return Err(ConfigError::value(
                "argon2.memory_kib",
                self.memory_kib,
                "use at least 8 KiB per lane (19456 is OWASP's recommendation)",
            ));
        }
        if self.memory_kib > 4 * 1024 * 1024 {
            return Err(ConfigError::value(
                "argon2.memory_kib",
                self.memory_kib,
                "use at most 4194304 (4 GiB)",
            ));
        }
        if self.iterations == 0 {
            return Err(ConfigError::value(
                "argon2.iterations",
                self.iterations,
                "use at least 1",
            ));
        }
        if !(1..=255).contains(&self.parallelism) {
            return Err(ConfigError::value(
                "argon2.parallelism",
                self.parallelism,
                "use a value from 1 to 255",
            ));
        }
        if self.max_concurrent == 0 {
            return Err(ConfigError::value(
                "argon2.max_concurrent",
                self.max_concurrent,
                "use at least 1",
            ));
        }
        if self.ceiling_factor == 0 {
            return Err(ConfigError::value(
                "argon2.ceiling_factor",
                self.ceiling_factor,
                "use at least 1",
            ));
        }
        Ok(())
    }
}

impl LoginPolicy {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.lockout_threshold == 0 {
            return Err(ConfigError::value(
                "login.lockout_threshold",
                self.lockout_threshold,
                "use at least 1",
            ));
        }
        if self.ip_lockout_threshold == 0 {
            return Err(ConfigError::value(
                "login.ip_lockout_threshold",
                self.ip_lockout_threshold,
                "use at least 1",
            ));
        }
        let positive = [
            ("login.lockout_duration", &self.lockout_duration),
            ("login.failure_window", &self.failure_window),
            ("login.session_idle_timeout", &self.session_idle_timeout),
            (
                "login.session_absolute_timeout",
                &self.session_absolute_timeout,
            ),
            ("login.transaction_ttl", &self.transaction_ttl),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::value(key, value, "use a duration above zero"));
            }
        }
        if self.base_delay > self.max_delay {
            return Err(ConfigError::value(
                "login.base_delay",
                self.base_delay,
                format!("use at most login.max_delay ({})", self.max_delay),
            ));
        }
        if self.max_delay.as_duration() > Duration::from_secs(30) {
            return Err(ConfigError::value(
                "login.max_delay",
                self.max_delay,
                "use at most 30s, below the request timeout",
            ));
        }
        if self.session_idle_timeout > self.session_absolute_timeout {
            return Err(ConfigError::value(
                "login.session_idle_timeout",
                self.session_idle_timeout,
                "use at most login.session_absolute_timeout",
            ));
        }
        Ok(())
    }
}

impl KeySchedule {
    fn validate(&self, tokens: &TokenLifetimes) -> Result<(), ConfigError> {
        if self.jwks_max_age.is_zero() {
            return Err(ConfigError::value(
                "keys.jwks_max_age",
                self.jwks_max_age,
                "use a duration above zero",
            ));
        }
        // A `next` key must be in every cached JWKS before it signs: a cache
        // fetched just before publication expires one max-age later.
        if self.publish_ahead.as_duration() < 2 * self.jwks_max_age.as_duration() {
            return Err(ConfigError::value(
                "keys.publish_ahead",
                self.publish_ahead,
                format!(
                    "use at least twice keys.jwks_max_age ({})",
                    self.jwks_max_age
                ),
            ));
        }
        if self.rotation_period.as_duration() <= self.publish_ahead.as_duration() {
            return Err(ConfigError::value(
                "keys.rotation_period",
                self.rotation_period,
                format!("use more than keys.publish_ahead ({})", self.publish_ahead),
            ));
        }
        let longest_token = tokens
            .access_token_ttl
            .as_duration()
            .max(tokens.id_token_ttl.as_duration());
        if self.rotation_period.as_duration() < longest_token {
            return Err(ConfigError::value(
                "keys.rotation_period",
                self.rotation_period,
                "use at least the longest access or ID token lifetime",
            ));
        }
        if self.reload_interval.is_zero()
            || self.reload_interval.as_duration() >= self.jwks_max_age.as_duration()
        {
            return Err(ConfigError::value(
                "keys.reload_interval",
                self.reload_interval,
                format!(
                    "use a duration above zero and below keys.jwks_max_age ({})",
                    self.jwks_max_age
                ),
            ));
        }
        if !(2048..=8192).contains(&self.rsa_bits) || !self.rsa_bits.is_multiple_of(1024) {
            return Err(ConfigError::value(
                "keys.rsa_bits",
                self.rsa_bits,
                "use 2048, 3072, 4096 or another multiple of 1024 up to 8192",
            ));
        }
        self.validate_signing_algs()
    }

    fn validate_signing_algs(&self) -> Result<(), ConfigError> {
        let names: Vec<&str> = self.signing_algs.iter().map(|alg| alg.as_str()).collect();
        let unique: std::collections::BTreeSet<&SigningAlg> = self.signing_algs.iter().collect();
        if names.is_empty() || unique.len() != names.len() {
            return Err(ConfigError::value(
                "keys.signing_algs",
                format!("{names:?}"),
                "list each algorithm once, at least one of RS256, ES256, PS256 and EdDSA",
            ));
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|err| ConfigError::Syntax {
            path: path.to_owned(),
            message: err.message().to_owned(),
        })
}

/// Copies `overlay` into `base`, merging tables key by key and replacing
/// every other value.
fn merge_tables(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(section)), toml::Value::Table(values)) => {
                merge_tables(section, values);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Writes each `TESSERA_*` variable that names a known key into `table`, and
/// returns the names of the others.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let known = known_keys();
    let mut ignored = Vec::new();
    let sorted: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    for (name, raw) in sorted {
        let key = name[ENV_PREFIX.len()..].to_lowercase().replace("__", ".");
        if !known.contains(&key) {
            ignored.push(name);
            continue;
        }
        insert_dotted(table, &key, env_value(&raw), &name)?;
    }
    Ok(ignored)
}

/// Sets the dotted `key` (`section.key`, or deeper) in `table`, creating the
/// tables on the way. `name` is the variable the value came from.
fn insert_dotted(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
    name: &str,
) -> Result<(), ConfigError> {
    let mut sections: Vec<&str> = key.split('.').collect();
    let Some(field) = sections.pop() else {
        return Ok(());
    };
    let mut current = table;
    let mut path = String::new();
    for section in sections {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(section);
        let entry = current
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(next) => current = next,
            other => {
                return Err(ConfigError::value(
                    &path,
                    other.to_string(),
                    format!("`{path}` must be a table to accept {name}"),
                ))
            }
        }
    }
    current.insert(field.to_owned(), value);
    Ok(())
}

/// Reads an environment value as a TOML value (number, boolean, array), or
/// as a plain string when it is not one.
fn env_value(raw: &str) -> toml::Value {
    format!("value = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("value"))
        .filter(|value| !value.is_table() && !value.is_datetime())
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// Lists every dotted key the configuration accepts.
fn known_keys() -> Vec<String> {
    let mut keys: Vec<String> = OPTIONAL_KEYS.iter().map(|key| (*key).to_owned()).collect();
    if let Ok(toml::Value::Table(defaults)) = toml::Value::try_from(Config::default()) {
        collect_keys(&defaults, "", &mut keys);
    }
    keys
}

/// Appends the dotted names of the leaves of `table` to `keys`.
fn collect_keys(table: &toml::Table, prefix: &str, keys: &mut Vec<String>) {
    for (key, value) in table {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(section) => collect_keys(section, &dotted, keys),
            _ => keys.push(dotted),
        }
    }
}

fn validate_issuer(issuer: &str) -> Result<(), ConfigError> {
    let fix = "use an absolute https URL without trailing slash, user, query or \
               fragment (http is allowed only for localhost, 127.0.0.1 and [::1])";
    let url = Url::parse(issuer).map_err(|_| ConfigError::value("issuer", issuer, fix))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    // OIDC Discovery section 4.3: issuers are compared as exact strings, so a
    // trailing slash would make `iss` differ from what clients configured.
    if !scheme_ok
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || issuer.ends_with('/')
    {
        return Err(ConfigError::value("issuer", issuer, fix));
    }
    Ok(())
}

fn validate_database_url(url: &str) -> Result<(), ConfigError> {
    let supported = ["postgres://", "postgresql://", "sqlite://", "sqlite:"];
    if supported.iter().any(|prefix| url.starts_with(prefix)) {
        Ok(())
    } else {
        Err(ConfigError::value(
            "database_url",
            crate::store::redact_url(url),
            "use postgres://USER@HOST/DB or sqlite://PATH",
        ))
    }
}

/// Loads the configuration from `env` alone, with the error as its
/// message, for the tests of each section.
#[cfg(test)]
fn load_env(env: &[(&str, &str)]) -> Result<Config, String> {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Config::load_from(None, env)
        .map(|(config, _)| config)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().map_err(|source| ConfigError::Unreadable {
            path: PathBuf::new(),
            source,
        })?;
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, toml).map_err(|source| ConfigError::Unreadable {
            path: path.clone(),
            source,
        })?;
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::load_from(Some(&path), env).map(|(config, _)| config)
    }

    #[test]
    fn malformed_master_key_is_a_config_error() {
        let err = load("", &[("TESSERA_MASTER_KEY", "abc")]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`master_key`"), "{message}");
        assert!(!message.contains("abc"), "{message}");
        let err = load("master_key_file = \"/nonexistent/master.key\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("master_key_file"), "{err}");
    }

    #[test]
    fn defaults_are_valid() {
        let (config, ignored) = Config::load_from(None, []).unwrap();
        assert!(ignored.is_empty());
        assert_eq!(config.issuer, "http://127.0.0.1:8080");
        assert!(config.database_url().starts_with("sqlite://"));
        assert_eq!(config.tokens.access_token_ttl.as_duration().as_secs(), 600);
    }

    #[test]
    fn file_values_are_read() {
        let config = load(
            "issuer = \"https://id.example.com\"\n[tokens]\naccess_token_ttl = \"15m\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.issuer, "https://id.example.com");
        assert_eq!(config.tokens.access_token_ttl.as_duration().as_secs(), 900);
    }

    #[test]
    fn environment_overrides_file() {
        let config = load(
            "issuer = \"https://a.example.com\"\n",
            &[
                ("TESSERA_ISSUER", "https://b.example.com"),
                ("TESSERA_ARGON2__MEMORY_KIB", "65536"),
                ("TESSERA_TOKENS__ID_TOKEN_TTL", "2h"),
            ],
        )
        .unwrap();
        assert_eq!(config.issuer, "https://b.example.com");
        assert_eq!(config.argon2.memory_kib, 65_536);
        assert_eq!(config.tokens.id_token_ttl.as_duration().as_secs(), 7200);
    }

    #[test]
    fn unknown_environment_variable_is_reported() {
        let env = [("TESSERA_NO_SUCH_KEY".to_owned(), "1".to_owned())];
        let (_, ignored) = Config::load_from(None, env).unwrap();
        assert_eq!(ignored, vec!["TESSERA_NO_SUCH_KEY".to_owned()]);
    }

    #[test]
    fn unknown_file_key_is_rejected() {
        let err = load("isuer = \"https://id.example.com\"\n", &[]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("unknown field `isuer`"), "{message}");
    }

    #[test]
    fn malformed_duration_names_key() {
        let err = load("[tokens]\naccess_token_ttl = \"10 parsecs\"\n", &[]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("10 parsecs"), "{message}");
        assert!(message.contains("90s, 10m, 12h or 30d"), "{message}");
    }

    #[test]
    fn issuer_rules() {
        let cases = [
            ("https://id.example.com", true),
            ("https://id.example.com/tenant-a", true),
            ("http://localhost:8080", true),
            ("http://127.0.0.1:8080", true),
            ("http://[::1]:8080", true),
            ("http://id.example.com", false),
            ("https://id.example.com/", false),
            ("https://id.example.com?x=1", false),
            ("https://id.example.com#x", false),
            ("https://user@id.example.com", false),
            ("id.example.com", false),
        ];
        for (issuer, valid) in cases {
            assert_eq!(validate_issuer(issuer).is_ok(), valid, "{issuer}");
        }
    }

    #[test]
    fn schedule_must_publish_keys_ahead_of_caches() {
        let err = load(
            "[keys]\njwks_max_age = \"1h\"\npublish_ahead = \"1h\"\n",
            &[],
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("keys.publish_ahead"), "{message}");
    }

    #[test]
    fn registration_policy_is_read_from_environment() {
        let (config, _) = Config::load_from(None, []).unwrap();
        assert_eq!(config.registration.policy, RegistrationPolicy::Closed);
        let env = [("TESSERA_REGISTRATION__POLICY".to_owned(), "open".to_owned())];
        let (config, ignored) = Config::load_from(None, env).unwrap();
        assert!(ignored.is_empty());
        assert_eq!(config.registration.policy, RegistrationPolicy::Open);
        let err = load("[registration]\npolicy = \"anyone\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("registration.policy"), "{err}");
    }

    #[test]
    fn signing_algs_are_checked() {
        let config = load("[keys]\nsigning_algs = [\"EdDSA\", \"PS256\"]\n", &[]).unwrap();
        assert_eq!(
            config.keys.signing_algs,
            vec![SigningAlg::EdDSA, SigningAlg::PS256]
        );
        for bad in ["[]", "[\"ES256\", \"ES256\"]"] {
            let err = load(&format!("[keys]\nsigning_algs = {bad}\n"), &[]).unwrap_err();
            assert!(err.to_string().contains("keys.signing_algs"), "{err}");
        }
        let err = load("[keys]\nsigning_algs = [\"HS256\"]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("HS256"), "{err}");
        let err = load("[keys]\nencryption_alg = \"RSA1_5\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("keys.encryption_alg"), "{err}");
    }

    #[test]
    fn key_algorithms_come_from_environment() {
        let config = load(
            "",
            &[
                ("TESSERA_KEYS__SIGNING_ALGS", "[\"ES256\"]"),
                ("TESSERA_KEYS__ENCRYPTION_ALG", "RSA-OAEP-256"),
            ],
        )
        .unwrap();
        assert_eq!(config.keys.signing_algs, vec![SigningAlg::ES256]);
        assert_eq!(config.keys.encryption_alg, EncryptionAlg::RsaOaep256);
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let (config, _) = Config::load_from(None, []).unwrap();
        assert!(!config.tls.enabled());
        let both = load(
            "[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n",
            &[],
        )
        .unwrap();
        assert!(both.tls.enabled());
        let err = load("[tls]\ncert_file = \"cert.pem\"\n", &[]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`tls.key_file`: missing"), "{message}");
        assert!(message.contains("`tls.cert_file` is set"), "{message}");
        let err = load("", &[("TESSERA_TLS__KEY_FILE", "key.pem")]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`tls.cert_file`: missing"), "{message}");
    }

    #[test]
    fn database_url_scheme_is_checked() {
        let err = load("database_url = \"mysql://root@localhost/tessera\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("database_url"));
    }
}
