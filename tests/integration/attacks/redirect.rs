//! Redirect URI manipulation, open redirects through error responses,
//! `state` integrity and mix-up defence (RFC 9700 sections 4.1, 4.4 and
//! 4.11, RFC 9207).

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use reqwest::StatusCode;

use super::{encode, Setup};
use crate::authorize::{param, params, query, Browser, CHALLENGE};
use crate::harness::Backend;

/// Variants of the registered `https://rp.test/cb` and
/// `http://127.0.0.1/callback` that an attacker might hope a loose matcher
/// accepts.
const MANIPULATED: &[&str] = &[
    // Prefix and suffix.
    "https://rp.test/c",
    "https://rp.test/cbx",
    "https://rp.test/cb/",
    "https://rp.test/cb/evil",
    "https://rp.test/cb?x=1",
    "https://rp.test/cb?",
    "https://rp.test/cb#",
    "https://rp.test/cb#x",
    "https://rp.test/cb.evil.test",
    "https://rp.test.evil.test/cb",
    "https://evilrp.test/cb",
    "https://rp.test./cb",
    "https://rp.test/cb ",
    " https://rp.test/cb",
    // Path traversal.
    "https://rp.test/cb/../evil",
    "https://rp.test/evil/../cb",
    "https://rp.test/./cb",
    "https://rp.test//cb",
    "https://rp.test/cb/%2e%2e/evil",
    "https://rp.test/cb%2F..%2Fevil",
    "https://rp.test/cb\\..\\evil",
    "http://127.0.0.1:5000/callback/../evil",
    "http://127.0.0.1/evil/../callback",
    // User information.
    "https://rp.test@evil.test/cb",
    "https://evil.test@rp.test/cb",
    "https://rp.test:443@evil.test/cb",
    "https://rp.test%40evil.test/cb",
    "https://rp.test\\@evil.test/cb",
    "http://127.0.0.1@evil.test/callback",
    "http://127.0.0.1:5000@evil.test/callback",
    "http://evil@127.0.0.1:5000/callback",
    // Percent-encoding and control characters.
    "https://rp.test/%63b",
    "https://rp.test/c%62",
    "https://rp.test%2Fcb",
    "https%3A%2F%2Frp.test%2Fcb",
    "https://rp.test/cb%00",
    "https://rp.test/cb%0A",
    "https://rp.test/cb%0d%0aLocation:%20https://evil.test",
    "https://rp.test/cb\u{0}",
    "https://rp.test/cb\n",
    "https://rp.test/cb\t",
    // Case changes in scheme, host and path.
    "HTTPS://rp.test/cb",
    "Https://rp.test/cb",
    "https://RP.TEST/cb",
    "https://rp.Test/cb",
    "https://rp.test/CB",
    "https://rp.test/Cb",
    "HTTP://127.0.0.1/callback",
    "http://127.0.0.1/CALLBACK",
    // Scheme, port and host forms.
    "http://rp.test/cb",
    "https://rp.test:443/cb",
    "https://rp.test:8443/cb",
    "//rp.test/cb",
    "https:rp.test/cb",
    "https:/rp.test/cb",
    "https:///rp.test/cb",
    "javascript://rp.test/cb",
    "http://localhost/callback",
    "http://localhost:5000/callback",
    "http://127.1/callback",
    "http://2130706433/callback",
    "http://0x7f000001/callback",
    "http://127.0.0.2:5000/callback",
    "http://[0:0:0:0:0:0:0:1]:5000/callback",
    "http://[::ffff:127.0.0.1]:5000/callback",
    "https://127.0.0.1:5000/callback",
];

