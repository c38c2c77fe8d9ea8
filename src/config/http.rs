//! `[http]`: the client address behind proxies, and the time limits on
//! connections and requests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, HumanDuration};
use crate::http::client_ip::{ClientIpHeader, TrustedProxy};

/// Maximum accepted `http.header_read_timeout`.
const MAX_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Maximum accepted `http.request_timeout`.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// HTTP server settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Peers (addresses or CIDR ranges) whose forwarding header names the
    /// client's address; empty, so no header is read, by default.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// The forwarding header those proxies write.
    pub client_ip_header: ClientIpHeader,
    /// Maximum time to receive a request's headers, counted from the end of
    /// the previous response on a kept-alive connection. The connection is
    /// closed when it runs out.
    pub header_read_timeout: HumanDuration,
    /// Maximum time to read a request's body and send the response. After
    /// it the response is 408.
    pub request_timeout: HumanDuration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::default(),
            header_read_timeout: HumanDuration::from_secs(10),
            request_timeout: HumanDuration::from_secs(30),
        }
    }
}

impl HttpSettings {
    /// Checks the timeouts. `max_login_delay` is the longest delay a login
    /// may wait before its password is checked, which must fit in a request.
    pub(super) fn validate(&self, max_login_delay: HumanDuration) -> Result<(), ConfigError> {
        let timeout = self.header_read_timeout;
        if timeout.is_zero() || timeout.as_duration() > MAX_HEADER_READ_TIMEOUT {
            return Err(ConfigError::value(
                "http.header_read_timeout",
                timeout,
                "use a duration above zero and at most 5m",
            ));
        }
        let timeout = self.request_timeout;
        if timeout.as_duration() > MAX_REQUEST_TIMEOUT {
            return Err(ConfigError::value(
                "http.request_timeout",
                timeout,
                "use at most 10m",
            ));
        }
        if timeout <= max_login_delay {
            return Err(ConfigError::value(
                "http.request_timeout",
                timeout,
                format!("use more than login.max_delay ({max_login_delay})"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_env as load;
    use crate::http::client_ip::ClientIpHeader;

    #[test]
    fn trusted_proxies_are_read() {
        let config = load(&[
            ("TESSERA_HTTP__TRUSTED_PROXIES", r#"["10.0.0.0/8", "::1"]"#),
            ("TESSERA_HTTP__CLIENT_IP_HEADER", "forwarded"),
        ])
        .unwrap();
        let proxies: Vec<String> = config
            .http
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1"]);
        assert_eq!(config.http.client_ip_header, ClientIpHeader::Forwarded);
        assert!(load(&[]).unwrap().http.trusted_proxies.is_empty());
    }

    #[test]
    fn bad_proxy_names_key_value_and_fix() {
        let message = load(&[(
            "TESSERA_HTTP__TRUSTED_PROXIES",
            r#"["10.0.0.1", "10.0.0.300"]"#,
        )])
        .unwrap_err();
        assert!(message.contains("http.trusted_proxies"), "{message}");
        assert!(message.contains("10.0.0.300"), "{message}");
        assert!(message.contains("10.0.0.0/8"), "{message}");
        let message = load(&[("TESSERA_HTTP__TRUSTED_PROXIES", r#"["10.1.2.3/8"]"#)]).unwrap_err();
        assert!(
            message.contains("write the range as 10.0.0.0/8"),
            "{message}"
        );
    }

    #[test]
    fn timeouts_are_checked() {
        let message = load(&[("TESSERA_HTTP__HEADER_READ_TIMEOUT", "0s")]).unwrap_err();
        assert!(message.contains("http.header_read_timeout"), "{message}");
        let message = load(&[("TESSERA_HTTP__HEADER_READ_TIMEOUT", "6m")]).unwrap_err();
        assert!(message.contains("http.header_read_timeout"), "{message}");
        let message = load(&[("TESSERA_HTTP__REQUEST_TIMEOUT", "5s")]).unwrap_err();
        assert!(message.contains("login.max_delay"), "{message}");
        let config = load(&[
            ("TESSERA_HTTP__REQUEST_TIMEOUT", "5s"),
            ("TESSERA_LOGIN__MAX_DELAY", "2s"),
            ("TESSERA_LOGIN__BASE_DELAY", "100ms"),
        ])
        .unwrap();
        assert_eq!(config.http.request_timeout.as_duration().as_secs(), 5);
    }
}
