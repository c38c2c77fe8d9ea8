//! The algorithms Tessera's own keys are made for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A JWS algorithm Tessera signs with (RFC 7518 section 3, RFC 8037).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SigningAlg {
    RS256,
    ES256,
    PS256,
    EdDSA,
}

/// A JWE key management algorithm for Tessera's encryption key (RFC 7518
/// section 4). `RSA1_5` is deliberately absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EncryptionAlg {
    #[serde(rename = "ECDH-ES+A256KW")]
    EcdhEsA256kw,
    #[serde(rename = "RSA-OAEP-256")]
    RsaOaep256,
}

/// The algorithm of one key slot: each configured signing algorithm and
/// the encryption algorithm has its own next, current and retired keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAlg {
    Signing(SigningAlg),
    Encryption(EncryptionAlg),
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 4] = [Self::RS256, Self::ES256, Self::PS256, Self::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::PS256 => "PS256",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }
}

impl EncryptionAlg {
    pub const ALL: [EncryptionAlg; 2] = [Self::EcdhEsA256kw, Self::RsaOaep256];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdhEsA256kw => "ECDH-ES+A256KW",
            Self::RsaOaep256 => "RSA-OAEP-256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }
}

impl KeyAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing(alg) => alg.as_str(),
            Self::Encryption(alg) => alg.as_str(),
        }
    }

    /// Returns the JWK `use` member: `sig` or `enc`.
    pub fn key_use(self) -> &'static str {
        match self {
            Self::Signing(_) => "sig",
            Self::Encryption(_) => "enc",
        }
    }

    /// Parses a stored algorithm name together with its `use`.
    pub fn parse(name: &str, key_use: &str) -> Option<Self> {
        match key_use {
            "sig" => SigningAlg::parse(name).map(Self::Signing),
            "enc" => EncryptionAlg::parse(name).map(Self::Encryption),
            _ => None,
        }
    }

    /// Parses an algorithm name given on the command line.
    pub fn from_name(name: &str) -> Option<Self> {
        SigningAlg::parse(name)
            .map(Self::Signing)
            .or_else(|| EncryptionAlg::parse(name).map(Self::Encryption))
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for EncryptionAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in SigningAlg::ALL {
            assert_eq!(
                KeyAlg::parse(alg.as_str(), "sig"),
                Some(KeyAlg::Signing(alg))
            );
        }
        for alg in EncryptionAlg::ALL {
            let parsed = KeyAlg::parse(alg.as_str(), "enc");
            assert_eq!(parsed, Some(KeyAlg::Encryption(alg)));
        }
        assert_eq!(KeyAlg::parse("ES256", "enc"), None);
        assert_eq!(KeyAlg::from_name("RSA1_5"), None);
        assert_eq!(KeyAlg::from_name("none"), None);
    }

    #[test]
    fn serde_uses_jose_names() {
        let json = serde_json::to_string(&EncryptionAlg::EcdhEsA256kw).unwrap();
        assert_eq!(json, "\"ECDH-ES+A256KW\"");
        let alg: SigningAlg = serde_json::from_str("\"EdDSA\"").unwrap();
        assert_eq!(alg, SigningAlg::EdDSA);
    }
}
