//! The key lifecycle as pure functions of stored times and the clock.
//!
//! Each key slot (a signing algorithm, or the encryption algorithm) moves
//! its keys through `next` (published, unused), `current` (signs or is
//! encrypted to), `retired` (published so that what it signed still
//! verifies) and removed. A key's state follows from its [`KeyTimes`] and the
//! current instant alone, so instances agree without writing on each
//! transition. Writes happen only to schedule the next transition: when a
//! slot lacks a `next` key, the new one gets an activation instant at least
//! `publish_ahead` away, and the `current` key a retirement at that instant.
//!
//! All instants are UTC. Rotation periods are fixed durations, so neither
//! the host's time zone nor daylight-saving changes move a rotation.

use chrono::{DateTime, Duration, Utc};

use super::KeyAlg;
use crate::config::Config;
use crate::store::KeyTimes;

/// A key's place in its lifecycle at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Next,
    Current,
    Retired,
    Removed,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retired => "retired",
            Self::Removed => "removed",
        }
    }
}

/// Returns the state of a key with `times` at `now`.
pub fn state(times: &KeyTimes, now: DateTime<Utc>) -> KeyState {
    if removal_time(times).is_some_and(|removal| removal <= now) {
        return KeyState::Removed;
    }
    if now < times.activates_at {
        return KeyState::Next;
    }
    if times.retires_at.is_some_and(|retirement| retirement <= now) {
        return KeyState::Retired;
    }
    KeyState::Current
}

/// Whether the key is in the JWKS at `now`.
pub fn is_published(times: &KeyTimes, now: DateTime<Utc>) -> bool {
    times.created_at <= now && state(times, now) != KeyState::Removed
}

/// The instant the key leaves the JWKS: revocation or scheduled removal.
pub fn removal_time(times: &KeyTimes) -> Option<DateTime<Utc>> {
    match (times.removes_at, times.revoked_at) {
        (Some(removal), Some(revocation)) => Some(removal.min(revocation)),
        (removal, revocation) => removal.or(revocation),
    }
}

/// The durations that drive rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// How long a key stays `current`.
    pub rotation_period: Duration,
    /// Minimum time a scheduled `next` key is published before it activates.
    pub publish_ahead: Duration,
    /// How long a key stays published after it retires: the longest lifetime
    /// of anything it signed, plus the clock skew verifiers allow.
    pub retention: Duration,
    /// How long a JWKS may be served from a cache after an instance stopped
    /// serving it: `jwks_max_age` plus `reload_interval`, because an instance
    /// may serve the previous JWKS for up to one reload interval.
    pub cache_lifetime: Duration,
}

impl Schedule {
    pub fn from_config(config: &Config) -> Self {
        let tokens = &config.tokens;
        let keys = &config.keys;
        // NOTE: covers the configured access and ID token lifetimes only; a
        // per-resource access token lifetime longer than these would need to
        // extend the retention too.
        let longest_token = tokens
            .access_token_ttl
            .as_duration()
            .max(tokens.id_token_ttl.as_duration());
        Self {
            rotation_period: duration(keys.rotation_period.as_duration()),
            publish_ahead: duration(keys.publish_ahead.as_duration()),
            retention: duration(longest_token) + duration(tokens.clock_skew.as_duration()),
            cache_lifetime: duration(keys.jwks_max_age.as_duration())
                + duration(keys.reload_interval.as_duration()),
        }
    }
}

/// Converts a configured duration; configuration validation bounds them far
/// below chrono's limit, which is used only as a saturating fallback.
fn duration(value: std::time::Duration) -> Duration {
    Duration::from_std(value).unwrap_or(Duration::MAX)
}

/// One key in a [`Plan`]; `kid` is `None` for a key still to be generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedKey {
    pub kid: Option<String>,
    pub alg: KeyAlg,
    pub times: KeyTimes,
}

