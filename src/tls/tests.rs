#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jwk::KeyPair as _;

use super::*;

/// Issues a self-signed certificate for `localhost` over the PKCS#8 PEM key.
fn certificate(pkcs8_pem: &[u8]) -> String {
    let key = rcgen::KeyPair::from_pem(std::str::from_utf8(pkcs8_pem).unwrap()).unwrap();
    rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem()
}

fn write(folder: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = folder.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn settings(cert_file: &Path, key_file: &Path) -> TlsSettings {
    TlsSettings {
        cert_file: Some(cert_file.to_owned()),
        key_file: Some(key_file.to_owned()),
    }
}

/// Returns the message of the configuration error that loading gives.
fn load_error(cert_file: &Path, key_file: &Path) -> String {
    match load(&settings(cert_file, key_file)) {
        Ok(_) => panic!("{} and {} loaded", cert_file.display(), key_file.display()),
        Err(error) => error.to_string(),
    }
}

#[test]
fn tls_off_without_files() {
    assert!(load(&TlsSettings::default()).unwrap().is_none());
}

#[test]
fn loads_each_key_encoding() {
    let folder = tempfile::tempdir().unwrap();
    let ec = EcKeyPair::generate(EcCurve::P256).unwrap();
    let rsa = RsaKeyPair::generate(2048).unwrap();
    let cases = [
        ("ec-pkcs8", ec.to_pem_private_key(), ec.to_pem_private_key()),
        (
            "ec-sec1",
            ec.to_pem_private_key(),
            ec.to_traditional_pem_private_key(),
        ),
        (
            "rsa-pkcs8",
            rsa.to_pem_private_key(),
            rsa.to_pem_private_key(),
        ),
        (
            "rsa-pkcs1",
            rsa.to_pem_private_key(),
            rsa.to_traditional_pem_private_key(),
        ),
    ];
    for (name, pkcs8, key) in cases {
        let cert_file = write(folder.path(), &format!("{name}.crt"), certificate(&pkcs8));
        let key_file = write(folder.path(), &format!("{name}.key"), &key);
        let config = load(&settings(&cert_file, &key_file)).unwrap();
        let config = config.unwrap_or_else(|| panic!("{name}: TLS off"));
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()], "{name}");
    }
}

#[test]
fn one_file_may_hold_chain_and_key() {
    let folder = tempfile::tempdir().unwrap();
    let key = EcKeyPair::generate(EcCurve::P256)
        .unwrap()
        .to_pem_private_key();
    let issuer = EcKeyPair::generate(EcCurve::P256)
        .unwrap()
        .to_pem_private_key();
    let mut combined = certificate(&key).into_bytes();
    combined.extend_from_slice(certificate(&issuer).as_bytes());
    combined.extend_from_slice(&key);
    let file = write(folder.path(), "combined.pem", combined);
    assert!(load(&settings(&file, &file)).unwrap().is_some());
}

#[test]
fn bad_files_name_key_value_and_fix() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let key = EcKeyPair::generate(EcCurve::P256)
        .unwrap()
        .to_pem_private_key();
    let other_key = EcKeyPair::generate(EcCurve::P256)
        .unwrap()
        .to_pem_private_key();
    let cert = write(dir, "server.crt", certificate(&key));
    let good_key = write(dir, "server.key", &key);
    let missing = dir.join("absent.pem");
    let garbage = write(dir, "garbage.pem", "not a PEM file\n\u{0}\u{1}\n");
    let truncated = write(
        dir,
        "truncated.pem",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n",
    );
    let foreign_key = write(dir, "foreign.key", &other_key);
    let encrypted = write(
        dir,
        "encrypted.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkq\n\
         -----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let junk_key = write(
        dir,
        "junk.key",
        "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n",
    );

    // (certificate file, key file, key named, words of the fix)
    let cases: [(&Path, &Path, &str, &str); 9] = [
        (&missing, &good_key, "tls.cert_file", "cannot read the file"),
        (&cert, &missing, "tls.key_file", "cannot read the file"),
        (&cert, dir, "tls.key_file", "cannot read the file"),
        (
            &garbage,
            &good_key,
            "tls.cert_file",
            "contains no certificate",
        ),
        (
            &truncated,
            &good_key,
            "tls.cert_file",
            "has no `-----END` line",
        ),
        (&cert, &garbage, "tls.key_file", "contains no private key"),
        (&cert, &cert, "tls.key_file", "contains no private key"),
        (&cert, &encrypted, "tls.key_file", "encrypted"),
        (
            &cert,
            &foreign_key,
            "tls.key_file",
            "does not belong to the first certificate",
        ),
    ];
    for (cert_file, key_file, key, fix) in cases {
        let message = load_error(cert_file, key_file);
        let named = if key == "tls.cert_file" {
            cert_file
        } else {
            key_file
        };
        let expected = format!("`{key}` = {:?}", named.display().to_string());
        assert!(
            message.contains(&expected),
            "expected {expected} in: {message}"
        );
        assert!(message.contains(fix), "expected {fix:?} in: {message}");
    }

    let message = load_error(&cert, &junk_key);
    assert!(message.contains("`tls.key_file`"), "{message}");
    assert!(message.contains("unusable private key"), "{message}");
}
