//! Hostile input in every field: bytes that are not UTF-8, control
//! characters and over-long values. Each gets a 4xx with a standard error
//! (or, where the RFC says so, the response for an unknown token), on both
//! store backends, and never a 5xx.

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::config::{Config, RateLimit, RegistrationPolicy};

use super::{encode, Setup};
use crate::authorize::{field, param, Browser, CHALLENGE, PASSWORD, VERIFIER};
use crate::harness::Backend;
use crate::login::fast_config;

/// Percent-encoded values sent as they are: invalid UTF-8 (a lone byte, an
/// overlong slash, a UTF-16 surrogate) and control characters.
const HOSTILE: &[&str] = &[
    "%FF",
    "x%FFy",
    "%C0%AF",
    "%ED%A0%80",
    "%00",
    "x%00y",
    "%0A",
    "x%0D%0Ay",
    "%1B",
    "%7F",
];

/// Errors of RFC 6749 sections 4.1.2.1 and 5.2, RFC 7591 section 3.2.2 and
/// RFC 8707 section 2 that a hostile value may draw.
const STANDARD_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "unsupported_response_type",
    "invalid_scope",
    "invalid_target",
    "invalid_client_metadata",
    "invalid_redirect_uri",
];

/// Returns a configuration whose rate limits and lockouts stay out of the way of
/// hundreds of bad requests from one address.
fn permissive_config() -> Config {
    let mut config = fast_config();
    let off = RateLimit::new(0.0, 1);
    config.rate_limits.token = off;
    config.rate_limits.introspect = off;
    config.rate_limits.revoke = off;
    config.rate_limits.failed_client_auth = off;
    config.rate_limits.login = off;
    config.rate_limits.register = off;
    config.login.lockout_threshold = 100_000;
    config.login.ip_lockout_threshold = 100_000;
    config.registration.policy = RegistrationPolicy::Open;
    config
}

