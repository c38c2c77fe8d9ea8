//! `tessera backup`: an online copy of a serving SQLite instance restores
//! into a fresh data directory with the same master key, and the restored
//! server accepts the clients, keys and refresh tokens of the original.

use std::path::Path;
use std::process::Output;

use reqwest::StatusCode;
use sqlx::Connection;

use crate::harness::instance::{
    kids, open_access_token, provision, verify_with_jwks, Instance, Settings,
};
use crate::harness::process::{json_output, run};

const MASTER_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const OTHER_KEY: &str = "BAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiM=";

fn settings(data_dir: &Path) -> Settings {
    Settings {
        data_dir: data_dir.to_owned(),
        master_key: MASTER_KEY.to_owned(),
    }
}

/// Returns the `error:` line of a command that exited with status 1.
fn error_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("error: "), "{stderr}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restores_into_fresh_data_dir() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let original = Instance::start(dir, settings(&dir.join("original"))).await;
    let provisioned = provision(&original, dir).await;
    let original_kids = kids(&original.jwks().await);

    // Client-credentials requests write access-token records while the
    // backup runs, so the copy is taken under concurrent writes.
    let out = dir.join("tessera-backup.db");
    let backup = {
        let settings = original.settings.clone();
        let dir = dir.to_owned();
        let out = out.clone();
        tokio::task::spawn_blocking(move || {
            settings.cli(&dir, &["--json", "backup", "--out", out.to_str().unwrap()])
        })
    };
    let mut issued_during_backup = 0;
    while !backup.is_finished() {
        let (status, body) = original.client_credentials(&provisioned.service).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        issued_during_backup += 1;
    }
    let printed = json_output(&backup.await.unwrap());
    eprintln!("{issued_during_backup} tokens issued while the backup ran");
    let bytes = std::fs::metadata(&out).unwrap().len();
    assert_eq!(printed["out"], out.to_str().unwrap());
    assert_eq!(printed["bytes"], bytes);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_integrity(&out).await;

    let events = json_output(&original.settings.cli(dir, &["--json", "audit", "tail"]));
    let recorded = events.as_array().unwrap().iter().any(|event| {
        event["kind"] == "backup.created"
            && event["actor"] == "cli"
            && event["detail"] == out.to_str().unwrap()
    });
    assert!(recorded, "{events}");
    original.stop();

    // Restore: the backup becomes the database of a new data directory,
    // and the master key is given apart from it.
    let restored_dir = dir.join("restored");
    std::fs::create_dir(&restored_dir).unwrap();
    std::fs::copy(&out, restored_dir.join("tessera.db")).unwrap();
    let wrong_key = Settings {
        master_key: OTHER_KEY.to_owned(),
        ..settings(&restored_dir)
    };
    let refused = error_line(&wrong_key.cli(dir, &["clients", "list"]));
    assert!(
        refused.contains("not the key this database was set up with"),
        "{refused}"
    );

    let restored = Instance::start(dir, settings(&restored_dir)).await;
    let jwks = restored.jwks().await;
    assert_eq!(kids(&jwks), original_kids);

    let (status, body) = restored.client_credentials(&provisioned.service).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access_token = body["access_token"].as_str().unwrap();
    let claims = open_access_token(access_token, &provisioned.resource_key, &jwks);
    assert_eq!(claims["client_id"], provisioned.service.id.as_str());

    let (status, body) = restored
        .refresh(&provisioned.relying_party, &provisioned.refresh_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["refresh_token"], provisioned.refresh_token.as_str());
    let id_token = verify_with_jwks(body["id_token"].as_str().unwrap(), &jwks);
    assert_eq!(id_token["aud"], provisioned.relying_party.id.as_str());
    restored.stop();
}

/// Checks that SQLite finds the copy intact.
async fn assert_integrity(file: &Path) {
    let url = format!("sqlite://{}?mode=ro", file.display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let result: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(result, "ok");
}

#[test]
fn backup_refuses_unsafe_targets() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let settings = settings(&dir.join("data"));
    json_output(&settings.cli(dir, &["--json", "migrate"]));

    let first = json_output(&settings.cli(dir, &["--json", "backup", "--out", "copy.db"]));
    let out = dir.join("copy.db");
    assert_eq!(first["out"], out.to_str().unwrap());

    let exists = error_line(&settings.cli(dir, &["backup", "--out", "copy.db"]));
    assert!(exists.contains("already exists"), "{exists}");
    assert!(exists.contains("--force"), "{exists}");

    std::fs::write(&out, b"an older backup").unwrap();
    let forced =
        json_output(&settings.cli(dir, &["--json", "backup", "--out", "copy.db", "--force"]));
    assert!(forced["bytes"].as_u64().unwrap() > 1024, "{forced}");
    assert!(std::fs::read(&out)
        .unwrap()
        .starts_with(b"SQLite format 3\0"));

    let live = dir.join("data").join("tessera.db");
    let own_file =
        error_line(&settings.cli(dir, &["backup", "--out", live.to_str().unwrap(), "--force"]));
    assert!(own_file.contains("live database"), "{own_file}");

    let no_folder = error_line(&settings.cli(dir, &["backup", "--out", "missing/copy.db"]));
    assert!(no_folder.contains("does not exist"), "{no_folder}");

    let elsewhere = Settings {
        data_dir: dir.join("empty"),
        ..settings.clone()
    };
    let no_database = error_line(&elsewhere.cli(dir, &["backup", "--out", "other.db"]));
    assert!(no_database.contains("does not exist"), "{no_database}");
    assert!(!dir.join("empty").exists());
}

#[test]
fn backup_points_postgres_at_pg_dump() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    // Nothing listens there: the command must refuse before connecting.
    let env = [
        (
            "TESSERA_DATABASE_URL",
            "postgres://tessera@127.0.0.1:9/tessera",
        ),
        ("TESSERA_MASTER_KEY", MASTER_KEY),
    ];
    let output = run(dir, &["--json", "backup", "--out", "copy.db"], &env);
    let line = error_line(&output);
    assert!(line.contains("pg_dump"), "{line}");
    assert!(line.contains("pg_restore"), "{line}");
    assert!(!dir.join("copy.db").exists());
}
