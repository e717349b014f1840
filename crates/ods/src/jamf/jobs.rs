//! The Jamf jobs: `jamf_upsert` (one package's record on one instance) and
//! `jamf_reconcile` (every record of an instance: the drift report, upserts for what is
//! out of sync and, when the instance says so, deletion of records whose package is
//! gone). Every call to Jamf Pro runs in one of them: retried, visible, durable.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{Client, q};
use super::upsert;
use crate::app::App;
use crate::db::{self, jamf::DriftRow, jamf::RecordRow};
use crate::jobs::{self, Job, Run};
use crate::model::{Status, now_unix};

#[derive(Debug, Serialize, Deserialize)]
pub struct JamfUpsert {
    pub instance_id: i64,
    pub uuid: String,
}

impl Job for JamfUpsert {
    const KIND: &'static str = "jamf_upsert";
    const MAX_ATTEMPTS: i64 = 8;
    const EXCLUSIVE: bool = true;
    fn dedup_key(&self) -> Option<String> {
        Some(format!("jamf_upsert:{}:{}", self.instance_id, self.uuid))
    }
}

/// Writes a record's state.
pub async fn put_state(
    app: &App,
    instance_id: i64,
    pkg: &db::packages::PackageRow,
    state: &str,
    record_id: Option<String>,
    hash: Option<(&str, &str)>,
    reason: Option<String>,
) -> sqlx::Result<()> {
    db::jamf::put_record(
        &app.db,
        &RecordRow {
            instance_id,
            package_uuid: pkg.uuid.clone(),
            filename: pkg.filename.clone(),
            state: state.to_string(),
            record_id,
            hash_type: hash.map(|h| h.0.to_string()),
            hash_value: hash.map(|h| h.1.to_string()),
            reason,
            updated: 0,
        },
    )
    .await
}

impl Run<App> for JamfUpsert {
    async fn run(self, app: App) -> anyhow::Result<()> {
        let Some(inst) = db::jamf::get(&app.db, self.instance_id).await? else {
            return Ok(()); // the instance was removed
        };
        let mut conn = app.db.reader().acquire().await?;
        let Some(pkg) = db::packages::by_uuid(&app.db, &mut conn, &self.uuid).await? else {
            return Ok(()); // deleted meanwhile; reconcile handles its record
        };
        drop(conn);
        let previous = db::jamf::records_of_package(&app.db, &pkg.uuid)
            .await?
            .into_iter()
            .find(|r| r.instance_id == inst.id);
        let keep_id = previous.as_ref().and_then(|r| r.record_id.clone());
        if let Some(why) = upsert::not_ready(&app, &inst, &pkg).await? {
            if pkg.stage == inst.stage {
                put_state(&app, inst.id, &pkg, "pending", keep_id, None, Some(why)).await?;
            } else {
                db::jamf::delete_record(&app.db, inst.id, &pkg.uuid).await?;
            }
            return Ok(());
        }
        let mut client = match Client::new(&app, inst.clone()) {
            Ok(c) => c,
            Err(e) => {
                // A setting, not a passing failure: retrying would not help.
                put_state(
                    &app,
                    inst.id,
                    &pkg,
                    "failed",
                    keep_id,
                    None,
                    Some(e.to_string()),
                )
                .await?;
                return Ok(());
            }
        };
        let result = async {
            let value = upsert::checksum(&app, &pkg, &inst.hash_type).await?;
            let outcome =
                upsert::upsert(&mut client, &inst, &pkg.filename, &inst.hash_type, &value).await?;
            anyhow::Ok((value, outcome))
        }
        .await;
        match result {
            Ok((value, outcome)) => {
                tracing::info!(instance = inst.id, filename = %pkg.filename, ?outcome, "Jamf Pro record in sync");
                put_state(
                    &app,
                    inst.id,
                    &pkg,
                    "synced",
                    Some(outcome.record_id().to_string()),
                    Some((&inst.hash_type, &value)),
                    None,
                )
                .await?;
                Ok(())
            }
            Err(e) => {
                let why = format!("{e:#} (will retry)");
                put_state(&app, inst.id, &pkg, "pending", keep_id, None, Some(why)).await?;
                Err(e)
            }
        }
    }

