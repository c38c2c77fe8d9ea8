//! Client metadata validation (RFC 7591 section 2, OIDC Dynamic Client
//! Registration section 2), shared by `POST /register` and the CLI.
//!
//! Pure functions: [`ClientMetadata::from_json`] reads a registration
//! request, ignoring unknown members, and [`validate`] applies every rule
//! and fills in defaults. Each rejection names the field in its description.

use std::time::Duration;

use serde_json::Value;

use super::names::{check_name, looks_like_any};
use super::origin::{check_origin, MAX_ALLOWED_ORIGINS};
use super::redirect_uri::check_redirect_uri;
use crate::public_keys::{check_public_jwks, url_allowed, KeyPurpose};
use crate::store::{ApplicationType, AuthMethod};

/// Scopes every deployment has (OIDC Core section 5.4 and 11).
pub const BUILT_IN_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];
pub const SUPPORTED_GRANT_TYPES: &[&str] =
    &["authorization_code", "refresh_token", "client_credentials"];
pub const SUPPORTED_ID_TOKEN_ALGS: &[&str] = &["RS256", "ES256", "PS256", "EdDSA"];
/// Most redirect URIs (or post-logout redirect URIs) one client may have.
pub const MAX_REDIRECT_URIS: usize = 50;
/// Maximum access-token lifetime a client may set, the same bound as a
/// resource server's.
pub const MAX_ACCESS_TOKEN_TTL: Duration = crate::resources::MAX_ACCESS_TOKEN_TTL;
/// Maximum refresh-token lifetime a client may set: 3650 days, which keeps
/// every expiry time far inside the range of the stored timestamps.
pub const MAX_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(3650 * 86_400);

/// RFC 7591 section 3.2.2 error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRedirectUri,
    InvalidClientMetadata,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
        }
    }
}

/// A rejected registration: the error code, the metadata field at fault and
/// a description that starts with that field's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
pub struct MetadataError {
    pub code: ErrorCode,
    pub field: &'static str,
    pub description: String,
}

impl MetadataError {
    pub fn metadata(field: &'static str, reason: impl std::fmt::Display) -> Self {
        Self {
            code: ErrorCode::InvalidClientMetadata,
            field,
            description: format!("{field}: {reason}"),
        }
    }

    fn redirect(field: &'static str, reason: impl std::fmt::Display) -> Self {
        let code = if field == "redirect_uris" {
            ErrorCode::InvalidRedirectUri
        } else {
            ErrorCode::InvalidClientMetadata
        };
        Self {
            code,
            field,
            description: format!("{field}: {reason}"),
        }
    }
}

/// Who registers a client, which decides what it may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registrar {
    /// An operator through the CLI: every setting is allowed.
    Administrator,
    /// `POST /register` with an initial access token an operator handed out:
    /// any scope and grant, but never first-party.
    TrustedSelfService,
    /// `POST /register` under the open policy: built-in scopes only, no
    /// `client_credentials`, never first-party.
    OpenSelfService,
}

impl Registrar {
    pub fn is_self_service(self) -> bool {
        self != Registrar::Administrator
    }
}

/// Requested client metadata, before validation. `None` means "not given".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientMetadata {
    pub client_name: Option<String>,
    pub application_type: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    /// Space-separated scope values (RFC 7591 `scope`).
    pub scope: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    pub id_token_signed_response_alg: Option<String>,
    /// Tessera's `allowed_origins` extension: browser origins allowed to
    /// call the token endpoint and its siblings as this client (CORS).
    pub allowed_origins: Vec<String>,
    /// Administrator-only settings, never read from a registration request.
    pub default_resource: Option<String>,
    pub first_party: bool,
    pub allow_no_pkce: bool,
    pub access_token_ttl: Option<Duration>,
    pub refresh_token_idle_ttl: Option<Duration>,
    pub refresh_token_absolute_ttl: Option<Duration>,
}

/// Metadata that passed every check, with defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidMetadata {
    pub name: String,
    pub application_type: ApplicationType,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    pub auth_method: AuthMethod,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    pub default_resource: Option<String>,
    pub id_token_signed_response_alg: String,
    pub first_party: bool,
    pub require_pkce: bool,
    pub allowed_origins: Vec<String>,
    pub lifetimes: ClientLifetimes,
}

