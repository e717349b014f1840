//! How package downloads may be cached by the caches between ODS and its clients:
//! the configured policy (`download_cache_control`) for anonymous downloads, never a
//! shared copy of an authenticated one.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::app::App;

/// The Cache-Control of a package download: the configured policy, or `private,
/// no-cache` when the request carries credentials (a shared cache must not hand an
/// authenticated download to others; `public` or `must-revalidate` would let it).
pub fn download_cache_control(app: &App, h: &HeaderMap) -> HeaderValue {
    if h.contains_key(header::AUTHORIZATION) {
        HeaderValue::from_static("private, no-cache")
    } else {
        app.config.download_cache_control.clone()
    }
}
