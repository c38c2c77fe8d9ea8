//! The fixed world every fuzz input meets: Tessera's keys and clients read
//! from a JSON file of test keys, one resource server, and a frozen clock,
//! so that tokens minted once for the corpus stay valid.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use josekit::jwk::Jwk;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::crypto::{Digester, Sealer};
use crate::keys::generate::public_jwk;
use crate::keys::ring::{sealing_context, Snapshot};
use crate::keys::{KeyAlg, KeyRing};
use crate::store::{
    ApplicationType, AuthMethod, Client, EncryptionKeySource, KeyTimes, ResourceServer,
    SessionRecord, StoredKey,
};

/// The issuer of every token in the corpus.
pub const ISSUER: &str = "https://id.example.com";
/// The instant the fixture's clock shows: 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;
/// A client that uses the authorization code flow with a client secret.
pub const WEB_CLIENT: &str = "fuzz-web";
/// The secret of [`WEB_CLIENT`].
pub const WEB_CLIENT_SECRET: &str = "fuzz-web-secret";
/// A client that authenticates with `private_key_jwt`.
pub const JWT_CLIENT: &str = "fuzz-jwt";
/// The resource server both clients may ask tokens for.
pub const RESOURCE: &str = "https://api.example.com/";
/// The redirect URIs of [`WEB_CLIENT`].
pub const REDIRECT_URIS: [&str; 2] = [
    "https://rp.example.com/callback",
    "http://127.0.0.1/callback",
];
/// The PKCE challenge of the code that the token target exchanges: the
/// S256 hash of [`CODE_VERIFIER`] (RFC 7636 appendix B).
pub const CODE_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const CODE_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// The private test keys: Tessera's signing and encryption keys, and the
/// signing keys of [`JWT_CLIENT`]. They protect nothing.
#[derive(Serialize, Deserialize)]
pub struct FixtureKeys {
    pub server: Vec<Value>,
    pub client: Vec<Value>,
}

/// Keys, clients and clock shared by every fuzz entry point.
pub struct Fixture {
    pub(crate) keys: KeyRing,
    pub(crate) clients: Vec<Client>,
    pub(crate) resource: Arc<ResourceServer>,
    pub(crate) digester: Digester,
    pub(crate) client_keys: Vec<Jwk>,
    /// A browser session whose user signed in an hour before [`NOW`].
    pub(crate) session: SessionRecord,
}

impl Fixture {
    /// Builds the fixture from the JSON text of [`FixtureKeys`].
    pub fn new(keys_json: &str) -> anyhow::Result<Self> {
        let keys: FixtureKeys = serde_json::from_str(keys_json)?;
        let client_keys = keys
            .client
            .iter()
            .map(|key| Ok(Jwk::from_bytes(key.to_string().as_bytes())?))
            .collect::<anyhow::Result<Vec<Jwk>>>()?;
        let client_jwks = client_keys
            .iter()
            .map(|key| Ok(Value::Object(public_jwk(key)?.as_ref().clone())))
            .collect::<anyhow::Result<Vec<Value>>>()?;
        let digester = Digester::new(&[7; 32]);
        let now = now();
        let web = Client {
            redirect_uris: REDIRECT_URIS.map(str::to_owned).to_vec(),
            post_logout_redirect_uris: vec!["https://rp.example.com/signed-out".to_owned()],
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            response_types: vec!["code".to_owned()],
            scopes: [
                "openid",
                "profile",
                "email",
                "offline_access",
                "calendar.read",
            ]
            .map(str::to_owned)
            .to_vec(),
            auth_method: AuthMethod::ClientSecretBasic,
            secret_digest: Some(digester.digest(WEB_CLIENT_SECRET)),
            ..client(WEB_CLIENT, now)
        };
        let jwt = Client {
            grant_types: vec!["client_credentials".to_owned()],
            scopes: vec!["calendar.read".to_owned(), "calendar.write".to_owned()],
            auth_method: AuthMethod::PrivateKeyJwt,
            jwks: Some(json!({ "keys": client_jwks })),
            default_resource: Some(RESOURCE.to_owned()),
            ..client(JWT_CLIENT, now)
        };
        let resource = ResourceServer {
            identifier: RESOURCE.to_owned(),
            name: "Calendar".to_owned(),
            scopes: vec!["calendar.read".to_owned(), "calendar.write".to_owned()],
            access_token_ttl_seconds: None,
            signing_alg: "ES256".to_owned(),
            encryption_key: EncryptionKeySource::Jwk(json!({})),
            introspection_client_id: "fuzz-rs".to_owned(),
            introspection_secret_digest: digester.digest("fuzz-rs-secret"),
            created_at: now,
            updated_at: now,
        };
        Ok(Self {
            keys: key_ring(&keys.server)?,
            clients: vec![web, jwt],
            resource: Arc::new(resource),
            digester: digester.clone(),
            client_keys,
            session: SessionRecord {
                id_digest: digester.digest("fuzz-session"),
                user_id: Uuid::nil(),
                auth_time: now - Duration::hours(1),
                amr: vec!["pwd".to_owned()],
                created_at: now - Duration::hours(1),
                last_seen_at: now,
                expires_at: now + Duration::hours(11),
            },
        })
    }

