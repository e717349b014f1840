//! The Jamf Pro service (JAMF.md §2–4, issue 8 item 4): the instances this server
//! publishes package records to, the state of each package's record per instance, the
//! scan that queues an upsert for every package whose record is not in sync, the
//! periodic and on-demand reconcile, and what the Jamf webhook receiver may do
//! (schedule a reconcile). Its jobs: `jamf_upsert`, `jamf_reconcile` (`jobs`).
//!
//! One server of the mesh publishes a given record: instances are per-server
//! configuration, never synced, so the server where an admin configures an instance is
//! the only one that calls it. Configure each Jamf Pro instance on one server.

pub mod client;
pub mod jobs;
pub mod upsert;

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::db::{self, jamf::InstanceFields, jamf::InstanceRow, packages::PackageRow};
use crate::jobs as queue;
use crate::model::Status;
pub use jobs::{JamfReconcile, JamfUpsert};

/// Checksum types a record may carry (JAMF.md §2).
pub const HASH_TYPES: [&str; 3] = ["SHA_512", "MD5", "SHA3_512"];

/// One package's record state on one instance, as the package detail shows it.
pub struct PackageState {
    pub instance_id: i64,
    pub instance_name: String,
    pub state: String,
    pub record_id: Option<String>,
    pub hash_type: Option<String>,
    pub reason: Option<String>,
}

/// The record states of `pkg`: one per instance that takes its stage (`pending` until
/// an upsert ran), and any other instance that has a record of it.
pub async fn states(app: &App, pkg: &PackageRow) -> sqlx::Result<Vec<PackageState>> {
    let rows: HashMap<i64, db::jamf::RecordRow> = db::jamf::records_of_package(&app.db, &pkg.uuid)
        .await?
        .into_iter()
        .map(|r| (r.instance_id, r))
        .collect();
    let mut out = Vec::new();
    for inst in db::jamf::list(&app.db).await? {
        let row = rows.get(&inst.id);
        if row.is_none() && inst.stage != pkg.stage {
            continue;
        }
        out.push(PackageState {
            instance_id: inst.id,
            instance_name: inst.name.clone(),
            state: row.map_or("pending".into(), |r| r.state.clone()),
            record_id: row.and_then(|r| r.record_id.clone()),
            hash_type: row.and_then(|r| r.hash_type.clone()),
            reason: row.and_then(|r| r.reason.clone()).or_else(|| {
                row.is_none().then(|| {
                    if pkg.status == Status::Public {
                        "queued".to_string()
                    } else {
                        "the package is not verified here yet".to_string()
                    }
                })
            }),
        });
    }
    Ok(out)
}

pub async fn create(app: &App, fields: &InstanceFields) -> anyhow::Result<InstanceRow> {
    let id = db::jamf::insert(&app.db, fields).await?;
    schedule_reconcile(app, id).await?;
    db::jamf::get(&app.db, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the new instance vanished"))
}

/// Writes new settings; a new URL or new credentials drop the cached token, and the
/// records are checked again.
pub async fn update(
    app: &App,
    before: &InstanceRow,
    fields: &InstanceFields,
) -> anyhow::Result<InstanceRow> {
    let drop_token = before.url != fields.url
        || before.auth != fields.auth
        || before.username != fields.username
        || before.secret_sealed != fields.secret_sealed;
    db::jamf::update(&app.db, before.id, fields, drop_token).await?;
    schedule_reconcile(app, before.id).await?;
    db::jamf::get(&app.db, before.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the instance vanished"))
}

/// Queues a reconcile of the instance to run now (or makes the queued one due now);
/// returns the job's id when one was queued.
pub async fn schedule_reconcile(app: &App, instance_id: i64) -> sqlx::Result<Option<i64>> {
    let job = JamfReconcile { instance_id };
    let mut conn = app.db.writer().acquire().await?;
    let id = queue::enqueue(&app.db, &mut conn, &job, Duration::ZERO).await?;
    if id.is_none() {
        let key = queue::Job::dedup_key(&job).unwrap_or_default();
        db::jobs::run_now(&app.db, &mut conn, &key).await?;
    }
    drop(conn);
    app.jobs_wake.notify_one();
    Ok(id)
}

/// A Jamf Pro webhook arrived: whatever it says, reconcile every instance (duplicate
/// and out-of-order events collapse into the queued reconcile). Returns how many.
pub async fn webhook_received(app: &App) -> sqlx::Result<usize> {
    let instances = db::jamf::list(&app.db).await?;
    for inst in &instances {
        schedule_reconcile(app, inst.id).await?;
    }
    Ok(instances.len())
}

/// One look at every instance: queue an upsert for each package of its stage whose
/// record is not known to be in sync, and keep one periodic reconcile queued.
pub async fn scan(app: &App) -> anyhow::Result<()> {
    let instances = db::jamf::list(&app.db).await?;
    if instances.is_empty() {
        return Ok(());
    }
    let packages = db::packages::list(&app.db).await?;
    // On SQLite this is the one writer connection: read nothing through the writer pool
    // while it is held.
    let mut conn = app.db.writer().acquire().await?;
    let mut queued = 0;
    for inst in &instances {
        let reconcile = JamfReconcile {
            instance_id: inst.id,
        };
        let key = queue::Job::dedup_key(&reconcile).unwrap_or_default();
        if db::jobs::count_pending(&app.db, &[key]).await? == 0 {
            let delay = match inst.last_reconcile {
                None => Duration::ZERO,
                Some(_) => Duration::from_secs(app.config.jamf.reconcile_secs),
            };
            queue::enqueue(&app.db, &mut conn, &reconcile, delay).await?;
        }
        let rows: HashMap<String, db::jamf::RecordRow> =
            db::jamf::records_of_instance(&app.db, inst.id)
                .await?
                .into_iter()
                .map(|r| (r.package_uuid.clone(), r))
                .collect();
        for p in packages
            .iter()
            .filter(|p| p.stage == inst.stage && p.status == Status::Public)
        {
            let due = match rows.get(&p.uuid) {
                None => true,
                Some(r) if r.state == "pending" => true,
                Some(r) if r.state == "synced" => r.hash_type.as_deref() != Some(&inst.hash_type),
                Some(_) => false, // failed: the next reconcile tries again
            };
            if due {
                let job = JamfUpsert {
                    instance_id: inst.id,
                    uuid: p.uuid.clone(),
                };
                if queue::enqueue(&app.db, &mut conn, &job, Duration::ZERO)
                    .await?
                    .is_some()
                {
                    queued += 1;
                }
            }
        }
    }
    if queued > 0 {
        tracing::debug!(queued, "Jamf Pro upserts queued");
        app.jobs_wake.notify_one();
    }
    Ok(())
}

/// Scans on every catalog change and every `ODS_JAMF_SCAN_SECS`, until `stop`.
pub async fn watch(app: App, stop: CancellationToken) {
    let mut changes = app.sync.cursor.subscribe();
    let every = Duration::from_secs(app.config.jamf.scan_secs);
    loop {
        if let Err(e) = scan(&app).await {
            tracing::warn!("Jamf Pro scan failed: {e:#}");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
            r = changes.changed() => {
                if r.is_err() {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                }
            }
        }
    }
}
