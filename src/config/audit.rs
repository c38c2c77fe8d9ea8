//! The `[audit]` section: how long audit events are kept.

use serde::{Deserialize, Serialize};

use super::{ConfigError, HumanDuration};

/// Audit log settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Events older than this are deleted by the background pruner.
    pub retention: HumanDuration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention: HumanDuration::from_secs(90 * 24 * 3600),
        }
    }
}

impl AuditSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.retention.as_duration() < std::time::Duration::from_secs(3600) {
            return Err(ConfigError::value(
                "audit.retention",
                self.retention,
                "use at least 1h",
            ));
        }
        Ok(())
    }
}
