//! The outer layer of an access token: a JWE in compact serialization that
//! wraps the signed JWT for one recipient (RFC 7516, nested per RFC 7519
//! section 5.2 with `cty: JWT`).
//!
//! Key management is `ECDH-ES+A256KW` for EC and OKP keys and
//! `RSA-OAEP-256` for RSA keys; content encryption is always `A256GCM`.
//! Decryption checks the header against that allow-list and refuses `zip`
//! before any key is used, because josekit's default context would inflate
//! a compressed payload.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwe::{self, JweDecrypter, JweEncrypter, JweHeader};
use josekit::jwk::Jwk;
use josekit::JoseError;

use super::ecdh_es::EcdhEsA256kwEncrypter;

/// Content encryption of every token Tessera encrypts.
pub const CONTENT_ENCRYPTION: &str = "A256GCM";

/// Key-management algorithms Tessera produces and accepts.
pub const KEY_MANAGEMENT_ALGORITHMS: [&str; 2] = ["ECDH-ES+A256KW", "RSA-OAEP-256"];

/// A failure to make or open a JWE. The messages name no key material.
#[derive(Clone, Copy, Debug, thiserror::Error)]
pub enum JweError {
    #[error("recipient key type cannot receive encrypted tokens")]
    UnsupportedKey,
    #[error("JWE header not allowed: {0}")]
    HeaderNotAllowed(&'static str),
    #[error("JWE is malformed or does not decrypt")]
    Invalid,
}

/// Picks the key-management algorithm for a recipient key from its type.
pub fn key_management_for(key: &Jwk) -> Result<&'static str, JweError> {
    match key.key_type() {
        "EC" | "OKP" => Ok("ECDH-ES+A256KW"),
        "RSA" => Ok("RSA-OAEP-256"),
        _ => Err(JweError::UnsupportedKey),
    }
}

/// Encrypts a signed JWT to `recipient`, with `cty: JWT` and the
/// recipient's `kid` in the protected header.
pub fn encrypt(jws: &str, recipient: &Jwk) -> Result<String, JweError> {
    Recipient::new(recipient)?.encrypt(jws, None)
}

/// A recipient's encrypter, built once from its public JWK so that it can
/// be reused. Building it (parsing the key and checking an EC point) costs
/// about as much as an ECDH-ES encryption and several times an RSA-OAEP one.
#[derive(Debug)]
pub struct Recipient {
    encrypter: Box<dyn JweEncrypter>,
    kid: Option<String>,
}

impl Recipient {
    pub fn new(key: &Jwk) -> Result<Self, JweError> {
        Ok(Self {
            encrypter: encrypter_for(key)?,
            kid: key.key_id().map(str::to_owned),
        })
    }

    /// Encrypts a signed JWT to this recipient; see [`encrypt`]. A `jti`
    /// is replicated into the protected header (RFC 7519 section 5.3), where
    /// the server finds it without decrypting the token.
    pub fn encrypt(&self, jws: &str, jti: Option<&str>) -> Result<String, JweError> {
        let mut header = JweHeader::new();
        header.set_content_type("JWT");
        header.set_content_encryption(CONTENT_ENCRYPTION);
        if let Some(kid) = &self.kid {
            header.set_key_id(kid);
        }
        if let Some(jti) = jti {
            header
                .set_claim("jti", Some(jti.into()))
                .map_err(|_| JweError::Invalid)?;
        }
        jwe::serialize_compact(jws.as_bytes(), &header, self.encrypter.as_ref())
            .map_err(|_| JweError::Invalid)
    }
}

/// Decrypts a JWE addressed to `private_key`, after checking its header
/// against the allow-list. Returns the inner JWT text.
pub fn decrypt(token: &str, private_key: &Jwk) -> Result<String, JweError> {
    let decrypter = decrypter_for(private_key)?;
    decrypt_with(token, decrypter.as_ref())
}

