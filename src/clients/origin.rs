//! Rules for a client's allowed origins, the browser origins whose scripts
//! may read Tessera's token, userinfo, revocation and introspection
//! responses (CORS). Browsers send the `Origin` header in the serialized
//! form of RFC 6454 section 6.2 (`https://app.example.com`, lower-case host,
//! no default port), so only that form is accepted and origins are then
//! compared byte for byte.

use super::redirect_uri::LOOPBACK_HOSTS;

/// Maximum number of allowed origins one client may have.
pub const MAX_ALLOWED_ORIGINS: usize = 50;

/// Maximum length of an allowed origin, in bytes.
const MAX_ORIGIN_BYTES: usize = 512;

/// Checks one allowed origin; the error is the reason, to follow the
/// origin in a message.
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin.is_empty() {
        return Err("is empty".into());
    }
    if origin.len() > MAX_ORIGIN_BYTES {
        return Err(format!("is longer than {MAX_ORIGIN_BYTES} bytes"));
    }
    if origin.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters".into());
    }
    if origin.contains(['?', '#']) {
        return Err("must not contain a query or fragment".into());
    }

    let parsed = url::Url::parse(origin).map_err(|_| "is not an absolute URL".to_owned())?;
    let scheme = parsed.scheme();
    if scheme != "https" && scheme != "http" {
        return Err(format!("uses the scheme \"{scheme}\"; use https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain user information".into());
    }

    let Some(host) = parsed.host_str() else {
        return Err("has no host".into());
    };
    if scheme == "http" && !LOOPBACK_HOSTS.contains(&host) {
        return Err("uses http, which is allowed only for loopback hosts \
                    (127.0.0.1, [::1] or localhost); use https"
            .into());
    }

    if parsed.path() != "/" {
        return Err("must not contain a path".into());
    }
    if origin.ends_with('/') {
        return Err("must not end with a slash".into());
    }

    // Browsers send the host in lower case and punycode, without a default
    // port, so any other spelling would never match.
    let serialized = parsed.origin().ascii_serialization();
    if serialized != origin {
        return Err(format!(
            "is not written as browsers send it in the Origin header; write {serialized:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_origins_pass() {
        for origin in [
            "https://app.example.com",
            "https://app.example.com:8443",
            "http://localhost:3000",
            "http://127.0.0.1:5173",
            "http://[::1]:8080",
            "https://xn--bcher-kva.example",
        ] {
            assert_eq!(check_origin(origin), Ok(()), "{origin}");
        }
    }

    #[test]
    fn other_forms_fail_with_their_reason() {
        let cases = [
            ("", "is empty"),
            ("https://app.example.com/", "must not end with a slash"),
            ("https://app.example.com/app", "must not contain a path"),
            ("https://app.example.com?x=1", "query or fragment"),
            ("https://app.example.com#top", "query or fragment"),
            ("http://app.example.com", "only for loopback hosts"),
            ("http://localhost.evil.test", "only for loopback hosts"),
            ("ftp://app.example.com", "scheme \"ftp\""),
            ("null", "not an absolute URL"),
            ("app.example.com", "not an absolute URL"),
            ("https://user@app.example.com", "user information"),
            (
                "https://App.Example.com",
                "write \"https://app.example.com\"",
            ),
            (
                "https://app.example.com:443",
                "write \"https://app.example.com\"",
            ),
            (
                "https://bücher.example",
                "write \"https://xn--bcher-kva.example\"",
            ),
            (" https://app.example.com", "whitespace"),
        ];
        for (origin, reason) in cases {
            let error = check_origin(origin).expect_err(origin);
            assert!(error.contains(reason), "{origin}: {error}");
        }
    }
}
