//! The key manager: keeps an instance's ring in step with the store and
//! performs due transitions. Every instance runs [`KeyManager::spawn`]; a
//! transition is written only under the store lease `key-rotation`, and the
//! plan is recomputed from the stored rows once the lease is held, so of
//! several instances due at once exactly one writes. The writer bumps the
//! `keys` generation counter, which the others poll every
//! `keys.reload_interval`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::generate::{self, GeneratedKey};
use super::lifecycle::{self, Plan, PlanChanges, Revocation, Schedule};
use super::observed::ObservedKeys;
use super::ring::{sealing_context, KeyRing, Snapshot};
use super::{KeyAlg, KeyError};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::Sealer;
use crate::store::{KeyChanges, Store, StoreError, StoredKey};

/// Generation counter topic bumped after every change to the keys.
pub const KEYS_TOPIC: &str = "keys";
/// Name of the lease that serializes key changes across instances.
pub const ROTATION_LEASE: &str = "key-rotation";
/// How long a lease holder may take; generating an 8192-bit RSA key can take
/// a minute on a slow machine. The holder releases it as soon as it is done.
const LEASE_DURATION: Duration = Duration::minutes(5);
/// How long start-up and the CLI wait for another holder of the lease.
const LEASE_WAIT: StdDuration = StdDuration::from_secs(30);
const LEASE_RETRY: StdDuration = StdDuration::from_millis(100);
/// After a first failure, one in this many consecutive failed ticks is logged.
const FAILURE_LOG_EVERY: u64 = 60;

/// Settings of the key manager, taken from the configuration.
#[derive(Clone, Debug)]
pub struct KeySettings {
    /// The configured signing algorithms, then the encryption algorithm.
    pub slots: Vec<KeyAlg>,
    pub schedule: Schedule,
    pub rsa_bits: u32,
    pub reload_interval: StdDuration,
}

impl KeySettings {
    pub fn from_config(config: &Config) -> Self {
        let mut slots: Vec<KeyAlg> = config
            .keys
            .signing_algs
            .iter()
            .map(|alg| KeyAlg::Signing(*alg))
            .collect();
        slots.push(KeyAlg::Encryption(config.keys.encryption_alg));
        Self {
            slots,
            schedule: Schedule::from_config(config),
            rsa_bits: config.keys.rsa_bits,
            reload_interval: config.keys.reload_interval.as_duration(),
        }
    }

    fn signing_slots(&self) -> Vec<KeyAlg> {
        self.slots
            .iter()
            .copied()
            .filter(|alg| matches!(alg, KeyAlg::Signing(_)))
            .collect()
    }
}

/// One key as `tessera keys list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeySummary {
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub key_use: String,
    pub state: lifecycle::KeyState,
    pub published_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    pub retires_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
}

impl KeySummary {
    /// Summarizes the keys published at `now`, by use, algorithm and
    /// activation; removed keys are left out.
    pub fn list(stored: &[StoredKey], now: DateTime<Utc>) -> Vec<Self> {
        let mut keys: Vec<&StoredKey> = stored
            .iter()
            .filter(|key| lifecycle::is_published(&key.times, now))
            .collect();
        // `sig` sorts after `enc`, so reverse the use to list signing first.
        keys.sort_by(|a, b| {
            (b.key_use.as_str(), a.alg.as_str(), a.times.activates_at).cmp(&(
                a.key_use.as_str(),
                b.alg.as_str(),
                b.times.activates_at,
            ))
        });
        keys.into_iter()
            .map(|key| Self {
                kid: key.kid.clone(),
                alg: key.alg.clone(),
                key_use: key.key_use.clone(),
                state: lifecycle::state(&key.times, now),
                published_at: key.times.created_at,
                activates_at: key.times.activates_at,
                retires_at: key.times.retires_at,
                removed_at: key.times.removes_at,
            })
            .collect()
    }
}

