//! The HTTP surface: admin API (`api/`), peer API (`peer.rs`), client downloads
//! (`share.rs`), the OpenAPI document generated from them (`docs.rs`), the web UI
//! (`ui/`, HTML routes merged beside the documented ones), and the JSON body
//! extractor whose rejections are our JSON errors.

pub mod api;
pub mod auth;
pub mod cache;
pub mod client;
pub mod docs;
pub mod headers;
pub mod integrations;
pub mod linger;
mod package_ref;
pub mod peer;
pub mod prom;
pub mod ranges;
pub mod serve;
pub mod share;
pub mod tls;
pub mod ui;
pub mod zero_copy;

use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::error::ApiError;

/// Every route with its documentation: routes are only added through
/// `OpenApiRouter::routes`, from handlers' `#[utoipa::path]`.
fn documented_routes(share_context: &str) -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .nest("/api/admin", api::routes())
        .nest("/api/ods", peer::routes())
        .nest("/api/integrations", integrations::routes())
        .routes(routes!(openapi))
        .merge(share::routes(share_context))
}

/// The OpenAPI document of a server whose Jamf share context is `share_context`.
pub fn document(share_context: &str) -> utoipa::openapi::OpenApi {
    documented_routes(share_context).into_openapi()
}

pub fn router(app: App) -> Service {
    if prom::enabled(&app.config) {
        crate::stats::install();
    }
    let (routes, doc) = documented_routes(&app.config.share_context).split_for_parts();
    let doc = OpenApiJson(Bytes::from(
        doc.to_pretty_json()
            .expect("the OpenAPI document serializes"),
    ));
    // The web UI is HTML for browsers, not API: a plain router beside the documented
    // routes, absent from the OpenAPI document.
    let routes = routes
        .layer(Extension(doc))
        .merge(ui::routes(&app))
        .merge(prom::routes());
    layered(routes, app)
}

/// The listener of `metrics_listen`: only `/metrics`, with the same access rules.
pub fn metrics_router(app: App) -> Service {
    crate::stats::install();
    layered(prom::routes(), app)
}

/// The plain-http listener kept beside TLS (`plain_listen`): only Jamf's
/// `/<context>/Packages/<name>` downloads, nothing that takes credentials for the API.
pub fn jamf_router(app: App) -> Service {
    let routes = share::jamf_routes(&app.config.share_context);
    layered(routes, app)
}

/// What a listener serves: the router inside the middleware every request passes.
pub type Service = BoxCloneSyncService<Request, Response, Infallible>;

fn layered(routes: Router<App>, app: App) -> Service {
    let routes = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // Counting costs every request a few allocations and two body wrappers: only when
    // someone can read the counts (`/metrics` is on). Per route: it labels by the
    // matched route, which only routing knows.
    let routes = if prom::enabled(&app.config) {
        routes.layer(axum::middleware::from_fn(prom::track))
    } else {
        routes
    };
    // The rest wraps the router once. `Router::layer` would wrap every route apart, and
    // each wrapper is a boxed service cloned, with a boxed future, on every request:
    // five layers cost a download about a fifth of its instructions.
    let service = ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        .layer(TraceLayer::new_for_http().make_span_with(client::span))
        .layer(axum::middleware::from_fn(headers::api_no_store))
        .layer(axum::middleware::from_fn(headers::limit_request_head))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("the request", "a handler panicked").into_response()
        }))
        .layer(axum::middleware::map_response(json_errors))
        .service(routes.with_state(app));
    BoxCloneSyncService::new(service)
}

/// Errors produced by the framework rather than by ODS (a path that does not decode, a
/// body over its limit...) come as plain text: give them the JSON shape every other
/// error has, with a code derived from the status.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_field",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    ApiError::new(status, code, text).into_response()
}

async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    // A browser asking for a page that does not exist gets a page, not JSON.
    if ui::wants_page(uri.path(), &headers) {
        return ui::not_found_page();
    }
    ApiError::not_found("no such endpoint; see /api/openapi.json").into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /api/openapi.json",
    )
}

/// The document, serialized once when the router is built.
#[derive(Clone)]
struct OpenApiJson(Bytes);

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    security(()),
    description = "This document (OpenAPI 3.1), generated from the server's code.",
    responses((status = 200, description = "The document.", content_type = "application/json", body = Object))
)]
async fn openapi(Extension(doc): Extension<OpenApiJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0).into_response()
}

/// `Json<T>` whose rejections are `{"error": ...}` 400/415 responses.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::bad_request("invalid_field", e.body_text()))
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the JSON body is larger than this endpoint takes (2 MB)",
            )),
            Err(e) => Err(ApiError::bad_request(
                "invalid_json",
                format!("the body is not valid JSON: {}", e.body_text()),
            )),
        }
    }
}

/// `Query<T>` whose rejection is a JSON 400 like every other error.
pub struct QueryArgs<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for QueryArgs<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryArgs(v)),
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// For `Option<i64>` fields: JSON Schema's integers include `1024.0`, so an integral
/// float is taken as the integer it is.
pub fn integral<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    match <Option<serde_json::Number> as serde::Deserialize>::deserialize(d)? {
        None => Ok(None),
        Some(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            _ => Err(D::Error::custom(format!("{n} is not a 64-bit integer"))),
        },
    }
}

/// For `Option<Option<T>>` fields: absent -> `None`, `null` -> `Some(None)`.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}