/// Decrypts a JWE with `decrypter` (one of Tessera's own keys, say), after
/// checking its header against the allow-list. Returns the inner JWT text.
pub fn decrypt_with(token: &str, decrypter: &dyn JweDecrypter) -> Result<String, JweError> {
    let wrapped_key_bytes = encrypted_key_len(token);
    let checked = std::cell::Cell::new(None);
    let outcome = jwe::deserialize_compact_with_selector(token, |header| {
        match check_header(header).and_then(|()| check_wrapped_key(header, wrapped_key_bytes)) {
            Ok(()) => Ok(Some(decrypter)),
            Err(reason) => {
                checked.set(Some(reason));
                Err(JoseError::InvalidJweFormat(anyhow::anyhow!(
                    "JWE header not allowed"
                )))
            }
        }
    });
    match (outcome, checked.get()) {
        (_, Some(reason)) => Err(reason),
        (Ok((payload, _)), None) => String::from_utf8(payload).map_err(|_| JweError::Invalid),
        (Err(_), None) => Err(JweError::Invalid),
    }
}

fn check_header(header: &JweHeader) -> Result<(), JweError> {
    let algorithm = header.algorithm().unwrap_or_default();
    if !KEY_MANAGEMENT_ALGORITHMS.contains(&algorithm) {
        return Err(JweError::HeaderNotAllowed("alg"));
    }
    if header.content_encryption() != Some(CONTENT_ENCRYPTION) {
        return Err(JweError::HeaderNotAllowed("enc"));
    }
    if header.compression().is_some() {
        return Err(JweError::HeaderNotAllowed("zip"));
    }
    if header.content_type() != Some("JWT") {
        return Err(JweError::HeaderNotAllowed("cty"));
    }
    Ok(())
}

/// Length of an A256GCM key after AES key wrap (RFC 3394): 32 bytes plus
/// the 8-byte integrity check value.
const WRAPPED_KEY_BYTES: usize = 40;

/// Returns the decoded length of the JWE Encrypted Key, the second part.
fn encrypted_key_len(token: &str) -> Option<usize> {
    let part = token.split('.').nth(1)?;
    URL_SAFE_NO_PAD.decode(part).ok().map(|key| key.len())
}

/// Rejects an `ECDH-ES+A256KW` encrypted key of any length but 40 bytes.
/// josekit 0.10.3 computes the unwrapped length as the wrapped length
/// minus 8 without a check, so a key shorter than 8 bytes panics there.
fn check_wrapped_key(header: &JweHeader, wrapped_key_bytes: Option<usize>) -> Result<(), JweError> {
    if header.algorithm() == Some("ECDH-ES+A256KW") && wrapped_key_bytes != Some(WRAPPED_KEY_BYTES)
    {
        return Err(JweError::Invalid);
    }
    Ok(())
}

fn encrypter_for(recipient: &Jwk) -> Result<Box<dyn JweEncrypter>, JweError> {
    let unsupported = || JweError::UnsupportedKey;
    let encrypter: Box<dyn JweEncrypter> = match key_management_for(recipient)? {
        "RSA-OAEP-256" => Box::new(
            jwe::RSA_OAEP_256
                .encrypter_from_jwk(recipient)
                .map_err(|_| unsupported())?,
        ),
        _ => match EcdhEsA256kwEncrypter::from_jwk(recipient) {
            Some(encrypter) => Box::new(encrypter),
            None if recipient.key_type() == "EC" => return Err(unsupported()),
            // X25519 and X448 keys (OKP) take josekit's encrypter.
            None => Box::new(
                jwe::ECDH_ES_A256KW
                    .encrypter_from_jwk(recipient)
                    .map_err(|_| unsupported())?,
            ),
        },
    };
    Ok(encrypter)
}

