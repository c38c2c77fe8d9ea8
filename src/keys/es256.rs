//! ES256 signing with the `ring` crate, plugged into josekit's JWS
//! serialization.
//!
//! josekit signs through OpenSSL's EVP layer, which looks up the digest
//! and signature implementations in OpenSSL 3's provider tables for every
//! signature. `ring` signs with the key already parsed. On this project's
//! 2-core test machine, one P-256 signature took 23 us through EVP and 17 us
//! with `ring` (a throwaway comparison program, machine otherwise idle).
//! Verification stays with josekit.

use std::sync::Arc;

use ::ring::rand::SystemRandom;
use ::ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::Jwk;
use josekit::jws::{JwsAlgorithm, JwsSigner, ES256};
use josekit::JoseError;

/// Bytes of a P-256 scalar or coordinate.
const FIELD_BYTES: usize = 32;

/// Signs with one P-256 private key.
#[derive(Clone)]
pub struct Es256Signer {
    key_pair: Arc<EcdsaKeyPair>,
    random: SystemRandom,
    key_id: Option<String>,
}

impl std::fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es256Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Es256Signer {
    /// Builds the signer from a private EC JWK on P-256. `ring` checks that
    /// the public point belongs to the private scalar.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JoseError> {
        let invalid = |reason: &str| JoseError::InvalidKeyFormat(anyhow::anyhow!("{reason}"));
        if jwk.key_type() != "EC" || jwk.curve() != Some("P-256") {
            return Err(invalid("an ES256 key must be an EC key on P-256"));
        }
        let member = |name: &str| -> Result<Vec<u8>, JoseError> {
            let text = jwk
                .parameter(name)
                .and_then(|value| value.as_str())
                .ok_or_else(|| invalid("an ES256 key lacks d, x or y"))?;
            let bytes = URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| invalid("an ES256 key member is not base64url"))?;
            if bytes.len() != FIELD_BYTES {
                return Err(invalid("an ES256 key member has the wrong length"));
            }
            Ok(bytes)
        };
        let private_key = member("d")?;
        let mut public_key = vec![0x04];
        public_key.extend(member("x")?);
        public_key.extend(member("y")?);
        let random = SystemRandom::new();
        let key_pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &private_key,
            &public_key,
            &random,
        )
        .map_err(|_| invalid("the ES256 key pair does not check out"))?;
        Ok(Self {
            key_pair: Arc::new(key_pair),
            random,
            key_id: jwk.key_id().map(str::to_owned),
        })
    }
}

impl JwsSigner for Es256Signer {
    fn algorithm(&self) -> &dyn JwsAlgorithm {
        &ES256
    }

    fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    fn signature_len(&self) -> usize {
        2 * FIELD_BYTES
    }

    /// Returns `r || s`, as JWS requires (RFC 7518 section 3.4).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        let signature = self
            .key_pair
            .sign(&self.random, message)
            .map_err(|_| JoseError::InvalidSignature(anyhow::anyhow!("ES256 signing failed")))?;
        Ok(signature.as_ref().to_vec())
    }

    fn box_clone(&self) -> Box<dyn JwsSigner> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use josekit::jws::JwsHeader;

    use super::*;

    #[test]
    fn josekit_verifies_its_signatures() {
        let pair = EcKeyPair::generate(EcCurve::P256).unwrap();
        let signer = Es256Signer::from_jwk(&pair.to_jwk_key_pair()).unwrap();
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        let token = josekit::jws::serialize_compact(b"{\"sub\":\"a\"}", &header, &signer).unwrap();

        let verifier = ES256.verifier_from_jwk(&pair.to_jwk_public_key()).unwrap();
        let (payload, header) = josekit::jws::deserialize_compact(&token, &verifier).unwrap();
        assert_eq!(payload, b"{\"sub\":\"a\"}");
        assert_eq!(header.algorithm(), Some("ES256"));

        let other = EcKeyPair::generate(EcCurve::P256).unwrap();
        let stranger = ES256.verifier_from_jwk(&other.to_jwk_public_key()).unwrap();
        assert!(josekit::jws::deserialize_compact(&token, &stranger).is_err());
    }

    #[test]
    fn mismatched_or_foreign_keys_are_rejected() {
        let pair = EcKeyPair::generate(EcCurve::P256).unwrap();
        let other = EcKeyPair::generate(EcCurve::P256).unwrap();
        let mut mixed = pair.to_jwk_key_pair();
        let foreign_x = other.to_jwk_public_key();
        mixed
            .set_parameter("x", foreign_x.parameter("x").cloned())
            .unwrap();
        assert!(Es256Signer::from_jwk(&mixed).is_err());

        let p384 = EcKeyPair::generate(EcCurve::P384).unwrap();
        assert!(Es256Signer::from_jwk(&p384.to_jwk_key_pair()).is_err());
        let public_only = pair.to_jwk_public_key();
        assert!(Es256Signer::from_jwk(&public_only).is_err());
    }
}
