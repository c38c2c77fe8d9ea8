//! Parsing and checking an authorization request (RFC 6749 section 4.1.1,
//! OIDC Core section 3.1.2.1, RFC 7636, RFC 8707), without HTTP.
//!
//! The order of the checks decides where an error goes. First the client
//! and the redirect URI: while either is missing, repeated, unknown or
//! unregistered, the response is Tessera's error page, never a redirect
//! (RFC 6749 section 4.1.2.1). Only once both are valid do the other
//! errors go back to the redirect URI, with fixed descriptions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::redirect::redirect_uri_matches;
use crate::clients::redirect_uri::MAX_REDIRECT_URI_BYTES;
use crate::oauth::scope::Scopes;
use crate::store::Client;

/// Input limits; beyond them a request is `invalid_request`.
pub const MAX_STATE_BYTES: usize = 4096;
pub const MAX_NONCE_BYTES: usize = 512;
pub const MAX_LOGIN_HINT_BYTES: usize = 256;
const MAX_CLIENT_ID_BYTES: usize = 256;

/// The decoded parameters of a query string or form body, repeats kept.
#[derive(Clone, Debug, Default)]
pub struct Params {
    values: BTreeMap<String, Vec<String>>,
    /// Names of parameters sent with bytes that are not UTF-8 or with a
    /// control character, in the name or the value.
    malformed: BTreeSet<String>,
}

impl Params {
    /// Decodes `application/x-www-form-urlencoded` text. A parameter sent
    /// without a value counts as omitted (RFC 6749 section 3.1). A name or
    /// value that is not UTF-8 or contains a control character is kept aside
    /// rather than repaired, so that it is never used or echoed changed.
    pub fn parse(raw: &[u8]) -> Self {
        let mut params = Self::default();
        for pair in raw
            .split(|byte| *byte == b'&')
            .filter(|pair| !pair.is_empty())
        {
            let (name, value) = match pair.iter().position(|byte| *byte == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            match (decode(name), decode(value)) {
                (Some(name), Some(value)) => params.values.entry(name).or_default().push(value),
                (Some(name), None) => {
                    params.malformed.insert(name);
                }
                (None, _) => {
                    params
                        .malformed
                        .insert(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
        for values in params.values.values_mut() {
            values.retain(|value| !value.is_empty());
        }
        params.values.retain(|_, values| !values.is_empty());
        params
    }

    /// Returns the value of a parameter sent once, or `Err` when it was
    /// repeated or malformed.
    fn single(&self, name: &str) -> Result<Option<&str>, ()> {
        if self.malformed.contains(name) {
            return Err(());
        }
        match self.values.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([value]) => Ok(Some(value.as_str())),
            Some(_) => Err(()),
        }
    }

    fn any_repeated(&self) -> bool {
        self.values.values().any(|values| values.len() > 1)
    }
}

/// Percent-decodes one name or value, with `+` meaning a space; `None`
/// when the result is not UTF-8 or contains a control character.
fn decode(raw: &[u8]) -> Option<String> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|byte| if *byte == b'+' { b' ' } else { *byte })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(bytes)
        .ok()
        .filter(|text| !text.chars().any(char::is_control))
}

/// The parameter that sends a request to the error page rather than back
/// to the client. The page names the parameter, never its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageError {
    ClientId,
    RedirectUri,
}

/// `response_mode` (OAuth 2.0 Multiple Response Types section 2.1 and the
/// Form Post Response Mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// The redirect URI, response mode and `state` of a response to the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseTarget {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    /// Echoed only when it was sent once and within its limit.
    pub state: Option<String>,
}

/// An error that goes back to the redirect URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthorizeError {
    pub code: &'static str,
    pub description: &'static str,
}

impl AuthorizeError {
    pub const fn new(code: &'static str, description: &'static str) -> Self {
        Self { code, description }
    }

    pub const fn invalid_request(description: &'static str) -> Self {
        Self::new("invalid_request", description)
    }
}

/// The `prompt` values Tessera acts on; `select_account` counts as `login`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A checked authorization request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub target: ResponseTarget,
    /// The granted scopes: requested ones the client holds.
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    /// The S256 challenge, when one was sent.
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// Checked by the endpoint against the session, and never stored.
    #[serde(skip)]
    pub id_token_hint: Option<String>,
    pub resource: Option<String>,
}

impl AuthorizationRequest {
    pub fn is_openid(&self) -> bool {
        self.scopes.iter().any(|scope| scope == "openid")
    }
}

/// Checks `client_id` and `redirect_uri`: the client (looked up by the
/// caller from the returned id) must exist and the URI be registered for
/// it. Returns the client id to look up.
pub fn client_id(params: &Params) -> Result<&str, PageError> {
    match params.single("client_id") {
        Ok(Some(id)) if id.len() <= MAX_CLIENT_ID_BYTES => Ok(id),
        _ => Err(PageError::ClientId),
    }
}

/// Returns the response target once the redirect URI is known to be
/// registered for `client`. `redirect_uri` is required: with PKCE and
/// several registered URIs, a default would be a guess.
pub fn response_target(params: &Params, client: &Client) -> Result<ResponseTarget, PageError> {
    let redirect_uri = match params.single("redirect_uri") {
        Ok(Some(uri)) if uri.len() <= MAX_REDIRECT_URI_BYTES => uri,
        _ => return Err(PageError::RedirectUri),
    };
    if !redirect_uri_matches(redirect_uri, &client.redirect_uris) {
        return Err(PageError::RedirectUri);
    }
    let mode = match params.single("response_mode") {
        Ok(Some("form_post")) => ResponseMode::FormPost,
        _ => ResponseMode::Query,
    };
    let state = match params.single("state") {
        Ok(Some(state)) if state.len() <= MAX_STATE_BYTES => Some(state.to_owned()),
        _ => None,
    };
    Ok(ResponseTarget {
        redirect_uri: redirect_uri.to_owned(),
        mode,
        state,
    })
}

