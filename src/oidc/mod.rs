//! OpenID Connect endpoints: userinfo and RP-initiated logout.

pub mod logout;
pub mod userinfo;

use axum::Router;

use crate::server::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(userinfo::router(state))
        .merge(logout::router(&state.config))
}
