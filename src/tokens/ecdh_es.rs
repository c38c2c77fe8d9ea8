//! `ECDH-ES+A256KW` key management (RFC 7518 section 4.6) for recipients
//! with an EC key on P-256 or P-384, the curves that Tessera accepts for
//! encryption keys, plugged into josekit's JWE serialization, which still
//! does the content encryption.
//!
//! josekit's own encrypter hands the recipient's key to OpenSSL's
//! `EVP_PKEY_derive_set_peer` for every token, which validates the peer
//! key each time, and OpenSSL 3's EVP layer copies both keys into its
//! provider on every derivation. This encrypter validates the recipient's
//! key once, when it is built, and lets ring do the agreement. ring works
//! in its own field arithmetic throughout. OpenSSL's `EC_POINT_mul` path
//! turned both points into affine coordinates through its generic
//! big-number code, which took 8% of the server's CPU under load.

use std::borrow::Cow;
use std::sync::Arc;

use aes_kw::KekAes256;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwe::alg::ecdh_es::EcdhEsJweAlgorithm;
use josekit::jwe::{JweAlgorithm, JweContentEncryption, JweEncrypter, JweHeader};
use josekit::jwk::Jwk;
use josekit::JoseError;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use ring::rand::SystemRandom;
use ring::{agreement, digest};
use serde_json::json;

const ALGORITHM: EcdhEsJweAlgorithm = EcdhEsJweAlgorithm::EcdhEsA256kw;

/// Length of the AES-256 key-wrapping key in bytes.
const KEK_BYTES: usize = 32;

/// An encrypter for one EC recipient key, checked when built.
#[derive(Clone)]
pub struct EcdhEsA256kwEncrypter {
    algorithm: &'static agreement::Algorithm,
    /// The recipient's public point, checked to be on the curve, uncompressed:
    /// `04`, then x, then y.
    peer: Arc<[u8]>,
    random: SystemRandom,
    curve: &'static str,
    /// Bytes of one coordinate on the curve.
    coordinate_bytes: usize,
    key_id: Option<String>,
}

impl std::fmt::Debug for EcdhEsA256kwEncrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcdhEsA256kwEncrypter")
            .field("curve", &self.curve)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl EcdhEsA256kwEncrypter {
    /// Builds the encrypter from a public EC JWK on P-256 or P-384; returns
    /// `None` for any other key or a point not on the curve.
    pub fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if jwk.key_type() != "EC" {
            return None;
        }
        let (nid, algorithm, curve, coordinate_bytes) = match jwk.curve()? {
            "P-256" => (Nid::X9_62_PRIME256V1, &agreement::ECDH_P256, "P-256", 32),
            "P-384" => (Nid::SECP384R1, &agreement::ECDH_P384, "P-384", 48),
            _ => return None,
        };
        let coordinate = |name: &str| -> Option<Vec<u8>> {
            let text = jwk.parameter(name)?.as_str()?;
            let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
            (bytes.len() == coordinate_bytes).then_some(bytes)
        };
        let (x, y) = (coordinate("x")?, coordinate("y")?);
        // Checked once here with OpenSSL: on the curve, and of the group's
        // order.
        let group = EcGroup::from_curve_name(nid).ok()?;
        let x_coordinate = BigNum::from_slice(&x).ok()?;
        let y_coordinate = BigNum::from_slice(&y).ok()?;
        let key =
            EcKey::from_public_key_affine_coordinates(&group, &x_coordinate, &y_coordinate).ok()?;
        key.check_key().ok()?;
        Some(Self {
            algorithm,
            peer: [&[4][..], &x, &y].concat().into(),
            random: SystemRandom::new(),
            curve,
            coordinate_bytes,
            key_id: jwk.key_id().map(str::to_owned),
        })
    }

    /// Makes an ephemeral key pair, puts its public half in `epk` and
    /// returns the key-wrapping key agreed with the recipient.
    fn agree(&self, header: &mut JweHeader) -> Result<Vec<u8>, ring::error::Unspecified> {
        let ephemeral = agreement::EphemeralPrivateKey::generate(self.algorithm, &self.random)?;
        let public = ephemeral.compute_public_key()?;
        // Skips the leading 04 of the uncompressed point.
        let coordinates = public.as_ref().get(1..).ok_or(ring::error::Unspecified)?;
        let (x, y) = coordinates.split_at(self.coordinate_bytes);
        let epk = json!({
            "kty": "EC",
            "crv": self.curve,
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        });
        // josekit 0.10 checks the value type of a few registered names only,
        // and `epk` is not one of them, so this cannot fail.
        header.set_claim("epk", Some(epk)).ok();

        // ring hands the KDF the shared secret Z, the x-coordinate of the
        // shared point (SP 800-56A section 5.7.1.2; the cofactor of these
        // curves is 1).
        let peer = agreement::UnparsedPublicKey::new(self.algorithm, &self.peer[..]);
        agreement::agree_ephemeral(ephemeral, &peer, concat_kdf)
    }
}

