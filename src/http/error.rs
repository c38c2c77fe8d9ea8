//! OAuth error responses (RFC 6749 section 5.2): a JSON body with `error`
//! and `error_description`, the status the RFC requires, `WWW-Authenticate`
//! when a client failed HTTP Basic authentication, and no caching.
//!
//! Descriptions are fixed text written here, never request input, so they
//! stay within the characters section 5.2 allows and echo nothing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// The error codes of RFC 6749 section 5.2, RFC 8707 and RFC 7591.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    InvalidRedirectUri,
    InvalidClientMetadata,
    AccessDenied,
    TemporarilyUnavailable,
    ServerError,
}

/// An OAuth error ready to be sent as a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: &'static str,
    pub status: StatusCode,
    /// Set for a failed client authentication: its 401 carries the Basic
    /// challenge, which RFC 7235 section 3.1 requires of every 401 and
    /// RFC 6749 section 5.2 of a client that tried HTTP Basic.
    pub basic_challenge: bool,
    /// Seconds for the `Retry-After` header of a 429.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body {
    error: ErrorCode,
    error_description: &'static str,
}

impl OAuthError {
    /// Builds a 400 error with `code`.
    pub const fn new(code: ErrorCode, description: &'static str) -> Self {
        Self {
            code,
            description,
            status: StatusCode::BAD_REQUEST,
            basic_challenge: false,
            retry_after: None,
        }
    }

    pub const fn invalid_request(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// Builds `invalid_client` with 401 and the Basic challenge, the one HTTP
    /// authentication scheme that client authentication supports. A client
    /// that sent no credentials, sent them in the form or sent a `Bearer`
    /// header gets the same challenge.
    pub const fn invalid_client() -> Self {
        Self {
            code: ErrorCode::InvalidClient,
            description: "client authentication failed",
            status: StatusCode::UNAUTHORIZED,
            basic_challenge: true,
            retry_after: None,
        }
    }

    /// Reports a failure on Tessera's side; the caller logs the cause.
    pub const fn server_error() -> Self {
        Self {
            code: ErrorCode::ServerError,
            description: "the server could not complete the request",
            status: StatusCode::INTERNAL_SERVER_ERROR,
            basic_challenge: false,
            retry_after: None,
        }
    }

    /// 503 for a request the database could not serve for now (stopped,
    /// unreachable, out of connections or disk space); the caller logs the
    /// cause. `temporarily_unavailable` is RFC 6749's code for a server that
    /// cannot handle a request for now (section 4.1.2.1).
    pub const fn temporarily_unavailable() -> Self {
        Self {
            code: ErrorCode::TemporarilyUnavailable,
            description: "the server cannot handle the request for now; retry later",
            status: StatusCode::SERVICE_UNAVAILABLE,
            basic_challenge: false,
            retry_after: None,
        }
    }

    /// Returns the error for a failed store call: 503 when the database
    /// cannot serve requests for now, else 500. The caller logs the cause.
    pub fn for_store(error: &StoreError) -> Self {
        if error.is_unavailable() {
            Self::temporarily_unavailable()
        } else {
            Self::server_error()
        }
    }

    /// 429 for a request over a rate limit, with `Retry-After: seconds`.
    /// RFC 6749 has no error code for it, so this uses
    /// `temporarily_unavailable`, its code for a server that cannot handle a
    /// request for now (section 4.1.2.1). `slow_down` is not used because
    /// RFC 8628 reserves it for device-code polling.
    pub const fn too_many_requests(seconds: u64) -> Self {
        Self {
            code: ErrorCode::TemporarilyUnavailable,
            description: "too many requests; retry after the time in Retry-After",
            status: StatusCode::TOO_MANY_REQUESTS,
            basic_challenge: false,
            retry_after: Some(seconds),
        }
    }

    pub const fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code,
            error_description: self.description,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\", charset=\"UTF-8\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Marks a response as not cacheable (RFC 6749 section 5.1).
pub fn no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn invalid_client_has_basic_challenge() {
        let response = OAuthError::invalid_client().into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Basic "));
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(body_of(response).await["error"], "invalid_client");
    }

    #[tokio::test]
    async fn other_errors_have_no_challenge() {
        let response = OAuthError::invalid_request("bad").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[tokio::test]
    async fn error_codes_serialize_as_rfc_names() {
        let cases = [
            (ErrorCode::InvalidRequest, "invalid_request"),
            (ErrorCode::UnsupportedGrantType, "unsupported_grant_type"),
            (ErrorCode::InvalidTarget, "invalid_target"),
            (ErrorCode::InvalidRedirectUri, "invalid_redirect_uri"),
            (ErrorCode::InvalidClientMetadata, "invalid_client_metadata"),
        ];
        for (code, name) in cases {
            let response = OAuthError::new(code, "x").into_response();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert_eq!(response.headers()[header::PRAGMA], "no-cache");
            assert_eq!(body_of(response).await["error"], name);
        }
    }

    #[tokio::test]
    async fn too_many_requests_has_retry_after() {
        let response = OAuthError::too_many_requests(7).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(body_of(response).await["error"], "temporarily_unavailable");
    }

    #[tokio::test]
    async fn unavailable_store_is_503() {
        let down = StoreError::from(sqlx::Error::PoolTimedOut);
        let response = OAuthError::for_store(&down).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(body_of(response).await["error"], "temporarily_unavailable");

        let failed = StoreError::from(sqlx::Error::RowNotFound);
        let response = OAuthError::for_store(&failed).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body_of(response).await["error"], "server_error");
    }

    #[test]
    fn server_error_is_500() {
        assert_eq!(
            OAuthError::server_error().status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
