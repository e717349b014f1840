//! `/api/ods/...`: the peer API, used only between servers. Every request is signed
//! (see `mesh::sign`); registration with the receiver's key, everything else with the
//! link's pair secret.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::{Endpoint, endpoint};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::db::{self, peers::PeerRow};
use crate::error::{ApiError, ApiResult};
use crate::http::QueryArgs;
use crate::ingest::CHUNK_SIZE;
use crate::mesh::sign::{self as auth, ISS_HEADER, SIG_HEADER};
use crate::model::{Identity, Status, now_unix};
use crate::peers::{Manifest, own_identity as own_hello};
use crate::sync::register::{Welcome, new_pair_secret};

/// Every peer endpoint (under `/api/ods`); the router is built from this list and the
/// OpenAPI test checks each one is documented.
pub fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        endpoint(M::POST, "/register", register),
        endpoint(M::POST, "/unregister", unregister),
        endpoint(M::POST, "/notify", notify),
        endpoint(M::GET, "/catalog", catalog),
        endpoint(M::GET, "/events", events),
        endpoint(M::GET, "/packages/{uuid}/manifest", manifest),
        endpoint(M::GET, "/packages/{uuid}/chunks/{idx}", chunk),
        endpoint(M::PUT, "/packages/{uuid}/chunks/{idx}", receive_chunk),
        endpoint(M::POST, "/packages/{uuid}/offer", offer),
        endpoint(M::POST, "/push", push),
        endpoint(M::POST, "/wants", wants),
    ]
}

pub fn routes() -> Router<App> {
    endpoints()
        .into_iter()
        .fold(Router::new(), |r, e| r.route(e.path, e.handler))
}

fn refused(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "peer_auth_failed", msg)
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn check(
    app: &App,
    secret: &[u8],
    parts: &Parts,
    body: &[u8],
    sender: &str,
) -> ApiResult<()> {
    let sig = header(parts, SIG_HEADER)
        .ok_or_else(|| refused("this is the peer API: requests must be signed"))?;
    // Inside `nest` the URI lost its prefix: sign and verify the one the client sent.
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map(|o| &o.0)
        .unwrap_or(&parts.uri);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    auth::verify(
        secret,
        sig,
        sender,
        &app.sync.own_iss,
        parts.method.as_str(),
        path,
        body,
        now_unix(),
        &app.sync.nonces,
    )
    .map_err(|r| refused(r.message()))?;
    crate::peers::replay::record(app, sig).await?;
    app.sync.stats.peer_requests.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The registered peer that signed this request.
async fn authenticate(app: &App, parts: &Parts, body: &[u8]) -> ApiResult<PeerRow> {
    let sender = header(parts, ISS_HEADER)
        .ok_or_else(|| refused("this is the peer API: requests must be signed"))?;
    let peer = db::peers::by_iss(&app.db, sender).await?;
    // An unknown sender is checked against a secret nobody has, so it gets exactly the
    // answer a bad signature gets (issue 9, finding 10).
    let secret = match peer.as_ref().and_then(|p| p.secret_sealed.as_deref()) {
        Some(sealed) => app.sealer.open(sealed)?,
        None => crate::secrets::random_id(),
    };
    check(app, secret.as_bytes(), parts, body, sender).await?;
    peer.ok_or_else(|| refused(auth::Refusal::BadSignature.message()))
}

async fn register(
    State(app): State<App>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<axum::Json<Welcome>> {
    let server = db::server::get(&app.db).await?;
    let key = app
        .sealer
        .open(server.key_sealed.as_deref().unwrap_or_default())?;
    let sender = header(&parts, ISS_HEADER)
        .ok_or_else(|| refused("registration must be signed"))?
        .to_string();
    check(&app, key.as_bytes(), &parts, &body, &sender).await?;
    let hello: Identity = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("registration body: {e}")))?;
    if hello.iss != sender || hello.iss.len() != 32 {
        return Err(ApiError::bad_request(
            "invalid_iss",
            "the registration's ISS does not match its signature",
        ));
    }
    if hello.iss == server.iss {
        return Err(ApiError::bad_request(
            "self_registration",
            "a server cannot register with itself",
        ));
    }
    // The registration key is shared with every peer: it must not let one of them
    // re-key (and so take over) a link that exists. A server that lost its side
    // registers again after the admin here unregisters the stale link.
    if db::peers::by_iss(&app.db, &hello.iss).await?.is_some() {
        return Err(ApiError::conflict(
            "already_registered",
            "a server with this ISS is registered here already; unregister it on this server to register again",
        ));
    }
    let secret = new_pair_secret();
    let mut tx = app.db.begin().await?;
    db::peers::upsert(&app.db, &mut tx, &hello, &app.sealer.seal(&secret)).await?;
    tx.commit().await?;
    let peer = db::peers::by_iss(&app.db, &hello.iss)
        .await?
        .ok_or_else(|| ApiError::internal("registering", "row vanished"))?;
    crate::peers::event(
        &app,
        "ods.registered",
        &peer,
        format!("{} registered with this server", peer.name),
    )
    .await?;
    crate::sync::pull::queue(&app, peer.id, true).await?;
    Ok(axum::Json(Welcome {
        identity: own_hello(&app).await?,
        pair_secret: secret,
    }))
}

