//! Token formats: access tokens with their JWE layer and its cached
//! encrypters, and ID tokens.

pub mod access;
mod ecdh_es;
pub mod id_token;
pub mod jwe;
pub mod recipients;
