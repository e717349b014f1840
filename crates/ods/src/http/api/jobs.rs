//! `/api/admin/jobs`: the durable job queue, visible and retryable.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::db::{self, jobs::JobRow};
use crate::error::{ApiError, ApiResult};
use crate::http::QueryArgs;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest, Conflict, NotFound};
use crate::model::Role;
use crate::model::iso_seconds;

/// Where a job is in its life.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Dead,
}

/// One background job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Job {
    pub attempts: i64,
    /// ISO 8601 without microseconds (UTC).
    pub created: String,
    pub dedup_key: Option<String>,
    pub id: i64,
    /// The job kind, e.g. `pull`, `fetch`, `notify`.
    pub kind: String,
    pub last_error: Option<String>,
    /// The worker holding the job's lease.
    pub locked_by: Option<String>,
    pub max_attempts: i64,
    /// The job's arguments (JSON; null if unreadable).
    pub payload: Value,
    /// When the job runs next, ISO 8601 without microseconds (UTC).
    pub run_at: String,
    #[schema(value_type = JobState)]
    pub state: String,
    pub updated: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub items: Vec<Job>,
}

fn to_json(j: &JobRow) -> Job {
    Job {
        attempts: j.attempts,
        created: iso_seconds(j.created / 1000),
        dedup_key: j.dedup_key.clone(),
        id: j.id,
        kind: j.kind.clone(),
        last_error: j.last_error.clone(),
        locked_by: j.locked_by.clone(),
        max_attempts: j.max_attempts,
        payload: serde_json::from_str::<Value>(&j.payload).unwrap_or(Value::Null),
        run_at: iso_seconds(j.run_at / 1000),
        state: j.state.clone(),
        updated: iso_seconds(j.updated / 1000),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only jobs in this state.
    #[param(value_type = JobState, required = false)]
    state: Option<String>,
    /// Only jobs of this kind.
    #[param(value_type = String, required = false)]
    kind: Option<String>,
    /// At most this many (default 100; clamped to 1..1000).
    #[param(value_type = i64, required = false)]
    limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobId {
    /// The job's numeric id.
    #[allow(dead_code)]
    id: i64,
}

pub const STATES: [&str; 4] = ["queued", "running", "done", "dead"];

#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    description = "Jobs, newest first. Needs the `viewer` role.",
    params(JobQuery),
    responses((status = 200, description = "The jobs.", body = JobList), BadRequest, AdminErrors)
)]
pub async fn list_jobs(
    State(app): State<App>,
    who: Principal,
    QueryArgs(q): QueryArgs<JobQuery>,
) -> ApiResult<axum::Json<JobList>> {
    let limit = q.limit.unwrap_or(100);
    Ok(axum::Json(
        list(&app, &who, q.state.as_deref(), q.kind.as_deref(), limit).await?,
    ))
}

/// Jobs, newest first, in `state` and of `kind` when given (`limit` kept to 1..=1000).
pub async fn list(
    app: &App,
    who: &Principal,
    state: Option<&str>,
    kind: Option<&str>,
    limit: i64,
) -> ApiResult<JobList> {
    who.require(Role::Viewer)?;
    if let Some(s) = state
        && !STATES.contains(&s)
    {
        return Err(ApiError::bad_request(
            "invalid_state",
            format!("state must be one of {}", STATES.join(", ")),
        ));
    }
    let items = db::jobs::list(&app.db, state, kind, limit.clamp(1, 1000))
        .await?
        .iter()
        .map(to_json)
        .collect();
    Ok(JobList { items })
}

#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    description = "One job. Needs the `viewer` role.",
    params(JobId),
    responses((status = 200, description = "The job.", body = Job), BadRequest, NotFound, AdminErrors)
)]
pub async fn get_job(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Job>> {
    who.require(Role::Viewer)?;
    let id = super::path_id(&id)?;
    let j = db::jobs::get(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job with id {id}")))?;
    Ok(axum::Json(to_json(&j)))
}

#[utoipa::path(
    post,
    path = "/jobs/{id}/retry",
    tag = "jobs",
    description = "Runs a dead or waiting job again now. Needs the `admin` role.",
    params(JobId),
    responses((status = 200, description = "The job as it is now.", body = Job), BadRequest, NotFound, Conflict, AdminErrors)
)]
pub async fn retry_job(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Job>> {
    Ok(axum::Json(retry(&app, &who, super::path_id(&id)?).await?))
}

/// Runs dead or waiting job `id` again now (admins).
pub async fn retry(app: &App, who: &Principal, id: i64) -> ApiResult<Job> {
    who.require(Role::Admin)?;
    if db::jobs::get(&app.db, id).await?.is_none() {
        return Err(ApiError::not_found(format!("no job with id {id}")));
    }
    match db::jobs::retry_now(&app.db, id).await? {
        db::jobs::Retried::Yes => {}
        db::jobs::Retried::NotRetryable => {
            return Err(ApiError::conflict(
                "job_not_retryable",
                "only dead or waiting jobs can be retried",
            ));
        }
        db::jobs::Retried::Duplicate => {
            return Err(ApiError::conflict(
                "job_duplicate",
                "the same work is already queued or running; it will run without this one",
            ));
        }
    }
    app.wake_jobs();
    let j = db::jobs::get(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job vanished"))?;
    Ok(to_json(&j))
}
