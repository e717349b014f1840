//! `/api/ods/...`: the peer API, used only between servers. Every request is signed
//! (see `mesh::sign`); registration with the receiver's key, everything else with the
//! link's pair secret.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::db::catalog::Record;
use crate::db::{self, peers::PeerRow};
use crate::error::{ApiError, ApiResult};
use crate::http::QueryArgs;
use crate::http::docs::{BadRequest, Conflict, NotFound, PeerErrors, TooLarge};
use crate::ingest::CHUNK_SIZE;
use crate::mesh::sign::{self as auth, ISS_HEADER, SIG_HEADER};
use crate::model::{Identity, Status, now_unix};
use crate::peers::{Manifest, own_identity as own_hello};
use crate::sync::register::{Welcome, new_pair_secret};

mod bundle;
mod manifests;
mod push;

/// The peer router (to nest under `/api/ods`), every route documented.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(unregister))
        .routes(routes!(notify))
        .routes(routes!(catalog))
        .routes(routes!(events))
        .routes(routes!(manifest))
        .routes(routes!(manifests::manifests))
        .routes(routes!(chunk, push::receive_chunk))
        .routes(routes!(bundle::bundle))
        .routes(routes!(push::offer))
        .routes(routes!(push::push))
        .routes(routes!(push::wants))
}

/// A package's uuid.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct PackageUuid {
    /// 32 lowercase hex characters.
    uuid: String,
}

/// A package's uuid and a chunk's index.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct ChunkPath {
    /// 32 lowercase hex characters.
    uuid: String,
    /// The chunk's index (0-based; chunks are 1 MiB, the last one short).
    #[param(minimum = 0)]
    idx: u64,
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

#[utoipa::path(
    post,
    path = "/register",
    tag = "peer",
    operation_id = "peer_register",
    description = "Another server registers with this one, signed with this server's registration key. Answers with this server's identity and a fresh pair secret for the link.",
    security(("peerSignature" = [])),
    request_body = Identity,
    responses((status = 200, description = "Registered.", body = Welcome), BadRequest, Conflict, TooLarge, PeerErrors)
)]
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

#[utoipa::path(
    post,
    path = "/unregister",
    tag = "peer",
    operation_id = "peer_unregister",
    request_body(content = crate::http::docs::Binary, content_type = "application/octet-stream", description = "Not read (usually empty); covered by the signature."),
    description = "The signing server drops its link with this one.",
    security(("peerSignature" = [])),
    responses((status = 204, description = "Unregistered."), TooLarge, PeerErrors)
)]
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

