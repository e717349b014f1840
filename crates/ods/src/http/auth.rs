//! The authenticated caller of an admin API request, read from the request:
//! `Authorization: Bearer <token>` or HTTP Basic, checked by the `users` service.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;

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

pub fn client_addr(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Username and password from an `Authorization: Basic` header, if it is one.
pub fn basic_credentials(parts: &Parts) -> Option<Result<(String, String), ApiError>> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bad =
        || ApiError::unauthorized("the Basic credentials are not valid base64 of user:password");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| bad());
    Some(decoded.and_then(|d| {
        let s = String::from_utf8(d).map_err(|_| bad())?;
        let (u, p) = s.split_once(':').ok_or_else(bad)?;
        Ok((u.to_string(), p.to_string()))
    }))
}

impl FromRequestParts<App> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let addr = client_addr(parts);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(header) = header else {
            return Err(ApiError::unauthorized(
                "this needs authentication: send Authorization: Bearer <token> or HTTP Basic",
            ));
        };
        if let Some(token) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
        {
            return users::check_token(app, &addr, token)
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
