//! Nonces of accepted peer requests (table `peer_nonces`), shared by every process on
//! the database and kept across restarts until their signature window has closed.

use super::Db;

/// Records `nonce` as used until `expires` (Unix seconds). False when it was already
/// recorded: the request is a replay.
pub async fn first_use(db: &Db, nonce: &str, expires: i64) -> sqlx::Result<bool> {
    let r = db
        .q("INSERT INTO peer_nonces (nonce, expires) VALUES (?, ?)")
        .bind(nonce.to_string())
        .bind(expires)
        .execute(db.writer())
        .await;
    match r {
        Ok(_) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes nonces whose window closed before `now`; returns how many.
pub async fn prune(db: &Db, now: i64) -> sqlx::Result<u64> {
    let r = db
        .q("DELETE FROM peer_nonces WHERE expires < ?")
        .bind(now)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected())
}