/// A client's lifetime overrides in seconds; `None` keeps the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientLifetimes {
    pub access_token_ttl_seconds: Option<i64>,
    pub refresh_token_idle_ttl_seconds: Option<i64>,
    pub refresh_token_absolute_ttl_seconds: Option<i64>,
}

impl ClientMetadata {
    /// Reads the members of a registration request that Tessera supports.
    /// Unknown members, and Tessera's administrator-only settings, are
    /// ignored (RFC 7591 section 2); a JSON `null` counts as absent.
    pub fn from_json(request: &Value) -> Result<Self, MetadataError> {
        let Value::Object(members) = request else {
            return Err(MetadataError::metadata(
                "request",
                "the body must be a JSON object",
            ));
        };
        let get = |name: &str| members.get(name).filter(|value| !value.is_null());
        Ok(Self {
            client_name: optional_string(get("client_name"), "client_name")?,
            application_type: optional_string(get("application_type"), "application_type")?,
            redirect_uris: string_list(get("redirect_uris"), "redirect_uris")?.unwrap_or_default(),
            post_logout_redirect_uris: string_list(
                get("post_logout_redirect_uris"),
                "post_logout_redirect_uris",
            )?
            .unwrap_or_default(),
            grant_types: string_list(get("grant_types"), "grant_types")?,
            response_types: string_list(get("response_types"), "response_types")?,
            scope: optional_string(get("scope"), "scope")?,
            token_endpoint_auth_method: optional_string(
                get("token_endpoint_auth_method"),
                "token_endpoint_auth_method",
            )?,
            jwks: match get("jwks") {
                None => None,
                Some(value @ Value::Object(_)) => Some(value.clone()),
                Some(_) => return Err(MetadataError::metadata("jwks", "must be a JSON object")),
            },
            jwks_uri: optional_string(get("jwks_uri"), "jwks_uri")?,
            id_token_signed_response_alg: optional_string(
                get("id_token_signed_response_alg"),
                "id_token_signed_response_alg",
            )?,
            allowed_origins: string_list(get("allowed_origins"), "allowed_origins")?
                .unwrap_or_default(),
            default_resource: None,
            first_party: false,
            allow_no_pkce: false,
            access_token_ttl: None,
            refresh_token_idle_ttl: None,
            refresh_token_absolute_ttl: None,
        })
    }
}

fn optional_string(
    value: Option<&Value>,
    field: &'static str,
) -> Result<Option<String>, MetadataError> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(MetadataError::metadata(field, "must be a string")),
    }
}

