//! `GET /api/admin/events`: what happened (uploads, syncs, conflicts, peers).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::db;
use crate::error::ApiResult;
use crate::http::QueryArgs;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest};
use crate::model::Role;
use crate::model::iso_seconds;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events with an id above this one.
    #[param(value_type = i64, required = false)]
    after: Option<i64>,
    /// Only events of this kind, e.g. `package.public`.
    #[param(value_type = String, required = false)]
    kind: Option<String>,
    /// Only the events of this package (its UUID or its filename).
    #[param(value_type = String, required = false)]
    package: Option<String>,
    /// At most this many (default 200; clamped to 1..1000).
    #[param(value_type = i64, required = false)]
    limit: Option<i64>,
}

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    /// ISO 8601 without microseconds (UTC).
    pub created: String,
    /// Unix seconds.
    pub created_ts: i64,
    pub filename: Option<String>,
    pub id: i64,
    /// `package.uploaded`, `package.public`, `ods.registered`...
    pub kind: String,
    pub message: Option<String>,
    pub package_uuid: Option<String>,
    pub peer_iss: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub items: Vec<Event>,
}

#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    description = "Events, oldest first, optionally of one `kind` and about one `package` (UUID or filename). Needs the `viewer` role.",
    params(EventQuery),
    responses((status = 200, description = "The events.", body = EventList), BadRequest, AdminErrors)
)]
pub async fn list_events(
    State(app): State<App>,
    who: Principal,
    QueryArgs(q): QueryArgs<EventQuery>,
) -> ApiResult<axum::Json<EventList>> {
    let filter = EventFilter {
        after: q.after.unwrap_or(0),
        kind: q.kind,
        package: q.package,
        limit: q.limit.unwrap_or(200),
    };
    Ok(axum::Json(list(&app, &who, &filter).await?))
}

/// Which events to list.
pub struct EventFilter {
    /// Events with an id above this one (0: from the first).
    pub after: i64,
    pub kind: Option<String>,
    /// A package's UUID or filename.
    pub package: Option<String>,
    /// Kept to 1..=1000.
    pub limit: i64,
}

/// Events, oldest first (the API's GET /events and the UI's Events tab).
pub async fn list(app: &App, who: &Principal, f: &EventFilter) -> ApiResult<EventList> {
    who.require(Role::Viewer)?;
    let rows = db::events::list(
        &app.db,
        f.after,
        f.kind.as_deref().filter(|k| !k.is_empty()),
        f.package.as_deref().filter(|p| !p.is_empty()),
        f.limit.clamp(1, 1000),
    )
    .await?;
    let items = rows
        .into_iter()
        .map(|e| Event {
            created: iso_seconds(e.created),
            created_ts: e.created,
            filename: e.filename,
            id: e.id,
            kind: e.kind,
            message: e.message,
            package_uuid: e.package_uuid,
            peer_iss: e.peer_iss,
        })
        .collect();
    Ok(EventList { items })
}
