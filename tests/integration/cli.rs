//! The `tessera` binary: exit codes and messages for bad input, and a real
//! `migrate` then `serve` against PostgreSQL and the SQLite default.

use std::process::{Child, Output, Stdio};

use crate::harness::postgres;
use crate::harness::process::{
    free_port, run, run_with_input, spawn, stop, tessera, wait_for, ServeProcess,
};

/// Asserts a failure with `code` whose stderr ends in exactly one `error:`
/// line containing `needle` (info logs may come before it).
fn assert_fails(output: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    assert!(
        errors[0].contains(needle),
        "expected {needle:?} in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_config_file_exits_2() {
    let folder = tempfile::tempdir().unwrap();
    let output = run(folder.path(), &["--config", "absent.toml", "migrate"], &[]);
    assert_fails(&output, 2, "cannot read config file absent.toml");
}

#[test]
fn unknown_config_key_exits_2() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("t.toml"),
        "[tokens]\nacess_token_ttl = \"5m\"\n",
    )
    .unwrap();
    let output = run(folder.path(), &["migrate", "--config", "t.toml"], &[]);
    assert_fails(&output, 2, "acess_token_ttl");
}

#[test]
fn malformed_duration_exits_2() {
    let folder = tempfile::tempdir().unwrap();
    let env = [("TESSERA_TOKENS__ACCESS_TOKEN_TTL", "ten minutes")];
    let output = run(folder.path(), &["migrate"], &env);
    assert_fails(&output, 2, "`tokens.access_token_ttl`");
}

#[test]
fn plain_http_issuer_exits_2() {
    let folder = tempfile::tempdir().unwrap();
    let output = run(
        folder.path(),
        &["serve"],
        &[("TESSERA_ISSUER", "http://id.example.com")],
    );
    assert_fails(&output, 2, "`issuer` = \"http://id.example.com\"");
}

#[test]
fn unreachable_database_exits_1() {
    let folder = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://tessera:pw@127.0.0.1:{port}/tessera");
    let output = run(
        folder.path(),
        &["migrate"],
        &[("TESSERA_DATABASE_URL", &url)],
    );
    assert_fails(&output, 1, "is unreachable");
    assert!(!String::from_utf8_lossy(&output.stderr).contains(":pw@"));
}

#[tokio::test]
async fn newer_schema_exits_1() {
    let url = postgres::fresh_database().await;
    let folder = tempfile::tempdir().unwrap();
    let env = [
        ("TESSERA_DATABASE_URL", url.as_str()),
        (
            "TESSERA_MASTER_KEY",
            "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
        ),
    ];
    assert!(run(folder.path(), &["migrate"], &env).status.success());
    {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99999, 'future', TRUE, '', 0)",
        )
        .execute(&mut connection)
        .await
        .unwrap();
    }
    let output = run(folder.path(), &["migrate"], &env);
    assert_fails(&output, 1, "newer than this binary");
    let output = run(folder.path(), &["serve", "--listen", "127.0.0.1:0"], &env);
    assert_fails(&output, 1, "newer than this binary");
}

#[tokio::test]
async fn no_migrate_requires_current_schema() {
    let url = postgres::fresh_database().await;
    let folder = tempfile::tempdir().unwrap();
    let env = [
        ("TESSERA_DATABASE_URL", url.as_str()),
        (
            "TESSERA_MASTER_KEY",
            "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
        ),
    ];
    let output = run(
        folder.path(),
        &["serve", "--no-migrate", "--listen", "127.0.0.1:0"],
        &env,
    );
    assert_fails(&output, 1, "run `tessera migrate`");
}

#[tokio::test]
async fn migrate_then_serve_on_postgres() {
    let url = postgres::fresh_database().await;
    let folder = tempfile::tempdir().unwrap();
    let master_key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let env = [
        ("TESSERA_DATABASE_URL", url.as_str()),
        ("TESSERA_MASTER_KEY", master_key),
    ];

    let migrated = run(folder.path(), &["--json", "migrate"], &env);
    assert!(migrated.status.success(), "{migrated:?}");
    let document: serde_json::Value = serde_json::from_slice(&migrated.stdout).unwrap();
    assert_eq!(document["backend"], "postgres");

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = spawn(
        folder.path(),
        &["serve", "--no-migrate", "--listen", &listen],
        &env,
    );
    let ready = wait_for(&format!("http://{listen}/readyz")).await;
    assert_eq!(ready, Some(200));
    let output = stop(server);
    assert!(output.status.success(), "{output:?}");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("tessera listening"), "{logs}");
    assert!(logs.contains("tessera stopped"), "{logs}");
}

