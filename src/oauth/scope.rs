//! Scope strings (RFC 6749 section 3.3): space-separated tokens of the
//! characters appendix A.4 allows.
//!
//! Tessera's policy where the RFC leaves a choice: empty tokens from
//! repeated or trailing spaces are ignored, duplicates collapse, unknown
//! scopes are dropped by the caller (and the granted `scope` is always
//! returned), and a character outside A.4 makes the whole request
//! `invalid_scope`.

use std::collections::BTreeSet;
use std::fmt;

/// Scopes every deployment has; resource servers may not define them.
pub const BUILT_IN_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A set of scope tokens, kept sorted so the `scope` string is stable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<String>);

/// A scope string with a character outside RFC 6749 appendix A.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the scope contains a character that RFC 6749 appendix A.4 does not allow")]
pub struct InvalidScope;

impl Scopes {
    /// Parses a `scope` parameter.
    pub fn parse(text: &str) -> Result<Self, InvalidScope> {
        let mut scopes = BTreeSet::new();
        for token in text.split(' ').filter(|token| !token.is_empty()) {
            if !token.bytes().all(is_scope_char) {
                return Err(InvalidScope);
            }
            scopes.insert(token.to_owned());
        }
        Ok(Self(scopes))
    }

    /// Returns the scopes of `self` for which `allowed` returns true.
    pub fn retain(&self, allowed: impl Fn(&str) -> bool) -> Self {
        Self(
            self.0
                .iter()
                .filter(|scope| allowed(scope))
                .cloned()
                .collect(),
        )
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<S: Into<String>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(items: I) -> Self {
        Self(items.into_iter().map(Into::into).collect())
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
            first = false;
        }
        Ok(())
    }
}

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`
fn is_scope_char(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> String {
        Scopes::parse(text).unwrap().to_string()
    }

    #[test]
    fn stray_spaces_and_repeats_collapse() {
        assert_eq!(parsed("openid email "), "email openid");
        assert_eq!(parsed("openid  email"), "email openid");
        assert_eq!(parsed("email openid"), "email openid");
        assert_eq!(parsed("openid email email"), "email openid");
        assert_eq!(parsed(""), "");
        assert_eq!(parsed("   "), "");
    }

    #[test]
    fn literal_plus_is_part_of_a_token() {
        assert_eq!(parsed("openid+email"), "openid+email");
    }

    #[test]
    fn characters_outside_appendix_a4_are_invalid() {
        for text in [
            "openid\0email",
            "openid\"",
            "a\\b",
            "caf\u{e9}",
            "tab\there",
            "new\nline",
        ] {
            assert_eq!(Scopes::parse(text), Err(InvalidScope), "{text:?}");
        }
    }

    #[test]
    fn retain_and_subset() {
        let requested = Scopes::parse("read write admin").unwrap();
        let granted = requested.retain(|scope| scope != "admin");
        assert_eq!(granted.to_string(), "read write");
        assert!(granted.is_subset(&requested));
        assert!(!requested.is_subset(&granted));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// Generates one scope token of RFC 6749 appendix A.4 characters.
        fn token() -> impl Strategy<Value = String> {
            "[!#-\\[\\]-~]{1,12}"
        }

        proptest! {
            #[test]
            fn parse_is_idempotent(tokens in prop::collection::vec(token(), 0..8)) {
                let parsed = Scopes::parse(&tokens.join(" ")).unwrap();
                let again = Scopes::parse(&parsed.to_string()).unwrap();
                prop_assert_eq!(again, parsed);
            }

            #[test]
            fn order_spacing_and_repeats_do_not_matter(
                tokens in prop::collection::vec(token(), 1..8),
                shuffled in any::<u64>(),
                gaps in prop::collection::vec(1usize..4, 16),
            ) {
                let mut reordered = tokens.clone();
                reordered.extend(tokens.iter().take(2).cloned());
                // A rotation by a random amount, then reversal on odd seeds.
                let turn = (shuffled as usize) % reordered.len();
                reordered.rotate_left(turn);
                if shuffled % 2 == 1 {
                    reordered.reverse();
                }
                let spaced: String = reordered
                    .iter()
                    .zip(gaps.iter().cycle())
                    .map(|(token, gap)| format!("{token}{}", " ".repeat(*gap)))
                    .collect();
                let expected = Scopes::parse(&tokens.join(" ")).unwrap();
                prop_assert_eq!(Scopes::parse(&spaced).unwrap(), expected);
            }

            #[test]
            fn characters_outside_a4_are_rejected(
                before in token(),
                bad in any::<char>().prop_filter("outside A.4", |c| {
                    *c != ' ' && !(c.is_ascii() && is_scope_char(*c as u8))
                }),
                after in "[!#-\\[\\]-~]{0,12}",
            ) {
                let text = format!("openid {before}{bad}{after}");
                prop_assert_eq!(Scopes::parse(&text), Err(InvalidScope));
            }

            #[test]
            fn display_lists_each_token_once(tokens in prop::collection::vec(token(), 0..8)) {
                let parsed = Scopes::parse(&tokens.join(" ")).unwrap();
                let shown = parsed.to_string();
                let listed: Vec<&str> = shown.split(' ').filter(|t| !t.is_empty()).collect();
                let mut unique = tokens.clone();
                unique.sort();
                unique.dedup();
                prop_assert_eq!(listed, unique);
            }
        }
    }
}