/// A `rotate` that would promote a `next` key that caches may not hold yet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the next {alg} key {kid} was published at {published_at}, so JWKS caches may not hold it \
     until {ready_at}; run `tessera keys rotate` again after that, or add --force to promote \
     it now (for a compromised key: tokens from verifiers with an older JWKS fail until their \
     caches refresh)"
)]
pub struct RotationRefused {
    pub alg: KeyAlg,
    pub kid: String,
    pub published_at: DateTime<Utc>,
    pub ready_at: DateTime<Utc>,
}

/// What a revocation changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub alg: KeyAlg,
    /// The state the key had before it was revoked.
    pub previous_state: KeyState,
}

/// The changes a plan makes to the stored keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanChanges {
    /// Keys to generate, with their times.
    pub new_keys: Vec<(KeyAlg, KeyTimes)>,
    /// Existing keys with new times.
    pub updated: Vec<(String, KeyTimes)>,
    /// Kids of keys that have left the JWKS.
    pub deleted: Vec<String>,
}

impl PlanChanges {
    pub fn is_empty(&self) -> bool {
        self.new_keys.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

/// The stored keys and the changes planned for them.
#[derive(Clone, Debug)]
pub struct Plan {
    keys: Vec<PlannedKey>,
    original: Vec<(String, KeyTimes)>,
    deleted: Vec<String>,
}

impl Plan {
    pub fn new(keys: impl IntoIterator<Item = (String, KeyAlg, KeyTimes)>) -> Self {
        let keys: Vec<PlannedKey> = keys
            .into_iter()
            .map(|(kid, alg, times)| PlannedKey {
                kid: Some(kid),
                alg,
                times,
            })
            .collect();
        let original = keys
            .iter()
            .filter_map(|key| key.kid.clone().map(|kid| (kid, key.times)))
            .collect();
        Self {
            keys,
            original,
            deleted: Vec::new(),
        }
    }

    pub fn keys(&self) -> &[PlannedKey] {
        &self.keys
    }

    /// Plans every transition due at `now`: deletes removed keys, and gives
    /// each slot in `slots` a `current` and a scheduled `next` key.
    pub fn schedule_due(&mut self, slots: &[KeyAlg], schedule: &Schedule, now: DateTime<Utc>) {
        self.delete_removed(now);
        for alg in slots {
            self.schedule_slot(*alg, schedule, now);
        }
    }

    /// Promotes the `next` key of `alg` now, retires the `current` one and
    /// schedules a fresh `next`. Without `force`, refuses while the `next`
    /// key has been published for less than the cache lifetime.
    pub fn rotate(
        &mut self,
        alg: KeyAlg,
        schedule: &Schedule,
        now: DateTime<Utc>,
        force: bool,
    ) -> Result<(), RotationRefused> {
        self.schedule_slot(alg, schedule, now);
        let (current, next) = self.slot(alg, schedule, now);
        let Some(next) = next else {
            return Ok(());
        };
        let published_at = self.keys[next].times.created_at;
        let ready_at = published_at + schedule.cache_lifetime;
        if !force && now < ready_at {
            return Err(RotationRefused {
                alg,
                kid: self.keys[next]
                    .kid
                    .clone()
                    .unwrap_or_else(|| "(new)".to_owned()),
                published_at,
                ready_at,
            });
        }
        self.keys[next].times.activates_at = now;
        if let Some(current) = current {
            self.retire(current, now, schedule);
        }
        self.schedule_slot(alg, schedule, now);
        Ok(())
    }

    /// Revokes the key `kid` at `now`. A revoked `current` key's successor
    /// is promoted at once, and the slot gets a fresh `next` key.
    pub fn revoke(
        &mut self,
        kid: &str,
        slots: &[KeyAlg],
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Option<Revocation> {
        let index = self
            .keys
            .iter()
            .position(|key| key.kid.as_deref() == Some(kid))?;
        let previous_state = state(&self.keys[index].times, now);
        if previous_state == KeyState::Removed {
            return None;
        }
        self.keys[index].times.revoked_at = Some(now);
        let alg = self.keys[index].alg;
        if slots.contains(&alg) {
            self.schedule_slot(alg, schedule, now);
        }
        Some(Revocation {
            alg,
            previous_state,
        })
    }

    /// Lists what the plan changes compared with the stored keys.
    pub fn changes(&self) -> PlanChanges {
        let mut changes = PlanChanges {
            deleted: self.deleted.clone(),
            ..PlanChanges::default()
        };
        for key in &self.keys {
            match &key.kid {
                None => changes.new_keys.push((key.alg, key.times)),
                Some(kid) => {
                    let stored = self.original.iter().find(|(id, _)| id == kid);
                    if stored.is_some_and(|(_, times)| *times != key.times) {
                        changes.updated.push((kid.clone(), key.times));
                    }
                }
            }
        }
        changes
    }

    fn delete_removed(&mut self, now: DateTime<Utc>) {
        let (removed, kept): (Vec<PlannedKey>, Vec<PlannedKey>) = std::mem::take(&mut self.keys)
            .into_iter()
            .partition(|key| key.kid.is_some() && state(&key.times, now) == KeyState::Removed);
        self.keys = kept;
        self.deleted
            .extend(removed.into_iter().filter_map(|key| key.kid));
    }

    /// Returns the `current` and the earliest `next` key of `alg`. When the
    /// stored times make several keys `current`, all but the newest retire.
    fn slot(
        &mut self,
        alg: KeyAlg,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> (Option<usize>, Option<usize>) {
        let mut currents = self.indices(alg, KeyState::Current, now);
        let current = currents.pop();
        for older in currents {
            self.retire(older, now, schedule);
        }
        let next = self.indices(alg, KeyState::Next, now).first().copied();
        (current, next)
    }

    /// Indices of the keys of `alg` in `wanted` state, by activation.
    fn indices(&self, alg: KeyAlg, wanted: KeyState, now: DateTime<Utc>) -> Vec<usize> {
        let mut indices: Vec<usize> = (0..self.keys.len())
            .filter(|&i| self.keys[i].alg == alg && state(&self.keys[i].times, now) == wanted)
            .collect();
        indices.sort_by_key(|&i| self.keys[i].times.activates_at);
        indices
    }

    fn schedule_slot(&mut self, alg: KeyAlg, schedule: &Schedule, now: DateTime<Utc>) {
        let (mut current, mut next) = self.slot(alg, schedule, now);
        if current.is_none() {
            // A fresh install, or the current key was revoked: the `next`
            // key is promoted at once, or a first key starts signing now,
            // since no cache can hold an older key set to miss it in.
            current = Some(match next.take() {
                Some(next) => {
                    self.keys[next].times.activates_at = now;
                    next
                }
                None => self.push(alg, now, now),
            });
            next = self.indices(alg, KeyState::Next, now).first().copied();
        }
        let Some(current) = current else {
            return;
        };
        let activation = match next {
            Some(next) => self.keys[next].times.activates_at,
            None => {
                let due = self.keys[current].times.activates_at + schedule.rotation_period;
                let activation = due.max(now + schedule.publish_ahead);
                self.push(alg, now, activation);
                activation
            }
        };
        if self.keys[current].times.retires_at != Some(activation) {
            self.retire(current, activation, schedule);
        }
    }

    fn retire(&mut self, index: usize, at: DateTime<Utc>, schedule: &Schedule) {
        let times = &mut self.keys[index].times;
        times.retires_at = Some(at);
        times.removes_at = Some(at + schedule.retention);
    }

    fn push(&mut self, alg: KeyAlg, now: DateTime<Utc>, activates_at: DateTime<Utc>) -> usize {
        self.keys.push(PlannedKey {
            kid: None,
            alg,
            times: KeyTimes {
                created_at: now,
                activates_at,
                retires_at: None,
                removes_at: None,
                revoked_at: None,
            },
        });
        self.keys.len() - 1
    }
}
