//! Registered ODS servers (the seed's `registered_ods`).

use sqlx::Row;

use super::Db;

#[derive(Debug, Clone)]
pub struct PeerRow {
    pub id: i64,
    pub iss: String,
    pub name: String,
    pub url: Option<String>,
    pub stage: String,
    pub firewalled: bool,
    pub registered_on: i64,
}

pub async fn list(db: &Db) -> sqlx::Result<Vec<PeerRow>> {
    let rows = db
        .q("SELECT id, iss, name, url, stage, firewalled, registered_on FROM peers ORDER BY id")
        .fetch_all(db.reader())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PeerRow {
                id: r.try_get("id")?,
                iss: r.try_get("iss")?,
                name: r.try_get("name")?,
                url: r.try_get("url")?,
                stage: r.try_get("stage")?,
                firewalled: r.try_get::<i64, _>("firewalled")? != 0,
                registered_on: r.try_get("registered_on")?,
            })
        })
        .collect()
}
