//! Public keys that clients and resource servers register: checks that a
//! JWK or JWK Set holds only usable public keys, and RFC 7638 thumbprints.
//!
//! Private or symmetric key material is rejected rather than stripped, so an
//! operator learns that a private key reached a file it should never have
//! been in (RFC 7517 section 9.2). The same checks run on keys given to the
//! CLI, registered through `POST /register`, and fetched from a `jwks_uri`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use curve25519_dalek::edwards::CompressedEdwardsY;
use josekit::jwk::Jwk;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

mod fetch;

pub use fetch::{url_allowed, FetchError, KeySetFetcher, FETCH_COOLDOWN};

/// JWK members that only a private or symmetric key has (RFC 7518 section 6).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Maximum `kid` length accepted, in bytes. RFC 7517 sets no limit, but a
/// resource server's `kid` goes into the header of each token encrypted to
/// it, and the tokens must stay within the endpoints' request limits.
const MAX_KID_BYTES: usize = 1024;

/// Smallest RSA modulus accepted, in bits (RFC 7518 section 3.3).
pub const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted, in bits, as in ring's
/// `RSA_PKCS1_2048_8192_*` verification algorithms. OpenSSL itself refuses
/// moduli over 16,384 bits.
const MAX_RSA_BITS: usize = 8192;

/// Purpose of a registered key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Verifying a client's `private_key_jwt` assertions.
    Signature,
    /// Encrypting access tokens to a resource server.
    Encryption,
}

impl KeyPurpose {
    fn use_value(self) -> &'static str {
        match self {
            KeyPurpose::Signature => "sig",
            KeyPurpose::Encryption => "enc",
        }
    }
}

/// A key that cannot be registered, with the reason in words an operator
/// can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn reject(message: impl Into<String>) -> KeyError {
    KeyError(message.into())
}

/// Finds private or symmetric material in any key of a JWK Set, whatever
/// the key's purpose; returns the reason it is rejected.
pub fn secret_material(set: &Value) -> Option<KeyError> {
    let keys = set.get("keys").and_then(Value::as_array)?;
    keys.iter().enumerate().find_map(|(index, key)| {
        let members = key.as_object()?;
        let private = PRIVATE_MEMBERS
            .iter()
            .find(|member| members.contains_key(**member));
        let symmetric = members.get("kty").and_then(Value::as_str) == Some("oct");
        match (private, symmetric) {
            (Some(member), _) => Some(reject(format!(
                "key {index} of the JWK Set contains the private member \"{member}\""
            ))),
            (None, true) => Some(reject(format!(
                "key {index} of the JWK Set is a symmetric key (kty \"oct\")"
            ))),
            (None, false) => None,
        }
    })
}

/// Returns the purpose an `alg` value belongs to, if it names a JWS or a
/// JWE key-management algorithm.
pub fn alg_purpose(alg: &str) -> Option<KeyPurpose> {
    const JWE_PREFIXES: &[&str] = &[
        "RSA-OAEP", "RSA1_5", "ECDH-ES", "A128", "A192", "A256", "PBES2", "dir",
    ];
    const JWS_PREFIXES: &[&str] = &["RS", "PS", "ES", "HS", "EdDSA"];
    if JWE_PREFIXES.iter().any(|prefix| alg.starts_with(prefix)) {
        Some(KeyPurpose::Encryption)
    } else if JWS_PREFIXES.iter().any(|prefix| alg.starts_with(prefix)) {
        Some(KeyPurpose::Signature)
    } else {
        None
    }
}

