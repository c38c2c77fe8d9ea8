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

/// Returns whether the key is in the JWKS at `now`.
pub fn is_published(times: &KeyTimes, now: DateTime<Utc>) -> bool {
    times.created_at <= now && state(times, now) != KeyState::Removed
}

/// Returns the instant the key leaves the JWKS: its revocation or its
/// scheduled removal, whichever comes first.
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
        // per-resource or per-client access token lifetime (at most 24h)
        // longer than these would need to extend the retention too.
        let longest_token = tokens.access_token_ttl.max(tokens.id_token_ttl);
        Self {
            rotation_period: keys.rotation_period.as_chrono(),
            publish_ahead: keys.publish_ahead.as_chrono(),
            retention: longest_token.as_chrono() + tokens.clock_skew.as_chrono(),
            cache_lifetime: keys.jwks_max_age.as_chrono() + keys.reload_interval.as_chrono(),
        }
    }
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
pub struct RotationRefused {
    pub alg: KeyAlg,
    /// The `next` key's kid; `None` when it would be created by this very
    /// rotation because the slot had none.
    pub kid: Option<String>,
    pub published_at: DateTime<Utc>,
    pub ready_at: DateTime<Utc>,
}

impl std::fmt::Display for RotationRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::SecondsFormat::Secs;
        // Rounded up, so that the printed instant is never too early.
        let ready = (self.ready_at + Duration::milliseconds(999)).to_rfc3339_opts(Secs, true);
        match &self.kid {
            Some(kid) => write!(
                f,
                "the next {} key {kid} was published at {}, so JWKS caches may not hold it \
                 before {ready}",
                self.alg,
                self.published_at.to_rfc3339_opts(Secs, true),
            )?,
            None => write!(
                f,
                "{} has no next key yet, so one would be published now and JWKS caches \
                 may not hold it before {ready}",
                self.alg,
            )?,
        }
        write!(
            f,
            "; run the rotation again after that, or add --force to promote at once (for a \
             compromised key: verifiers with an older cached JWKS reject new tokens until \
             their caches refresh)"
        )
    }
}

