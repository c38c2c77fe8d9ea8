//! Tessera: an OAuth 2.0 / OpenID Connect authorization server whose access
//! tokens are encrypted to the resource server they are meant for.

pub mod accounts;
pub mod audit;
pub mod authorizations;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod crypto;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod keys;
pub mod maintenance;
pub mod oauth;
pub mod oidc;
pub mod public_keys;
pub mod registry;
pub mod resources;
pub mod secret;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tokens;
