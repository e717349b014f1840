//! Holds a package this server should have (DESIGN.md §4.5): its bytes come from the
//! peers (`peers::transfer`; many small ones at once, `peers::bundle`); once they are
//! in place and verified, the package turns Public here, and the change is recorded
//! and announced. Packages that arrived together turn Public in one transaction.
//!
//! Fetch jobs run in a job lane of their own (`Lane`, `ODS_MAX_TRANSFERS` slots): a
//! long transfer over a slow link never holds a slot that catalog pulls, peer
//! notifications, Jamf or the collector need, and the setting is the real number of
//! transfers at once.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::db::events::{self, NewEvent};
use crate::db::packages::{self, NewBlob};
use crate::db::{catalog, transfers};
use crate::jobs::{self, Job, Run};
use crate::model::Status;
use crate::peers::transfer::{self, Arrived};
use crate::stats::{InProgress, TRANSFERS};
use crate::storage::gc::BlobGc;

/// The context of the transfer lane: the app, with the lane's own wake (`App::wake_jobs`
/// wakes both lanes).
#[derive(Clone)]
pub struct Lane(pub App);

impl jobs::Context for Lane {
    fn db(&self) -> &crate::db::Db {
        &self.0.db
    }
    fn wake(&self) -> &tokio::sync::Notify {
        &self.0.transfers_wake
    }
    fn worker_id(&self) -> &str {
        &self.0.worker_id
    }
}

/// The job kinds of the transfer lane.
pub fn job_registry() -> jobs::Registry<Lane> {
    let mut r = jobs::Registry::new();
    r.register::<Fetch>().register::<FetchSmall>();
    r
}

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
        Some(dedup_key(&self.uuid))
    }
}

/// Queues the job that holds package `uuid` of `size` bytes (`FetchSmall` for one chunk
/// or less, `Fetch` otherwise), on `conn` (pass the transaction that made the change).
pub async fn queue(
    db: &crate::db::Db,
    conn: &mut sqlx::AnyConnection,
    uuid: &str,
    size: i64,
) -> sqlx::Result<Option<i64>> {
    let uuid = uuid.to_string();
    if is_small(size) {
        jobs::enqueue(db, conn, &FetchSmall { uuid }, Duration::ZERO).await
    } else {
        jobs::enqueue(db, conn, &Fetch { uuid }, Duration::ZERO).await
    }
}

/// `queue` for many packages (uuid, size), in one statement per job kind.
pub async fn queue_many(
    db: &crate::db::Db,
    conn: &mut sqlx::AnyConnection,
    pkgs: &[(&str, i64)],
) -> sqlx::Result<()> {
    let (few, many): (Vec<_>, Vec<_>) = pkgs.iter().partition(|(_, size)| is_small(*size));
    let few: Vec<FetchSmall> = few
        .iter()
        .map(|(u, _)| FetchSmall {
            uuid: u.to_string(),
        })
        .collect();
    let many: Vec<Fetch> = many
        .iter()
        .map(|(u, _)| Fetch {
            uuid: u.to_string(),
        })
        .collect();
    if !few.is_empty() {
        jobs::enqueue_many(db, conn, &few, Duration::ZERO).await?;
    }
    if !many.is_empty() {
        jobs::enqueue_many(db, conn, &many, Duration::ZERO).await?;
    }
    Ok(())
}

/// Whether a package of `size` bytes is fetched as `FetchSmall` (one chunk or less).
fn is_small(size: i64) -> bool {
    (0..=crate::ingest::CHUNK_SIZE as i64).contains(&size)
}

/// The dedup key of both fetch kinds for `uuid`.
pub fn dedup_key(uuid: &str) -> String {
    format!("fetch:{uuid}")
}

impl Run<Lane> for Fetch {
    async fn run(self, Lane(app): Lane) -> anyhow::Result<()> {
        // And one transfer per package in this process.
        let Some(_claim) = app.sync.in_flight.take(&self.uuid) else {
            return Ok(());
        };
        let _slot = transfer_slot(&app).await?;
        hold(&app, &self.uuid).await
    }
    async fn gave_up(self, Lane(app): Lane, error: String) -> anyhow::Result<()> {
        super::transfer_failed(&app, &self.uuid, &error).await
    }
}

/// A transfer permit (`ODS_MAX_TRANSFERS`), counted in `ods_transfers_in_progress`
/// while it is held.
async fn transfer_slot(
    app: &App,
) -> Result<(tokio::sync::SemaphorePermit<'_>, InProgress), tokio::sync::AcquireError> {
    let permit = app.sync.transfers.acquire().await?;
    Ok((permit, InProgress::start(TRANSFERS)))
}

/// Brings one package's bytes the general way and turns it Public. The caller holds
/// its claim and a transfer permit.
async fn hold(app: &App, uuid: &str) -> anyhow::Result<()> {
    match transfer::bring(app, uuid).await? {
        Some(arrived) => finish(app, vec![arrived]).await,
        None => Ok(()),
    }
}

/// `Fetch` for a package of one chunk or less, queued instead of it (same dedup key,
/// so only one of the two is ever queued for a package). Up to `BATCH` are claimed
/// together: their bytes come in bundles (`peers::bundle`, one request for many
/// packages), and they turn Public in one transaction. What a bundle did not bring
/// takes the general way, one by one.
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchSmall {
    pub uuid: String,
}

