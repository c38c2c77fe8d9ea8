//! Durations written the way operators write them: `90s`, `10m`, `12h`, `30d`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from and written as a human string such as `10m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    pub const fn as_duration(&self) -> Duration {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Converts to a `chrono::Duration`, for arithmetic on timestamps.
    pub fn as_chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(text.trim())
            .map(Self)
            .map_err(|_| format!("invalid duration {text:?}: write it like 90s, 10m, 12h or 30d"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operator_units() {
        let cases = [
            ("90s", 90),
            ("10m", 600),
            ("12h", 43_200),
            ("30d", 2_592_000),
        ];
        for (text, secs) in cases {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.as_duration().as_secs(), secs, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_text() {
        for text in ["", "10", "ten minutes", "10x", "-5m"] {
            assert!(text.parse::<HumanDuration>().is_err(), "{text}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn display_parses_back(secs in any::<u64>(), millis in 0u64..1000) {
                let duration = HumanDuration(Duration::from_secs(secs) + Duration::from_millis(millis));
                let parsed: HumanDuration = duration.to_string().parse().unwrap();
                prop_assert_eq!(parsed, duration);
            }

            #[test]
            fn any_text_parses_or_fails_without_panic(text in any::<String>()) {
                let _ = text.parse::<HumanDuration>();
            }

            #[test]
            fn unit_text_parses_to_its_seconds(
                count in 0u64..1_000_000,
                (unit, seconds) in prop::sample::select(vec![
                    ("s", 1u64), ("m", 60), ("h", 3600), ("d", 86_400),
                ]),
            ) {
                let parsed: HumanDuration = format!("{count}{unit}").parse().unwrap();
                prop_assert_eq!(parsed.as_duration().as_secs(), count * seconds);
            }
        }
    }
}
