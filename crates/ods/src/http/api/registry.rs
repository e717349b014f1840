//! The ODS network as the admin sees it: `POST /api/admin/register`,
//! `GET /api/admin/registered_ods` (seed fields plus link health),
//! `PATCH`/`DELETE /api/admin/registered_ods/<id>`, `GET /api/admin/sync`.

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::db::{self, peers::PeerRow};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest, Conflict, JsonErrors, NotFound};
use crate::model::Role;
use crate::model::{Stage, iso_seconds};

/// The other server's URL, ISS ID and registration key (from its About page).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(required, value_type = String, pattern = r"[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]", example = "http://192.168.99.101")]
    url: Option<String>,
    #[schema(required, value_type = String, pattern = r"[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]", example = "e7becdda9a9046f6a78f69ef591e9835")]
    iss_id: Option<String>,
    #[schema(required, value_type = String, pattern = r"[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]", example = "r3Yt354eDTY0JkaiObpsM4krfkDzdZD9NNYwDr9aSk0=")]
    key: Option<String>,
}

#[utoipa::path(
    post,
    path = "/register",
    tag = "network",
    description = "Registers this server with another one (which must be reachable). Needs the `admin` role. Answers the seed's 201 with an empty text/html body.",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered (empty body, as the seed).", content_type = "text/html", body = String),
        JsonErrors,
        Conflict,
        AdminErrors
    )
)]
pub async fn register(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    register_ods(
        &app,
        &who,
        body.url.as_deref().unwrap_or_default(),
        body.iss_id.as_deref().unwrap_or_default(),
        body.key.as_deref().unwrap_or_default(),
    )
    .await?;
    // The seed answers 201 with an empty text/html body.
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "",
    ))
}

/// Registers this server with the ODS at `url` (the API's POST /register and the
/// UI's Network tab); an empty field is named in the error.
pub async fn register_ods(
    app: &App,
    who: &Principal,
    url: &str,
    iss: &str,
    key: &str,
) -> ApiResult<PeerRow> {
    who.require(Role::Admin)?;
    let missing: Vec<&str> = [("url", url), ("iss_id", iss), ("key", key)]
        .into_iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(n, _)| n)
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            format!("register needs {}", missing.join(", ")),
        ));
    }
    let peer = crate::sync::register::register_with(app, url, iss, key).await?;
    tracing::info!(by = %who.username, peer = %peer.name, iss = %peer.iss, "registered with another ODS");
    Ok(peer)
}

async fn pending_jobs(app: &App, peer_id: i64) -> ApiResult<i64> {
    Ok(crate::sync::pending_jobs(app, peer_id).await?)
}

/// How the link to a peer is doing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LinkStatus {
    /// The last contact worked.
    Ok,
    /// The last contact failed (`last_error` says why).
    Unreachable,
    /// No contact yet.
    Pending,
    /// A firewalled peer not heard from yet (it connects to us).
    Firewalled,
}

/// A registered ODS: the seed's fields plus link health.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredOds {
    pub firewalled_mode: bool,
    pub id: i64,
    /// The peer's ISS ID.
    pub iss: String,
    /// Last successful contact, ISO 8601 without microseconds (UTC).
    pub last_contact: Option<String>,
    pub last_contact_ts: Option<i64>,
    pub last_error: Option<String>,
    pub name: String,
    /// Sync jobs for this peer waiting or running.
    pub pending_jobs: i64,
    /// Bytes per second this server fetches from the peer at most; null for no limit.
    pub rate_limit: Option<i64>,
    /// ISO 8601 without microseconds (UTC).
    #[schema(example = "2017-11-10T04:45:47")]
    pub registered_on: String,
    pub registered_on_ts: i64,
    #[schema(value_type = Stage)]
    pub stage: String,
    pub status: LinkStatus,
    pub url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredList {
    pub items: Vec<RegisteredOds>,
}

async fn to_json(app: &App, p: &PeerRow) -> ApiResult<RegisteredOds> {
    Ok(RegisteredOds {
        firewalled_mode: p.firewalled,
        id: p.id,
        iss: p.iss.clone(),
        last_contact: p.last_contact.map(iso_seconds),
        last_contact_ts: p.last_contact,
        last_error: p.last_error.clone(),
        name: p.name.clone(),
        pending_jobs: pending_jobs(app, p.id).await?,
        rate_limit: p.rate_limit,
        registered_on: iso_seconds(p.registered_on),
        registered_on_ts: p.registered_on,
        stage: p.stage.clone(),
        status: match (&p.last_error, p.last_contact) {
            (Some(_), _) => LinkStatus::Unreachable,
            (None, Some(_)) => LinkStatus::Ok,
            (None, None) if p.firewalled => LinkStatus::Firewalled,
            (None, None) => LinkStatus::Pending,
        },
        url: p.url.clone(),
    })
}

