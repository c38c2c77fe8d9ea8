//! The login, consent and logout pages: CSRF on their forms, framing
//! (clickjacking) and session fixation (RFC 9700 sections 4.7 and 4.16).

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_FRAME_OPTIONS};
use reqwest::StatusCode;

use super::Setup;
use crate::authorize::{field, param, query, Browser, Page, PASSWORD};
use crate::harness::Backend;
use crate::login::add_user;

const SESSION_COOKIE: &str = "tessera_session";

/// Follows redirects on Tessera from `start` until a page with a form.
async fn form_page(browser: &mut Browser, start: &str) -> Page {
    let mut page = browser.get(start).await;
    while let Some(location) = page.location.clone() {
        assert!(location.starts_with('/'), "left Tessera: {location}");
        page = browser.get(&location).await;
    }
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page
}

/// Returns the value of cookie `name` in a browser, if it has one.
fn cookie(browser: &Browser, name: &str) -> Option<String> {
    browser
        .cookies
        .iter()
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_consent_forms_reject_forged_csrf() {
    let setup = Setup::new(Backend::Sqlite).await;
    let start = query(&setup.client, "&scope=openid&state=s");
    let mut victim = Browser::new(&setup.app);
    let mut attacker = Browser::new(&setup.app);

    let login = form_page(&mut victim, &start).await;
    let tx = field(&login.body, "tx");
    let csrf = field(&login.body, "csrf");
    let other = form_page(&mut attacker, &start).await;
    let other_csrf = field(&other.body, "csrf");
    let credentials = [("username", "u1"), ("password", PASSWORD)];
    for (what, token) in [
        ("missing", None),
        ("empty", Some("")),
        ("wrong", Some("forged-token")),
        ("another browser's", Some(other_csrf.as_str())),
    ] {
        let mut form = vec![("tx", tx.as_str())];
        form.extend(token.map(|token| ("csrf", token)));
        form.extend_from_slice(&credentials);
        let page = victim.post("/login", &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "login, {what} token");
        assert!(cookie(&victim, SESSION_COOKIE).is_none(), "{what}");
    }
    // The right token from a page without the browser's cookies, as a
    // cross-site form sends it.
    let mut cross_site = Browser::new(&setup.app);
    let form = [
        ("tx", tx.as_str()),
        ("csrf", csrf.as_str()),
        ("username", "u1"),
        ("password", PASSWORD),
    ];
    let page = cross_site.post("/login", &form).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "login without cookie");

    // The genuine form logs in and leads to the consent page.
    let page = victim.post("/login", &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let consent = form_page(&mut victim, &page.location.unwrap()).await;
    assert!(consent.body.contains("name=\"decision\""));
    let tx = field(&consent.body, "tx");
    let csrf = field(&consent.body, "csrf");
    for (what, token) in [
        ("missing", None),
        ("empty", Some("")),
        ("wrong", Some("forged-token")),
        ("another browser's", Some(other_csrf.as_str())),
    ] {
        let mut form = vec![("tx", tx.as_str()), ("decision", "approve")];
        form.extend(token.map(|token| ("csrf", token)));
        let page = victim.post("/consent", &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "consent, {what} token");
        assert!(page.location.is_none(), "{what}");
    }
    let form = [
        ("tx", tx.as_str()),
        ("csrf", &csrf),
        ("decision", "approve"),
    ];
    let page = cross_site.post("/consent", &form).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "consent without cookie");

    // Nothing was approved: the genuine form still decides.
    let page = victim.post("/consent", &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = victim.get(&page.location.unwrap()).await;
    let location = page.location.unwrap();
    assert!(param(&location, "code").is_some(), "{location}");
}

/// Asserts that an HTML response forbids framing.
fn assert_unframeable(page: &Page, what: &str) {
    let content_type = page.headers[CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("text/html"),
        "{what}: {content_type}"
    );
    let csp = page
        .headers
        .get(CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    let frame_options = page.headers.get(X_FRAME_OPTIONS);
    assert_eq!(
        frame_options.map(|value| value.to_str().unwrap()),
        Some("DENY"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_forbids_framing() {
    let setup = Setup::new(Backend::Sqlite).await;
    let mut browser = Browser::new(&setup.app);
    let mut pages = Vec::new();

    let bad_client = "/authorize?client_id=unknown&response_type=code".to_owned();
    pages.push(("authorize error", browser.get(&bad_client).await));
    pages.push((
        "authorize body error",
        browser.post("/authorize", &[]).await,
    ));
    pages.push((
        "resume error",
        browser.get("/authorize/resume?id=unknown").await,
    ));
    pages.push(("login error", browser.get("/login?tx=unknown").await));
    pages.push(("consent error", browser.get("/consent?tx=unknown").await));
    pages.push(("login post error", browser.post("/login", &[]).await));

    let login = form_page(&mut browser, &query(&setup.client, "&scope=openid")).await;
    let tx = field(&login.body, "tx");
    let csrf = field(&login.body, "csrf");
    let failed = [
        ("tx", tx.as_str()),
        ("csrf", csrf.as_str()),
        ("username", "u1"),
        ("password", "wrong"),
    ];
    let failed = browser.post("/login", &failed).await;
    let csrf = field(&failed.body, "csrf");
    pages.push(("login page", login));
    pages.push(("failed login", failed));
    let forged = [("tx", tx.as_str()), ("csrf", "forged")];
    pages.push(("forged login", browser.post("/login", &forged).await));
    let genuine = [
        ("tx", tx.as_str()),
        ("csrf", csrf.as_str()),
        ("username", "u1"),
        ("password", PASSWORD),
    ];
    let page = browser.post("/login", &genuine).await;
    let consent = form_page(&mut browser, &page.location.unwrap()).await;
    pages.push(("consent page", consent));

    pages.push(("logout confirmation", browser.get("/logout").await));
    let bad_logout = "/logout?post_logout_redirect_uri=https%3A%2F%2Fevil.test%2F";
    pages.push(("logout error", browser.get(bad_logout).await));
    pages.push(("logout post error", browser.post("/logout", &[]).await));

    for (what, page) in &pages {
        assert!(!page.status.is_server_error(), "{what}: {}", page.status);
        assert_unframeable(page, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_session_cookie_is_replaced_at_login() {
    let setup = Setup::new(Backend::Sqlite).await;
    add_user(&setup.app, "mallory", PASSWORD).await;
    let start = query(&setup.client, "&scope=openid");

    // An attacker-chosen id, planted before login, never becomes a session.
    let planted = "A".repeat(43);
    let mut victim = Browser::new(&setup.app);
    victim.cookies.push(format!("{SESSION_COOKIE}={planted}"));
    let page = victim.run(&start, "u1", true).await;
    assert!(param(&page.location.unwrap(), "code").is_some());
    let issued = cookie(&victim, SESSION_COOKIE).unwrap();
    assert_ne!(issued, planted);
    let mut attacker = Browser::new(&setup.app);
    attacker.cookies.push(format!("{SESSION_COOKIE}={planted}"));
    let silent = query(&setup.client, "&scope=openid&prompt=none");
    let page = attacker.get(&silent).await;
    assert_eq!(
        param(&page.location.unwrap(), "error").as_deref(),
        Some("login_required")
    );

    // A real session of the attacker's, planted in the victim's browser,
    // is replaced when the victim logs in, and ends.
    let mut attacker = Browser::new(&setup.app);
    attacker.run(&start, "mallory", true).await;
    let attacker_session = cookie(&attacker, SESSION_COOKIE).unwrap();
    let mut victim = Browser::new(&setup.app);
    victim
        .cookies
        .push(format!("{SESSION_COOKIE}={attacker_session}"));
    let forced = query(&setup.client, "&scope=openid&prompt=login");
    let page = victim.run(&forced, "u1", true).await;
    assert!(param(&page.location.unwrap(), "code").is_some());
    let issued = cookie(&victim, SESSION_COOKIE).unwrap();
    assert_ne!(issued, attacker_session);
    let page = attacker.get(&silent).await;
    assert_eq!(
        param(&page.location.unwrap(), "error").as_deref(),
        Some("login_required"),
        "the replaced session still works"
    );
}
