//! Form and query extractors for the HTML pages. A body or query string
//! that cannot be read (a repeated field, a wrong content type, a body over
//! the size limit) gets Tessera's error page with the rejection's status,
//! instead of the framework's plain-text message.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::error_page;
use crate::accounts::login_transactions::issuer_path;
use crate::server::AppState;

/// A form body read for a page.
pub struct PageForm<T>(pub T);

/// A query string read for a page.
pub struct PageQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        Form::<T>::from_request(request, state)
            .await
            .map(|Form(value)| Self(value))
            .map_err(|rejection: FormRejection| unreadable(state, rejection.status()))
    }
}

impl<T: DeserializeOwned> FromRequestParts<AppState> for PageQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| unreadable(state, rejection.status()))
    }
}

/// Renders the error page for a request whose form or query could not be
/// read, with the rejection's status (400, 413, 415 or 422).
pub fn unreadable(state: &AppState, status: StatusCode) -> Response {
    tracing::info!(status = status.as_u16(), "page request could not be read");
    error_page(
        status,
        &issuer_path(&state.config),
        "Invalid request",
        "Tessera could not read this request. Go back to the application and sign in again.",
    )
}
