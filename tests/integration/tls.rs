//! Native TLS through the real binary: HTTPS with a certificate made here,
//! plain HTTP rejected on that port, and bad certificate or key settings
//! stopping start-up with status 2.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::process::{free_port, run, wait_with, ServeProcess};

/// A self-signed certificate for `127.0.0.1` and `localhost`, written to
/// `server.crt` and `server.key` in `folder`; returns the certificate PEM.
fn write_certificate(folder: &Path) -> String {
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let generated = rcgen::generate_simple_self_signed(names).unwrap();
    let certificate = generated.cert.pem();
    std::fs::write(folder.join("server.crt"), &certificate).unwrap();
    std::fs::write(
        folder.join("server.key"),
        generated.signing_key.serialize_pem(),
    )
    .unwrap();
    certificate
}

/// Builds an HTTPS client that trusts only `certificate`.
fn trusting(certificate: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(certificate.as_bytes()).unwrap())
        .https_only(true)
        .build()
        .unwrap()
}

fn tls_env(folder: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "TESSERA_TLS__CERT_FILE",
            folder.join("server.crt").display().to_string(),
        ),
        (
            "TESSERA_TLS__KEY_FILE",
            folder.join("server.key").display().to_string(),
        ),
    ]
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// Sends a plain HTTP request over TCP and returns the bytes read back
/// before the server closed the connection or 5 seconds passed.
fn plain_http_reply(listen: &str) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(listen).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok();
    reply
}

#[tokio::test]
async fn serve_speaks_https_only() {
    let folder = tempfile::tempdir().unwrap();
    let certificate = write_certificate(folder.path());
    let listen = format!("127.0.0.1:{}", free_port());
    let issuer = format!("https://{listen}");
    let mut env = tls_env(folder.path());
    env.push(("TESSERA_ISSUER", issuer.clone()));
    let server = ServeProcess::start_at(folder.path(), &listen, &[], &borrowed(&env));

    let client = trusting(&certificate);
    let health = wait_with(&client, &format!("{issuer}/healthz")).await;
    assert_eq!(health, Some(200), "{}", server.logs());
    let response = client
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let discovery: Value = response.json().await.unwrap();
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(discovery["jwks_uri"], format!("{issuer}/jwks"));

    let plain = reqwest::Client::new()
        .get(format!("http://{listen}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    let reply = plain_http_reply(&listen);
    assert!(
        !reply.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let untrusted = reqwest::Client::new()
        .get(format!("{issuer}/healthz"))
        .send()
        .await;
    assert!(untrusted.is_err(), "{untrusted:?}");

    // The client keeps an idle TLS connection open, which must not delay
    // the graceful shutdown.
    let (success, logs) = server.stop();
    assert!(success, "{logs}");
    assert!(logs.contains("scheme=\"https\""), "{logs}");
    assert!(logs.contains("tessera stopped"), "{logs}");
    assert!(!logs.contains("issuer is an http URL"), "{logs}");
}

#[tokio::test]
async fn http_issuer_with_tls_warns() {
    let folder = tempfile::tempdir().unwrap();
    let certificate = write_certificate(folder.path());
    let listen = format!("127.0.0.1:{}", free_port());
    let mut env = tls_env(folder.path());
    env.push(("TESSERA_ISSUER", format!("http://{listen}")));
    let server = ServeProcess::start_at(folder.path(), &listen, &[], &borrowed(&env));

    let health = wait_with(
        &trusting(&certificate),
        &format!("https://{listen}/healthz"),
    )
    .await;
    assert_eq!(health, Some(200), "{}", server.logs());
    let (success, logs) = server.stop();
    assert!(success, "{logs}");
    assert!(logs.contains("issuer is an http URL"), "{logs}");
}

#[test]
fn bad_tls_settings_exit_2() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    write_certificate(dir);
    std::fs::write(dir.join("garbage.pem"), "not PEM at all\n").unwrap();
    let cert = dir.join("server.crt").display().to_string();
    let key = dir.join("server.key").display().to_string();
    let absent = dir.join("absent.key").display().to_string();
    let garbage = dir.join("garbage.pem").display().to_string();

    // (settings, words of the one error line)
    let cases: [(Vec<(&str, &str)>, String); 4] = [
        (
            vec![("TESSERA_TLS__CERT_FILE", cert.as_str())],
            "`tls.key_file`: missing while `tls.cert_file` is set".to_owned(),
        ),
        (
            vec![("TESSERA_TLS__KEY_FILE", key.as_str())],
            "`tls.cert_file`: missing while `tls.key_file` is set".to_owned(),
        ),
        (
            vec![
                ("TESSERA_TLS__CERT_FILE", cert.as_str()),
                ("TESSERA_TLS__KEY_FILE", absent.as_str()),
            ],
            format!("`tls.key_file` = {absent:?}: cannot read the file"),
        ),
        (
            vec![
                ("TESSERA_TLS__CERT_FILE", garbage.as_str()),
                ("TESSERA_TLS__KEY_FILE", key.as_str()),
            ],
            format!("`tls.cert_file` = {garbage:?}: the file contains no certificate"),
        ),
    ];
    for (env, expected) in cases {
        let output = run(dir, &["serve", "--listen", "127.0.0.1:0"], &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].contains(&expected),
            "expected {expected} in: {stderr}"
        );
    }
    // Every case stopped before the default SQLite database was created.
    assert!(!dir.join("tessera-data").exists());
}
