//! Matching a requested `redirect_uri` against the registered ones.
//!
//! The comparison is byte for byte (RFC 9700 section 4.1.3, RFC 3986
//! section 6.2.1 simple comparison): no case folding, no percent-decoding,
//! no default-port or trailing-slash normalisation. The one exception is
//! the port of an http redirect to `127.0.0.1` or `[::1]`, which is free
//! (RFC 8252 section 7.3), because native apps listen on an ephemeral port.
//! `localhost` gets no such exception.

/// Hosts whose port is free.
const FREE_PORT_HOSTS: [&str; 2] = ["127.0.0.1", "[::1]"];

/// Returns whether `requested` matches one of `registered`.
pub fn redirect_uri_matches(requested: &str, registered: &[String]) -> bool {
    if registered.iter().any(|uri| uri == requested) {
        return true;
    }
    let Some(requested) = without_loopback_port(requested) else {
        return false;
    };
    registered
        .iter()
        .filter_map(|uri| without_loopback_port(uri))
        .any(|uri| uri == requested)
}

/// For `http://127.0.0.1[:port]/rest` or `http://[::1][:port]/rest`,
/// returns the URI without the port; `None` for any other URI.
fn without_loopback_port(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = FREE_PORT_HOSTS.into_iter().find(|host| {
        authority == *host
            || authority
                .strip_prefix(host)
                .and_then(|port| port.strip_prefix(':'))
                .is_some_and(is_port)
    })?;
    Some(format!("http://{host}{tail}"))
}

