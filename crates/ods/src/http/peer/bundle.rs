//! `POST /api/ods/packages/bundle`: many small Public packages in one answer, for a
//! peer holding them (`peers::bundle` is the other side, and owns the framing).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::app::App;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::http::docs::{BadRequest, PeerErrors};
use crate::ingest::CHUNK_SIZE;
use crate::model::Status;
use crate::peers::bundle::{BundleRequest, MAX_BYTES, MAX_COUNT, frame_head};
use crate::storage::{ByteStream, SMALL_READ};

#[utoipa::path(
    post,
    path = "/packages/bundle",
    tag = "peer",
    operation_id = "peer_bundle",
    description = "Several Public packages of at most one chunk (1 MiB) in one body: for each uuid \
        asked, in order, its length as 8 bytes big-endian and its bytes, or the length \
        2^64-1 and no bytes when it is not sent (not Public here, larger than a chunk, or \
        past 16 MiB in all).",
    security(("peerSignature" = [])),
    request_body = BundleRequest,
    responses(
        (status = 200, description = "The packages, framed.", content_type = "application/octet-stream", body = crate::http::docs::Binary),
        BadRequest,
        PeerErrors
    )
)]
pub(super) async fn bundle(
    State(app): State<App>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<Response> {
    let peer = super::authenticate(&app, &parts, &body).await?;
    let req: BundleRequest = super::parse(&body)?;
    if req.uuids.is_empty() || req.uuids.len() > MAX_COUNT {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("uuids: 1 to {MAX_COUNT} of them"),
        ));
    }
    if let Some(bad) = req.uuids.iter().find(|u| !is_uuid(u)) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{bad:?} is not a package uuid (32 lowercase hex characters)"),
        ));
    }
    // What is sent: each package's blob and size, or nothing.
    let mut plan: Vec<Option<(String, u64)>> = Vec::with_capacity(req.uuids.len());
    let mut total = 0u64;
    {
        let mut conn = app.db.reader().acquire().await?;
        let uuids: Vec<&str> = req.uuids.iter().map(String::as_str).collect();
        let public: HashMap<String, db::packages::PackageRow> =
            db::packages::by_uuids(&app.db, &mut conn, &uuids)
                .await?
                .into_iter()
                .filter(|p| p.status == Status::Public)
                .map(|p| (p.uuid.clone(), p))
                .collect();
        for uuid in &req.uuids {
            let sent = public.get(uuid).and_then(|p| {
                let size = p.file_size.max(0) as u64;
                (size <= CHUNK_SIZE as u64 && total + size <= MAX_BYTES).then(|| {
                    total += size;
                    (p.sha256.clone(), size)
                })
            });
            if let Some((_, size)) = &sent {
                app.sync.stats.served(&peer.iss, *size);
            }
            plan.push(sent);
        }
    }
    let length = total + 8 * plan.len() as u64;
    // Each package's frame head, then its bytes: small ones read whole, larger ones
    // (up to a chunk) streamed.
    let store = app.store.clone();
    let frames = futures_util::stream::iter(plan)
        .then(move |item| {
            let store = store.clone();
            async move {
                let Some((sha256, size)) = item else {
                    return Ok::<ByteStream, std::io::Error>(Box::pin(futures_util::stream::once(
                        async { Ok(frame_head(None)) },
                    )));
                };
                let head = futures_util::stream::once(async move { Ok(frame_head(Some(size))) });
                let data: ByteStream = if size == 0 {
                    Box::pin(futures_util::stream::empty())
                } else if size <= SMALL_READ {
                    let b = store.read_once(&sha256, size).await?;
                    Box::pin(futures_util::stream::once(async move { Ok(b) }))
                } else {
                    store.read(&sha256, 0, size).await?
                };
                Ok(Box::pin(head.chain(data)) as ByteStream)
            }
        })
        .map(|r| match r {
            Ok(s) => s,
            Err(e) => Box::pin(futures_util::stream::once(async move { Err(e) })) as ByteStream,
        })
        .flatten();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_LENGTH, &length.to_string()),
        ],
        Body::from_stream(frames),
    )
        .into_response())
}

pub(super) fn is_uuid(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
