//! `ECDH-ES+A256KW` key management (RFC 7518 section 4.6) for recipients
//! with an EC key on a NIST curve, plugged into josekit's JWE serialization,
//! which still does the content encryption.
//!
//! josekit's own encrypter hands the recipient's key to OpenSSL's
//! `EVP_PKEY_derive_set_peer` for every token, which validates the peer
//! key each time, and OpenSSL 3's EVP layer copies both keys into its
//! provider on every derivation. This encrypter validates the recipient's
//! key once, when it is built, and multiplies the points itself with
//! `EC_POINT_mul`, as OpenSSL's ECDH does underneath.
//! `cargo bench --bench tokens` (`encrypt/ECDH-ES+A256KW`) went from 283
//! to 171 us per encryption with the first change, on a 2-core machine that
//! other builds were loading at the time.
//!
//! On P-256 and P-384, ring does the agreement instead. OpenSSL's path
//! turns both the ephemeral public key and the shared point into affine
//! coordinates through its generic big-number code, which took 8% of the
//! server's CPU under load. ring works in its own field arithmetic
//! throughout. ring has no P-521, which keeps the OpenSSL path.

use std::borrow::Cow;
use std::sync::Arc;

use aes_kw::KekAes256;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwe::alg::ecdh_es::EcdhEsJweAlgorithm;
use josekit::jwe::{JweAlgorithm, JweContentEncryption, JweEncrypter, JweHeader};
use josekit::jwk::Jwk;
use josekit::JoseError;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcGroupRef, EcKey, EcPoint, EcPointRef};
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
    agreement: Agreement,
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

/// The recipient's public point, checked to be on the curve, in the form
/// of the library that multiplies it.
#[derive(Clone)]
enum Agreement {
    Ring {
        algorithm: &'static agreement::Algorithm,
        /// The uncompressed point: `04`, then x, then y.
        peer: Arc<[u8]>,
        random: SystemRandom,
    },
    OpenSsl {
        peer: Arc<EcPoint>,
        group: Arc<EcGroup>,
    },
}

impl EcdhEsA256kwEncrypter {
    /// Builds the encrypter from a public EC JWK on P-256, P-384 or P-521;
    /// returns `None` for any other key or a point not on the curve.
    pub fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if jwk.key_type() != "EC" {
            return None;
        }
        let curve = jwk.curve()?;
        let (nid, curve, coordinate_bytes) = match curve {
            "P-256" => (Nid::X9_62_PRIME256V1, "P-256", 32),
            "P-384" => (Nid::SECP384R1, "P-384", 48),
            "P-521" => (Nid::SECP521R1, "P-521", 66),
            _ => return None,
        };
        let coordinate = |name: &str| -> Option<BigNum> {
            let text = jwk.parameter(name)?.as_str()?;
            let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
            (bytes.len() == coordinate_bytes).then_some(())?;
            BigNum::from_slice(&bytes).ok()
        };
        let (x, y) = (coordinate("x")?, coordinate("y")?);
        let group = EcGroup::from_curve_name(nid).ok()?;
        let key = EcKey::from_public_key_affine_coordinates(&group, &x, &y).ok()?;
        // Checked once here: on the curve, and of the group's order.
        key.check_key().ok()?;
        let size = i32::try_from(coordinate_bytes).ok()?;
        let ring_algorithm = match curve {
            "P-256" => Some(&agreement::ECDH_P256),
            "P-384" => Some(&agreement::ECDH_P384),
            _ => None,
        };
        let agreement = match ring_algorithm {
            Some(algorithm) => Agreement::Ring {
                algorithm,
                peer: [
                    &[4][..],
                    &x.to_vec_padded(size).ok()?,
                    &y.to_vec_padded(size).ok()?,
                ]
                .concat()
                .into(),
                random: SystemRandom::new(),
            },
            None => Agreement::OpenSsl {
                peer: Arc::new(key.public_key().to_owned(&group).ok()?),
                group: Arc::new(group),
            },
        };
        Some(Self {
            agreement,
            curve,
            coordinate_bytes,
            key_id: jwk.key_id().map(str::to_owned),
        })
    }

    /// Makes an ephemeral key pair, puts its public half in `epk` and
    /// returns the key-wrapping key agreed with the recipient.
    fn agree(&self, header: &mut JweHeader) -> Result<Vec<u8>, AgreementError> {
        let (epk, kek) = match &self.agreement {
            Agreement::Ring {
                algorithm,
                peer,
                random,
            } => agree_with_ring(algorithm, peer, random)?,
            Agreement::OpenSsl { peer, group } => {
                agree_with_openssl(group, peer, self.coordinate_bytes)?
            }
        };
        let (x, y) = epk.split_at(self.coordinate_bytes);
        let epk = json!({
            "kty": "EC",
            "crv": self.curve,
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        });
        // josekit 0.10 checks the value type of a few registered names only,
        // and `epk` is not one of them, so this cannot fail.
        header.set_claim("epk", Some(epk)).ok();
        Ok(kek)
    }
}

