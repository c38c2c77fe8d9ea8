//! A calendar API that accepts Tessera's access tokens: a resource server.
//!
//! Tessera encrypts each access token (JWE) to the public key registered
//! with `tessera resources create`, around a JWT (`typ: at+jwt`) signed
//! with a key from Tessera's JWK Set. This server decrypts with its private
//! key, verifies the signature and claims, and checks each route's scope.
//!
//! ```sh
//! cargo run --example resource_server -- generate-key --out calendar.jwk
//! cargo run --example resource_server -- serve --issuer http://127.0.0.1:8080 \
//!     --identifier http://127.0.0.1:8081 --key-file calendar.jwk
//! ```

mod api;
mod jwks;
mod keys;
mod verify;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use jwks::{KeySource, SigningKeys};
use verify::Verifier;

/// How long after one fetch a token with an unknown `kid` may cause another.
const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(about = "An example API that accepts Tessera's encrypted access tokens")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new P-256 key pair: the private JWK to --out (mode 0600) and
    /// the public JWK beside it; prints the public file's path.
    GenerateKey {
        /// Path of the private JWK; the file must not exist yet.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Serve the calendar API.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Tessera's issuer URL, exactly as in its tokens' `iss`.
    #[arg(long, env = "RS_ISSUER", value_name = "URL")]
    issuer: String,
    /// This server's resource identifier, as registered with Tessera; the
    /// `aud` its tokens must carry.
    #[arg(long, env = "RS_IDENTIFIER", value_name = "URI")]
    identifier: String,
    /// Private JWK written by `generate-key`.
    #[arg(long, env = "RS_KEY_FILE", value_name = "FILE")]
    key_file: PathBuf,
    /// Address to listen on.
    #[arg(
        long,
        env = "RS_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8081"
    )]
    listen: SocketAddr,
    /// URL of Tessera's JWK Set; by default the `jwks_uri` of the issuer's
    /// discovery document. Set it when this server reaches Tessera at
    /// another address than the issuer URL.
    #[arg(long, env = "RS_JWKS_URI", value_name = "URL")]
    jwks_uri: Option<String>,
}

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let result = match Cli::parse().command {
        Command::GenerateKey { out } => keys::generate(&out).map(|public_path| {
            println!("{}", public_path.display());
        }),
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let issuer = args.issuer;
    let source = match args.jwks_uri {
        Some(uri) => KeySource::JwksUri(uri),
        None => KeySource::Discovery {
            issuer: issuer.clone(),
        },
    };
    let (decrypter, key_management) = keys::load_decrypter(&args.key_file)?;
    let verifier = Verifier::new(
        issuer.clone(),
        args.identifier.clone(),
        decrypter,
        key_management,
        SigningKeys::new(source, REFETCH_INTERVAL)?,
    );

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        address = %args.listen,
        %issuer,
        identifier = %args.identifier,
        "calendar API listening"
    );
    axum::serve(listener, api::router(Arc::new(verifier)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP failed")?;
    tracing::info!("calendar API stopped");
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    tokio::signal::ctrl_c().await.ok();
}
