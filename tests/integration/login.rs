//! The login and consent pages over HTTP: the flow, generic failures,
//! lockout, CSRF, cookies, security headers and the error page.

use std::sync::Arc;

use chrono::{Duration, Utc};
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use tessera::accounts::login_transactions::{
    create_login_transaction, take_login_outcome, NewLoginTransaction,
};
use tessera::accounts::users::{create_user, NewUser};
use tessera::clock::{Clock, ManualClock, SystemClock};
use tessera::config::{Config, HumanDuration};
use tessera::store::{LoginOutcome, UserRecord};

use crate::harness::{Backend, TestApp, TestStore};

const GENERIC: &str = "Invalid username or password.";

/// Returns a configuration with cheap argon2 parameters and no throttling
/// delay.
pub fn fast_config() -> Config {
    let mut config = Config::default();
    config.argon2.memory_kib = 64;
    config.argon2.iterations = 1;
    config.login.base_delay = HumanDuration::from_secs(0);
    config
}

pub async fn spawn(config: Config) -> TestApp {
    TestApp::spawn_configured(
        TestStore::new(Backend::Sqlite).await,
        config,
        Arc::new(SystemClock),
    )
    .await
}

pub async fn add_user(app: &TestApp, username: &str, password: &str) -> UserRecord {
    let new = NewUser {
        username: username.to_owned(),
        ..NewUser::default()
    };
    let state = &app.state;
    create_user(
        state.store.as_ref(),
        &state.accounts.hasher,
        new,
        password,
        state.clock.now(),
    )
    .await
    .unwrap()
}

/// Creates a login transaction as the authorization endpoint would.
pub async fn new_transaction(app: &TestApp, first_party: bool, scopes: &str) -> String {
    let state = &app.state;
    let new = NewLoginTransaction {
        client_id: "rp1".into(),
        client_name: "Example Calendar".into(),
        first_party,
        scopes: scopes.split(' ').map(str::to_owned).collect(),
        login_hint: None,
        prompt_consent: false,
        return_path: "/authorize/resume?step=1".into(),
    };
    create_login_transaction(
        state.store.as_ref(),
        &state.data_keys.digester,
        &state.config,
        new,
        state.clock.now(),
    )
    .await
    .unwrap()
}

/// Returns the `Set-Cookie` value of cookie `name` in a response.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// Extracts the value of the hidden `csrf` field from a page.
fn csrf_field(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

/// A browser's view of one login transaction: its CSRF token and cookies.
pub struct Browser<'a> {
    app: &'a TestApp,
    pub tx: String,
    pub csrf: String,
    pub cookies: Vec<String>,
}

