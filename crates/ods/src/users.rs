//! The users service: checking a login (username and password, with the failed-login
//! limiter and the cache of verified credentials) and an API token.

use crate::app::App;
use crate::auth::basic::BasicCache;
use crate::auth::password;
use crate::db::{self, users::UserRow};
use crate::error::ApiError;
use crate::secrets::token_digest;

/// Checks a username and password from `addr` (with the limiter and the cache).
pub async fn check_password(
    app: &App,
    addr: &str,
    user: &str,
    pass: &str,
) -> Result<UserRow, ApiError> {
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
            app.basic_cache.put(key, u.id, &u.password_hash);
            Ok(u)
        }
        _ => {
            app.limiter.record_failure(addr, user);
            tracing::warn!(user, addr, "failed login");
            Err(ApiError::unauthorized("wrong username or password"))
        }
    }
}

/// The user an API token from `addr` belongs to (with the per-address limiter).
pub async fn check_token(app: &App, addr: &str, token: &str) -> Result<UserRow, ApiError> {
    if let Some(wait) = app.limiter.blocked_addr(addr) {
        return Err(ApiError::too_many_requests(wait));
    }
    match db::users::user_by_token(&app.db, &token_digest(token.trim())).await? {
        Some((token_id, u)) => {
            if let Err(e) = db::users::touch_token(&app.db, token_id).await {
                tracing::warn!(%e, "recording token use");
            }
            Ok(u)
        }
        None => {
            app.limiter.record_failure_addr(addr);
            Err(ApiError::unauthorized(
                "the API token is not valid (revoked or mistyped)",
            ))
        }
    }
}
