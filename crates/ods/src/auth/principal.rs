//! The authenticated caller of an admin API request: `Authorization: Bearer <token>` or
//! HTTP Basic. Successful Basic checks are cached briefly (keyed by an HMAC of the
//! credentials) so Argon2 does not run on every request of a script.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
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
#[derive(Default)]
pub struct BasicCache {
    entries: Mutex<HashMap<[u8; 32], CacheEntry>>,
}

struct CacheEntry {
    user_id: i64,
    hash_digest: [u8; 32],
    at: Instant,
}

const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);

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
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(k)
            .filter(|e| e.at.elapsed() < BASIC_CACHE_TTL)
            .map(|e| (e.user_id, e.hash_digest))
    }
    fn put(&self, k: [u8; 32], user: &db::users::UserRow) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        let entry = CacheEntry {
            user_id: user.id,
            hash_digest: Self::hash_digest(&user.password_hash),
            at: Instant::now(),
        };
        map.insert(k, entry);
    }
    /// Forget every cached credential (a password or role changed).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn client_addr(parts: &Parts) -> String {
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
            if let Some(wait) = app.limiter.blocked_addr(&addr) {
                return Err(ApiError::too_many_requests(wait));
            }
            return match db::users::user_by_token(&app.db, &token_digest(token.trim())).await? {
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
