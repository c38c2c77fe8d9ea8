//! `GET /account` lists the applications the signed-in user allowed, with
//! their scopes and dates; `POST /account/withdraw` withdraws one. A
//! visitor without a session signs in first, through a login transaction
//! that returns here.
//!
//! The withdraw form's CSRF token is an HMAC of the session id's digest,
//! so it is valid only with the session cookie it was shown with. The
//! session cookie is `SameSite=Lax` as well, so a cross-site POST carries
//! no session at all.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{form_expired, internal_error, live_session, render, see_other};
use crate::accounts::consent::describe_scope;
use crate::accounts::login_transactions::{
    create_login_transaction, issuer_path, NewLoginTransaction,
};
use crate::audit::user_actor;
use crate::authorizations::withdraw_consent;
use crate::http::page_extract::PageForm;
use crate::server::AppState;
use crate::store::{AuthorizationFilter, SessionRecord, StoreError, UserRecord};

/// Maximum length in bytes of a client id the withdraw form accepts.
/// Issued ids are shorter.
const MAX_CLIENT_ID_BYTES: usize = 256;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    base_path: &'a str,
    username: &'a str,
    apps: Vec<AppView>,
    csrf: &'a str,
}

/// One application the user allowed, as listed.
struct AppView {
    client_id: String,
    name: String,
    permissions: Vec<String>,
    /// When the user approved it (or first authorized it, for a client that
    /// asks no consent), as a UTC date.
    since: String,
    /// Number of live grants (sign-ins whose tokens are still valid).
    grants: usize,
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    client_id: Option<String>,
    csrf: Option<String>,
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (session, user) = match live_session(&state, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return sign_in_first(&state).await,
        Err(error) => return internal_error(&state, &error),
    };
    let apps = match allowed_apps(&state, &user).await {
        Ok(apps) => apps,
        Err(error) => return internal_error(&state, &error),
    };
    let base_path = issuer_path(&state.config);
    let page = AccountPage {
        base_path: &base_path,
        username: &user.username,
        apps,
        csrf: &csrf_token(&state, &session),
    };
    render(&state, StatusCode::OK, &page)
}

pub async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm<WithdrawForm>,
) -> Response {
    let (session, user) = match live_session(&state, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return sign_in_first(&state).await,
        Err(error) => return internal_error(&state, &error),
    };
    if !csrf_matches(&state, &session, form.csrf.as_deref()) {
        return form_expired(&state);
    }
    let account = format!("{}/account", issuer_path(&state.config));
    let Some(client_id) = form
        .client_id
        .filter(|id| !id.is_empty() && id.len() <= MAX_CLIENT_ID_BYTES)
    else {
        return see_other(&account);
    };
    let actor = user_actor(user.id);
    let now = state.clock.now();
    match withdraw_consent(state.store.as_ref(), user.id, &client_id, actor, now).await {
        Ok(ended) => {
            let grants = ended.grants.len();
            tracing::info!(sub = %user.id, %client_id, grants, "user withdrew an application");
            see_other(&account)
        }
        Err(error) => internal_error(&state, &error),
    }
}

/// Starts a login transaction that returns to `/account` and redirects to
/// its login page.
async fn sign_in_first(state: &AppState) -> Response {
    let new = NewLoginTransaction {
        client_id: String::new(),
        client_name: "your account".to_owned(),
        first_party: true,
        scopes: Vec::new(),
        login_hint: None,
        prompt_consent: false,
        return_path: "/account".to_owned(),
    };
    let store = state.store.as_ref();
    let digester = &state.data_keys.digester;
    let now = state.clock.now();
    match create_login_transaction(store, digester, &state.config, new, now).await {
        Ok(tx) => see_other(&format!("{}/login?tx={tx}", issuer_path(&state.config))),
        Err(error) => internal_error(state, &error),
    }
}

/// Collects the clients the user gave a consent or a live grant, newest
/// first.
async fn allowed_apps(state: &AppState, user: &UserRecord) -> Result<Vec<AppView>, StoreError> {
    let filter = AuthorizationFilter::user(user.id);
    let store = state.store.as_ref();
    let consents = store.consents(&filter).await?;
    let grants = store.live_grants(&filter, state.clock.now()).await?;

    // Per client: scopes, the earliest date, and the number of grants.
    let mut apps: BTreeMap<String, (Vec<String>, DateTime<Utc>, usize)> = BTreeMap::new();
    for consent in consents {
        apps.insert(consent.client_id, (consent.scopes, consent.updated_at, 0));
    }
    for grant in grants {
        let entry = apps
            .entry(grant.client_id)
            .or_insert_with(|| (Vec::new(), grant.created_at, 0));
        for scope in grant.scopes {
            if !entry.0.contains(&scope) {
                entry.0.push(scope);
            }
        }
        entry.1 = entry.1.min(grant.created_at);
        entry.2 += 1;
    }

    let mut views = Vec::with_capacity(apps.len());
    for (client_id, (scopes, since, grants)) in apps {
        let name = match state.registry.client(&client_id).await? {
            Some(client) => client.name.clone(),
            None => continue,
        };
        views.push(AppView {
            client_id,
            name,
            permissions: scopes.iter().map(|scope| describe_scope(scope)).collect(),
            since: since.format("%Y-%m-%d").to_string(),
            grants,
        });
    }
    views.sort_by(|a, b| b.since.cmp(&a.since).then_with(|| a.name.cmp(&b.name)));
    Ok(views)
}

/// Returns the withdraw form's CSRF token for `session`.
fn csrf_token(state: &AppState, session: &SessionRecord) -> String {
    state.data_keys.digester.digest(&csrf_input(session))
}

/// Checks a submitted CSRF token against `session` in constant time.
fn csrf_matches(state: &AppState, session: &SessionRecord, token: Option<&str>) -> bool {
    token.is_some_and(|token| state.data_keys.digester.verify(&csrf_input(session), token))
}

fn csrf_input(session: &SessionRecord) -> String {
    format!("account-csrf:{}", session.id_digest)
}
