//! The authenticated caller of an admin API request, read from the request:
//! `Authorization: Bearer <token>` or HTTP Basic (axum-extra's typed header), checked
//! by the `users` service. An account whose password must change gets 403
//! `password_change_required` here for every request but reading or changing its own
//! user (`users::allowed_before_password_change`).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum_extra::headers::authorization::{Basic, Bearer};
use axum_extra::headers::{Authorization, HeaderMapExt};

use crate::app::App;
use crate::db;
use crate::error::ApiError;
use crate::model::Role;
use crate::users;

#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub must_change_password: bool,
}

impl Principal {
    /// 403 unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; user {:?} has the {} role",
                role.as_str(),
                self.username,
                self.role.as_str()
            )))
        }
    }
}

/// The client address the limiter and the per-address rules count (the one a trusted
/// proxy names, see `http::client`).
pub fn client_addr(parts: &Parts) -> String {
    super::client::addr_of(parts)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the `Authorization` header names `scheme` (any letter case).
fn scheme_is(parts: &Parts, scheme: &str) -> bool {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case(scheme))
}

/// Username and password from an `Authorization: Basic` header, if it is one.
pub fn basic_credentials(parts: &Parts) -> Option<Result<(String, String), ApiError>> {
    if !scheme_is(parts, "basic") {
        return None;
    }
    Some(match parts.headers.typed_get::<Authorization<Basic>>() {
        Some(Authorization(b)) => Ok((b.username().to_string(), b.password().to_string())),
        None => Err(ApiError::unauthorized(
            "the Basic credentials are not valid base64 of user:password",
        )),
    })
}

impl FromRequestParts<App> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let who = authenticate(parts, app).await?;
        if who.must_change_password {
            let path = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map(|u| u.0.path().to_string())
                .unwrap_or_else(|| parts.uri.path().to_string());
            if !users::allowed_before_password_change(&parts.method, &path, &who.username) {
                return Err(users::password_change_required(&who.username));
            }
        }
        Ok(who)
    }
}

impl Principal {
    /// For `PATCH /users/<own name>` by an account whose password must change: the
    /// request must set a new password and change nothing else.
    pub fn require_only_password_change(
        &self,
        sets_password: bool,
        changes_other: bool,
    ) -> Result<(), ApiError> {
        if self.must_change_password && (!sets_password || changes_other) {
            return Err(users::password_change_required(&self.username));
        }
        Ok(())
    }
}

async fn authenticate(parts: &mut Parts, app: &App) -> Result<Principal, ApiError> {
    let addr = client_addr(parts);
    if parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_none()
    {
        return Err(ApiError::unauthorized(
            "this needs authentication: send Authorization: Bearer <token> or HTTP Basic",
        ));
    }
    if let Some(Authorization(bearer)) = parts.headers.typed_get::<Authorization<Bearer>>() {
        return users::check_token(app, &addr, bearer.token().trim())
            .await
            .map(Principal::from);
    }
    match basic_credentials(parts) {
        Some(creds) => {
            let (user, pass) = creds?;
            users::check_password(app, &addr, &user, &pass)
                .await
                .map(Principal::from)
        }
        None => Err(ApiError::unauthorized(
            "unsupported Authorization scheme: use Bearer or Basic",
        )),
    }
}

impl From<db::users::UserRow> for Principal {
    fn from(u: db::users::UserRow) -> Self {
        Principal {
            user_id: u.id,
            username: u.username,
            role: u.role,
            must_change_password: u.must_change_password,
        }
    }
}
