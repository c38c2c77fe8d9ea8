//! Token formats: access tokens with their JWE layer and its cached
//! encrypters, and ID tokens.

pub mod access;
pub mod id_token;
pub mod jwe;
pub mod recipients;
