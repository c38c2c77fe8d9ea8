//! `tessera keys` and `tessera master-key` as operators run them: JSON
//! shapes, refusals and their messages, and a running server that follows
//! changes made by the CLI.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");
const MASTER_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
/// Members a `keys list` entry may have; none of them is key material.
const LIST_MEMBERS: [&str; 8] = [
    "kid",
    "alg",
    "use",
    "state",
    "published_at",
    "activates_at",
    "retires_at",
    "removed_at",
];

/// A `tessera` command in `folder` with debug logs, a time zone other than
/// UTC, and no inherited `TESSERA_*` variables.
fn tessera(folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(folder)
        .args(args)
        .env("RUST_LOG", "debug")
        .env("TZ", "America/Los_Angeles");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TESSERA_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
}

/// Runs `tessera` and checks that nothing private reaches its output.
fn run(folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = tessera(folder, args, env).output().unwrap();
    assert_no_private_members(&output);
    output
}

fn assert_no_private_members(output: &Output) {
    for text in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(text);
        for private in ["\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"qi\"", "PRIVATE KEY"] {
            assert!(!text.contains(private), "{private} in output: {text}");
        }
    }
}

fn ok(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

/// Returns the one `error:` line of a failed command with exit `code`.
fn error_line(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_owned()
}

/// Kids by `alg` and `state`, from a `keys list --json` array.
fn by_state(list: &Value) -> BTreeMap<(String, String), Vec<String>> {
    let mut states: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for key in list.as_array().unwrap() {
        for member in key.as_object().unwrap().keys() {
            assert!(LIST_MEMBERS.contains(&member.as_str()), "{member} in {key}");
        }
        let expected_use = if key["alg"] == "ECDH-ES+A256KW" {
            "enc"
        } else {
            "sig"
        };
        assert_eq!(key["use"], expected_use, "{key}");
        states
            .entry((
                key["alg"].as_str().unwrap().to_owned(),
                key["state"].as_str().unwrap().to_owned(),
            ))
            .or_default()
            .push(key["kid"].as_str().unwrap().to_owned());
    }
    states
}

fn kid(states: &BTreeMap<(String, String), Vec<String>>, alg: &str, state: &str) -> String {
    let kids = &states[&(alg.to_owned(), state.to_owned())];
    assert_eq!(kids.len(), 1, "{alg} {state}: {kids:?}");
    kids[0].clone()
}

#[test]
fn keys_commands_rotate_list_and_revoke() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let env = [("TESSERA_MASTER_KEY", MASTER_KEY)];
    ok(&run(dir, &["migrate"], &env));
    assert_eq!(
        json(&run(dir, &["keys", "list", "--json"], &env)),
        Value::Array(vec![])
    );

    let refused = error_line(&run(dir, &["keys", "rotate"], &env), 1);
    assert!(refused.contains("has no next key yet"), "{refused}");
    assert!(refused.contains("add --force"), "{refused}");
    assert_eq!(
        json(&run(dir, &["keys", "list", "--json"], &env)),
        Value::Array(vec![])
    );

    let rotated = json(&run(dir, &["keys", "rotate", "--force", "--json"], &env));
    let states = by_state(&rotated);
    for alg in ["RS256", "ES256"] {
        for state in ["retired", "current", "next"] {
            kid(&states, alg, state);
        }
    }
    kid(&states, "ECDH-ES+A256KW", "current");
    kid(&states, "ECDH-ES+A256KW", "next");
    assert_eq!(states.len(), 8, "{states:?}");
    let listed = json(&run(dir, &["--json", "keys", "list"], &env));
    assert_eq!(listed, rotated);
    // Times are UTC instants whatever the process's time zone.
    let published = listed[0]["published_at"].as_str().unwrap();
    let published = chrono::DateTime::parse_from_rfc3339(published).unwrap();
    assert_eq!(published.offset().local_minus_utc(), 0);
    let age = chrono::Utc::now() - published.with_timezone(&chrono::Utc);
    assert!(age >= chrono::Duration::zero(), "{age}");
    assert!(age < chrono::Duration::seconds(30), "{age}");

    let refused = error_line(&run(dir, &["keys", "rotate", "--alg", "ES256"], &env), 1);
    let next = kid(&states, "ES256", "next");
    assert!(
        refused.contains(&format!("the next ES256 key {next} was published at")),
        "{refused}"
    );
    assert!(
        refused.contains("JWKS caches may not hold it before"),
        "{refused}"
    );

    let current = kid(&states, "ES256", "current");
    let revoked = json(&run(dir, &["keys", "revoke", &current, "--json"], &env));
    assert_eq!(revoked["revoked"], current.as_str());
    assert_eq!(revoked["alg"], "ES256");
    assert_eq!(revoked["previous_state"], "current");
    assert_eq!(revoked["next_promoted"], true);
    let after = by_state(&revoked["keys"]);
    assert_eq!(kid(&after, "ES256", "current"), next);
    assert_ne!(kid(&after, "ES256", "next"), next);
    assert!(!revoked["keys"].to_string().contains(&current));

    let retired = kid(&states, "RS256", "retired");
    let text = ok(&run(dir, &["keys", "revoke", &retired], &env));
    assert!(
        text.contains(&format!("revoked key {retired} (RS256, was retired)")),
        "{text}"
    );
    assert!(text.contains("tokens it signed no longer verify"), "{text}");
    let listed = ok(&run(dir, &["keys", "list"], &env));
    assert!(listed.starts_with("KID"), "{listed}");
    assert!(!listed.contains(&retired), "{listed}");

    let missing = error_line(&run(dir, &["keys", "revoke", "no-such-kid"], &env), 1);
    assert!(missing.contains("key no-such-kid not found"), "{missing}");
    let unconfigured = error_line(&run(dir, &["keys", "rotate", "--alg", "EdDSA"], &env), 1);
    assert!(
        unconfigured.contains("EdDSA is not configured"),
        "{unconfigured}"
    );
    let unknown = run(dir, &["keys", "rotate", "--alg", "HS256"], &env);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown algorithm \"HS256\""));
}

