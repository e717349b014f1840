//! `/api/admin/jobs`: the durable job queue, visible and retryable.

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::db::{self, jobs::JobRow};
use crate::error::{ApiError, ApiResult};
use crate::http::QueryArgs;
use crate::http::auth::Principal;
use crate::model::Role;
use crate::model::iso_seconds;

fn to_json(j: &JobRow) -> Value {
    json!({
        "attempts": j.attempts,
        "created": iso_seconds(j.created / 1000),
        "dedup_key": j.dedup_key,
        "id": j.id,
        "kind": j.kind,
        "last_error": j.last_error,
        "locked_by": j.locked_by,
        "max_attempts": j.max_attempts,
        "payload": serde_json::from_str::<Value>(&j.payload).unwrap_or(Value::Null),
        "run_at": iso_seconds(j.run_at / 1000),
        "state": j.state,
        "updated": iso_seconds(j.updated / 1000),
    })
}

#[derive(Debug, Deserialize)]
pub struct JobQuery {
    state: Option<String>,
    kind: Option<String>,
    limit: Option<i64>,
}

const STATES: [&str; 4] = ["queued", "running", "done", "dead"];

pub async fn list_jobs(
    State(app): State<App>,
    who: Principal,
    QueryArgs(q): QueryArgs<JobQuery>,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    if let Some(s) = &q.state
        && !STATES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_state",
            format!("state must be one of {}", STATES.join(", ")),
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items: Vec<Value> = db::jobs::list(&app.db, q.state.as_deref(), q.kind.as_deref(), limit)
        .await?
        .iter()
        .map(to_json)
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

pub async fn get_job(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    let id = super::path_id(&id)?;
    let j = db::jobs::get(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job with id {id}")))?;
    Ok(axum::Json(to_json(&j)))
}

pub async fn retry_job(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Admin)?;
    let id = super::path_id(&id)?;
    if db::jobs::get(&app.db, id).await?.is_none() {
        return Err(ApiError::not_found(format!("no job with id {id}")));
    }
    if !db::jobs::retry_now(&app.db, id).await? {
        return Err(ApiError::conflict(
            "job_not_retryable",
            "only dead or waiting jobs can be retried",
        ));
    }
    app.jobs_wake.notify_one();
    let j = db::jobs::get(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job vanished"))?;
    Ok(axum::Json(to_json(&j)))
}