#[utoipa::path(
    post,
    path = "/notify",
    tag = "peer",
    operation_id = "peer_notify",
    request_body(content = crate::http::docs::Binary, content_type = "application/octet-stream", description = "Not read (usually empty); covered by the signature."),
    description = "The signing server has changes: this one queues a pull and answers at once.",
    security(("peerSignature" = [])),
    responses((status = 202, description = "A pull is queued."), TooLarge, PeerErrors)
)]
async fn notify(State(app): State<App>, parts: Parts, body: Bytes) -> ApiResult<StatusCode> {
    let peer = authenticate(&app, &parts, &body).await?;
    crate::sync::pull::queue(&app, peer.id, false).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CatalogQuery {
    /// Only records changed after this cursor (default 0: everything).
    #[param(value_type = i64, required = false)]
    since: Option<i64>,
    /// At most this many records (default 500; clamped to 1..5000).
    #[param(value_type = i64, required = false)]
    limit: Option<i64>,
}

/// One page of this server's catalog.
#[derive(Debug, Serialize, ToSchema)]
struct CatalogAnswer {
    /// Where the next page starts (`since`).
    cursor: i64,
    entries: Vec<Record>,
    identity: Identity,
    /// Whether more records follow.
    more: bool,
}

#[utoipa::path(
    get,
    path = "/catalog",
    tag = "peer",
    operation_id = "peer_catalog",
    description = "This server's package records changed since a cursor, and its identity.",
    security(("peerSignature" = [])),
    params(CatalogQuery),
    responses((status = 200, description = "A page of the catalog.", body = CatalogAnswer), BadRequest, PeerErrors)
)]
async fn catalog(
    State(app): State<App>,
    QueryArgs(q): QueryArgs<CatalogQuery>,
    parts: Parts,
) -> ApiResult<axum::Json<CatalogAnswer>> {
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
    Ok(axum::Json(CatalogAnswer {
        cursor,
        entries,
        identity: own_hello(&app).await?,
        more,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// The cursor the caller knows (default -1: answer at once).
    #[param(value_type = i64, required = false)]
    since: Option<i64>,
    /// Seconds to wait for a change (default 25, at most 55).
    #[param(value_type = u64, required = false, minimum = 0)]
    wait: Option<u64>,
}

/// This server's change cursor.
#[derive(Debug, Serialize, ToSchema)]
struct Cursor {
    cursor: i64,
}

/// Long-poll: answers when our change cursor passes `since`, or after `wait` seconds.
#[utoipa::path(
    get,
    path = "/events",
    tag = "peer",
    operation_id = "peer_events",
    description = "Long poll for firewalled peers: answers when this server's change cursor differs from `since`, or after `wait` seconds.",
    security(("peerSignature" = [])),
    params(EventsQuery),
    responses((status = 200, description = "The cursor now.", body = Cursor), BadRequest, PeerErrors)
)]
async fn events(
    State(app): State<App>,
    QueryArgs(q): QueryArgs<EventsQuery>,
    parts: Parts,
) -> ApiResult<axum::Json<Cursor>> {
    authenticate(&app, &parts, b"").await?;
    let since = q.since.unwrap_or(-1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.unwrap_or(25).min(55));
    let mut rx = app.sync.cursor.subscribe();
    loop {
        let cur = db::catalog::current_seq(&app.db).await?;
        if cur != since || tokio::time::Instant::now() >= deadline {
            return Ok(axum::Json(Cursor { cursor: cur }));
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

#[utoipa::path(
    get,
    path = "/packages/{uuid}/manifest",
    tag = "peer",
    operation_id = "peer_manifest",
    description = "A Public package's size, digests and chunk hashes.",
    security(("peerSignature" = [])),
    params(PackageUuid),
    responses((status = 200, description = "The manifest.", body = Manifest), NotFound, PeerErrors)
)]
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

/// Most chunks one request may ask for (16 MiB).
const MAX_SPAN: u64 = 16;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SpanQuery {
    /// This many consecutive chunks from `idx`, in one body (default 1, at most 16;
    /// fewer when the package ends first). Servers before this parameter send one chunk.
    #[param(value_type = u64, required = false, minimum = 1, maximum = 16)]
    count: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/packages/{uuid}/chunks/{idx}",
    tag = "peer",
    operation_id = "peer_chunk",
    description = "One chunk of a Public package, or with `count` that many consecutive chunks in one body.",
    security(("peerSignature" = [])),
    params(ChunkPath, SpanQuery),
    responses(
        (status = 200, description = "The chunks' bytes, back to back.", content_type = "application/octet-stream", body = crate::http::docs::Binary),
        BadRequest,
        NotFound,
        PeerErrors
    )
)]
async fn chunk(
    State(app): State<App>,
    Path((uuid, idx)): Path<(String, String)>,
    QueryArgs(q): QueryArgs<SpanQuery>,
    parts: Parts,
) -> ApiResult<Response> {
    let peer = authenticate(&app, &parts, b"").await?;
    let idx = chunk_index(&idx)?;
    let count = q.count.unwrap_or(1);
    if !(1..=MAX_SPAN).contains(&count) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("count must be 1 to {MAX_SPAN}"),
        ));
    }
    let p = public_package(&app, &uuid).await?;
    let size = p.file_size.max(0) as u64;
    let chunk = CHUNK_SIZE as u64;
    let offset = idx.saturating_mul(chunk);
    if offset >= size {
        return Err(ApiError::not_found(format!(
            "package {uuid} has no chunk {idx}"
        )));
    }
    let len = (size - offset).min(count * chunk);
    let stream = app.store.read(&p.sha256, offset, len).await?;
    for i in 0..len.div_ceil(chunk) {
        app.sync
            .stats
            .served(&peer.iss, (len - i * chunk).min(chunk));
    }
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
