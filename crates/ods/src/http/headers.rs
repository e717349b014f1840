//! Header rules for every request and answer, in one place: `/api` answers (admin,
//! peer, the OpenAPI document, and their errors) are never stored by a browser or a
//! proxy, since they carry keys, tokens and per-user data; and request heads over the
//! limits below get a JSON 414 or 431 like every other error.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Most header fields a request may carry.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of header names and values a request may carry.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Longest request target.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Refuses request heads over the limits, before any handler runs. (Heads larger still
/// than the listener's buffer are refused by the HTTP layer itself, without a body.)
pub async fn limit_request_head(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {uri_len} bytes; the limit is {MAX_URI_BYTES}"),
        )
        .into_response();
    }
    let h = req.headers();
    let bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if h.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request has {} header fields of {bytes} bytes; the limits are \
                 {MAX_HEADERS} fields and {MAX_HEADER_BYTES} bytes",
                h.len()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

pub async fn api_no_store(req: Request, next: Next) -> Response {
    let api = is_api(req.uri().path());
    let mut resp = next.run(req).await;
    if api {
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // Answers differ by who asks: a cache that ignores no-store must not share them.
        h.insert(
            header::VARY,
            HeaderValue::from_static("Authorization, Cookie"),
        );
    }
    resp
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_paths() {
        assert!(super::is_api("/api/admin/about"));
        assert!(super::is_api("/api/openapi.json"));
        assert!(super::is_api("/api"));
        assert!(!super::is_api("/apix/y"));
        assert!(!super::is_api("/share/api"));
    }
}
