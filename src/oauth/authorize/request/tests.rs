use chrono::Utc;

use super::*;
use crate::store::{ApplicationType, AuthMethod};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn client() -> Client {
    Client {
        client_id: "rp1".into(),
        name: "RP".into(),
        application_type: ApplicationType::Web,
        redirect_uris: vec!["https://rp.test/cb".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        response_types: vec!["code".into()],
        scopes: vec!["openid".into(), "email".into(), "offline_access".into()],
        auth_method: AuthMethod::ClientSecretBasic,
        secret_digest: None,
        jwks: None,
        jwks_uri: None,
        default_resource: None,
        id_token_signed_response_alg: "RS256".into(),
        first_party: false,
        require_pkce: true,
        self_registered: false,
        registration_token_digest: None,
        allowed_origins: Vec::new(),
        access_token_ttl_seconds: None,
        refresh_token_idle_ttl_seconds: None,
        refresh_token_absolute_ttl_seconds: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn base() -> String {
    format!(
        "response_type=code&client_id=rp1&redirect_uri=https%3A%2F%2Frp.test%2Fcb\
         &scope=openid&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256"
    )
}

fn check(query: &str) -> Result<AuthorizationRequest, AuthorizeError> {
    let params = Params::parse(query.as_bytes());
    let client = client();
    let target = response_target(&params, &client).expect("valid redirect");
    check_request(&params, &client, target)
}

#[test]
fn valid_request_passes() {
    let request = check(&base()).unwrap();
    assert_eq!(request.scopes, ["openid"]);
    assert_eq!(request.target.state.as_deref(), Some("xyz"));
    assert_eq!(request.code_challenge.as_deref(), Some(CHALLENGE));
}

#[test]
fn bad_client_or_redirect_is_a_page_error() {
    let client = client();
    for query in [
        "client_id=rp1&redirect_uri=https%3A%2F%2Fevil.test%2Fcb",
        "client_id=rp1",
        "client_id=rp1&redirect_uri=https%3A%2F%2Frp.test%2Fcb&redirect_uri=https%3A%2F%2Fevil.test%2Fcb",
        "client_id=rp1&redirect_uri=https%3A%2F%2Frp.test%2Fcb%2F",
    ] {
        let params = Params::parse(query.as_bytes());
        assert_eq!(response_target(&params, &client), Err(PageError::RedirectUri), "{query}");
    }
    for query in ["redirect_uri=x", "client_id=a&client_id=b"] {
        let params = Params::parse(query.as_bytes());
        assert_eq!(client_id(&params), Err(PageError::ClientId), "{query}");
    }
}

#[test]
fn repeated_state_is_not_echoed() {
    let query = format!("{}&state=b", base());
    let params = Params::parse(query.as_bytes());
    let target = response_target(&params, &client()).unwrap();
    assert_eq!(target.state, None);
    let error = check_request(&params, &client(), target).unwrap_err();
    assert_eq!(error.code, "invalid_request");
}

#[test]
fn pkce_rules() {
    let without = base().replace(
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
        "",
    );
    assert_eq!(check(&without).unwrap_err().code, "invalid_request");
    let plain = base().replace("S256", "plain");
    assert_eq!(check(&plain).unwrap_err().code, "invalid_request");
    for bad in ["abc", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c%3D"] {
        let query = base().replace(CHALLENGE, bad);
        assert_eq!(check(&query).unwrap_err().code, "invalid_request", "{bad}");
    }
}

#[test]
fn response_type_and_mode() {
    let token = base().replace("response_type=code", "response_type=token");
    assert_eq!(check(&token).unwrap_err().code, "unsupported_response_type");
    let bogus = format!("{}&response_mode=bogus", base());
    assert_eq!(check(&bogus).unwrap_err().code, "invalid_request");
    let form_post = format!("{}&response_mode=form_post", base());
    assert_eq!(
        check(&form_post).unwrap().target.mode,
        ResponseMode::FormPost
    );
}

#[test]
fn scope_policy() {
    for (scope, expected) in [
        ("openid%20email%20", "email openid"),
        ("openid%20%20email", "email openid"),
        ("email+openid", "email openid"),
        ("openid%20email%20email", "email openid"),
        ("openid%20unknown_x", "openid"),
    ] {
        let query = base().replace("scope=openid", &format!("scope={scope}"));
        assert_eq!(check(&query).unwrap().scopes.join(" "), expected, "{scope}");
    }
    for scope in ["openid%00email", "", "unknown_x"] {
        let query = base().replace("scope=openid", &format!("scope={scope}"));
        assert_eq!(
            check(&query).unwrap_err().code,
            "invalid_scope",
            "{scope:?}"
        );
    }
}

#[test]
fn prompt_values() {
    let both = format!("{}&prompt=none%20login", base());
    assert_eq!(check(&both).unwrap_err().code, "invalid_request");
    let select = format!("{}&prompt=select_account", base());
    assert!(check(&select).unwrap().prompt.login);
    let max_age = format!("{}&max_age=-1", base());
    assert_eq!(check(&max_age).unwrap_err().code, "invalid_request");
}

#[test]
fn limits_are_enforced() {
    let long_state = base().replace("state=xyz", &format!("state={}", "s".repeat(4097)));
    let params = Params::parse(long_state.as_bytes());
    let target = response_target(&params, &client()).unwrap();
    assert_eq!(target.state, None);
    assert_eq!(
        check_request(&params, &client(), target).unwrap_err().code,
        "invalid_request"
    );
    let kept = base().replace("state=xyz", &format!("state={}", "s".repeat(4096)));
    assert_eq!(check(&kept).unwrap().target.state.unwrap().len(), 4096);
    let nonce = format!("{}&nonce={}", base(), "n".repeat(513));
    assert_eq!(check(&nonce).unwrap_err().code, "invalid_request");
    let hint = format!("{}&login_hint={}", base(), "h".repeat(257));
    assert_eq!(check(&hint).unwrap_err().code, "invalid_request");
}

#[test]
fn malformed_values_are_invalid_and_never_echoed() {
    for value in ["%FF", "x%C0%AFy", "%00", "a%0Ab", "%7F"] {
        for name in ["nonce", "login_hint", "prompt", "unknown"] {
            let query = format!("{}&{name}={value}", base());
            let error = check(&query).unwrap_err();
            assert_eq!(error.code, "invalid_request", "{name}={value}");
        }
        let query = base().replace("state=xyz", &format!("state={value}"));
        let params = Params::parse(query.as_bytes());
        let target = response_target(&params, &client()).unwrap();
        assert_eq!(target.state, None, "state={value}");
        let query = base().replace("scope=openid", &format!("scope={value}"));
        assert_eq!(check(&query).unwrap_err().code, "invalid_scope", "{value}");
        let query = base().replace("client_id=rp1", &format!("client_id=rp1{value}"));
        let params = Params::parse(query.as_bytes());
        assert_eq!(client_id(&params), Err(PageError::ClientId), "{value}");
    }
}
