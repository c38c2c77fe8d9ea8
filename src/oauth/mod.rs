//! OAuth endpoints.

pub mod register;
