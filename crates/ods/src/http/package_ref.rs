//! Reads which package an admin request names from its route: `/packages/id/{id}`,
//! `/packages/name/{filename}`, or the seed's `/packages/{id_or_name}` (resolved, and
//! refused when ambiguous, by `packages::resolve`).

use axum::extract::{FromRequestParts, MatchedPath, Path};
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::packages::PackageRef;

impl<S: Send + Sync> FromRequestParts<S> for PackageRef {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let Path(value) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_path",
                    format!("the package in the path does not decode: {}", e.body_text()),
                )
            })?;
        Ok(if route.contains("/packages/id/") {
            PackageRef::Id(value.parse().map_err(|_| {
                ApiError::bad_request("invalid_id", format!("{value:?} is not a numeric id"))
            })?)
        } else if route.contains("/packages/name/") {
            PackageRef::Name(value)
        } else {
            PackageRef::IdOrName(value)
        })
    }
}
