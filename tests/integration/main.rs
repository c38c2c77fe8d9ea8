//! Integration tests: one binary, real servers on port 0, real PostgreSQL
//! and SQLite, a fresh database per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_cli;
mod attacks;
mod audit;
mod authorize;
mod backup;
mod browser;
mod cli;
mod client_assertions;
mod client_ip;
mod compose;
mod contention;
mod cors;
mod discovery;
mod fuzz_corpus;
mod harness;
mod instances;
mod interop;
mod introspection;
mod jwks;
mod key_sets;
mod key_store;
mod keys;
mod keys_cli;
mod lifecycle;
mod lifetimes;
mod login;
mod master_key_rotation;
mod metrics;
mod oauth_support;
mod oidc;
mod outage;
mod rate_limits;
mod registration;
mod registry;
mod relying_party;
mod request_limits;
mod resource_server;
mod server;
mod storage_faults;
mod store_conformance;
mod tls;
mod token;
