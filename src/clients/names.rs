//! Display names of clients: characters allowed, length, and a check that a
//! self-registered client cannot take a name that looks like a first-party
//! client's (consent phishing, Unicode TR #36).

use unicode_normalization::UnicodeNormalization;

/// Maximum length of a client name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Checks a display name; the error is the reason.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("is longer than {MAX_NAME_CHARS} characters"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || is_format(*c)) {
        return Err(format!(
            "contains the invisible or control character U+{:04X}",
            u32::from(c)
        ));
    }
    if name.trim() != name {
        return Err("has leading or trailing whitespace".into());
    }
    Ok(())
}

/// Characters of Unicode category Cf (format) and other invisible ones that
/// can hide or reorder text: bidi controls, zero-width characters, tags.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Reduces a name to a skeleton: lower case, common Cyrillic and Greek
/// look-alikes mapped to Latin letters, digits that pass for letters mapped
/// to them, and everything but letters and digits dropped. Two names with
/// the same skeleton look alike.
///
/// NOTE: this covers the look-alikes most used in phishing, not the whole
/// UTS #39 confusables table.
pub fn skeleton(name: &str) -> String {
    // NFKC first, so fullwidth letters and compatibility forms such as
    // U+217C (small roman numeral fifty) become the letters they look like.
    name.nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'а' | 'α' => 'a',
            'ь' | 'в' | 'β' => 'b',
            'с' | 'ϲ' => 'c',
            'ԁ' => 'd',
            'е' | 'ё' | 'ε' => 'e',
            'ɡ' => 'g',
            'һ' => 'h',
            'і' | 'ι' | 'ӏ' | '1' | '|' | 'l' | 'ǀ' => 'l',
            'ј' => 'j',
            'κ' | 'к' => 'k',
            'м' => 'm',
            'п' | 'η' => 'n',
            'о' | 'ο' | 'σ' | '0' => 'o',
            'р' | 'ρ' => 'p',
            'ԛ' => 'q',
            'ѕ' | '5' => 's',
            'т' | 'τ' => 't',
            'υ' => 'u',
            'ν' => 'v',
            'ѡ' | 'ω' => 'w',
            'х' | 'χ' => 'x',
            'у' | 'γ' => 'y',
            other => other,
        })
        .map(|c| if c == 'i' { 'l' } else { c })
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Returns whether `name` looks like one of the `protected` names.
pub fn looks_like_any(name: &str, protected: &[String]) -> bool {
    let candidate = skeleton(name);
    !candidate.is_empty() && protected.iter().any(|other| skeleton(other) == candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_forms_share_a_skeleton() {
        assert_eq!(skeleton("\u{ff23}orp Portal"), skeleton("Corp Portal"));
        assert_eq!(skeleton("Corp Porta\u{217c}"), skeleton("Corp Portal"));
    }

    #[test]
    fn lookalike_names_share_a_skeleton() {
        let console = vec!["Tessera Console".to_owned()];
        assert!(looks_like_any("Tessera Console", &console));
        assert!(looks_like_any("tessera console", &console));
        assert!(looks_like_any("Tessera \u{0421}\u{043E}nsole", &console));
        assert!(looks_like_any("Tessera-C0nsole", &console));
        assert!(!looks_like_any("Acme Billing", &console));
    }

    #[test]
    fn invisible_characters_are_rejected() {
        assert!(check_name("Tessera Console\u{200B}").is_err());
        assert!(check_name("Tessera \u{202E}elosnoC\u{202C}").is_err());
        assert!(check_name("line\nbreak").is_err());
        assert!(check_name(&"x".repeat(300)).is_err());
        assert!(check_name("<img src=x onerror=alert(1)>").is_ok());
        assert!(check_name("Café Ünïcode").is_ok());
    }
}
