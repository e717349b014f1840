//! This server's own identity and settings (the seed's About page): a single row.

use sqlx::FromRow;

use super::{Db, Flag};
use crate::model::{Stage, now_unix};
use crate::secrets::{Sealer, random_bytes, random_id};

#[derive(Debug, Clone, FromRow)]
pub struct ServerRow {
    pub name: String,
    pub url: Option<String>,
    pub iss: String,
    pub key_sealed: Option<String>,
    #[sqlx(try_from = "String")]
    pub stage: Stage,
    #[sqlx(try_from = "Flag")]
    pub firewalled: bool,
    pub download_auth: String,
    pub created: i64,
}

/// The settings, read on `conn` (use inside a transaction).
pub async fn get_on(db: &Db, conn: &mut sqlx::AnyConnection) -> sqlx::Result<ServerRow> {
    let row = db
        .q("SELECT name, url, iss, key_sealed, stage, firewalled, download_auth, created FROM server WHERE id = 1")
        .fetch_one(conn)
        .await?;
    ServerRow::from_row(&row)
}

pub async fn get(db: &Db) -> sqlx::Result<ServerRow> {
    let row = db
        .q("SELECT name, url, iss, key_sealed, stage, firewalled, download_auth, created FROM server WHERE id = 1")
        .fetch_one(db.reader())
        .await?;
    ServerRow::from_row(&row)
}

/// Creates this server's identity on first start: a random ISS id and key.
pub async fn ensure(db: &Db, sealer: &Sealer) -> sqlx::Result<bool> {
    use base64::Engine;
    let exists = db
        .q("SELECT 1 FROM server WHERE id = 1")
        .fetch_optional(db.writer())
        .await?;
    if exists.is_some() {
        return Ok(false);
    }
    let key = base64::engine::general_purpose::URL_SAFE.encode(random_bytes::<32>());
    let res = db
        .q("INSERT INTO server (id, name, url, iss, key_sealed, stage, firewalled, download_auth, created) \
            VALUES (1, 'ODS', NULL, ?, ?, 'Prod', 0, 'none', ?)")
        .bind(random_id())
        .bind(sealer.seal(&key))
        .bind(now_unix())
        .execute(db.writer())
        .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The fields an admin may change (never iss or key).
#[derive(Debug, Default, Clone)]
pub struct ServerUpdate {
    pub name: Option<String>,
    pub url: Option<Option<String>>,
    pub stage: Option<Stage>,
    pub firewalled: Option<bool>,
    pub download_auth: Option<String>,
}

pub async fn update(db: &Db, conn: &mut sqlx::AnyConnection, u: &ServerUpdate) -> sqlx::Result<()> {
    let cur = {
        let row = db
            .q("SELECT name, url, iss, key_sealed, stage, firewalled, download_auth, created FROM server WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
        ServerRow::from_row(&row)?
    };
    db.q("UPDATE server SET name = ?, url = ?, stage = ?, firewalled = ?, download_auth = ? WHERE id = 1")
        .bind(u.name.clone().unwrap_or(cur.name))
        .bind(u.url.clone().unwrap_or(cur.url))
        .bind(u.stage.unwrap_or(cur.stage).as_str())
        .bind(i64::from(u.firewalled.unwrap_or(cur.firewalled)))
        .bind(u.download_auth.clone().unwrap_or(cur.download_auth))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