/// The quick start: `tessera serve` with nothing configured uses SQLite in
/// `./tessera-data` and needs no database server.
#[tokio::test]
async fn serve_defaults_to_sqlite_in_data_dir() {
    let folder = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [
        ("TESSERA_LISTEN", listen.as_str()),
        ("TESSERA_UNKNOWN_THING", "1"),
    ];
    let server = spawn(folder.path(), &["serve", "--log-format", "json"], &env);
    let health = wait_for(&format!("http://{listen}/healthz")).await;
    assert_eq!(health, Some(200));
    assert!(folder.path().join("tessera-data/master.key").exists());
    // The database contains password hashes and sealed keys, so only its
    // owner may read it.
    for file in ["tessera.db", "tessera.db-wal", "tessera.db-shm"] {
        let path = folder.path().join("tessera-data").join(file);
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    let output = stop(server);
    assert!(output.status.success(), "{output:?}");
    let logs = String::from_utf8_lossy(&output.stderr);
    for line in logs.lines() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
    assert!(logs.contains("TESSERA_UNKNOWN_THING"), "{logs}");
    assert!(logs.contains("created a development master key"), "{logs}");
}

#[tokio::test]
async fn postgres_without_master_key_exits_1() {
    let url = postgres::fresh_database().await;
    let folder = tempfile::tempdir().unwrap();
    let env = [("TESSERA_DATABASE_URL", url.as_str())];
    let output = run(folder.path(), &["serve", "--listen", "127.0.0.1:0"], &env);
    assert_fails(&output, 1, "no master key");
    assert!(!folder.path().join("tessera-data/master.key").exists());
    // The key is checked first, so the empty database was left untouched.
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn wrong_master_key_stops_serve() {
    let folder = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [("TESSERA_LISTEN", listen.as_str())];
    let server = spawn(folder.path(), &["serve"], &env);
    assert_eq!(
        wait_for(&format!("http://{listen}/healthz")).await,
        Some(200)
    );
    assert!(stop(server).status.success());
    let key_file = folder.path().join("tessera-data/master.key");
    let original = std::fs::read_to_string(&key_file).unwrap();

    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let output = run(folder.path(), &["serve"], &[("TESSERA_MASTER_KEY", other)]);
    assert_fails(&output, 1, "not the key this database was set up with");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), original);
}

/// SIGTERM while the first start generates keys stops `serve` gracefully
/// and gives the key-rotation lease back, so that the next start need not
/// wait for it to expire. 8192-bit RSA keys make the generation long
/// enough to be interrupted.
#[tokio::test]
async fn stop_during_key_generation_releases_the_lease() {
    use sqlx::Connection;

    let folder = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [
        ("TESSERA_LISTEN", listen.as_str()),
        ("TESSERA_KEYS__RSA_BITS", "8192"),
    ];
    let server = spawn(folder.path(), &["serve"], &env);
    let url = format!(
        "sqlite://{}",
        folder.path().join("tessera-data/tessera.db").display()
    );
    let count_leases = "SELECT count(*) FROM leases WHERE name = 'key-rotation'";
    let mut leases = 0;
    for _ in 0..200 {
        if let Ok(mut connection) = sqlx::SqliteConnection::connect(&url).await {
            leases = sqlx::query_scalar(count_leases)
                .fetch_one(&mut connection)
                .await
                .unwrap_or(0);
        }
        if leases == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(leases, 1, "the first start never took the lease");

    let output = stop(server);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("stopped during start-up"),
        "stderr: {stderr}"
    );
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let leases: i64 = sqlx::query_scalar(count_leases)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(leases, 0);
}

/// SIGTERM stops a `serve` whose start-up waits for another connection's
/// lock on the database, instead of waiting for the lock with it.
#[tokio::test]
async fn stop_while_waiting_for_a_database_lock() {
    use sqlx::Connection;

    let folder = tempfile::tempdir().unwrap();
    let data = folder.path().join("tessera-data");
    std::fs::create_dir(&data).unwrap();
    let url = format!("sqlite://{}?mode=rwc", data.join("tessera.db").display());
    let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let server = spawn(folder.path(), &["serve"], &[("TESSERA_LISTEN", &listen)]);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let output = stop(server);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("stopped during start-up"),
        "stderr: {stderr}"
    );
}

/// Four instances started together on an empty PostgreSQL database all
/// become ready: they wait for one another's migrations instead of crashing,
/// and agree on one set of data keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_start_together_on_empty_database() {
    let url = postgres::fresh_database().await;
    let folder = tempfile::tempdir().unwrap();
    let master_key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let addresses: Vec<String> = (0..4)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let servers: Vec<Child> = addresses
        .iter()
        .map(|listen| {
            let env = [
                ("TESSERA_DATABASE_URL", url.as_str()),
                ("TESSERA_MASTER_KEY", master_key),
                ("TESSERA_LISTEN", listen.as_str()),
            ];
            spawn(folder.path(), &["serve"], &env)
        })
        .collect();
    for listen in &addresses {
        assert_eq!(
            wait_for(&format!("http://{listen}/readyz")).await,
            Some(200),
            "{listen}"
        );
    }
    for server in servers {
        let output = stop(server);
        assert!(output.status.success(), "{output:?}");
    }

    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied, shipped as i64);
    let data_keys: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(data_keys, 2);
}

