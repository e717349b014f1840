//! `GET /api/admin/events`: what happened (uploads, syncs, conflicts, peers).

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::db;
use crate::error::ApiResult;
use crate::http::QueryArgs;
use crate::http::auth::Principal;
use crate::model::Role;
use crate::model::iso_seconds;

#[derive(Debug, Deserialize)]
pub struct EventQuery {
    after: Option<i64>,
    kind: Option<String>,
    limit: Option<i64>,
}

pub async fn list_events(
    State(app): State<App>,
    who: Principal,
    QueryArgs(q): QueryArgs<EventQuery>,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    let rows = db::events::list(
        &app.db,
        q.after.unwrap_or(0),
        q.kind.as_deref(),
        q.limit.unwrap_or(200).clamp(1, 1000),
    )
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "created": iso_seconds(e.created),
                "created_ts": e.created,
                "filename": e.filename,
                "id": e.id,
                "kind": e.kind,
                "message": e.message,
                "package_uuid": e.package_uuid,
                "peer_iss": e.peer_iss,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}
