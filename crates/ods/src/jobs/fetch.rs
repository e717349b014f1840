//! Brings the bytes of a package this server should hold (DESIGN.md §4.5); the
//! transfer itself is `sync::transfer`.

use serde::{Deserialize, Serialize};

use super::Job;
use crate::app::App;

#[derive(Debug, Serialize, Deserialize)]
pub struct Fetch {
    pub uuid: String,
}

impl Job for Fetch {
    const KIND: &'static str = "fetch";
    const MAX_ATTEMPTS: i64 = 8;
    // Two processes must not fetch the same package at once.
    const EXCLUSIVE: bool = true;
    fn dedup_key(&self) -> Option<String> {
        Some(format!("fetch:{}", self.uuid))
    }
    async fn run(self, app: App) -> anyhow::Result<()> {
        crate::sync::transfer::run(&app, &self.uuid).await
    }
    async fn gave_up(self, app: App, error: String) -> anyhow::Result<()> {
        crate::sync::apply::transfer_failed(&app, &self.uuid, &error).await
    }
}

/// A source for `uuid` appeared: run its waiting transfer now (or queue one).
pub async fn hurry(app: &App, uuid: &str) -> anyhow::Result<()> {
    let mut conn = app.db.writer().acquire().await?;
    let Some(p) = crate::db::packages::by_uuid(&app.db, &mut conn, uuid).await? else {
        return Ok(());
    };
    if p.status == crate::model::Status::Public {
        return Ok(());
    }
    app.db
        .q("UPDATE jobs SET run_at = ? WHERE dedup_key = ? AND state = 'queued'")
        .bind(crate::model::now_millis())
        .bind(format!("fetch:{uuid}"))
        .execute(&mut *conn)
        .await?;
    super::enqueue(
        &app.db,
        &mut conn,
        &Fetch {
            uuid: uuid.to_string(),
        },
        std::time::Duration::ZERO,
    )
    .await?;
    app.jobs_wake.notify_one();
    Ok(())
}
