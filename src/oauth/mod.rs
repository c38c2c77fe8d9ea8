//! OAuth 2.0 protocol rules, testable without HTTP, and later the
//! endpoints that apply them.

pub mod assertion;
pub mod credentials;
pub mod scope;
