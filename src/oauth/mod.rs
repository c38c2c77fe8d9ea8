//! OAuth 2.0 endpoints and the protocol rules they apply, each rule
//! testable without HTTP.

pub mod assertion;
pub mod authorize;
pub mod client_auth;
pub mod credentials;
pub mod discovery;
pub mod grants;
pub mod introspect;
pub mod lifetimes;
pub mod register;
pub mod resource;
pub mod revoke;
pub mod scope;
pub mod token;