    pub(crate) fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients
            .iter()
            .find(|client| client.client_id == client_id)
    }
}

/// Returns the instant the fixture's clock shows, [`NOW`].
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).unwrap_or_default()
}

fn client(client_id: &str, now: DateTime<Utc>) -> Client {
    Client {
        client_id: client_id.to_owned(),
        name: client_id.to_owned(),
        application_type: ApplicationType::Web,
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        grant_types: Vec::new(),
        response_types: Vec::new(),
        scopes: Vec::new(),
        auth_method: AuthMethod::None,
        secret_digest: None,
        jwks: None,
        jwks_uri: None,
        default_resource: None,
        id_token_signed_response_alg: "RS256".to_owned(),
        first_party: false,
        require_pkce: true,
        self_registered: false,
        registration_token_digest: None,
        allowed_origins: Vec::new(),
        access_token_ttl_seconds: None,
        refresh_token_idle_ttl_seconds: None,
        refresh_token_absolute_ttl_seconds: None,
        created_at: now,
        updated_at: now,
    }
}

/// Loads the server keys through the same sealing and unsealing as keys
/// read from the store, each `current` since a day before [`NOW`].
fn key_ring(private_keys: &[Value]) -> anyhow::Result<KeyRing> {
    let sealer = Sealer::new(&[9; 32]);
    let since = now() - Duration::days(1);
    let mut stored = Vec::new();
    for key in private_keys {
        let jwk = Jwk::from_bytes(key.to_string().as_bytes())?;
        let kid = jwk
            .key_id()
            .ok_or_else(|| anyhow::anyhow!("a fixture key has no kid"))?
            .to_owned();
        let alg = KeyAlg::parse(
            jwk.algorithm().unwrap_or_default(),
            jwk.key_use().unwrap_or_default(),
        )
        .ok_or_else(|| anyhow::anyhow!("fixture key {kid} has an unknown alg or use"))?;
        stored.push(StoredKey {
            kid: kid.clone(),
            alg: alg.as_str().to_owned(),
            key_use: alg.key_use().to_owned(),
            public_jwk: public_jwk(&jwk)?.to_string(),
            sealed_private_key: sealer.seal(jwk.to_string().as_bytes(), &sealing_context(&kid)),
            times: KeyTimes {
                created_at: since,
                activates_at: since,
                retires_at: None,
                removes_at: None,
                revoked_at: None,
            },
        });
    }
    let ring = KeyRing::new();
    ring.replace(Snapshot::open(1, &stored, &sealer)?, now());
    Ok(ring)
}
