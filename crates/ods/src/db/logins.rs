//! The `login_limits` table: failed logins counted per (address or account, the
//! millisecond they happened in, `win`) with one atomic upsert, so every node sharing
//! the database sees the same counts; `win = 0` holds the time of a successful login
//! instead. Keys are SHA-256 digests: no address or username is stored in the clear.

use sqlx::Row;

use super::{Db, Dialect};

/// Adds one to the counter of `key` at millisecond `win` and returns the new count.
pub async fn increment(db: &Db, key: &str, win: i64) -> sqlx::Result<i64> {
    let upsert = match db.dialect {
        Dialect::MySql => {
            "INSERT INTO login_limits (k, win, n) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE n = n + 1"
        }
        _ => {
            "INSERT INTO login_limits (k, win, n) VALUES (?, ?, 1) \
             ON CONFLICT (k, win) DO UPDATE SET n = login_limits.n + 1"
        }
    };
    let mut conn = db.writer().acquire().await?;
    db.q(upsert)
        .bind(key.to_string())
        .bind(win)
        .execute(&mut *conn)
        .await?;
    let row = db
        .q("SELECT n FROM login_limits WHERE k = ? AND win = ?")
        .bind(key.to_string())
        .bind(win)
        .fetch_one(&mut *conn)
        .await?;
    row.try_get(0)
}

/// The failures of `key` after `since_ms`: how many, and the time of the oldest.
pub async fn recent(db: &Db, key: &str, since_ms: i64) -> sqlx::Result<(i64, Option<i64>)> {
    let rows = db
        .q("SELECT n, win FROM login_limits WHERE k = ? AND win > ? AND win <> 0")
        .bind(key.to_string())
        .bind(since_ms)
        .fetch_all(db.writer())
        .await?;
    let mut n = 0;
    let mut oldest: Option<i64> = None;
    for r in rows {
        n += r.try_get::<i64, _>(0)?;
        let w: i64 = r.try_get(1)?;
        oldest = Some(oldest.map_or(w, |o| o.min(w)));
    }
    Ok((n, oldest))
}

/// The time (Unix seconds) of `key`'s successful login record, if any.
pub async fn trusted_since(db: &Db, key: &str) -> sqlx::Result<Option<i64>> {
    db.q("SELECT n FROM login_limits WHERE k = ? AND win = 0")
        .bind(key.to_string())
        .fetch_optional(db.writer())
        .await?
        .map(|r| r.try_get::<i64, _>(0))
        .transpose()
}

/// Sets `key`'s value in window `win` to `n` (the time of a successful login).
pub async fn set(db: &Db, key: &str, win: i64, n: i64) -> sqlx::Result<()> {
    let upsert = match db.dialect {
        Dialect::MySql => {
            "INSERT INTO login_limits (k, win, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = VALUES(n)"
        }
        _ => {
            "INSERT INTO login_limits (k, win, n) VALUES (?, ?, ?) \
             ON CONFLICT (k, win) DO UPDATE SET n = excluded.n"
        }
    };
    db.q(upsert)
        .bind(key.to_string())
        .bind(win)
        .bind(n)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Forgets every window of `key` (but not its `win = 0` record).
pub async fn clear(db: &Db, key: &str) -> sqlx::Result<()> {
    db.q("DELETE FROM login_limits WHERE k = ? AND win <> 0")
        .bind(key.to_string())
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Drops failures before `oldest_win` (ms) and `win = 0` records older than `oldest_trust`.
pub async fn prune(db: &Db, oldest_win: i64, oldest_trust: i64) -> sqlx::Result<u64> {
    let r = db
        .q("DELETE FROM login_limits WHERE (win <> 0 AND win < ?) OR (win = 0 AND n < ?)")
        .bind(oldest_win)
        .bind(oldest_trust)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected())
}
