//! A JWK Set server on a loopback port that counts the requests it receives.
//! Tests change its response (body, status, Cache-Control) while it runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

#[derive(Default)]
struct Answer {
    body: Value,
    status: u16,
    cache_control: Option<String>,
}

pub struct KeyServer {
    pub address: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicUsize>,
}

impl KeyServer {
    /// Serves `body` at `/jwks` with status 200 and no Cache-Control.
    pub async fn start(body: Value) -> Self {
        let answer = Arc::new(Mutex::new(Answer {
            body,
            status: 200,
            cache_control: None,
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let router = Router::new()
            .route("/jwks", get(serve))
            .with_state((Arc::clone(&answer), Arc::clone(&hits)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            address,
            answer,
            hits,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.address)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set_body(&self, body: Value) {
        self.answer.lock().unwrap().body = body;
    }

    pub fn set_status(&self, status: u16) {
        self.answer.lock().unwrap().status = status;
    }

    pub fn set_cache_control(&self, value: &str) {
        self.answer.lock().unwrap().cache_control = Some(value.to_owned());
    }
}

type ServerState = (Arc<Mutex<Answer>>, Arc<AtomicUsize>);

async fn serve(State((answer, hits)): State<ServerState>) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let (body, status, cache_control) = {
        let answer = answer.lock().unwrap();
        (
            answer.body.to_string(),
            answer.status,
            answer.cache_control.clone(),
        )
    };
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(value) = cache_control {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, value.parse().unwrap());
    }
    response
}
