//! `docker-compose.yml` cannot run here (no Docker engine), so this test
//! checks its structure: PostgreSQL, Tessera built from the Dockerfile, and
//! the environment Tessera needs.

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
}
