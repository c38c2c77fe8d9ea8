//! The client's address, for rate limits, login throttling and the audit
//! log, and for nothing else: URLs always come from the configured issuer.
//!
//! The address is the TCP peer's, unless the peer is one of
//! `http.trusted_proxies`. Then it is the right-most address in the
//! forwarding header (`http.client_ip_header`) that is not itself a trusted
//! proxy, because each proxy appends the address it received the request
//! from, and only the entries appended by trusted proxies can be believed.
//! Only the one configured header is read: a client can send either header
//! itself, and a proxy passes on the one it does not write unchanged.
//!
//! An entry that is not an address (`unknown`, an obfuscated RFC 7239
//! identifier, garbage) ends the walk, and the last trusted hop counts as
//! the client, so a malformed header never lets a client pick its address.
//! When every entry is a trusted proxy, the left-most one is the client.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::server::AppState;

/// One entry of `http.trusted_proxies`: an address or a CIDR range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

impl TrustedProxy {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    /// Parses `10.0.0.7`, `2001:db8::1`, `10.0.0.0/8` or `2001:db8::/32`.
    /// A range with host bits set (`10.0.0.7/8`) is rejected as a likely typo.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self(IpNet::from(ip.to_canonical())));
        }
        let net: IpNet = text.parse().map_err(|_| {
            format!(
                "{text:?} is not an IP address or CIDR range; write it as 10.0.0.7 or 10.0.0.0/8"
            )
        })?;
        if net.trunc() != net {
            return Err(format!(
                "{text:?} has host bits set; write the range as {}",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpNet::V4(net) if net.prefix_len() == 32 => net.addr().fmt(f),
            IpNet::V6(net) if net.prefix_len() == 128 => net.addr().fmt(f),
            net => net.fmt(f),
        }
    }
}

impl Serialize for TrustedProxy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The forwarding header that trusted proxies write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`, written by most proxies
    /// and load balancers.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ClientIpHeader {
    fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            Self::Forwarded => HeaderName::from_static("forwarded"),
        }
    }
}

/// The client's address, resolved as the module header describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = <ConnectInfo<SocketAddr> as FromRequestParts<AppState>>::Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await?;
        let http = &state.config.http;
        Ok(Self(resolve(
            peer.ip(),
            &parts.headers,
            &http.trusted_proxies,
            http.client_ip_header,
        )))
    }
}

/// Returns the client's address for a request from `peer`.
pub fn resolve(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[TrustedProxy],
    header: ClientIpHeader,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|proxy| proxy.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let values = headers
        .get_all(header.name())
        .iter()
        .filter_map(|value| value.to_str().ok());
    let hops: Vec<Option<IpAddr>> = match header {
        ClientIpHeader::XForwardedFor => values
            .flat_map(|value| value.split(','))
            .map(parse_hop)
            .collect(),
        ClientIpHeader::Forwarded => values.flat_map(forwarded_for).collect(),
    };
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// Parses one hop: an address, optionally with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`), possibly quoted. Anything else is `None`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    let ip = match text.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => text.parse::<SocketAddr>().ok()?.ip(),
    };
    Some(ip.to_canonical())
}

/// Returns the `for=` value of each element of one `Forwarded` header value
/// (RFC 7239 section 4), in order. An element without `for` yields `None`.
fn forwarded_for(value: &str) -> Vec<Option<IpAddr>> {
    split_unquoted(value, ',')
        .into_iter()
        .map(|element| {
            split_unquoted(element, ';').into_iter().find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_hop(value))
            })?
        })
        .collect()
}

