//! `/api/admin/...`: the seed's admin API and what the product adds (one file per
//! resource, verb-first handler names). Every handler takes a `Principal`, so no
//! endpoint answers without authentication, and checks the role it needs.

pub(crate) mod about;
pub(crate) mod email;
pub(crate) mod events;
pub mod jamf;
mod jamf_checks;
pub(crate) mod jobs;
mod package_paths;
mod package_query;
pub(crate) mod packages;
pub(crate) mod registry;
pub(crate) mod system;
pub(crate) mod tokens;
pub(crate) mod users;
pub(crate) mod webhooks;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::app::App;

/// For uploads, which stream to disk: no body size limit, and a body refused unread
/// is drained so the client gets the answer (see `http::linger`).
fn unlimited_body((schemas, paths, handler): UtoipaMethodRouter<App>) -> UtoipaMethodRouter<App> {
    let handler = handler
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(crate::http::linger::linger));
    (schemas, paths, handler)
}

/// The admin router (to nest under `/api/admin`); each route is documented by its
/// handler's `#[utoipa::path]`, so none can exist undocumented.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(about::get_about, about::update_about))
        .routes(routes!(about::update_about_seed))
        .routes(routes!(system::get_system))
        .routes(routes!(packages::list_packages))
        .routes(unlimited_body(routes!(packages::create_package)))
        .routes(unlimited_body(routes!(packages::upload_package)))
        .routes(routes!(
            packages::get_package,
            packages::delete_package,
            packages::update_package
        ))
        .routes(routes!(packages::compute_digests))
        .routes(routes!(
            package_paths::get_by_id,
            package_paths::delete_by_id,
            package_paths::update_by_id
        ))
        .routes(routes!(package_paths::digests_by_id))
        .routes(routes!(
            package_paths::get_by_name,
            package_paths::delete_by_name,
            package_paths::update_by_name
        ))
        .routes(routes!(package_paths::digests_by_name))
        .routes(routes!(registry::register))
        .routes(routes!(registry::list_registered))
        .routes(routes!(registry::unregister, registry::update_registered))
        .routes(routes!(registry::get_sync))
        .routes(routes!(events::list_events))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::delete_token))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::test_webhook))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(email::get_email, email::put_email))
        .routes(routes!(
            email::list_subscriptions,
            email::create_subscription
        ))
        .routes(routes!(email::delete_subscription))
        .routes(routes!(email::test_email))
        .routes(routes!(jamf::list_instances, jamf::create_instance))
        .routes(routes!(
            jamf::get_instance,
            jamf::update_instance,
            jamf::delete_instance
        ))
        .routes(routes!(jamf_checks::reconcile_instance))
        .routes(routes!(jamf_checks::get_drift))
        .routes(routes!(jamf_checks::list_records))
}

/// One admin operation: a method and a path under `/api/admin`.
pub struct Endpoint {
    pub method: axum::http::Method,
    pub path: String,
}

/// Every admin operation, read from the router's own document (so it is exactly what
/// the router serves).
pub fn endpoints() -> Vec<Endpoint> {
    use axum::http::Method as M;
    let doc = routes().into_openapi();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths {
        let ops = [
            (M::GET, &item.get),
            (M::PUT, &item.put),
            (M::POST, &item.post),
            (M::DELETE, &item.delete),
            (M::PATCH, &item.patch),
            (M::HEAD, &item.head),
        ];
        for (method, op) in ops {
            if op.is_some() {
                out.push(Endpoint {
                    method,
                    path: path.clone(),
                });
            }
        }
    }
    out
}

/// Parses a numeric path id, or 400.
fn path_id(s: &str) -> Result<i64, crate::error::ApiError> {
    s.parse().map_err(|_| {
        crate::error::ApiError::bad_request("invalid_id", format!("{s:?} is not a numeric id"))
    })
}
