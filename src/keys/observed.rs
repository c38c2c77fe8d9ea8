//! Key metrics: the rotations an instance sees and the age of each current
//! signing key.
//!
//! A `next` key becomes `current` when the clock passes its activation
//! instant, and nothing is written at that moment, so rotations are
//! counted where they are seen: the key manager compares each slot's
//! current key with the one it saw at its previous look, once per
//! `keys.reload_interval`. Each instance counts every rotation once,
//! whether the schedule, `tessera keys rotate` or the revocation of a
//! current key caused it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::KeyAlg;
use crate::telemetry::metrics;

/// The current key of each slot at the previous look.
#[derive(Default)]
pub struct ObservedKeys {
    current: Mutex<HashMap<KeyAlg, String>>,
}

impl ObservedKeys {
    /// Records the current keys at `now`, given as slot, kid and activation
    /// instant: counts each slot whose kid changed since the previous call
    /// as one rotation and sets the age gauge of each signing key. A slot
    /// seen for the first time counts nothing. Returns the rotations
    /// counted.
    pub fn observe<'a>(
        &self,
        current: impl IntoIterator<Item = (KeyAlg, &'a str, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> u64 {
        let mut seen = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rotations = 0;
        for (alg, kid, activated_at) in current {
            let previous = seen.get(&alg).map(String::as_str);
            if previous != Some(kid) {
                let rotated = u64::from(previous.is_some());
                metrics::key_rotations(alg.as_str(), rotated);
                rotations += rotated;
                seen.insert(alg, kid.to_owned());
            }
            if let KeyAlg::Signing(signing) = alg {
                let age = (now - activated_at).to_std().unwrap_or_default();
                metrics::signing_key_age(signing.as_str(), age);
            }
        }
        rotations
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::keys::{EncryptionAlg, SigningAlg};

    const ES256: KeyAlg = KeyAlg::Signing(SigningAlg::ES256);
    const RS256: KeyAlg = KeyAlg::Signing(SigningAlg::RS256);
    const ENC: KeyAlg = KeyAlg::Encryption(EncryptionAlg::EcdhEsA256kw);

    #[test]
    fn changed_kid_counts_one_rotation_per_slot() {
        let start = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let later = start + Duration::hours(1);
        let observed = ObservedKeys::default();

        let first = [
            (ES256, "es-1", start),
            (RS256, "rs-1", start),
            (ENC, "enc-1", start),
        ];
        assert_eq!(
            observed.observe(first, start),
            0,
            "first look is no rotation"
        );
        assert_eq!(observed.observe(first, later), 0, "same keys");

        let es_rotated = [
            (ES256, "es-2", later),
            (RS256, "rs-1", start),
            (ENC, "enc-1", start),
        ];
        assert_eq!(observed.observe(es_rotated, later), 1);
        assert_eq!(observed.observe(es_rotated, later), 0, "counted once");

        let all_rotated = [
            (ES256, "es-3", later),
            (RS256, "rs-2", later),
            (ENC, "enc-2", later),
        ];
        assert_eq!(observed.observe(all_rotated, later), 3);
    }

    #[test]
    fn slot_without_current_key_keeps_its_last_kid() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let observed = ObservedKeys::default();
        assert_eq!(observed.observe([(ES256, "es-1", now)], now), 0);
        assert_eq!(observed.observe([], now), 0);
        assert_eq!(observed.observe([(ES256, "es-1", now)], now), 0);
        assert_eq!(observed.observe([(ES256, "es-2", now)], now), 1);
    }
}