/// Derives the 256-bit key-wrapping key with the Concat KDF of NIST SP
/// 800-56A as RFC 7518 section 4.6.2 uses it: `alg` as the algorithm id and
/// empty `apu` and `apv`, because Tessera sends neither. SHA-256 gives the
/// 256 bits in one round.
fn concat_kdf(shared_secret: &[u8]) -> Vec<u8> {
    let alg = ALGORITHM.name().as_bytes();
    let mut input = Vec::with_capacity(4 + shared_secret.len() + 4 + alg.len() + 12);
    input.extend_from_slice(&1u32.to_be_bytes());
    input.extend_from_slice(shared_secret);
    input.extend_from_slice(&u32::try_from(alg.len()).unwrap_or(0).to_be_bytes());
    input.extend_from_slice(alg);
    input.extend_from_slice(&0u32.to_be_bytes());
    input.extend_from_slice(&0u32.to_be_bytes());
    input.extend_from_slice(&(8 * KEK_BYTES as u32).to_be_bytes());
    digest::digest(&digest::SHA256, &input).as_ref().to_vec()
}

impl JweEncrypter for EcdhEsA256kwEncrypter {
    fn algorithm(&self) -> &dyn JweAlgorithm {
        &ALGORITHM
    }

    fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// Returns `None`, so josekit draws a random content encryption key
    /// that [`Self::encrypt`] then wraps.
    fn compute_content_encryption_key(
        &self,
        _content_encryption: &dyn JweContentEncryption,
        _in_header: &JweHeader,
        _out_header: &mut JweHeader,
    ) -> Result<Option<Cow<'_, [u8]>>, JoseError> {
        Ok(None)
    }

    fn encrypt(
        &self,
        key: &[u8],
        _in_header: &JweHeader,
        out_header: &mut JweHeader,
    ) -> Result<Option<Vec<u8>>, JoseError> {
        let kek = self.agree(out_header).map_err(|_| {
            JoseError::InvalidKeyFormat(anyhow::anyhow!("ECDH-ES key agreement failed"))
        })?;
        // RustCrypto's AES uses AES-NI where the CPU has it. OpenSSL's
        // low-level `AES_wrap_key` used table lookups, 2% of the server's
        // CPU under load.
        let wrapped = KekAes256::try_from(kek.as_slice())
            .and_then(|kek| kek.wrap_vec(key))
            .map_err(|_| JoseError::InvalidKeyFormat(anyhow::anyhow!("key wrapping failed")))?;
        Ok(Some(wrapped))
    }

    fn box_clone(&self) -> Box<dyn JweEncrypter> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use josekit::jwe::{self, ECDH_ES_A256KW};
    use josekit::jwk::alg::ec::EcCurve;

    use serde_json::Value;

    use super::*;

    fn round_trip(curve: EcCurve) {
        let private = Jwk::generate_ec_key(curve).unwrap();
        let mut public = private.to_public_key().unwrap();
        public.set_key_id("rs-1");
        let encrypter = EcdhEsA256kwEncrypter::from_jwk(&public).unwrap();
        let mut header = JweHeader::new();
        header.set_content_encryption("A256GCM");
        header.set_content_type("JWT");
        let token = jwe::serialize_compact(b"inner.jwt.text", &header, &encrypter).unwrap();

        let decrypter = ECDH_ES_A256KW.decrypter_from_jwk(&private).unwrap();
        let (payload, header) = jwe::deserialize_compact(&token, &decrypter).unwrap();
        assert_eq!(payload, b"inner.jwt.text");
        assert_eq!(header.algorithm(), Some("ECDH-ES+A256KW"));
        assert_eq!(header.key_id(), Some("rs-1"));
        let epk = header.claim("epk").unwrap();
        assert_eq!(epk["crv"], public.curve().unwrap());
    }

    #[test]
    fn josekit_decrypts_every_curve() {
        round_trip(EcCurve::P256);
        round_trip(EcCurve::P384);
    }

    #[test]
    fn unusable_keys_are_rejected() {
        let private = Jwk::generate_ec_key(EcCurve::P256).unwrap();
        let public = private.to_public_key().unwrap();
        let mut moved: serde_json::Map<String, Value> = public.as_ref().clone();
        let y = URL_SAFE_NO_PAD
            .decode(moved["y"].as_str().unwrap())
            .unwrap();
        let mut flipped = y.clone();
        flipped[31] ^= 1;
        moved.insert("y".into(), URL_SAFE_NO_PAD.encode(&flipped).into());
        let off_curve = Jwk::from_map(moved).unwrap();
        assert!(EcdhEsA256kwEncrypter::from_jwk(&off_curve).is_none());

        let p521 = Jwk::generate_ec_key(EcCurve::P521).unwrap();
        assert!(EcdhEsA256kwEncrypter::from_jwk(&p521.to_public_key().unwrap()).is_none());
        let secp256k1 = Jwk::generate_ec_key(EcCurve::Secp256k1).unwrap();
        assert!(EcdhEsA256kwEncrypter::from_jwk(&secp256k1.to_public_key().unwrap()).is_none());
        let rsa = Jwk::generate_rsa_key(2048).unwrap();
        assert!(EcdhEsA256kwEncrypter::from_jwk(&rsa).is_none());
    }
}
