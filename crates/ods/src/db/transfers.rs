//! Incoming transfers (`transfer_chunks`): which 1 MiB chunks of a package arriving
//! here are written, made durable and verified, so a restarted transfer fetches only
//! the missing ones.

use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, Row};

use super::Db;

/// Records chunks as written and verified (recording one twice is a no-op).
pub async fn record(db: &Db, uuid: &str, idxs: &[usize]) -> sqlx::Result<()> {
    for batch in idxs.chunks(200) {
        let mut sql = String::from("INSERT INTO transfer_chunks (uuid, idx) VALUES ");
        for i in 0..batch.len() {
            sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
        }
        let mut q = db.q(&db.insert_ignore(&sql));
        for idx in batch {
            q = q.bind(uuid.to_string()).bind(*idx as i64);
        }
        q.execute(db.writer()).await?;
    }
    Ok(())
}

/// Chunk indexes of an incoming transfer already written and verified.
pub async fn done(db: &Db, uuid: &str) -> sqlx::Result<HashSet<i64>> {
    let rows = db
        .q("SELECT idx FROM transfer_chunks WHERE uuid = ?")
        .bind(uuid.to_string())
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(|r| r.try_get::<i64, _>(0)).collect()
}

/// How many chunks of an incoming transfer are written and verified.
pub async fn count(db: &Db, uuid: &str) -> sqlx::Result<i64> {
    db.q("SELECT COUNT(*) FROM transfer_chunks WHERE uuid = ?")
        .bind(uuid.to_string())
        .fetch_one(db.reader())
        .await?
        .try_get(0)
}

/// Verified chunk counts of every incoming transfer, by package uuid.
pub async fn counts(db: &Db) -> sqlx::Result<HashMap<String, i64>> {
    let rows = db
        .q("SELECT uuid, COUNT(*) FROM transfer_chunks GROUP BY uuid")
        .fetch_all(db.reader())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
        .collect()
}

/// Forgets a transfer's progress, on `conn` (inside the caller's transaction).
pub async fn forget_on(db: &Db, conn: &mut AnyConnection, uuid: &str) -> sqlx::Result<()> {
    forget_many(db, conn, &[uuid]).await
}

/// Forgets the transfer progress of every package in `uuids`, in one statement.
pub async fn forget_many(db: &Db, conn: &mut AnyConnection, uuids: &[&str]) -> sqlx::Result<()> {
    if uuids.is_empty() {
        return Ok(());
    }
    let marks = super::marks(uuids.len());
    let sql = format!("DELETE FROM transfer_chunks WHERE uuid IN ({marks})");
    let q = super::bind_texts(db.q(&sql), uuids);
    q.execute(conn).await?;
    Ok(())
}

/// Forgets a transfer's progress (its assembled file failed the whole-file check).
pub async fn forget(db: &Db, uuid: &str) -> sqlx::Result<()> {
    let mut conn = db.writer().acquire().await?;
    forget_on(db, &mut conn, uuid).await
}