fn decrypter_for(private_key: &Jwk) -> Result<Box<dyn JweDecrypter>, JweError> {
    let unsupported = || JweError::UnsupportedKey;
    let decrypter: Box<dyn JweDecrypter> = match key_management_for(private_key)? {
        "RSA-OAEP-256" => Box::new(
            jwe::RSA_OAEP_256
                .decrypter_from_jwk(private_key)
                .map_err(|_| unsupported())?,
        ),
        _ => Box::new(
            jwe::ECDH_ES_A256KW
                .decrypter_from_jwk(private_key)
                .map_err(|_| unsupported())?,
        ),
    };
    Ok(decrypter)
}

#[cfg(test)]
mod tests {
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use josekit::jwk::alg::ecx::{EcxCurve, EcxKeyPair};
    use josekit::jwk::alg::rsa::RsaKeyPair;

    use super::*;

    const INNER: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

    fn key_pairs() -> Vec<(Jwk, Jwk)> {
        let mut pairs = Vec::new();
        let ec = EcKeyPair::generate(EcCurve::P256).unwrap();
        pairs.push((ec.to_jwk_public_key(), ec.to_jwk_private_key()));
        let ec384 = EcKeyPair::generate(EcCurve::P384).unwrap();
        pairs.push((ec384.to_jwk_public_key(), ec384.to_jwk_private_key()));
        let x25519 = EcxKeyPair::generate(EcxCurve::X25519).unwrap();
        pairs.push((x25519.to_jwk_public_key(), x25519.to_jwk_private_key()));
        let rsa = RsaKeyPair::generate(2048).unwrap();
        pairs.push((rsa.to_jwk_public_key(), rsa.to_jwk_private_key()));
        for (public, private) in &mut pairs {
            public.set_key_id("recipient-1");
            private.set_key_id("recipient-1");
        }
        pairs
    }

    fn header_of(token: &str) -> serde_json::Value {
        let first = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap()
    }

    /// Replaces the protected header, keeping the other four parts.
    fn with_header(token: &str, header: serde_json::Value) -> String {
        let rest: Vec<&str> = token.splitn(2, '.').collect();
        let encoded = URL_SAFE_NO_PAD.encode(header.to_string());
        format!("{encoded}.{}", rest[1])
    }

    #[test]
    fn round_trips_for_every_key_type() {
        for (public, private) in key_pairs() {
            let token = encrypt(INNER, &public).unwrap();
            assert_eq!(token.split('.').count(), 5);
            let header = header_of(&token);
            assert_eq!(header["cty"], "JWT");
            assert_eq!(header["kid"], "recipient-1");
            assert_eq!(header["enc"], "A256GCM");
            let expected = key_management_for(&public).unwrap();
            assert_eq!(header["alg"], expected);
            assert!(header.get("zip").is_none());
            assert_eq!(decrypt(&token, &private).unwrap(), INNER);
        }
    }

    #[test]
    fn other_recipient_cannot_decrypt() {
        let pairs = key_pairs();
        let token = encrypt(INNER, &pairs[0].0).unwrap();
        let other = EcKeyPair::generate(EcCurve::P256)
            .unwrap()
            .to_jwk_private_key();
        assert!(matches!(decrypt(&token, &other), Err(JweError::Invalid)));
    }

    #[test]
    fn disallowed_headers_are_refused_before_decrypting() {
        let pairs = key_pairs();
        let (public, private) = &pairs[0];
        let token = encrypt(INNER, public).unwrap();
        let header = header_of(&token);
        let cases = [
            ("alg", serde_json::json!("RSA1_5"), "alg"),
            ("alg", serde_json::json!("dir"), "alg"),
            ("alg", serde_json::json!("A256KW"), "alg"),
            ("enc", serde_json::json!("A128CBC-HS256"), "enc"),
            ("zip", serde_json::json!("DEF"), "zip"),
            ("cty", serde_json::json!("json"), "cty"),
        ];
        for (member, value, reason) in cases {
            let mut changed = header.clone();
            changed[member] = value;
            let err = decrypt(&with_header(&token, changed), private).unwrap_err();
            assert!(
                matches!(err, JweError::HeaderNotAllowed(found) if found == reason),
                "{member}: {err:?}"
            );
        }
    }

