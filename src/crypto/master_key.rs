//! The master key: 32 bytes that wrap the data keys stored in the database.
//!
//! Every command looks for it in the same order: `master_key` (usually
//! `TESSERA_MASTER_KEY`, base64), the file named by `master_key_file`, then
//! `<data_dir>/master.key`. Only with the SQLite default may `serve` create
//! a missing one; with PostgreSQL a missing key stops start-up, so that
//! instances cannot each invent their own.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::random_bytes;
use crate::config::Config;

/// File name of the master key inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

const GENERATE_HINT: &str = "generate one with `openssl rand -base64 32`";

/// The master key and where it came from.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    source: MasterKeySource,
}

/// The origin of the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterKeySource {
    /// The `master_key` setting, usually `TESSERA_MASTER_KEY`.
    Setting,
    /// A file: `master_key_file` or the data directory's `master.key`.
    File(PathBuf),
    /// Created just now in the data directory, for development.
    Created(PathBuf),
    /// Made in memory, for tests and for `master-key rotate`.
    Generated,
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "no master key: set TESSERA_MASTER_KEY (base64 of 32 bytes) or master_key_file, \
         or put it in {data_dir_file}; {GENERATE_HINT}"
    )]
    Missing { data_dir_file: String },
    #[error(
        "invalid master key in {origin}: expected base64 of exactly 32 bytes; {GENERATE_HINT}"
    )]
    Invalid { origin: String },
    #[error("cannot read master key file {path}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create master key file {path}")]
    Uncreatable {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl MasterKey {
    /// Finds the master key; with `create_if_missing`, writes a new one to
    /// `<data_dir>/master.key` (mode 0600) when none exists anywhere.
    pub fn load(config: &Config, create_if_missing: bool) -> Result<Self, MasterKeyError> {
        if let Some(value) = &config.master_key {
            let bytes = parse(value.expose(), "TESSERA_MASTER_KEY / master_key")?;
            return Ok(Self::new(bytes, MasterKeySource::Setting));
        }
        if let Some(path) = &config.master_key_file {
            return Self::read_file(path);
        }
        let default_path = config.data_dir.join(MASTER_KEY_FILE);
        if default_path.exists() {
            return Self::read_file(&default_path);
        }
        if !create_if_missing {
            return Err(MasterKeyError::Missing {
                data_dir_file: default_path.display().to_string(),
            });
        }
        let key = Self::generate();
        key.write_new(&default_path)?;
        Ok(Self::new(
            *key.bytes,
            MasterKeySource::Created(default_path),
        ))
    }

    /// Makes a fresh random key.
    pub fn generate() -> Self {
        Self::new(random_bytes::<32>(), MasterKeySource::Generated)
    }

    /// Parses base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str, origin: &str) -> Result<Self, MasterKeyError> {
        parse(text, origin).map(|bytes| Self::new(bytes, MasterKeySource::Generated))
    }

    fn new(bytes: [u8; 32], source: MasterKeySource) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
            source,
        }
    }

    fn read_file(path: &Path) -> Result<Self, MasterKeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            MasterKeyError::Unreadable {
                path: path.to_owned(),
                source,
            }
        })?);
        let bytes = parse(&text, &path.display().to_string())?;
        Ok(Self::new(bytes, MasterKeySource::File(path.to_owned())))
    }

    /// Writes the key as base64 to a new file readable by its owner only.
    pub fn write_new(&self, path: &Path) -> Result<(), MasterKeyError> {
        use std::io::Write;
        let uncreatable = |source| MasterKeyError::Uncreatable {
            path: path.to_owned(),
            source,
        };
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(uncreatable)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(uncreatable)?;
        file.write_all(self.to_base64().as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(uncreatable)
    }

    pub fn source(&self) -> &MasterKeySource {
        &self.source
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Encodes the key as standard base64, for writing a new key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_slice()))
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn parse(text: &str, origin: &str) -> Result<[u8; 32], MasterKeyError> {
    let invalid = || MasterKeyError::Invalid {
        origin: origin.to_owned(),
    };
    let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| invalid())?);
    decoded.as_slice().try_into().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;

    fn config_in(folder: &Path) -> Config {
        Config {
            data_dir: folder.to_owned(),
            ..Config::default()
        }
    }

    #[test]
    fn setting_wins_over_files() {
        let folder = tempfile::tempdir().unwrap();
        let mut config = config_in(folder.path());
        let key = MasterKey::generate();
        config.master_key = Some(SecretString::new(key.to_base64().to_string()));
        let loaded = MasterKey::load(&config, true).unwrap();
        assert_eq!(loaded.bytes(), key.bytes());
        assert_eq!(loaded.source(), &MasterKeySource::Setting);
        assert!(!folder.path().join(MASTER_KEY_FILE).exists());
    }

    #[test]
    fn missing_key_is_an_error_unless_creating() {
        let folder = tempfile::tempdir().unwrap();
        let config = config_in(folder.path());
        let err = MasterKey::load(&config, false).unwrap_err();
        assert!(err.to_string().contains("TESSERA_MASTER_KEY"), "{err}");

        let created = MasterKey::load(&config, true).unwrap();
        let path = folder.path().join(MASTER_KEY_FILE);
        assert_eq!(created.source(), &MasterKeySource::Created(path.clone()));
        let again = MasterKey::load(&config, false).unwrap();
        assert_eq!(again.bytes(), created.bytes());
        assert_eq!(again.source(), &MasterKeySource::File(path));
    }

    #[cfg(unix)]
    #[test]
    fn created_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let folder = tempfile::tempdir().unwrap();
        MasterKey::load(&config_in(folder.path()), true).unwrap();
        let mode = std::fs::metadata(folder.path().join(MASTER_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for text in ["", "not base64!", "c2hvcnQ=", &STANDARD.encode([0u8; 33])] {
            assert!(MasterKey::from_base64(text, "test").is_err(), "{text}");
        }
        assert!(MasterKey::from_base64(&STANDARD.encode([9u8; 32]), "test").is_ok());
    }

    #[test]
    fn debug_hides_bytes() {
        let key = MasterKey::from_base64(&STANDARD.encode([0xAB; 32]), "test").unwrap();
        let text = format!("{key:?}");
        assert!(
            !text.contains("171") && !text.to_lowercase().contains("ab, "),
            "{text}"
        );
    }
}
