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
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::app::App;

/// One admin endpoint: a method, a path under `/api/admin` and the handler.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub(crate) handler: MethodRouter<App>,
}

pub(crate) fn endpoint<H, T>(method: Method, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, App>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard HTTP method");
    Endpoint {
        method,
        path,
        handler: on(filter, handler),
    }
}

impl Endpoint {
    /// For uploads, which stream to disk: no body size limit, and a body refused
    /// unread is drained so the client gets the answer (see `http::linger`).
    fn unlimited_body(mut self) -> Self {
        self.handler = self
            .handler
            .layer(DefaultBodyLimit::disable())
            .layer(axum::middleware::from_fn(crate::http::linger::linger));
        self
    }
}

/// Every admin endpoint, in one list: the router is built from it, and a unit test
/// (`http::tests`) checks that each one is in the OpenAPI document, so an endpoint
/// cannot be added without being documented.
pub fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        endpoint(M::GET, "/about", about::get_about),
        endpoint(M::POST, "/about", about::update_about),
        endpoint(M::POST, "/about/update", about::update_about),
        endpoint(M::GET, "/system", system::get_system),
        endpoint(M::GET, "/packages", packages::list_packages),
        endpoint(M::POST, "/packages", packages::upload_package).unlimited_body(),
        endpoint(M::POST, "/upload", packages::upload_package).unlimited_body(),
        endpoint(M::GET, "/packages/{id_or_name}", packages::get_package),
        endpoint(
            M::DELETE,
            "/packages/{id_or_name}",
            packages::delete_package,
        ),
        endpoint(M::PATCH, "/packages/{id_or_name}", packages::update_package),
        endpoint(
            M::POST,
            "/packages/{id_or_name}/digests",
            packages::compute_digests,
        ),
        // Unambiguous forms (issue 9, finding 4): by database id, and by filename.
        endpoint(M::GET, "/packages/id/{id}", packages::get_package),
        endpoint(M::DELETE, "/packages/id/{id}", packages::delete_package),
        endpoint(M::PATCH, "/packages/id/{id}", packages::update_package),
        endpoint(
            M::POST,
            "/packages/id/{id}/digests",
            packages::compute_digests,
        ),
        endpoint(M::GET, "/packages/name/{filename}", packages::get_package),
        endpoint(
            M::DELETE,
            "/packages/name/{filename}",
            packages::delete_package,
        ),
        endpoint(
            M::PATCH,
            "/packages/name/{filename}",
            packages::update_package,
        ),
        endpoint(
            M::POST,
            "/packages/name/{filename}/digests",
            packages::compute_digests,
        ),
        endpoint(M::POST, "/register", registry::register),
        endpoint(M::GET, "/registered_ods", registry::list_registered),
        endpoint(M::DELETE, "/registered_ods/{id}", registry::unregister),
        endpoint(
            M::PATCH,
            "/registered_ods/{id}",
            registry::update_registered,
        ),
        endpoint(M::GET, "/sync", registry::get_sync),
        endpoint(M::GET, "/events", events::list_events),
        endpoint(M::GET, "/users", users::list_users),
        endpoint(M::POST, "/users", users::create_user),
        endpoint(M::GET, "/users/{username}", users::get_user),
        endpoint(M::PATCH, "/users/{username}", users::update_user),
        endpoint(M::DELETE, "/users/{username}", users::delete_user),
        endpoint(M::GET, "/tokens", tokens::list_tokens),
        endpoint(M::POST, "/tokens", tokens::create_token),
        endpoint(M::DELETE, "/tokens/{id}", tokens::delete_token),
        endpoint(M::GET, "/jobs", jobs::list_jobs),
        endpoint(M::GET, "/jobs/{id}", jobs::get_job),
        endpoint(M::POST, "/jobs/{id}/retry", jobs::retry_job),
    ]
}

/// The admin router, built from `endpoints` (methods of one path are merged).
pub fn routes() -> Router<App> {
    endpoints()
        .into_iter()
        .fold(Router::new(), |r, e| r.route(e.path, e.handler))
}

/// Parses a numeric path id, or 400.
fn path_id(s: &str) -> Result<i64, crate::error::ApiError> {
    s.parse().map_err(|_| {
        crate::error::ApiError::bad_request("invalid_id", format!("{s:?} is not a numeric id"))
    })
}
