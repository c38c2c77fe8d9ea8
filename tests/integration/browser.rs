//! The login and consent pages in headless Chromium over WebDriver. A user
//! types their name and password, approves consent and lands on the
//! transaction's return path. A wrong password shows the generic message.
//! With `UPDATE_SCREENSHOTS=1` the test also writes the screenshots under
//! `docs/screenshots/` that the README links to.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/install-deps`
//! installs them); without them the test fails rather than passing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::login::{add_user, fast_config, new_transaction, spawn};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Window sizes of the screenshots: a laptop and a phone (CSS pixels).
const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);

/// A chromedriver process on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Self {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "the browser test needs {CHROMIUM} and {CHROMEDRIVER}: \
             run scripts/install-deps (apt-get install chromium chromium-driver)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            port,
            _profile: tempfile::tempdir().unwrap(),
        }
    }

    async fn connect(&self) -> Client {
        let profile = self._profile.path().display().to_string();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars",
                    format!("--user-data-dir={profile}"),
                ],
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{}", self.port);
        // chromedriver needs a moment before it accepts connections.
        let mut last_error = None;
        for _ in 0..50 {
            match ClientBuilder::native()
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return client,
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("cannot connect to chromedriver: {last_error:?}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn screenshot_folder() -> Option<PathBuf> {
    std::env::var_os("UPDATE_SCREENSHOTS")
        .map(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"))
}

/// Saves the current page at the desktop and phone sizes when requested.
async fn capture(client: &Client, name: &str) {
    let Some(folder) = screenshot_folder() else {
        return;
    };
    std::fs::create_dir_all(&folder).unwrap();
    for (label, (width, height)) in [("desktop", DESKTOP), ("phone", PHONE)] {
        client.set_window_size(width, height).await.unwrap();
        let png = client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(folder.join(format!("{name}-{label}.png")), png).unwrap();
    }
    client.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
}

async fn sign_in(client: &Client, username: &str, password: &str) {
    client
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .send_keys(username)
        .await
        .unwrap();
    client
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_and_approves_consent() {
    let app = spawn(fast_config()).await;
    add_user(&app, "alice", "correct horse battery").await;
    let driver = Driver::start();
    let client = driver.connect().await;
    client.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();

    // A wrong password: the generic message, on the login page again.
    let tx = new_transaction(&app, false, "openid profile email").await;
    client
        .goto(&app.url(&format!("/login?tx={tx}")))
        .await
        .unwrap();
    sign_in(&client, "alice", "wrong password").await;
    let alert = client
        .wait()
        .for_element(Locator::Css("#login-error"))
        .await
        .unwrap();
    assert_eq!(alert.text().await.unwrap(), "Invalid username or password.");
    capture(&client, "login").await;

    // The right password leads to consent, whose approval redirects to the
    // return path (no route exists there yet, so the server returns 404).
    client
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    sign_in(&client, "Alice", "correct horse battery").await;
    let approve = client
        .wait()
        .for_element(Locator::Css("#approve"))
        .await
        .unwrap();
    let page = client.source().await.unwrap();
    assert!(page.contains("Example Calendar"), "{page}");
    assert!(page.contains("See your email address"), "{page}");
    capture(&client, "consent").await;
    let cookies = client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|cookie| cookie.name() == "tessera_session")
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    assert_eq!(session.http_only(), Some(true));
    approve.click().await.unwrap();
    client
        .wait()
        .for_url(url::Url::parse(&app.url("/authorize/resume?step=1")).unwrap())
        .await
        .unwrap();

    client.close().await.unwrap();
}

/// Serves one HTML page that frames `target`, from another loopback port
/// (another origin), as an attacker's page would.
async fn framing_page(target: String) -> std::net::SocketAddr {
    let html = format!("<!doctype html><title>decoy</title><iframe src=\"{target}\"></iframe>");
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_refuses_to_frame_any_page() {
    let app = spawn(fast_config()).await;
    add_user(&app, "alice", "correct horse battery").await;
    let driver = Driver::start();
    let client = driver.connect().await;

    let tx = new_transaction(&app, false, "openid").await;
    // Each page with the heading it shows when it renders.
    let targets = [
        (app.url(&format!("/login?tx={tx}")), "Sign in"),
        (app.url("/login?tx=unknown"), "Sign-in link expired"),
        (app.url("/consent?tx=unknown"), "Sign-in link expired"),
        (
            app.url("/authorize?client_id=unknown"),
            "Invalid sign-in request",
        ),
        (app.url("/logout"), "Sign out of Tessera?"),
    ];
    for (target, heading) in targets {
        let direct = app.get(&target.replace(&app.url(""), "")).await;
        assert!(direct.text().await.unwrap().contains(heading), "{target}");

        let decoy = framing_page(target.clone()).await;
        client.goto(&format!("http://{decoy}/")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.enter_frame(Some(0)).await.unwrap();
        let inner = client.source().await.unwrap();
        assert!(
            !inner.contains(heading),
            "{target} rendered in a frame: {inner}"
        );
        client.enter_parent_frame().await.unwrap();
    }

    // Control: a response without the headers does render in the frame,
    // so the check above can tell framed from refused.
    let decoy = framing_page(app.url("/healthz")).await;
    client.goto(&format!("http://{decoy}/")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.enter_frame(Some(0)).await.unwrap();
    let inner = client.source().await.unwrap();
    assert!(
        inner.contains("\"status\""),
        "control frame did not render: {inner}"
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_runs_no_script_from_request_values() {
    let app = spawn(fast_config()).await;
    let driver = Driver::start();
    let client = driver.connect().await;
    let probes = [
        "/consent?tx=%3Cscript%3Ealert(1)%3C/script%3E",
        "/login?tx=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E",
        "/login?tx=%3C/title%3E%3Csvg/onload=alert(1)%3E",
    ];
    for probe in probes {
        client.goto(&app.url(probe)).await.unwrap();
        let heading = client.find(Locator::Css("h1")).await.unwrap();
        assert_eq!(
            heading.text().await.unwrap(),
            "Sign-in link expired",
            "{probe}"
        );
        assert!(
            client.get_alert_text().await.is_err(),
            "{probe} opened an alert"
        );
        let images = client
            .find_all(Locator::Css("img, svg, script"))
            .await
            .unwrap();
        assert!(images.is_empty(), "{probe} rendered markup");
    }
    client.close().await.unwrap();
}

/// A client's callback on another loopback port: it answers GET and POST
/// with a page showing the `code` it received.
async fn callback_server() -> std::net::SocketAddr {
    async fn show(code: Option<String>) -> axum::response::Html<String> {
        let code = code.unwrap_or_default();
        let safe: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        axum::response::Html(format!(
            "<!doctype html><title>callback</title><p id=\"code\">{safe}</p>"
        ))
    }
    let router = axum::Router::new().route(
        "/callback",
        axum::routing::get(
            |axum::extract::Query(query): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >| async move { show(query.get("code").cloned()).await },
        )
        .post(
            |axum::extract::Form(form): axum::extract::Form<
                std::collections::HashMap<String, String>,
            >| async move { show(form.get("code").cloned()).await },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_completes_authorization_in_both_response_modes() {
    let app = spawn(fast_config()).await;
    add_user(&app, "u1", crate::authorize::PASSWORD).await;
    let rp = crate::authorize::add_client(&app, "openid email", false).await;
    let callback = callback_server().await;
    let driver = Driver::start();
    let client = driver.connect().await;

    for (mode, approve) in [("query", true), ("form_post", false)] {
        let path = crate::authorize::query(&rp, &format!("&scope=openid&response_mode={mode}"))
            .replace(
                "https%3A%2F%2Frp.test%2Fcb",
                &format!("http%3A%2F%2F127.0.0.1%3A{}%2Fcallback", callback.port()),
            );
        client.goto(&app.url(&path)).await.unwrap();
        if approve {
            sign_in(&client, "u1", crate::authorize::PASSWORD).await;
            client
                .wait()
                .for_element(Locator::Css("#approve"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
        // After the login and consent forms, the browser follows the
        // redirect to the client's origin (form-action must allow it), and
        // in form_post mode the page's one script posts the code.
        let code = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#code"))
            .await
            .unwrap_or_else(|error| panic!("{mode}: no callback page: {error}"));
        assert_eq!(code.text().await.unwrap().len(), 43, "{mode}");
    }
    client.close().await.unwrap();
}

/// Asserts that the current page opened no alert and contains no element
/// that request values could have injected.
async fn assert_no_injected_markup(client: &Client, page: &str) {
    assert!(
        client.get_alert_text().await.is_err(),
        "{page} opened an alert"
    );
    let injected = client
        .find_all(Locator::Css("img, svg, script:not([src])"))
        .await
        .unwrap();
    assert!(injected.is_empty(), "{page} rendered injected markup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_runs_no_script_from_client_or_hint_values() {
    let app = spawn(fast_config()).await;
    add_user(&app, "u1", crate::authorize::PASSWORD).await;
    let name = "<img src=x onerror=alert(1)>";
    let metadata = tessera::clients::ClientMetadata {
        client_name: Some(name.into()),
        redirect_uris: vec!["https://rp.test/cb".into()],
        scope: Some("openid email".into()),
        ..tessera::clients::ClientMetadata::default()
    };
    let state = &app.state;
    let rp = tessera::clients::register(
        state.store.as_ref(),
        &state.data_keys.digester,
        &metadata,
        tessera::clients::Registrar::Administrator,
        state.clock.now(),
    )
    .await
    .unwrap()
    .client;
    let driver = Driver::start();
    let client = driver.connect().await;

    let hint = "\"><img src=x onerror=alert(2)>";
    let encoded_hint: String = url::form_urlencoded::byte_serialize(hint.as_bytes()).collect();
    let path = crate::authorize::query(&rp, &format!("&scope=openid&login_hint={encoded_hint}"));
    client.goto(&app.url(&path)).await.unwrap();
    assert_no_injected_markup(&client, "login").await;
    let username = client.find(Locator::Css("#username")).await.unwrap();
    assert_eq!(username.prop("value").await.unwrap().as_deref(), Some(hint));
    username.clear().await.unwrap();
    sign_in(&client, "u1", crate::authorize::PASSWORD).await;

    client
        .wait()
        .for_element(Locator::Css("#approve"))
        .await
        .unwrap();
    assert_no_injected_markup(&client, "consent").await;
    let body = client.find(Locator::Css("body")).await.unwrap();
    assert!(
        body.text().await.unwrap().contains(name),
        "consent shows the name as text"
    );

    let state_probe = "%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(3)%3E";
    client
        .goto(&app.url(&format!("/logout?state={state_probe}")))
        .await
        .unwrap();
    let heading = client.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Sign out of Tessera?");
    assert_no_injected_markup(&client, "logout").await;

    let client_probe = "%3Cimg%20src%3Dx%20onerror%3Dalert(4)%3E";
    client
        .goto(&app.url(&format!("/authorize?client_id={client_probe}")))
        .await
        .unwrap();
    let heading = client.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Invalid sign-in request");
    assert_no_injected_markup(&client, "authorize error").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_withdraws_an_app_on_the_account_page() {
    use crate::authorize::{add_client, code_for, exchange, refresh_with, Browser, VERIFIER};

    let app = spawn(fast_config()).await;
    add_user(&app, "u1", crate::authorize::PASSWORD).await;
    let rp = add_client(&app, "openid email offline_access", false).await;
    let code = code_for(
        &mut Browser::new(&app),
        &rp,
        "&scope=openid%20offline_access",
    )
    .await;
    let tokens = exchange(&app, &rp, &code, Some(VERIFIER)).await.unwrap();
    let refresh_token = tokens.refresh_token.unwrap();
    let driver = Driver::start();
    let client = driver.connect().await;
    client.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();

    // Without a session, the account page sends the browser to sign in.
    client.goto(&app.url("/account")).await.unwrap();
    sign_in(&client, "u1", crate::authorize::PASSWORD).await;
    let withdraw = client
        .wait()
        .for_element(Locator::Css("button.withdraw"))
        .await
        .unwrap();
    let page = client.source().await.unwrap();
    assert!(page.contains("Example Calendar"), "{page}");
    assert!(
        page.contains("Keep access while you are not using"),
        "{page}"
    );
    capture(&client, "account").await;

    withdraw.click().await.unwrap();
    client
        .wait()
        .for_element(Locator::Css("#no-apps"))
        .await
        .unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/account");
    let refused = refresh_with(&app, &rp, &refresh_token, None).await;
    assert_eq!(
        refused.unwrap_err().code,
        tessera::http::error::ErrorCode::InvalidGrant
    );
    client.close().await.unwrap();
}