/// Returns whether `digits` is a TCP port number, 1 to 65535, in plain decimal.
/// `u16::from_str` alone would take a leading `+`.
fn is_port(digits: &str) -> bool {
    digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u16>().is_ok_and(|port| port > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|uri| (*uri).to_owned()).collect()
    }

    #[test]
    fn exact_match_only() {
        let list = registered(&["https://rp.test/Callback", "https://rp.test"]);
        assert!(redirect_uri_matches("https://rp.test/Callback", &list));
        for variant in [
            "https://RP.test/Callback",
            "https://rp.test/callback",
            "HTTPS://rp.test/Callback",
            "https://rp.test/%43allback",
            "https://rp.test:443/Callback",
            "https://rp.test/Callback/",
            "https://rp.test/",
        ] {
            assert!(!redirect_uri_matches(variant, &list), "{variant}");
        }
    }

    #[test]
    fn loopback_port_is_free() {
        let list = registered(&["http://127.0.0.1/callback", "http://[::1]/callback"]);
        assert!(redirect_uri_matches(
            "http://127.0.0.1:58892/callback",
            &list
        ));
        assert!(redirect_uri_matches("http://[::1]:61023/callback", &list));
        assert!(redirect_uri_matches("http://[::1]:65535/callback", &list));
        for negative in [
            "http://127.0.0.1:58892/callback?x=1",
            "http://127.0.0.1:58892/other",
            "https://127.0.0.1:58892/callback",
            "http://127.0.0.2:58892/callback",
            "http://localhost:58892/callback",
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:80a/callback",
            "http://127.0.0.1:0/callback",
            "http://127.0.0.1:65536/callback",
            "http://127.0.0.1:+8080/callback",
            "http://[::1]:99999999999999999999/callback",
            "http://127.0.0.1.evil.test/callback",
        ] {
            assert!(!redirect_uri_matches(negative, &list), "{negative}");
        }
    }

    #[test]
    fn localhost_port_is_fixed() {
        let list = registered(&["http://localhost:8080/cb"]);
        assert!(redirect_uri_matches("http://localhost:8080/cb", &list));
        assert!(!redirect_uri_matches("http://localhost:8081/cb", &list));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// Generates registered URIs: https ones with a path and query, and loopback
        /// ones with or without a port.
        fn registered_uri() -> impl Strategy<Value = String> {
            let path = "(/[a-zA-Z0-9._~%-]{0,8}){0,3}(\\?[a-z0-9=&]{1,8})?";
            prop_oneof![
                ("[a-z]{1,8}\\.(test|example)", path)
                    .prop_map(|(host, path)| format!("https://{host}{path}")),
                (
                    prop::sample::select(vec!["127.0.0.1", "[::1]", "localhost"]),
                    prop::option::of(1u16..),
                    path
                )
                    .prop_map(|(host, port, path)| match port {
                        Some(port) => format!("http://{host}:{port}{path}"),
                        None => format!("http://{host}{path}"),
                    }),
            ]
        }

        /// Returns the byte range of a loopback URI's port, colon included, and
        /// the position right after the host where a port may be inserted.
        fn port_span(uri: &str) -> Option<std::ops::RangeInclusive<usize>> {
            let host = FREE_PORT_HOSTS
                .into_iter()
                .find(|host| uri.starts_with(&format!("http://{host}")))?;
            let start = "http://".len() + host.len();
            let end = start + uri[start..].find(['/', '?']).unwrap_or(uri.len() - start);
            Some(start..=end)
        }

        /// An edit of one character: replace, insert or delete at `at`.
        #[derive(Clone, Debug)]
        enum Edit {
            Replace(usize, char),
            Insert(usize, char),
            Delete(usize),
        }

        fn apply(uri: &str, edit: &Edit) -> (String, usize) {
            let chars: Vec<char> = uri.chars().collect();
            let mut edited = chars.clone();
            let at = match edit {
                Edit::Replace(at, c) => {
                    let at = at % chars.len();
                    edited[at] = *c;
                    at
                }
                Edit::Insert(at, c) => {
                    let at = at % (chars.len() + 1);
                    edited.insert(at, *c);
                    at
                }
                Edit::Delete(at) => {
                    let at = at % chars.len();
                    edited.remove(at);
                    at
                }
            };
            (edited.into_iter().collect(), at)
        }

        fn edit() -> impl Strategy<Value = Edit> {
            let c = prop_oneof![
                any::<char>(),
                prop::sample::select(vec!['/', '.', ':', '@', '%', '?', '#', 'A', '1', '\\']),
            ];
            prop_oneof![
                (any::<usize>(), c.clone()).prop_map(|(at, c)| Edit::Replace(at, c)),
                (any::<usize>(), c).prop_map(|(at, c)| Edit::Insert(at, c)),
                any::<usize>().prop_map(Edit::Delete),
            ]
        }

        proptest! {
            #[test]
            fn registered_uri_matches_itself(uri in registered_uri()) {
                prop_assert!(redirect_uri_matches(&uri, std::slice::from_ref(&uri)));
            }

            #[test]
            fn any_edit_outside_a_loopback_port_fails(
                uri in registered_uri(),
                edit in edit(),
            ) {
                let (edited, at) = apply(&uri, &edit);
                prop_assume!(edited != uri);
                // Every character is ASCII, so `at` is also a byte index.
                let in_port = port_span(&uri).is_some_and(|span| span.contains(&at));
                prop_assume!(!in_port);
                prop_assert!(
                    !redirect_uri_matches(&edited, std::slice::from_ref(&uri)),
                    "{} matched {}", edited, uri
                );
            }

            #[test]
            fn port_is_free_only_on_loopback_addresses(
                host in prop_oneof![
                    Just("127.0.0.1".to_owned()),
                    Just("[::1]".to_owned()),
                    Just("localhost".to_owned()),
                    Just("127.0.0.2".to_owned()),
                    Just("[::2]".to_owned()),
                    "[a-z]{1,8}\\.test",
                ],
                scheme in prop::sample::select(vec!["http", "https"]),
                registered_port in 1u16..,
                requested_port in 1u16..,
            ) {
                prop_assume!(registered_port != requested_port);
                let registered = format!("{scheme}://{host}:{registered_port}/cb");
                let requested = format!("{scheme}://{host}:{requested_port}/cb");
                let free = scheme == "http" && FREE_PORT_HOSTS.contains(&host.as_str());
                prop_assert_eq!(redirect_uri_matches(&requested, &[registered]), free);
            }
        }
    }
}