/// Checks one public JWK for `purpose` and returns it, with its RFC 7638
/// thumbprint as `kid` when it has none.
pub fn check_public_jwk(jwk: &Value, purpose: KeyPurpose) -> Result<Map<String, Value>, KeyError> {
    let Value::Object(members) = jwk else {
        return Err(reject("a JWK must be a JSON object"));
    };
    if let Some(member) = PRIVATE_MEMBERS
        .iter()
        .find(|member| members.contains_key(**member))
    {
        return Err(reject(format!(
            "the key contains the private member \"{member}\"; register the public key only \
             (the private half must stay with its owner)"
        )));
    }
    let kty = string_member(members, "kty")?.unwrap_or_default();
    if kty == "oct" {
        return Err(reject(
            "symmetric keys (kty \"oct\") are not accepted; register a public RSA, EC or OKP key",
        ));
    }
    if let Some(key_use) = string_member(members, "use")? {
        if key_use != purpose.use_value() {
            return Err(reject(format!(
                "the key has \"use\": \"{key_use}\" but must be usable for \"{}\"",
                purpose.use_value()
            )));
        }
    }
    let alg = string_member(members, "alg")?;
    check_alg(alg, purpose)?;
    match kty {
        "RSA" => check_rsa(members)?,
        "EC" => check_curve(members, purpose, &[("P-256", 32), ("P-384", 48)], true)?,
        "OKP" => {
            let curve = match purpose {
                KeyPurpose::Signature => ("Ed25519", 32),
                KeyPurpose::Encryption => ("X25519", 32),
            };
            check_curve(members, purpose, &[curve], false)?;
            if purpose == KeyPurpose::Signature {
                check_ed25519_point(members)?;
            }
        }
        "" => return Err(reject("the key has no \"kty\"")),
        other => {
            return Err(reject(format!(
                "unsupported key type \"{other}\"; use RSA, EC or OKP"
            )))
        }
    }
    let mut checked = members.clone();
    match string_member(members, "kid")? {
        Some("") => return Err(reject("the key has an empty \"kid\"")),
        Some(kid) if kid.len() > MAX_KID_BYTES => {
            return Err(reject(format!(
                "the key's \"kid\" is {} bytes long; use at most {MAX_KID_BYTES}",
                kid.len()
            )))
        }
        Some(_) => {}
        None => {
            checked.insert("kid".into(), Value::String(thumbprint(members)?));
        }
    }
    check_usable(&checked, purpose)?;
    Ok(checked)
}

/// Checks a JWK Set (`{"keys": [...]}`) for `purpose`: at least one key,
/// each public and usable, `kid`s distinct. Returns the set with a `kid` on
/// every key.
pub fn check_public_jwks(set: &Value, purpose: KeyPurpose) -> Result<Value, KeyError> {
    let keys = set
        .as_object()
        .and_then(|members| members.get("keys"))
        .and_then(Value::as_array)
        .ok_or_else(|| reject("a JWK Set must be an object with a \"keys\" array"))?;
    if keys.is_empty() {
        return Err(reject("the JWK Set has no keys"));
    }
    let mut checked = Vec::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        let key = check_public_jwk(key, purpose)
            .map_err(|err| reject(format!("key {index} of the JWK Set: {err}")))?;
        let kid = key.get("kid").cloned();
        if checked
            .iter()
            .any(|other: &Map<String, Value>| other.get("kid") == kid.as_ref())
        {
            return Err(reject(format!(
                "key {index} of the JWK Set repeats the kid of an earlier key"
            )));
        }
        checked.push(key);
    }
    let keys: Vec<Value> = checked.into_iter().map(Value::Object).collect();
    Ok(serde_json::json!({ "keys": keys }))
}

/// Reads a key file given to the CLI: one public JWK or a JWK Set. Returns
/// the checked keys, each with a `kid`.
pub fn read_key_file(text: &str, purpose: KeyPurpose) -> Result<Vec<Value>, KeyError> {
    if text.contains("-----BEGIN") {
        let kind = if text.contains("PRIVATE KEY") {
            "a PEM private key"
        } else {
            "PEM"
        };
        return Err(reject(format!(
            "the file contains {kind}; give the public key as a JWK or JWK Set (JSON)"
        )));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|err| reject(format!("the file is not a JSON JWK or JWK Set: {err}")))?;
    if value.get("keys").is_some() {
        let set = check_public_jwks(&value, purpose)?;
        Ok(set
            .get("keys")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    } else {
        Ok(vec![Value::Object(check_public_jwk(&value, purpose)?)])
    }
}

/// Computes the RFC 7638 JWK thumbprint (SHA-256, base64url): the digest of
/// the key's required members in lexicographic order, without whitespace.
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<String, KeyError> {
    let required: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => return Err(reject("cannot compute a thumbprint for this key type")),
    };
    // Each `required` list is sorted, so the members come out in the
    // lexicographic order RFC 7638 section 3 requires, whether the Map
    // sorts its keys or keeps insertion order (serde_json's preserve_order).
    let mut canonical = Map::new();
    for member in required {
        let value = jwk
            .get(*member)
            .and_then(Value::as_str)
            .ok_or_else(|| reject(format!("the key has no \"{member}\"")))?;
        canonical.insert((*member).to_owned(), Value::String(value.to_owned()));
    }
    let text = Value::Object(canonical).to_string();
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes())))
}

fn string_member<'a>(
    members: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, KeyError> {
    match members.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(reject(format!(
            "the key member \"{name}\" must be a string"
        ))),
    }
}

