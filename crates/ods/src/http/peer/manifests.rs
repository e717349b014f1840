//! `POST /api/ods/packages/manifests`: the manifests of many Public packages in one
//! answer, for a peer about to fetch them chunk-wise (`peers::manifests` is the other
//! side).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;

use crate::app::App;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::http::docs::{BadRequest, PeerErrors};
use crate::model::Status;
use crate::peers::Manifest;
use crate::peers::manifests::{MAX_COUNT, ManifestsAnswer, ManifestsRequest};

#[utoipa::path(
    post,
    path = "/packages/manifests",
    tag = "peer",
    operation_id = "peer_manifests",
    description = "The manifests (size, digests and chunk hashes) of those of the packages \
        asked for that are Public here, in the order asked; the others are left out.",
    security(("peerSignature" = [])),
    request_body = ManifestsRequest,
    responses(
        (status = 200, description = "The manifests.", body = ManifestsAnswer),
        BadRequest,
        PeerErrors
    )
)]
pub(super) async fn manifests(
    State(app): State<App>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<axum::Json<ManifestsAnswer>> {
    super::authenticate(&app, &parts, &body).await?;
    let req: ManifestsRequest = super::parse(&body)?;
    if req.uuids.is_empty() || req.uuids.len() > MAX_COUNT {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("uuids: 1 to {MAX_COUNT} of them"),
        ));
    }
    if let Some(bad) = req.uuids.iter().find(|u| !super::bundle::is_uuid(u)) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{bad:?} is not a package uuid (32 lowercase hex characters)"),
        ));
    }
    let asked: Vec<&str> = req.uuids.iter().map(String::as_str).collect();
    let mut held = {
        let mut conn = app.db.reader().acquire().await?;
        db::packages::by_uuids(&app.db, &mut conn, &asked).await?
    };
    held.retain(|p| p.status == Status::Public);
    let hashes: Vec<&str> = held.iter().map(|p| p.sha256.as_str()).collect();
    let lists = db::packages::chunks_many(&app.db, &hashes).await?;
    let order = |uuid: &str| asked.iter().position(|a| *a == uuid);
    held.sort_by_key(|p| order(&p.uuid));
    let manifests = held
        .into_iter()
        .map(|p| Manifest {
            chunks: lists.get(&p.sha256).cloned().unwrap_or_default(),
            uuid: p.uuid,
            file_size: p.file_size,
            sha1: p.sha1,
            sha256: p.sha256,
        })
        .collect();
    Ok(axum::Json(ManifestsAnswer { manifests }))
}