/// Builds an authorization request for `client_id` with `redirect_uri`
/// encoded as a query value.
fn request_with(client_id: &str, redirect_uri: &str, extra: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&scope=openid&state=s{extra}",
        encode(redirect_uri)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manipulated_redirect_uris_never_redirect() {
    let setup = Setup::new(Backend::Sqlite).await;
    let id = setup.client.client_id.clone();
    let mut browser = Browser::new(&setup.app);
    // Log in first, so that a valid request would redirect straight to the
    // client: a loose match would show as a code on the attacker's URI.
    let page = browser
        .run(&query(&setup.client, "&scope=openid"), "u1", true)
        .await;
    assert!(page
        .location
        .unwrap()
        .starts_with("https://rp.test/cb?code="));

    // Each variant with a valid request and with several request errors,
    // which must not redirect either.
    let faults = [
        "",
        "&prompt=none",
        "&response_type=token",
        "&scope=openid%00",
        "&code_challenge_method=plain",
        "&prompt=bogus",
    ];
    for uri in MANIPULATED {
        for fault in faults {
            let path = request_with(&id, uri, fault);
            let page = browser.get(&path).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{uri:?} {fault}");
            assert!(page.location.is_none(), "{uri:?} {fault}");
            assert!(
                page.body.contains("Invalid sign-in request"),
                "{uri:?} {fault}: {}",
                page.body
            );
            assert!(!page.body.contains("evil"), "{uri:?} reflected");
        }
    }

    // The registered URIs still redirect, and the loopback one on any port.
    for uri in [
        "https://rp.test/cb",
        "http://127.0.0.1/callback",
        "http://127.0.0.1:5000/callback",
        "http://[::1]:5000/callback",
    ] {
        let page = browser.get(&request_with(&id, uri, "")).await;
        assert_eq!(page.status, StatusCode::FOUND, "{uri}");
        let location = page.location.unwrap();
        assert!(location.starts_with(&format!("{uri}?code=")), "{location}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_client_errors_never_redirect() {
    let setup = Setup::new(Backend::Sqlite).await;
    let mut browser = Browser::new(&setup.app);
    // A client id that is absent, unknown, repeated or malformed sends
    // every error to the error page, even with a registered redirect URI.
    let id = &setup.client.client_id;
    for client_id in [
        "",
        "unknown",
        "%00",
        "%FF",
        &format!("{id}%00"),
        &format!("{id}&client_id={id}"),
        &format!("{id}&client_id=other"),
    ] {
        for fault in ["", "&response_type=token", "&prompt=none"] {
            let path = request_with(client_id, "https://rp.test/cb", fault);
            let page = browser.get(&path).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{client_id} {fault}");
            assert!(page.location.is_none(), "{client_id} {fault}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_returns_byte_for_byte() {
    let setup = Setup::new(Backend::Sqlite).await;
    let mut browser = Browser::new(&setup.app);
    let states = [
        "plain",
        "a b",
        "a+b",
        "a%20b",
        "%41",
        "%25",
        "&code=injected",
        "x=y&z=w",
        "#fragment",
        "?query",
        "/path/../x",
        "<script>alert(1)</script>",
        "\"'`",
        "\\",
        "  surrounded  ",
        "ünïcödé",
        "\u{1F600}",
        "\u{FFFD}",
        "eyJhbGciOiJub25lIn0.e30.",
        "~!@$^*()_-={}[]|:;,.",
    ];
    // The first run logs in and approves; the rest reuse the session.
    for (index, state) in states.iter().enumerate() {
        let path = query(
            &setup.client,
            &format!("&scope=openid&state={}", encode(state)),
        );
        let page = browser.run(&path, "u1", true).await;
        let location = page.location.unwrap();
        let received = params(&location);
        let states: Vec<&str> = received
            .iter()
            .filter(|(name, _)| name == "state")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(states, [*state], "state {index}: {location}");
        assert!(param(&location, "code").is_some(), "{location}");
        let codes = received.iter().filter(|(name, _)| name == "code").count();
        assert_eq!(codes, 1, "{location}");

        // The same state on an error response.
        let page = browser
            .get(&query(
                &setup.client,
                &format!("&scope=unknown&state={}", encode(state)),
            ))
            .await;
        let location = page.location.unwrap();
        assert_eq!(param(&location, "error").as_deref(), Some("invalid_scope"));
        assert_eq!(
            param(&location, "state").as_deref(),
            Some(*state),
            "{index}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authorization_response_names_the_issuer() {
    let setup = Setup::new(Backend::Sqlite).await;
    let issuer = setup.app.state.config.issuer.clone();
    let discovery: serde_json::Value = setup
        .app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        true
    );
    let mut browser = Browser::new(&setup.app);

    // Errors before and after login, then denial, then success.
    let before = browser
        .get(&query(&setup.client, "&scope=openid&prompt=none"))
        .await;
    let denied = browser
        .run(&query(&setup.client, "&scope=openid"), "u1", false)
        .await;
    let success = browser
        .run(&query(&setup.client, "&scope=openid"), "u1", true)
        .await;
    let silent = browser
        .get(&query(&setup.client, "&scope=openid&prompt=none"))
        .await;
    let consent_needed = browser
        .get(&query(
            &setup.client,
            "&scope=openid%20offline_access&prompt=none",
        ))
        .await;
    for (page, expected) in [
        (before, "error=login_required"),
        (denied, "error=access_denied"),
        (success, "code="),
        (silent, "code="),
        (consent_needed, "error=consent_required"),
    ] {
        let location = page.location.unwrap();
        assert!(location.contains(expected), "{location}");
        let issuers: Vec<String> = params(&location)
            .into_iter()
            .filter(|(name, _)| name == "iss")
            .map(|(_, value)| value)
            .collect();
        assert_eq!(issuers, std::slice::from_ref(&issuer), "{location}");
    }

    // The form_post response carries `iss` as a form field.
    let page = browser
        .get(&query(
            &setup.client,
            "&scope=openid&response_mode=form_post",
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(&format!("name=\"iss\" value=\"{issuer}\"")),
        "{}",
        page.body
    );
    let csp = page.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("form-action https://rp.test;"), "{csp}");
    assert!(page.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}
