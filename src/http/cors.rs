//! CORS (the cross-origin protocol of the WHATWG Fetch standard), so that
//! apps running in a browser can call Tessera directly.
//!
//! Discovery documents and the JWKS are public: any origin may read them
//! (`Access-Control-Allow-Origin: *`), through tower-http's [`CorsLayer`].
//!
//! The token, userinfo, revocation and introspection endpoints serve only
//! the origins that clients registered as `allowed_origins`:
//!
//! - A preflight names no client, so it passes when some client allows the
//!   origin and the endpoint takes the requested method. Any other preflight
//!   gets 204 without CORS headers, which the browser treats as a refusal.
//! - An actual response carries `Access-Control-Allow-Origin` only when the
//!   client that the request authenticated as allows the origin. The handler
//!   names that client through [`CorsClient`], so errors after
//!   authentication (such as `invalid_grant`) carry the header too and the
//!   app can read them. A failed client authentication names no client, so
//!   its `invalid_client` response does not.
//!
//! No response allows credentials, because these endpoints read no cookies.
//! tower-http's `CorsLayer` does not fit these endpoints: it lists the
//! allowed methods and headers in every preflight answer, whatever the
//! origin, and decides actual responses by the origin alone.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tower_http::cors::{Any, CorsLayer};

use crate::server::AppState;
use crate::store::Client;

/// How long a browser may reuse a preflight response, in seconds. Browsers
/// apply their own maximum (2 hours in Chromium 76 and later, 24 hours in
/// Firefox, according to MDN's Access-Control-Max-Age page).
const MAX_AGE_SECONDS: u64 = 600;

/// Request headers that a browser app may send to the client endpoints:
/// `Authorization` for Basic client credentials and Bearer tokens, and
/// `Content-Type` for the form body.
const ALLOWED_HEADERS: &str = "authorization, content-type";

/// Builds the CORS layer of the public documents: any origin may read them
/// with `GET` or `HEAD`.
pub fn public_documents() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD])
        .max_age(Duration::from_secs(MAX_AGE_SECONDS))
}

/// Wraps `route`, an endpoint that clients call with `methods`, in the
/// per-client CORS rules. The layer also receives `OPTIONS` requests, which
/// `route` itself would reject with 405.
pub fn for_clients(
    route: MethodRouter<AppState>,
    state: &AppState,
    methods: &'static [&'static str],
) -> MethodRouter<AppState> {
    let endpoint = ClientEndpoint {
        state: state.clone(),
        methods,
    };
    route.layer(middleware::from_fn_with_state(endpoint, client_cors))
}

#[derive(Clone)]
struct ClientEndpoint {
    state: AppState,
    /// The methods clients call the endpoint with, such as `POST`.
    methods: &'static [&'static str],
}

/// The client that a request to a client endpoint authenticated as. The
/// handler names it; the CORS middleware then compares the request's
/// `Origin` with that client's allowed origins. For a request without an
/// `Origin` header it is inert, and naming a client costs nothing.
#[derive(Clone, Debug, Default)]
pub struct CorsClient(Option<Arc<OnceLock<Vec<String>>>>);

impl CorsClient {
    fn for_origin() -> Self {
        Self(Some(Arc::default()))
    }

    /// Returns whether the request carries an `Origin` header, so that
    /// naming its client matters.
    pub fn is_active(&self) -> bool {
        self.0.is_some()
    }

    /// Names the client the request authenticated as; the first call wins.
    pub fn set_client(&self, client: &Client) {
        if let Some(slot) = &self.0 {
            // A later call names the same client again, so it may be ignored.
            let _ = slot.set(client.allowed_origins.clone());
        }
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.0
            .as_ref()
            .and_then(|slot| slot.get())
            .is_some_and(|origins| {
                origins
                    .iter()
                    .any(|allowed| allowed.as_bytes() == origin.as_bytes())
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CorsClient {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

async fn client_cors(
    State(endpoint): State<ClientEndpoint>,
    mut request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(ORIGIN).cloned();
    let requested_method = request
        .headers()
        .get(ACCESS_CONTROL_REQUEST_METHOD)
        .cloned();
    let mut response = match (origin, requested_method) {
        (Some(origin), Some(requested)) if request.method() == Method::OPTIONS => {
            preflight(&endpoint, origin, &requested).await
        }
        (Some(origin), _) => {
            let client = CorsClient::for_origin();
            request.extensions_mut().insert(client.clone());
            let mut response = next.run(request).await;
            if client.allows(&origin) {
                response
                    .headers_mut()
                    .insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            }
            response
        }
        (None, _) => next.run(request).await,
    };
    // The response depends on the Origin header whether or not this
    // request sent one.
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static("origin"));
    response
}

/// Responds to a preflight with 204, with the allow headers only when some
/// client allows `origin` and the endpoint takes the requested method.
async fn preflight(
    endpoint: &ClientEndpoint,
    origin: HeaderValue,
    requested: &HeaderValue,
) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let method_taken = endpoint
        .methods
        .iter()
        .any(|method| method.as_bytes() == requested.as_bytes());
    if !method_taken || !origin_allowed(&endpoint.state, &origin).await {
        return response;
    }
    let methods = endpoint.methods.join(", ");
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if let Ok(methods) = HeaderValue::from_str(&methods) {
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
    }
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECONDS));
    response
}

/// Returns whether some client allows `origin`. A failed lookup allows
/// nothing.
async fn origin_allowed(state: &AppState, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    match state.registry.origin_allowed_by_any_client(origin).await {
        Ok(allowed) => allowed,
        Err(error) => {
            tracing::error!(error = ?error, "allowed origins lookup failed");
            false
        }
    }
}
