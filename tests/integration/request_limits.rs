//! Limits on every request and connection: body size, header size, the
//! header read timeout against slow clients, and the request timeout. Raw
//! TCP is used where an HTTP client would not send a broken request.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tessera::config::{Config, HumanDuration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Backend, TestApp, TestStore};

/// Maximum time a connection test waits for the server to act.
const GIVE_UP: Duration = Duration::from_secs(15);

async fn spawn(config: Config) -> TestApp {
    TestApp::spawn_with_config(TestStore::new(Backend::Sqlite).await, config).await
}

/// Returns the default configuration with a 1 s header read timeout.
fn slow_client_config() -> Config {
    let mut config = Config::default();
    config.http.header_read_timeout = HumanDuration::from_secs(1);
    config
}

/// Reads what the server sends within `wait`: `None` while the connection
/// stays open and silent, else the bytes read before end of stream (empty
/// when it closed without a response).
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
            Err(_) if received.is_empty() => return None,
            Err(_) => return Some(received),
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let app = spawn(Config::default()).await;
    let body = format!("csrf={}", "a".repeat(100 * 1024));
    // `/logout` reads its form with the framework's extractor and had no
    // limit of its own.
    let response = app
        .client
        .post(app.url("/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let small = app
        .client
        .post(app.url("/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", "a".repeat(1024)))
        .send()
        .await
        .unwrap();
    assert_ne!(small.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = spawn(Config::default()).await;
    let send = |size: usize| {
        app.client
            .get(app.url("/healthz"))
            .header("x-padding", "a".repeat(size))
            .send()
    };
    assert_eq!(send(8 * 1024).await.unwrap().status(), StatusCode::OK);
    let response = send(20 * 1024).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}

/// A client that sends its headers one byte at a time, never finishing, is
/// cut off once `http.header_read_timeout` has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_client_is_cut_off() {
    let app = spawn(slow_client_config()).await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let started = Instant::now();
    let mut sent = 0;
    let closed = loop {
        assert!(
            started.elapsed() < GIVE_UP,
            "still open after {GIVE_UP:?} and {sent} bytes"
        );
        let byte = head.get(sent).copied().unwrap_or(b'a');
        if stream.write_all(&[byte]).await.is_err() {
            break Vec::new();
        }
        sent += 1;
        if let Some(received) = read_until_closed(&mut stream, Duration::from_millis(200)).await {
            break received;
        }
    };
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed before the timeout: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "closed late: {elapsed:?}");
    let text = String::from_utf8_lossy(&closed);
    assert!(!text.contains("200 OK"), "{text}");
}

/// The same timeout closes a kept-alive connection that sends nothing
/// after its first response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed() {
    let app = spawn(slow_client_config()).await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let response = read_until_closed(&mut stream, GIVE_UP).await;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(response.as_deref().unwrap_or_default());
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(elapsed < Duration::from_secs(5), "closed late: {elapsed:?}");
}

/// A body that stops arriving ends in 408 after `http.request_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_gets_408() {
    let mut config = Config::default();
    config.login.max_delay = HumanDuration::from_secs(1);
    config.http.request_timeout = HumanDuration::from_secs(2);
    let app = spawn(config).await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let request = "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                   Content-Type: application/x-www-form-urlencoded\r\n\
                   Content-Length: 100\r\n\r\ngrant_type=";
    stream.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(GIVE_UP, stream.read(&mut buffer))
        .await
        .expect("a response within the wait")
        .unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&buffer[..read]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        elapsed >= Duration::from_millis(1900),
        "answered before the timeout: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(6),
        "answered late: {elapsed:?}"
    );
}
