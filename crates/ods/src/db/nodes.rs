//! The `nodes` table: every `ods serve` / `ods worker` process on this database writes
//! its heartbeat here, so the others can tell a live node's staging files and jobs
//! from a dead one's, and a node started with another `SECRET_KEY` is refused.

use sqlx::Row;

use super::Db;
use crate::model::now_millis;

/// A node seen in the table.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: String,
    pub name: String,
    pub secret_check: String,
    pub last_seen: i64,
}

/// Records (or refreshes) the heartbeat of node `id`. Each node writes only its own
/// row, so an update-then-insert cannot race with another writer.
pub async fn beat(db: &Db, id: &str, name: &str, secret_check: &str) -> sqlx::Result<()> {
    let now = now_millis();
    let r = db
        .q("UPDATE nodes SET last_seen = ? WHERE id = ?")
        .bind(now)
        .bind(id.to_string())
        .execute(db.writer())
        .await?;
    if r.rows_affected() == 0 {
        db.q(
            "INSERT INTO nodes (id, name, secret_check, started, last_seen) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(name.to_string())
        .bind(secret_check.to_string())
        .bind(now)
        .bind(now)
        .execute(db.writer())
        .await?;
    }
    Ok(())
}

/// Nodes whose heartbeat is more recent than `timeout_ms` ago.
pub async fn live(db: &Db, timeout_ms: i64) -> sqlx::Result<Vec<NodeRow>> {
    let rows = db
        .q("SELECT id, name, secret_check, last_seen FROM nodes WHERE last_seen >= ? ORDER BY id")
        .bind(now_millis() - timeout_ms)
        .fetch_all(db.writer())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(NodeRow {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                secret_check: r.try_get(2)?,
                last_seen: r.try_get(3)?,
            })
        })
        .collect()
}

/// Removes node `id` (a clean shutdown) and rows silent for more than a day.
pub async fn remove(db: &Db, id: &str) -> sqlx::Result<()> {
    db.q("DELETE FROM nodes WHERE id = ? OR last_seen < ?")
        .bind(id.to_string())
        .bind(now_millis() - 86_400_000)
        .execute(db.writer())
        .await?;
    Ok(())
}
