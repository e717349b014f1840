//! What this server knows of its peers' copies (migration 5): `peer_holdings` says a
//! peer holds a package Public (as its catalog said, `available`), `rollouts` which
//! (package, stage) rollouts were already announced complete, so each is raised once,
//! and `peer_outages` which peers were announced unreachable (`ods.unreachable`), so
//! that `ods.recovered` follows exactly those.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::Db;

/// Records whether peer `iss` holds `uuid` Public.
pub async fn set_holding(
    db: &Db,
    conn: &mut AnyConnection,
    iss: &str,
    uuid: &str,
    holds: bool,
) -> sqlx::Result<()> {
    if holds {
        db.q(&db.insert_ignore("INSERT INTO peer_holdings (peer_iss, uuid) VALUES (?, ?)"))
            .bind(iss.to_string())
            .bind(uuid.to_string())
            .execute(conn)
            .await?;
    } else {
        db.q("DELETE FROM peer_holdings WHERE peer_iss = ? AND uuid = ?")
            .bind(iss.to_string())
            .bind(uuid.to_string())
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The peers known to hold `uuid` Public.
pub async fn holders(db: &Db, conn: &mut AnyConnection, uuid: &str) -> sqlx::Result<Vec<String>> {
    db.q("SELECT peer_iss FROM peer_holdings WHERE uuid = ?")
        .bind(uuid.to_string())
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// The peers known to hold each of `uuids` Public (a package no peer holds is absent).
pub async fn holders_many(
    db: &Db,
    conn: &mut AnyConnection,
    uuids: &[&str],
) -> sqlx::Result<HashMap<String, Vec<String>>> {
    let mut held: HashMap<String, Vec<String>> = HashMap::new();
    if uuids.is_empty() {
        return Ok(held);
    }
    let marks = super::marks(uuids.len());
    let sql = format!("SELECT uuid, peer_iss FROM peer_holdings WHERE uuid IN ({marks})");
    let q = super::bind_texts(db.q(&sql), uuids);
    for row in q.fetch_all(conn).await? {
        held.entry(row.try_get(0)?)
            .or_default()
            .push(row.try_get(1)?);
    }
    Ok(held)
}

/// Marks the rollout of `uuid` at `stage` complete; false when it already was.
pub async fn mark_complete(
    db: &Db,
    conn: &mut AnyConnection,
    uuid: &str,
    stage: &str,
) -> sqlx::Result<bool> {
    let r = db
        .q(&db.insert_ignore("INSERT INTO rollouts (uuid, stage) VALUES (?, ?)"))
        .bind(uuid.to_string())
        .bind(stage.to_string())
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks peer `peer_id` announced unreachable; false when it already was.
pub async fn mark_outage(db: &Db, peer_id: i64) -> sqlx::Result<bool> {
    let r = db
        .q(&db.insert_ignore("INSERT INTO peer_outages (peer_id) VALUES (?)"))
        .bind(peer_id)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Clears the mark; true when the peer had been announced unreachable.
pub async fn clear_outage(db: &Db, peer_id: i64) -> sqlx::Result<bool> {
    let r = db
        .q("DELETE FROM peer_outages WHERE peer_id = ?")
        .bind(peer_id)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected() == 1)
}