/// Splits `text` at each `separator` outside a quoted string.
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (at, character) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && character == '\\' {
            escaped = true;
        } else if character == '"' {
            quoted = !quoted;
        } else if character == separator && !quoted {
            parts.push(&text[start..at]);
            start = at + character.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|entry| entry.parse().unwrap()).collect()
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn xff(peer: &str, trusted: &[&str], values: &[&str]) -> IpAddr {
        resolve(
            ip(peer),
            &headers("x-forwarded-for", values),
            &proxies(trusted),
            ClientIpHeader::XForwardedFor,
        )
    }

    fn forwarded(peer: &str, trusted: &[&str], values: &[&str]) -> IpAddr {
        resolve(
            ip(peer),
            &headers("forwarded", values),
            &proxies(trusted),
            ClientIpHeader::Forwarded,
        )
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        assert_eq!(
            xff("198.51.100.7", &[], &["203.0.113.9"]),
            ip("198.51.100.7")
        );
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            xff("198.51.100.7", &trusted, &["203.0.113.9"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn right_most_untrusted_entry_wins() {
        let trusted = ["10.0.0.0/8"];
        let spoofed = ["1.1.1.1, 203.0.113.9, 10.0.0.3"];
        assert_eq!(xff("10.0.0.2", &trusted, &spoofed), ip("203.0.113.9"));
        let split_over_lines = ["1.1.1.1", "203.0.113.9", "10.0.0.3"];
        assert_eq!(
            xff("10.0.0.2", &trusted, &split_over_lines),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        assert_eq!(xff("10.0.0.2", &["10.0.0.2"], &[]), ip("10.0.0.2"));
    }

    #[test]
    fn all_trusted_entries_give_left_most() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            xff("10.0.0.2", &trusted, &["10.0.0.9, 10.0.0.3"]),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn malformed_entry_stops_at_last_trusted_hop() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            xff("10.0.0.2", &trusted, &["203.0.113.9, unknown, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(xff("10.0.0.2", &trusted, &["garbage"]), ip("10.0.0.2"));
        assert_eq!(xff("10.0.0.2", &trusted, &[""]), ip("10.0.0.2"));
    }

    #[test]
    fn ports_and_ipv6_are_read() {
        let trusted = ["10.0.0.0/8", "2001:db8:ffff::/48"];
        assert_eq!(
            xff("10.0.0.2", &trusted, &["203.0.113.9:4711"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            xff("2001:db8:ffff::1", &trusted, &["[2001:db8::17]:4711"]),
            ip("2001:db8::17")
        );
        assert_eq!(
            xff("::ffff:10.0.0.2", &trusted, &["::ffff:203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_header_for_values() {
        let trusted = ["10.0.0.0/8"];
        let value = "for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"";
        assert_eq!(
            forwarded("10.0.0.2", &trusted, &[value]),
            ip("2001:db8:cafe::17")
        );
        let quoted_comma = "for=192.0.2.60;host=\"a,b\", FOR=10.0.0.5";
        assert_eq!(
            forwarded("10.0.0.2", &trusted, &[quoted_comma]),
            ip("192.0.2.60")
        );
        let obfuscated = "for=192.0.2.60, for=_hidden, for=10.0.0.5";
        assert_eq!(
            forwarded("10.0.0.2", &trusted, &[obfuscated]),
            ip("10.0.0.5")
        );
        let without_for = "for=192.0.2.60, by=10.0.0.5";
        assert_eq!(
            forwarded("10.0.0.2", &trusted, &[without_for]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn only_configured_header_is_read() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let mut map = headers("forwarded", &["for=192.0.2.60"]);
        map.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        let from_xff = resolve(
            ip("10.0.0.2"),
            &map,
            &trusted,
            ClientIpHeader::XForwardedFor,
        );
        assert_eq!(from_xff, ip("203.0.113.9"));
        let from_forwarded = resolve(ip("10.0.0.2"), &map, &trusted, ClientIpHeader::Forwarded);
        assert_eq!(from_forwarded, ip("192.0.2.60"));
    }

    #[test]
    fn trusted_proxy_entries_parse() {
        let accepted = [
            ("10.0.0.7", "10.0.0.7"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("::1", "::1"),
            (" 127.0.0.1 ", "127.0.0.1"),
            ("::ffff:10.0.0.7", "10.0.0.7"),
        ];
        for (text, shown) in accepted {
            let proxy: TrustedProxy = text.parse().unwrap();
            assert_eq!(proxy.to_string(), shown, "{text}");
        }
        for text in ["10.0.0.300", "10.0.0.0/33", "localhost", "", "10.0.0.7/8"] {
            assert!(text.parse::<TrustedProxy>().is_err(), "{text}");
        }
        let error = "10.0.0.7/8".parse::<TrustedProxy>().unwrap_err();
        assert!(error.contains("10.0.0.0/8"), "{error}");
    }
}