fn string_list(
    value: Option<&Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, MetadataError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(MetadataError::metadata(
            field,
            "must be an array of strings",
        ));
    };
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| MetadataError::metadata(field, "must be an array of strings"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Applies every registration rule to `metadata` and fills in defaults.
/// `protected_names` are the names of first-party clients, which a
/// self-registered client may not imitate.
pub fn validate(
    metadata: &ClientMetadata,
    registrar: Registrar,
    protected_names: &[String],
) -> Result<ValidMetadata, MetadataError> {
    let name = metadata.client_name.clone().unwrap_or_default();
    check_name(&name).map_err(|reason| MetadataError::metadata("client_name", reason))?;
    if registrar.is_self_service() && looks_like_any(&name, protected_names) {
        return Err(MetadataError::metadata(
            "client_name",
            "is the name of a first-party client, or looks like one; choose another name",
        ));
    }

    let application_type = match metadata.application_type.as_deref() {
        None => ApplicationType::Web,
        Some(value) => ApplicationType::parse(value).ok_or_else(|| {
            MetadataError::metadata(
                "application_type",
                format!("{value:?} is not web or native"),
            )
        })?,
    };

    let grant_types = check_grant_types(metadata, registrar)?;
    let code_flow = grant_types
        .iter()
        .any(|grant| grant == "authorization_code");
    let response_types = check_response_types(metadata, code_flow)?;
    let auth_method = check_auth_method(metadata, &grant_types)?;
    let (jwks, jwks_uri) = check_client_keys(metadata, auth_method, registrar)?;

    let redirect_uris = check_uri_list(&metadata.redirect_uris, "redirect_uris", application_type)?;
    if code_flow && redirect_uris.is_empty() {
        return Err(MetadataError::redirect(
            "redirect_uris",
            "at least one is required for the authorization_code grant",
        ));
    }
    let post_logout_redirect_uris = check_uri_list(
        &metadata.post_logout_redirect_uris,
        "post_logout_redirect_uris",
        application_type,
    )?;

    let allowed_origins = check_origins(&metadata.allowed_origins)?;
    let lifetimes = check_lifetimes(metadata)?;
    let scopes = check_scopes(metadata, registrar, &grant_types)?;
    let default_resource = metadata
        .default_resource
        .as_deref()
        .map(|resource| {
            check_resource_uri(resource)
                .map(|()| resource.to_owned())
                .map_err(|reason| MetadataError::metadata("default_resource", reason))
        })
        .transpose()?;

    // NOTE: the algorithm is checked against every algorithm Tessera
    // supports, not against `keys.signing_algs`, which registration does not
    // see; a client naming an unconfigured one gets `server_error` at the
    // token endpoint. Resource servers' `signing_alg` has the same gap.
    let id_token_signed_response_alg = match metadata.id_token_signed_response_alg.as_deref() {
        None => "RS256".to_owned(),
        Some(alg) if SUPPORTED_ID_TOKEN_ALGS.contains(&alg) => alg.to_owned(),
        Some(alg) => {
            return Err(MetadataError::metadata(
                "id_token_signed_response_alg",
                format!(
                    "{alg:?} is not supported; use one of {}",
                    SUPPORTED_ID_TOKEN_ALGS.join(", ")
                ),
            ))
        }
    };

    if metadata.allow_no_pkce && (auth_method == AuthMethod::None || !code_flow) {
        return Err(MetadataError::metadata(
            "allow_no_pkce",
            "only a confidential client with the authorization_code grant may skip PKCE",
        ));
    }

    Ok(ValidMetadata {
        name,
        application_type,
        redirect_uris,
        post_logout_redirect_uris,
        grant_types,
        response_types,
        scopes,
        auth_method,
        jwks,
        jwks_uri,
        default_resource,
        id_token_signed_response_alg,
        first_party: metadata.first_party && !registrar.is_self_service(),
        require_pkce: !metadata.allow_no_pkce,
        allowed_origins,
        lifetimes,
    })
}

/// Removes repeated values, keeping the first of each.
fn dedup(values: &[String]) -> Vec<String> {
    let mut unique: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        if !unique.contains(value) {
            unique.push(value.clone());
        }
    }
    unique
}

fn check_grant_types(
    metadata: &ClientMetadata,
    registrar: Registrar,
) -> Result<Vec<String>, MetadataError> {
    // RFC 7591 section 2: without grant_types, the client uses only the
    // authorization code grant.
    let grant_types = match &metadata.grant_types {
        None => vec!["authorization_code".to_owned()],
        Some(given) => dedup(given),
    };
    if grant_types.is_empty() {
        return Err(MetadataError::metadata(
            "grant_types",
            "at least one grant type is required",
        ));
    }
    if let Some(unsupported) = grant_types
        .iter()
        .find(|grant| !SUPPORTED_GRANT_TYPES.contains(&grant.as_str()))
    {
        return Err(MetadataError::metadata(
            "grant_types",
            format!(
                "{unsupported:?} is not supported; use {}",
                SUPPORTED_GRANT_TYPES.join(", ")
            ),
        ));
    }
    let has = |name: &str| grant_types.iter().any(|grant| grant == name);
    if has("refresh_token") && !has("authorization_code") {
        return Err(MetadataError::metadata(
            "grant_types",
            "refresh_token requires authorization_code, the only grant that issues refresh tokens",
        ));
    }
    if has("client_credentials") && registrar == Registrar::OpenSelfService {
        return Err(MetadataError::metadata(
            "grant_types",
            "client_credentials is not available through open registration; \
             ask an operator for an initial access token",
        ));
    }
    Ok(grant_types)
}

fn check_response_types(
    metadata: &ClientMetadata,
    code_flow: bool,
) -> Result<Vec<String>, MetadataError> {
    let response_types = match &metadata.response_types {
        None if code_flow => vec!["code".to_owned()],
        None => Vec::new(),
        Some(given) => dedup(given),
    };
    if let Some(unsupported) = response_types.iter().find(|value| *value != "code") {
        return Err(MetadataError::metadata(
            "response_types",
            format!("{unsupported:?} is not supported; only \"code\" is"),
        ));
    }
    // RFC 7591 section 2.1: the code response type goes with the
    // authorization_code grant, in both directions.
    let has_code = !response_types.is_empty();
    if has_code && !code_flow {
        return Err(MetadataError::metadata(
            "response_types",
            "\"code\" requires the authorization_code grant type",
        ));
    }
    if code_flow && !has_code {
        return Err(MetadataError::metadata(
            "response_types",
            "the authorization_code grant type requires the \"code\" response type",
        ));
    }
    Ok(response_types)
}

