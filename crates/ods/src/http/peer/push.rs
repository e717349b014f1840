//! The peer routes a firewalled server uses to reach this one, since nobody can call
//! it: it pushes its catalog records (`push`), asks which packages this server waits
//! for (`wants`), offers one's manifest (`offer`) and sends the missing chunks
//! (`receive_chunk`), each checked against the record before it is kept.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ChunkPath, PackageUuid, authenticate, chunk_index, parse};
use crate::app::App;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::http::docs::{BadRequest, PeerErrors, TooLarge};
use crate::ingest::CHUNK_SIZE;
use crate::model::Status;
use crate::peers::Manifest;

/// How many pushed records changed something here.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Applied {
    applied: usize,
}

/// A firewalled peer sends its catalog records (it cannot be pulled from).
#[utoipa::path(
    post,
    path = "/push",
    tag = "peer",
    operation_id = "peer_push",
    description = "A firewalled peer sends its catalog records (it cannot be pulled from).",
    security(("peerSignature" = [])),
    request_body = crate::peers::CatalogPage,
    responses((status = 200, description = "Applied.", body = Applied), BadRequest, TooLarge, PeerErrors)
)]
pub(super) async fn push(
    State(app): State<App>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<axum::Json<Applied>> {
    let peer = authenticate(&app, &parts, &body).await?;
    let page: crate::peers::CatalogPage = parse(&body)?;
    if page.identity.iss != peer.iss {
        return Err(ApiError::bad_request(
            "invalid_iss",
            "the pushed identity is not the signer's",
        ));
    }
    crate::peers::refresh_identity(&app, &peer, &page.identity).await?;
    let applied = crate::catalog::remote_many(&app, &page.entries, &peer).await?;
    crate::peers::contact(&app, &peer, None).await;
    Ok(axum::Json(Applied { applied }))
}

/// Package uuids a firewalled peer could send.
#[derive(Deserialize, ToSchema)]
pub(super) struct WantsQuery {
    uuids: Vec<String>,
}

/// The subset of the asked uuids this server is waiting for.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Wanted {
    wanted: Vec<String>,
}

/// Which of these packages this server is waiting for.
#[utoipa::path(
    post,
    path = "/wants",
    tag = "peer",
    operation_id = "peer_wants",
    description = "Which of these packages this server is waiting for.",
    security(("peerSignature" = [])),
    request_body = WantsQuery,
    responses((status = 200, description = "The wanted ones.", body = Wanted), BadRequest, TooLarge, PeerErrors)
)]
pub(super) async fn wants(
    State(app): State<App>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<axum::Json<Wanted>> {
    authenticate(&app, &parts, &body).await?;
    let q: WantsQuery = parse(&body)?;
    let waiting: std::collections::HashSet<String> = db::packages::incomplete(&app.db)
        .await?
        .into_iter()
        .map(|p| p.uuid)
        .collect();
    let wanted = q
        .uuids
        .into_iter()
        .filter(|u| waiting.contains(u))
        .collect();
    Ok(axum::Json(Wanted { wanted }))
}

async fn waiting_package(app: &App, uuid: &str) -> ApiResult<Option<db::packages::PackageRow>> {
    let mut conn = app.db.reader().acquire().await?;
    Ok(db::packages::by_uuid(&app.db, &mut conn, uuid)
        .await?
        .filter(|p| p.status != Status::Public))
}

/// The chunk indexes this server still lacks.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Missing {
    missing: Vec<usize>,
}

/// A firewalled peer offers a package: keep its manifest, answer which chunks we lack.
#[utoipa::path(
    post,
    path = "/packages/{uuid}/offer",
    tag = "peer",
    operation_id = "peer_offer",
    description = "A firewalled peer offers a package this server waits for: this server keeps its manifest and answers which chunks it lacks (none if it does not wait for it).",
    security(("peerSignature" = [])),
    params(PackageUuid),
    request_body = Manifest,
    responses((status = 200, description = "The missing chunks.", body = Missing), BadRequest, TooLarge, PeerErrors)
)]
pub(super) async fn offer(
    State(app): State<App>,
    Path(uuid): Path<String>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<axum::Json<Missing>> {
    authenticate(&app, &parts, &body).await?;
    let m: Manifest = parse(&body)?;
    let Some(p) = waiting_package(&app, &uuid).await? else {
        return Ok(axum::Json(Missing { missing: vec![] }));
    };
    let n = (p.file_size.max(0) as usize).div_ceil(CHUNK_SIZE);
    if m.uuid != uuid || m.sha256 != p.sha256 || m.file_size != p.file_size || m.chunks.len() != n {
        return Err(ApiError::bad_request(
            "manifest_mismatch",
            "the offered manifest does not match the package record",
        ));
    }
    let mut tx = app.db.begin().await?;
    db::packages::put_chunks(&app.db, &mut tx, &p.sha256, &m.chunks).await?;
    tx.commit().await?;
    let done = db::transfers::done(&app.db, &uuid).await?;
    let missing: Vec<usize> = (0..n).filter(|i| !done.contains(&(*i as i64))).collect();
    if missing.is_empty() {
        crate::catalog::hurry(&app, &uuid).await?;
    }
    Ok(axum::Json(Missing { missing }))
}

/// A firewalled peer sends one chunk of a package we are waiting for.
#[utoipa::path(
    put,
    path = "/packages/{uuid}/chunks/{idx}",
    tag = "peer",
    operation_id = "peer_receive_chunk",
    description = "A firewalled peer sends one chunk of a package this server waits for (after offering its manifest).",
    security(("peerSignature" = [])),
    params(ChunkPath),
    request_body(content = crate::http::docs::Binary, content_type = "application/octet-stream"),
    responses((status = 204, description = "Stored, or not needed."), BadRequest, TooLarge, PeerErrors)
)]
pub(super) async fn receive_chunk(
    State(app): State<App>,
    Path((uuid, idx)): Path<(String, String)>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let peer = authenticate(&app, &parts, &body).await?;
    let idx = chunk_index(&idx)?;
    let Some(p) = waiting_package(&app, &uuid).await? else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let size = p.file_size.max(0) as u64;
    let offset = idx * CHUNK_SIZE as u64;
    let expected = db::packages::chunks(&app.db, &p.sha256).await?;
    let Some(want) = expected.get(idx as usize) else {
        return Err(ApiError::bad_request(
            "unknown_chunk",
            "offer the package's manifest before its chunks",
        ));
    };
    let len = (size.saturating_sub(offset)).min(CHUNK_SIZE as u64) as usize;
    use sha1::Digest;
    if body.len() != len || hex::encode(sha1::Sha1::digest(&body)) != *want {
        app.sync.stats.transfer_error(&peer.iss);
        app.sync
            .stats
            .chunks_rejected
            .fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::bad_request(
            "chunk_mismatch",
            format!("chunk {idx} does not match its SHA-1"),
        ));
    }
    let partial = app.store.partial(&uuid, size).await?;
    tokio::task::spawn_blocking(move || {
        partial.write_at(offset, &body)?;
        partial.sync()
    })
    .await
    .map_err(|e| ApiError::internal("writing a chunk", e))??;
    db::transfers::record(&app.db, &uuid, &[idx as usize]).await?;
    app.sync.stats.fetched(&peer.iss, len as u64);
    if db::transfers::count(&app.db, &uuid).await? == expected.len() as i64 {
        crate::catalog::hurry(&app, &uuid).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
