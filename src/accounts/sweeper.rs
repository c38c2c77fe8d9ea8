//! Periodic deletion of expired sessions and login transactions, so that
//! their tables keep only live rows.

use std::time::Duration;

use crate::server::AppState;

/// How often each instance deletes expired rows. Deleting is idempotent,
/// so instances need not coordinate.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Deletes expired rows every [`SWEEP_INTERVAL`] until the task is aborted.
pub async fn run(state: AppState) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        sweep(&state).await;
    }
}

/// Deletes the sessions and login transactions that are expired now.
pub async fn sweep(state: &AppState) {
    let now = state.clock.now();
    let idle_before = now - state.config.login.session_idle_timeout.as_chrono();
    match state.store.delete_expired_sessions(now, idle_before).await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "deleted expired sessions"),
        Err(error) => tracing::warn!(%error, "cannot delete expired sessions"),
    }
    match state.store.delete_expired_login_transactions(now).await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "deleted expired login transactions"),
        Err(error) => tracing::warn!(%error, "cannot delete expired login transactions"),
    }
}
