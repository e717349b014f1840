//! The users service: checking a login (username and password, with the failed-login
//! limiter and the cache of verified credentials) and an API token, and the rule that
//! an account whose password must change (the first-start `admin` / `ods1234!`, or a
//! user whose password an admin reset) may do nothing but change it.

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
    if let Some(wait) = app.limiter.blocked(&app.db, addr, user).await? {
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
            app.limiter.record_success(&app.db, addr, user).await?;
            app.basic_cache.put(key, u.id, &u.password_hash);
            Ok(u)
        }
        _ => {
            app.limiter.record_failure(&app.db, addr, user).await?;
            tracing::warn!(user, addr, "failed login");
            Err(ApiError::unauthorized("wrong username or password"))
        }
    }
}

/// Download auth (`download_auth` basic): `check_password` and `require_settled`, but
/// credentials that passed both within `basic::DOWNLOAD_RECHECK` are taken without
/// Argon2 or a database read (see `auth::basic`).
pub async fn check_download_password(
    app: &App,
    addr: &str,
    user: &str,
    pass: &str,
) -> Result<(), ApiError> {
    // Fresh credentials first: the limiter is in the database (site-wide), and these
    // passed it less than `DOWNLOAD_RECHECK` ago.
    let key = BasicCache::key(&app.config.secret_key.0, user, pass);
    if app.basic_cache.is_fresh(&key) {
        return Ok(());
    }
    if let Some(wait) = app.limiter.blocked(&app.db, addr, user).await? {
        return Err(ApiError::too_many_requests(wait));
    }
    let generation = app.basic_cache.generation();
    require_settled(&check_password(app, addr, user, pass).await?)?;
    app.basic_cache.mark_fresh(generation, key);
    Ok(())
}

/// The user an API token from `addr` belongs to (with the per-address limiter).
pub async fn check_token(app: &App, addr: &str, token: &str) -> Result<UserRow, ApiError> {
    if let Some(wait) = app.limiter.blocked_addr(&app.db, addr).await? {
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
            app.limiter.record_failure_addr(&app.db, addr).await?;
            Err(ApiError::unauthorized(
                "the API token is not valid (revoked or mistyped)",
            ))
        }
    }
}

/// The one error for an account that must change its password before anything else.
pub fn password_change_required(username: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "password_change_required",
        format!(
            "user {username:?} must change its password before doing anything else: \
             PATCH /api/admin/users/{username} with {{\"password\": \"<new password>\"}}"
        ),
    )
}

/// 403 `password_change_required` unless `u` may act (its password is settled).
pub fn require_settled(u: &UserRow) -> Result<(), ApiError> {
    if u.must_change_password {
        Err(password_change_required(&u.username))
    } else {
        Ok(())
    }
}

/// Whether a request is one an account whose password must change may still make:
/// reading its own user (`GET`) or changing it (`PATCH`) at `/api/admin/users/<own name>`.
pub fn allowed_before_password_change(
    method: &axum::http::Method,
    path: &str,
    username: &str,
) -> bool {
    let own = path
        .strip_prefix("/api/admin/users/")
        .map(|rest| percent_decoded(rest.trim_end_matches('/')) == username)
        .unwrap_or(false);
    own && (method == axum::http::Method::GET || method == axum::http::Method::PATCH)
}

fn percent_decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Stores a new password hash for user `id`. `own`: the user changed it themself (it is
/// settled). Otherwise an admin reset it: the user must choose their own at next login,
/// and every API token and web session of that user ends, since a reset is what an admin does
/// when the old credentials are lost or suspect, and a token made with them must not
/// outlive them. A user changing their own password keeps their tokens.
pub async fn set_password(app: &App, id: i64, hash: &str, own: bool) -> Result<(), ApiError> {
    db::users::set_password(&app.db, id, hash, !own).await?;
    if !own {
        let n = db::users::delete_tokens_of(&app.db, id).await?;
        let s = db::sessions::delete_of_user(&app.db, id, None).await?;
        tracing::info!(
            user_id = id,
            tokens_revoked = n,
            sessions_ended = s,
            "password reset by an admin"
        );
    }
    app.basic_cache.clear();
    Ok(())
}

/// A user changing their own password from the web UI: the current password is always
/// asked for (checked through the limiter, like a login from `addr`), the new one must
/// pass the rules of `password::check_new`. Ends the user's other sessions; the one
/// making the change (`keep`) stays.
pub async fn change_own_password(
    app: &App,
    addr: &str,
    user: &UserRow,
    current: &str,
    new: &str,
    keep_session: i64,
) -> Result<(), ApiError> {
    password::check_new(new)?;
    if let Err(e) = check_password(app, addr, &user.username, current).await {
        return Err(if e.status == axum::http::StatusCode::UNAUTHORIZED {
            ApiError::bad_request("wrong_password", "the current password is not right")
        } else {
            e
        });
    }
    let hash = password::hash_async(new.to_string()).await?;
    set_password(app, user.id, &hash, true).await?;
    db::sessions::delete_of_user(&app.db, user.id, Some(keep_session)).await?;
    Ok(())
}
