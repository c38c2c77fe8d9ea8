//! Rules for registered redirect URIs (RFC 6749 section 3.1.2, RFC 8252
//! sections 7.1 and 7.3, RFC 9700 section 2.6), used for `redirect_uris`
//! and `post_logout_redirect_uris`.

use crate::store::ApplicationType;

/// Maximum length of a redirect URI, in bytes, the same as the input limit
/// at `/authorize`.
pub const MAX_REDIRECT_URI_BYTES: usize = 2048;

/// Schemes that can run code or read local data in a browser, rejected in
/// any letter case even though they contain no dot.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
];

/// Hosts allowed with plain http: the loopback interface (RFC 8252 section
/// 7.3). `localhost` is matched exactly, so `localhost.evil.test` fails.
pub const LOOPBACK_HOSTS: &[&str] = &["127.0.0.1", "[::1]", "localhost"];

/// Checks one redirect URI; the error is the reason, to follow the URI in
/// a message.
pub fn check_redirect_uri(uri: &str, application_type: ApplicationType) -> Result<(), String> {
    if uri.is_empty() {
        return Err("is empty".into());
    }
    if uri.len() > MAX_REDIRECT_URI_BYTES {
        return Err(format!("is longer than {MAX_REDIRECT_URI_BYTES} bytes"));
    }
    // The URL parser silently drops tabs, newlines and surrounding spaces,
    // so the stored string would not match what the client sends.
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters".into());
    }
    if uri.contains('#') {
        return Err("must not contain a fragment (RFC 6749 section 3.1.2)".into());
    }
    let parsed = url::Url::parse(uri).map_err(|_| "is not an absolute URI".to_owned())?;
    let scheme = parsed.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(format!("uses the forbidden scheme \"{scheme}\""));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain user information".into());
    }
    match scheme {
        "https" => {
            if parsed.host().is_none() {
                return Err("has no host".into());
            }
            Ok(())
        }
        "http" => {
            let loopback = parsed
                .host_str()
                .is_some_and(|host| LOOPBACK_HOSTS.contains(&host));
            if loopback {
                Ok(())
            } else {
                Err("uses http, which is allowed only for loopback hosts \
                     (127.0.0.1, [::1] or localhost); use https"
                    .into())
            }
        }
        private => {
            if !private.contains('.') {
                return Err(format!(
                    "uses the private-use scheme \"{private}\", which must contain a dot \
                     (a reverse domain name such as com.example.app, RFC 8252 section 7.1)"
                ));
            }
            if application_type != ApplicationType::Native {
                return Err(format!(
                    "uses the private-use scheme \"{private}\", which only native clients may \
                     register; set application_type to native"
                ));
            }
            Ok(())
        }
    }
}
