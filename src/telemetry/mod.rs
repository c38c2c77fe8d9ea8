//! Logging and metrics. Logs go through tracing with an environment
//! filter, as human or JSON lines on standard error, so that `--json`
//! output on standard output stays clean; [`metrics`] owns the Prometheus
//! series.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub mod log_budget;
pub mod metrics;

/// Filter used when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Installs the global subscriber. Calling it twice keeps the first one,
/// which lets tests start several servers in one process.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // An error here only means a subscriber is already installed.
    drop(result);
}
