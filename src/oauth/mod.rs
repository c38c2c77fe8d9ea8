//! OAuth 2.0 endpoints and the protocol rules they apply, each rule
//! testable without HTTP.

pub mod assertion;
pub mod authorize;
pub mod credentials;
pub mod grants;
pub mod register;
pub mod scope;