/// The outcome of a revocation.
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
    // NOTE: keys of an algorithm dropped from the configuration are left as
    // they are, so its `current` key stays published until it is revoked.
    // Retiring them here would let a CLI run with a stale configuration
    // retire keys that the servers still sign with.
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
                kid: self.keys[next].kid.clone(),
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::keys::SigningAlg;

    const ES256: KeyAlg = KeyAlg::Signing(SigningAlg::ES256);

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn schedule(rotation_hours: i64) -> Schedule {
        Schedule {
            rotation_period: Duration::hours(rotation_hours),
            publish_ahead: Duration::minutes(30),
            retention: Duration::minutes(61),
            cache_lifetime: Duration::minutes(6),
        }
    }

    /// The stored keys of a simulated store, with kids assigned in order.
    #[derive(Default)]
    struct Keys {
        rows: Vec<(String, KeyAlg, KeyTimes)>,
        created: usize,
    }

    impl Keys {
        fn plan(&self) -> Plan {
            Plan::new(self.rows.clone())
        }

        fn apply(&mut self, plan: &Plan) {
            let changes = plan.changes();
            self.rows
                .retain(|(kid, _, _)| !changes.deleted.contains(kid));
            for (kid, times) in changes.updated {
                let row = self.rows.iter_mut().find(|(id, _, _)| *id == kid).unwrap();
                row.2 = times;
            }
            for (alg, times) in changes.new_keys {
                self.created += 1;
                self.rows.push((format!("k{}", self.created), alg, times));
            }
        }

        fn tick(&mut self, schedule: &Schedule, now: DateTime<Utc>) {
            let mut plan = self.plan();
            plan.schedule_due(&[ES256], schedule, now);
            self.apply(&plan);
        }

        fn in_state(&self, wanted: KeyState, now: DateTime<Utc>) -> Vec<String> {
            self.rows
                .iter()
                .filter(|(_, _, times)| state(times, now) == wanted)
                .map(|(kid, _, _)| kid.clone())
                .collect()
        }
    }

    #[test]
    fn state_follows_times() {
        let t = start();
        let times = KeyTimes {
            created_at: t,
            activates_at: t + Duration::hours(1),
            retires_at: Some(t + Duration::hours(2)),
            removes_at: Some(t + Duration::hours(3)),
            revoked_at: None,
        };
        assert_eq!(state(&times, t), KeyState::Next);
        assert_eq!(state(&times, t + Duration::hours(1)), KeyState::Current);
        assert_eq!(state(&times, t + Duration::hours(2)), KeyState::Retired);
        assert_eq!(state(&times, t + Duration::hours(3)), KeyState::Removed);
        assert!(!is_published(&times, t - Duration::seconds(1)));
        let revoked = KeyTimes {
            revoked_at: Some(t + Duration::minutes(90)),
            ..times
        };
        assert_eq!(
            state(&revoked, t + Duration::minutes(89)),
            KeyState::Current
        );
        assert_eq!(
            state(&revoked, t + Duration::minutes(90)),
            KeyState::Removed
        );
    }

    #[test]
    fn empty_slot_gets_current_and_scheduled_next() {
        let mut keys = Keys::default();
        keys.tick(&schedule(24), start());
        assert_eq!(keys.in_state(KeyState::Current, start()), vec!["k1"]);
        assert_eq!(keys.in_state(KeyState::Next, start()), vec!["k2"]);
        let current = keys.rows[0].2;
        let next = keys.rows[1].2;
        assert_eq!(next.activates_at, start() + Duration::hours(24));
        assert_eq!(current.retires_at, Some(next.activates_at));
        assert_eq!(
            current.removes_at,
            Some(next.activates_at + Duration::minutes(61))
        );
        let mut again = keys.plan();
        again.schedule_due(&[ES256], &schedule(24), start());
        assert!(again.changes().is_empty());
    }

    #[test]
    fn next_is_published_ahead_after_each_activation() {
        let mut keys = Keys::default();
        let schedule = schedule(24);
        keys.tick(&schedule, start());
        let promoted = start() + Duration::hours(24);
        keys.tick(&schedule, promoted);
        assert_eq!(keys.in_state(KeyState::Current, promoted), vec!["k2"]);
        assert_eq!(keys.in_state(KeyState::Retired, promoted), vec!["k1"]);
        assert_eq!(keys.in_state(KeyState::Next, promoted), vec!["k3"]);
        let next = keys.rows[2].2;
        assert_eq!(next.created_at, promoted);
        assert_eq!(next.activates_at, promoted + Duration::hours(24));

        // A scheduler that was down for a whole period publishes the next
        // key at least `publish_ahead` before it signs anything.
        let late = promoted + Duration::hours(48);
        keys.tick(&schedule, late);
        let newest = keys.rows.last().unwrap().2;
        assert_eq!(newest.activates_at, late + Duration::minutes(30));
        assert_eq!(keys.in_state(KeyState::Removed, late), Vec::<String>::new());
    }

    #[test]
    fn rotate_waits_for_caches_unless_forced() {
        let mut keys = Keys::default();
        let schedule = schedule(24);
        keys.tick(&schedule, start());
        let early = start() + Duration::minutes(5);
        let refused = keys
            .plan()
            .rotate(ES256, &schedule, early, false)
            .unwrap_err();
        assert_eq!(refused.kid.as_deref(), Some("k2"));
        assert_eq!(refused.ready_at, start() + Duration::minutes(6));
        assert!(refused.to_string().contains("--force"), "{refused}");

        let mut forced = keys.plan();
        forced.rotate(ES256, &schedule, early, true).unwrap();
        keys.apply(&forced);
        assert_eq!(keys.in_state(KeyState::Current, early), vec!["k2"]);
        assert_eq!(keys.in_state(KeyState::Retired, early), vec!["k1"]);
        assert_eq!(keys.in_state(KeyState::Next, early), vec!["k3"]);

        let ready = early + Duration::minutes(6);
        let mut plan = keys.plan();
        plan.rotate(ES256, &schedule, ready, false).unwrap();
        keys.apply(&plan);
        assert_eq!(keys.in_state(KeyState::Current, ready), vec!["k3"]);
        assert_eq!(keys.in_state(KeyState::Next, ready), vec!["k4"]);
    }

    #[test]
    fn revoking_current_promotes_next() {
        let mut keys = Keys::default();
        let schedule = schedule(24);
        keys.tick(&schedule, start());
        let now = start() + Duration::hours(1);
        let mut plan = keys.plan();
        let revocation = plan.revoke("k1", &[ES256], &schedule, now).unwrap();
        assert_eq!(revocation.previous_state, KeyState::Current);
        keys.apply(&plan);
        assert_eq!(keys.in_state(KeyState::Removed, now), vec!["k1"]);
        assert_eq!(keys.in_state(KeyState::Current, now), vec!["k2"]);
        assert_eq!(keys.in_state(KeyState::Next, now), vec!["k3"]);
        assert!(keys.plan().revoke("k1", &[ES256], &schedule, now).is_none());
        assert!(keys
            .plan()
            .revoke("nope", &[ES256], &schedule, now)
            .is_none());
    }

    #[test]
    fn revoking_next_schedules_another() {
        let mut keys = Keys::default();
        let schedule = schedule(24);
        keys.tick(&schedule, start());
        let now = start() + Duration::minutes(23 * 60 + 45);
        let mut plan = keys.plan();
        plan.revoke("k2", &[ES256], &schedule, now).unwrap();
        keys.apply(&plan);
        assert_eq!(keys.in_state(KeyState::Current, now), vec!["k1"]);
        assert_eq!(keys.in_state(KeyState::Next, now), vec!["k3"]);
        let next = keys.rows.iter().find(|(kid, _, _)| kid == "k3").unwrap().2;
        assert_eq!(next.activates_at, now + Duration::minutes(30));
    }

    /// Rotations are UTC instants: across the 2026 US and UK daylight-saving
    /// changes a 24-hour schedule rotates exactly once per 24 hours.
    #[test]
    fn rotation_ignores_daylight_saving_changes() {
        let changes = [
            Utc.with_ymd_and_hms(2026, 3, 8, 10, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 10, 25, 1, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).unwrap(),
        ];
        for change in changes {
            let mut keys = Keys::default();
            let schedule = schedule(24);
            let begin = change - Duration::hours(36);
            let mut now = begin;
            let mut activations = Vec::new();
            let mut current = String::new();
            while now < begin + Duration::hours(72) {
                keys.tick(&schedule, now);
                let currents = keys.in_state(KeyState::Current, now);
                assert_eq!(currents.len(), 1, "{now}");
                if currents[0] != current {
                    current = currents[0].clone();
                    activations.push(now);
                }
                now += Duration::minutes(5);
            }
            let gaps: Vec<Duration> = activations.windows(2).map(|w| w[1] - w[0]).collect();
            assert_eq!(activations.len(), 3, "{change}: {activations:?}");
            assert!(
                gaps.iter().all(|gap| *gap == Duration::hours(24)),
                "{gaps:?}"
            );
        }
    }

    /// Changing the rotation period mid-cycle keeps exactly one current key,
    /// and the change applies from the next scheduled key on.
    #[test]
    fn rotation_period_change_keeps_one_current_key() {
        let mut keys = Keys::default();
        let mut now = start();
        let phases = [(1, 6), (12, 30), (1, 6)];
        for (rotation_hours, duration_hours) in phases {
            let schedule = schedule(rotation_hours);
            let end = now + Duration::hours(duration_hours);
            while now < end {
                keys.tick(&schedule, now);
                assert_eq!(keys.in_state(KeyState::Current, now).len(), 1, "{now}");
                assert_eq!(keys.in_state(KeyState::Next, now).len(), 1, "{now}");
                for (kid, _, times) in &keys.rows {
                    if let Some(removal) = times.removes_at {
                        assert!(removal > now, "{kid} outlived its removal at {now}");
                    }
                }
                now += Duration::minutes(5);
            }
        }
    }
}