impl<'a> Browser<'a> {
    pub async fn open_login(app: &'a TestApp, tx: &str) -> Browser<'a> {
        let response = app.get(&format!("/login?tx={tx}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut browser = Browser {
            app,
            tx: tx.to_owned(),
            csrf: String::new(),
            cookies: Vec::new(),
        };
        browser.absorb(response).await;
        browser
    }

    /// Keeps the cookies and CSRF token of a response; returns its body.
    async fn absorb(&mut self, response: Response) -> String {
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = cookie_pair(value.to_str().unwrap());
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies
                .retain(|cookie| !cookie.starts_with(&format!("{name}=")));
            self.cookies.push(pair);
        }
        let body = response.text().await.unwrap();
        if body.contains("name=\"csrf\"") {
            self.csrf = csrf_field(&body);
        }
        body
    }

    pub fn cookie_header(&self) -> String {
        self.cookies.join("; ")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.app
            .client
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(
        &mut self,
        username: &str,
        password: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let form = [
            ("tx", self.tx.as_str()),
            ("csrf", self.csrf.as_str()),
            ("username", username),
            ("password", password),
        ];
        let response = self.post("/login", &form).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self.absorb(response).await;
        (status, headers, body)
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = self
            .app
            .client
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = self.absorb(response).await;
        (status, headers, body)
    }
}

fn location(headers: &HeaderMap) -> &str {
    headers[LOCATION].to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_consent_and_outcome() {
    let app = spawn(fast_config()).await;
    let user = add_user(&app, "Alice", "correct horse battery").await;
    let tx = new_transaction(&app, false, "openid email").await;
    let mut browser = Browser::open_login(&app, &tx).await;

    let (status, headers, _) = browser.login("ALICE", "correct horse battery").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), format!("/consent?tx={tx}"));

    let (status, _, page) = browser.get(&format!("/consent?tx={tx}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Example Calendar"), "{page}");
    assert!(page.contains("See your email address"), "{page}");
    assert!(page.contains("alice"), "{page}");

    let form = [
        ("tx", tx.as_str()),
        ("csrf", browser.csrf.as_str()),
        ("decision", "approve"),
    ];
    let response = browser.post("/consent", &form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(response.headers()), "/authorize/resume?step=1");

    let state = &app.state;
    let outcome = take_login_outcome(
        state.store.as_ref(),
        &state.data_keys.digester,
        &tx,
        state.clock.now(),
    )
    .await
    .unwrap()
    .unwrap()
    .outcome
    .unwrap();
    let LoginOutcome::Approved {
        user_id,
        granted_scopes,
        amr,
        ..
    } = outcome
    else {
        panic!("expected approval, got {outcome:?}");
    };
    assert_eq!(user_id, user.id);
    assert_eq!(granted_scopes, ["openid", "email"]);
    assert_eq!(amr, ["pwd"]);
    let again = take_login_outcome(
        state.store.as_ref(),
        &state.data_keys.digester,
        &tx,
        state.clock.now(),
    )
    .await
    .unwrap();
    assert!(again.is_none(), "an outcome is taken once");

    // The same scopes again: consent is remembered and skipped.
    let same = new_transaction(&app, false, "email openid").await;
    browser.tx = same.clone();
    let (status, headers, _) = browser.get(&format!("/consent?tx={same}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/authorize/resume?step=1");

    // A new scope: asked again, for that scope only.
    let wider = new_transaction(&app, false, "openid email profile").await;
    browser.tx = wider.clone();
    let (status, _, page) = browser.get(&format!("/consent?tx={wider}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("See your name"), "{page}");
    assert!(!page.contains("See your email address"), "{page}");
}

#[tokio::test]
async fn first_party_client_skips_consent() {
    let app = spawn(fast_config()).await;
    add_user(&app, "bob", "pw-bob-123").await;
    let tx = new_transaction(&app, true, "openid profile").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    let (status, headers, _) = browser.login("bob", "pw-bob-123").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/authorize/resume?step=1");
}

#[tokio::test]
async fn denied_consent_is_recorded() {
    let app = spawn(fast_config()).await;
    let user = add_user(&app, "carol", "pw-carol-1").await;
    let tx = new_transaction(&app, false, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    browser.login("carol", "pw-carol-1").await;
    browser.get(&format!("/consent?tx={tx}")).await;
    let form = [
        ("tx", tx.as_str()),
        ("csrf", browser.csrf.as_str()),
        ("decision", "deny"),
    ];
    let response = browser.post("/consent", &form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let state = &app.state;
    let taken = take_login_outcome(
        state.store.as_ref(),
        &state.data_keys.digester,
        &tx,
        Utc::now(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        taken.outcome,
        Some(LoginOutcome::Denied { user_id: user.id })
    );
}

/// Strips the per-request CSRF token so two pages can be compared.
fn without_tokens(page: &str) -> String {
    let csrf = csrf_field(page);
    page.replace(&csrf, "CSRF")
}

#[tokio::test]
async fn unknown_and_wrong_password_answer_alike() {
    let app = spawn(fast_config()).await;
    add_user(&app, "u1", "right-password").await;
    let disabled = add_user(&app, "u4", "right-password").await;
    app.state
        .store
        .set_user_disabled(disabled.id, true, Utc::now())
        .await
        .unwrap();

    let mut answers = Vec::new();
    let cases = [
        ("u1", "wrong-password"),
        ("U1", "wrong-password"),
        ("nobody-7f3a", "wrong-password"),
        ("u4", "right-password"),
        ("u1", ""),
        ("nobody-7f3a", ""),
    ];
    for (username, password) in cases {
        let tx = new_transaction(&app, false, "openid").await;
        let mut browser = Browser::open_login(&app, &tx).await;
        let (status, headers, page) = browser.login(username, password).await;
        assert_eq!(status, StatusCode::OK, "{username}");
        assert!(page.contains(GENERIC), "{username}: {page}");
        assert!(
            set_cookie(&headers, "tessera_session").is_none(),
            "{username}"
        );
        answers.push(without_tokens(&page).replace(&tx, "TX"));
    }
    for (answer, (username, _)) in answers.iter().zip(cases) {
        assert_eq!(answer, &answers[0], "page for {username} differs");
    }

    // Over-long and missing passwords are refused before hashing, alike.
    for username in ["u1", "nobody-7f3a"] {
        let tx = new_transaction(&app, false, "openid").await;
        let mut browser = Browser::open_login(&app, &tx).await;
        let long = "p".repeat(1025);
        let (status, _, page) = browser.login(username, &long).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{username}");
        assert!(page.contains(GENERIC), "{username}");
        let form = [
            ("tx", tx.as_str()),
            ("csrf", browser.csrf.as_str()),
            ("username", username),
        ];
        let response = browser.post("/login", &form).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{username}");
        assert!(response.text().await.unwrap().contains(GENERIC));
    }
}

#[tokio::test]
async fn lockout_after_configured_failures() {
    let mut config = fast_config();
    config.login.lockout_threshold = 3;
    config.login.lockout_duration = HumanDuration::from_secs(300);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app =
        TestApp::spawn_configured(TestStore::new(Backend::Sqlite).await, config, clock.clone())
            .await;
    let user = add_user(&app, "dave", "dave-right-pw").await;

    let tx = new_transaction(&app, true, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    for attempt in 1..=3 {
        let (status, _, page) = browser.login("dave", "wrong").await;
        assert_eq!(status, StatusCode::OK, "attempt {attempt}");
        assert!(page.contains(GENERIC), "attempt {attempt}");
    }
    let stored = app.state.store.user_by_id(user.id).await.unwrap().unwrap();
    assert!(stored.locked_until.is_some(), "locked after 3 failures");

    let (status, _, page) = browser.login("dave", "dave-right-pw").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(GENERIC),
        "a locked account rejects its right password"
    );

    let events = app.state.store.recent_audit_events(20).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "login.lockout")
            .count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "login.failure")
            .count(),
        4,
        "{kinds:?}"
    );
    let lockout = events
        .iter()
        .find(|event| event.kind == "login.lockout")
        .unwrap();
    assert_eq!(
        lockout.subject.as_deref(),
        Some(user.id.to_string().as_str())
    );
    assert_eq!(lockout.client_id.as_deref(), Some("rp1"));
    assert_eq!(lockout.ip.as_deref(), Some("127.0.0.1"));

    clock.advance(Duration::seconds(301));
    let (status, _, _) = browser.login("dave", "dave-right-pw").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the lock ends after its duration"
    );
}

#[tokio::test]
async fn address_over_its_limit_gets_429() {
    let mut config = fast_config();
    config.login.ip_lockout_threshold = 2;
    let app = spawn(config).await;
    add_user(&app, "erin", "erin-pw-123").await;
    let tx = new_transaction(&app, true, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    browser.login("x1", "wrong").await;
    browser.login("x2", "wrong").await;
    let (status, headers, page) = browser.login("erin", "erin-pw-123").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    assert!(page.contains(GENERIC));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_hashing_queue_gets_503() {
    let mut config = fast_config();
    config.argon2.memory_kib = 8 * 1024;
    config.argon2.iterations = 8;
    config.argon2.max_concurrent = 1;
    config.argon2.max_queued = 0;
    let app = spawn(config).await;
    let mut browsers = Vec::new();
    for _ in 0..4 {
        let tx = new_transaction(&app, true, "openid").await;
        browsers.push(Browser::open_login(&app, &tx).await);
    }
    let mut tasks = Vec::new();
    for browser in &browsers {
        let request = app
            .client
            .post(app.url("/login"))
            .header("cookie", browser.cookie_header())
            .form(&[
                ("tx", browser.tx.as_str()),
                ("csrf", browser.csrf.as_str()),
                ("username", "nobody"),
                ("password", "wrong"),
            ]);
        tasks.push(tokio::spawn(request.send()));
    }
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap().unwrap());
    }
    let busy: Vec<&Response> = responses
        .iter()
        .filter(|response| response.status() == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "some attempt finds the queue full");
    for response in &busy {
        assert!(response.headers().contains_key("retry-after"));
    }
    for response in responses {
        let status = response.status();
        assert!(
            [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE].contains(&status),
            "{status}"
        );
        assert!(response.text().await.unwrap().contains(GENERIC));
    }
}

#[tokio::test]
async fn form_without_csrf_token_is_rejected() {
    let app = spawn(fast_config()).await;
    add_user(&app, "frank", "frank-pw-1").await;
    let tx = new_transaction(&app, true, "openid").await;
    let browser = Browser::open_login(&app, &tx).await;

    let without_token = [
        ("tx", tx.as_str()),
        ("username", "frank"),
        ("password", "frank-pw-1"),
    ];
    let response = browser.post("/login", &without_token).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(response.headers(), "tessera_session").is_none());

    let forged = [
        ("tx", tx.as_str()),
        ("csrf", "forged-token"),
        ("username", "frank"),
        ("password", "frank-pw-1"),
    ];
    assert_eq!(
        browser.post("/login", &forged).await.status(),
        StatusCode::FORBIDDEN
    );

    // The right token without its cookie, as a cross-site form would send it.
    let response = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("tx", tx.as_str()),
            ("csrf", browser.csrf.as_str()),
            ("username", "frank"),
            ("password", "frank-pw-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn session_cookie_attributes_on_loopback_http() {
    let app = spawn(fast_config()).await;
    add_user(&app, "gina", "gina-pw-1").await;
    let tx = new_transaction(&app, true, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    let (_, headers, _) = browser.login("gina", "gina-pw-1").await;
    let cookie = set_cookie(&headers, "tessera_session").expect("session cookie");
    let attributes: Vec<&str> = cookie.split("; ").collect();
    assert_eq!(
        attributes[0].len(),
        "tessera_session=".len() + 43,
        "{cookie}"
    );
    for expected in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            attributes.contains(&expected),
            "{expected} missing: {cookie}"
        );
    }
    assert!(!attributes.contains(&"Secure"), "{cookie}");

    // Logging in again replaces the session id.
    let first = cookie_pair(&cookie);
    let tx = new_transaction(&app, true, "openid").await;
    let mut again = Browser::open_login(&app, &tx).await;
    again.cookies.push(first.clone());
    let (_, headers, _) = again.login("gina", "gina-pw-1").await;
    let second = cookie_pair(&set_cookie(&headers, "tessera_session").unwrap());
    assert_ne!(first, second);
    let digest = app
        .state
        .data_keys
        .digester
        .digest(first.split_once('=').unwrap().1);
    assert!(app.state.store.session(&digest).await.unwrap().is_none());
}

#[tokio::test]
async fn https_issuer_gets_host_prefix_secure_and_hsts() {
    let mut config = fast_config();
    config.issuer = "https://id.example.test".into();
    let app = spawn(config).await;
    add_user(&app, "hank", "hank-pw-1").await;
    let tx = new_transaction(&app, true, "openid").await;
    let response = app.get(&format!("/login?tx={tx}")).await;
    let csrf = set_cookie(response.headers(), "__Host-tessera_csrf").expect("csrf cookie");
    assert!(csrf.contains("; Secure"), "{csrf}");
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );

    let mut browser = Browser::open_login(&app, &tx).await;
    let (_, headers, _) = browser.login("hank", "hank-pw-1").await;
    let session = set_cookie(&headers, "__Host-tessera_session").expect("session cookie");
    for expected in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(
            session.split("; ").any(|part| part == expected),
            "{expected}: {session}"
        );
    }
    assert!(!session.contains("Domain"), "{session}");
}

