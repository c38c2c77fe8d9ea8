//! The resource server's encryption key pair: Tessera encrypts each access
//! token to the public half, registered with `tessera resources create`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwe::{JweDecrypter, ECDH_ES_A256KW, RSA_OAEP_256};
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::Jwk;
use sha2::{Digest, Sha256};

/// Key-management algorithm of the keys `generate` makes.
const GENERATED_ALG: &str = "ECDH-ES+A256KW";

/// Generates an EC P-256 key pair and writes the private JWK to
/// `private_path` (a new file, mode 0600) and the public JWK next to it
/// (`calendar.jwk` gives `calendar.public.jwk`). Returns the public path.
pub fn generate(private_path: &Path) -> anyhow::Result<PathBuf> {
    let pair = EcKeyPair::generate(EcCurve::P256).context("generating a P-256 key failed")?;
    let mut public = pair.to_jwk_public_key();
    let kid = thumbprint(&public)?;
    let mut private = pair.to_jwk_key_pair();
    for jwk in [&mut public, &mut private] {
        jwk.set_key_id(&kid);
        jwk.set_key_use("enc");
        jwk.set_algorithm(GENERATED_ALG);
    }

    let public_path = private_path.with_extension("public.jwk");
    write_new(private_path, &private.to_string(), 0o600)?;
    write_new(&public_path, &public.to_string(), 0o644)?;
    Ok(public_path)
}

/// Reads a private JWK and builds the decrypter for the key-management
/// algorithm Tessera uses with its key type. Returns the decrypter and
/// that algorithm.
pub fn load_decrypter(path: &Path) -> anyhow::Result<(Box<dyn JweDecrypter>, &'static str)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the private key file {}", path.display()))?;
    let jwk = Jwk::from_bytes(text.as_bytes())
        .with_context(|| format!("{} is not a JWK", path.display()))?;
    if jwk.parameter("d").is_none() {
        bail!(
            "{} holds a public key; give the private JWK that generate-key wrote",
            path.display()
        );
    }
    let invalid = || format!("{} is not a usable encryption key", path.display());
    match jwk.key_type() {
        "EC" | "OKP" => {
            let decrypter = ECDH_ES_A256KW
                .decrypter_from_jwk(&jwk)
                .with_context(invalid)?;
            Ok((Box::new(decrypter), "ECDH-ES+A256KW"))
        }
        "RSA" => {
            let decrypter = RSA_OAEP_256
                .decrypter_from_jwk(&jwk)
                .with_context(invalid)?;
            Ok((Box::new(decrypter), "RSA-OAEP-256"))
        }
        other => bail!("{}: key type {other} cannot decrypt tokens", invalid()),
    }
}

/// Computes the RFC 7638 thumbprint of an EC public key: SHA-256 over its
/// required members in lexicographic order, base64url without padding.
fn thumbprint(public: &Jwk) -> anyhow::Result<String> {
    let member = |name: &str| {
        public
            .parameter(name)
            .and_then(|value| value.as_str())
            .with_context(|| format!("the generated key lacks `{name}`"))
    };
    // The members are base64url strings and a curve name, so none needs
    // JSON escaping.
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        member("crv")?,
        member("x")?,
        member("y")?
    );
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// Writes `contents` to a file that must not exist yet, so that a key is
/// never overwritten.
fn write_new(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}; it must not exist yet", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