#[utoipa::path(
    get,
    path = "/registered_ods",
    tag = "network",
    description = "Every registered ODS, under `items`. Needs the `viewer` role.",
    responses((status = 200, description = "The registered servers.", body = RegisteredList), AdminErrors)
)]
pub async fn list_registered(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<axum::Json<RegisteredList>> {
    Ok(axum::Json(list(&app, &who).await?))
}

/// Every registered ODS with its link health.
pub async fn list(app: &App, who: &Principal) -> ApiResult<RegisteredList> {
    who.require(Role::Viewer)?;
    let mut items = Vec::new();
    for p in db::peers::list(&app.db).await? {
        items.push(to_json(app, &p).await?);
    }
    Ok(RegisteredList { items })
}

async fn find_id(app: &App, id: i64) -> ApiResult<PeerRow> {
    db::peers::by_id(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no registered ODS with id {id}")))
}

/// A registered ODS's id.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PeerId {
    /// The numeric id from GET /api/admin/registered_ods.
    #[allow(dead_code)]
    id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Unregistered {
    /// Whether the peer was reached and dropped its side of the link too.
    pub peer_notified: bool,
    /// The ISS of the server unregistered.
    pub unregistered: String,
}

#[utoipa::path(
    delete,
    path = "/registered_ods/{id}",
    tag = "network",
    description = "Unregisters a peer (telling it, when it can be reached). Needs the `admin` role.",
    params(PeerId),
    responses((status = 200, description = "Unregistered.", body = Unregistered), BadRequest, NotFound, AdminErrors)
)]
pub async fn unregister(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Unregistered>> {
    Ok(axum::Json(
        unregister_ods(&app, &who, super::path_id(&id)?).await?,
    ))
}

/// Unregisters peer `id`, telling it when it can be reached.
pub async fn unregister_ods(app: &App, who: &Principal, id: i64) -> ApiResult<Unregistered> {
    who.require(Role::Admin)?;
    let peer = find_id(app, id).await?;
    let told = crate::sync::register::unregister(app, &peer).await?;
    Ok(Unregistered {
        peer_notified: told,
        unregistered: peer.iss,
    })
}

/// Link settings. An absent or null `rate_limit` removes the limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerUpdate {
    /// Bytes per second this server may fetch from the peer (at least 1024); null for no limit.
    #[schema(minimum = 1024)]
    #[serde(default, deserialize_with = "crate::http::integral")]
    rate_limit: Option<i64>,
}

#[utoipa::path(
    patch,
    path = "/registered_ods/{id}",
    tag = "network",
    description = "Changes a link's settings. Needs the `admin` role.",
    params(PeerId),
    request_body = PeerUpdate,
    responses((status = 200, description = "The peer as it is now.", body = RegisteredOds), JsonErrors, NotFound, AdminErrors)
)]
pub async fn update_registered(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PeerUpdate>,
) -> ApiResult<axum::Json<RegisteredOds>> {
    let id = super::path_id(&id)?;
    Ok(axum::Json(
        set_rate_limit(&app, &who, id, body.rate_limit).await?,
    ))
}

/// Sets (or, with `None`, removes) the bytes-per-second limit of peer `id`'s link.
pub async fn set_rate_limit(
    app: &App,
    who: &Principal,
    id: i64,
    rate_limit: Option<i64>,
) -> ApiResult<RegisteredOds> {
    who.require(Role::Admin)?;
    let peer = find_id(app, id).await?;
    if rate_limit.is_some_and(|r| r < 1024) {
        return Err(ApiError::bad_request(
            "invalid_rate_limit",
            "rate_limit is bytes per second, at least 1024, or null",
        ));
    }
    db::peers::set_rate_limit(&app.db, peer.id, rate_limit).await?;
    let peer = find_id(app, id).await?;
    to_json(app, &peer).await
}

/// Sync counters of this process since it started, and the catalog cursor.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStats {
    pub chunk_bytes_fetched: u64,
    pub chunk_bytes_served: u64,
    pub chunks_fetched: u64,
    pub chunks_rejected: u64,
    pub chunks_served: u64,
    /// This server's change cursor (the last catalog sequence number).
    pub cursor: i64,
    /// Seconds between reconciliations with each peer.
    pub interval_secs: u64,
    /// Incoming transfers this process runs at most at once (`ODS_MAX_TRANSFERS`).
    pub max_transfers: u64,
    pub peer_requests: u64,
    /// Incoming transfers running in this process now (one per package, or one per
    /// bundle of small packages).
    pub transfers_in_progress: u64,
}

#[utoipa::path(
    get,
    path = "/sync",
    tag = "network",
    description = "Sync counters. Needs the `viewer` role.",
    responses((status = 200, description = "The counters.", body = SyncStats), AdminErrors)
)]
pub async fn get_sync(State(app): State<App>, who: Principal) -> ApiResult<axum::Json<SyncStats>> {
    Ok(axum::Json(sync_stats(&app, &who).await?))
}

/// The sync counters of this server.
pub async fn sync_stats(app: &App, who: &Principal) -> ApiResult<SyncStats> {
    who.require(Role::Viewer)?;
    let s = &app.sync.stats;
    Ok(SyncStats {
        chunk_bytes_fetched: s.chunk_bytes_fetched.load(Ordering::Relaxed),
        chunk_bytes_served: s.chunk_bytes_served.load(Ordering::Relaxed),
        chunks_fetched: s.chunks_fetched.load(Ordering::Relaxed),
        chunks_rejected: s.chunks_rejected.load(Ordering::Relaxed),
        chunks_served: s.chunks_served.load(Ordering::Relaxed),
        cursor: db::catalog::current_seq(&app.db).await?,
        interval_secs: app.sync.interval.as_secs(),
        max_transfers: app.config.max_transfers as u64,
        peer_requests: s.peer_requests.load(Ordering::Relaxed),
        transfers_in_progress: app
            .config
            .max_transfers
            .saturating_sub(app.sync.transfers.available_permits())
            as u64,
    })
}