fn check_alg(alg: Option<&str>, purpose: KeyPurpose) -> Result<(), KeyError> {
    let Some(alg) = alg else {
        return Ok(());
    };
    let allowed: &[&str] = match purpose {
        KeyPurpose::Signature => &[
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ],
        KeyPurpose::Encryption => &["RSA-OAEP-256", "ECDH-ES+A256KW"],
    };
    if alg == "RSA1_5" {
        return Err(reject(
            "\"alg\": \"RSA1_5\" is not accepted (RSAES-PKCS1-v1_5 is open to padding-oracle \
             attacks); use RSA-OAEP-256",
        ));
    }
    if !allowed.contains(&alg) {
        return Err(reject(format!(
            "\"alg\": \"{alg}\" is not accepted here; use one of {}",
            allowed.join(", ")
        )));
    }
    Ok(())
}

fn decode_member(members: &Map<String, Value>, name: &str) -> Result<Vec<u8>, KeyError> {
    let text = string_member(members, name)?
        .ok_or_else(|| reject(format!("the key has no \"{name}\"")))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| reject(format!("the key member \"{name}\" is not base64url")))
}

fn check_rsa(members: &Map<String, Value>) -> Result<(), KeyError> {
    let modulus = decode_member(members, "n")?;
    let exponent = decode_member(members, "e")?;
    let leading_zeros = modulus.iter().take_while(|byte| **byte == 0).count();
    let significant = &modulus[leading_zeros..];
    let bits = match significant.first() {
        Some(first) => significant.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    };
    if bits < MIN_RSA_BITS {
        return Err(reject(format!(
            "the RSA key has a {bits}-bit modulus; at least {MIN_RSA_BITS} bits are required"
        )));
    }
    if bits > MAX_RSA_BITS {
        return Err(reject(format!(
            "the RSA key has a {bits}-bit modulus; at most {MAX_RSA_BITS} bits are accepted"
        )));
    }
    // A product of two odd primes is odd.
    if significant.last().is_some_and(|byte| byte % 2 == 0) {
        return Err(reject(
            "the RSA key's modulus \"n\" is even, so it is not a product of two primes",
        ));
    }
    if exponent.is_empty() {
        return Err(reject("the RSA key has an empty exponent \"e\""));
    }
    // NIST SP 800-56B section 6.2.1: an odd public exponent of at least
    // 65537 and below 2^256. With e = 1 the "encryption" returns its input,
    // and other small exponents invite known attacks. OpenSSL refuses
    // exponents over 64 bits for moduli over 3,072 bits, so the bound here
    // is 2^64.
    let exponent = &exponent[exponent.iter().take_while(|byte| **byte == 0).count()..];
    let too_small = exponent.len() < 3 || (exponent.len() == 3 && exponent < &[1, 0, 1][..]);
    let too_large = exponent.len() > 8;
    let even = exponent.last().is_some_and(|byte| byte % 2 == 0);
    if too_small || too_large || even {
        return Err(reject(
            "the RSA key's exponent \"e\" must be odd, at least 65537 (AQAB) and below 2^64",
        ));
    }
    Ok(())
}

fn check_curve(
    members: &Map<String, Value>,
    purpose: KeyPurpose,
    curves: &[(&str, usize)],
    has_y: bool,
) -> Result<(), KeyError> {
    let crv = string_member(members, "crv")?.unwrap_or_default();
    let Some((_, length)) = curves.iter().find(|(name, _)| *name == crv) else {
        let names: Vec<&str> = curves.iter().map(|(name, _)| *name).collect();
        return Err(reject(format!(
            "curve \"{crv}\" is not accepted for {} keys; use {}",
            purpose.use_value(),
            names.join(" or ")
        )));
    };
    let mut coordinates = vec!["x"];
    if has_y {
        coordinates.push("y");
    }
    for coordinate in coordinates {
        let decoded_length = decode_member(members, coordinate)?.len();
        if decoded_length != *length {
            return Err(reject(format!(
                "the key member \"{coordinate}\" must be {length} bytes for curve {crv}, \
                 not {decoded_length}"
            )));
        }
    }
    Ok(())
}

/// Checks that an Ed25519 key's `x` is the canonical encoding of a curve
/// point outside the small subgroup. OpenSSL's verification accepts a
/// signature with R the identity and S zero under the identity key, so a
/// key of small order would let anyone sign as the client.
pub fn check_ed25519_point(members: &Map<String, Value>) -> Result<(), KeyError> {
    let encoded: [u8; 32] = decode_member(members, "x")?
        .try_into()
        .map_err(|_| reject("the key member \"x\" must be 32 bytes for curve Ed25519"))?;
    let point = CompressedEdwardsY(encoded)
        .decompress()
        .filter(|point| point.compress().to_bytes() == encoded)
        .ok_or_else(|| {
            reject(
                "the key's \"x\" is not the encoding of a point on curve Ed25519 \
                 (export the public key again from its private key)",
            )
        })?;
    if point.is_small_order() {
        return Err(reject(
            "the key's \"x\" is a point of small order on curve Ed25519, \
             under which anyone can forge signatures",
        ));
    }
    Ok(())
}

