//! `tessera audit tail`: the newest audit events, oldest first.

use anyhow::Context;
use chrono::SecondsFormat;
use clap::Subcommand;
use serde::Serialize;

use super::Output;
use crate::config::Config;
use crate::store::{self, AuditEvent};

/// Most events one `tail` prints.
const MAX_LINES: i64 = 10_000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the newest events, oldest first, as `tail` does.
    Tail {
        /// Number of events to print (at most 10000).
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
    },
}

/// An event as printed.
#[derive(Serialize)]
struct EventView<'a> {
    time: String,
    kind: &'a str,
    actor: Option<&'a str>,
    client_id: Option<&'a str>,
    subject: Option<&'a str>,
    ip: Option<&'a str>,
    request_id: Option<&'a str>,
    detail: Option<&'a str>,
}

impl<'a> From<&'a AuditEvent> for EventView<'a> {
    fn from(event: &'a AuditEvent) -> Self {
        Self {
            time: event.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            kind: &event.kind,
            actor: event.actor.as_deref(),
            client_id: event.client_id.as_deref(),
            subject: event.subject.as_deref(),
            ip: event.ip.as_deref(),
            request_id: event.request_id.as_deref(),
            detail: event.detail.as_deref(),
        }
    }
}

pub async fn run(config: &Config, output: &Output, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Tail { lines } = command;
    if !(1..=MAX_LINES).contains(&lines) {
        anyhow::bail!("--lines {lines} is out of range: use 1 to {MAX_LINES}");
    }
    let store = store::open(&config.database_url()).await?;
    let checked = store
        .check_schema()
        .await
        .context("the database schema is not current");
    let events = match checked {
        Ok(()) => store.recent_audit_events(lines).await.map_err(Into::into),
        Err(error) => Err(error),
    };
    store.close().await;
    let mut events = events?;
    events.reverse();

    let views: Vec<EventView> = events.iter().map(EventView::from).collect();
    output.print(&views, || {
        views.iter().map(line).collect::<Vec<_>>().join("\n")
    })
}

/// Formats one event as a line: time and kind, then the fields it has.
fn line(view: &EventView) -> String {
    let mut text = format!("{} {}", view.time, view.kind);
    let fields = [
        ("actor", view.actor),
        ("client", view.client_id),
        ("subject", view.subject),
        ("ip", view.ip),
        ("request", view.request_id),
        ("detail", view.detail),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            text.push_str(&format!(" {name}={value:?}"));
        }
    }
    text
}
