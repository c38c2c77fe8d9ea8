//! OpenID Connect endpoints: userinfo and RP-initiated logout.

pub mod logout;
pub mod userinfo;

use axum::Router;

use crate::config::Config;
use crate::server::AppState;

pub fn router(config: &Config) -> Router<AppState> {
    Router::new()
        .merge(userinfo::router())
        .merge(logout::router(config))
}
