//! Response headers every answer of a kind must carry, set in one place: `/api`
//! answers (admin, peer, the OpenAPI document, and their errors) are never stored by a
//! browser or a proxy, since they carry keys, tokens and per-user data.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

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
