//! `/api/admin/jamf/{id}/...` and the package detail's `jamf` field: the state of each
//! package record on an instance, the drift report and the on-demand reconcile.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::jamf::{InstanceId, by_id};
use crate::app::App;
use crate::db;
use crate::error::ApiResult;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest, NotFound};
use crate::jamf as svc;
use crate::model::{Role, iso_seconds};

/// A package's record on one instance (`GET /api/admin/packages/{id}` shows these).
#[derive(Debug, Serialize, ToSchema)]
pub struct JamfRecordState {
    pub instance_id: i64,
    pub instance_name: String,
    pub state: RecordState,
    /// The Jamf Pro package record id, once known.
    pub record_id: Option<String>,
    pub hash_type: Option<String>,
    /// Why it is pending or failed.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    Pending,
    Synced,
    Failed,
}

fn record_state(s: &str) -> RecordState {
    match s {
        "synced" => RecordState::Synced,
        "failed" => RecordState::Failed,
        _ => RecordState::Pending,
    }
}

/// The Jamf record states of a package, for its detail.
pub async fn package_states(
    app: &App,
    p: &db::packages::PackageRow,
) -> ApiResult<Vec<JamfRecordState>> {
    Ok(svc::states(app, p)
        .await?
        .into_iter()
        .map(|s| JamfRecordState {
            instance_id: s.instance_id,
            instance_name: s.instance_name,
            state: record_state(&s.state),
            record_id: s.record_id,
            hash_type: s.hash_type,
            reason: s.reason,
        })
        .collect())
}

/// A reconcile that was asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileQueued {
    pub instance_id: i64,
    /// The queued job (see /api/admin/jobs); null when one was waiting already and now runs.
    pub job_id: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/jamf/{id}/reconcile",
    tag = "jamf",
    description = "Checks every record of the instance now (a `jamf_reconcile` job): refreshes the drift report and queues an upsert for each package not in sync. Needs the `admin` role.",
    params(InstanceId),
    responses((status = 202, description = "Queued.", body = ReconcileQueued), BadRequest, NotFound, AdminErrors)
)]
pub async fn reconcile_instance(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<ReconcileQueued>)> {
    who.require(Role::Admin)?;
    let inst = by_id(&app, &id).await?;
    let job_id = svc::schedule_reconcile(&app, inst.id).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ReconcileQueued {
            instance_id: inst.id,
            job_id,
        }),
    ))
}

/// What is wrong with one record.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftProblem {
    /// No Public package with the record's fileName on this server.
    FileMissing,
    /// The record's checksum is not the package's.
    HashDiffers,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DriftItem {
    pub record_id: String,
    pub file_name: String,
    pub problem: DriftProblem,
    pub detail: Option<String>,
}

/// The last check of every record of an instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftReport {
    pub instance_id: i64,
    /// When it was made, ISO 8601 (UTC); null before the first check.
    pub checked: Option<String>,
    pub last_error: Option<String>,
    pub items: Vec<DriftItem>,
}

#[utoipa::path(
    get,
    path = "/jamf/{id}/drift",
    tag = "jamf",
    description = "The drift report of the last check: records whose file is missing here or whose checksum differs. Needs the `viewer` role.",
    params(InstanceId),
    responses((status = 200, description = "The report.", body = DriftReport), BadRequest, NotFound, AdminErrors)
)]
pub async fn get_drift(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DriftReport>> {
    who.require(Role::Viewer)?;
    let inst = by_id(&app, &id).await?;
    let items = db::jamf::drift(&app.db, inst.id)
        .await?
        .into_iter()
        .map(|d| DriftItem {
            problem: if d.problem == "hash_differs" {
                DriftProblem::HashDiffers
            } else {
                DriftProblem::FileMissing
            },
            record_id: d.record_id,
            file_name: d.file_name,
            detail: d.detail,
        })
        .collect();
    Ok(axum::Json(DriftReport {
        instance_id: inst.id,
        checked: inst.last_reconcile.map(iso_seconds),
        last_error: inst.last_error,
        items,
    }))
}

/// A package's record on this instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceRecord {
    pub package_uuid: String,
    pub filename: String,
    pub state: RecordState,
    pub record_id: Option<String>,
    pub hash_type: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceRecordList {
    pub items: Vec<InstanceRecord>,
}

#[utoipa::path(
    get,
    path = "/jamf/{id}/records",
    tag = "jamf",
    description = "The state of every package record this server keeps on the instance. Needs the `viewer` role.",
    params(InstanceId),
    responses((status = 200, description = "The records.", body = InstanceRecordList), BadRequest, NotFound, AdminErrors)
)]
pub async fn list_records(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<InstanceRecordList>> {
    who.require(Role::Viewer)?;
    let inst = by_id(&app, &id).await?;
    let items = db::jamf::records_of_instance(&app.db, inst.id)
        .await?
        .into_iter()
        .map(|r| InstanceRecord {
            state: record_state(&r.state),
            package_uuid: r.package_uuid,
            filename: r.filename,
            record_id: r.record_id,
            hash_type: r.hash_type,
            reason: r.reason,
        })
        .collect();
    Ok(axum::Json(InstanceRecordList { items }))
}
