//! Strict `application/x-www-form-urlencoded` bodies for the OAuth
//! endpoints (`/token`, `/introspect`, `/revoke`).
//!
//! RFC 6749 section 3.1 and 3.2: parameters must not be repeated, and a
//! parameter sent without a value is treated as omitted. Every failure is an
//! OAuth JSON error, never the framework's plain-text rejection.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};

use super::error::{ErrorCode, OAuthError};

/// Largest accepted form body.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The decoded parameters of a form body, each present at most once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OAuthForm {
    params: BTreeMap<String, String>,
}

impl OAuthForm {
    /// Decodes a form body; rejects repeats, invalid UTF-8 and control
    /// characters.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut params = BTreeMap::new();
        for pair in body
            .split(|byte| *byte == b'&')
            .filter(|pair| !pair.is_empty())
        {
            let (name, value) = match pair.iter().position(|byte| *byte == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if params.contains_key(&name) {
                return Err(repeated(&name));
            }
            params.insert(name, value);
        }
        // Parameters without a value count as omitted, after the repeat check.
        params.retain(|_, value| !value.is_empty());
        Ok(Self { params })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Returns the parameter, or `invalid_request` naming nothing from the input.
    pub fn require(&self, name: &str, missing: &'static str) -> Result<&str, OAuthError> {
        self.get(name).ok_or(OAuthError::invalid_request(missing))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }
}

/// Returns the error for a repeated parameter. RFC 8707 section 2 allows several
/// `resource` parameters, but Tessera issues each token for one resource
/// server, so a repeated `resource` is `invalid_target`.
fn repeated(name: &str) -> OAuthError {
    if name == "resource" {
        OAuthError::new(
            ErrorCode::InvalidTarget,
            "only one resource may be requested per token",
        )
    } else {
        OAuthError::invalid_request("a request parameter is repeated")
    }
}

/// Percent-decodes one name or value, with `+` meaning a space.
fn decode(raw: &[u8]) -> Result<String, OAuthError> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|byte| if *byte == b'+' { b' ' } else { *byte })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    let text = String::from_utf8(bytes)
        .map_err(|_| OAuthError::invalid_request("the request body is not valid UTF-8"))?;
    // No OAuth parameter contains a control character, and PostgreSQL cannot
    // compare text containing NUL at all.
    if text.chars().any(char::is_control) {
        return Err(OAuthError::invalid_request(
            "a request parameter contains a control character",
        ));
    }
    Ok(text)
}

/// Checks whether `value` names the form media type, with any parameters (a
/// `charset`, say) and in any letter case.
pub fn is_form_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// 413 for a body over [`MAX_FORM_BYTES`] (RFC 9110 section 15.5.14), 400
/// for one that broke off.
fn body_error(error: axum::Error) -> OAuthError {
    let too_large = error
        .into_inner()
        .downcast_ref::<http_body_util::LengthLimitError>()
        .is_some();
    if too_large {
        OAuthError::invalid_request("the request body is larger than 64 KiB")
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    } else {
        OAuthError::invalid_request("the request body could not be read")
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !is_form_content_type(content_type) {
            return Err(OAuthError::invalid_request(
                "the request body must be application/x-www-form-urlencoded",
            ));
        }
        let body = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(body_error)?;
        Self::parse(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_plus_as_space() {
        let form = OAuthForm::parse(b"grant_type=client_credentials&scope=a+b%20c").unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), Some("a b c"));
    }

    #[test]
    fn literal_plus_survives_encoding() {
        let form = OAuthForm::parse(b"scope=openid%2Bemail").unwrap();
        assert_eq!(form.get("scope"), Some("openid+email"));
    }

    #[test]
    fn repeated_parameter_is_rejected() {
        let err = OAuthForm::parse(b"grant_type=a&grant_type=b").unwrap_err();
        assert_eq!(err.description, "a request parameter is repeated");
        let err = OAuthForm::parse(b"client_id=a&client_id=").unwrap_err();
        assert_eq!(err.description, "a request parameter is repeated");
    }

    #[test]
    fn repeated_resource_is_invalid_target() {
        let err =
            OAuthForm::parse(b"resource=https://a.test/&resource=https://b.test/").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTarget);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn empty_value_counts_as_omitted() {
        let form = OAuthForm::parse(b"scope=&grant_type=x&flag").unwrap();
        assert!(!form.contains("scope"));
        assert!(!form.contains("flag"));
        assert_eq!(form.get("grant_type"), Some("x"));
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        assert!(OAuthForm::parse(b"scope=%FF%FE").is_err());
    }

    #[test]
    fn control_characters_are_rejected() {
        for body in [
            &b"code=a%00b"[..],
            b"code=%0A",
            b"client_id=x%7F",
            b"a%1Bb=c",
        ] {
            let error = OAuthForm::parse(body).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidRequest, "{body:?}");
        }
    }

    #[test]
    fn content_type_variants() {
        assert!(is_form_content_type("application/x-www-form-urlencoded"));
        assert!(is_form_content_type(
            "application/x-www-form-urlencoded; charset=UTF-8"
        ));
        assert!(is_form_content_type("APPLICATION/X-WWW-FORM-URLENCODED"));
        assert!(!is_form_content_type("application/json"));
        assert!(!is_form_content_type("multipart/form-data; boundary=x"));
        assert!(!is_form_content_type(""));
    }
}

#[cfg(test)]
mod extractor_tests {
    use axum::body::Body;
    use axum::http::Request;

    use super::*;

    async fn extract(content_type: Option<&str>, body: Vec<u8>) -> Result<OAuthForm, OAuthError> {
        let mut builder = Request::builder().method("POST").uri("/token");
        if let Some(value) = content_type {
            builder = builder.header(header::CONTENT_TYPE, value);
        }
        let request = builder.body(Body::from(body)).unwrap();
        OAuthForm::from_request(request, &()).await
    }

    #[tokio::test]
    async fn accepts_form_with_charset() {
        let form = extract(
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            b"grant_type=client_credentials".to_vec(),
        )
        .await
        .unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
    }

    #[tokio::test]
    async fn rejects_json_and_missing_content_type() {
        for content_type in [Some("application/json"), None] {
            let err = extract(content_type, b"{}".to_vec()).await.unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{content_type:?}");
        }
    }

    #[tokio::test]
    async fn oversized_body_is_413() {
        let body = vec![b'a'; MAX_FORM_BYTES + 1];
        let err = extract(Some("application/x-www-form-urlencoded"), body)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn body_at_limit_is_read() {
        let mut body = b"scope=".to_vec();
        body.resize(MAX_FORM_BYTES, b'a');
        let form = extract(Some("application/x-www-form-urlencoded"), body)
            .await
            .unwrap();
        assert_eq!(form.get("scope").map(str::len), Some(MAX_FORM_BYTES - 6));
    }
}
