//! The JWKS document (RFC 7517 section 5): the public members of every
//! published key, serialized once per change with a strong ETag.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::lifecycle;
use super::ring::Snapshot;

/// A serialized JWKS and the instants between which it is accurate.
#[derive(Clone, Debug)]
pub struct JwksDocument {
    pub body: String,
    /// A strong entity tag: a hash of the body, so instances serving the
    /// same keys send the same tag.
    pub etag: String,
    /// The ring generation this document was built from.
    pub generation: i64,
    built_at: DateTime<Utc>,
    /// When the next key joins or leaves the published set, if ever.
    valid_until: Option<DateTime<Utc>>,
}

impl JwksDocument {
    /// Builds the JWKS of `snapshot` as published at `now`: `next`,
    /// `current` and `retired` keys, oldest first.
    pub fn build(snapshot: &Snapshot, now: DateTime<Utc>) -> Self {
        let keys: Vec<&josekit::jwk::Jwk> = snapshot
            .keys()
            .iter()
            .filter(|key| lifecycle::is_published(&key.times, now))
            .map(|key| &key.public_jwk)
            .collect();
        let body = serde_json::json!({ "keys": keys }).to_string();
        let etag = format!(
            "\"{}\"",
            URL_SAFE_NO_PAD.encode(Sha256::digest(body.as_bytes()))
        );
        let valid_until = snapshot
            .keys()
            .iter()
            .flat_map(|key| {
                [
                    Some(key.times.created_at),
                    lifecycle::removal_time(&key.times),
                ]
            })
            .flatten()
            .filter(|instant| *instant > now)
            .min();
        Self {
            body,
            etag,
            generation: snapshot.generation,
            built_at: now,
            valid_until,
        }
    }

    /// Returns whether the published set at `now` is the one listed here.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.built_at <= now && self.valid_until.is_none_or(|until| now < until)
    }

    /// Returns whether an `If-None-Match` header value matches this
    /// document's tag (RFC 9110 section 13.1.2, weak comparison).
    pub fn matches(&self, if_none_match: &str) -> bool {
        if_none_match
            .split(',')
            .map(str::trim)
            .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == self.etag)
    }
}
