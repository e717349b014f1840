//! The HTTP surface: admin API (`api/`), client downloads (`share.rs`), the OpenAPI
//! document, and the JSON body extractor whose rejections are our JSON errors.

pub mod api;
pub mod auth;
pub mod headers;
pub mod linger;
mod package_ref;
pub mod peer;
pub mod ranges;
pub mod serve;
pub mod share;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::error::ApiError;

pub fn router(app: App) -> Router {
    let share = share::routes(&app.config.share_context);
    Router::new()
        .nest("/api/admin", api::routes())
        .nest("/api/ods", peer::routes())
        .route("/api/openapi.json", get(openapi))
        .merge(share)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(json_errors))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("the request", "a handler panicked").into_response()
        }))
        .layer(axum::middleware::from_fn(headers::limit_request_head))
        .layer(axum::middleware::from_fn(headers::api_no_store))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
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

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /api/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /api/openapi.json",
    )
}

const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
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

/// For `Option<Option<T>>` fields: absent -> `None`, `null` -> `Some(None)`.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn document() -> Value {
        serde_json::from_str(super::OPENAPI).expect("http/openapi.json is not valid JSON")
    }

    /// (METHOD, path) of every operation in the document.
    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let paths = doc["paths"].as_object().expect("the document has paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(|m| (m.to_ascii_uppercase(), path.clone()))
            })
            .collect()
    }

    /// (METHOD, path) of every route the server answers (the share context at its
    /// default, as the document shows it).
    fn served() -> BTreeSet<(String, String)> {
        let mut out: BTreeSet<(String, String)> = super::api::endpoints()
            .iter()
            .map(|e| (e.method.to_string(), format!("/api/admin{}", e.path)))
            .collect();
        out.extend(
            super::peer::endpoints()
                .iter()
                .map(|e| (e.method.to_string(), format!("/api/ods{}", e.path))),
        );
        out.insert(("GET".into(), "/api/openapi.json".into()));
        for path in ["/share/{filename}", "/CasperShare/Packages/{filename}"] {
            for method in ["GET", "HEAD"] {
                out.insert((method.into(), path.into()));
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let (documented, served) = (documented(&doc), served());
        let missing: Vec<_> = served.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from crates/ods/src/http/openapi.json: {missing:?}"
        );
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(
            extra.is_empty(),
            "operations in openapi.json that no route serves: {extra:?}"
        );
    }

    /// Every `$ref` of the document points at something in it.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let found = r
                            .strip_prefix('#')
                            .and_then(|pointer| doc.pointer(pointer))
                            .is_some();
                        if !found {
                            bad.push(r.clone());
                        }
                    }
                    m.values().for_each(|x| walk(x, doc, bad));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc, bad)),
                _ => {}
            }
        }
        let doc = document();
        let mut bad = Vec::new();
        walk(&doc, &doc, &mut bad);
        assert!(bad.is_empty(), "unresolved $ref: {bad:?}");
    }

    /// The admin API needs Basic or Bearer auth; each path parameter is described; each
    /// operation has an id and documented responses.
    #[test]
    fn operations_are_complete() {
        let doc = document();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["basicAuth"]["scheme"], "basic");
        assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
        let global: BTreeSet<String> = doc["security"]
            .as_array()
            .expect("a global security requirement")
            .iter()
            .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.keys().cloned()))
            .collect();
        assert_eq!(
            global,
            BTreeSet::from(["basicAuth".into(), "bearerAuth".into()])
        );
        let error = &doc["components"]["schemas"]["Error"]["properties"]["error"];
        assert!(
            error["properties"]["code"].is_object() && error["properties"]["message"].is_object()
        );

        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
                let op = &item[*method];
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(
                    ids.insert(id.to_string()),
                    "{method} {path}: operationId {id:?} missing or repeated"
                );
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}: no responses"
                );
                if path.starts_with("/api/admin/") {
                    assert!(
                        op.get("security").is_none(),
                        "{method} {path} must not override the admin auth"
                    );
                }
                let params: Vec<&Value> = [&item["parameters"], &op["parameters"]]
                    .into_iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .collect();
                for name in path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                {
                    assert!(
                        params.iter().any(|p| p["in"] == "path"
                            && p["name"] == name
                            && p["required"] == true),
                        "{method} {path}: path parameter {name} is not described"
                    );
                }
            }
        }
    }
}