#[test]
fn users_commands_manage_accounts() {
    let folder = tempfile::tempdir().unwrap();
    let migrated = run(folder.path(), &["migrate"], &[]);
    assert!(migrated.status.success());
    let create = [
        "users",
        "create",
        "--username",
        "Alice",
        "--email",
        "alice@example.test",
        "--password-stdin",
        "--json",
    ];
    let created = run_with_input(folder.path(), &create, &[], "s3cret pass\n");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(body["username"], "alice");
    assert!(uuid::Uuid::parse_str(body["sub"].as_str().unwrap()).is_ok());

    let again = run_with_input(folder.path(), &create, &[], "other\n");
    assert_fails(&again, 1, "username \"alice\" is already taken");

    let listed = run(folder.path(), &["users", "list", "--json"], &[]);
    let users: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(users[0]["username"], "alice");
    assert!(users[0].get("password_hash").is_none());

    let disabled = run(folder.path(), &["users", "disable", "ALICE", "--json"], &[]);
    assert!(disabled.status.success());
    let shown = run(folder.path(), &["--json", "users", "show", "alice"], &[]);
    let user: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(user["disabled"], true);
    assert_eq!(user["email"], "alice@example.test");

    let set = ["users", "set-password", "alice", "--password-stdin"];
    let changed = run_with_input(folder.path(), &set, &[], "new pass\r\n");
    assert!(changed.status.success());
    let missing = run_with_input(folder.path(), &["users", "show", "nobody"], &[], "");
    assert_fails(&missing, 1, "user \"nobody\" not found");
}

/// One hundred `users set-password` commands at once on the SQLite default
/// all succeed, and each user ends with the new password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_set_password_commands_all_succeed() {
    use std::io::Write;

    let folder = tempfile::tempdir().unwrap();
    assert!(run(folder.path(), &["migrate"], &[]).status.success());
    let url = format!(
        "sqlite://{}",
        folder.path().join("tessera-data/tessera.db").display()
    );
    let store = tessera::store::open(&url).await.unwrap();
    let mut cheap = tessera::config::Config::default();
    cheap.argon2.memory_kib = 64;
    cheap.argon2.iterations = 1;
    let hasher = tessera::accounts::password::PasswordHasher::new(&cheap.argon2)
        .await
        .unwrap();
    let mut before = Vec::new();
    for index in 0..100 {
        let new = tessera::accounts::users::NewUser {
            username: format!("user{index}"),
            ..Default::default()
        };
        let user = tessera::accounts::users::create_user(
            store.as_ref(),
            &hasher,
            new,
            "old-password",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        before.push(user);
    }

    let env = [
        ("TESSERA_ARGON2__MEMORY_KIB", "64"),
        ("TESSERA_ARGON2__ITERATIONS", "1"),
    ];
    let mut children = Vec::new();
    for index in 0..100 {
        let name = format!("user{index}");
        let args = ["users", "set-password", name.as_str(), "--password-stdin"];
        let mut child = tessera(folder.path(), &args, &env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"new-password\n").unwrap();
        drop(stdin);
        children.push(child);
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains("database is locked"), "{stderr}");
    }

    for user in before {
        let after = store.user_by_id(user.id).await.unwrap().unwrap();
        assert_ne!(after.password_hash, user.password_hash, "{}", user.username);
        let check = hasher.verify("new-password", Some(&after.password_hash), "");
        assert!(check.await.unwrap().matched, "{}", user.username);
    }
}

/// A flood of failed client authentications from one sender writes a few
/// lines a second, not one per request, and a long presented `client_id`
/// is clipped in them.
#[tokio::test]
async fn failed_authentication_flood_writes_few_log_lines() {
    const REQUESTS: usize = 300;
    let folder = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(folder.path(), &[], &[]);
    let base = format!("http://{}", server.listen);
    assert_eq!(wait_for(&format!("{base}/readyz")).await, Some(200));

    let long_id = "x".repeat(500);
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    for _ in 0..REQUESTS {
        let response = http
            .post(format!("{base}/token"))
            .basic_auth(&long_id, Some("wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let seconds = started.elapsed().as_secs() as usize;

    let (stopped, logs) = server.stop();
    assert!(stopped, "{logs}");
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("client authentication failed"))
        .collect();
    assert!(!lines.is_empty(), "{logs}");
    // The cap allows 20 lines in each second the flood touched: its whole
    // seconds plus up to two partial ones.
    assert!(
        lines.len() <= 20 * (seconds + 2),
        "{} failure lines in {seconds} s",
        lines.len()
    );
    assert!(lines.len() < REQUESTS, "{} failure lines", lines.len());
    assert!(
        lines.iter().all(|line| !line.contains(&long_id[..100])),
        "a failure line repeats the whole client_id"
    );
}
