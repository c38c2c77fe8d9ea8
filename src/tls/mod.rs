//! Native TLS, so that a small deployment needs no proxy in front: the
//! certificate chain and private key named by `tls.cert_file` and
//! `tls.key_file`, loaded into a rustls server configuration at start-up.
//!
//! Tessera offers TLS 1.2 and 1.3 with rustls' default cipher suites (ring
//! provider) and HTTP/1.1 through ALPN. A renewed certificate takes effect
//! at the next start.

mod listener;

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, InconsistentKeys, ServerConfig};

use crate::config::{ConfigError, TlsSettings};

pub use listener::TlsListener;

const CERT_KEY: &str = "tls.cert_file";
const KEY_KEY: &str = "tls.key_file";
const CHAIN_FIX: &str = "give the certificate chain in PEM (`-----BEGIN CERTIFICATE-----`), \
                         the server certificate first";
const KEY_FIX: &str = "give an unencrypted PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`), \
                       RSA (`BEGIN RSA PRIVATE KEY`) or EC (`BEGIN EC PRIVATE KEY`)";

/// Loads the files named in `settings` into a server configuration, or
/// returns `None` when TLS is off. Each failure names the key, the file and
/// the fix, and is a configuration error (exit status 2).
pub fn load(settings: &TlsSettings) -> Result<Option<Arc<ServerConfig>>, ConfigError> {
    let (Some(cert_file), Some(key_file)) = (&settings.cert_file, &settings.key_file) else {
        return Ok(None);
    };
    let chain = read_chain(cert_file)?;
    let key = read_key(key_file)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ConfigError::Field {
            key: "tls".to_owned(),
            message: format!("cannot set up TLS: {error}"),
        })?;
    let mut config = builder
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| pair_error(error, cert_file, key_file))?;
    // axum serves HTTP/1.1 only (its `http2` feature is off).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|error| {
        ConfigError::value(
            key,
            path.display(),
            format!("cannot read the file ({error}); name a readable PEM file"),
        )
    })
}

/// Reads every certificate in the PEM file at `path`, ignoring other
/// sections such as a private key in the same file.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read(CERT_KEY, path)?;
    let invalid = |error: pem::Error| {
        let fix = format!("invalid PEM ({}); {CHAIN_FIX}", describe(&error));
        ConfigError::value(CERT_KEY, path.display(), fix)
    };
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    if chain.is_empty() {
        let fix = format!("the file contains no certificate; {CHAIN_FIX}");
        return Err(ConfigError::value(CERT_KEY, path.display(), fix));
    }
    Ok(chain)
}

/// Reads the first private key in the PEM file at `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let bytes = read(KEY_KEY, path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) if contains(&bytes, b"ENCRYPTED PRIVATE KEY") => {
            let fix = "the private key is encrypted, and Tessera reads no passphrase; decrypt \
                       it with `openssl pkey -in KEY -out PLAIN` and make PLAIN readable only \
                       by Tessera's user";
            Err(ConfigError::value(KEY_KEY, path.display(), fix))
        }
        Err(pem::Error::NoItemsFound) => {
            let fix = format!("the file contains no private key; {KEY_FIX}");
            Err(ConfigError::value(KEY_KEY, path.display(), fix))
        }
        Err(error) => {
            let fix = format!("invalid PEM ({}); {KEY_FIX}", describe(&error));
            Err(ConfigError::value(KEY_KEY, path.display(), fix))
        }
    }
}

/// Describes a PEM syntax error in words, because the parser's own
/// messages print the offending line as a list of byte values.
fn describe(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no `-----END` line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "malformed `-----BEGIN` line".to_owned(),
        other => other.to_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Explains why rustls rejected the certificate and key as a pair.
fn pair_error(error: rustls::Error, cert_file: &Path, key_file: &Path) -> ConfigError {
    match error {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => ConfigError::value(
            KEY_KEY,
            key_file.display(),
            format!(
                "the private key does not belong to the first certificate in `{CERT_KEY}` = \
                 {:?}; give the key of the server certificate, and put that certificate first",
                cert_file.display().to_string()
            ),
        ),
        rustls::Error::InvalidCertificate(reason) => ConfigError::value(
            CERT_KEY,
            cert_file.display(),
            format!("invalid certificate ({reason:?}); {CHAIN_FIX}"),
        ),
        other => ConfigError::value(
            KEY_KEY,
            key_file.display(),
            format!(
                "unusable private key ({other}); give an RSA (2048 bits or more), ECDSA \
                 P-256 or P-384, or Ed25519 key"
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