    async fn gave_up(self, app: App, error: String) -> anyhow::Result<()> {
        let mut conn = app.db.reader().acquire().await?;
        if let Some(pkg) = db::packages::by_uuid(&app.db, &mut conn, &self.uuid).await? {
            drop(conn);
            let known = db::jamf::records_of_package(&app.db, &pkg.uuid)
                .await?
                .into_iter()
                .find(|r| r.instance_id == self.instance_id)
                .and_then(|r| r.record_id);
            put_state(
                &app,
                self.instance_id,
                &pkg,
                "failed",
                known,
                None,
                Some(error),
            )
            .await?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct JamfReconcile {
    pub instance_id: i64,
}

impl Job for JamfReconcile {
    const KIND: &'static str = "jamf_reconcile";
    const MAX_ATTEMPTS: i64 = 6;
    fn dedup_key(&self) -> Option<String> {
        Some(format!("jamf_reconcile:{}", self.instance_id))
    }
}

impl JamfReconcile {
    /// Queues the next periodic check.
    async fn again(&self, app: &App) -> anyhow::Result<()> {
        let mut conn = app.db.writer().acquire().await?;
        let delay = Duration::from_secs(app.config.jamf.reconcile_secs);
        jobs::enqueue(&app.db, &mut conn, self, delay).await?;
        Ok(())
    }
}

impl Run<App> for JamfReconcile {
    async fn run(self, app: App) -> anyhow::Result<()> {
        if db::jamf::get(&app.db, self.instance_id).await?.is_none() {
            return Ok(()); // removed: the chain ends
        }
        if let Err(e) = reconcile(&app, self.instance_id).await {
            db::jamf::set_reconciled(&app.db, self.instance_id, Some(&format!("{e:#}"))).await?;
            return Err(e);
        }
        db::jamf::set_reconciled(&app.db, self.instance_id, None).await?;
        self.again(&app).await
    }

    async fn gave_up(self, app: App, _error: String) -> anyhow::Result<()> {
        self.again(&app).await
    }
}

/// Every record of the instance, page by page.
async fn all_records(c: &mut Client) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for page in 0.. {
        let path = format!(
            "/api/v1/packages?page={page}&page-size=200&sort={}",
            q("id:asc")
        );
        let a = c.call(Method::GET, &path, None).await?;
        if a.status != StatusCode::OK {
            anyhow::bail!("listing package records: {}", a.describe());
        }
        let results = a.body["results"].as_array().cloned().unwrap_or_default();
        let total = a.body["totalCount"].as_u64().unwrap_or(0) as usize;
        let n = results.len();
        out.extend(results);
        if n < 200 || out.len() >= total || page > 10_000 {
            break;
        }
    }
    Ok(out)
}

/// `/api/v1/packages` needs Jamf Pro 11.5 or later (JAMF.md §3).
async fn check_version(c: &mut Client) -> anyhow::Result<()> {
    let a = c
        .call(Method::GET, "/api/v1/jamf-pro-version", None)
        .await?;
    if a.status != StatusCode::OK {
        anyhow::bail!("reading the Jamf Pro version: {}", a.describe());
    }
    let version = a.body["version"].as_str().unwrap_or_default().to_string();
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u64>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (11, 5) {
        anyhow::bail!("Jamf Pro {version:?} is older than 11.5, which the package API needs");
    }
    Ok(())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks every record of the instance now (see the module doc).
async fn reconcile(app: &App, instance_id: i64) -> anyhow::Result<()> {
    let Some(inst) = db::jamf::get(&app.db, instance_id).await? else {
        return Ok(());
    };
    let mut client = Client::new(app, inst.clone())?;
    check_version(&mut client).await?;
    let records = all_records(&mut client).await?;
    let packages = db::packages::list(&app.db).await?;
    let public: HashMap<&str, &db::packages::PackageRow> = packages
        .iter()
        .filter(|p| p.status == Status::Public)
        .map(|p| (p.filename.as_str(), p))
        .collect();
    let now = now_unix();
    let mut drift = Vec::new();
    let mut in_sync = std::collections::HashSet::new();
    for r in &records {
        let (Some(id), Some(file)) = (text(&r["id"]), r["fileName"].as_str()) else {
            continue;
        };
        let Some(pkg) = public.get(file) else {
            drift.push(DriftRow {
                record_id: id,
                file_name: file.to_string(),
                problem: "file_missing".into(),
                detail: Some("no Public package with this fileName on this server".into()),
                checked: now,
            });
            continue;
        };
        let Some(kind) = r["hashType"]
            .as_str()
            .filter(|k| ["SHA_512", "MD5", "SHA3_512"].contains(k))
        else {
            continue;
        };
        let ours = upsert::checksum(app, pkg, kind).await?;
        let theirs = r["hashValue"].as_str().unwrap_or_default();
        if !theirs.eq_ignore_ascii_case(&ours) {
            drift.push(DriftRow {
                record_id: id,
                file_name: file.to_string(),
                problem: "hash_differs".into(),
                detail: Some(format!(
                    "the record has {kind} {theirs:?}, the package here {ours:?}"
                )),
                checked: now,
            });
        } else if kind == inst.hash_type {
            in_sync.insert(file.to_string());
        }
    }
    db::jamf::put_drift(&app.db, inst.id, &drift).await?;
    // Whatever of ours is not in sync gets its upsert (the upsert waits where it must).
    let mut conn = app.db.writer().acquire().await?;
    for p in packages
        .iter()
        .filter(|p| p.stage == inst.stage && p.status == Status::Public)
    {
        if !in_sync.contains(&p.filename) {
            let job = JamfUpsert {
                instance_id: inst.id,
                uuid: p.uuid.clone(),
            };
            jobs::enqueue(&app.db, &mut conn, &job, Duration::ZERO).await?;
        }
    }
    drop(conn);
    app.jobs_wake.notify_one();
    if inst.delete_records {
        delete_orphans(app, &mut client, inst.id, &packages).await?;
    }
    tracing::info!(
        instance = inst.id,
        records = records.len(),
        drift = drift.len(),
        "Jamf Pro records checked"
    );
    Ok(())
}

/// Deletes the records ODS made for packages that are gone from this server.
async fn delete_orphans(
    app: &App,
    c: &mut Client,
    instance_id: i64,
    packages: &[db::packages::PackageRow],
) -> anyhow::Result<()> {
    for r in db::jamf::records_of_instance(&app.db, instance_id).await? {
        let live = packages
            .iter()
            .any(|p| p.uuid == r.package_uuid || p.filename == r.filename);
        let Some(id) = r.record_id.as_deref().filter(|_| !live) else {
            continue;
        };
        let a = c
            .call(Method::DELETE, &format!("/api/v1/packages/{}", q(id)), None)
            .await?;
        if !(a.status.is_success() || a.status == StatusCode::NOT_FOUND) {
            anyhow::bail!("deleting package record {id}: {}", a.describe());
        }
        tracing::info!(instance_id, record = id, filename = %r.filename, "Jamf Pro record deleted");
        db::jamf::delete_record(&app.db, instance_id, &r.package_uuid).await?;
    }
    Ok(())
}
