//! Consent: which requested scopes still need the user's approval, and how
//! each scope is described on the consent page.

/// Returns the requested scopes not yet approved, in request order.
pub fn unapproved_scopes(requested: &[String], approved: &[String]) -> Vec<String> {
    requested
        .iter()
        .filter(|scope| !approved.contains(scope))
        .cloned()
        .collect()
}

/// Returns the scopes the consent page asks for: every requested scope
/// under `prompt=consent` (OIDC Core section 3.1.2.1), else the ones not
/// approved yet. An empty list means no consent page.
pub fn scopes_to_ask(
    requested: &[String],
    approved: &[String],
    prompt_consent: bool,
) -> Vec<String> {
    if prompt_consent {
        requested.to_vec()
    } else {
        unapproved_scopes(requested, approved)
    }
}

/// Returns `approved` followed by the scopes of `added` it lacks.
pub fn merge_scopes(approved: &[String], added: &[String]) -> Vec<String> {
    let mut merged = approved.to_vec();
    for scope in added {
        if !merged.contains(scope) {
            merged.push(scope.clone());
        }
    }
    merged
}

/// Describes a scope in plain words for the consent page. Scopes that
/// resource servers define are shown by name.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are on this site".to_owned(),
        "profile" => "See your name".to_owned(),
        "email" => "See your email address".to_owned(),
        "offline_access" => "Keep access while you are not using the application".to_owned(),
        other => format!("Use the \u{201c}{other}\u{201d} permission"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn only_new_scopes_need_approval() {
        let requested = scopes("openid email calendar");
        assert_eq!(
            unapproved_scopes(&requested, &scopes("openid email")),
            ["calendar"]
        );
        assert!(unapproved_scopes(&requested, &scopes("calendar email openid profile")).is_empty());
    }

    #[test]
    fn merge_keeps_order_without_duplicates() {
        let merged = merge_scopes(&scopes("openid email"), &scopes("email calendar"));
        assert_eq!(merged, scopes("openid email calendar"));
    }
}
