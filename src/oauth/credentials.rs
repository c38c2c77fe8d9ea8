//! Client credentials as presented in a request, before any lookup
//! (RFC 6749 section 2.3, RFC 7523 section 2.2).
//!
//! A request may use exactly one method. Credentials in both the
//! `Authorization` header and the body, or two assertion parameters
//! without the other, are `invalid_request` (RFC 6749 section 2.3: "MUST
//! NOT use more than one authentication method in each request").

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::http::error::OAuthError;
use crate::http::form::OAuthForm;
use crate::secret::SecretString;

/// The only client assertion type Tessera accepts (RFC 7523 section 2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The credentials a client presented, by authentication method.
#[derive(Debug)]
pub enum PresentedCredentials {
    /// HTTP Basic (`client_secret_basic`).
    Basic {
        client_id: String,
        secret: SecretString,
    },
    /// `client_id` and `client_secret` in the body (`client_secret_post`).
    Post {
        client_id: String,
        secret: SecretString,
    },
    /// A signed JWT (`private_key_jwt`); `client_id` is optional in the body.
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
    /// `client_id` alone, for public clients (`none`).
    PublicClient { client_id: String },
}

impl PresentedCredentials {
    /// Reads the credentials from the request; fails unless exactly one
    /// method is used.
    pub fn from_request(headers: &HeaderMap, form: &OAuthForm) -> Result<Self, OAuthError> {
        let basic = basic_credentials(headers)?;
        let body_secret = form.get("client_secret");
        let assertion = form.get("client_assertion");
        let assertion_type = form.get("client_assertion_type");
        let body_client_id = form.get("client_id").map(str::to_owned);

        let methods = usize::from(basic.is_some())
            + usize::from(body_secret.is_some())
            + usize::from(assertion.is_some() || assertion_type.is_some());
        if methods > 1 {
            return Err(OAuthError::invalid_request(
                "use exactly one client authentication method",
            ));
        }

        if let Some((client_id, secret)) = basic {
            if body_client_id.as_deref().is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Authorization header",
                ));
            }
            return Ok(Self::Basic { client_id, secret });
        }
        if let Some(secret) = body_secret {
            let client_id = body_client_id.ok_or(OAuthError::invalid_request(
                "client_secret requires client_id",
            ))?;
            return Ok(Self::Post {
                client_id,
                secret: SecretString::new(secret.to_owned()),
            });
        }
        match (assertion, assertion_type) {
            (Some(assertion), Some(JWT_BEARER_ASSERTION)) => {
                return Ok(Self::Assertion {
                    client_id: body_client_id,
                    assertion: assertion.to_owned(),
                })
            }
            (None, None) => {}
            _ => {
                return Err(OAuthError::invalid_request(
                    "client_assertion requires client_assertion_type jwt-bearer",
                ))
            }
        }
        match body_client_id {
            Some(client_id) => Ok(Self::PublicClient { client_id }),
            None => Err(OAuthError::invalid_client()),
        }
    }

    /// Whether the client used HTTP Basic, so a failure must carry the
    /// Basic challenge.
    pub fn is_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }

    /// Returns the client id the request names outside an assertion, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::PublicClient { client_id } => Some(client_id),
            Self::Assertion { client_id, .. } => client_id.as_deref(),
        }
    }
}

/// Decodes `Authorization: Basic`, where id and secret are each
/// form-url-encoded before base64 (RFC 6749 section 2.3.1). Returns `None`
/// when the header is absent or uses another scheme.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, SecretString)>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = || OAuthError::invalid_client();
    if values.next().is_some() {
        return Err(OAuthError::invalid_request("repeated Authorization header"));
    }
    let text = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id).ok_or_else(malformed)?;
    let secret = form_decode(secret).ok_or_else(malformed)?;
    if id.is_empty() {
        return Err(malformed());
    }
    Ok(Some((id, SecretString::new(secret))))
}

/// Form-decodes one credential; `None` when it is not UTF-8 or contains a
/// control character, which no client id or secret does.
fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .filter(|decoded| !decoded.chars().any(char::is_control))
        .map(|decoded| decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::http::error::ErrorCode;

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode(format!("{id}:{secret}"));
        let value = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap();
        headers.insert(header::AUTHORIZATION, value);
        headers
    }

    fn form(body: &str) -> OAuthForm {
        OAuthForm::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn basic_is_form_decoded() {
        let headers = basic("rp%3A1", "s%2Bcret+x");
        let presented = PresentedCredentials::from_request(&headers, &form("")).unwrap();
        let PresentedCredentials::Basic { client_id, secret } = presented else {
            panic!("expected Basic");
        };
        assert_eq!(client_id, "rp:1");
        assert_eq!(secret.expose(), "s+cret x");
    }

    #[test]
    fn post_needs_client_id() {
        let presented = PresentedCredentials::from_request(
            &HeaderMap::new(),
            &form("client_id=a&client_secret=b"),
        );
        assert!(matches!(presented, Ok(PresentedCredentials::Post { .. })));
        let err = PresentedCredentials::from_request(&HeaderMap::new(), &form("client_secret=b"))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn two_methods_are_invalid_request() {
        let headers = basic("rp1", "s1");
        let err =
            PresentedCredentials::from_request(&headers, &form("client_secret=s1")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let body = format!("client_secret=x&client_id=a&client_assertion=y&client_assertion_type={JWT_BEARER_ASSERTION}");
        let err = PresentedCredentials::from_request(&HeaderMap::new(), &form(&body)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn basic_and_other_body_client_id_conflict() {
        let headers = basic("rp1", "s1");
        let err = PresentedCredentials::from_request(&headers, &form("client_id=rp2")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let same = PresentedCredentials::from_request(&headers, &form("client_id=rp1"));
        assert!(same.is_ok());
    }

    #[test]
    fn assertion_needs_jwt_bearer_type() {
        let body = format!("client_assertion=a.b.c&client_assertion_type={JWT_BEARER_ASSERTION}");
        let presented = PresentedCredentials::from_request(&HeaderMap::new(), &form(&body));
        assert!(matches!(
            presented,
            Ok(PresentedCredentials::Assertion { .. })
        ));
        for body in [
            "client_assertion=a.b.c",
            "client_assertion=a&client_assertion_type=saml",
        ] {
            let err =
                PresentedCredentials::from_request(&HeaderMap::new(), &form(body)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
        }
    }

    #[test]
    fn client_id_alone_is_a_public_client() {
        let presented =
            PresentedCredentials::from_request(&HeaderMap::new(), &form("client_id=pub"));
        assert!(matches!(
            presented,
            Ok(PresentedCredentials::PublicClient { .. })
        ));
    }

    #[test]
    fn nothing_is_invalid_client_with_challenge() {
        let err = PresentedCredentials::from_request(&HeaderMap::new(), &form("")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidClient);
        assert!(err.basic_challenge);
    }

    #[test]
    fn malformed_basic_is_invalid_client_with_challenge() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        let err = PresentedCredentials::from_request(&headers, &form("")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidClient);
        assert!(err.basic_challenge);
    }

    #[test]
    fn basic_with_control_characters_is_invalid_client() {
        for (id, secret) in [("rp1%00", "s"), ("rp1", "s%0A"), ("%1B", "s")] {
            let err =
                PresentedCredentials::from_request(&basic(id, secret), &form("")).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidClient, "{id} {secret}");
        }
    }

    #[test]
    fn debug_output_hides_secret() {
        let presented =
            PresentedCredentials::from_request(&basic("rp1", "hunter2"), &form("")).unwrap();
        assert!(!format!("{presented:?}").contains("hunter2"));
    }
}