    #[test]
    fn real_rsa1_5_and_compressed_tokens_are_rejected() {
        let rsa = RsaKeyPair::generate(2048).unwrap();
        let private = rsa.to_jwk_private_key();
        let mut header = JweHeader::new();
        header.set_content_type("JWT");
        header.set_content_encryption(CONTENT_ENCRYPTION);
        // Deprecated in josekit for the padding-oracle attack this test is about.
        #[allow(deprecated)]
        let encrypter = jwe::RSA1_5
            .encrypter_from_jwk(&rsa.to_jwk_public_key())
            .unwrap();
        let token = jwe::serialize_compact(INNER.as_bytes(), &header, &encrypter).unwrap();
        let err = decrypt(&token, &private).unwrap_err();
        assert!(matches!(err, JweError::HeaderNotAllowed("alg")), "{err:?}");

        let pairs = key_pairs();
        let (public, private) = &pairs[0];
        let encrypter = jwe::ECDH_ES_A256KW.encrypter_from_jwk(public).unwrap();
        header.set_compression("DEF");
        let token = jwe::serialize_compact(INNER.as_bytes(), &header, &encrypter).unwrap();
        let err = decrypt(&token, private).unwrap_err();
        assert!(matches!(err, JweError::HeaderNotAllowed("zip")), "{err:?}");
    }

    #[test]
    fn missing_content_type_is_rejected() {
        let pairs = key_pairs();
        let (public, private) = &pairs[0];
        let token = encrypt(INNER, public).unwrap();
        let mut header = header_of(&token);
        header.as_object_mut().unwrap().remove("cty");
        let err = decrypt(&with_header(&token, header), private).unwrap_err();
        assert!(matches!(err, JweError::HeaderNotAllowed("cty")), "{err:?}");
    }

    /// The invalid-curve attack: an `epk` off the recipient's curve would
    /// reveal the private key bit by bit to a decrypter that skipped the
    /// point check.
    #[test]
    fn ephemeral_key_off_the_curve_does_not_decrypt() {
        let pairs = key_pairs();
        let (public, private) = &pairs[0];
        let token = encrypt(INNER, public).unwrap();
        let mut one = [0u8; 32];
        one[31] = 1;
        for (x, y) in [([0u8; 32], one), (one, one), ([0xff; 32], [0xff; 32])] {
            let mut header = header_of(&token);
            header["epk"]["x"] = serde_json::json!(URL_SAFE_NO_PAD.encode(x));
            header["epk"]["y"] = serde_json::json!(URL_SAFE_NO_PAD.encode(y));
            let err = decrypt(&with_header(&token, header), private).unwrap_err();
            assert!(matches!(err, JweError::Invalid), "{err:?}");
        }
    }

    #[test]
    fn malformed_input_is_invalid() {
        let pairs = key_pairs();
        for input in ["", "a.b.c", "a.b.c.d.e", "....", INNER] {
            assert!(decrypt(input, &pairs[0].1).is_err(), "{input}");
        }
    }

    #[test]
    fn short_wrapped_key_is_invalid() {
        let pairs = key_pairs();
        let (public, private) = &pairs[0];
        let token = encrypt(INNER, public).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        for length in [0, 6, 8, 16, 32, 48] {
            let key = URL_SAFE_NO_PAD.encode(vec![7u8; length]);
            let changed = [parts[0], &key, parts[2], parts[3], parts[4]].join(".");
            let err = decrypt(&changed, private).unwrap_err();
            assert!(matches!(err, JweError::Invalid), "{length}: {err:?}");
        }
    }

    #[test]
    fn symmetric_key_cannot_receive_tokens() {
        let key = Jwk::new("oct");
        assert!(matches!(
            encrypt(INNER, &key),
            Err(JweError::UnsupportedKey)
        ));
    }
}
