//! Integration tests: one binary, real servers on port 0, real PostgreSQL
//! and SQLite, a fresh database per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod browser;
mod cli;
mod compose;
mod harness;
mod login;
mod server;
mod store_conformance;
