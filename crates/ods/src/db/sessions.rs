//! Web UI sessions (`sessions`): one row per logged-in browser, keyed by the SHA-256
//! of its token, with its user and the times that decide its expiry.

use sqlx::{FromRow, Row};

use super::Db;
use super::users::UserRow;

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: i64,
    pub user_id: i64,
    pub created: i64,
    pub last_seen: i64,
}

pub async fn insert(db: &Db, token_hash: &str, user_id: i64, now: i64) -> sqlx::Result<i64> {
    db.insert_id(
        db.writer(),
        "INSERT INTO sessions (token_hash, user_id, created, last_seen) VALUES (?, ?, ?, ?)",
        |q| {
            q.bind(token_hash.to_string())
                .bind(user_id)
                .bind(now)
                .bind(now)
        },
    )
    .await
}

/// The session with this token hash and its user, if both exist.
pub async fn find(db: &Db, token_hash: &str) -> sqlx::Result<Option<(SessionRow, UserRow)>> {
    let row = db
        .q("SELECT s.id, s.user_id, s.created, s.last_seen, \
            u.id, u.username, u.password_hash, u.role, u.must_change_password, u.created \
            FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?")
        .bind(token_hash.to_string())
        .fetch_optional(db.reader())
        .await?;
    let Some(r) = row else { return Ok(None) };
    let s = SessionRow {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        created: r.try_get(2)?,
        last_seen: r.try_get(3)?,
    };
    let role: String = r.try_get(7)?;
    let flag: i64 = r.try_get(8)?;
    let u = UserRow {
        id: r.try_get(4)?,
        username: r.try_get(5)?,
        password_hash: r.try_get(6)?,
        role: role
            .try_into()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        must_change_password: flag != 0,
        created: r.try_get(9)?,
    };
    Ok(Some((s, u)))
}

pub async fn touch(db: &Db, id: i64, now: i64) -> sqlx::Result<()> {
    db.q("UPDATE sessions SET last_seen = ? WHERE id = ?")
        .bind(now)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

pub async fn delete(db: &Db, id: i64) -> sqlx::Result<()> {
    db.q("DELETE FROM sessions WHERE id = ?")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Ends every session of a user but `keep` (the one making the change, if any).
pub async fn delete_of_user(db: &Db, user_id: i64, keep: Option<i64>) -> sqlx::Result<u64> {
    let r = db
        .q("DELETE FROM sessions WHERE user_id = ? AND id <> ?")
        .bind(user_id)
        .bind(keep.unwrap_or(-1))
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected())
}

/// Removes sessions idle since before `idle_before` or created before `created_before`.
pub async fn prune(db: &Db, idle_before: i64, created_before: i64) -> sqlx::Result<u64> {
    let r = db
        .q("DELETE FROM sessions WHERE last_seen < ? OR created < ?")
        .bind(idle_before)
        .bind(created_before)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected())
}
