//! A SQLite data directory that cannot be written, or a disk that fills up
//! while the server runs: commands fail with the path, the cause and the
//! fix, never a panic, and the server responds with 503 with a fixed body until
//! space is freed.
//!
//! Root ignores file permissions, so the permission cases run the binary
//! as `nobody` through `runuser` when the tests run as root. The read-only
//! and full cases need real mounts, a read-only bind mount and a small
//! tmpfs, so they need root with the right to mount (a container without
//! CAP_SYS_ADMIN cannot run them, and they fail saying so).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::StatusCode;

use crate::harness::instance::{provision, Instance, Settings};
use crate::harness::process::BINARY;

const MASTER_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// Runs `tessera` in `folder` with `data_dir`, as `nobody` when root.
fn run_unprivileged(folder: &Path, data_dir: &Path, args: &[&str]) -> Output {
    let mut command = if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "nobody", "--", BINARY]);
        command
    } else {
        Command::new(BINARY)
    };
    command.current_dir(folder).args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TESSERA_")) {
        command.env_remove(name);
    }
    command
        .env("TESSERA_DATA_DIR", data_dir)
        .env("TESSERA_MASTER_KEY", MASTER_KEY)
        .env("TESSERA_LISTEN", "127.0.0.1:0");
    command.output().unwrap()
}

/// Checks that a command failed with status 1 and one `error:` line that
/// contains every part of `expected`; returns that line.
fn assert_fails_with(output: &Output, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("error: "), "{stderr}");
    for part in expected {
        assert!(last.contains(part), "expected {part:?} in: {last}");
    }
    last
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn migrate(data_dir: &Path) {
    let output = Command::new(BINARY)
        .env("TESSERA_DATA_DIR", data_dir)
        .env("TESSERA_MASTER_KEY", MASTER_KEY)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

const FIX: &str = "needs read and write access to the database file and its folder";

#[test]
fn unwritable_data_dir_is_reported() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    chmod(dir, 0o755);
    let parent = dir.join("locked");
    std::fs::create_dir(&parent).unwrap();
    chmod(&parent, 0o555);

    let missing = parent.join("data");
    let output = run_unprivileged(dir, &missing, &["serve"]);
    let path = missing.display().to_string();
    assert_fails_with(&output, &["cannot create the data folder", &path, FIX]);

    // As root the folder is created here, then left unwritable for `nobody`.
    let data_dir = dir.join("data");
    std::fs::create_dir(&data_dir).unwrap();
    chmod(&data_dir, 0o555);
    let database = data_dir.join("tessera.db").display().to_string();
    let output = run_unprivileged(dir, &data_dir, &["migrate"]);
    assert_fails_with(
        &output,
        &["cannot create the database file", &database, FIX],
    );

    chmod(&data_dir, 0o755);
    migrate(&data_dir);
    chmod(&data_dir.join("tessera.db"), 0o644);
    chmod(&data_dir, 0o555);
    for args in [&["serve"][..], &["migrate"], &["clients", "list"]] {
        let output = run_unprivileged(dir, &data_dir, args);
        assert_fails_with(&output, &["cannot open the database", &database, FIX]);
    }
}

/// A mount made for one test and removed when dropped.
struct Mount {
    path: PathBuf,
}

impl Mount {
    fn tmpfs(path: &Path, size_kib: u64) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let options = format!("size={size_kib}k,mode=0700");
        mount(&["-t", "tmpfs", "-o", &options, "tessera-test"], path);
        Self {
            path: path.to_owned(),
        }
    }

    fn read_only(path: &Path) -> Self {
        mount(&["--bind", path.to_str().unwrap()], path);
        let mounted = Self {
            path: path.to_owned(),
        };
        mount(&["-o", "remount,ro,bind"], path);
        mounted
    }
}

fn mount(args: &[&str], path: &Path) {
    let output = Command::new("mount").args(args).arg(path).output().unwrap();
    assert!(
        output.status.success(),
        "this test needs root with the right to mount (CAP_SYS_ADMIN): mount {args:?} {} \
         failed: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Drop for Mount {
    fn drop(&mut self) {
        Command::new("umount").arg(&self.path).status().ok();
    }
}

#[test]
fn read_only_mount_is_reported() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let data_dir = dir.join("data");
    migrate(&data_dir);
    let _read_only = Mount::read_only(&data_dir);

    let output = Command::new(BINARY)
        .current_dir(dir)
        .env("TESSERA_DATA_DIR", &data_dir)
        .env("TESSERA_MASTER_KEY", MASTER_KEY)
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .output()
        .unwrap();
    let database = data_dir.join("tessera.db").display().to_string();
    // Depending on whether SQLite can map the WAL shared-memory file, the
    // open itself fails or the first write does; both name the file.
    let line = assert_fails_with(&output, &[&database]);
    let open_failed = line.contains("cannot open the database") && line.contains(FIX);
    let write_failed = line.contains("attempt to write a readonly database");
    assert!(open_failed || write_failed, "{line}");
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    loop {
        if let Err(error) = file.write_all(&chunk) {
            assert_eq!(error.raw_os_error(), Some(28), "{error}");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_answers_503_until_freed() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let data_dir = dir.join("data");
    let _tmpfs = Mount::tmpfs(&data_dir, 8 * 1024);
    let settings = Settings {
        data_dir: data_dir.clone(),
        master_key: MASTER_KEY.to_owned(),
    };
    let instance = Instance::start(dir, settings.clone()).await;
    let provisioned = provision(&instance, dir).await;

    let filler = data_dir.join("filler");
    fill(&filler);
    let mut statuses = Vec::new();
    let mut body = serde_json::Value::Null;
    for _ in 0..500 {
        let (status, answer) = instance.client_credentials(&provisioned.service).await;
        statuses.push(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            body = answer;
            break;
        }
    }
    let unexpected: Vec<_> = statuses
        .iter()
        .filter(|status| **status != StatusCode::OK && **status != StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(unexpected.is_empty(), "{statuses:?}");
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::SERVICE_UNAVAILABLE),
        "no write failed after {} requests",
        statuses.len()
    );
    eprintln!("first 503 after {} requests on a full disk", statuses.len());
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        body["error_description"],
        "the server cannot handle the request for now; retry later"
    );
    let logs = instance.process.logs();
    assert!(logs.contains("database or disk is full"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");

    // A small write can still fit in WAL pages that a checkpoint freed,
    // so the CLI writes until the disk refuses one.
    let failed_write = (0..50)
        .map(|n| {
            let name = format!("Late {n}");
            let args = [
                "clients",
                "create",
                "--name",
                &name,
                "--grant-type",
                "client_credentials",
            ];
            settings.cli(dir, &args)
        })
        .find(|output| !output.status.success())
        .expect("the CLI wrote 50 clients to a full disk");
    assert_fails_with(&failed_write, &["disk is full"]);

    std::fs::remove_file(&filler).unwrap();
    let (status, answer) = instance.client_credentials(&provisioned.service).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    instance.stop();
}
