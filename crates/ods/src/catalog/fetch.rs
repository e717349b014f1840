//! Holds a package this server should have (DESIGN.md §4.5): its bytes come from the
//! peers (`peers::transfer`); once they are in place and verified, the package turns
//! Public here, and the change is recorded and announced.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::db::events::{self, NewEvent};
use crate::db::{catalog, packages, transfers};
use crate::jobs::{self, Job, Run};
use crate::model::Status;
use crate::peers::transfer::{self, Arrived};
use crate::storage::gc::BlobGc;

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
}

impl Run<App> for Fetch {
    async fn run(self, app: App) -> anyhow::Result<()> {
        // And one transfer per package in this process.
        let Some(_claim) = app.sync.in_flight.take(&self.uuid) else {
            return Ok(());
        };
        let _permit = app.sync.transfers.acquire().await?;
        match transfer::bring(&app, &self.uuid).await? {
            Some(arrived) => finish(&app, arrived).await,
            None => Ok(()),
        }
    }
    async fn gave_up(self, app: App, error: String) -> anyhow::Result<()> {
        super::transfer_failed(&app, &self.uuid, &error).await
    }
}

/// The bytes are in place and verified: record the content and turn the package Public.
async fn finish(app: &App, arrived: Arrived) -> anyhow::Result<()> {
    let Arrived {
        record: rec,
        chunks,
        started,
    } = arrived;
    let db = &app.db;
    let uuid = rec.uuid.as_str();
    let mut tx = db.begin().await?;
    catalog::lock(db, &mut tx).await?;
    if packages::by_uuid(db, &mut tx, uuid).await?.is_none() {
        // Deleted or withdrawn while arriving: leave the blob to the collector.
        tx.rollback().await?;
        let mut conn = db.writer().acquire().await?;
        let gc = BlobGc {
            sha256: rec.sha256.clone(),
        };
        jobs::enqueue(db, &mut conn, &gc, Duration::ZERO).await?;
        return Ok(());
    }
    packages::insert_blob(db, &mut tx, &rec.sha256, rec.file_size, &rec.sha1, &chunks).await?;
    packages::set_status(db, &mut tx, uuid, Status::Public, None).await?;
    transfers::forget_on(db, &mut tx, uuid).await?;
    let seq = catalog::touch(db, &mut tx, uuid).await?;
    events::record(
        db,
        &mut tx,
        NewEvent {
            kind: "package.public",
            package_uuid: Some(uuid),
            filename: Some(&rec.filename),
            peer_iss: None,
            message: format!(
                "{} is Public here (synced in {:.1} s)",
                rec.filename,
                started.elapsed().as_secs_f64()
            ),
        },
    )
    .await?;
    super::rollout::check(app, &mut tx, uuid).await?;
    super::announce(db, &mut tx, None).await?;
    tx.commit().await?;
    super::changed(app, seq);
    tracing::info!(filename = %rec.filename, secs = started.elapsed().as_secs_f64(), "transfer complete");
    Ok(())
}
