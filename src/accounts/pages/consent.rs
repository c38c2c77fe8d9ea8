//! `GET /consent` shows the scopes that the signed-in user has not yet
//! approved for the client. `POST /consent` records the decision.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::login::{continue_after_login, TxQuery};
use super::{
    csrf_valid, finish, form_expired, internal_error, issue_csrf, live_session, load_transaction,
    render, see_other, unknown_transaction, with_cookie,
};
use crate::accounts::consent::{describe_scope, merge_scopes, scopes_to_ask};
use crate::accounts::login_transactions::issuer_path;
use crate::http::page_extract::{PageForm, PageQuery};
use crate::server::AppState;
use crate::store::{AuditEvent, LoginOutcome};

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    base_path: &'a str,
    client_name: &'a str,
    username: &'a str,
    scopes: Vec<String>,
    tx: &'a str,
    csrf: &'a str,
}

#[derive(Deserialize)]
pub struct ConsentForm {
    tx: Option<String>,
    csrf: Option<String>,
    decision: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageQuery(query): PageQuery<TxQuery>,
) -> Response {
    let (id, transaction) = match load_transaction(&state, query.tx.as_deref()).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let (session, user) = match live_session(&state, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return see_other(&format!("{}/login?tx={id}", issuer_path(&state.config))),
        Err(error) => return internal_error(&state, &error),
    };
    let store = state.store.as_ref();
    let approved = match store
        .consented_scopes(user.id, &transaction.client_id)
        .await
    {
        Ok(scopes) => scopes,
        Err(error) => return internal_error(&state, &error),
    };
    let to_ask = scopes_to_ask(&transaction.scopes, &approved, transaction.prompt_consent);
    if transaction.first_party || to_ask.is_empty() {
        return continue_after_login(&state, &id, &transaction, &session).await;
    }

    let (csrf, csrf_cookie) = match issue_csrf(&state, &transaction).await {
        Ok(Some(issued)) => issued,
        Ok(None) => return unknown_transaction(&state),
        Err(error) => return internal_error(&state, &error),
    };
    let base_path = issuer_path(&state.config);
    let page = ConsentPage {
        base_path: &base_path,
        client_name: &transaction.client_name,
        username: &user.username,
        scopes: to_ask.iter().map(|scope| describe_scope(scope)).collect(),
        tx: &id,
        csrf: &csrf,
    };
    with_cookie(render(&state, StatusCode::OK, &page), &csrf_cookie)
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm<ConsentForm>,
) -> Response {
    let (id, transaction) = match load_transaction(&state, form.tx.as_deref()).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    if !csrf_valid(&state, &headers, &transaction, form.csrf.as_deref()) {
        return form_expired(&state);
    }
    let (session, user) = match live_session(&state, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return see_other(&format!("{}/login?tx={id}", issuer_path(&state.config))),
        Err(error) => return internal_error(&state, &error),
    };

    let outcome = match form.decision.as_deref() {
        Some("approve") => {
            let store = state.store.as_ref();
            let client_id = &transaction.client_id;
            let saved = async {
                let approved = store.consented_scopes(user.id, client_id).await?;
                let merged = merge_scopes(&approved, &transaction.scopes);
                store
                    .save_consent(user.id, client_id, &merged, state.clock.now())
                    .await
            };
            if let Err(error) = saved.await {
                return internal_error(&state, &error);
            }
            let event = AuditEvent {
                subject: Some(user.id.to_string()),
                client_id: Some(client_id.clone()),
                actor: Some(crate::audit::user_actor(user.id)),
                detail: Some(format!("scope {}", transaction.scopes.join(" "))),
                ..AuditEvent::new(crate::audit::kind::CONSENT_GRANTED, state.clock.now())
            };
            crate::audit::record(store, &event).await;
            LoginOutcome::Approved {
                user_id: user.id,
                auth_time: session.auth_time,
                amr: session.amr.clone(),
                granted_scopes: transaction.scopes.clone(),
            }
        }
        Some("deny") => LoginOutcome::Denied { user_id: user.id },
        _ => return form_expired(&state),
    };
    finish(&state, &transaction, outcome).await
}
