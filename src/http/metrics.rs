//! HTTP metrics: the middleware that counts and times every request on the
//! main listener, and the router of the separate metrics listener, which
//! serves `GET /metrics` in the Prometheus text format.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::server::AppState;
use crate::telemetry::metrics as telemetry;

/// Content type of the Prometheus text exposition format 0.0.4.
const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Records the method, route template and status of a request, and the time
/// until its response headers. It is added with `Router::layer`, so it runs
/// after routing and reads the [`MatchedPath`] (`/register/{client_id}`),
/// never the raw path. A request that matched no route gets the fixed
/// [`telemetry::UNMATCHED_ROUTE`] label.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());

    let response = next.run(request).await;

    let status = response.status().as_u16();
    telemetry::http_request(method, route.as_deref(), status, started.elapsed());
    response
}

/// Maps the standard methods to themselves and anything else to `other`,
/// so that made-up methods cannot create series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[derive(Clone)]
struct MetricsState {
    app: AppState,
    handle: PrometheusHandle,
}

/// Builds the router of the metrics listener: `GET /metrics` only.
pub fn router(app: AppState, handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(MetricsState { app, handle })
}

/// Refreshes the gauges read at scrape time, then renders every series.
async fn scrape(State(state): State<MetricsState>) -> impl IntoResponse {
    telemetry::store_pool(state.app.store.pool_usage());
    (
        [(CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)],
        state.handle.render(),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    /// Returns the value of the `tessera_http_requests_total` series with
    /// these labels, 0 when it does not exist yet.
    fn requests(handle: &PrometheusHandle, method: &str, route: &str, status: u16) -> u64 {
        let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
        let prefix = format!("{}{{{labels}}} ", telemetry::HTTP_REQUESTS);
        handle
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
            .map_or(0, |value| value.parse().unwrap())
    }

    async fn send(app: &Router, method: Method, uri: &str) -> StatusCode {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(request).await.unwrap().status()
    }

    /// Route labels are templates, nested routes included, and unmatched
    /// paths share one label. The routes are unique to this test, because
    /// the recorder is shared by every test in the process.
    #[tokio::test]
    async fn route_label_is_the_matched_template() {
        let handle = telemetry::install();
        let nested = Router::new().route("/items/{item_id}", get(|| async { "item" }));
        let app = Router::new()
            .route("/route-label-test/{id}", get(|| async { "ok" }))
            .nest("/route-label-tenant", nested)
            .layer(axum::middleware::from_fn(track_requests));

        let template = "/route-label-test/{id}";
        let nested_template = "/route-label-tenant/items/{item_id}";
        let before = requests(&handle, "GET", template, 200);
        let nested_before = requests(&handle, "GET", nested_template, 200);
        let unmatched_before = requests(&handle, "other", telemetry::UNMATCHED_ROUTE, 404);

        assert_eq!(
            send(&app, Method::GET, "/route-label-test/secret-1").await,
            StatusCode::OK
        );
        assert_eq!(
            send(&app, Method::GET, "/route-label-test/secret-2").await,
            StatusCode::OK
        );
        let nested_uri = "/route-label-tenant/items/secret-3";
        assert_eq!(send(&app, Method::GET, nested_uri).await, StatusCode::OK);
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(
            send(&app, made_up, "/no-such-route-x").await,
            StatusCode::NOT_FOUND
        );

        assert_eq!(requests(&handle, "GET", template, 200), before + 2);
        assert_eq!(
            requests(&handle, "GET", nested_template, 200),
            nested_before + 1
        );
        let unmatched = requests(&handle, "other", telemetry::UNMATCHED_ROUTE, 404);
        assert_eq!(unmatched, unmatched_before + 1);
        let rendered = handle.render();
        for raw in ["secret-1", "secret-3", "no-such-route-x", "BREW"] {
            assert!(!rendered.contains(raw), "{raw} leaked into a label");
        }
        assert!(rendered.contains(&format!(
            "{}_bucket{{method=\"GET\",route=\"{template}\",status=\"200\",le=\"0.0005\"}}",
            telemetry::HTTP_REQUEST_DURATION
        )));
    }
}