/// Failure to agree a key-wrapping key.
#[derive(Debug, thiserror::Error)]
enum AgreementError {
    #[error("ring's key agreement failed")]
    Ring,
    #[error(transparent)]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

impl From<ring::error::Unspecified> for AgreementError {
    fn from(_: ring::error::Unspecified) -> Self {
        AgreementError::Ring
    }
}

/// Agrees a key-wrapping key with ring. Returns the ephemeral public
/// point's coordinates (x, then y) and the key.
fn agree_with_ring(
    algorithm: &'static agreement::Algorithm,
    peer: &[u8],
    random: &SystemRandom,
) -> Result<(Vec<u8>, Vec<u8>), AgreementError> {
    let ephemeral = agreement::EphemeralPrivateKey::generate(algorithm, random)?;
    let public = ephemeral.compute_public_key()?;
    // Skips the leading 04 of the uncompressed point.
    let coordinates = public
        .as_ref()
        .get(1..)
        .ok_or(AgreementError::Ring)?
        .to_vec();
    let peer = agreement::UnparsedPublicKey::new(algorithm, peer);
    // ring hands the KDF the shared secret Z, the x-coordinate of the
    // shared point.
    let kek = agreement::agree_ephemeral(ephemeral, &peer, concat_kdf)?;
    Ok((coordinates, kek))
}

/// Agrees a key-wrapping key with OpenSSL, for curves that ring lacks.
/// Returns the ephemeral public point's coordinates (x, then y) and the key.
fn agree_with_openssl(
    group: &EcGroupRef,
    peer: &EcPointRef,
    coordinate_bytes: usize,
) -> Result<(Vec<u8>, Vec<u8>), openssl::error::ErrorStack> {
    let ephemeral = EcKey::generate(group)?;
    let mut context = BigNumContext::new()?;
    let size = i32::try_from(coordinate_bytes).unwrap_or(i32::MAX);
    let (x, y) = affine_coordinates(group, ephemeral.public_key(), &mut context)?;
    let mut coordinates = x.to_vec_padded(size)?;
    coordinates.extend_from_slice(&y.to_vec_padded(size)?);

    // The shared secret Z is the x-coordinate of d * Q (SP 800-56A
    // section 5.7.1.2; the cofactor of these curves is 1). This is what
    // OpenSSL's own ECDH computes, without the EVP layer's per-call key
    // export to the provider.
    let mut shared = EcPoint::new(group)?;
    shared.mul2(group, peer, ephemeral.private_key(), &mut context)?;
    let (z, _) = affine_coordinates(group, &shared, &mut context)?;
    let kek = concat_kdf(&z.to_vec_padded(size)?);
    Ok((coordinates, kek))
}

/// Returns the affine coordinates of `point`.
fn affine_coordinates(
    group: &EcGroupRef,
    point: &EcPointRef,
    context: &mut BigNumContext,
) -> Result<(BigNum, BigNum), openssl::error::ErrorStack> {
    let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
    point.affine_coordinates(group, &mut x, &mut y, context)?;
    Ok((x, y))
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
        let failed = |error: AgreementError| JoseError::InvalidKeyFormat(error.into());
        let kek = self.agree(out_header).map_err(failed)?;
        // RustCrypto's AES uses AES-NI where the CPU has it; OpenSSL's
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
        round_trip(EcCurve::P521);
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

        let secp256k1 = Jwk::generate_ec_key(EcCurve::Secp256k1).unwrap();
        assert!(EcdhEsA256kwEncrypter::from_jwk(&secp256k1.to_public_key().unwrap()).is_none());
        let rsa = Jwk::generate_rsa_key(2048).unwrap();
        assert!(EcdhEsA256kwEncrypter::from_jwk(&rsa).is_none());
    }
}
