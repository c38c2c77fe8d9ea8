//! Token formats: the JWE layer of access tokens and, later, access-token
//! minting and ID tokens.

pub mod access;
pub mod id_token;
pub mod jwe;
