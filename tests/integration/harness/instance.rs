//! One `tessera serve` process on its own SQLite data directory, provisioned
//! through the CLI as an operator would: a resource server, a user, a
//! code-flow client holding a refresh token from a real authorization, and
//! a client-credentials client. Backup and master-key tests check that
//! each of these still works after their change.

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::Jwk;
use josekit::jws::{JwsVerifier, ES256, RS256};
use reqwest::StatusCode;
use serde_json::Value;

use super::process::{json_output, run, run_with_input, wait_for, ServeProcess};
use crate::authorize::{param, Browser, CHALLENGE, PASSWORD, VERIFIER};

pub const RESOURCE: &str = "https://api.test/";
pub const REDIRECT_URI: &str = "https://rp.test/cb";

/// Settings of an instance: its data directory and master key.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub master_key: String,
}

impl Settings {
    pub fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("TESSERA_DATA_DIR", self.data_dir.to_str().unwrap()),
            ("TESSERA_MASTER_KEY", self.master_key.as_str()),
            ("TESSERA_ARGON2__MEMORY_KIB", "64"),
            ("TESSERA_ARGON2__ITERATIONS", "1"),
        ]
    }

    /// Runs a one-shot `tessera` command in `folder` with these settings.
    pub fn cli(&self, folder: &Path, args: &[&str]) -> Output {
        run(folder, args, &self.env())
    }
}

/// A running instance.
pub struct Instance {
    pub settings: Settings,
    pub process: ServeProcess,
    pub http: reqwest::Client,
}

impl Instance {
    /// Starts `tessera serve` in `folder` and waits until `/readyz` answers 200.
    pub async fn start(folder: &Path, settings: Settings) -> Self {
        let process = ServeProcess::start(folder, &[], &settings.env());
        let ready = wait_for(&format!("http://{}/readyz", process.listen)).await;
        assert_eq!(ready, Some(200), "{}", process.logs());
        Self {
            settings,
            process,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.process.listen)
    }

    pub async fn token(&self, client: &Credentials, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/token", self.base()))
            .basic_auth(&client.id, Some(&client.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// Requests a client-credentials token for [`RESOURCE`].
    pub async fn client_credentials(&self, client: &Credentials) -> (StatusCode, Value) {
        let form = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
        self.token(client, &form).await
    }

    pub async fn refresh(&self, client: &Credentials, refresh_token: &str) -> (StatusCode, Value) {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.token(client, &form).await
    }

    /// Returns the JWKS, whose key ids [`kids`] lists.
    pub async fn jwks(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/jwks", self.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Stops the process and checks that it exited cleanly.
    pub fn stop(self) {
        let (success, logs) = self.process.stop();
        assert!(success, "{logs}");
    }
}

/// Sorted key ids of a JWKS.
pub fn kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

pub struct Credentials {
    pub id: String,
    pub secret: String,
}

impl Credentials {
    fn from_output(created: &Value) -> Self {
        Self {
            id: created["client_id"].as_str().unwrap().to_owned(),
            secret: created["client_secret"].as_str().unwrap().to_owned(),
        }
    }
}

/// What [`provision`] created.
pub struct Provisioned {
    /// Private key of the resource server, which decrypts its tokens.
    pub resource_key: Jwk,
    pub relying_party: Credentials,
    pub service: Credentials,
    /// Issued to `relying_party` through a code flow for user `u1`.
    pub refresh_token: String,
}

/// Creates the resource server, user `u1` and both clients with the CLI,
/// then runs a code flow for `u1` and exchanges the code.
pub async fn provision(instance: &Instance, folder: &Path) -> Provisioned {
    let settings = &instance.settings;
    let user = run_with_input(
        folder,
        &[
            "--json",
            "users",
            "create",
            "--username",
            "u1",
            "--password-stdin",
        ],
        &settings.env(),
        &format!("{PASSWORD}\n"),
    );
    json_output(&user);

    let resource_key = Jwk::generate_ec_key(EcCurve::P256).unwrap();
    let public = Value::Object(resource_key.to_public_key().unwrap().as_ref().clone());
    let jwk_file = folder.join("api.jwk.json");
    std::fs::write(&jwk_file, public.to_string()).unwrap();
    json_output(&settings.cli(
        folder,
        &[
            "--json",
            "resources",
            "create",
            "--identifier",
            RESOURCE,
            "--name",
            "API",
            "--scope",
            "api.read",
            "--jwk-file",
            jwk_file.to_str().unwrap(),
        ],
    ));

    let relying_party = Credentials::from_output(&json_output(&settings.cli(
        folder,
        &[
            "--json",
            "clients",
            "create",
            "--name",
            "Relying Party",
            "--redirect-uri",
            REDIRECT_URI,
        ],
    )));
    let service = Credentials::from_output(&json_output(&settings.cli(
        folder,
        &[
            "--json",
            "clients",
            "create",
            "--name",
            "Batch job",
            "--grant-type",
            "client_credentials",
            "--scope",
            "api.read",
        ],
    )));

    let code = authorize(instance, &relying_party.id).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    let (status, tokens) = instance.token(&relying_party, &form).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    Provisioned {
        resource_key,
        relying_party,
        service,
        refresh_token,
    }
}

/// Logs `u1` in at `instance`, approves consent and returns the code.
async fn authorize(instance: &Instance, client_id: &str) -> String {
    let mut browser = Browser::at(&instance.base());
    let start = format!(
        "/authorize?response_type=code&client_id={client_id}\
         &redirect_uri=https%3A%2F%2Frp.test%2Fcb&scope=openid%20offline_access\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state=s1"
    );
    let page = browser.run(&start, "u1", true).await;
    let location = page.location.expect("redirect to the client");
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    param(&location, "code").expect("code")
}

/// Verifies a JWS against the key its `kid` names in `jwks` and returns
/// its claims.
pub fn verify_with_jwks(jws: &str, jwks: &Value) -> Value {
    let encoded = jws.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
    let kid = header["kid"].as_str().expect("kid");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
    let jwk = Jwk::from_map(key.as_object().unwrap().clone()).unwrap();
    let verifier: Box<dyn JwsVerifier> = match header["alg"].as_str().unwrap() {
        "RS256" => Box::new(RS256.verifier_from_jwk(&jwk).unwrap()),
        "ES256" => Box::new(ES256.verifier_from_jwk(&jwk).unwrap()),
        other => panic!("unexpected alg {other}"),
    };
    let (payload, _) = josekit::jws::deserialize_compact(jws, verifier.as_ref()).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// Decrypts an access token with the resource server's key and verifies
/// its inner JWT against `jwks`; returns the claims.
pub fn open_access_token(token: &str, resource_key: &Jwk, jwks: &Value) -> Value {
    let decrypter = josekit::jwe::ECDH_ES_A256KW
        .decrypter_from_jwk(resource_key)
        .unwrap();
    let (inner, _) = josekit::jwe::deserialize_compact(token, &decrypter).unwrap();
    verify_with_jwks(std::str::from_utf8(&inner).unwrap(), jwks)
}
