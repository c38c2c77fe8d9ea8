use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ecx::EcxCurve;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jwk::Jwk;
use serde_json::{json, Value};

use super::*;

fn to_value(jwk: &Jwk) -> Value {
    Value::Object(jwk.as_ref().clone())
}

fn ec_pair() -> (Value, Value) {
    let private = Jwk::generate_ec_key(EcCurve::P256).unwrap();
    let public = private.to_public_key().unwrap();
    (to_value(&private), to_value(&public))
}

fn rfc7638_key() -> Value {
    serde_json::from_str(include_str!("../../tests/fixtures/rfc7638-rsa.json")).unwrap()
}

#[test]
fn thumbprint_matches_rfc7638_example() {
    let key = rfc7638_key();
    let thumbprint = thumbprint(key.as_object().unwrap()).unwrap();
    assert_eq!(thumbprint, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

#[test]
fn key_without_kid_gets_its_thumbprint() {
    let (_, public) = ec_pair();
    let checked = check_public_jwk(&public, KeyPurpose::Encryption).unwrap();
    let expected = thumbprint(public.as_object().unwrap()).unwrap();
    assert_eq!(checked["kid"], json!(expected));
}

#[test]
fn long_kid_is_rejected() {
    let (_, mut public) = ec_pair();
    public["kid"] = json!("k".repeat(1024));
    assert!(check_public_jwk(&public, KeyPurpose::Encryption).is_ok());
    public["kid"] = json!("k".repeat(1025));
    let err = check_public_jwk(&public, KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("1025 bytes long; use at most 1024"), "{err}");
}

#[test]
fn public_keys_of_each_type_are_accepted() {
    let (_, ec) = ec_pair();
    assert!(check_public_jwk(&ec, KeyPurpose::Encryption).is_ok());
    assert!(check_public_jwk(&ec, KeyPurpose::Signature).is_ok());

    let p384 = Jwk::generate_ec_key(EcCurve::P384).unwrap();
    let p384 = to_value(&p384.to_public_key().unwrap());
    assert!(check_public_jwk(&p384, KeyPurpose::Encryption).is_ok());

    let x25519 = Jwk::generate_ecx_key(EcxCurve::X25519).unwrap();
    let x25519 = to_value(&x25519.to_public_key().unwrap());
    assert!(check_public_jwk(&x25519, KeyPurpose::Encryption).is_ok());
    assert!(check_public_jwk(&x25519, KeyPurpose::Signature).is_err());

    let ed25519 = Jwk::generate_ed_key(EdCurve::Ed25519).unwrap();
    let ed25519 = to_value(&ed25519.to_public_key().unwrap());
    assert!(check_public_jwk(&ed25519, KeyPurpose::Signature).is_ok());
    assert!(check_public_jwk(&ed25519, KeyPurpose::Encryption).is_err());

    let rsa = rfc7638_key();
    assert!(check_public_jwk(&rsa, KeyPurpose::Signature).is_ok());
}

#[test]
fn private_members_are_rejected() {
    let (private, _) = ec_pair();
    let err = check_public_jwk(&private, KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("private member \"d\""), "{err}");

    let rsa = Jwk::generate_rsa_key(2048).unwrap();
    let err = check_public_jwk(&to_value(&rsa), KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("private member"), "{err}");
}

#[test]
fn symmetric_keys_are_rejected() {
    let oct = json!({ "kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" });
    let err = check_public_jwk(&oct, KeyPurpose::Signature).unwrap_err();
    assert!(err.0.contains("private member \"k\""), "{err}");

    let oct_without_k = json!({ "kty": "oct" });
    let err = check_public_jwk(&oct_without_k, KeyPurpose::Signature).unwrap_err();
    assert!(err.0.contains("symmetric"), "{err}");
}

#[test]
fn weak_rsa_key_is_rejected() {
    let weak = Jwk::generate_rsa_key(1024)
        .unwrap()
        .to_public_key()
        .unwrap();
    let err = check_public_jwk(&to_value(&weak), KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("1024-bit"), "{err}");
}

#[test]
fn small_or_even_rsa_exponents_are_rejected() {
    // "AQ" is 1, "Aw" is 3, "AQAA" is 65536 (even), "AP__" is 65535.
    for exponent in ["AQ", "Aw", "AQAA", "AP__", "AAE"] {
        let mut key = rfc7638_key();
        key["e"] = json!(exponent);
        let err = check_public_jwk(&key, KeyPurpose::Signature).unwrap_err();
        assert!(err.0.contains("at least 65537"), "{exponent}: {err}");
    }
    for exponent in ["AQAB", "AAEAAQ", "AQAAAQ"] {
        let mut key = rfc7638_key();
        key["e"] = json!(exponent);
        assert!(
            check_public_jwk(&key, KeyPurpose::Signature).is_ok(),
            "{exponent}"
        );
    }
}

#[test]
fn rsa1_5_is_rejected() {
    let mut key = rfc7638_key();
    key["alg"] = json!("RSA1_5");
    let err = check_public_jwk(&key, KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("RSA1_5"), "{err}");
    assert!(err.0.contains("RSA-OAEP-256"), "{err}");
}

#[test]
fn wrong_use_is_rejected() {
    let (_, mut public) = ec_pair();
    public["use"] = json!("sig");
    let err = check_public_jwk(&public, KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("\"use\": \"sig\""), "{err}");
}

#[test]
fn point_off_the_curve_is_rejected() {
    let (_, mut public) = ec_pair();
    // A y coordinate of the right length that does not fit x.
    public["y"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for purpose in [KeyPurpose::Encryption, KeyPurpose::Signature] {
        let err = check_public_jwk(&public, purpose).unwrap_err();
        assert!(err.0.contains("not a point on curve P-256"), "{err}");
    }
}

#[test]
fn short_coordinate_names_both_lengths() {
    let (_, mut public) = ec_pair();
    public["y"] = json!("AA");
    let err = check_public_jwk(&public, KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("\"y\" must be 32 bytes"), "{err}");
    assert!(err.0.contains("not 1"), "{err}");
}

#[test]
fn wrong_alg_keeps_its_own_message() {
    let (_, mut public) = ec_pair();
    public["alg"] = json!("ES384");
    let err = check_public_jwk(&public, KeyPurpose::Signature).unwrap_err();
    assert!(err.0.contains("ES384"), "{err}");
    assert!(!err.0.contains("not a point"), "{err}");
}

#[test]
fn wrong_key_ops_keeps_its_own_message() {
    let (_, mut public) = ec_pair();
    public["key_ops"] = json!(["sign"]);
    let err = check_public_jwk(&public, KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("key_ops"), "{err}");
    assert!(!err.0.contains("not a point"), "{err}");
}

#[test]
fn even_rsa_modulus_is_rejected() {
    let mut key = rfc7638_key();
    let mut modulus = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    *modulus.last_mut().unwrap() &= 0xfe;
    key["n"] = json!(URL_SAFE_NO_PAD.encode(&modulus));
    let err = check_public_jwk(&key, KeyPurpose::Signature).unwrap_err();
    assert!(err.0.contains("is even"), "{err}");
}

#[test]
fn oversized_rsa_modulus_is_rejected() {
    let mut key = rfc7638_key();
    let mut modulus = vec![0xff; 8192 / 8 + 1];
    *modulus.last_mut().unwrap() = 0x01;
    key["n"] = json!(URL_SAFE_NO_PAD.encode(&modulus));
    let err = check_public_jwk(&key, KeyPurpose::Signature).unwrap_err();
    assert!(err.0.contains("at most 8192 bits"), "{err}");
}

#[test]
fn huge_rsa_exponent_is_rejected() {
    // 2^64 + 1 and 2^256 + 1: odd, but 9 and 33 bytes long. OpenSSL refuses
    // exponents over 64 bits once the modulus has more than 3,072.
    for length in [9, 33] {
        let mut key = rfc7638_key();
        let mut exponent = vec![0; length];
        exponent[0] = 1;
        exponent[length - 1] = 1;
        key["e"] = json!(URL_SAFE_NO_PAD.encode(&exponent));
        let err = check_public_jwk(&key, KeyPurpose::Signature).unwrap_err();
        assert!(err.0.contains("below 2^64"), "{length} bytes: {err}");
    }
}

#[test]
fn ed25519_identity_point_is_rejected() {
    let key = Jwk::generate_ed_key(EdCurve::Ed25519).unwrap();
    let mut public = to_value(&key.to_public_key().unwrap());
    // The identity point (0, 1) encodes as y = 1.
    let mut x = [0u8; 32];
    x[0] = 1;
    public["x"] = json!(URL_SAFE_NO_PAD.encode(x));
    let err = check_public_jwk(&public, KeyPurpose::Signature).unwrap_err();
    assert!(err.0.contains("small order"), "{err}");
}

#[test]
fn ed25519_bad_encodings_are_rejected() {
    let key = Jwk::generate_ed_key(EdCurve::Ed25519).unwrap();
    let mut public = to_value(&key.to_public_key().unwrap());
    // No curve point has y = 2. y = p + 1, with p = 2^255 - 19, is the
    // identity point written without reducing y.
    let mut not_on_curve = [0u8; 32];
    not_on_curve[0] = 2;
    let mut unreduced = [0xffu8; 32];
    unreduced[0] = 0xee;
    unreduced[31] = 0x7f;
    for x in [not_on_curve, unreduced] {
        public["x"] = json!(URL_SAFE_NO_PAD.encode(x));
        let err = check_public_jwk(&public, KeyPurpose::Signature).unwrap_err();
        assert!(err.0.contains("not the encoding of a point"), "{err}");
    }
}

#[test]
fn x25519_point_of_small_order_is_rejected() {
    let key = Jwk::generate_ecx_key(EcxCurve::X25519).unwrap();
    let mut public = to_value(&key.to_public_key().unwrap());
    // u = 0 and u = 1 have small order, so every shared secret is fixed.
    for u in [0u8, 1] {
        let mut x = [0u8; 32];
        x[0] = u;
        public["x"] = json!(URL_SAFE_NO_PAD.encode(x));
        let err = check_public_jwk(&public, KeyPurpose::Encryption).unwrap_err();
        assert!(err.0.contains("encrypting a test token"), "u = {u}: {err}");
    }
}

#[test]
fn key_file_accepts_one_jwk_or_a_set() {
    let (_, public) = ec_pair();
    let one = read_key_file(&public.to_string(), KeyPurpose::Encryption).unwrap();
    assert_eq!(one.len(), 1);
    let (_, other) = ec_pair();
    let set = json!({ "keys": [public, other] });
    let two = read_key_file(&set.to_string(), KeyPurpose::Encryption).unwrap();
    assert_eq!(two.len(), 2);
}

#[test]
fn key_file_with_a_private_key_is_rejected() {
    let (private, public) = ec_pair();
    let mixed = json!({ "keys": [public, private] });
    let err = read_key_file(&mixed.to_string(), KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("key 1 of the JWK Set"), "{err}");
    assert!(err.0.contains("private member"), "{err}");

    let pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
    let err = read_key_file(pem, KeyPurpose::Encryption).unwrap_err();
    assert!(err.0.contains("PEM private key"), "{err}");
}

#[test]
fn repeated_kids_are_rejected() {
    let (_, mut first) = ec_pair();
    let (_, mut second) = ec_pair();
    first["kid"] = json!("k1");
    second["kid"] = json!("k1");
    let set = json!({ "keys": [first, second] });
    let err = check_public_jwks(&set, KeyPurpose::Signature).unwrap_err();
    assert!(err.0.contains("repeats the kid"), "{err}");
}
