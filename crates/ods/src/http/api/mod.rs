//! `/api/admin/...`: the seed's admin API and what the product adds (one file per
//! resource, verb-first handler names). Every handler takes a `Principal`, so no
//! endpoint answers without authentication, and checks the role it needs.

mod about;
mod events;
mod jobs;
mod packages;
mod registry;
mod system;
mod tokens;
mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use crate::app::App;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/about", get(about::get_about).post(about::update_about))
        .route("/about/update", post(about::update_about))
        .route("/system", get(system::get_system))
        .route(
            "/packages",
            get(packages::list_packages)
                .post(packages::upload_package)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/upload",
            post(packages::upload_package).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/packages/{id_or_name}",
            get(packages::get_package)
                .delete(packages::delete_package)
                .patch(packages::update_package),
        )
        .route(
            "/packages/{id_or_name}/digests",
            post(packages::compute_digests),
        )
        .route("/register", post(registry::register))
        .route("/registered_ods", get(registry::list_registered))
        .route(
            "/registered_ods/{id}",
            delete(registry::unregister).patch(registry::update_registered),
        )
        .route("/sync", get(registry::get_sync))
        .route("/events", get(events::list_events))
        .route("/users", get(users::list_users).post(users::create_user))
        .route(
            "/users/{username}",
            get(users::get_user)
                .patch(users::update_user)
                .delete(users::delete_user),
        )
        .route(
            "/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route("/tokens/{id}", delete(tokens::delete_token))
        .route("/jobs", get(jobs::list_jobs))
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/jobs/{id}/retry", post(jobs::retry_job))
}

/// Parses a numeric path id, or 400.
fn path_id(s: &str) -> Result<i64, crate::error::ApiError> {
    s.parse().map_err(|_| {
        crate::error::ApiError::bad_request("invalid_id", format!("{s:?} is not a numeric id"))
    })
}