/// Checks everything else; errors go back to `target`.
pub fn check_request(
    params: &Params,
    client: &Client,
    target: ResponseTarget,
) -> Result<AuthorizationRequest, AuthorizeError> {
    // RFC 6749 section 3.1: parameters must not be included more than once.
    if params.any_repeated() {
        return Err(AuthorizeError::invalid_request(
            "a request parameter is repeated",
        ));
    }
    let get = |name: &str| params.single(name).ok().flatten();

    match get("response_type") {
        None => return Err(AuthorizeError::invalid_request("response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(AuthorizeError::new(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    match get("response_mode") {
        None | Some("query") | Some("form_post") => {}
        Some(_) => {
            return Err(AuthorizeError::invalid_request(
                "response_mode must be query or form_post",
            ))
        }
    }
    if get("state").is_some_and(|state| state.len() > MAX_STATE_BYTES) {
        return Err(AuthorizeError::invalid_request(
            "state is longer than 4096 bytes",
        ));
    }
    // OIDC Core section 3.1.2.6 gives each parameter its own error code.
    if get("request").is_some() {
        return Err(AuthorizeError::new(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if get("request_uri").is_some() {
        return Err(AuthorizeError::new(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    if !client
        .grant_types
        .iter()
        .any(|grant| grant == "authorization_code")
    {
        return Err(AuthorizeError::new(
            "unauthorized_client",
            "the client may not use the authorization code grant",
        ));
    }

    let nonce = get("nonce");
    if nonce.is_some_and(|nonce| nonce.len() > MAX_NONCE_BYTES) {
        return Err(AuthorizeError::invalid_request(
            "nonce is longer than 512 bytes",
        ));
    }
    let login_hint = get("login_hint");
    if login_hint.is_some_and(|hint| hint.len() > MAX_LOGIN_HINT_BYTES) {
        return Err(AuthorizeError::invalid_request(
            "login_hint is longer than 256 bytes",
        ));
    }

    let code_challenge = check_pkce(get("code_challenge"), get("code_challenge_method"), client)?;
    let prompt = parse_prompt(get("prompt"))?;
    let max_age = match get("max_age") {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|seconds| *seconds >= 0)
                .ok_or(AuthorizeError::invalid_request(
                    "max_age must be a non-negative integer",
                ))?,
        ),
    };

    let invalid_scope = || {
        AuthorizeError::new(
            "invalid_scope",
            "the scope contains a character outside RFC 6749 appendix A.4",
        )
    };
    if params.malformed.contains("scope") {
        return Err(invalid_scope());
    }
    let requested = Scopes::parse(get("scope").unwrap_or_default()).map_err(|_| invalid_scope())?;
    let granted = requested.retain(|scope| client.scopes.iter().any(|held| held == scope));
    if granted.is_empty() {
        return Err(AuthorizeError::new(
            "invalid_scope",
            "no requested scope is allowed for this client",
        ));
    }
    // A malformed parameter read above counted as absent; any other one,
    // even a parameter Tessera ignores, fails here.
    if !params.malformed.is_empty() {
        return Err(AuthorizeError::invalid_request(
            "a request parameter is not UTF-8 or contains a control character",
        ));
    }
    Ok(AuthorizationRequest {
        client_id: client.client_id.clone(),
        target,
        scopes: granted.iter().map(str::to_owned).collect(),
        nonce: nonce.map(str::to_owned),
        code_challenge,
        prompt,
        max_age,
        login_hint: login_hint.map(str::to_owned),
        id_token_hint: get("id_token_hint").map(str::to_owned),
        resource: get("resource").map(str::to_owned),
    })
}

/// RFC 7636: only `S256`, required unless the client's registration
/// relaxes it. An S256 challenge is the unpadded base64url of 32 bytes.
fn check_pkce(
    challenge: Option<&str>,
    method: Option<&str>,
    client: &Client,
) -> Result<Option<String>, AuthorizeError> {
    match (challenge, method) {
        (None, None) if !client.require_pkce => Ok(None),
        (None, _) => Err(AuthorizeError::invalid_request(
            "code_challenge is required (PKCE with S256)",
        )),
        (Some(_), Some("S256")) => {
            let challenge = challenge.unwrap_or_default();
            let well_formed = challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if well_formed {
                Ok(Some(challenge.to_owned()))
            } else {
                Err(AuthorizeError::invalid_request(
                    "code_challenge is not an S256 challenge",
                ))
            }
        }
        (Some(_), _) => Err(AuthorizeError::invalid_request(
            "code_challenge_method must be S256",
        )),
    }
}

/// OIDC Core section 3.1.2.1: `none` must stand alone.
fn parse_prompt(text: Option<&str>) -> Result<Prompt, AuthorizeError> {
    let mut prompt = Prompt::default();
    let Some(text) = text else {
        return Ok(prompt);
    };
    let mut count = 0;
    for value in text.split(' ').filter(|value| !value.is_empty()) {
        count += 1;
        match value {
            "none" => prompt.none = true,
            "login" | "select_account" => prompt.login = true,
            "consent" => prompt.consent = true,
            _ => {
                return Err(AuthorizeError::invalid_request(
                    "prompt has an unsupported value",
                ))
            }
        }
    }
    if prompt.none && count > 1 {
        return Err(AuthorizeError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

#[cfg(test)]
mod tests;
