//! Registered ODS servers (the seed's `registered_ods`) with their link state: the
//! pair secret (sealed), how far we have read their catalog, and link health.

use sqlx::{AnyConnection, FromRow, Row};

use super::{Db, Flag};
use crate::model::{Identity, now_unix};

#[derive(Debug, Clone, FromRow)]
pub struct PeerRow {
    pub id: i64,
    pub iss: String,
    pub name: String,
    pub url: Option<String>,
    pub stage: String,
    #[sqlx(try_from = "Flag")]
    pub firewalled: bool,
    pub registered_on: i64,
    pub secret_sealed: Option<String>,
    /// How far we have read this peer's catalog (its change numbers).
    pub pulled: i64,
    /// How far this peer has our catalog, when we must push to it (we are firewalled).
    pub pushed: i64,
    pub last_contact: Option<i64>,
    pub last_error: Option<String>,
    pub rate_limit: Option<i64>,
}

const COLS: &str = "id, iss, name, url, stage, firewalled, registered_on, secret_sealed, pulled, pushed, last_contact, last_error, rate_limit";

/// The peers, read on `conn` (use inside a transaction: never a second connection).
pub async fn list_on(db: &Db, conn: &mut AnyConnection) -> sqlx::Result<Vec<PeerRow>> {
    let sql = format!("SELECT {COLS} FROM peers ORDER BY id");
    db.q(&sql)
        .fetch_all(conn)
        .await?
        .iter()
        .map(PeerRow::from_row)
        .collect()
}

pub async fn list(db: &Db) -> sqlx::Result<Vec<PeerRow>> {
    let sql = format!("SELECT {COLS} FROM peers ORDER BY id");
    db.q(&sql)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(PeerRow::from_row)
        .collect()
}

pub async fn by_id(db: &Db, id: i64) -> sqlx::Result<Option<PeerRow>> {
    let sql = format!("SELECT {COLS} FROM peers WHERE id = ?");
    db.q(&sql)
        .bind(id)
        .fetch_optional(db.reader())
        .await?
        .as_ref()
        .map(PeerRow::from_row)
        .transpose()
}

pub async fn by_iss(db: &Db, iss: &str) -> sqlx::Result<Option<PeerRow>> {
    let sql = format!("SELECT {COLS} FROM peers WHERE iss = ?");
    db.q(&sql)
        .bind(iss.to_string())
        .fetch_optional(db.reader())
        .await?
        .as_ref()
        .map(PeerRow::from_row)
        .transpose()
}

/// Creates or re-keys the link with a peer (registration is idempotent).
pub async fn upsert(
    db: &Db,
    conn: &mut AnyConnection,
    id: &Identity,
    secret_sealed: &str,
) -> sqlx::Result<()> {
    let exists = db
        .q("SELECT 1 FROM peers WHERE iss = ?")
        .bind(id.iss.clone())
        .fetch_optional(&mut *conn)
        .await?;
    let q = if exists.is_some() {
        db.q("UPDATE peers SET name = ?, url = ?, stage = ?, firewalled = ?, secret_sealed = ?, last_error = NULL, \
              pulled = 0, pushed = 0, registered_on = ? WHERE iss = ?")
    } else {
        db.q("INSERT INTO peers (name, url, stage, firewalled, secret_sealed, last_error, pulled, pushed, registered_on, iss) \
              VALUES (?, ?, ?, ?, ?, NULL, 0, 0, ?, ?)")
    };
    q.bind(id.name.clone())
        .bind(id.url.clone())
        .bind(id.stage.clone())
        .bind(i64::from(id.firewalled))
        .bind(secret_sealed.to_string())
        .bind(now_unix())
        .bind(id.iss.clone())
        .execute(conn)
        .await?;
    Ok(())
}

/// Refreshes what a peer says about itself (name, url, stage, firewalled mode).
pub async fn update_identity(db: &Db, id: &Identity) -> sqlx::Result<()> {
    db.q("UPDATE peers SET name = ?, url = ?, stage = ?, firewalled = ? WHERE iss = ?")
        .bind(id.name.clone())
        .bind(id.url.clone())
        .bind(id.stage.clone())
        .bind(i64::from(id.firewalled))
        .bind(id.iss.clone())
        .execute(db.writer())
        .await?;
    Ok(())
}

pub async fn delete(db: &Db, id: i64) -> sqlx::Result<bool> {
    let r = db
        .q("DELETE FROM peers WHERE id = ?")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_pulled(db: &Db, id: i64, pulled: i64) -> sqlx::Result<()> {
    db.q("UPDATE peers SET pulled = ? WHERE id = ?")
        .bind(pulled)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

pub async fn set_pushed(db: &Db, id: i64, pushed: i64) -> sqlx::Result<()> {
    db.q("UPDATE peers SET pushed = ? WHERE id = ?")
        .bind(pushed)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

pub async fn set_rate_limit(db: &Db, id: i64, limit: Option<i64>) -> sqlx::Result<()> {
    db.q("UPDATE peers SET rate_limit = ? WHERE id = ?")
        .bind(limit)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Records the outcome of a call to the peer; returns the previous error (to raise
/// `ods.unreachable` / `ods.recovered` only on a change).
pub async fn record_contact(db: &Db, id: i64, error: Option<&str>) -> sqlx::Result<Option<String>> {
    let prev: Option<String> = db
        .q("SELECT last_error FROM peers WHERE id = ?")
        .bind(id)
        .fetch_optional(db.writer())
        .await?
        .map(|r| r.try_get::<Option<String>, _>(0))
        .transpose()?
        .flatten();
    match error {
        None => db
            .q("UPDATE peers SET last_contact = ?, last_error = NULL WHERE id = ?")
            .bind(now_unix())
            .bind(id),
        Some(e) => db
            .q("UPDATE peers SET last_error = ? WHERE id = ?")
            .bind(e.to_string())
            .bind(id),
    }
    .execute(db.writer())
    .await?;
    Ok(prev)
}
