//! The web UI sessions service: logging a browser in (a random token whose SHA-256 is
//! kept in the database, so every process sharing it knows the session), finding the
//! session and user of a token under the idle and absolute expiry, ending one session
//! or all of a user's, and the CSRF token that belongs to a session (an HMAC of its
//! token under the server secret, so it is never stored).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};

use crate::app::App;
use crate::db::{self, sessions::SessionRow, users::UserRow};
use crate::error::ApiResult;
use crate::model::now_unix;
use crate::secrets::{random_bytes, token_digest};

/// A session is written back as used at most this often (seconds), so reading pages
/// does not write to the database on every request.
const TOUCH_EVERY: i64 = 60;

/// A new session token (the cookie's value): 32 random bytes, base64url.
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Starts a session for `user_id`; returns its token. Expired sessions of everyone are
/// removed on the way (logins are rare enough for that to be cheap).
pub async fn create(app: &App, user_id: i64) -> ApiResult<String> {
    let now = now_unix();
    let (idle_before, created_before) = limits(app, now);
    db::sessions::prune(&app.db, idle_before, created_before).await?;
    let token = new_token();
    db::sessions::insert(&app.db, &token_digest(&token), user_id, now).await?;
    Ok(token)
}

fn limits(app: &App, now: i64) -> (i64, i64) {
    (
        now - app.config.session_idle_secs as i64,
        now - app.config.session_max_secs as i64,
    )
}

/// The live session of `token` and its user, or `None` (unknown, expired or its user
/// deleted). An expired session found here is deleted.
pub async fn find(app: &App, token: &str) -> ApiResult<Option<(SessionRow, UserRow)>> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let Some((s, u)) = db::sessions::find(&app.db, &token_digest(token)).await? else {
        return Ok(None);
    };
    let now = now_unix();
    let (idle_before, created_before) = limits(app, now);
    if s.last_seen < idle_before || s.created < created_before {
        db::sessions::delete(&app.db, s.id).await?;
        return Ok(None);
    }
    if now - s.last_seen >= TOUCH_EVERY {
        db::sessions::touch(&app.db, s.id, now).await?;
    }
    Ok(Some((s, u)))
}

/// Ends one session (logout).
pub async fn end(app: &App, session_id: i64) -> ApiResult<()> {
    db::sessions::delete(&app.db, session_id).await?;
    Ok(())
}

/// Ends every session of a user except `keep`.
pub async fn end_all_of(app: &App, user_id: i64, keep: Option<i64>) -> ApiResult<u64> {
    Ok(db::sessions::delete_of_user(&app.db, user_id, keep).await?)
}

/// The CSRF token that goes with a cookie value (a session token, or the login form's
/// pre-session token): HMAC-SHA256 under the server secret, hex.
pub fn csrf_token(app: &App, cookie_value: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&app.config.secret_key.0)
        .expect("HMAC takes any key length");
    mac.update(b"ods-ui-csrf\0");
    mac.update(cookie_value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `given` is the CSRF token of `cookie_value` (constant time).
pub fn csrf_ok(app: &App, cookie_value: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    let want = csrf_token(app, cookie_value);
    !cookie_value.is_empty() && want.as_bytes().ct_eq(given.as_bytes()).into()
}
