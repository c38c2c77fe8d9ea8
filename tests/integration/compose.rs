//! `docker-compose.yml` cannot run here (no Docker engine), so this test
//! checks its structure: PostgreSQL, Tessera built from the Dockerfile, the
//! example calendar API built from its stage, and the environment each needs.

use serde_yaml::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn environment(service: &Value) -> Vec<String> {
    match &service["environment"] {
        Value::Mapping(map) => map
            .keys()
            .filter_map(|key| key.as_str().map(str::to_owned))
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(|item| item.as_str())
            .map(|item| item.split('=').next().unwrap_or_default().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn compose_runs_postgres_and_tessera() {
    let document = compose();
    let services = &document["services"];
    let postgres = &services["postgres"];
    assert!(postgres["image"].as_str().unwrap().starts_with("postgres:"));
    assert!(postgres["healthcheck"].is_mapping());

    let tessera = &services["tessera"];
    assert_eq!(tessera["build"]["context"].as_str(), Some("."));
    assert_eq!(tessera["build"]["dockerfile"].as_str(), Some("Dockerfile"));
    assert_eq!(
        tessera["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    let env = environment(tessera);
    for required in [
        "TESSERA_ISSUER",
        "TESSERA_DATABASE_URL",
        "TESSERA_MASTER_KEY",
        "TESSERA_LISTEN",
    ] {
        assert!(
            env.contains(&required.to_owned()),
            "tessera lacks {required}"
        );
    }
}

#[test]
fn compose_runs_example_api() {
    let document = compose();
    let services = &document["services"];
    let api = &services["calendar-api"];
    assert_eq!(api["build"]["context"].as_str(), Some("."));
    assert_eq!(api["build"]["dockerfile"].as_str(), Some("Dockerfile"));
    assert_eq!(api["build"]["target"].as_str(), Some("resource-server"));
    let env = environment(api);
    for required in [
        "RS_ISSUER",
        "RS_IDENTIFIER",
        "RS_KEY_FILE",
        "RS_LISTEN",
        "RS_JWKS_URI",
    ] {
        assert!(
            env.contains(&required.to_owned()),
            "calendar-api lacks {required}"
        );
    }

    // Its tokens' `iss` is Tessera's issuer, and it fetches the JWKS from
    // Tessera's listener on the compose network.
    let tessera = &services["tessera"]["environment"];
    let api_env = &api["environment"];
    assert_eq!(api_env["RS_ISSUER"], tessera["TESSERA_ISSUER"]);
    let listen_port = tessera["TESSERA_LISTEN"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    assert_eq!(
        api_env["RS_JWKS_URI"].as_str(),
        Some(format!("http://tessera:{listen_port}/jwks").as_str())
    );

    // The key file lives on a named volume, so it survives a rebuild.
    let key_file = api_env["RS_KEY_FILE"].as_str().unwrap();
    let mounts: Vec<&str> = api["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let volume = mounts
        .iter()
        .find_map(|mount| {
            let (volume, target) = mount.split_once(':')?;
            key_file
                .starts_with(&format!("{target}/"))
                .then_some(volume)
        })
        .expect("a volume holds RS_KEY_FILE");
    assert!(
        document["volumes"]
            .as_mapping()
            .unwrap()
            .contains_key(volume),
        "volume {volume} is not declared"
    );
}

#[test]
fn dockerfile_builds_in_stages() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let stages = text
        .lines()
        .filter(|line| line.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "expected a multi-stage build");
    assert!(text.contains("cargo build --release"));
    // The build embeds these folders (migrations, askama templates, CSS).
    for folder in ["src", "migrations", "templates", "static"] {
        let copy = format!("COPY {folder} ./{folder}");
        assert!(text.contains(&copy), "the Dockerfile lacks `{copy}`");
    }
    assert!(text.contains("ENTRYPOINT"));

    // The example API has its own stage; the last stage, which a plain
    // `docker build` makes, stays Tessera's.
    assert!(text.contains("COPY examples ./examples"));
    assert!(text.contains("cargo build --release --locked --example resource_server"));
    assert!(text.contains(" AS resource-server"));
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    assert!(last_stage.contains("ENTRYPOINT [\"/usr/local/bin/tessera\"]"));
}