/// Loads, rotates and revokes an instance's keys.
pub struct KeyManager {
    store: Arc<dyn Store>,
    sealer: Sealer,
    clock: Arc<dyn Clock>,
    settings: KeySettings,
    ring: Arc<KeyRing>,
    /// This process's lease holder name.
    holder: String,
    /// Flag set from just before this process requests the lease until it
    /// releases it, so that a request cut short still counts as holding it.
    may_hold_lease: AtomicBool,
    /// The current keys at the previous look, for the rotation metrics.
    observed: ObservedKeys,
}

impl KeyManager {
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
        settings: KeySettings,
    ) -> Self {
        Self {
            store,
            sealer,
            clock,
            settings,
            ring: Arc::new(KeyRing::new()),
            holder: format!("tessera-{}", uuid::Uuid::new_v4()),
            may_hold_lease: AtomicBool::new(false),
            observed: ObservedKeys::default(),
        }
    }

    /// Returns the ring this manager keeps loaded.
    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring)
    }

    pub fn settings(&self) -> &KeySettings {
        &self.settings
    }

    /// Loads the ring, first creating the initial keys of every configured
    /// slot that has no `current` key. Instances starting together create
    /// one set: the others wait for the lease, then load what the winner
    /// wrote. Other due transitions are left to [`KeyManager::tick`], so a
    /// lease held by a crashed instance delays no start-up with usable keys.
    pub async fn bootstrap(&self) -> Result<(), KeyError> {
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        loop {
            self.reload().await?;
            if !self.lacks_current_key() {
                self.observe_current_keys();
                return Ok(());
            }
            if self.schedule_due().await?.is_some() {
                continue;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KeyError::LeaseBusy);
            }
            tokio::time::sleep(LEASE_RETRY).await;
        }
    }

    /// Returns whether a configured slot has no `current` key in the ring.
    fn lacks_current_key(&self) -> bool {
        let Some(snapshot) = self.ring.snapshot() else {
            return true;
        };
        let now = self.clock.now();
        self.settings
            .slots
            .iter()
            .any(|alg| snapshot.current(*alg, now).is_none())
    }

    /// Runs one scheduler step: reloads the ring if the store changed, then
    /// performs the transitions due now if this instance gets the lease.
    pub async fn tick(&self) -> Result<(), KeyError> {
        self.reload_if_changed().await?;
        if !self.due_changes().is_empty() {
            self.schedule_due().await?;
        }
        Ok(())
    }

    /// Runs [`KeyManager::tick`] every `keys.reload_interval` until the
    /// task is aborted.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(self.settings.reload_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failures: u64 = 0;
            loop {
                interval.tick().await;
                let ticked = self.tick().await;
                // Keys become current as time passes, with or without the store.
                self.observe_current_keys();
                match ticked {
                    Ok(()) => {
                        if failures > 0 {
                            tracing::info!(failures, "key ring updates work again");
                        }
                        failures = 0;
                    }
                    Err(error) => {
                        if failures.is_multiple_of(FAILURE_LOG_EVERY) {
                            tracing::warn!(%error, failures, "key ring update failed; retrying");
                        }
                        failures += 1;
                    }
                }
            }
        })
    }

    /// Updates the key rotation and key age metrics from the loaded ring.
    fn observe_current_keys(&self) {
        let Some(snapshot) = self.ring.snapshot() else {
            return;
        };
        let now = self.clock.now();
        let current = self
            .settings
            .slots
            .iter()
            .filter_map(|alg| snapshot.current(*alg, now))
            .map(|key| (key.alg, key.kid.as_str(), key.times.activates_at));
        self.observed.observe(current, now);
    }

    /// Reloads the ring when the store's `keys` generation differs from
    /// the loaded one; returns whether it reloaded.
    pub async fn reload_if_changed(&self) -> Result<bool, KeyError> {
        let generation = self.store.generation(KEYS_TOPIC).await?;
        let loaded = self.ring.snapshot().map(|snapshot| snapshot.generation);
        if loaded == Some(generation) {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    /// Reads and unseals every stored key into the ring.
    pub async fn reload(&self) -> Result<(), KeyError> {
        // The counter is read before the rows: a change committed in between
        // bumps it past this value, so the next poll reloads again.
        let generation = self.store.generation(KEYS_TOPIC).await?;
        let stored = self.store.jose_keys().await?;
        let snapshot = Snapshot::open(generation, &stored, &self.sealer)?;
        self.ring.replace(snapshot, self.clock.now());
        Ok(())
    }

    /// Promotes the `next` key of `alg` (every signing algorithm when
    /// `None`) and publishes a fresh `next`; see [`Plan::rotate`]. Returns
    /// the rotated algorithms.
    pub async fn rotate(&self, alg: Option<KeyAlg>, force: bool) -> Result<Vec<KeyAlg>, KeyError> {
        let targets = match alg {
            Some(alg) if !self.settings.slots.contains(&alg) => {
                return Err(KeyError::NotConfigured(alg))
            }
            Some(alg) => vec![alg],
            None => self.settings.signing_slots(),
        };
        self.wait_for_lease().await?;
        let result = self
            .apply_under_lease(|plan, now, settings| {
                plan.schedule_due(&settings.slots, &settings.schedule, now);
                for alg in &targets {
                    plan.rotate(*alg, &settings.schedule, now, force)?;
                }
                Ok(())
            })
            .await;
        self.release_lease().await;
        result.map(|()| targets)
    }

    /// Revokes the key `kid`: it leaves the JWKS at once and verifies
    /// nothing; a revoked `current` key's successor is promoted.
    pub async fn revoke(&self, kid: &str) -> Result<Revocation, KeyError> {
        self.wait_for_lease().await?;
        let result = self
            .apply_under_lease(|plan, now, settings| {
                plan.revoke(kid, &settings.slots, &settings.schedule, now)
                    .ok_or_else(|| KeyError::UnknownKey(kid.to_owned()))
            })
            .await;
        self.release_lease().await;
        result
    }

    /// Plans the transitions due now from the loaded ring, without writing.
    fn due_changes(&self) -> PlanChanges {
        let Some(snapshot) = self.ring.snapshot() else {
            return PlanChanges::default();
        };
        let mut plan = Plan::new(
            snapshot
                .keys()
                .iter()
                .map(|key| (key.kid.clone(), key.alg, key.times)),
        );
        plan.schedule_due(
            &self.settings.slots,
            &self.settings.schedule,
            self.clock.now(),
        );
        plan.changes()
    }

    /// Performs due transitions if the lease is free, and returns `None`
    /// when another process holds it.
    async fn schedule_due(&self) -> Result<Option<()>, KeyError> {
        let now = self.clock.now();
        let acquired = self.try_acquire_lease(now).await?;
        if !acquired {
            return Ok(None);
        }
        let result = self
            .apply_under_lease(|plan, now, settings| {
                plan.schedule_due(&settings.slots, &settings.schedule, now);
                Ok(())
            })
            .await;
        self.release_lease().await;
        result.map(Some)
    }

    async fn wait_for_lease(&self) -> Result<(), KeyError> {
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        loop {
            let now = self.clock.now();
            if self.try_acquire_lease(now).await? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KeyError::LeaseBusy);
            }
            tokio::time::sleep(LEASE_RETRY).await;
        }
    }

    /// Requests the key-rotation lease until `now` plus [`LEASE_DURATION`]
    /// and returns whether this process got it.
    async fn try_acquire_lease(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.may_hold_lease.store(true, Ordering::SeqCst);
        let until = now + LEASE_DURATION;
        let acquired = self
            .store
            .try_acquire_lease(ROTATION_LEASE, &self.holder, now, until)
            .await?;
        if !acquired {
            self.may_hold_lease.store(false, Ordering::SeqCst);
        }
        Ok(acquired)
    }

    /// Releases the key-rotation lease if this process may have it, as
    /// after a bootstrap cut short, so that the next start need not wait
    /// for it to expire. Another process's lease stays.
    pub async fn release_held_lease(&self) {
        if self.may_hold_lease.load(Ordering::SeqCst) {
            self.release_lease().await;
        }
    }

    async fn release_lease(&self) {
        self.may_hold_lease.store(false, Ordering::SeqCst);
        if let Err(error) = self.store.release_lease(ROTATION_LEASE, &self.holder).await {
            tracing::warn!(%error, lease = ROTATION_LEASE, "failed to release the lease; it expires on its own");
        }
    }

    /// Plans from the stored rows with the lease held (not from the ring,
    /// which may be a reload behind), then writes the changes, bumps the
    /// generation and reloads.
    async fn apply_under_lease<T>(
        &self,
        planner: impl FnOnce(&mut Plan, DateTime<Utc>, &KeySettings) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let now = self.clock.now();
        let stored = self.store.jose_keys().await?;
        let mut plan = Plan::new(stored.iter().filter_map(|key| {
            KeyAlg::parse(&key.alg, &key.key_use).map(|alg| (key.kid.clone(), alg, key.times))
        }));
        let value = planner(&mut plan, now, &self.settings)?;
        let changes = plan.changes();
        if !changes.is_empty() {
            let key_changes = self.materialize(changes).await?;
            self.store.apply_key_changes(&key_changes).await?;
            self.store.bump_generation(KEYS_TOPIC).await?;
            log_changes(&key_changes);
            self.audit_new_keys(&key_changes, now).await;
        }
        self.reload().await?;
        Ok(value)
    }

    /// Generates and seals the planned new keys.
    ///
    /// NOTE: the planned times were taken before generation, so a new key
    /// reaches the store up to one generation time (about a second for RSA
    /// in a debug build) after its recorded creation. `publish_ahead` is at
    /// least twice the JWKS cache lifetime, so this eats into a margin of
    /// minutes with the defaults, but a `rotate` without `--force` counts
    /// the waiting time from the recorded creation.
    async fn materialize(&self, changes: PlanChanges) -> Result<KeyChanges, KeyError> {
        let mut inserted = Vec::with_capacity(changes.new_keys.len());
        for (alg, times) in changes.new_keys {
            let rsa_bits = self.settings.rsa_bits;
            // Large RSA keys can take seconds, so generation runs on the
            // blocking pool.
            let key = tokio::task::spawn_blocking(move || generate::generate(alg, rsa_bits))
                .await
                .map_err(KeyError::Generation)??;
            inserted.push(self.seal(alg, key, times)?);
        }
        Ok(KeyChanges {
            inserted,
            updated: changes.updated,
            deleted: changes.deleted,
        })
    }

    fn seal(
        &self,
        alg: KeyAlg,
        key: GeneratedKey,
        times: crate::store::KeyTimes,
    ) -> Result<StoredKey, KeyError> {
        let private = zeroize::Zeroizing::new(key.private_jwk.to_string());
        let sealed = self
            .sealer
            .seal(private.as_bytes(), &sealing_context(&key.kid));
        Ok(StoredKey {
            kid: key.kid,
            alg: alg.as_str().to_owned(),
            key_use: alg.key_use().to_owned(),
            public_jwk: key.public_jwk.to_string(),
            sealed_private_key: sealed,
            times,
        })
    }
}

