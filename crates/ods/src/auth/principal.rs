//! The authenticated caller of an admin API request: `Authorization: Bearer <token>` or
//! HTTP Basic, read with axum-extra's typed `Authorization` header. Successful Basic
//! checks are cached briefly (keyed by a SHA-256 of the server secret and the
//! credentials) so Argon2 does not run on every request of a script.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum_extra::headers::authorization::{Basic, Bearer};
use axum_extra::headers::{Authorization, HeaderMapExt};
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use super::{Role, password};
use crate::app::App;
use crate::db;
use crate::error::ApiError;
use crate::secrets::token_digest;

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

/// Recently verified Basic credentials -> the user id and a digest of the password
/// hash they were verified against. A hit counts only while the user's stored hash is
/// unchanged, so a password set elsewhere (`ods user set-password`, another server
/// process on the same database) ends the old password at once.
pub struct BasicCache {
    entries: Cache<[u8; 32], (i64, [u8; 32])>,
}

const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);

impl Default for BasicCache {
    fn default() -> Self {
        BasicCache {
            entries: Cache::builder()
                .time_to_live(BASIC_CACHE_TTL)
                .max_capacity(10_000)
                .build(),
        }
    }
}

impl BasicCache {
    fn key(secret: &[u8], user: &str, pass: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(secret);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(pass.as_bytes());
        h.finalize().into()
    }
    fn hash_digest(password_hash: &str) -> [u8; 32] {
        Sha256::digest(password_hash.as_bytes()).into()
    }
    /// The cached user id and password-hash digest for these credentials.
    fn get(&self, k: &[u8; 32]) -> Option<(i64, [u8; 32])> {
        self.entries.get(k)
    }
    fn put(&self, k: [u8; 32], user: &db::users::UserRow) {
        self.entries
            .insert(k, (user.id, Self::hash_digest(&user.password_hash)));
    }
    /// Forget every cached credential (a password or role changed).
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}

fn client_addr(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
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

/// Checks a username and password (with the limiter and the cache).
pub async fn check_password(
    app: &App,
    addr: &str,
    user: &str,
    pass: &str,
) -> Result<db::users::UserRow, ApiError> {
    if let Some(wait) = app.limiter.blocked(addr, user) {
        return Err(ApiError::too_many_requests(wait));
    }
    let key = BasicCache::key(&app.config.secret_key.0, user, pass);
    if let Some((id, hash_digest)) = app.basic_cache.get(&key)
        && let Some(u) = db::users::by_id(&app.db, id).await?
        && u.username == user
        && BasicCache::hash_digest(&u.password_hash) == hash_digest
    {
        return Ok(u);
    }
    let found = db::users::by_name(&app.db, user).await?;
    // Verify against a dummy hash for unknown users so timing does not reveal names.
    let stored = found
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| app.dummy_hash.clone());
    let ok = password::verify_async(pass.to_string(), stored).await;
    match (ok, found) {
        (true, Some(u)) => {
            app.limiter.record_success(addr, user);
            app.basic_cache.put(key, &u);
            Ok(u)
        }
        _ => {
            app.limiter.record_failure(addr, user);
            tracing::warn!(user, addr, "failed login");
            Err(ApiError::unauthorized("wrong username or password"))
        }
    }
}

impl FromRequestParts<App> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
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
            let token = bearer.token().trim();
            if let Some(wait) = app.limiter.blocked_addr(&addr) {
                return Err(ApiError::too_many_requests(wait));
            }
            return match db::users::user_by_token(&app.db, &token_digest(token)).await? {
                Some((token_id, u)) => {
                    if let Err(e) = db::users::touch_token(&app.db, token_id).await {
                        tracing::warn!(%e, "recording token use");
                    }
                    Ok(Principal::from(u))
                }
                None => {
                    app.limiter.record_failure_addr(&addr);
                    Err(ApiError::unauthorized(
                        "the API token is not valid (revoked or mistyped)",
                    ))
                }
            };
        }
        match basic_credentials(parts) {
            Some(creds) => {
                let (user, pass) = creds?;
                check_password(app, &addr, &user, &pass)
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
