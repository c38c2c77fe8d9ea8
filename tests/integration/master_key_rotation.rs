//! `tessera master-key rotate` on a serving SQLite instance: every client
//! secret, refresh token and signing key works under the new master key,
//! and the old master key no longer opens the store.

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::instance::{
    kids, open_access_token, provision, verify_with_jwks, Instance, Settings,
};
use crate::harness::process::{json_output, tessera};

const OLD_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const WRONG_KEY_MESSAGE: &str = "not the key this database was set up with";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_master_key_keeps_every_secret() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let old = Settings {
        data_dir: dir.join("data"),
        master_key: OLD_KEY.to_owned(),
    };
    let running = Instance::start(dir, old.clone()).await;
    let provisioned = provision(&running, dir).await;
    let kids_before = kids(&running.jwks().await);

    let rotated = json_output(&old.cli(
        dir,
        &["--json", "master-key", "rotate", "--generate-to", "new.key"],
    ));
    assert_eq!(rotated["rewrapped_data_keys"], 2);
    let new_key = std::fs::read_to_string(dir.join("new.key")).unwrap();
    let new = Settings {
        master_key: new_key.trim().to_owned(),
        ..old.clone()
    };
    // The running server holds the unwrapped data keys and carries on.
    let (status, body) = running.client_credentials(&provisioned.service).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    running.stop();

    let events = json_output(&new.cli(dir, &["--json", "audit", "tail"]));
    let recorded = events
        .as_array()
        .unwrap()
        .iter()
        .any(|event| event["kind"] == "master_key.rotated" && event["actor"] == "cli");
    assert!(recorded, "{events}");

    let restarted = Instance::start(dir, new.clone()).await;
    let jwks = restarted.jwks().await;
    assert_eq!(kids(&jwks), kids_before);
    let (status, body) = restarted.client_credentials(&provisioned.service).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = open_access_token(
        body["access_token"].as_str().unwrap(),
        &provisioned.resource_key,
        &jwks,
    );
    assert_eq!(claims["client_id"], provisioned.service.id.as_str());

    let (status, body) = restarted
        .refresh(&provisioned.relying_party, &provisioned.refresh_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id_token = verify_with_jwks(body["id_token"].as_str().unwrap(), &jwks);
    assert_eq!(id_token["aud"], provisioned.relying_party.id.as_str());
    restarted.stop();

    // The old key opens nothing: neither a command nor the server.
    let listed = old.cli(dir, &["clients", "list"]);
    assert_wrong_key(&listed);
    let serve = tessera(dir, &["serve"], &old.env())
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert_wrong_key(&exit_within(serve, Duration::from_secs(20)));
}

fn assert_wrong_key(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(last.contains(WRONG_KEY_MESSAGE), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Waits for `child` to exit; kills it and fails if it runs past `limit`.
fn exit_within(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().ok();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