/// Builds a josekit encrypter or verifier from the key, which also checks
/// that an EC point lies on its curve, and encrypts a test payload to an
/// encryption key.
fn check_usable(members: &Map<String, Value>, purpose: KeyPurpose) -> Result<(), KeyError> {
    let jwk = Jwk::from_map(members.clone())
        .map_err(|err| reject(format!("the key is not usable: {err}")))?;
    let kty = jwk.key_type().to_owned();
    let crv = jwk.curve().unwrap_or_default().to_owned();
    let unusable = |err: josekit::JoseError| {
        if kty == "EC" && is_openssl_error(&err) {
            reject(format!(
                "the key's \"x\" and \"y\" are not a point on curve {crv} \
                 (export the public key again from its private key)"
            ))
        } else {
            reject(format!("the key is not usable: {err}"))
        }
    };
    match (purpose, kty.as_str()) {
        (KeyPurpose::Encryption, "RSA") => {
            let encrypter = josekit::jwe::RSA_OAEP_256
                .encrypter_from_jwk(&jwk)
                .map_err(unusable)?;
            check_encrypts(&encrypter)?;
        }
        (KeyPurpose::Encryption, _) => {
            let encrypter = josekit::jwe::ECDH_ES_A256KW
                .encrypter_from_jwk(&jwk)
                .map_err(unusable)?;
            check_encrypts(&encrypter)?;
        }
        (KeyPurpose::Signature, "RSA") => {
            let alg = jwk.algorithm().unwrap_or("RS256").to_owned();
            if alg.starts_with("PS") {
                rsa_pss(&alg).verifier_from_jwk(&jwk).map_err(unusable)?;
            } else {
                rsa_pkcs1(&alg).verifier_from_jwk(&jwk).map_err(unusable)?;
            }
        }
        (KeyPurpose::Signature, "EC") => {
            let algorithm = if crv == "P-384" {
                josekit::jws::ES384
            } else {
                josekit::jws::ES256
            };
            algorithm.verifier_from_jwk(&jwk).map_err(unusable)?;
        }
        (KeyPurpose::Signature, _) => {
            josekit::jws::EdDSA
                .verifier_from_jwk(&jwk)
                .map_err(unusable)?;
        }
    }
    Ok(())
}

/// Returns whether josekit failed in OpenSSL rather than in its own checks
/// of `use`, `key_ops` and `alg`. For an EC key whose curve and coordinate
/// lengths passed [`check_curve`], the one OpenSSL step is decoding the
/// point, which fails with an X.509 decode error when the point is not on
/// the curve.
fn is_openssl_error(error: &josekit::JoseError) -> bool {
    matches!(error, josekit::JoseError::InvalidKeyFormat(source)
        if source.downcast_ref::<openssl::error::ErrorStack>().is_some())
}

/// Encrypts a test payload to the key, so that a key whose numbers pass
/// every check above but cannot encrypt (an X25519 point of small order,
/// say) is rejected now rather than failing each token issued for it.
fn check_encrypts(encrypter: &dyn josekit::jwe::JweEncrypter) -> Result<(), KeyError> {
    let mut header = josekit::jwe::JweHeader::new();
    header.set_content_encryption("A256GCM");
    josekit::jwe::serialize_compact(b"{}", &header, encrypter)
        .map(|_| ())
        .map_err(|_| {
            reject(
                "encrypting a test token to the key failed \
                 (export the public key again from its private key)",
            )
        })
}

fn rsa_pkcs1(alg: &str) -> josekit::jws::alg::rsassa::RsassaJwsAlgorithm {
    match alg {
        "RS384" => josekit::jws::RS384,
        "RS512" => josekit::jws::RS512,
        _ => josekit::jws::RS256,
    }
}

fn rsa_pss(alg: &str) -> josekit::jws::alg::rsassa_pss::RsassaPssJwsAlgorithm {
    match alg {
        "PS384" => josekit::jws::PS384,
        "PS512" => josekit::jws::PS512,
        _ => josekit::jws::PS256,
    }
}

#[cfg(test)]
mod tests;