async fn unregister(State(app): State<App>, parts: Parts, body: Bytes) -> ApiResult<StatusCode> {
    let peer = authenticate(&app, &parts, &body).await?;
    db::peers::delete(&app.db, peer.id).await?;
    crate::peers::event(
        &app,
        "ods.unregistered",
        &peer,
        format!("{} unregistered from this server", peer.name),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn notify(State(app): State<App>, parts: Parts, body: Bytes) -> ApiResult<StatusCode> {
    let peer = authenticate(&app, &parts, &body).await?;
    crate::sync::pull::queue(&app, peer.id, false).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize)]
struct CatalogQuery {
    since: Option<i64>,
    limit: Option<i64>,
}

async fn catalog(
    State(app): State<App>,
    QueryArgs(q): QueryArgs<CatalogQuery>,
    parts: Parts,
) -> ApiResult<axum::Json<serde_json::Value>> {
    authenticate(&app, &parts, b"").await?;
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    let since = q.since.unwrap_or(0);
    let entries = db::catalog::since(&app.db, since, limit + 1).await?;
    let more = entries.len() as i64 > limit;
    let entries: Vec<_> = entries.into_iter().take(limit as usize).collect();
    let cursor = match entries.last() {
        Some(e) => e.seq,
        None => db::catalog::current_seq(&app.db).await?.max(since),
    };
    Ok(axum::Json(
        json!({ "identity": own_hello(&app).await?, "entries": entries, "cursor": cursor, "more": more }),
    ))
}

#[derive(Deserialize)]
struct EventsQuery {
    since: Option<i64>,
    wait: Option<u64>,
}

/// Long-poll: answers when our change cursor passes `since`, or after `wait` seconds.
async fn events(
    State(app): State<App>,
    QueryArgs(q): QueryArgs<EventsQuery>,
    parts: Parts,
) -> ApiResult<axum::Json<serde_json::Value>> {
    authenticate(&app, &parts, b"").await?;
    let since = q.since.unwrap_or(-1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.unwrap_or(25).min(55));
    let mut rx = app.sync.cursor.subscribe();
    loop {
        let cur = db::catalog::current_seq(&app.db).await?;
        if cur != since || tokio::time::Instant::now() >= deadline {
            return Ok(axum::Json(json!({ "cursor": cur })));
        }
        // Woken by a local change, or re-check the database each second (changes made
        // by another process sharing it).
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

async fn public_package(app: &App, uuid: &str) -> ApiResult<db::packages::PackageRow> {
    let mut conn = app.db.reader().acquire().await?;
    db::packages::by_uuid(&app.db, &mut conn, uuid)
        .await?
        .filter(|p| p.status == Status::Public)
        .ok_or_else(|| ApiError::not_found(format!("package {uuid} is not available here")))
}

async fn manifest(
    State(app): State<App>,
    Path(uuid): Path<String>,
    parts: Parts,
) -> ApiResult<axum::Json<Manifest>> {
    authenticate(&app, &parts, b"").await?;
    let p = public_package(&app, &uuid).await?;
    let chunks = db::packages::chunks(&app.db, &p.sha256).await?;
    Ok(axum::Json(Manifest {
        uuid: p.uuid,
        file_size: p.file_size,
        sha1: p.sha1,
        sha256: p.sha256,
        chunks,
    }))
}

async fn chunk(
    State(app): State<App>,
    Path((uuid, idx)): Path<(String, String)>,
    parts: Parts,
) -> ApiResult<Response> {
    authenticate(&app, &parts, b"").await?;
    let idx = chunk_index(&idx)?;
    let p = public_package(&app, &uuid).await?;
    let size = p.file_size.max(0) as u64;
    let offset = idx * CHUNK_SIZE as u64;
    if offset >= size {
        return Err(ApiError::not_found(format!(
            "package {uuid} has no chunk {idx}"
        )));
    }
    let len = (size - offset).min(CHUNK_SIZE as u64);
    let stream = app.store.read(&p.sha256, offset, len).await?;
    app.sync.stats.served(len);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_LENGTH, &len.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn chunk_index(s: &str) -> ApiResult<u64> {
    s.parse()
        .map_err(|_| ApiError::bad_request("invalid_id", format!("{s:?} is not a chunk index")))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("peer request body: {e}")))
}

/// A firewalled peer sends its catalog records (it cannot be pulled from).
async fn push(
    State(app): State<App>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let peer = authenticate(&app, &parts, &body).await?;
    let page: crate::peers::CatalogPage = parse(&body)?;
    if page.identity.iss != peer.iss {
        return Err(ApiError::bad_request(
            "invalid_iss",
            "the pushed identity is not the signer's",
        ));
    }
    crate::peers::refresh_identity(&app, &peer, &page.identity).await?;
    let mut applied = 0;
    for r in &page.entries {
        if crate::catalog::remote(&app, r, &peer).await? {
            applied += 1;
        }
    }
    crate::peers::contact(&app, &peer, None).await;
    Ok(axum::Json(json!({ "applied": applied })))
}

#[derive(Deserialize)]
struct WantsQuery {
    uuids: Vec<String>,
}

/// Which of these packages this server is waiting for.
async fn wants(
    State(app): State<App>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<axum::Json<serde_json::Value>> {
    authenticate(&app, &parts, &body).await?;
    let q: WantsQuery = parse(&body)?;
    let waiting: std::collections::HashSet<String> = db::packages::incomplete(&app.db)
        .await?
        .into_iter()
        .map(|p| p.uuid)
        .collect();
    let wanted: Vec<&String> = q.uuids.iter().filter(|u| waiting.contains(*u)).collect();
    Ok(axum::Json(json!({ "wanted": wanted })))
}

async fn waiting_package(app: &App, uuid: &str) -> ApiResult<Option<db::packages::PackageRow>> {
    let mut conn = app.db.reader().acquire().await?;
    Ok(db::packages::by_uuid(&app.db, &mut conn, uuid)
        .await?
        .filter(|p| p.status != Status::Public))
}

/// A firewalled peer offers a package: keep its manifest, answer which chunks we lack.
async fn offer(
    State(app): State<App>,
    Path(uuid): Path<String>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<axum::Json<serde_json::Value>> {
    authenticate(&app, &parts, &body).await?;
    let m: Manifest = parse(&body)?;
    let Some(p) = waiting_package(&app, &uuid).await? else {
        return Ok(axum::Json(json!({ "missing": [] })));
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
    Ok(axum::Json(json!({ "missing": missing })))
}

/// A firewalled peer sends one chunk of a package we are waiting for.
async fn receive_chunk(
    State(app): State<App>,
    Path((uuid, idx)): Path<(String, String)>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<StatusCode> {
    authenticate(&app, &parts, &body).await?;
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
    app.sync.stats.fetched(len as u64);
    if db::transfers::count(&app.db, &uuid).await? == expected.len() as i64 {
        crate::catalog::hurry(&app, &uuid).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
