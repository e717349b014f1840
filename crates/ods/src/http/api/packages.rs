//! `/api/admin/packages` and `/api/admin/upload`: list, show, upload (streamed),
//! delete, change stage, and ask for the Jamf digests.

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::QueryArgs;
use crate::http::auth::Principal;
use crate::ingest::{Ingest, Received};
use crate::model::Role;
use crate::model::Stage;
use crate::packages as svc;
use crate::packages::PackageRef;

pub async fn list_packages(State(app): State<App>, who: Principal) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    let progress = svc::progress(&app).await?;
    let items: Vec<Value> = db::packages::list(&app.db)
        .await?
        .iter()
        .map(|p| svc::with_progress(svc::to_json(p), p, progress.get(&p.uuid).copied()))
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

pub async fn get_package(
    State(app): State<App>,
    who: Principal,
    pkg: PackageRef,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    let p = svc::resolve(&app, &pkg).await?;
    Ok(axum::Json(svc::to_json_detail(&app, &p).await?))
}

pub async fn delete_package(
    State(app): State<App>,
    who: Principal,
    pkg: PackageRef,
) -> ApiResult<StatusCode> {
    who.require(Role::Uploader)?;
    let p = svc::resolve(&app, &pkg).await?;
    svc::delete(&app, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageUpdate {
    stage: String,
}

pub async fn update_package(
    State(app): State<App>,
    who: Principal,
    pkg: PackageRef,
    JsonBody(body): JsonBody<PackageUpdate>,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Uploader)?;
    let stage = parse_stage(&body.stage)?;
    let p = svc::resolve(&app, &pkg).await?;
    if p.stage != stage {
        svc::set_stage(&app, &p, stage).await?;
    }
    let p = svc::by_id(&app, p.id).await?;
    Ok(axum::Json(svc::to_json(&p)))
}

pub async fn compute_digests(
    State(app): State<App>,
    who: Principal,
    pkg: PackageRef,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    who.require(Role::Uploader)?;
    let p = svc::resolve(&app, &pkg).await?;
    let queued = svc::request_digests(&app, &p).await?;
    let status = if queued {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(json!({ "queued": queued }))))
}

fn parse_stage(s: &str) -> ApiResult<Stage> {
    Stage::parse(s).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_stage",
            format!("stage {s:?} must be Dev, Test or Prod"),
        )
    })
}

fn parse_flag(name: &str, s: &str) -> ApiResult<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ApiError::bad_request(
            "invalid_field",
            format!("{name} must be true or false"),
        )),
    }
}

fn bad_multipart(e: MultipartError) -> ApiError {
    ApiError::bad_request(
        "invalid_multipart",
        format!(
            "the multipart body is malformed or was cut off: {}",
            e.body_text()
        ),
    )
}

/// A short text field, refusing anything long (a form value, not a file).
async fn small_text(mut field: Field<'_>) -> ApiResult<String> {
    let name = field.name().unwrap_or("").to_string();
    let mut buf = Vec::new();
    while let Some(piece) = field.chunk().await.map_err(bad_multipart)? {
        buf.extend_from_slice(&piece);
        if buf.len() > 1024 {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("form field {name:?} is too long"),
            ));
        }
    }
    String::from_utf8(buf).map_err(|_| {
        ApiError::bad_request("invalid_field", format!("form field {name:?} is not UTF-8"))
    })
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    stage: Option<String>,
    replace: Option<String>,
}

/// Multipart `file` (streamed to staging while hashed) and `stage`, optional
/// `replace=true`. Fields may come in any order; nothing is kept unless all is valid.
pub async fn upload_package(
    State(app): State<App>,
    who: Principal,
    QueryArgs(query): QueryArgs<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    who.require(Role::Uploader)?;
    let mut multipart = multipart.map_err(|_| {
        ApiError::bad_request(
            "invalid_multipart",
            "the upload must be multipart/form-data (Content-Type: multipart/form-data with a boundary), with the fields file and stage",
        )
    })?;
    let mut stage = query.stage.as_deref().map(parse_stage).transpose()?;
    let mut replace = query
        .replace
        .as_deref()
        .map(|r| parse_flag("replace", r))
        .transpose()?;
    let mut upload: Option<(String, Received)> = None;

    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        match field.name().unwrap_or("") {
            "file" => {
                if upload.is_some() {
                    return Err(ApiError::bad_request(
                        "too_many_files",
                        "send one file per upload",
                    ));
                }
                let filename = crate::filenames::multipart_filename(
                    field
                        .headers()
                        .get("content-disposition")
                        .and_then(|v| v.to_str().ok()),
                    field.file_name(),
                )
                .map_err(|why| ApiError::bad_request("invalid_filename", why))?
                .ok_or_else(|| {
                    ApiError::bad_request("missing_filename", "the file field has no filename")
                })?;
                let filename = crate::filenames::accept(&filename)
                    .map_err(|why| ApiError::bad_request("invalid_filename", why))?;
                if replace == Some(false) || (replace.is_none() && query.replace.is_some()) {
                    // Known already that this must not replace: refuse before reading the body.
                    if db::packages::find_by_filename(&app.db, app.db.reader(), &filename)
                        .await?
                        .is_some()
                    {
                        return Err(svc::conflict(&filename));
                    }
                }
                let mut ingest = Ingest::start(app.store.as_ref()).await?;
                while let Some(piece) = field.chunk().await.map_err(bad_multipart)? {
                    ingest.feed(piece).await?;
                }
                upload = Some((filename, ingest.finish().await?));
            }
            "stage" => stage = Some(parse_stage(&small_text(field).await?)?),
            "replace" => replace = Some(parse_flag("replace", &small_text(field).await?)?),
            _ => while field.chunk().await.map_err(bad_multipart)?.is_some() {},
        }
    }
    let (filename, received) = upload
        .ok_or_else(|| ApiError::bad_request("missing_file", "the upload has no file field"))?;
    let stage = stage.ok_or_else(|| {
        ApiError::bad_request(
            "missing_stage",
            "the upload needs a stage: Dev, Test or Prod",
        )
    })?;
    let p = svc::accept_upload(&app, &filename, stage, replace.unwrap_or(false), received).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "file_size": p.file_size,
            "filename": p.filename,
            "id": p.id,
            "sha1": p.sha1,
            "sha256": p.sha256,
            "stage": p.stage.as_str(),
            "status": p.status.as_str(),
            "uuid": p.uuid,
        })),
    ))
}