fn check_auth_method(
    metadata: &ClientMetadata,
    grant_types: &[String],
) -> Result<AuthMethod, MetadataError> {
    let auth_method = match metadata.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::ClientSecretBasic,
        Some(value) => AuthMethod::parse(value).ok_or_else(|| {
            MetadataError::metadata(
                "token_endpoint_auth_method",
                format!(
                    "{value:?} is not supported; use client_secret_basic, client_secret_post, \
                     private_key_jwt or none"
                ),
            )
        })?,
    };
    if auth_method == AuthMethod::None && grant_types.iter().any(|g| g == "client_credentials") {
        return Err(MetadataError::metadata(
            "grant_types",
            "client_credentials requires a confidential client \
             (token_endpoint_auth_method other than none)",
        ));
    }
    Ok(auth_method)
}

fn check_client_keys(
    metadata: &ClientMetadata,
    auth_method: AuthMethod,
    registrar: Registrar,
) -> Result<(Option<Value>, Option<String>), MetadataError> {
    match (&metadata.jwks, &metadata.jwks_uri) {
        (Some(_), Some(_)) => Err(MetadataError::metadata(
            "jwks_uri",
            "give either jwks or jwks_uri, not both",
        )),
        (None, None) if auth_method == AuthMethod::PrivateKeyJwt => Err(MetadataError::metadata(
            "jwks",
            "private_key_jwt requires jwks or jwks_uri",
        )),
        (None, None) => Ok((None, None)),
        (Some(_), None) | (None, Some(_)) if auth_method != AuthMethod::PrivateKeyJwt => {
            let field = if metadata.jwks.is_some() {
                "jwks"
            } else {
                "jwks_uri"
            };
            Err(MetadataError::metadata(
                field,
                "is only used with token_endpoint_auth_method private_key_jwt",
            ))
        }
        (Some(jwks), None) => check_public_jwks(jwks, KeyPurpose::Signature)
            .map(|checked| (Some(checked), None))
            .map_err(|err| MetadataError::metadata("jwks", err)),
        (None, Some(uri)) => {
            if registrar.is_self_service() && !is_public_https(uri) {
                return Err(MetadataError::metadata(
                    "jwks_uri",
                    format!(
                        "{uri:?} must be an https URL whose host is a domain name or a public \
                         address, because Tessera fetches it on the client's behalf"
                    ),
                ));
            }
            if url_allowed(uri) {
                Ok((None, Some(uri.clone())))
            } else {
                Err(MetadataError::metadata(
                    "jwks_uri",
                    format!(
                        "{uri:?} must be an absolute https URL without a fragment \
                         (http only for 127.0.0.1, [::1] or localhost)"
                    ),
                ))
            }
        }
    }
}

/// Returns whether `uri` is https with a host that is neither `localhost`
/// nor a loopback, private, link-local or unspecified IP address, so a
/// self-registered client cannot point Tessera's fetches at internal hosts.
///
/// NOTE: a domain name that resolves to an internal address still passes;
/// only a resolver-level check at fetch time would catch it.
fn is_public_https(uri: &str) -> bool {
    use std::net::IpAddr;
    let Ok(parsed) = url::Url::parse(uri) else {
        return false;
    };
    if parsed.scheme() != "https" {
        return false;
    }
    let internal = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    };
    match parsed.host() {
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.');
            domain != "localhost" && !domain.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(v4)) => !internal(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => !internal(IpAddr::V6(v6)),
        None => false,
    }
}

fn check_uri_list(
    uris: &[String],
    field: &'static str,
    application_type: ApplicationType,
) -> Result<Vec<String>, MetadataError> {
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(MetadataError::redirect(
            field,
            format!("at most {MAX_REDIRECT_URIS} are allowed"),
        ));
    }
    for uri in uris {
        check_redirect_uri(uri, application_type)
            .map_err(|reason| MetadataError::redirect(field, format!("{uri:?} {reason}")))?;
    }
    Ok(dedup(uris))
}

