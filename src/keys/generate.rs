//! Key generation with josekit, the public half of a JWK, and RFC 7638
//! thumbprints used as kids.

use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jwk::Jwk;

use super::{EncryptionAlg, KeyAlg, KeyError, SigningAlg};

/// JWK members that may be published, by key type (RFC 7517 section 4,
/// RFC 7518 section 6, RFC 8037 section 2). Everything else, notably `d`,
/// `p`, `q`, `dp`, `dq`, `qi`, `oth` and `k`, stays private.
const COMMON_PUBLIC_MEMBERS: [&str; 4] = ["kty", "kid", "use", "alg"];
const RSA_PUBLIC_MEMBERS: [&str; 2] = ["n", "e"];
const EC_PUBLIC_MEMBERS: [&str; 3] = ["crv", "x", "y"];
const OKP_PUBLIC_MEMBERS: [&str; 2] = ["crv", "x"];

/// A freshly generated key pair, labelled with its kid, `alg` and `use`.
pub struct GeneratedKey {
    pub kid: String,
    pub public_jwk: Jwk,
    pub private_jwk: Jwk,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Generates a key pair for `alg`: RSA of `rsa_bits` for RS256, PS256 and
/// RSA-OAEP-256, P-256 for ES256 and ECDH-ES+A256KW, Ed25519 for EdDSA.
/// The kid is the RFC 7638 thumbprint of the public key.
pub fn generate(alg: KeyAlg, rsa_bits: u32) -> Result<GeneratedKey, KeyError> {
    let mut private_jwk = match alg {
        KeyAlg::Signing(SigningAlg::RS256 | SigningAlg::PS256)
        | KeyAlg::Encryption(EncryptionAlg::RsaOaep256) => Jwk::generate_rsa_key(rsa_bits)?,
        KeyAlg::Signing(SigningAlg::ES256) | KeyAlg::Encryption(EncryptionAlg::EcdhEsA256kw) => {
            Jwk::generate_ec_key(EcCurve::P256)?
        }
        KeyAlg::Signing(SigningAlg::EdDSA) => Jwk::generate_ed_key(EdCurve::Ed25519)?,
    };
    let kid = thumbprint(&private_jwk)?;
    private_jwk.set_key_id(kid.clone());
    private_jwk.set_algorithm(alg.as_str());
    private_jwk.set_key_use(alg.key_use());
    let public_jwk = public_jwk(&private_jwk)?;
    Ok(GeneratedKey {
        kid,
        public_jwk,
        private_jwk,
    })
}

/// Copies only the public members of `jwk`, whatever else it holds.
pub fn public_jwk(jwk: &Jwk) -> Result<Jwk, KeyError> {
    let key_members: &[&str] = match jwk.key_type() {
        "RSA" => &RSA_PUBLIC_MEMBERS,
        "EC" => &EC_PUBLIC_MEMBERS,
        "OKP" => &OKP_PUBLIC_MEMBERS,
        other => return Err(KeyError::UnsupportedKeyType(other.to_owned())),
    };
    let mut map = josekit::Map::new();
    for member in COMMON_PUBLIC_MEMBERS.iter().chain(key_members) {
        if let Some(value) = jwk.parameter(member) {
            map.insert((*member).to_owned(), value.clone());
        }
    }
    Ok(Jwk::from_map(map)?)
}

/// Computes the RFC 7638 thumbprint (SHA-256, base64url) of a JWK; the one
/// implementation in `crate::public_keys` serves registered keys as well.
pub fn thumbprint(jwk: &Jwk) -> Result<String, KeyError> {
    crate::public_keys::thumbprint(jwk.as_ref())
        .map_err(|_| KeyError::UnsupportedKeyType(jwk.key_type().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 section 3.1.
        let jwk = Jwk::from_bytes(
            br#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_keys_have_clean_public_half() {
        let algs = [
            KeyAlg::Signing(SigningAlg::RS256),
            KeyAlg::Signing(SigningAlg::ES256),
            KeyAlg::Signing(SigningAlg::PS256),
            KeyAlg::Signing(SigningAlg::EdDSA),
            KeyAlg::Encryption(EncryptionAlg::EcdhEsA256kw),
            KeyAlg::Encryption(EncryptionAlg::RsaOaep256),
        ];
        for alg in algs {
            let key = generate(alg, 2048).unwrap();
            assert_eq!(key.private_jwk.key_id(), Some(key.kid.as_str()), "{alg}");
            assert!(key.private_jwk.parameter("d").is_some(), "{alg}");
            assert_eq!(key.public_jwk.key_id(), Some(key.kid.as_str()), "{alg}");
            assert_eq!(key.public_jwk.algorithm(), Some(alg.as_str()), "{alg}");
            assert_eq!(key.public_jwk.key_use(), Some(alg.key_use()), "{alg}");
            for member in PRIVATE_MEMBERS {
                assert!(key.public_jwk.parameter(member).is_none(), "{alg} {member}");
            }
        }
    }

    #[test]
    fn public_jwk_drops_unknown_members() {
        let mut jwk = Jwk::generate_ec_key(EcCurve::P256).unwrap();
        jwk.set_parameter("x5c_private_note", Some("secret".into()))
            .unwrap();
        let public = public_jwk(&jwk).unwrap();
        assert!(public.parameter("x5c_private_note").is_none());
        assert!(public.parameter("d").is_none());
        assert!(public.parameter("x").is_some());
    }

    #[test]
    fn symmetric_keys_are_rejected() {
        let jwk = Jwk::generate_oct_key(32).unwrap();
        assert!(public_jwk(&jwk).is_err());
    }
}
