//! What this server knows of its peers' copies (migration 5): `peer_holdings` says a
//! peer holds a package Public (as its catalog said, `available`), `rollouts` which
//! (package, stage) rollouts were already announced complete, so each is raised once,
//! and `peer_outages` which peers were announced unreachable (`ods.unreachable`), so
//! that `ods.recovered` follows exactly those.

use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, Row};

use super::Db;

/// Records that peer `iss` holds each of `held` Public and no longer holds any of
/// `dropped`: one statement for each list.
pub async fn set_holdings(
    db: &Db,
    conn: &mut AnyConnection,
    iss: &str,
    held: &[&str],
    dropped: &[&str],
) -> sqlx::Result<()> {
    if !held.is_empty() {
        let rows = super::rows("(?, ?)", held.len());
        let sql = db.insert_ignore(&format!(
            "INSERT INTO peer_holdings (peer_iss, uuid) VALUES {rows}"
        ));
        let mut q = db.q(&sql);
        for uuid in held {
            q = q.bind(iss.to_string()).bind(uuid.to_string());
        }
        q.execute(&mut *conn).await?;
    }
    if !dropped.is_empty() {
        let sql = format!(
            "DELETE FROM peer_holdings WHERE peer_iss = ? AND uuid IN ({})",
            super::marks(dropped.len())
        );
        let q = super::bind_texts(db.q(&sql).bind(iss.to_string()), dropped);
        q.execute(&mut *conn).await?;
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

/// Marks the rollouts of `(uuid, stage)` pairs complete; returns the pairs that were
/// not marked before. The caller holds the catalog lock (`db::catalog::lock`), so no
/// other writer marks the same pairs between the look and the insert.
pub async fn mark_complete_many(
    db: &Db,
    conn: &mut AnyConnection,
    pairs: &[(&str, &str)],
) -> sqlx::Result<HashSet<(String, String)>> {
    if pairs.is_empty() {
        return Ok(HashSet::new());
    }
    let uuids: Vec<&str> = pairs.iter().map(|(u, _)| *u).collect();
    let sql = format!(
        "SELECT uuid, stage FROM rollouts WHERE uuid IN ({})",
        super::marks(uuids.len())
    );
    let mut marked = HashSet::new();
    for row in super::bind_texts(db.q(&sql), &uuids)
        .fetch_all(&mut *conn)
        .await?
    {
        marked.insert((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?));
    }
    let new: HashSet<(String, String)> = pairs
        .iter()
        .map(|(u, s)| (u.to_string(), s.to_string()))
        .filter(|p| !marked.contains(p))
        .collect();
    if new.is_empty() {
        return Ok(new);
    }
    let rows = super::rows("(?, ?)", new.len());
    let sql = db.insert_ignore(&format!("INSERT INTO rollouts (uuid, stage) VALUES {rows}"));
    let mut q = db.q(&sql);
    for (uuid, stage) in &new {
        q = q.bind(uuid.clone()).bind(stage.clone());
    }
    q.execute(&mut *conn).await?;
    Ok(new)
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