fn check_origins(origins: &[String]) -> Result<Vec<String>, MetadataError> {
    if origins.len() > MAX_ALLOWED_ORIGINS {
        return Err(MetadataError::metadata(
            "allowed_origins",
            format!("at most {MAX_ALLOWED_ORIGINS} are allowed"),
        ));
    }
    for origin in origins {
        check_origin(origin).map_err(|reason| {
            MetadataError::metadata("allowed_origins", format!("{origin:?} {reason}"))
        })?;
    }
    Ok(dedup(origins))
}

/// Checks the lifetime overrides against the bounds the configuration
/// applies to the global lifetimes: above zero, whole seconds, an idle
/// lifetime no longer than the absolute one, plus an upper bound each.
fn check_lifetimes(metadata: &ClientMetadata) -> Result<ClientLifetimes, MetadataError> {
    let seconds = |field: &'static str, ttl: Option<Duration>, max: Duration, max_text: &str| {
        let Some(ttl) = ttl else {
            return Ok(None);
        };
        if ttl.is_zero() || ttl > max {
            return Err(MetadataError::metadata(
                field,
                format!("must be above zero and at most {max_text}"),
            ));
        }
        if ttl.subsec_nanos() != 0 {
            return Err(MetadataError::metadata(
                field,
                "must be a whole number of seconds",
            ));
        }
        Ok(Some(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)))
    };
    let lifetimes = ClientLifetimes {
        access_token_ttl_seconds: seconds(
            "access_token_ttl",
            metadata.access_token_ttl,
            MAX_ACCESS_TOKEN_TTL,
            "24h",
        )?,
        refresh_token_idle_ttl_seconds: seconds(
            "refresh_token_idle_ttl",
            metadata.refresh_token_idle_ttl,
            MAX_REFRESH_TOKEN_TTL,
            "3650d",
        )?,
        refresh_token_absolute_ttl_seconds: seconds(
            "refresh_token_absolute_ttl",
            metadata.refresh_token_absolute_ttl,
            MAX_REFRESH_TOKEN_TTL,
            "3650d",
        )?,
    };
    if let (Some(idle), Some(absolute)) = (
        lifetimes.refresh_token_idle_ttl_seconds,
        lifetimes.refresh_token_absolute_ttl_seconds,
    ) {
        if idle > absolute {
            return Err(MetadataError::metadata(
                "refresh_token_idle_ttl",
                "must be at most refresh_token_absolute_ttl",
            ));
        }
    }
    Ok(lifetimes)
}

/// Returns whether `value` is a scope token: one or more of the characters RFC 6749
/// appendix A.4 allows (printable ASCII except space, `"` and `\`).
pub fn is_scope_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn check_scopes(
    metadata: &ClientMetadata,
    registrar: Registrar,
    grant_types: &[String],
) -> Result<Vec<String>, MetadataError> {
    let has = |name: &str| grant_types.iter().any(|grant| grant == name);
    let Some(scope) = &metadata.scope else {
        // Without `scope`, a client of the code flow gets the OpenID
        // Connect scopes, and offline_access when it may refresh.
        let mut defaults = Vec::new();
        if has("authorization_code") {
            defaults.extend(["openid", "profile", "email"].map(str::to_owned));
            if has("refresh_token") {
                defaults.push("offline_access".to_owned());
            }
        }
        return Ok(defaults);
    };
    let values: Vec<String> = scope
        .split(' ')
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = values.iter().find(|value| !is_scope_token(value)) {
        return Err(MetadataError::metadata(
            "scope",
            format!("{bad:?} contains a character not allowed in a scope (RFC 6749 appendix A.4)"),
        ));
    }
    if registrar == Registrar::OpenSelfService {
        if let Some(other) = values
            .iter()
            .find(|value| !BUILT_IN_SCOPES.contains(&value.as_str()))
        {
            return Err(MetadataError::metadata(
                "scope",
                format!(
                    "{other:?} is not available through open registration; only {} are",
                    BUILT_IN_SCOPES.join(", ")
                ),
            ));
        }
    }
    Ok(dedup(&values))
}

/// Checks a resource identifier (RFC 8707 section 2): an absolute URI
/// without a fragment.
pub fn check_resource_uri(value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{value:?} contains whitespace or control characters"
        ));
    }
    if value.contains('#') {
        return Err(format!("{value:?} must not contain a fragment"));
    }
    url::Url::parse(value)
        .map(|_| ())
        .map_err(|_| format!("{value:?} is not an absolute URI"))
}

#[cfg(test)]
mod tests;
