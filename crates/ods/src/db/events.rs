//! The event log (DESIGN.md §5): what happened, as the admin API lists it.

use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use super::Db;
use crate::model::now_unix;

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct EventRow {
    pub id: i64,
    pub kind: String,
    pub package_uuid: Option<String>,
    pub filename: Option<String>,
    pub peer_iss: Option<String>,
    pub message: Option<String>,
    pub created: i64,
}

/// An event about to be recorded.
#[derive(Debug, Default, Clone)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub package_uuid: Option<&'a str>,
    pub filename: Option<&'a str>,
    pub peer_iss: Option<&'a str>,
    pub message: String,
}

pub async fn record(db: &Db, conn: &mut AnyConnection, e: NewEvent<'_>) -> sqlx::Result<()> {
    record_many(db, conn, &[e]).await
}

/// Records several events, in order, in one statement.
pub async fn record_many(
    db: &Db,
    conn: &mut AnyConnection,
    events: &[NewEvent<'_>],
) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = super::rows("(?, ?, ?, ?, ?, ?)", events.len());
    let sql = format!(
        "INSERT INTO events (kind, package_uuid, filename, peer_iss, message, created) VALUES {rows}"
    );
    let mut q = db.q(&sql);
    let now = now_unix();
    for e in events {
        q = q
            .bind(e.kind.to_string())
            .bind(e.package_uuid.map(str::to_string))
            .bind(e.filename.map(str::to_string))
            .bind(e.peer_iss.map(str::to_string))
            .bind(e.message.clone())
            .bind(now);
    }
    q.execute(conn).await?;
    Ok(())
}

/// Events after id `after_id`, oldest first: of `kind` when given, and about
/// `package` (its UUID or its filename) when given.
pub async fn list(
    db: &Db,
    after_id: i64,
    kind: Option<&str>,
    package: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    let mut sql = String::from(
        "SELECT id, kind, package_uuid, filename, peer_iss, message, created FROM events WHERE id > ?",
    );
    if kind.is_some() {
        sql.push_str(" AND kind = ?");
    }
    if package.is_some() {
        sql.push_str(" AND (package_uuid = ? OR filename = ?)");
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    let mut q = db.q(&sql).bind(after_id);
    if let Some(k) = kind {
        q = q.bind(k.to_string());
    }
    if let Some(p) = package {
        q = q.bind(p.to_string()).bind(p.to_string());
    }
    q.bind(limit)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(EventRow::from_row)
        .collect()
}