fn assert_page_headers(headers: &HeaderMap, what: &str) {
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8", "{what}");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; style-src 'self'; img-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        "{what}"
    );
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(headers["cache-control"], "no-store", "{what}");
    assert!(
        !headers.contains_key("strict-transport-security"),
        "{what}: http issuer"
    );
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = spawn(fast_config()).await;
    add_user(&app, "ivy", "ivy-pw-1").await;
    let tx = new_transaction(&app, false, "openid").await;
    let login = app.get(&format!("/login?tx={tx}")).await;
    assert_page_headers(login.headers(), "login page");
    let error = app.get("/login?tx=unknown").await;
    assert_page_headers(error.headers(), "error page");

    let mut browser = Browser::open_login(&app, &tx).await;
    let (_, headers, _) = browser.login("ivy", "wrong").await;
    assert_page_headers(&headers, "failed login");
    browser.login("ivy", "ivy-pw-1").await;
    let (status, headers, _) = browser.get(&format!("/consent?tx={tx}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_page_headers(&headers, "consent page");
}

#[tokio::test]
async fn error_page_reflects_no_input() {
    let app = spawn(fast_config()).await;
    let probes = [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "</title><svg/onload=alert(1)>",
    ];
    for probe in probes {
        for path in ["/login", "/consent"] {
            let response = app
                .client
                .get(app.url(path))
                .query(&[("tx", probe)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {probe}");
            assert_page_headers(response.headers(), path);
            let body = response.text().await.unwrap();
            for fragment in ["alert", "<script", "<img", "<svg", "onerror", "onload"] {
                assert!(
                    !body.contains(fragment),
                    "{path} reflected {fragment}: {body}"
                );
            }
            assert!(body.contains("Sign-in link expired"), "{body}");
        }
    }
}

#[tokio::test]
async fn idle_session_must_log_in_again() {
    let mut config = fast_config();
    config.login.session_idle_timeout = HumanDuration::from_secs(60);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app =
        TestApp::spawn_configured(TestStore::new(Backend::Sqlite).await, config, clock.clone())
            .await;
    add_user(&app, "jack", "jack-pw-1").await;
    let tx = new_transaction(&app, false, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    browser.login("jack", "jack-pw-1").await;
    let (status, _, _) = browser.get(&format!("/consent?tx={tx}")).await;
    assert_eq!(status, StatusCode::OK);

    clock.advance(Duration::seconds(61));
    let (status, headers, _) = browser.get(&format!("/consent?tx={tx}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), format!("/login?tx={tx}"));
}

#[tokio::test]
async fn older_hash_is_upgraded_at_login() {
    let app = spawn(fast_config()).await;
    let mut older = fast_config();
    older.argon2.memory_kib = 32;
    let old_hasher = tessera::accounts::password::PasswordHasher::new(&older.argon2)
        .await
        .unwrap();
    let user = create_user(
        app.state.store.as_ref(),
        &old_hasher,
        NewUser {
            username: "kim".into(),
            ..NewUser::default()
        },
        "kim-pw-1",
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(user.password_hash.contains("m=32,"));

    let tx = new_transaction(&app, true, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    let (status, _, _) = browser.login("kim", "wrong").await;
    assert_eq!(status, StatusCode::OK);
    let unchanged = app.state.store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(
        unchanged.password_hash, user.password_hash,
        "a wrong password never rehashes"
    );

    let (status, _, _) = browser.login("kim", "kim-pw-1").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let upgraded = app.state.store.user_by_id(user.id).await.unwrap().unwrap();
    assert!(
        upgraded.password_hash.contains("m=64,"),
        "{}",
        upgraded.password_hash
    );
}

#[tokio::test]
async fn hash_above_ceiling_fails_like_wrong_password() {
    let app = spawn(fast_config()).await;
    let user = add_user(&app, "u6", "u6-pw-1").await;
    let edited = "$argon2id$v=19$m=4194304,t=1000,p=255$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    app.state
        .store
        .set_password_hash(user.id, edited, Utc::now())
        .await
        .unwrap();
    // Ten at once: each fails through the dummy hash, none allocates the
    // edited parameters (4 GiB each) or fails with a server error.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let tx = new_transaction(&app, true, "openid").await;
        let browser = Browser::open_login(&app, &tx).await;
        let request = app
            .client
            .post(app.url("/login"))
            .header("cookie", browser.cookie_header())
            .form(&[
                ("tx", tx.as_str()),
                ("csrf", browser.csrf.as_str()),
                ("username", "u6"),
                ("password", "u6-pw-1"),
            ]);
        tasks.push(tokio::spawn(request.send()));
    }
    for task in tasks {
        let response = task.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.text().await.unwrap().contains(GENERIC));
    }

    // A malformed stored hash fails the same way.
    app.state
        .store
        .set_password_hash(user.id, "$argon2id$v=19$m=,t=x$$", Utc::now())
        .await
        .unwrap();
    let tx = new_transaction(&app, true, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    let (status, _, page) = browser.login("u6", "u6-pw-1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(GENERIC));
}

/// Every path through a login computes exactly one hash, except the input
/// classes refused before hashing, which compute none, for every name.
#[tokio::test]
async fn every_login_path_computes_one_hash() {
    let mut config = fast_config();
    config.login.lockout_threshold = 1000;
    config.login.ip_lockout_threshold = 1000;
    let app = spawn(config).await;
    let store = app.state.store.as_ref();
    add_user(&app, "u1", "u1-right-pw").await;
    let locked = add_user(&app, "u3", "u3-right-pw").await;
    store
        .set_locked_until(locked.id, Some(Utc::now() + Duration::hours(1)))
        .await
        .unwrap();
    let disabled = add_user(&app, "u4", "u4-right-pw").await;
    store
        .set_user_disabled(disabled.id, true, Utc::now())
        .await
        .unwrap();
    let edited = add_user(&app, "u6", "u6-right-pw").await;
    let huge = "$argon2id$v=19$m=4194304,t=1000,p=255$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    store
        .set_password_hash(edited.id, huge, Utc::now())
        .await
        .unwrap();

    let names = ["u1", "U1", "u3", "u4", "u6", "nobody-5c1e"];
    let long = "p".repeat(1025);
    let classes: [(&str, Option<&str>, u64); 5] = [
        ("wrong", Some("wrong-pw-12c"), 1),
        ("empty", Some(""), 1),
        ("spaces", Some("            "), 1),
        ("too long", Some(&long), 0),
        ("missing", None, 0),
    ];
    let hasher = &app.state.accounts.hasher;
    for (class, password, expected_hashes) in classes {
        let mut pages = Vec::new();
        for name in names {
            let tx = new_transaction(&app, true, "openid").await;
            let browser = Browser::open_login(&app, &tx).await;
            let mut form = vec![("tx", tx.as_str()), ("csrf", browser.csrf.as_str())];
            form.push(("username", name));
            if let Some(password) = password {
                form.push(("password", password));
            }
            let before = hasher.hashes_computed();
            let response = browser.post("/login", &form).await;
            let status = response.status();
            let body = response.text().await.unwrap();
            let hashes = hasher.hashes_computed() - before;
            assert_eq!(hashes, expected_hashes, "{class} password for {name}");
            assert!(body.contains(GENERIC), "{class} password for {name}");
            pages.push((status, without_tokens(&body).replace(&tx, "TX")));
        }
        for (page, name) in pages.iter().zip(names) {
            assert_eq!(
                page, &pages[0],
                "{class} password: {name} answers differently"
            );
        }
    }

    // A locked account's right password also costs one hash and fails.
    let tx = new_transaction(&app, true, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    let before = hasher.hashes_computed();
    let (status, _, page) = browser.login("u3", "u3-right-pw").await;
    assert_eq!(hasher.hashes_computed() - before, 1);
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(GENERIC));
}

#[tokio::test]
async fn audit_event_carries_request_id() {
    let app = spawn(fast_config()).await;
    add_user(&app, "lee", "lee-pw-1").await;
    let tx = new_transaction(&app, true, "openid").await;
    let browser = Browser::open_login(&app, &tx).await;
    let response = app
        .client
        .post(app.url("/login"))
        .header("cookie", browser.cookie_header())
        .header("x-request-id", "req-login-1")
        .form(&[
            ("tx", tx.as_str()),
            ("csrf", browser.csrf.as_str()),
            ("username", "lee"),
            ("password", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = app.state.store.recent_audit_events(1).await.unwrap();
    assert_eq!(events[0].kind, "login.failure");
    assert_eq!(events[0].request_id.as_deref(), Some("req-login-1"));
    let body = format!("{events:?}");
    assert!(
        !body.contains("wrong"),
        "no password in audit events: {body}"
    );
}

#[tokio::test]
async fn session_ends_at_absolute_timeout() {
    let mut config = fast_config();
    config.login.session_idle_timeout = HumanDuration::from_secs(120);
    config.login.session_absolute_timeout = HumanDuration::from_secs(300);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app =
        TestApp::spawn_configured(TestStore::new(Backend::Sqlite).await, config, clock.clone())
            .await;
    add_user(&app, "max", "max-pw-1").await;
    let tx = new_transaction(&app, false, "openid").await;
    let mut browser = Browser::open_login(&app, &tx).await;
    browser.login("max", "max-pw-1").await;
    // Active every 100 s, so never idle, but past the absolute end.
    for _ in 0..2 {
        clock.advance(Duration::seconds(100));
        let (status, _, _) = browser.get(&format!("/consent?tx={tx}")).await;
        assert_eq!(status, StatusCode::OK);
    }
    clock.advance(Duration::seconds(101));
    let (status, headers, _) = browser.get(&format!("/consent?tx={tx}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), format!("/login?tx={tx}"));
}

/// Measures login response times per kind of account with the default
/// (OWASP) argon2 parameters and checks that the medians of an active,
/// case-variant, locked, disabled and unknown name lie within 10 % of each
/// other. Ignored by default because timing on a shared machine is noisy:
/// run it with `cargo test --release -- --ignored login_timing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn login_timing_matches_across_accounts() {
    let mut config = Config::default();
    config.login.lockout_threshold = 100_000;
    config.login.ip_lockout_threshold = 100_000;
    config.login.base_delay = HumanDuration::from_secs(0);
    config.rate_limits.login = tessera::config::RateLimit::new(0.0, 1);
    let app = spawn(config).await;
    let store = app.state.store.as_ref();
    add_user(&app, "u1", "u1-right-pw").await;
    let locked = add_user(&app, "u3", "u3-right-pw").await;
    store
        .set_locked_until(locked.id, Some(Utc::now() + Duration::hours(1)))
        .await
        .unwrap();
    let disabled = add_user(&app, "u4", "u4-right-pw").await;
    store
        .set_user_disabled(disabled.id, true, Utc::now())
        .await
        .unwrap();

    let names = ["u1", "U1", "u3", "u4", "nobody-9d2b"];
    let rounds = 100;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        for (index, name) in names.iter().enumerate() {
            let tx = new_transaction(&app, true, "openid").await;
            let browser = Browser::open_login(&app, &tx).await;
            let form = [
                ("tx", tx.as_str()),
                ("csrf", browser.csrf.as_str()),
                ("username", name),
                ("password", "wrong-pw-12c"),
            ];
            let started = std::time::Instant::now();
            let response = browser.post("/login", &form).await;
            assert_eq!(response.status(), StatusCode::OK);
            samples[index].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|times| {
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        })
        .collect();
    for (name, median) in names.iter().zip(&medians) {
        println!("{name}: median {median:.1} ms over {rounds} logins");
    }
    let fastest = medians.iter().copied().fold(f64::MAX, f64::min);
    let slowest = medians.iter().copied().fold(0.0, f64::max);
    assert!(
        slowest <= fastest * 1.10,
        "medians differ by more than 10 %: {medians:?}"
    );
}

#[tokio::test]
async fn sweeper_deletes_expired_rows() {
    let mut config = fast_config();
    config.login.session_idle_timeout = HumanDuration::from_secs(60);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app =
        TestApp::spawn_configured(TestStore::new(Backend::Sqlite).await, config, clock.clone())
            .await;
    add_user(&app, "nina", "nina-pw-1").await;
    let finished = new_transaction(&app, true, "openid").await;
    let mut browser = Browser::open_login(&app, &finished).await;
    let (_, headers, _) = browser.login("nina", "nina-pw-1").await;
    let session = cookie_pair(&set_cookie(&headers, "tessera_session").unwrap());
    let session_digest = app
        .state
        .data_keys
        .digester
        .digest(session.split_once('=').unwrap().1);
    let open = new_transaction(&app, false, "openid").await;
    let open_digest = app.state.data_keys.digester.digest(&open);
    let store = app.state.store.as_ref();

    tessera::accounts::sweeper::sweep(&app.state).await;
    assert!(store.session(&session_digest).await.unwrap().is_some());
    let now = clock.now();
    assert!(store
        .login_transaction(&open_digest, now)
        .await
        .unwrap()
        .is_some());

    clock.advance(Duration::seconds(601));
    tessera::accounts::sweeper::sweep(&app.state).await;
    assert!(store.session(&session_digest).await.unwrap().is_none());
    let removed = store
        .delete_expired_login_transactions(clock.now())
        .await
        .unwrap();
    assert_eq!(removed, 0, "the sweep already deleted both transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_page_requests_get_the_error_page() {
    let app = spawn(fast_config()).await;
    let big = format!("tx=1&padding={}", "a".repeat(70 * 1024));
    let form = "application/x-www-form-urlencoded";
    let cases = [
        ("GET", "/login?tx=a&tx=b", form, String::new(), 400),
        ("GET", "/consent?tx=a&tx=b", form, String::new(), 400),
        ("GET", "/logout?state=a&state=b", form, String::new(), 400),
        (
            "GET",
            "/authorize/resume?request=a&request=b",
            form,
            String::new(),
            400,
        ),
        ("POST", "/login", "application/json", "{}".to_owned(), 415),
        ("POST", "/logout", form, "csrf=a&csrf=b".to_owned(), 422),
        ("POST", "/consent", form, big.clone(), 413),
        ("POST", "/authorize", form, big, 413),
    ];
    for (method, path, content_type, body, status) in cases {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/html"), "{method} {path}");
        let page = response.text().await.unwrap();
        assert!(page.contains("Invalid request"), "{method} {path}: {page}");
    }
}
