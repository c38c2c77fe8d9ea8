//! `[http]`: the client address behind proxies.

use serde::{Deserialize, Serialize};

use crate::http::client_ip::{ClientIpHeader, TrustedProxy};

/// HTTP server settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Peers (addresses or CIDR ranges) whose forwarding header names the
    /// client's address; empty, so no header is read, by default.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// The forwarding header those proxies write.
    pub client_ip_header: ClientIpHeader,
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::http::client_ip::ClientIpHeader;

    fn load(env: &[(&str, &str)]) -> Result<Config, String> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::load_from(None, env)
            .map(|(config, _)| config)
            .map_err(|error| error.to_string())
    }

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
}
