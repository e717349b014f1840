//! The ODS network as the admin sees it: `POST /api/admin/register`,
//! `GET /api/admin/registered_ods` (seed fields plus link health),
//! `PATCH`/`DELETE /api/admin/registered_ods/<id>`, `GET /api/admin/sync`.

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::db::{self, peers::PeerRow};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::auth::Principal;
use crate::model::Role;
use crate::model::iso_seconds;

#[derive(Debug, Deserialize)]
pub struct RegisterRequest {
    url: Option<String>,
    iss_id: Option<String>,
    key: Option<String>,
}

pub async fn register(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    who.require(Role::Admin)?;
    let missing: Vec<&str> = [
        ("url", &body.url),
        ("iss_id", &body.iss_id),
        ("key", &body.key),
    ]
    .into_iter()
    .filter(|(_, v)| v.as_deref().is_none_or(|s| s.trim().is_empty()))
    .map(|(n, _)| n)
    .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            format!("register needs {}", missing.join(", ")),
        ));
    }
    let (url, iss, key) = (
        body.url.unwrap_or_default(),
        body.iss_id.unwrap_or_default(),
        body.key.unwrap_or_default(),
    );
    let peer = crate::sync::register::register_with(&app, &url, &iss, &key).await?;
    tracing::info!(by = %who.username, peer = %peer.name, iss = %peer.iss, "registered with another ODS");
    // The seed answers 201 with an empty text/html body.
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "",
    ))
}

async fn pending_jobs(app: &App, peer_id: i64) -> ApiResult<i64> {
    Ok(crate::sync::pending_jobs(app, peer_id).await?)
}

async fn to_json(app: &App, p: &PeerRow) -> ApiResult<Value> {
    Ok(json!({
        "firewalled_mode": p.firewalled,
        "id": p.id,
        "iss": p.iss,
        "last_contact": p.last_contact.map(iso_seconds),
        "last_contact_ts": p.last_contact,
        "last_error": p.last_error,
        "name": p.name,
        "pending_jobs": pending_jobs(app, p.id).await?,
        "rate_limit": p.rate_limit,
        "registered_on": iso_seconds(p.registered_on),
        "registered_on_ts": p.registered_on,
        "stage": p.stage,
        "status": match (&p.last_error, p.last_contact) {
            (Some(_), _) => "unreachable",
            (None, Some(_)) => "ok",
            (None, None) => if p.firewalled { "firewalled" } else { "pending" },
        },
        "url": p.url,
    }))
}

pub async fn list_registered(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    let mut items = Vec::new();
    for p in db::peers::list(&app.db).await? {
        items.push(to_json(&app, &p).await?);
    }
    Ok(axum::Json(json!({ "items": items })))
}

async fn find(app: &App, id: &str) -> ApiResult<PeerRow> {
    let id = super::path_id(id)?;
    db::peers::by_id(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no registered ODS with id {id}")))
}

pub async fn unregister(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Admin)?;
    let peer = find(&app, &id).await?;
    let told = crate::sync::register::unregister(&app, &peer).await?;
    Ok(axum::Json(
        json!({ "unregistered": peer.iss, "peer_notified": told }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerUpdate {
    /// Bytes per second this server may fetch from the peer; null for no limit.
    rate_limit: Option<i64>,
}

pub async fn update_registered(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PeerUpdate>,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Admin)?;
    let peer = find(&app, &id).await?;
    if body.rate_limit.is_some_and(|r| r < 1024) {
        return Err(ApiError::bad_request(
            "invalid_rate_limit",
            "rate_limit is bytes per second, at least 1024, or null",
        ));
    }
    db::peers::set_rate_limit(&app.db, peer.id, body.rate_limit).await?;
    let peer = find(&app, &id).await?;
    Ok(axum::Json(to_json(&app, &peer).await?))
}

pub async fn get_sync(State(app): State<App>, who: Principal) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    let s = &app.sync.stats;
    Ok(axum::Json(json!({
        "chunk_bytes_fetched": s.chunk_bytes_fetched.load(Ordering::Relaxed),
        "chunk_bytes_served": s.chunk_bytes_served.load(Ordering::Relaxed),
        "chunks_fetched": s.chunks_fetched.load(Ordering::Relaxed),
        "chunks_rejected": s.chunks_rejected.load(Ordering::Relaxed),
        "chunks_served": s.chunks_served.load(Ordering::Relaxed),
        "cursor": db::catalog::current_seq(&app.db).await?,
        "interval_secs": app.sync.interval.as_secs(),
        "peer_requests": s.peer_requests.load(Ordering::Relaxed),
    })))
}