#[test]
fn rotation_proceeds_once_caches_hold_next_key() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let env = [
        ("TESSERA_MASTER_KEY", MASTER_KEY),
        ("TESSERA_KEYS__JWKS_MAX_AGE", "9s"),
        ("TESSERA_KEYS__RELOAD_INTERVAL", "1s"),
        ("TESSERA_KEYS__PUBLISH_AHEAD", "18s"),
    ];
    ok(&run(dir, &["migrate"], &env));
    let rotated = by_state(&json(&run(
        dir,
        &["keys", "rotate", "--force", "--json"],
        &env,
    )));
    let next = kid(&rotated, "RS256", "next");
    error_line(&run(dir, &["keys", "rotate", "--alg", "RS256"], &env), 1);

    // The cache lifetime is jwks_max_age plus reload_interval: 10 seconds,
    // long enough that the refused call above cannot reach it even when a
    // loaded machine slows the debug build's RSA key generation.
    std::thread::sleep(Duration::from_millis(10_100));
    let after = by_state(&json(&run(
        dir,
        &["keys", "rotate", "--alg", "RS256", "--json"],
        &env,
    )));
    assert_eq!(kid(&after, "RS256", "current"), next);
    // Only the named algorithm moved.
    assert_eq!(
        kid(&after, "ES256", "current"),
        kid(&rotated, "ES256", "current")
    );
}

#[test]
fn master_key_rotate_rewraps_data_keys() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let old = [("TESSERA_MASTER_KEY", MASTER_KEY)];
    ok(&run(dir, &["migrate"], &old));
    ok(&run(dir, &["keys", "rotate", "--force"], &old));

    let missing_flag = run(dir, &["master-key", "rotate"], &old);
    assert_eq!(missing_flag.status.code(), Some(2));

    let rotated = json(&run(
        dir,
        &["master-key", "rotate", "--generate-to", "new.key", "--json"],
        &old,
    ));
    assert_eq!(rotated["rewrapped_data_keys"], 2);
    let new_key = std::fs::read_to_string(dir.join("new.key")).unwrap();
    let new_key = new_key.trim();
    assert_eq!(new_key.len(), 44);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("new.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!rotated.to_string().contains(new_key));

    let stale = error_line(&run(dir, &["keys", "rotate", "--force"], &old), 1);
    assert!(
        stale.contains("not the key this database was set up with"),
        "{stale}"
    );
    let new = [("TESSERA_MASTER_KEY", new_key)];
    ok(&run(dir, &["keys", "rotate", "--force"], &new));

    // The generated file must be new, so an existing key is never replaced.
    let exists = error_line(
        &run(
            dir,
            &["master-key", "rotate", "--generate-to", "new.key"],
            &new,
        ),
        1,
    );
    assert!(exists.contains("cannot create master key file"), "{exists}");
    let same = error_line(
        &run(
            dir,
            &["master-key", "rotate", "--new-key-file", "new.key"],
            &new,
        ),
        1,
    );
    assert!(same.contains("equals the current one"), "{same}");

    let third = "BAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiM=";
    std::fs::write(dir.join("third.key"), format!("{third}\n")).unwrap();
    let text = ok(&run(
        dir,
        &["master-key", "rotate", "--new-key-file", "third.key"],
        &new,
    ));
    assert!(text.contains("re-wrapped 2 data keys"), "{text}");
    ok(&run(
        dir,
        &["keys", "rotate", "--force"],
        &[("TESSERA_MASTER_KEY", third)],
    ));
}

/// `serve` creates the first keys, and a rotation made by the CLI reaches
/// the running server's `/jwks` within two seconds.
#[tokio::test]
async fn serve_follows_cli_rotation() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let server = tessera(dir, &["serve", "--listen", &listen], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let jwks_url = format!("http://{listen}/jwks");
    let mut ready = None;
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("http://{listen}/readyz")).send().await {
            ready = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, Some(200));
    let before: Value = client
        .get(&jwks_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["keys"].as_array().unwrap().len(), 6);

    // The CLI finds the development master key that serve created.
    let rotated = json(&run(dir, &["keys", "rotate", "--force", "--json"], &[]));
    let expected: Vec<&str> = rotated
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    let started = std::time::Instant::now();
    let mut served: Vec<String> = Vec::new();
    while started.elapsed() < Duration::from_secs(2) {
        let document: Value = client
            .get(&jwks_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        served = document["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect();
        if served.len() == expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut served_sorted = served.clone();
    served_sorted.sort();
    let mut expected_sorted: Vec<String> = expected.iter().map(|kid| (*kid).to_owned()).collect();
    expected_sorted.sort();
    assert_eq!(served_sorted, expected_sorted);

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let output = server.wait_with_output().unwrap();
    // The server logged at debug level while the CLI rotated its keys.
    assert_no_private_members(&output);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{logs}");
    assert!(logs.contains("key ring loaded"), "{logs}");
    assert!(logs.contains("published a new key"), "{logs}");
}