/// Replaces the value of `name` in a raw `a=b&c=d` string with `value`,
/// or appends it.
fn with_value(raw: &str, name: &str, value: &str) -> String {
    let mut found = false;
    let mut pairs: Vec<String> = raw
        .split('&')
        .map(|pair| {
            if pair.split('=').next() == Some(name) {
                found = true;
                format!("{name}={value}")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    if !found {
        pairs.push(format!("{name}={value}"));
    }
    pairs.join("&")
}

/// Asserts a JSON error from the standard set; returns its code.
async fn assert_standard_json_error(response: reqwest::Response, what: &str) -> String {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_client_error(), "{what}: {status} {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
    let code = body["error"].as_str().unwrap_or_default().to_owned();
    assert!(STANDARD_ERRORS.contains(&code.as_str()), "{what}: {body}");
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_at_authorize_get_errors() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let setup = Setup::configured(backend, permissive_config()).await;
        let mut browser = Browser::new(&setup.app);
        let base = format!(
            "response_type=code&client_id={}&redirect_uri=https%3A%2F%2Frp.test%2Fcb\
             &code_challenge={CHALLENGE}&code_challenge_method=S256&scope=openid&state=s\
             &nonce=n&prompt=login&max_age=100&login_hint=u1&response_mode=query",
            setup.client.client_id
        );
        let fields = [
            "response_type",
            "client_id",
            "redirect_uri",
            "code_challenge",
            "code_challenge_method",
            "scope",
            "state",
            "nonce",
            "prompt",
            "max_age",
            "login_hint",
            "id_token_hint",
            "response_mode",
            "resource",
        ];
        for name in fields {
            for value in HOSTILE {
                let what = format!("{backend:?} {name}={value}");
                let raw = with_value(&base, name, value);
                let page = browser.get(&format!("/authorize?{raw}")).await;
                assert!(!page.status.is_server_error(), "{what}: {}", page.status);
                let Some(location) = page.location else {
                    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{what}");
                    continue;
                };
                assert!(
                    location.starts_with("https://rp.test/cb?"),
                    "{what}: {location}"
                );
                let error = param(&location, "error").unwrap_or_default();
                assert!(
                    STANDARD_ERRORS.contains(&error.as_str()),
                    "{what}: {location}"
                );
                let state = param(&location, "state");
                if name == "state" {
                    assert_eq!(state, None, "{what}: {location}");
                } else {
                    assert_eq!(state.as_deref(), Some("s"), "{what}: {location}");
                }

                // The same through a POST body.
                let response = setup
                    .app
                    .client
                    .post(setup.app.url("/authorize"))
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(raw)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                assert!(
                    status.is_redirection() || status.is_client_error(),
                    "POST {what}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_at_token_endpoint_get_errors() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let setup = Setup::configured(backend, permissive_config()).await;
        let id = setup.client.client_id.clone();
        let secret = setup.secret.clone();
        let code = format!(
            "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Frp.test%2Fcb\
             &code_verifier={VERIFIER}&resource=https%3A%2F%2Frs.test%2F"
        );
        let refresh = "grant_type=refresh_token&refresh_token=abc&scope=openid".to_owned();
        let assertion = format!(
            "grant_type=client_credentials&client_id={id}\
             &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion=eyJhbGciOiJFUzI1NiJ9.e30.c2ln"
        );
        let cases: [(&str, &[&str], bool); 4] = [
            (
                &code,
                &[
                    "grant_type",
                    "code",
                    "redirect_uri",
                    "code_verifier",
                    "resource",
                ],
                true,
            ),
            (&refresh, &["refresh_token", "scope"], true),
            (
                &format!("{code}&client_id={id}&client_secret={secret}"),
                &["client_id", "client_secret"],
                false,
            ),
            (
                &assertion,
                &["client_id", "client_assertion_type", "client_assertion"],
                false,
            ),
        ];
        for (base, names, basic) in cases {
            for name in names {
                for value in HOSTILE {
                    let what = format!("{backend:?} {name}={value}");
                    let mut request = setup
                        .app
                        .client
                        .post(setup.app.url("/token"))
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(with_value(base, name, value));
                    if basic {
                        request = request.basic_auth(&id, Some(&secret));
                    }
                    assert_standard_json_error(request.send().await.unwrap(), &what).await;
                }
            }
        }
        // Hostile bytes in HTTP Basic credentials.
        for value in HOSTILE {
            let what = format!("{backend:?} Basic {value}");
            let response = setup
                .app
                .client
                .post(setup.app.url("/token"))
                .basic_auth(format!("{id}{value}"), Some(format!("{secret}{value}")))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            assert_standard_json_error(response, &what).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_at_introspect_and_revoke_get_errors() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let setup = Setup::configured(backend, permissive_config()).await;
        let id = setup.client.client_id.clone();
        let secret = setup.secret.clone();
        for path in ["/introspect", "/revoke"] {
            let with_basic = "token=abc&token_type_hint=access_token".to_owned();
            let with_post = format!("{with_basic}&client_id={id}&client_secret={secret}");
            let cases: [(&str, &[&str], bool); 2] = [
                (&with_basic, &["token", "token_type_hint"], true),
                (&with_post, &["client_id", "client_secret"], false),
            ];
            for (base, names, basic) in cases {
                for name in names {
                    for value in HOSTILE {
                        let what = format!("{backend:?} {path} {name}={value}");
                        let mut request = setup
                            .app
                            .client
                            .post(setup.app.url(path))
                            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                            .body(with_value(base, name, value));
                        if basic {
                            request = request.basic_auth(&id, Some(&secret));
                        }
                        let response = request.send().await.unwrap();
                        let status = response.status();
                        // RFC 7662 section 2.2 and RFC 7009 section 2.2: a
                        // token the server does not know is inactive, and
                        // revoking it succeeds.
                        let unknown_token = name.starts_with("token") && basic;
                        if status == StatusCode::OK && unknown_token {
                            let text = response.text().await.unwrap();
                            if path == "/introspect" {
                                assert_eq!(text, r#"{"active":false}"#, "{what}");
                            }
                            continue;
                        }
                        assert_standard_json_error(response, &what).await;
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_at_register_get_errors() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let setup = Setup::configured(backend, permissive_config()).await;
        let valid = json!({
            "client_name": "Calendar",
            "redirect_uris": ["https://rp.test/cb"],
            "post_logout_redirect_uris": ["https://rp.test/bye"],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "scope": "openid",
            "token_endpoint_auth_method": "client_secret_basic",
            "application_type": "web",
            "id_token_signed_response_alg": "RS256",
        });
        let post = |body: Vec<u8>| {
            setup
                .app
                .client
                .post(setup.app.url("/register"))
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
        };
        let response = post(valid.to_string().into_bytes()).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);

        let controls = ["\u{0}", "x\u{0}y", "\n", "x\r\ny", "\u{1b}", "\u{7f}"];
        let members = [
            "client_name",
            "redirect_uris",
            "post_logout_redirect_uris",
            "grant_types",
            "response_types",
            "scope",
            "token_endpoint_auth_method",
            "application_type",
            "id_token_signed_response_alg",
            "jwks_uri",
        ];
        for member in members {
            for control in controls {
                let what = format!("{backend:?} {member} {control:?}");
                let mut body = valid.clone();
                let value = match &valid[member] {
                    Value::Array(items) => {
                        json!([format!("{}{control}", items[0].as_str().unwrap())])
                    }
                    Value::String(text) => json!(format!("{text}{control}")),
                    _ => json!(format!("https://rp.test/jwks{control}")),
                };
                body[member] = value;
                let response = post(body.to_string().into_bytes()).await.unwrap();
                assert_standard_json_error(response, &what).await;
            }
            // Bytes that are not UTF-8, and an escaped lone surrogate.
            let marker = "\u{2603}";
            let mut body = valid.clone();
            body[member] = json!(marker);
            let text = body.to_string();
            for replacement in [&b"\xff"[..], b"\xc0\xaf", b"\xed\xa0\x80", b"\\udc80"] {
                let what = format!("{backend:?} {member} {replacement:?}");
                let bytes = text.replace(marker, "\u{0}").into_bytes();
                let mut raw = Vec::new();
                for byte in bytes {
                    if byte == 0 {
                        raw.extend_from_slice(replacement);
                    } else {
                        raw.push(byte);
                    }
                }
                let response = post(raw).await.unwrap();
                assert_standard_json_error(response, &what).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_at_login_get_errors() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let setup = Setup::configured(backend, permissive_config()).await;
        let mut browser = Browser::new(&setup.app);
        let start = crate::authorize::query(&setup.client, "&scope=openid");
        let mut page = browser.get(&start).await;
        while let Some(location) = page.location.clone() {
            page = browser.get(&location).await;
        }
        let tx = field(&page.body, "tx");
        for name in ["tx", "csrf", "username", "password"] {
            for value in HOSTILE {
                let what = format!("{backend:?} {name}={value}");
                // Each failed login renews the form's CSRF token.
                let page = browser.get(&format!("/login?tx={tx}")).await;
                let csrf = field(&page.body, "csrf");
                let base = format!("tx={tx}&csrf={csrf}&username=u1&password=wrong");
                let response = setup
                    .app
                    .client
                    .post(setup.app.url("/login"))
                    .header("cookie", browser.cookies.join("; "))
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(with_value(&base, name, value))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let signed_in = response
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .any(|cookie| cookie.to_str().unwrap().starts_with("tessera_session="));
                let body = response.text().await.unwrap();
                assert!(!signed_in, "{what}");
                // A failed login shows the login form again with 200.
                let failed_login = status == StatusCode::OK
                    && body.contains("Invalid username or password.")
                    && matches!(name, "username" | "password");
                assert!(
                    failed_login || status.is_client_error(),
                    "{what}: {status} {body}"
                );
                if matches!(name, "username" | "password") {
                    assert!(
                        failed_login || status == StatusCode::BAD_REQUEST,
                        "{what}: the form was not read: {status}"
                    );
                }
            }
        }
        // The form still works.
        let page = browser.get(&format!("/login?tx={tx}")).await;
        let csrf = field(&page.body, "csrf");
        let genuine = format!(
            "tx={tx}&csrf={csrf}&username=u1&password={}",
            encode(PASSWORD)
        );
        let response = setup
            .app
            .client
            .post(setup.app.url("/login"))
            .header("cookie", browser.cookies.join("; "))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(genuine)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{backend:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_values_get_errors() {
    let setup = Setup::configured(Backend::Sqlite, permissive_config()).await;
    let mut browser = Browser::new(&setup.app);
    let id = setup.client.client_id.clone();
    let base = format!(
        "response_type=code&client_id={id}&redirect_uri=https%3A%2F%2Frp.test%2Fcb\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&scope=openid&state=s"
    );
    let long = |length: usize| "a".repeat(length);

    // Values past their limit at /authorize: the error page for the client
    // and redirect URI, an error redirect for the rest.
    for (name, length, redirected) in [
        ("client_id", 300, false),
        ("client_id", 10_000, false),
        ("redirect_uri", 2100, false),
        ("state", 4097, true),
        ("nonce", 513, true),
        ("login_hint", 257, true),
        ("code_challenge", 10_000, true),
        ("scope", 12_000, true),
        ("prompt", 10_000, true),
        ("resource", 10_000, true),
    ] {
        let what = format!("{name} of {length} bytes");
        let raw = with_value(&base, name, &long(length));
        let page = browser.get(&format!("/authorize?{raw}")).await;
        if redirected {
            let location = page.location.unwrap_or_else(|| panic!("{what}"));
            let error = param(&location, "error").unwrap();
            assert!(STANDARD_ERRORS.contains(&error.as_str()), "{what}");
        } else {
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{what}");
            assert!(page.location.is_none(), "{what}");
        }
    }

    // An ID token hint past its limit, in a body because the URL would
    // pass the header limit first.
    let raw = with_value(&base, "id_token_hint", &long(16 * 1024 + 1));
    let response = setup
        .app
        .client
        .post(setup.app.url("/authorize"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(raw)
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap();
    assert_eq!(param(location, "error").as_deref(), Some("invalid_request"));

    // A query string past the header limit.
    let page = browser
        .get(&format!("/authorize?{base}&x={}", long(40_000)))
        .await;
    assert!(page.status.is_client_error(), "{}", page.status);

    // Long values inside the token endpoint's 64 KiB body.
    for name in ["code", "code_verifier", "redirect_uri", "resource", "scope"] {
        let form = format!(
            "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Frp.test%2Fcb\
             &code_verifier={VERIFIER}"
        );
        let response = setup
            .app
            .client
            .post(setup.app.url("/token"))
            .basic_auth(&id, Some(&setup.secret))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(with_value(&form, name, &long(60_000)))
            .send()
            .await
            .unwrap();
        assert_standard_json_error(response, name).await;
    }
    let response = setup
        .app
        .client
        .post(setup.app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &long(60_000)),
        ])
        .send()
        .await
        .unwrap();
    assert_standard_json_error(response, "client_assertion").await;

    // Bodies past the limit at every form endpoint.
    for path in ["/token", "/introspect", "/revoke", "/register"] {
        let response = setup
            .app
            .client
            .post(setup.app.url(path))
            .basic_auth(&id, Some(&setup.secret))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("token={}", long(100_000)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    for path in ["/login", "/consent", "/authorize", "/logout"] {
        let response = setup
            .app
            .client
            .post(setup.app.url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("tx={}", long(100_000)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }

    // Long credentials at the login form and a long bearer token.
    let mut page = browser
        .get(&crate::authorize::query(&setup.client, "&scope=openid"))
        .await;
    while let Some(location) = page.location.clone() {
        page = browser.get(&location).await;
    }
    let tx = field(&page.body, "tx");
    for (username, password) in [(long(257), "pw".to_owned()), ("u1".to_owned(), long(1025))] {
        let page = browser.get(&format!("/login?tx={tx}")).await;
        let csrf = field(&page.body, "csrf");
        let form = [
            ("tx", tx.as_str()),
            ("csrf", csrf.as_str()),
            ("username", username.as_str()),
            ("password", password.as_str()),
        ];
        let page = browser.post("/login", &form).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", username.len());
    }
    let response = setup
        .app
        .client
        .get(setup.app.url("/userinfo"))
        .bearer_auth(long(15_000))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
}