impl Job for FetchSmall {
    const KIND: &'static str = "fetch_small";
    const MAX_ATTEMPTS: i64 = Fetch::MAX_ATTEMPTS;
    const EXCLUSIVE: bool = true;
    const BATCH: usize = crate::peers::bundle::MAX_COUNT;
    fn dedup_key(&self) -> Option<String> {
        Some(dedup_key(&self.uuid))
    }
}

impl Run<Lane> for FetchSmall {
    async fn run(self, lane: Lane) -> anyhow::Result<()> {
        Fetch { uuid: self.uuid }.run(lane).await
    }
    async fn gave_up(self, Lane(app): Lane, error: String) -> anyhow::Result<()> {
        super::transfer_failed(&app, &self.uuid, &error).await
    }
    async fn run_batch(jobs: Vec<Self>, Lane(app): Lane) -> Vec<anyhow::Result<()>> {
        let _slot = match transfer_slot(&app).await {
            Ok(slot) => slot,
            Err(e) => {
                let why = e.to_string();
                return jobs.iter().map(|_| Err(anyhow::anyhow!("{why}"))).collect();
            }
        };
        // One transfer per package in this process: one already running is done here.
        let claims: Vec<_> = jobs
            .iter()
            .map(|j| app.sync.in_flight.take(&j.uuid))
            .collect();
        let claimed: Vec<&str> = jobs
            .iter()
            .zip(&claims)
            .filter(|(_, c)| c.is_some())
            .map(|(j, _)| j.uuid.as_str())
            .collect();
        let mut arrived = match transfer::bring_small(&app, &claimed).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "bundle transfer failed; one by one instead");
                Default::default()
            }
        };
        let batch: Vec<Arrived> = claimed.iter().filter_map(|u| arrived.remove(*u)).collect();
        let together: Vec<String> = batch.iter().map(|a| a.record.uuid.clone()).collect();
        let finished = if batch.is_empty() {
            Ok(())
        } else {
            finish(&app, batch).await
        };
        let mut results = Vec::with_capacity(jobs.len());
        for (job, claim) in jobs.iter().zip(&claims) {
            results.push(if claim.is_none() {
                Ok(())
            } else if together.contains(&job.uuid) {
                finished
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e:#}"))
            } else {
                hold(&app, &job.uuid).await
            });
        }
        results
    }
}

/// The bytes are in place and verified: record the content and turn the packages
/// Public, all in one transaction, with one statement per step for the whole batch
/// (a batch of small packages cost about sixteen statements a package before).
async fn finish(app: &App, arrived: Vec<Arrived>) -> anyhow::Result<()> {
    let db = &app.db;
    let mut tx = db.begin().await?;
    catalog::lock(db, &mut tx).await?;
    let uuids: Vec<&str> = arrived.iter().map(|a| a.record.uuid.as_str()).collect();
    let here: HashSet<String> = packages::by_uuids(db, &mut tx, &uuids)
        .await?
        .into_iter()
        .map(|p| p.uuid)
        .collect();
    let (public, gone): (Vec<&Arrived>, Vec<&Arrived>) =
        arrived.iter().partition(|a| here.contains(&a.record.uuid));
    // Deleted or withdrawn while arriving: leave the blob to the collector.
    for a in gone {
        let gc = BlobGc {
            sha256: a.record.sha256.clone(),
        };
        jobs::enqueue(db, &mut tx, &gc, Duration::ZERO).await?;
    }
    if public.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    let blobs: Vec<NewBlob> = public
        .iter()
        .map(|a| NewBlob {
            sha256: &a.record.sha256,
            size: a.record.file_size,
            sha1: &a.record.sha1,
            chunks: &a.chunks,
        })
        .collect();
    packages::insert_blobs(db, &mut tx, &blobs).await?;
    let uuids: Vec<&str> = public.iter().map(|a| a.record.uuid.as_str()).collect();
    packages::set_status_many(db, &mut tx, &uuids, Status::Public, None).await?;
    transfers::forget_many(db, &mut tx, &uuids).await?;
    let seq = catalog::touch_many(db, &mut tx, &uuids).await?;
    let messages: Vec<String> = public
        .iter()
        .map(|a| {
            let secs = a.started.elapsed().as_secs_f64();
            format!(
                "{} is Public here (synced in {secs:.1} s)",
                a.record.filename
            )
        })
        .collect();
    let recorded: Vec<NewEvent> = public
        .iter()
        .zip(messages)
        .map(|(a, message)| NewEvent {
            kind: "package.public",
            package_uuid: Some(&a.record.uuid),
            filename: Some(&a.record.filename),
            peer_iss: None,
            message,
        })
        .collect();
    events::record_many(db, &mut tx, &recorded).await?;
    super::rollout::check_many(app, &mut tx, &uuids).await?;
    super::announce(db, &mut tx, None).await?;
    tx.commit().await?;
    super::changed(app, seq);
    for a in public {
        tracing::info!(filename = %a.record.filename, secs = a.started.elapsed().as_secs_f64(), "transfer complete");
    }
    Ok(())
}