impl KeyManager {
    /// Records each published key in the audit log. The key manager makes
    /// keys for the schedule and for the CLI's `keys rotate` alike, so the
    /// actor is the server; the CLI records its own command.
    async fn audit_new_keys(&self, changes: &KeyChanges, now: DateTime<Utc>) {
        for key in &changes.inserted {
            let change = crate::audit::Change {
                kind: crate::audit::kind::KEY_CREATED,
                actor: crate::audit::SERVER_ACTOR.to_owned(),
                client_id: None,
                detail: Some(format!("{} {}", key.kid, key.alg)),
            };
            crate::audit::record_change(self.store.as_ref(), change, now).await;
        }
    }
}

fn log_changes(changes: &KeyChanges) {
    for key in &changes.inserted {
        tracing::info!(
            kid = %key.kid,
            alg = %key.alg,
            key_use = %key.key_use,
            activates_at = %key.times.activates_at,
            "published a new key"
        );
    }
    for (kid, times) in &changes.updated {
        tracing::info!(
            kid = %kid,
            activates_at = %times.activates_at,
            retires_at = ?times.retires_at,
            removes_at = ?times.removes_at,
            revoked_at = ?times.revoked_at,
            "rescheduled a key"
        );
    }
    for kid in &changes.deleted {
        tracing::info!(kid = %kid, "deleted a key that left the JWKS");
    }
}
